"""References, formation energy and energy above the convex hull of a Sc-M binary.

A configuration of the parent holds ``n_Sc`` host atoms and ``n_M`` dopant atoms; vacancies
are absent atoms and count nowhere. With ``e_Sc`` and ``e_M`` the energies per atom of the
elemental references (hcp Sc; M in its own ground state, e.g. fcc Pt, hcp Os), the formation
energy per atom (eq. 1) is

    E_f = (E_total - n_Sc e_Sc - n_M e_M) / (n_Sc + n_M)                        [eV/atom]

and the energy above the hull (eq. 2) is

    E_hull = E_f - H(x_M),    x_M = n_M / (n_Sc + n_M),

where ``H`` is the lower convex hull of the formation energies of the reference (competing)
phases: the piecewise-linear function through the stable phases, ``H(0) = H(1) = 0``.
``E_hull < 0`` means below the hull, i.e. predicted stable against the references.
Both maps are affine in ``E_total`` at fixed counts, so they invert exactly:

    E_total = (n_Sc + n_M) (E_hull + H(x_M)) + n_Sc e_Sc + n_M e_M.

The hull itself is pymatgen's :class:`~pymatgen.analysis.phase_diagram.PhaseDiagram` over
:class:`~pymatgen.analysis.phase_diagram.PDEntry` objects with raw total energies (no
corrections); ``H`` is evaluated with ``np.interp`` over its stable entries sorted by ``x_M``.

Example::

    hull = Hull.load("Pt")                       # data/references/Sc-Pt.json (bundled)
    hull.e_above_hull(-6.7568 * 146, 120, 26)    # eV/atom, the ideal Sc60Pt13 model
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram
from pymatgen.core import Composition, Element

from qcapprox.errors import HullError
from qcapprox.parent import HOST
from qcapprox.paths import DATA_DIR, user_or_bundled, user_references_dir

__all__ = ["REFERENCES_DIR", "REFERENCE_SETS", "Hull", "dopant_symbol", "reference_path"]

REFERENCES_DIR = DATA_DIR / "references"  # the bundled sets (Pt, Pd, Ir, Rh)

#: The reference sets a hull can be built on, by the `kind` of each phase in the reference
#: file: `full` (every phase: the elements, the reported types of Sc-M, structure types of
#: analogue rare-earth/Sc binaries and hypothetical prototypes; the default) and `reported`
#: (the elements and the types reported for this binary only). Labels and models use the
#: full set; `Hull.rebase` gives an energy above the hull against another.
REFERENCE_SETS: dict[str, tuple[str, ...] | None] = {
    "full": None,
    "reported": ("element", "reported type"),
}
DEFAULT_REFERENCES = "full"

#: A phase's composition: a formula ("Sc2Pt"), a mapping {"Sc": 2, "Pt": 1} or (n_host, n_dopant).
CountsLike = str | Mapping[str, float] | Sequence[float]


def reference_path(dopant: str) -> Path:
    """Default reference file of a dopant: ``Sc-<M>.json`` in the user data directory
    (built by `qcapprox references`) if there is one, else the bundled one
    (``data/references/``); the user's path if neither exists."""
    name = f"{HOST}-{dopant_symbol(dopant)}.json"
    return user_or_bundled(user_references_dir() / name, REFERENCES_DIR / name)


def dopant_symbol(dopant: str) -> str:
    """The element symbol of a dopant (capitalized), refused if not an element or Sc."""
    symbol = str(dopant).strip().capitalize()
    if not Element.is_valid_symbol(symbol):
        raise HullError(f"dopant {dopant!r} is not an element symbol (e.g. 'Pt', 'Pd', 'Ir')")
    if symbol == HOST:
        raise HullError(f"dopant {dopant!r} is the host element {HOST}; choose another metal")
    return symbol


def _counts_of(spec: CountsLike, dopant: str, where: str) -> tuple[float, float]:
    """(n_host, n_dopant) of a formula, a mapping or a pair; ``where`` names the phase."""
    if isinstance(spec, str):
        try:
            spec = Composition(spec)
        except Exception as exc:  # pymatgen raises several types for bad formulas
            raise HullError(f"{where}: cannot parse formula {spec!r} ({exc})") from exc
    if isinstance(spec, Mapping):
        amounts = {str(el): float(n) for el, n in spec.items()}
        foreign = sorted(set(amounts) - {HOST, dopant})
        if foreign:
            raise HullError(
                f"{where}: contains {', '.join(foreign)}; a Sc-{dopant} hull takes only "
                f"{HOST} and {dopant}"
            )
        n_host, n_dopant = amounts.get(HOST, 0.0), amounts.get(dopant, 0.0)
    else:
        try:
            n_host, n_dopant = (float(n) for n in spec)
        except (TypeError, ValueError) as exc:
            raise HullError(
                f"{where}: composition {spec!r} is neither a formula, a mapping nor "
                "a pair (n_host, n_dopant)"
            ) from exc
    if not (math.isfinite(n_host) and math.isfinite(n_dopant)) or min(n_host, n_dopant) < 0:
        raise HullError(
            f"{where}: atom counts must be finite and >= 0, got "
            f"n_{HOST}={n_host}, n_{dopant}={n_dopant}"
        )
    if n_host + n_dopant <= 0:
        raise HullError(f"{where}: has no atoms")
    return n_host, n_dopant


def _result(value: np.ndarray, *inputs: npt.ArrayLike) -> float | np.ndarray:
    """A Python float when every input was a scalar, the array otherwise."""
    if all(np.ndim(a) == 0 for a in inputs):
        return float(value)
    return value


class Hull:
    """The convex hull of the Sc-M reference phases, and the conversions of eqs. 1 and 2.

    Attributes:
        dopant, host: element symbols (host is always ``"Sc"``).
        e_host, e_dopant: energies per atom of the elemental references, eV/atom (the lowest
            elemental phase of each element, as pymatgen chooses them).
        phase_diagram: the pymatgen ``PhaseDiagram``.
        stable_names, stable_x, stable_e_form: the vertices of the lower hull, sorted by
            ``x_M`` (from 0 to 1), with their formation energies in eV/atom.
        source: the reference file, or ``"<entries>"``.
    """

    host: str = HOST

    def __init__(
        self,
        dopant: str,
        phases: Mapping[str, tuple[float, float, float]],
        source: str = "<entries>",
        references: str = DEFAULT_REFERENCES,
    ) -> None:
        """Build from ``{name: (n_host, n_dopant, total_energy)}``; see :meth:`load` and
        :meth:`from_entries` for the usual ways in. ``references`` names the set."""
        self.dopant = dopant_symbol(dopant)
        self.source = source
        self.references = references
        if not phases:
            raise HullError(f"{source}: no reference phases")
        self._names = list(phases)
        table = np.array([phases[n] for n in self._names], dtype=float).reshape(-1, 3)
        self._n_host, self._n_dopant, self._energy = table.T
        bad = [n for n, e in zip(self._names, self._energy, strict=True) if not math.isfinite(e)]
        if bad:
            raise HullError(f"{source}: phase(s) {', '.join(bad)} have no finite energy")
        for element, counts in ((HOST, self._n_dopant), (self.dopant, self._n_host)):
            if not np.any(counts == 0):
                raise HullError(
                    f"{source}: no elemental {element} phase; the formation energy of eq. 1 "
                    f"needs one (add e.g. the {element} ground state to the references)"
                )

        elements = [Element(HOST), Element(self.dopant)]
        rows = zip(self._names, self._n_host, self._n_dopant, self._energy, strict=True)
        self._entries = [
            PDEntry(Composition({HOST: nh, self.dopant: nd}), float(e), name=name)
            for name, nh, nd, e in rows
        ]
        self.phase_diagram = PhaseDiagram(self._entries, elements=elements)
        self.e_host = float(self.phase_diagram.el_refs[elements[0]].energy_per_atom)
        self.e_dopant = float(self.phase_diagram.el_refs[elements[1]].energy_per_atom)

        stable = sorted(
            self.phase_diagram.stable_entries,
            key=lambda entry: (entry.composition.get_atomic_fraction(elements[1]), entry.name),
        )
        x = np.array([e.composition.get_atomic_fraction(elements[1]) for e in stable])
        e_form = np.array([self.phase_diagram.get_form_energy_per_atom(e) for e in stable])
        keep = np.concatenate([[True], np.diff(x) > 0])  # one vertex per composition
        self.stable_names: tuple[str, ...] = tuple(
            e.name for e, k in zip(stable, keep, strict=True) if k
        )
        self.stable_x: np.ndarray = x[keep]
        self.stable_e_form: np.ndarray = e_form[keep]

    # ------------------------------------------------------------------ construction
    @classmethod
    def load(
        cls, dopant: str, path: Path | str | None = None, references: str = DEFAULT_REFERENCES
    ) -> Hull:
        """Read the references of one dopant, by default :func:`reference_path` (user-built,
        else bundled), keeping the phases of the reference set ``references``
        (`REFERENCE_SETS`: by each phase's ``kind``).

        ``path`` may be the file or the directory holding ``Sc-<M>.json``. The file has
        ``dopant`` and ``phases``; each phase has ``name``, ``formula`` and ``energy`` (total,
        eV) and optionally ``n_atoms`` and ``e_per_atom``, which are checked for consistency.
        """
        symbol = dopant_symbol(dopant)
        if references not in REFERENCE_SETS:
            raise HullError(
                f"unknown reference set {references!r}: use one of {', '.join(REFERENCE_SETS)}"
            )
        kinds = REFERENCE_SETS[references]
        if path is None:
            path = reference_path(symbol)
        path = Path(path)
        if path.is_dir():
            path = path / f"{HOST}-{symbol}.json"
        if not path.is_file():
            raise HullError(
                f"no reference file for dopant {symbol}: {path} does not exist; build it with "
                f"`qcapprox references --dopant {symbol}` or pass path= to Hull.load"
            )
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise HullError(f"{path}: not a readable JSON reference file ({exc})") from exc
        if not isinstance(data, dict) or not isinstance(data.get("phases"), list):
            raise HullError(f"{path}: has no 'phases' list")
        if data.get("dopant", symbol) != symbol:
            raise HullError(f"{path}: holds dopant {data['dopant']!r}, not {symbol!r}")

        phases: dict[str, tuple[float, float, float]] = {}
        for i, phase in enumerate(data["phases"]):
            where = f"{path}: phase {phase.get('name', f'#{i}')!r}"
            missing = [k for k in ("name", "formula", "energy") if k not in phase]
            if missing:
                raise HullError(f"{where}: lacks {', '.join(missing)}")
            if phase["name"] in phases:
                raise HullError(f"{where}: duplicate phase name")
            n_host, n_dopant = _counts_of(phase["formula"], symbol, where)
            n_atoms, energy = n_host + n_dopant, float(phase["energy"])
            if "n_atoms" in phase and not math.isclose(n_atoms, phase["n_atoms"]):
                raise HullError(
                    f"{where}: formula {phase['formula']} has {n_atoms:g} atoms, "
                    f"n_atoms says {phase['n_atoms']}"
                )
            if "e_per_atom" in phase and not math.isclose(
                energy / n_atoms, phase["e_per_atom"], rel_tol=0, abs_tol=1e-6
            ):
                raise HullError(
                    f"{where}: energy / n_atoms = {energy / n_atoms:.6f} eV/atom "
                    f"disagrees with e_per_atom = {phase['e_per_atom']}"
                )
            if kinds is None or phase.get("kind") in kinds:
                phases[phase["name"]] = (n_host, n_dopant, energy)
        return cls(symbol, phases, source=str(path), references=references)

    @classmethod
    def from_entries(
        cls,
        dopant: str,
        entries: Mapping[str, tuple[CountsLike, float]],
        source: str = "<entries>",
    ) -> Hull:
        """Build from your own data: ``{name: (composition, total_energy_eV)}``.

        A composition is a formula (``"Sc2Pt"``), a mapping (``{"Sc": 2, "Pt": 1}``) or a
        pair ``(n_host, n_dopant)``. Both elemental phases must be present.
        """
        symbol = dopant_symbol(dopant)
        phases: dict[str, tuple[float, float, float]] = {}
        for name, item in entries.items():
            where = f"{source}: phase {name!r}"
            try:
                spec, energy = item
            except (TypeError, ValueError) as exc:
                raise HullError(f"{where}: expected (composition, total_energy)") from exc
            n_host, n_dopant = _counts_of(spec, symbol, where)
            phases[str(name)] = (n_host, n_dopant, float(energy))
        return cls(symbol, phases, source=source)

    # ------------------------------------------------------------------ information
    @property
    def phase_names(self) -> tuple[str, ...]:
        """Names of all reference phases, in input order."""
        return tuple(self._names)

    @property
    def stable_points(self) -> np.ndarray:
        """The hull vertices as an array of rows (x_M, E_f), sorted by x_M."""
        return np.column_stack([self.stable_x, self.stable_e_form])

    def __repr__(self) -> str:
        return (
            f"Hull(dopant={self.dopant!r}, phases={len(self._names)}, "
            f"stable={list(self.stable_names)}, source={self.source!r})"
        )

    # ------------------------------------------------------------------ conversions
    def _counts(
        self, n_host: npt.ArrayLike, n_dopant: npt.ArrayLike
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Validated float arrays n_host, n_dopant and n = n_host + n_dopant."""
        nh = np.asarray(n_host, dtype=float)
        nd = np.asarray(n_dopant, dtype=float)
        for label, arr in ((f"n_host ({HOST})", nh), (f"n_dopant ({self.dopant})", nd)):
            bad = ~np.isfinite(arr) | (arr < 0)
            if np.any(bad):
                where = np.argwhere(np.atleast_1d(bad)).ravel()[:5].tolist()
                raise HullError(
                    f"{label} must be finite and >= 0; bad at index {where} "
                    f"(values {np.atleast_1d(arr)[where].tolist()})"
                )
        n = nh + nd
        if np.any(n <= 0):
            where = np.argwhere(np.atleast_1d(n <= 0)).ravel()[:5].tolist()
            raise HullError(
                f"configuration(s) with no atoms (n_host + n_dopant = 0) at index {where}"
            )
        return nh, nd, n

    def x_dopant(self, n_host: npt.ArrayLike, n_dopant: npt.ArrayLike) -> float | np.ndarray:
        """Dopant fraction x_M = n_M / (n_Sc + n_M)."""
        _, nd, n = self._counts(n_host, n_dopant)
        return _result(nd / n, n_host, n_dopant)

    def formation_energy(
        self, energy: npt.ArrayLike, n_host: npt.ArrayLike, n_dopant: npt.ArrayLike
    ) -> float | np.ndarray:
        """Eq. 1: E_f = (E - n_Sc e_Sc - n_M e_M) / (n_Sc + n_M), eV/atom (broadcasting)."""
        nh, nd, n = self._counts(n_host, n_dopant)
        e = np.asarray(energy, dtype=float)
        return _result((e - nh * self.e_host - nd * self.e_dopant) / n, energy, n_host, n_dopant)

    def energy_from_formation(
        self, e_form: npt.ArrayLike, n_host: npt.ArrayLike, n_dopant: npt.ArrayLike
    ) -> float | np.ndarray:
        """Inverse of eq. 1: E = (n_Sc + n_M) E_f + n_Sc e_Sc + n_M e_M, eV (total)."""
        nh, nd, n = self._counts(n_host, n_dopant)
        ef = np.asarray(e_form, dtype=float)
        return _result(n * ef + nh * self.e_host + nd * self.e_dopant, e_form, n_host, n_dopant)

    def hull_energy(self, x_dopant: npt.ArrayLike) -> float | np.ndarray:
        """H(x_M): the lower-hull formation energy at dopant fraction x_M in [0, 1], eV/atom.

        Piecewise-linear interpolation between the stable phases (np.interp).
        """
        x = np.asarray(x_dopant, dtype=float)
        bad = ~np.isfinite(x) | (x < -1e-12) | (x > 1 + 1e-12)
        if np.any(bad):
            raise HullError(
                f"dopant fraction must lie in [0, 1]; got "
                f"{np.atleast_1d(x)[np.atleast_1d(bad)][:5].tolist()}"
            )
        return _result(np.interp(x, self.stable_x, self.stable_e_form), x_dopant)

    def e_above_hull(
        self, energy: npt.ArrayLike, n_host: npt.ArrayLike, n_dopant: npt.ArrayLike
    ) -> float | np.ndarray:
        """Eq. 2: E_f - H(x_M), eV/atom; negative = below the hull."""
        nh, nd, n = self._counts(n_host, n_dopant)
        e_form = (np.asarray(energy, dtype=float) - nh * self.e_host - nd * self.e_dopant) / n
        value = e_form - np.interp(nd / n, self.stable_x, self.stable_e_form)
        return _result(value, energy, n_host, n_dopant)

    def energy_from_e_above_hull(
        self, e_hull: npt.ArrayLike, n_host: npt.ArrayLike, n_dopant: npt.ArrayLike
    ) -> float | np.ndarray:
        """Inverse of eq. 2: E = (n_Sc + n_M) (E_hull + H(x_M)) + n_Sc e_Sc + n_M e_M, eV."""
        nh, nd, n = self._counts(n_host, n_dopant)
        e_form = np.asarray(e_hull, dtype=float) + np.interp(
            nd / n, self.stable_x, self.stable_e_form
        )
        value = n * e_form + nh * self.e_host + nd * self.e_dopant
        return _result(value, e_hull, n_host, n_dopant)

    def rebase(
        self,
        e_above_hull: npt.ArrayLike,
        n_host: npt.ArrayLike,
        n_dopant: npt.ArrayLike,
        other: Hull,
    ) -> float | np.ndarray:
        """Energies above this hull as energies above `other` (another reference set of the
        same dopant and elemental energies): E_f is the same, so E_hull' = E_hull + H(x) -
        H'(x)."""
        if (
            other.dopant != self.dopant
            or not np.isclose([other.e_host, other.e_dopant], [self.e_host, self.e_dopant]).all()
        ):
            raise HullError(f"{other.source}: another dopant or other elemental references")
        x = self.x_dopant(n_host, n_dopant)
        shift = np.asarray(self.hull_energy(x)) - np.asarray(other.hull_energy(x))
        return _result(np.asarray(e_above_hull, dtype=float) + shift, e_above_hull, n_host)

    def e_above_hull_of_phase(self, name: str) -> float:
        """Energy above the hull of one reference phase, eV/atom (0 for stable phases)."""
        try:
            i = self._names.index(name)
        except ValueError:
            raise HullError(
                f"{self.source}: no reference phase {name!r}; known: {', '.join(self._names)}"
            ) from None
        if name in self.stable_names:
            return 0.0  # a hull vertex, exactly (avoids 1e-16 rounding noise)
        return float(self.e_above_hull(self._energy[i], self._n_host[i], self._n_dopant[i]))
