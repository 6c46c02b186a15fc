"""Relaxation mapping: which configuration a relaxed structure is (it *relaxed into*).

A relaxation starts from a configuration c (the parent geometry decorated by c, or another
dopant's relaxed geometry of c) and may end in another one: an atom moves into a vacancy
and leaves its own site empty. The relaxed structure is identified against the parent
with `Parent.match` (optimal assignment of atoms to parent sites in fractional
coordinates of the relaxed cell, so the homogeneous strain is removed; a rigid shift is
removed too). Per row:

- `relaxed_into`: the stable id of the configuration the relaxed structure is, or
  UNMAPPABLE (-1) when it is none: an atom lies farther than the tolerance from its
  assigned site, a non-active site is left empty, or a non-active site holds another
  element (the structure left the configuration space of A4/A5 vacancies and dopants);
- `kept`: the row kept its identity (relaxed_into == its own id);
- `mapping_displacement`: the largest distance (Angstrom) of an atom from its assigned
  site, the number that decides mappability (NaN where no assignment is valid at all).

The tolerance is the calculators' (`words.MAX_DISPLACEMENT`, 2.5 A), so a hull
calculator given the relaxed structure answers for the configuration recorded here. Below
half the parent's shortest site distance (about 1.3 A) an assignment is unambiguous: every
atom is nearer its own site than any other (`unambiguous` counts those rows).

A label's meaning depends on the *mapping policy* of training (`POLICIES`):
`start` (the study's convention: the relaxed energy labels the starting configuration),
`kept` (only rows that kept their identity), `relaxed-into` (the energy labels the
configuration it became, the lowest one when several rows land on it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
from ase import Atoms

from qcapprox.errors import IdentifyError, StoreError
from qcapprox.parent import Parent
from qcapprox.words import MAX_DISPLACEMENT, POLICIES

UNMAPPABLE = -1
MAPPING_FIELDS = ("relaxed_into", "kept", "mapping_displacement")


@dataclass(frozen=True)
class RelaxationMap:
    """What every relaxed row of a store relaxed into (see the module docstring)."""

    relaxed_into: np.ndarray  # (n,) int64 ids, UNMAPPABLE where none
    kept: np.ndarray  # (n,) bool
    displacement: np.ndarray  # (n,) float64, Angstrom
    tolerance: float

    def shares(self, rows: np.ndarray | None = None) -> dict[str, float]:
        """Fractions of the rows (all, or a mask) that kept their identity, relaxed into
        another configuration, or are unmappable."""
        mask = np.ones(len(self.kept), bool) if rows is None else np.asarray(rows, bool)
        n = max(int(mask.sum()), 1)
        mapped = self.relaxed_into[mask] != UNMAPPABLE
        kept = self.kept[mask]
        return {
            "kept": float(kept.sum() / n),
            "other": float((mapped & ~kept).sum() / n),
            "unmappable": float((~mapped).sum() / n),
        }


    def end_spread(self, energies: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """The label spread of every shared end: for each configuration that two or more
        of the rows (all, or a mask) relaxed into, max - min of their energies (the
        energies' unit). A spread larger than the model error says the relaxed label is
        not a function of the configuration the relaxation ends in (different local minima
        of one configuration); an empty array when no end is shared."""
        mask = np.ones(len(self.kept), bool) if rows is None else np.asarray(rows, bool)
        mask &= (self.relaxed_into != UNMAPPABLE) & np.isfinite(energies)
        into, e = self.relaxed_into[mask], np.asarray(energies, float)[mask]
        order = np.lexsort((e, into))
        into, e = into[order], e[order]
        starts = np.flatnonzero(np.concatenate([[True], into[1:] != into[:-1]]))
        sizes = np.diff(np.append(starts, len(into)))
        shared = sizes > 1
        lows, highs = e[starts[shared]], e[(starts + sizes - 1)[shared]]
        return highs - lows


def shortest_site_distance(parent: Parent) -> float:
    """The shortest distance between two parent sites (minimum image), Angstrom."""
    d = parent.atoms.get_all_distances(mic=True)
    np.fill_diagonal(d, np.inf)
    return float(d.min())


def map_relaxations(
    parent: Parent,
    start_ids: np.ndarray,
    occupancy: np.ndarray,
    cells: np.ndarray,
    positions: np.ndarray,
    offsets: np.ndarray,
    tolerance: float = MAX_DISPLACEMENT,
    progress: Callable[[int, int], None] | None = None,
) -> RelaxationMap:
    """Identify every relaxed structure (row i: cell `cells[i]`, Cartesian `positions`
    rows offsets[i]:offsets[i+1] in the decorated atom order of `occupancy[i]`)."""
    from qcapprox.enumeration import Enumerator

    n = len(start_ids)
    found = np.full((n, parent.n_active), 255, dtype=np.uint8)
    displacement = np.full(n, np.nan)
    for i in range(n):
        if progress and i % 256 == 0:
            progress(i, n)
        xyz = positions[offsets[i] : offsets[i + 1]]
        if not (np.isfinite(xyz).all() and np.isfinite(cells[i]).all()):
            continue
        numbers = parent.decorate(occupancy[i]).numbers
        atoms = Atoms(numbers, positions=xyz, cell=cells[i], pbc=True)
        try:
            match = parent.match(atoms, max_displacement=np.inf)
        except IdentifyError:
            continue  # a non-active site empty or holding another element
        displacement[i] = match.max_displacement
        if match.max_displacement <= tolerance:
            found[i] = match.occupancy
    mapped = found[:, 0] != 255
    relaxed_into = np.full(n, UNMAPPABLE, dtype=np.int64)
    if mapped.any():
        relaxed_into[mapped] = Enumerator.from_parent(parent).config_ids(found[mapped])
    if progress:
        progress(n, n)
    return RelaxationMap(relaxed_into, relaxed_into == start_ids, displacement, tolerance)


def map_store(
    path: str | Path,
    tolerance: float = MAX_DISPLACEMENT,
    progress: Callable[[int, int], None] | None = None,
) -> RelaxationMap:
    """The relaxation map of a store's relaxed labels, from their stored relaxed cells and
    positions (no relaxation is repeated)."""
    from qcapprox.store import Store

    path = Path(path)
    store = Store(path)
    store.label_set("relaxed")
    with h5py.File(path, "r") as handle:
        group = handle["labels/relaxed"]
        missing = [k for k in ("cell", "positions", "atoms_offset") if k not in group]
        if missing:
            raise StoreError(
                f"{path}: labels/relaxed has no {', '.join(missing)}: nothing to map from"
            )
        cells, positions = group["cell"][:], group["positions"][:]
        offsets = group["atoms_offset"][:]
    if cells.shape != (len(store), 3, 3) or offsets.shape != (len(store) + 1,):
        raise StoreError(f"{path}: labels/relaxed cell or atoms_offset has the wrong shape")
    return map_relaxations(
        store.parent, store.ids, store.occupancy, cells, positions, offsets, tolerance, progress
    )


def write_mapping(group: h5py.Group, mapping: RelaxationMap) -> None:
    """Store a relaxation map in a labels/relaxed group (replacing one it has)."""
    values = (mapping.relaxed_into, mapping.kept, mapping.displacement)
    for key, value in zip(MAPPING_FIELDS, values, strict=True):
        if key in group:
            del group[key]
        group[key] = value
    group.attrs["mapping_tolerance"] = mapping.tolerance


def read_mapping(group: h5py.Group, n: int) -> RelaxationMap | None:
    """The relaxation map of a labels/relaxed group, None if it has none; checked."""
    if "relaxed_into" not in group:
        return None
    where = f"{group.file.filename}: labels/relaxed"
    arrays = []
    for key, kind in zip(MAPPING_FIELDS, "ibf", strict=True):
        dset = group.get(key)
        if not isinstance(dset, h5py.Dataset) or dset.shape != (n,) or dset.dtype.kind != kind:
            raise StoreError(f"{where}/{key} is missing or misshapen; run `qcapprox map` again")
        arrays.append(dset[:])
    return RelaxationMap(*arrays, tolerance=float(group.attrs.get("mapping_tolerance", np.nan)))


def apply_policy(
    policy: str,
    ids: np.ndarray,
    occupancy: np.ndarray,
    target: np.ndarray,
    usable: np.ndarray,
    mapping: RelaxationMap | None,
    path: Path,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The training rows of a label set under a mapping policy: (row index into the store,
    occupancy, target) of every training example.

    start: every usable row with its own occupancy. kept: the usable rows that kept their
    identity. relaxed-into: every usable mapped row, its target given to the configuration
    it relaxed into; when several rows land on one configuration, the lowest target wins
    (that row's index is returned).
    """
    if policy not in POLICIES:
        raise StoreError(f"unknown mapping policy {policy!r}: use one of {', '.join(POLICIES)}")
    rows = np.flatnonzero(usable)
    if policy == "start":
        return rows, occupancy[rows], target[rows]
    if mapping is None:
        raise StoreError(
            f"{path}: its relaxed labels carry no relaxation map, which --mapping {policy} "
            f"needs; run `qcapprox map {path}`"
        )
    if policy == "kept":
        rows = rows[mapping.kept[rows]]
        return rows, occupancy[rows], target[rows]
    rows = rows[mapping.relaxed_into[rows] != UNMAPPABLE]
    rows = rows[np.lexsort((rows, target[rows], mapping.relaxed_into[rows]))]
    into = mapping.relaxed_into[rows]
    first = np.concatenate([[True], into[1:] != into[:-1]])
    rows = np.sort(rows[first])
    return rows, decode_ids(mapping.relaxed_into[rows], occupancy.shape[1]), target[rows]


def decode_ids(ids: np.ndarray, n_active: int) -> np.ndarray:
    """Occupancies of stable ids (the base-3 digits, most significant first)."""
    powers = 3 ** np.arange(n_active - 1, -1, -1, dtype=np.int64)
    return ((np.asarray(ids, dtype=np.int64)[:, None] // powers) % 3).astype(np.uint8)
