"""Site permutation group of a parent (from spglib) and Burnside counts.

A space-group operation (R, t) maps the fractional position x of atom i to R x + t, which is
the position of some atom j = p(i): the operation acts on the sites as a permutation p.
A configuration c (a colouring of the sites) is carried to g.c with (g.c)[p(i)] = c[i].

Burnside's lemma counts the symmetry-distinct configurations of a composition:

    N_distinct = (1/|G|) sum_g Fix(g),

where Fix(g) is the number of colourings with the required counts that g leaves unchanged:
a colouring is fixed by g exactly when it is constant on every cycle of g. With x marking a
vacancy and y a dopant, the cycles of g on an orbit O generate

    Fix_O(g) = [x^v y^m] prod_{cycles C of g on O} (1 + x^|C| + y^|C|),

and Fix(g) is the product of Fix_O(g) over the active orbits (g maps each orbit onto itself).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from functools import cache
from math import comb, prod

import numpy as np
import spglib
from ase import Atoms

from qcapprox.errors import ParentError


def spglib_cell(atoms: Atoms) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The (lattice, fractional positions, atomic numbers) triple spglib expects."""
    return (np.asarray(atoms.cell[:]), atoms.get_scaled_positions(wrap=True), atoms.numbers)


def site_permutations(atoms: Atoms, symprec: float) -> tuple[np.ndarray, str]:
    """Permutations p[g, i] = j of the atoms under every operation spglib finds.

    Returns the (n_ops, n_atoms) permutation array, duplicates removed and the identity
    first, and the space group as "symbol (number)".
    """
    dataset = spglib.get_symmetry_dataset(spglib_cell(atoms), symprec=symprec)
    if dataset is None:
        raise ParentError(f"spglib found no symmetry at symprec={symprec}")
    frac = atoms.get_scaled_positions(wrap=True)
    cell = np.asarray(atoms.cell[:])
    tol = max(4 * symprec, 1e-4)
    perms = []
    for rot, trans in zip(dataset.rotations, dataset.translations, strict=True):
        image = frac @ rot.T + trans
        diff = image[:, None, :] - frac[None, :, :]
        diff -= np.round(diff)
        dist = np.linalg.norm(diff @ cell, axis=-1)
        target = dist.argmin(axis=1)
        if dist[np.arange(len(frac)), target].max() > tol or len(set(target)) != len(frac):
            raise ParentError(
                "a symmetry operation of spglib does not map the atoms onto themselves "
                f"within {tol} A: symmetrize the structure first"
            )
        if np.any(atoms.numbers[target] != atoms.numbers):
            raise ParentError("a symmetry operation maps atoms onto atoms of another element")
        perms.append(target)
    unique = np.unique(np.array(perms), axis=0)
    identity = np.arange(len(frac))
    is_identity = (unique == identity).all(axis=1)
    unique = np.concatenate([unique[is_identity], unique[~is_identity]])
    symbol = f"{dataset.international} ({dataset.number})"
    return unique, symbol


def restrict(perms: np.ndarray, sites: np.ndarray) -> np.ndarray:
    """Permutations of the atoms restricted to `sites`, as indices into `sites`.

    Raises ParentError if some operation maps a site of `sites` outside of it.
    """
    position = np.full(perms.shape[1], -1)
    position[sites] = np.arange(len(sites))
    restricted = position[perms[:, sites]]
    if (restricted < 0).any():
        raise ParentError("the active sites are not closed under the space group")
    return restricted


def _cycle_lengths(perm: np.ndarray) -> tuple[int, ...]:
    """The sorted cycle lengths of a permutation (its cycle type)."""
    seen = np.zeros(len(perm), dtype=bool)
    lengths = []
    for start in range(len(perm)):
        if seen[start]:
            continue
        length, j = 0, start
        while not seen[j]:
            seen[j] = True
            j = perm[j]
            length += 1
        lengths.append(length)
    return tuple(sorted(lengths))


CycleIndex = dict[tuple[tuple[int, ...], ...], int]


def cycle_index(group: np.ndarray, orbit_slices: Sequence[slice]) -> CycleIndex:
    """The cycle index of the group on the active orbits: for every combination of cycle
    types (one per orbit) that an operation has, how many operations have it.

    `group` is the (n_ops, n_active) permutation array of the active sites and
    `orbit_slices[k]` selects orbit k in the active order.
    """
    return dict(
        Counter(tuple(_cycle_lengths(perm[sl] - sl.start) for sl in orbit_slices) for perm in group)
    )


@cache
def _fixed_colourings(cycles: tuple[int, ...], n_vac: int, n_dop: int) -> int:
    """[x^v y^m] prod_C (1 + x^|C| + y^|C|) for the cycle lengths |C| of one orbit."""
    poly = np.zeros((n_vac + 1, n_dop + 1), dtype=object)
    poly[0, 0] = 1
    for length in cycles:
        new = poly.copy()
        if length <= n_vac:
            new[length:, :] += poly[: n_vac + 1 - length, :]
        if length <= n_dop:
            new[:, length:] += poly[:, : n_dop + 1 - length]
        poly = new
    return int(poly[n_vac, n_dop])


def burnside_count(index: CycleIndex, counts: Sequence[tuple[int, int]]) -> int:
    """Number of symmetry-distinct configurations with the given (vacancy, dopant) counts
    per orbit, `counts[k]` = (n_vac, n_dopant), from the group's cycle index: operations of
    one cycle type fix as many colourings, so each type is counted once."""
    total = sum(
        n_ops * prod(_fixed_colourings(c, v, m) for c, (v, m) in zip(types, counts, strict=True))
        for types, n_ops in index.items()
    )
    order = sum(index.values())
    if total % order:
        raise ArithmeticError("Burnside sum not divisible by the group order")
    return total // order


def labelled_count(orbit_sizes: Sequence[int], counts: Sequence[tuple[int, int]]) -> int:
    """Number of labelled decorations: prod_O n_O! / (v! m! (n_O - v - m)!)."""
    return prod(comb(n, v) * comb(n - v, m) for n, (v, m) in zip(orbit_sizes, counts, strict=True))
