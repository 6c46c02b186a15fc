"""The parent: the ideal Sc60M13 cell, its orbits, active sites and symmetry group.

A configuration is the parent plus an occupancy vector over the active sites
(0 = host Sc, 1 = dopant M, 2 = vacancy). The active sites are the atoms of the active
orbits (A4 then A5), each orbit in ascending atom index of the parent: for the bundled
models that is the Pm-3 6f then 6g atoms for A4 and the 12j then 12k atoms for A5, as
listed in `data/parents/sc60m13_sites.json`.

The bundled parents are CHGNet-relaxed *hypothetical* models (see data/parents/README.md),
symmetrized on load to their ideal space group Im-3 (No. 204) found by spglib at
symprec = 1e-3; the site permutation group then has 48 operations.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import spglib
from ase import Atoms
from ase.data import atomic_numbers, chemical_symbols
from ase.io import read
from ase.neighborlist import neighbor_list
from ase.spacegroup.symmetrize import refine_symmetry
from pymatgen.core import Element
from scipy.optimize import linear_sum_assignment

from qcapprox.errors import IdentifyError, ParentError
from qcapprox.paths import PARENTS_DIR
from qcapprox.symmetry import restrict, site_permutations, spglib_cell
from qcapprox.words import BUNDLED_DOPANTS, MAX_DISPLACEMENT

HOST = "Sc"
SC = 0
DOPANT = 1
VACANCY = 2
ACTIVE_ORBITS = ("A4", "A5")
DEFAULT_SYMPREC = 1e-3
#: Shortest distance (A) between two atoms of a parent. The shortest bonds of metals and
#: intermetallics are above 2 A (Be-Be 2.2 A; about 2.7 A in Sc60M13), so two atoms closer
#: than 1 A are one site written twice (e.g. a disordered site listed once per species)
#: or a mistyped coordinate, never a structure.
MIN_DISTANCE = 1.0
#: The space group of the parents of this project at symprec 1e-3: Im-3 (No. 204; 48
#: operations in the conventional cell). A parent found with another group has noisy
#: positions or is another structure (a Sc57M13-like Pm-3 parent is No. 200).
EXPECTED_SPACEGROUP = 204
#: Largest symmetrization tolerance (A). spglib takes positions within symprec as one: at
#: a third of the shortest Sc-Sc distance of Sc60M13 (2.7 A) distinct atoms begin to
#: merge, and from about 1.05 A on spglib's find_primitive crashes the interpreter
#: (segmentation fault) on these parents. 0.9 A symmetrizes positions with ~0.2 A noise.
MAX_SYMPREC = 0.9


@dataclass(frozen=True)
class Match:
    """Result of matching an Atoms object onto the parent.

    occupancy: the configuration (length n_active); site: the parent site of every atom;
    displacement: distance (Angstrom, in the parent cell) of every atom from its site.
    """

    occupancy: np.ndarray
    site: np.ndarray
    displacement: np.ndarray

    @property
    def max_displacement(self) -> float:
        """The largest displacement of an atom from its parent site, Angstrom."""
        return float(self.displacement.max(initial=0.0))


@dataclass(frozen=True, eq=False)
class Parent:
    """Parent structure with named orbits, active sites and its site permutation group.

    atoms: the symmetrized parent (host on the active sites); orbits: name -> atom indices;
    active_orbits: the names of the active orbits in order; permutations: (n_ops, n_atoms)
    with permutations[g, i] = image atom of atom i under operation g.
    """

    atoms: Atoms
    orbits: dict[str, np.ndarray]
    active_orbits: tuple[str, ...]
    dopant: str
    permutations: np.ndarray
    spacegroup: str
    symprec: float
    source: str
    host: str = HOST

    # ----------------------------------------------------------------- construction
    @classmethod
    def load(cls, dopant: str, symprec: float = DEFAULT_SYMPREC) -> Parent:
        """The bundled CHGNet-relaxed model of Sc60M13 for M in Pt, Pd, Ir, Rh."""
        if dopant not in BUNDLED_DOPANTS:
            raise ParentError(
                f"no bundled parent for {dopant!r} (bundled: {', '.join(BUNDLED_DOPANTS)}); "
                f"use Parent.for_dopant({dopant!r}) or Parent.from_cif(path, orbits=...)"
            )
        path = PARENTS_DIR / f"sc60m13_{dopant}.cif"
        sites = json.loads((PARENTS_DIR / "sc60m13_sites.json").read_text())["sc60m13"]
        orbits = {name: group["indices"] for name, group in sites["groups"].items()}
        return cls.from_cif(path, orbits, symprec=symprec, names=_bundled_names(sites))

    @classmethod
    def for_dopant(cls, dopant: str, symprec: float = DEFAULT_SYMPREC) -> Parent:
        """A parent for any metal: substitute it into the bundled model nearest in radius.

        The nearest bundled dopant R minimises |r(M) - r(R)| of the metallic radii
        (pymatgen). The lattice is scaled so that the cell volume follows the atomic
        volumes, a' = a (120 r_Sc^3 + 26 r_M^3)^(1/3) / (120 r_Sc^3 + 26 r_R^3)^(1/3).
        The geometry is unrelaxed: a warning says so.
        """
        if dopant in BUNDLED_DOPANTS:
            return cls.load(dopant, symprec)
        radius = _metallic_radius(dopant)
        nearest = min(BUNDLED_DOPANTS, key=lambda m: abs(_metallic_radius(m) - radius))
        base = cls.load(nearest, symprec)
        r_sc, r_ref = _metallic_radius(HOST), _metallic_radius(nearest)
        n_host = int((base.atoms.numbers == atomic_numbers[HOST]).sum())
        n_dop = len(base.atoms) - n_host
        scale = (
            (n_host * r_sc**3 + n_dop * radius**3) / (n_host * r_sc**3 + n_dop * r_ref**3)
        ) ** (1 / 3)
        atoms = base.atoms.copy()
        atoms.numbers[atoms.numbers == atomic_numbers[nearest]] = atomic_numbers[dopant]
        atoms.set_cell(atoms.cell * scale, scale_atoms=True)
        warnings.warn(
            f"Sc60{dopant}13 parent is the {nearest} model with {dopant} substituted and the "
            f"lattice scaled by {scale:.4f} (metallic radii): the geometry is unrelaxed",
            stacklevel=2,
        )
        return cls(
            atoms=atoms,
            orbits=base.orbits,
            active_orbits=base.active_orbits,
            dopant=dopant,
            permutations=base.permutations,
            spacegroup=base.spacegroup,
            symprec=symprec,
            source=f"{base.source}; {nearest}->{dopant} substituted, a scaled by {scale:.6f}",
        )

    @classmethod
    def from_cif(
        cls,
        path: str | Path,
        orbits: Mapping[str, Sequence[int] | str],
        symprec: float = DEFAULT_SYMPREC,
        names: Mapping[int, str] | None = None,
        active: Sequence[str] = ACTIVE_ORBITS,
        spacegroup: int | None = EXPECTED_SPACEGROUP,
    ) -> Parent:
        """Load a parent from a CIF (e.g. the experimental structure).

        `orbits` maps each active orbit name (A4, A5) to its atom indices (0-based, CIF
        order) or to an unambiguous Wyckoff label such as "12e" of the symmetrized
        structure. The structure must hold Sc and one metal M, no two atoms closer than
        MIN_DISTANCE (1 A). It is symmetrized at `symprec` (A) and must then have the space
        group `spacegroup` (default Im-3, No. 204; None accepts whatever spglib finds):
        positions with noise of a few tenths of an A fall to P1 at the default symprec,
        and a parent with one operation instead of 48 would make every configuration
        its own orbit. Pass a larger `symprec` (about four times the noise, at most
        MAX_SYMPREC = 0.9 A) to symmetrize such a structure, or name its group. The active
        orbits must be host sites and closed under the space group.
        """
        path = Path(path)
        try:
            atoms = read(path)
        except Exception as err:
            raise ParentError(f"{path}: cannot read the CIF ({err})") from err
        return cls.from_atoms(atoms, orbits, symprec, names, active, str(path), spacegroup)

    @classmethod
    def from_atoms(
        cls,
        atoms: Atoms,
        orbits: Mapping[str, Sequence[int] | str],
        symprec: float = DEFAULT_SYMPREC,
        names: Mapping[int, str] | None = None,
        active: Sequence[str] = ACTIVE_ORBITS,
        source: str = "Atoms",
        spacegroup: int | None = EXPECTED_SPACEGROUP,
    ) -> Parent:
        """Build a parent from Atoms; see `from_cif`."""
        elements = sorted(set(atoms.get_chemical_symbols()))
        others = [e for e in elements if e != HOST]
        if HOST not in elements or len(others) != 1:
            raise ParentError(
                f"{source}: a parent holds Sc and exactly one dopant metal, found {elements}"
            )
        if not Element(others[0]).is_metal:
            raise ParentError(
                f"{source}: the dopant {others[0]} is not a metal: M of Sc60M13 is a metal "
                "(e.g. Pt, Pd, Ir, Rh); give a structure with a metal on the M sites"
            )
        missing = [name for name in active if name not in orbits]
        if missing:
            raise ParentError(
                f"{source}: orbit(s) {missing} not given; pass orbits={{'A4': ..., 'A5': ...}}"
            )
        if not 0 < symprec <= MAX_SYMPREC:
            raise ParentError(
                f"{source}: symprec={symprec} is outside 0 < symprec <= {MAX_SYMPREC} A: a "
                "tolerance is the largest distance at which two positions count as one; use "
                f"{DEFAULT_SYMPREC} for a clean structure, up to {MAX_SYMPREC} for noisy positions"
            )
        if spacegroup is not None and spacegroup not in range(1, 231):
            raise ParentError(
                f"{source}: spacegroup={spacegroup!r} is not a space group number (1..230)"
            )
        atoms = _clean(atoms)
        atoms.pbc = True
        _check_distances(atoms, source)
        try:
            refine_symmetry(atoms, symprec=symprec)
        except Exception as err:
            raise ParentError(
                f"{source}: symmetrization at symprec={symprec} failed: {err}"
            ) from err
        perms, found = site_permutations(atoms, symprec=1e-5)
        dataset = spglib.get_symmetry_dataset(spglib_cell(atoms), symprec=1e-5)
        if spacegroup is not None and dataset.number != spacegroup:
            name, n_ops = _spacegroup_type(spacegroup)
            raise ParentError(
                f"{source}: at symprec={symprec} the structure is {found} with {len(perms)} "
                f"operation(s), not the expected {name} with {n_ops} (conventional cell): "
                "noisy positions (or another structure); pass a larger symprec (about four "
                f"times the noise, A, at most {MAX_SYMPREC}) to symmetrize it, or name its group: "
                f"spacegroup={dataset.number} (spacegroup=None accepts any)"
            )
        equivalent = perms.min(axis=0)  # smallest atom index of each atom's orbit
        wyckoffs = dataset.wyckoffs
        resolved: dict[str, np.ndarray] = {}
        for name in active:
            sites = _resolve_orbit(name, orbits[name], equivalent, wyckoffs, atoms, source)
            bad = [i for i in sites if atoms[i].symbol != HOST]
            if bad:
                raise ParentError(
                    f"{source}: active orbit {name} must hold host Sc, atom {bad[0]} is "
                    f"{atoms[bad[0]].symbol}"
                )
            resolved[name] = sites
        active_sites = np.concatenate([resolved[n] for n in active])
        if len(set(active_sites)) != len(active_sites):
            raise ParentError(f"{source}: active orbits {list(active)} overlap")
        for name in active:
            restrict(perms, resolved[name])  # raises unless closed under the group
        for rep in np.unique(equivalent):
            if rep in active_sites:
                continue
            sites = np.flatnonzero(equivalent == rep)
            label = (names or {}).get(int(rep), f"{atoms[rep].symbol}")
            resolved[f"{label}_{len(sites)}{wyckoffs[rep]}"] = sites
        return cls(
            atoms=atoms,
            orbits=resolved,
            active_orbits=tuple(active),
            dopant=others[0],
            permutations=perms,
            spacegroup=found,
            symprec=symprec,
            source=source,
        )

    # ----------------------------------------------------------------- structure
    @cached_property
    def active(self) -> np.ndarray:
        """The active atom indices: A4 first, then A5."""
        return np.concatenate([self.orbits[n] for n in self.active_orbits])

    @cached_property
    def orbit_slices(self) -> dict[str, slice]:
        """Where each active orbit sits in the occupancy vector."""
        slices, start = {}, 0
        for name in self.active_orbits:
            slices[name] = slice(start, start + len(self.orbits[name]))
            start += len(self.orbits[name])
        return slices

    @cached_property
    def group(self) -> np.ndarray:
        """(n_ops, n_active) permutations of the active sites, as occupancy positions."""
        return restrict(self.permutations, self.active)

    @cached_property
    def orbit_of_atom(self) -> np.ndarray:
        """The orbit name of every parent atom."""
        labels = np.empty(len(self.atoms), dtype=object)
        for name, sites in self.orbits.items():
            labels[sites] = name
        return labels

    @property
    def n_active(self) -> int:
        """Number of active sites (36 for Sc60M13)."""
        return len(self.active)

    # ----------------------------------------------------------------- configurations
    def check_occupancy(self, occupancy: np.ndarray) -> np.ndarray:
        """Validate an occupancy vector (codes 0 Sc, 1 M, 2 vacancy over the active sites)."""
        occ = np.asarray(occupancy)
        if occ.shape != (self.n_active,):
            raise ValueError(f"occupancy has shape {occ.shape}, expected ({self.n_active},)")
        if occ.min(initial=0) < 0 or occ.max(initial=0) > VACANCY:
            raise ValueError("occupancy codes are 0 (Sc), 1 (M) and 2 (vacancy)")
        return occ.astype(np.uint8)

    def known_phase(self) -> np.ndarray:
        """Occupancy of the known Sc57M13 phase: the Pm-3 6f half of A4 vacant, i.e. the first
        six A4 sites of the bundled parents' active order (6f then 6g); the rest as in the
        parent. For a parent of your own, check it with `identify` on a Sc57M13 structure."""
        occupancy = np.zeros(self.n_active, dtype=np.uint8)
        occupancy[self.orbit_slices["A4"].start : self.orbit_slices["A4"].start + 6] = VACANCY
        return occupancy

    def decorate(self, occupancy: np.ndarray) -> Atoms:
        """The Atoms of a configuration: dopant substituted, vacancies removed.

        Atom order is the parent's with the vacant sites left out. The Atoms are clean:
        numbers, positions, cell and pbc only (no CIF-reader arrays or info, which would
        describe the parent, not this configuration, and travel into every file written).
        """
        occ = self.check_occupancy(occupancy)
        atoms = _clean(self.atoms)
        atoms.numbers[self.active[occ == DOPANT]] = atomic_numbers[self.dopant]
        del atoms[self.active[occ == VACANCY]]
        return atoms

    def match(self, atoms: Atoms, max_displacement: float = MAX_DISPLACEMENT) -> Match:
        """Match any decoration of the parent (any atom order, relaxed or not) to its sites.

        Atoms are assigned to parent sites by an optimal assignment (Hungarian algorithm)
        that minimises the sum of squared minimum-image distances in the parent cell
        (fractional coordinates are mapped into the parent cell, so a strained cell is
        fine); a rigid shift is removed first. Then every atom must carry its site's element
        or sit on an active site, and only active sites may be empty.
        """
        allowed = {self.host, self.dopant}
        for i, symbol in enumerate(atoms.get_chemical_symbols()):
            if symbol not in allowed:
                raise IdentifyError(
                    f"atom {i} is {symbol}: the parent Sc60{self.dopant}13 allows only "
                    f"{sorted(allowed)}"
                )
        if len(atoms) > len(self.atoms) or len(atoms) == 0:
            raise IdentifyError(
                f"{len(atoms)} atoms cannot decorate a parent of {len(self.atoms)} sites"
            )
        if atoms.cell.rank < 3:
            raise IdentifyError("the atoms have no 3-D cell: a decoration of the parent needs one")
        bad = np.flatnonzero(~np.isfinite(atoms.positions).all(axis=1))
        if len(bad):
            raise IdentifyError(
                f"atom {bad[0]} has a non-finite position {atoms.positions[bad[0]]}"
            )
        cell = np.asarray(self.atoms.cell[:])
        parent_frac = self.atoms.get_scaled_positions(wrap=True)
        frac = atoms.cell.scaled_positions(atoms.positions) % 1.0
        diff = frac[:, None, :] - parent_frac[None, :, :]
        diff -= np.round(diff)
        dist2 = ((diff @ cell) ** 2).sum(-1)
        rows, cols = linear_sum_assignment(dist2)
        shift = diff[rows, cols].mean(axis=0)
        diff = frac[:, None, :] - shift - parent_frac[None, :, :]
        diff -= np.round(diff)
        dist2 = ((diff @ cell) ** 2).sum(-1)
        rows, site = linear_sum_assignment(dist2)  # rows = 0..n-1 since n_atoms <= n_sites
        displacement = np.sqrt(dist2[rows, site])
        is_active = np.zeros(len(self.atoms), dtype=bool)
        is_active[self.active] = True
        compatible = is_active[site] | (atoms.numbers == self.atoms.numbers[site])
        for i in np.flatnonzero(~compatible):
            j = site[i]
            raise IdentifyError(
                f"atom {i} ({atoms[i].symbol}) sits on site {j} of orbit "
                f"{self.orbit_of_atom[j]}, which holds {self.atoms[j].symbol} and is not "
                "active: wrong element on a non-active site"
            )
        worst = int(displacement.argmax())
        if displacement[worst] > max_displacement:
            nearest = int(dist2[worst].argmin())
            raise IdentifyError(
                f"atom {worst} ({atoms[worst].symbol}) matches no parent site: it lies "
                f"{np.sqrt(dist2[worst, nearest]):.2f} A from the nearest site {nearest} "
                f"(orbit {self.orbit_of_atom[nearest]}) and {displacement[worst]:.2f} A from "
                f"its assigned site (limit {max_displacement} A)"
            )
        empty = np.setdiff1d(np.arange(len(self.atoms)), site)
        for j in empty:
            if not is_active[j]:
                raise IdentifyError(
                    f"site {j} of orbit {self.orbit_of_atom[j]} is empty: vacancies are only "
                    f"allowed on the active orbits {list(self.active_orbits)}"
                )
        occupancy = np.full(len(self.atoms), VACANCY, dtype=np.uint8)
        occupancy[site] = np.where(atoms.numbers == atomic_numbers[self.host], SC, DOPANT)
        return Match(occupancy[self.active], site, displacement)

    def identify(self, atoms: Atoms, max_displacement: float = MAX_DISPLACEMENT) -> np.ndarray:
        """The occupancy of a decoration of the parent: the inverse of `decorate`."""
        return self.match(atoms, max_displacement).occupancy

    def composition(self, occupancy: np.ndarray) -> np.ndarray:
        """Counts (vacancies, dopants) per active orbit: (A4 vac, A4 M, A5 vac, A5 M)."""
        occ = np.atleast_2d(occupancy)
        counts = [
            ((occ[:, sl] == code).sum(axis=1))
            for sl in self.orbit_slices.values()
            for code in (VACANCY, DOPANT)
        ]
        return np.stack(counts, axis=1).squeeze()

    def formula_counts(self, occupancy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Numbers of host and dopant atoms of configurations (vacancies are absent)."""
        occ = np.atleast_2d(occupancy)
        base_host = int((self.atoms.numbers == atomic_numbers[self.host]).sum())
        base_dop = len(self.atoms) - base_host
        n_dop = base_dop + (occ == DOPANT).sum(axis=1)
        n_host = base_host - (occ != SC).sum(axis=1)
        return n_host, n_dop


def _clean(atoms: Atoms) -> Atoms:
    """A copy with numbers, positions, cell and pbc only: no arrays or info left by a
    reader (the CIF reader's `spacegroup_kinds`, `occupancy`, `spacegroup`, ...)."""
    return Atoms(numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)


def _check_distances(atoms: Atoms, source: str) -> None:
    """Refuse two atoms (periodic images included) closer than MIN_DISTANCE, naming them."""
    first, second, distance = neighbor_list("ijd", atoms, MIN_DISTANCE)
    if len(distance) == 0:
        return
    k = int(distance.argmin())
    i, j = sorted((int(first[k]), int(second[k])))
    symbols = atoms.get_chemical_symbols()
    pair = (
        f"atom {i} ({symbols[i]}) and its periodic image"
        if i == j
        else f"atoms {i} ({symbols[i]}) and {j} ({symbols[j]})"
    )
    raise ParentError(
        f"{source}: {pair} are {distance[k]:.2f} A apart, closer than {MIN_DISTANCE} A: a "
        "site written twice or a mistyped coordinate; remove the duplicate or correct it"
    )


def _spacegroup_type(number: int) -> tuple[str, int]:
    """'Im-3 (204)' and the number of operations (48) of a space group (1..230) in its
    standard conventional setting (spglib's first Hall setting of that number)."""
    hall = next(h for h in range(1, 531) if spglib.get_spacegroup_type(h).number == number)
    n_ops = len(spglib.get_symmetry_from_database(hall)["rotations"])
    return f"{spglib.get_spacegroup_type(hall).international_short} ({number})", n_ops


def _metallic_radius(symbol: str) -> float:
    if symbol not in chemical_symbols[1:]:
        raise ParentError(f"{symbol!r} is not an element symbol")
    radius = Element(symbol).metallic_radius
    if not radius or not Element(symbol).is_metal:
        raise ParentError(f"{symbol} has no metallic radius: it cannot replace M in Sc60M13")
    return float(radius)


def _bundled_names(sites: dict) -> dict[int, str]:
    """Orbit families of the bundled models by first atom index: 'ico_inner_1a' -> 'ico_inner'."""
    names = {}
    for orbit in sites["orbits"]:
        family = re.sub(r"_1[ab]", "", orbit["label"])
        family = re.sub(r"_\d+[a-z]$", "", family)
        names[orbit["indices"][0]] = family
    return names


def _resolve_orbit(
    name: str,
    spec: Sequence[int] | str,
    equivalent: np.ndarray,
    wyckoffs: Sequence[str],
    atoms: Atoms,
    source: str,
) -> np.ndarray:
    """Atom indices of an orbit given as indices or as a Wyckoff label like '12e'."""
    if isinstance(spec, str):
        match = re.fullmatch(r"(\d+)([a-zA-Z])", spec.strip())
        if not match:
            raise ParentError(f"{source}: orbit {name}: {spec!r} is not a Wyckoff label like 12e")
        mult, letter = int(match[1]), match[2]
        candidates = [
            rep
            for rep in np.unique(equivalent)
            if wyckoffs[rep] == letter
            and (equivalent == rep).sum() == mult
            and atoms[rep].symbol == HOST
        ]
        if len(candidates) != 1:
            raise ParentError(
                f"{source}: orbit {name}: Wyckoff {spec} matches {len(candidates)} Sc orbits "
                f"(first atoms {[int(c) for c in candidates]}); give the atom indices instead"
            )
        return np.flatnonzero(equivalent == candidates[0])
    sites = np.asarray(sorted(int(i) for i in spec))
    if len(sites) == 0 or sites.min() < 0 or sites.max() >= len(atoms):
        raise ParentError(f"{source}: orbit {name}: atom indices out of range 0..{len(atoms) - 1}")
    whole = np.flatnonzero(np.isin(equivalent, equivalent[sites]))
    if len(whole) != len(sites):
        raise ParentError(
            f"{source}: orbit {name} is not closed under the space group: its atoms "
            f"{sites.tolist()} belong to orbits of {len(whole)} atoms"
        )
    return sites
