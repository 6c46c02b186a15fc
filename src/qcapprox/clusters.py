"""Cluster correlation functions over the active sites: configuration-resolving descriptors.

A cluster expansion writes a configuration's energy as E(sigma) = sum_alpha m_alpha J_alpha
<Pi_alpha(sigma)>, over orbits alpha of clusters (singlets, pairs, triplets of active
sites) under the parent's symmetry group G, with effective cluster interactions J_alpha
(Sanchez, Ducastelle and Gratias 1984; icet's ClusterSpace, Angqvist et al. 2019).

Species: every active site carries sigma in {0 Sc, 1 M, 2 vacancy} (the occupancy codes),
M = 3 components. Point functions (van de Walle's trigonometric basis, as in ATAT and icet):
Theta_0 = 1, Theta_1(sigma) = -cos(2 pi sigma / 3), Theta_2(sigma) = -sin(2 pi sigma / 3),
orthogonal under the uniform measure: (1/3) sum_sigma Theta_n Theta_n' = delta_nn' / 2 for
n, n' >= 1.

A cluster function is a cluster c = (s_1, ..., s_k) of active sites with basis indices
n = (n_1, ..., n_k), n_i in {1, 2}; its correlation is the average over the orbit of the
(ordered) cluster under G,

    Pi_{alpha, n}(sigma) = (1 / |G c|) sum_{t in G c} prod_i Theta_{n_i}(sigma_{t_i}),

and two index vectors n, n' give the same function when they differ by a permutation that
maps the orbit onto itself (found here by comparing the multisets of (site, index) sets).
Pairs are all active-site pairs up to `pair_cutoff`, triplets those whose three distances
are all up to `triplet_cutoff`, or up to `pair_cutoff` for triplets of A4 sites (the
intercluster sites whose arrangement the screen ranks; minimum image in the parent cell).
Every correlation is invariant under G, and unlike the defect counters of `descriptors.py`
it resolves arrangements of one composition (e.g. which six A4 sites are vacant).
Correlations are rounded to `DECIMALS` places: they take few distinct values, and the last
bits of the sums depend on the machine's BLAS and libm, which would move the bins and
splits of the tree models that see them; rounded, they are the same on every machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations, product

import numpy as np

from qcapprox.parent import Parent

PAIR_CUTOFF = 13.0  # A: every A4-A4 pair shell (3.39-12.74 A in Sc60Pt13)
TRIPLET_CUTOFF = 6.0  # A: triplets within the shells up to 5.91 A
CHUNK = 65536  # rows evaluated at once
DECIMALS = 10  # places correlations are rounded to (module docstring)


def point_functions(codes: np.ndarray) -> np.ndarray:
    """(..., 2) values Theta_1, Theta_2 of occupancy codes (..., ) (module docstring)."""
    angle = 2.0 * np.pi * np.asarray(codes, dtype=np.float64) / 3.0
    return np.stack([-np.cos(angle), -np.sin(angle)], axis=-1)


@dataclass(frozen=True)
class ClusterFunction:
    """One correlation: its orbit's order, distances, a representative cluster and the
    distinct (site, index) sets of the orbit with their weights (summing to 1)."""

    order: int
    radius: float  # largest distance in the cluster, A
    orbit: str  # the active orbits of its sites, e.g. "A4-A4-A5"
    sites: np.ndarray  # (m, k) sites of the distinct (site, index) sets
    indices: np.ndarray  # (m, k) basis indices 1 or 2
    weights: np.ndarray  # (m,)

    @property
    def name(self) -> str:
        """Unique: the first (site, index) set of the orbit, e.g. 2-body A5-A5 4.39A
        (12,24)[12] (active sites 12 and 24, basis functions 1 and 2)."""
        sites = ",".join(map(str, self.sites[0]))
        index = "".join(map(str, self.indices[0]))
        return f"{self.order}-body {self.orbit} {self.radius:.2f}A ({sites})[{index}]"


@dataclass(frozen=True)
class ClusterSpace:
    """The cluster functions of a parent; `transform(occupancy)` -> correlations."""

    functions: tuple[ClusterFunction, ...]
    pair_cutoff: float
    triplet_cutoff: float

    @classmethod
    def from_parent(
        cls,
        parent: Parent,
        pair_cutoff: float = PAIR_CUTOFF,
        triplet_cutoff: float = TRIPLET_CUTOFF,
    ) -> ClusterSpace:
        """Enumerate the cluster orbits of the active sites under the parent's group."""
        group = parent.group  # (n_ops, 36): operation g sends site i to group[g, i]
        dist = parent.atoms.get_all_distances(mic=True)[np.ix_(parent.active, parent.active)]
        orbit_name = np.empty(parent.n_active, dtype=object)
        for name, sl in parent.orbit_slices.items():
            orbit_name[sl] = name
        n = parent.n_active
        clusters: list[tuple[int, ...]] = [(i,) for i in range(n)]
        clusters += [c for c in combinations(range(n), 2) if dist[c] <= pair_cutoff + 1e-6]
        a4 = set(range(n)[parent.orbit_slices["A4"]])
        for c in combinations(range(n), 3):
            longest = max(dist[c[0], c[1]], dist[c[0], c[2]], dist[c[1], c[2]])
            if longest <= (pair_cutoff if a4.issuperset(c) else triplet_cutoff) + 1e-6:
                clusters.append(c)
        seen: set[tuple[int, ...]] = set()
        functions: list[ClusterFunction] = []
        for cluster in clusters:
            if cluster in seen:
                continue
            ordered = np.unique(group[:, list(cluster)], axis=0)  # the orbit, ordered tuples
            seen.update(tuple(sorted(t)) for t in ordered)
            radius = max((dist[a, b] for a, b in combinations(cluster, 2)), default=0.0)
            orbit = "-".join(orbit_name[list(cluster)])
            functions += _functions(ordered, len(cluster), radius, orbit)
        functions.sort(key=lambda f: (f.order, round(f.radius, 3), f.orbit, f.name))
        return cls(tuple(functions), pair_cutoff, triplet_cutoff)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.functions)

    def counts(self) -> dict[int, int]:
        """Number of cluster functions per order (1 singlets, 2 pairs, 3 triplets)."""
        orders = [f.order for f in self.functions]
        return {k: orders.count(k) for k in sorted(set(orders))}

    def transform(self, occupancy: np.ndarray) -> np.ndarray:
        """(n, n_functions) correlations of (n, n_active) occupancies."""
        occ = np.atleast_2d(np.asarray(occupancy))
        out = np.empty((len(occ), len(self.functions)))
        for start in range(0, len(occ), CHUNK):
            theta = point_functions(occ[start : start + CHUNK])  # (rows, n_active, 2)
            for j, f in enumerate(self.functions):
                values = theta[:, f.sites, f.indices - 1].prod(axis=-1)  # (rows, m)
                out[start : start + CHUNK, j] = values @ f.weights
        return np.round(out, DECIMALS, out=out)

    def card(self) -> dict:
        """What a model card records of the cluster space."""
        return {
            "pair_cutoff": self.pair_cutoff,
            "triplet_cutoff": self.triplet_cutoff,
            "functions": self.counts(),
            "decimals": DECIMALS,
            "basis": "trigonometric (van de Walle): -cos(2 pi s/3), -sin(2 pi s/3); "
            "s = 0 Sc, 1 M, 2 vacancy",
        }


def _functions(ordered: np.ndarray, order: int, radius: float, orbit: str) -> list[ClusterFunction]:
    """The distinct cluster functions of one orbit of ordered clusters (module docstring)."""
    out, keys = [], set()
    for indices in product((1, 2), repeat=order):
        sets: dict[frozenset, int] = {}
        for t in ordered:
            key = frozenset(zip(t.tolist(), indices, strict=True))
            sets[key] = sets.get(key, 0) + 1
        signature = frozenset(sets.items())
        if signature in keys:
            continue
        keys.add(signature)
        members = sorted(sets, key=sorted)
        pairs = [sorted(s) for s in members]
        sites = np.array([[p[0] for p in s] for s in pairs], dtype=np.intp)
        idx = np.array([[p[1] for p in s] for s in pairs], dtype=np.intp)
        weights = np.array([sets[s] for s in members], dtype=np.float64) / len(ordered)
        out.append(ClusterFunction(order, radius, orbit, sites, idx, weights))
    return out
