"""Defect descriptors of configurations for tabular models, vectorized over many rows.

All features are invariant under the parent's symmetry group, so symmetry-equivalent
configurations get identical rows. With V and M the (n, 36) indicator matrices of
vacancies and dopants on the active sites:

- counts (4): vacancies and dopants on A4 and on A5;
- composition (3): dopant fraction x_M = n_M / (n_Sc + n_M), Sc fraction, atoms per cell;
- contact counters (9): numbers of defect-defect neighbour pairs within the first
  coordination shell of the parent (active-active distances below 1.25 times the shortest
  one: 3.0-3.4 A in Sc60M13), by species pair (vac-vac, vac-M, M-M) and orbit pair
  (A4-A4, A4-A5, A5-A5); for an adjacency block A_ab and species indicators X, Y:
  N = sum_ij X_i A_ij Y_j (halved when X = Y and a = b);
- cluster shells (4): vacancies and dopants among the active sites within 8.5 A of each
  Mackay cluster centre (0,0,0) and (1/2,1/2,1/2), as (smaller, larger) over the two
  clusters (the centring operation swaps them).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qcapprox.parent import DOPANT, VACANCY, Parent

SHELL_FACTOR = 1.25
CLUSTER_RADIUS = 8.5
CLUSTER_CENTRES = np.array([[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]])
SPECIES_PAIRS = (("vac", "vac"), ("vac", "M"), ("M", "M"))


@dataclass(frozen=True)
class Descriptors:
    """The descriptor map of one parent: `transform(occupancy)` -> (n, n_features)."""

    names: tuple[str, ...]
    blocks: dict[tuple[str, str], np.ndarray]
    near: np.ndarray
    slices: dict[str, slice]
    n_host0: int
    n_dopant0: int
    n_atoms0: int

    @classmethod
    def from_parent(cls, parent: Parent) -> Descriptors:
        """Neighbour blocks and cluster shells from the parent geometry."""
        atoms = parent.atoms
        dist = atoms.get_all_distances(mic=True)[np.ix_(parent.active, parent.active)]
        np.fill_diagonal(dist, np.inf)
        adjacency = (dist < SHELL_FACTOR * dist.min()).astype(np.float64)
        slices = parent.orbit_slices
        blocks = {}
        names = [f"{o} {s}" for o in slices for s in ("vac", "M")]
        names += ["x_M", "x_Sc", "n_atoms"]
        orbit_names = list(slices)
        for i, a in enumerate(orbit_names):
            for b in orbit_names[i:]:
                blocks[(a, b)] = adjacency[slices[a], slices[b]]
                names += [f"contacts {a}-{b} {x}-{y}" for x, y in SPECIES_PAIRS]
        frac = atoms.get_scaled_positions()[parent.active]
        diff = frac[None, :, :] - CLUSTER_CENTRES[:, None, :]
        diff -= np.round(diff)
        near = (np.linalg.norm(diff @ atoms.cell[:], axis=-1) < CLUSTER_RADIUS).astype(float)
        names += ["cluster vac min", "cluster vac max", "cluster M min", "cluster M max"]
        n_host0, n_dop0 = (int(c[0]) for c in parent.formula_counts(np.zeros(parent.n_active)))
        return cls(tuple(names), blocks, near.T, dict(slices), n_host0, n_dop0, len(atoms))

    def transform(self, occupancy: np.ndarray) -> np.ndarray:
        """(n, n_features) float64 descriptors of (n, 36) occupancies."""
        occ = np.atleast_2d(occupancy)
        species = {
            "vac": (occ == VACANCY).astype(np.float64),
            "M": (occ == DOPANT).astype(np.float64),
        }
        cols = []
        for sl in self.slices.values():
            cols += [species["vac"][:, sl].sum(1), species["M"][:, sl].sum(1)]
        n_vac = species["vac"].sum(1)
        n_dop = self.n_dopant0 + species["M"].sum(1)
        n_host = self.n_host0 - n_vac - species["M"].sum(1)
        cols += [n_dop / (n_host + n_dop), n_host / (n_host + n_dop), self.n_atoms0 - n_vac]
        for (a, b), block in self.blocks.items():
            sa, sb = self.slices[a], self.slices[b]
            for x, y in SPECIES_PAIRS:
                pairs = ((species[x][:, sa] @ block) * species[y][:, sb]).sum(1)
                if a != b and x != y:  # vac on a next to M on b, and M on a next to vac on b
                    pairs += ((species[y][:, sa] @ block) * species[x][:, sb]).sum(1)
                elif a == b and x == y:
                    pairs /= 2
                cols.append(pairs)
        for kind in ("vac", "M"):
            shells = species[kind] @ self.near
            cols += [shells.min(1), shells.max(1)]
        return np.stack(cols, axis=1)
