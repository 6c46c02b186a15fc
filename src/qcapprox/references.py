"""Build and relax the competing phases of a Sc-M binary, for any metal M.

The phases define the convex hull of :mod:`qcapprox.hull`: the two elements, each in its
own ground-state structure (hcp, bcc or fcc as ASE's ``ase.data.reference_states`` knows
it, e.g. hcp Sc, fcc Pt, hcp Os, bcc Fe), and the binary prototypes of :data:`CATALOGUE`
(structure types reported for Sc-{Pt,Pd,Ir,Rh} or for their early/late transition-metal
analogues, plus hypothetical orderings on the Sc-rich side). Every phase is an ideal
prototype built with ASE, scaled to a Vegard-like start volume (0.95 x the sum of the
elemental atomic volumes) and relaxed with the labeler: ASE ``FIRE`` on
``FrechetCellFilter`` (cell + positions, p = 0) under ``FixSymmetry`` to keep the
prototype, fmax = 0.01 eV/A, at most 400 steps.

Output: ``Sc-<M>.json`` with ``dopant``, ``host``, ``labeler``, ``settings`` and a
``phases`` list (name, prototype, kind, formula, source, energy, e_per_atom, n_atoms,
structure, relaxation), read by :meth:`qcapprox.hull.Hull.load`. A build is resumable and
idempotent: phases already in the file are skipped and the file is rewritten atomically
after every phase, in catalogue order; no timings or dates go into it, so the same labeler
gives the same bytes. The four bundled sets (data/references/) were built this way with
CHGNet (``qcapprox references --dopant Pt --out data/references`` and so on).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.calculators.calculator import Calculator
from ase.data import atomic_numbers, reference_states
from ase.spacegroup import crystal

from qcapprox.errors import HullError
from qcapprox.hull import dopant_symbol
from qcapprox.parent import HOST
from qcapprox.settings import DEFAULT_CALCULATOR

SOURCE = "qcapprox references (FIRE on FrechetCellFilter under FixSymmetry)"
#: Intermetallic start volume = VOLUME_FACTOR x sum of elemental atomic volumes (Vegard-like,
#: slightly contracted as Sc-M compounds are strongly bound); the relaxation fixes the rest.
VOLUME_FACTOR = 0.95
FMAX = 0.01  # eV/A
MAX_STEPS = 400
SYMPREC = 1e-5  # FixSymmetry
#: Elemental ground-state structures the catalogue builds, with their descriptions.
ELEMENT_PROTOTYPES = {
    "hcp": "Mg (A3, hcp, P6_3/mmc, hP2)",
    "fcc": "Cu (A1, fcc, Fm-3m, cF4), primitive cell",
    "bcc": "W (A2, bcc, Im-3m, cI2), primitive cell",
}


def ground_state(symbol: str) -> dict:
    """ASE's reference state of an element (symmetry, a, c/a), if hcp, bcc or fcc."""
    state = reference_states[atomic_numbers[symbol]] or {}
    if state.get("symmetry") not in ELEMENT_PROTOTYPES:
        raise HullError(
            f"{symbol}: ASE's reference state is {state.get('symmetry') or 'unknown'}, not "
            f"{', '.join(ELEMENT_PROTOTYPES)}; build its references yourself (Hull.from_entries)"
        )
    return state


def element(symbol: str) -> Atoms:
    """The element in its ground-state structure at ASE's experimental lattice."""
    state = ground_state(symbol)
    c = state["a"] * state["c/a"] if state["symmetry"] == "hcp" else None
    return bulk(symbol, state["symmetry"], a=state["a"], c=c)


def atomic_volume(symbol: str) -> float:
    """Experimental volume per atom (A^3) of the element's ground state."""
    atoms = element(symbol)
    return atoms.get_volume() / len(atoms)


def _xtal(symbols, basis, spacegroup, cellpar, setting=1, primitive=False) -> Atoms:
    """A prototype from its Wyckoff positions, scaled to the Vegard-like start volume."""
    atoms = crystal(symbols, basis, spacegroup=spacegroup, setting=setting, cellpar=cellpar,
                    primitive_cell=primitive)  # fmt: skip
    target = VOLUME_FACTOR * sum(atomic_volume(s) for s in atoms.get_chemical_symbols())
    atoms.set_cell(atoms.cell * (target / atoms.get_volume()) ** (1.0 / 3.0), scale_atoms=True)
    return atoms


def _cubic() -> list[float]:
    return [1.0, 1.0, 1.0, 90.0, 90.0, 90.0]


def _tetragonal(c_over_a: float) -> list[float]:
    return [1.0, 1.0, c_over_a, 90.0, 90.0, 90.0]


def _hexagonal(c_over_a: float) -> list[float]:
    return [1.0, 1.0, c_over_a, 90.0, 90.0, 120.0]


@dataclass(frozen=True)
class Prototype:
    """One competing phase: how to name it and how to build its ideal structure."""

    key: str  # name template, "{M}" is replaced by the dopant
    prototype: str  # structure type, Strukturbericht, space group, Pearson symbol ("" = element)
    # "element"; "reported type": the structure type of a reported compound of at least one
    # of the Sc-{Pt,Pd,Ir,Rh} systems (B2 ScM, L1_2 ScM3, C15 ScIr2, Ti2Ni-type Sc2Pd);
    # "analogue type": reported for early/late transition-metal analogues (Zr2Ni C16,
    # Zr2Pd C11b, Mn5Si3-type M5X3; Fe3C- and Re3B-type R3T, R a rare earth and T a late
    # transition metal, e.g. Y3Rh), not known to us for Sc-M; "hypothetical": an ordering
    # added to probe the Sc-rich side.
    kind: str
    build: Callable[[str], Atoms]

    def name(self, dopant: str) -> str:
        return self.key.format(M=dopant)

    def describe(self, dopant: str) -> str:
        """The prototype; for an element, that of its ground-state structure."""
        if self.kind != "element":
            return self.prototype
        return ELEMENT_PROTOTYPES[ground_state(self.name(dopant))["symmetry"]]


# Ti2Ni type (Fd-3m, origin choice 2): Ti1 16c (0,0,0), Ti2 48f (x,1/8,1/8), Ni 32e (x,x,x);
# Ti1 sits in an icosahedron of 6 Ti2 + 6 Ni. Start values of x from Ti2Ni.
TI2NI_X48F = 0.4372
TI2NI_X32E = 0.2118

# Fe3C type (D0_11, Pnma): Fe 4c (x,1/4,z), Fe 8d (x,y,z), C 4c; T in a trigonal prism of R.
# Re3B type (Cmcm): Re 4c (0,y,1/4), Re 8f (0,y,z), B 4c. Start values from Fe3C and Re3B;
# the relaxation under FixSymmetry moves every free coordinate.
FE3C_BASIS = ((0.036, 0.25, 0.852), (0.186, 0.063, 0.328), (0.890, 0.25, 0.450))
FE3C_CELL = [1.0, 1.324, 0.888, 90.0, 90.0, 90.0]
RE3B_BASIS = ((0.0, 0.4275, 0.25), (0.0, 0.1350, 0.0620), (0.0, 0.7440, 0.25))
RE3B_CELL = [1.0, 3.222, 2.511, 90.0, 90.0, 90.0]

CATALOGUE: tuple[Prototype, ...] = (
    Prototype(HOST, "", "element", lambda m: element(HOST)),
    Prototype("{M}", "", "element", element),
    Prototype("Sc{M}", "CsCl (B2, Pm-3m, cP2)", "reported type",
              lambda m: _xtal([HOST, m], [(0, 0, 0), (0.5, 0.5, 0.5)], 221, _cubic())),
    Prototype("Sc{M}3", "Cu3Au (L1_2, Pm-3m, cP4)", "reported type",
              lambda m: _xtal([HOST, m], [(0, 0, 0), (0, 0.5, 0.5)], 221, _cubic())),
    Prototype("Sc{M}2_C15", "MgCu2 (C15 Laves, Fd-3m, cF24), conventional cell", "reported type",
              lambda m: _xtal([HOST, m], [(1 / 8, 1 / 8, 1 / 8), (0.5, 0.5, 0.5)], 227,
                              _cubic(), setting=2)),
    Prototype("Sc2{M}_Ti2Ni", "Ti2Ni (Fd-3m, cF96), primitive cell", "reported type",
              lambda m: _xtal([HOST, HOST, m],
                              [(0, 0, 0), (TI2NI_X48F, 1 / 8, 1 / 8),
                               (TI2NI_X32E, TI2NI_X32E, TI2NI_X32E)],
                              227, _cubic(), setting=2, primitive=True)),
    Prototype("Sc{M}_L10",
              "CuAu (L1_0, P4/mmm, tP2 cell, start c/a = sqrt 2; may slide toward B2, c/a = 1)",
              "hypothetical",
              lambda m: _xtal([HOST, m], [(0, 0, 0), (0.5, 0.5, 0.5)], 123,
                              _tetragonal(np.sqrt(2.0)))),
    Prototype("Sc2{M}_C16", "CuAl2 (C16, I4/mcm, tI12), conventional cell", "analogue type",
              lambda m: _xtal([m, HOST], [(0, 0, 0.25), (0.158, 0.658, 0)], 140,
                              _tetragonal(0.81))),
    Prototype("Sc2{M}_C11b", "MoSi2 / Zr2Cu (C11b, I4/mmm, tI6), conventional cell",
              "analogue type",
              lambda m: _xtal([m, HOST], [(0, 0, 0), (0, 0, 0.345)], 139, _tetragonal(3.4))),
    Prototype("Sc3{M}_L12", "Cu3Au (L1_2, Pm-3m, cP4), Sc on the faces", "hypothetical",
              lambda m: _xtal([m, HOST], [(0, 0, 0), (0, 0.5, 0.5)], 221, _cubic())),
    Prototype("Sc3{M}_D019", "Ni3Sn (D0_19, P6_3/mmc, hP8)", "hypothetical",
              lambda m: _xtal([m, HOST], [(1 / 3, 2 / 3, 0.25), (5 / 6, 2 / 3, 0.25)], 194,
                              _hexagonal(0.8165))),
    Prototype("Sc3{M}_D03", "BiF3 (D0_3, Fm-3m, cF16), primitive cell", "hypothetical",
              lambda m: _xtal([m, HOST, HOST], [(0, 0, 0), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)],
                              225, _cubic(), primitive=True)),
    Prototype("Sc3{M}_D011", "Fe3C (D0_11, Pnma, oP16)", "analogue type",
              lambda m: _xtal([HOST, HOST, m], FE3C_BASIS, 62, FE3C_CELL)),
    Prototype("Sc3{M}_Re3B", "Re3B (Cmcm, oC16), conventional cell", "analogue type",
              lambda m: _xtal([HOST, HOST, m], RE3B_BASIS, 63, RE3B_CELL)),
    Prototype("Sc5{M}3_D88", "Mn5Si3 (D8_8, P6_3/mcm, hP16)", "analogue type",
              lambda m: _xtal([HOST, HOST, m], [(1 / 3, 2 / 3, 0), (0.236, 0, 0.25),
                                                (0.599, 0, 0.25)], 193, _hexagonal(0.696))),
)  # fmt: skip


def spacegroup_of(atoms: Atoms, symprec: float = 1e-3) -> str:
    """International symbol and number from spglib, e.g. 'Fd-3m (227)'."""
    import spglib

    cell = (atoms.cell.array, atoms.get_scaled_positions(), atoms.numbers)
    return spglib.get_spacegroup(cell, symprec=symprec) or "unknown"


def structure_dict(atoms: Atoms) -> dict:
    """Plain-JSON structure: cell (A, rows are vectors), atomic numbers, fractional positions,
    rounded to 1e-12 (removes the 1e-40 noise FixSymmetry leaves), wrapped into [0, 1)."""
    cell = np.round(atoms.cell.array, 12) + 0.0
    frac = np.round(atoms.get_scaled_positions(wrap=True), 12) % 1.0 + 0.0
    return {
        "cell": cell.tolist(),
        "numbers": [int(z) for z in atoms.numbers],
        "frac_positions": frac.tolist(),
        "pbc": [True, True, True],
    }


_INNER_LIST = re.compile(r"\[\s*([^\[\]{}\"]*?)\s*\]")


def dumps(data: dict) -> str:
    """JSON with one line per innermost list of numbers (vectors, numbers) for readability."""

    def one_line(match: re.Match) -> str:
        return "[" + ", ".join(item.strip() for item in match.group(1).split(",")) + "]"

    return _INNER_LIST.sub(one_line, json.dumps(data, indent=1)) + "\n"


def relax(atoms: Atoms, calc: Calculator) -> tuple[Atoms, dict]:
    """Relax cell and positions under FixSymmetry; the relaxed Atoms and a summary. BLAS
    runs on one thread: the cell filter's 3x3 matrix exponentials are ten times slower when
    OpenBLAS spreads them over busy cores (README, relaxation throughput)."""
    from ase.constraints import FixSymmetry
    from ase.filters import FrechetCellFilter
    from ase.optimize import FIRE
    from threadpoolctl import threadpool_limits

    atoms = atoms.copy()
    atoms.calc = calc
    sg_start = spacegroup_of(atoms, SYMPREC)
    atoms.set_constraint(FixSymmetry(atoms, symprec=SYMPREC))
    filt = FrechetCellFilter(atoms)
    opt = FIRE(filt, logfile=None)
    with threadpool_limits(1):
        converged = bool(opt.run(fmax=FMAX, steps=MAX_STEPS))
    residual = float(np.sqrt((filt.get_forces() ** 2).sum(axis=1).max()))
    energy = float(atoms.get_potential_energy())
    relaxed = atoms.copy()
    relaxed.set_constraint()
    relaxed.calc = None
    summary = {
        "energy": energy,
        "steps": int(opt.get_number_of_steps()),
        "converged": converged,
        "residual_fmax": residual,
        "spacegroup_start": sg_start,
        "spacegroup_relaxed": spacegroup_of(relaxed, symprec=1e-3),
    }
    return relaxed, summary


def labeler_of(calculator: str) -> tuple[str, dict]:
    """The ``labeler`` line and ``settings`` of a reference file for a calculator spec."""
    from qcapprox.labeling import calculator_info

    info = calculator_info(calculator)
    if calculator == DEFAULT_CALCULATOR:
        labeler = f"chgnet {info['calculator_version']} (CHGNet 0.3.0 weights), a stand-in for DFT"
        how = "chgnet.model.dynamics.CHGNetCalculator(use_device='cpu')"
    else:
        labeler, how = f"{calculator} {info['calculator_version']}", f"factory {calculator}()"
    settings = {
        "calculator": how,
        "optimizer": "ase.optimize.FIRE on ase.filters.FrechetCellFilter (p = 0)",
        "constraint": f"ase.constraints.FixSymmetry(symprec={SYMPREC})",
        "fmax_eV_per_A": FMAX,
        "max_steps": MAX_STEPS,
        "start_volume": f"{VOLUME_FACTOR} x sum of experimental elemental atomic volumes",
    }
    return labeler, settings


def missing_phases(dopant: str, path: Path) -> list[str]:
    """Names of the catalogue phases of a dopant not yet in the reference file `path`."""
    have = {p["name"] for p in json.loads(path.read_text())["phases"]} if path.exists() else set()
    return [p.name(dopant) for p in CATALOGUE if p.name(dopant) not in have]


def _load(path: Path, dopant: str, labeler: str, settings: dict) -> dict:
    """The file being built: its phases so far, or an empty set; refuses another dopant
    or another labeler (a hull mixes no two labelers)."""
    if not path.exists():
        return {"dopant": dopant, "host": HOST, "labeler": labeler, "settings": settings,
                "phases": []}  # fmt: skip
    try:
        data = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise HullError(f"{path}: not a readable JSON reference file ({err})") from err
    if data.get("dopant") != dopant:
        raise HullError(f"{path}: holds dopant {data.get('dopant')!r}, not {dopant!r}")
    if (data.get("labeler"), data.get("settings")) != (labeler, settings):
        raise HullError(
            f"{path}: was built with {data.get('labeler')!r}, not {labeler!r} and these "
            "settings; choose another --out (nothing was changed)"
        )
    return data


def _write(path: Path, data: dict) -> None:
    """Write atomically, phases in catalogue order, so reruns give the same bytes."""
    order = {p.name(data["dopant"]): i for i, p in enumerate(CATALOGUE)}
    data["phases"].sort(key=lambda ph: (order.get(ph["name"], len(order)), ph["name"]))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(dumps(data))
    os.replace(tmp, path)


def build_references(
    dopant: str,
    out_dir: Path,
    calculator: str = DEFAULT_CALCULATOR,
    only: tuple[str, ...] | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> Path:
    """Build (or resume) ``out_dir/Sc-<M>.json``: relax every catalogue phase (or the keys in
    `only`, e.g. ``("Sc{M}",)``) not yet in the file; returns the file. `progress` gets
    (phases done, phases in all, name of the phase just done)."""
    from qcapprox.labeling import make_calculator

    symbol = dopant_symbol(dopant)
    for el in (HOST, symbol):
        ground_state(el)  # an element ASE has no hcp/bcc/fcc state for fails before any work
    catalogue = [p for p in CATALOGUE if only is None or p.key in only]
    path = Path(out_dir) / f"{HOST}-{symbol}.json"
    labeler, settings = labeler_of(calculator)
    data = _load(path, symbol, labeler, settings)
    done = {ph["name"] for ph in data["phases"]}
    todo = [p for p in catalogue if p.name(symbol) not in done]
    first = len(catalogue) - len(todo)
    if progress:
        progress(first, len(catalogue), "")
    for k, proto in enumerate(todo, start=first + 1):
        atoms, summary = relax(proto.build(symbol), make_calculator(calculator))
        n = len(atoms)
        data["phases"].append({
            "name": proto.name(symbol),
            "prototype": proto.describe(symbol),
            "kind": proto.kind,
            "formula": atoms.get_chemical_formula(mode="metal"),
            "source": SOURCE,
            "energy": summary["energy"],
            "e_per_atom": summary["energy"] / n,
            "n_atoms": n,
            "structure": structure_dict(atoms),
            "relaxation": {key: v for key, v in summary.items() if key != "energy"},
        })  # fmt: skip
        _write(path, data)
        if progress:
            progress(k, len(catalogue), proto.name(symbol))
    return path
