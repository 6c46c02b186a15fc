"""Build and relax the competing phases of the Sc-M binaries (M = Pt, Pd, Ir, Rh) with CHGNet.

The phases define the convex hull used by :mod:`qcapprox.hull`. Every phase is an ideal
prototype built with ASE, scaled to a Vegard-like start volume and relaxed exactly like the
parent models (data/parents/README.md): CHGNet 0.3.0 weights through ``CHGNetCalculator`` on
the CPU, ASE ``FIRE`` on ``FrechetCellFilter`` (cell + positions, p = 0), ``FixSymmetry`` to
keep the prototype, fmax = 0.01 eV/A, at most 400 steps.

Output: ``data/references/Sc-<M>.json`` with ``dopant``, ``host``, ``labeler``, ``settings``
and a ``phases`` list (name, prototype, formula, source, energy, e_per_atom, n_atoms,
structure, relaxation). The script is resumable and idempotent: phases already in a file are
skipped; the file is rewritten atomically after every phase, in the fixed catalogue order.
It runs on one core (torch and OpenMP threads = 1) and is deterministic: no timings or dates
go into the files.

Usage::

    .venv/bin/python scripts/build_references.py                 # all dopants, all phases
    .venv/bin/python scripts/build_references.py --dopants Pt --compare \\
        data/parents/sc60m13_energies.json                        # also print differences
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import json
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.spacegroup import crystal

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "data" / "references"
HOST = "Sc"
DOPANTS = ("Pt", "Pd", "Ir", "Rh")
SOURCE = "CHGNet 0.3.0 relaxation, qcapprox scripts/build_references.py"

# Experimental room-temperature lattices of the elements (A): hcp Sc, fcc M.
HCP_SC = (3.309, 5.273)
FCC_A = {"Pt": 3.924, "Pd": 3.891, "Ir": 3.839, "Rh": 3.803}
# Intermetallic start volume = VOLUME_FACTOR * sum of elemental atomic volumes (Vegard-like,
# slightly contracted as Sc-M compounds are strongly bound); relaxation fixes the rest.
VOLUME_FACTOR = 0.95


def atomic_volume(symbol: str) -> float:
    """Experimental volume per atom (A^3) of the elemental reference."""
    if symbol == HOST:
        a, c = HCP_SC
        return np.sqrt(3.0) / 2.0 * a * a * c / 2.0
    return FCC_A[symbol] ** 3 / 4.0


def _scaled(atoms: Atoms) -> Atoms:
    """Scale a prototype isotropically to VOLUME_FACTOR * sum of elemental volumes."""
    target = VOLUME_FACTOR * sum(atomic_volume(s) for s in atoms.get_chemical_symbols())
    atoms.set_cell(atoms.cell * (target / atoms.get_volume()) ** (1.0 / 3.0), scale_atoms=True)
    return atoms


def _xtal(symbols, basis, spacegroup, cellpar, setting=1, primitive=False) -> Atoms:
    atoms = crystal(
        symbols,
        basis,
        spacegroup=spacegroup,
        setting=setting,
        cellpar=cellpar,
        primitive_cell=primitive,
    )
    return _scaled(atoms)


def _cubic(a: float = 1.0) -> list[float]:
    return [a, a, a, 90.0, 90.0, 90.0]


def _tetragonal(c_over_a: float) -> list[float]:
    return [1.0, 1.0, c_over_a, 90.0, 90.0, 90.0]


def _hexagonal(c_over_a: float) -> list[float]:
    return [1.0, 1.0, c_over_a, 90.0, 90.0, 120.0]


@dataclass(frozen=True)
class Prototype:
    """One competing phase: how to name it and how to build its ideal structure."""

    key: str  # name template, "{M}" is replaced by the dopant
    prototype: str  # structure type, Strukturbericht, space group, Pearson symbol
    # "element"; "reported type": the structure type of a reported compound of at least one
    # of the Sc-{Pt,Pd,Ir,Rh} systems (B2 ScM, L1_2 ScM3, C15 ScIr2, Ti2Ni-type Sc2Pd);
    # "analogue type": reported for early/late transition-metal analogues (Zr2Ni C16,
    # Zr2Pd C11b, Mn5Si3-type M5X3), not known to us for Sc-M; "hypothetical": an ordering
    # added to probe the Sc-rich side.
    kind: str
    build: Callable[[str], Atoms]

    def name(self, dopant: str) -> str:
        return self.key.format(M=dopant)


# Ti2Ni type (Fd-3m, origin choice 2): Ti1 16c (0,0,0), Ti2 48f (x,1/8,1/8), Ni 32e (x,x,x);
# Ti1 sits in an icosahedron of 6 Ti2 + 6 Ni. Start values of x from Ti2Ni.
TI2NI_X48F = 0.4372
TI2NI_X32E = 0.2118

CATALOGUE: tuple[Prototype, ...] = (
    Prototype("Sc", "Mg (A3, hcp, P6_3/mmc, hP2)", "element",
              lambda m: bulk(HOST, "hcp", a=HCP_SC[0], c=HCP_SC[1])),
    Prototype("{M}", "Cu (A1, fcc, Fm-3m, cF4), primitive cell", "element",
              lambda m: bulk(m, "fcc", a=FCC_A[m])),
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
    Prototype("Sc5{M}3_D88", "Mn5Si3 (D8_8, P6_3/mcm, hP16)", "analogue type",
              lambda m: _xtal([HOST, HOST, m], [(1 / 3, 2 / 3, 0), (0.236, 0, 0.25),
                                                (0.599, 0, 0.25)], 193, _hexagonal(0.696))),
)


def spacegroup_of(atoms: Atoms, symprec: float = 1e-3) -> str:
    """International symbol and number from spglib, e.g. 'Fd-3m (227)'."""
    import spglib

    cell = (atoms.cell.array, atoms.get_scaled_positions(), atoms.numbers)
    return spglib.get_spacegroup(cell, symprec=symprec) or "unknown"


def structure_dict(atoms: Atoms) -> dict:
    """Plain-JSON structure: cell (A, rows are vectors), atomic numbers, fractional positions.

    Values are rounded to 1e-12 (removes the 1e-40 noise FixSymmetry leaves) and fractional
    coordinates wrapped into [0, 1).
    """
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


def relax(atoms: Atoms, calc, fmax: float, steps: int, symprec: float) -> tuple[Atoms, dict]:
    """Relax cell and positions under FixSymmetry; return the relaxed Atoms and a summary."""
    from ase.constraints import FixSymmetry
    from ase.filters import FrechetCellFilter
    from ase.optimize import FIRE

    atoms = atoms.copy()
    atoms.calc = calc
    sg_start = spacegroup_of(atoms, symprec)
    atoms.set_constraint(FixSymmetry(atoms, symprec=symprec))
    filt = FrechetCellFilter(atoms)
    opt = FIRE(filt, logfile=None)
    converged = bool(opt.run(fmax=fmax, steps=steps))
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


def load_file(path: Path, dopant: str, labeler: str, settings: dict) -> dict:
    if path.exists():
        data = json.loads(path.read_text())
        if data.get("dopant") != dopant:
            sys.exit(f"{path}: holds dopant {data.get('dopant')!r}, expected {dopant!r}")
        return data
    return {"dopant": dopant, "host": HOST, "labeler": labeler, "settings": settings,
            "phases": []}


def write_file(path: Path, data: dict) -> None:
    """Write atomically, phases in catalogue order, so reruns give the same bytes."""
    order = {p.name(data["dopant"]): i for i, p in enumerate(CATALOGUE)}
    data["phases"].sort(key=lambda ph: (order.get(ph["name"], len(order)), ph["name"]))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(dumps(data))
    os.replace(tmp, path)


def compare(path: Path, out_dir: Path, dopants: list[str]) -> None:
    """Print e_per_atom differences (meV/atom) against the parents' sc60m13_energies.json."""
    ref = json.loads(path.read_text())
    print(f"\ncross-check against {path} (ours - theirs, meV/atom)")
    for m in dopants:
        ours = {p["name"]: p for p in json.loads((out_dir / f"Sc-{m}.json").read_text())["phases"]}
        for name, theirs in ref.get(m, {}).get("phases", {}).items():
            if name in ours:
                d = 1000.0 * (ours[name]["e_per_atom"] - theirs["e_per_atom"])
                print(f"  {m:2s} {name:14s} ours {ours[name]['e_per_atom']:.5f} "
                      f"theirs {theirs['e_per_atom']:.5f}  diff {d:+.2f}")
            else:
                print(f"  {m:2s} {name:14s} missing here")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dopants", nargs="+", default=list(DOPANTS))
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--only", nargs="*", default=None,
                        help="catalogue keys to build (e.g. 'Sc{M}' 'Sc2{M}_Ti2Ni'); default all")
    parser.add_argument("--fmax", type=float, default=0.01)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--symprec", type=float, default=1e-5)
    parser.add_argument("--compare", type=Path, default=None,
                        help="sc60m13_energies.json to cross-check e_per_atom against")
    args = parser.parse_args(argv)

    import chgnet
    import torch
    from chgnet.model.dynamics import CHGNetCalculator

    torch.set_num_threads(1)
    torch.manual_seed(0)
    calc = CHGNetCalculator(use_device="cpu")
    labeler = f"chgnet {chgnet.__version__} (CHGNet 0.3.0 weights), a stand-in for DFT"
    settings = {
        "calculator": "chgnet.model.dynamics.CHGNetCalculator(use_device='cpu')",
        "optimizer": "ase.optimize.FIRE on ase.filters.FrechetCellFilter (p = 0)",
        "constraint": f"ase.constraints.FixSymmetry(symprec={args.symprec})",
        "fmax_eV_per_A": args.fmax,
        "max_steps": args.steps,
        "start_volume": f"{VOLUME_FACTOR} x sum of experimental elemental atomic volumes",
    }
    catalogue = [p for p in CATALOGUE if args.only is None or p.key in args.only]
    shared: dict[str, tuple[dict, Atoms]] = {}  # host element, identical in every file
    total = time.perf_counter()
    for m in args.dopants:
        if m not in FCC_A:
            sys.exit(f"no fcc lattice parameter for dopant {m!r}; add it to FCC_A")
        path = args.out / f"Sc-{m}.json"
        data = load_file(path, m, labeler, settings)
        done = {ph["name"] for ph in data["phases"]}
        for proto in catalogue:
            name = proto.name(m)
            if name in done:
                print(f"{m}: {name} already present, skipped")
                continue
            t0 = time.perf_counter()
            if name in shared:
                summary, atoms = shared[name]
            else:
                atoms, summary = relax(proto.build(m), calc, args.fmax, args.steps, args.symprec)
                if proto.kind == "element" and name == HOST:
                    shared[name] = (summary, atoms)
            n = len(atoms)
            data["phases"].append({
                "name": name,
                "prototype": proto.prototype,
                "kind": proto.kind,
                "formula": atoms.get_chemical_formula(mode="metal"),
                "source": SOURCE,
                "energy": summary["energy"],
                "e_per_atom": summary["energy"] / n,
                "n_atoms": n,
                "structure": structure_dict(atoms),
                "relaxation": {k: v for k, v in summary.items() if k != "energy"},
            })
            write_file(path, data)
            print(f"{m}: {name:14s} {summary['energy'] / n:.5f} eV/atom  n={n:3d} "
                  f"steps={summary['steps']:3d} conv={summary['converged']} "
                  f"{summary['spacegroup_start']} -> {summary['spacegroup_relaxed']} "
                  f"({time.perf_counter() - t0:.1f} s)", flush=True)
    print(f"total wall time {time.perf_counter() - total:.1f} s")
    if args.compare is not None:
        compare(args.compare, args.out, args.dopants)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
