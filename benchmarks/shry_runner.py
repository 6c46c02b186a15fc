"""SHRY 1.1.8 side of the enumeration benchmark.

SHRY (https://github.com/shry-project/SHRY, PyPI ``shry``) enumerates symmetry-distinct
substitutions of a disordered CIF. It pins old pymatgen/numpy/spglib, so it lives in its own
virtualenv (``~/.cache/qcapprox/shry-1.1.8-venv``, created on first use) and is run in a
subprocess of that venv's python. This module only needs numpy, spglib and ase (the project venv).

The Sc60M13 parent is Pm-3 to 1e-4 but Im-3 (No. 204, 48 operations in the conventional cell) at
symprec 1e-3; our enumerator uses Im-3. The parent is therefore symmetrized with
``ase.spacegroup.symmetrize.refine_symmetry(symprec=1e-3)`` (spglib then reports 204 with 48
operations even at 1e-5) before the disordered CIF is written, and SHRY's own log line
"Total N symmetry operations" is checked against 48.

SHRY command line (``shry`` is the console script ``shry.script:main``)::

    shry --no-write --disable-progressbar --symprec 1e-3 disordered.cif

In the disordered CIF every A4 (A5) site is written as rows "Sc / M / X0+" with the same label
``A4`` (``A5``) and occupancies k/12 (k/24); SHRY groups disordered sites by label, so each of
A4 and A5 is one disorder group with a fixed composition. Vacancies are SHRY's dummy species X0+.

Used by ``benchmarks/enumeration.py``, which compares counts and speed with qcapprox.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

SHRY_VERSION = "1.1.8"
#: Exact set that installed and ran on Python 3.11 (pip resolution of ``shry==1.1.8``, frozen).
SHRY_PINS: tuple[str, ...] = (
    "shry==1.1.8",
    "numpy==1.26.4",
    "pymatgen==2023.10.4",
    "spglib==2.4.0",
    "scipy==1.17.1",
    "sympy==1.14.0",
    "mpmath==1.3.0",
    "pandas==3.0.6",
    "monty==2026.10.21",
    "tqdm==4.70.1",
    "tabulate==0.10.0",
    "uncertainties==3.2.3",
    "networkx==3.6.1",
    "matplotlib==3.11.2",
    "ruamel.yaml==0.19.1",
    "palettable==3.3.3",
    "plotly==7.1.0",
    "pybtex==0.26.1",
    "joblib==1.6.0",
    "requests==2.34.2",
    "python-dateutil==4.0.0",
    "setuptools-scm==10.3.4",
    "xlrd==2.0.2",
    "pytest==9.2.0",
)
VENV_DIR = Path(
    os.environ.get(
        "QCAPPROX_SHRY_VENV",
        Path.home() / ".cache" / "qcapprox" / f"shry-{SHRY_VERSION}-venv",
    )
)
_STAMP = ".qcapprox-shry-installed"

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CIF = REPO_ROOT / "data" / "parents" / "sc60m13_Pt.cif"
#: 0-based CIF-order indices (also under ``groups`` in sc60m13_sites.json).
A4_INDICES: tuple[int, ...] = tuple(range(110, 122))
A5_INDICES: tuple[int, ...] = tuple(range(122, 146))
REFINE_SYMPREC = 1e-3
EXPECTED_SPACEGROUP = 204
EXPECTED_NOPS = 48
VACANCY = "X0+"

#: Single-core environment for the SHRY subprocess (SHRY itself is single-threaded Python).
_ONE_CORE_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
    "PYTHONWARNINGS": "ignore",
}

# Runs inside the SHRY venv: SHRY's own CLI entry point (shry.script:main) with the CLI arguments
# passed through unchanged, plus perf_counter timers around ScriptHelper set-up, the Polya count
# and the --no-write generation loop, and a counter of the structures actually generated.
_DRIVER = r"""
import json, sys, time
t0 = time.perf_counter()
import shry.core as core
import shry.main as smain
import shry.script as script
times = {"import": time.perf_counter() - t0, "setup": 0.0, "count": 0.0, "generate": 0.0}
state = {"generated": 0, "count": None}

def timed(name, fn, keep=False):
    def wrapper(*args, **kwargs):
        t = time.perf_counter()
        try:
            out = fn(*args, **kwargs)
            if keep:
                state[name] = out
            return out
        finally:
            times[name] += time.perf_counter() - t
    return wrapper

smain.ScriptHelper.__init__ = timed("setup", smain.ScriptHelper.__init__)
smain.ScriptHelper.count = timed("count", smain.ScriptHelper.count, keep=True)
smain.ScriptHelper.write = timed("generate", smain.ScriptHelper.write)
_make_patterns = core.Substitutor.make_patterns

def make_patterns(self):
    for item in _make_patterns(self):
        state["generated"] += 1
        yield item

core.Substitutor.make_patterns = make_patterns
sys.argv = ["shry", *sys.argv[1:]]
script.main()
sys.stdout.flush()
print("QCAPPROX_SHRY_RESULT " + json.dumps({**state, "times": times}), flush=True)
"""


@dataclass
class ShryResult:
    """Everything measured in one SHRY run (times in seconds, perf_counter in the subprocess)."""

    count: int  # "Expected unique patterns is N" (SHRY's Polya count)
    generated: int  # structures SHRY's --no-write loop actually produced
    total_combinations: int  # "Total number of combinations is N" (labelled decorations)
    n_ops: int  # "Total N symmetry operations"
    spacegroup: int  # from "Space group: <hall> (N)"
    t_enum: float  # Polya count + generation loop (what run_shry returns)
    t_generate: float  # ScriptHelper.write() with --no-write
    t_count: float  # ScriptHelper.count() (Polya)
    t_setup: float  # CIF parsing, symmetry search, permutation tables
    t_import: float  # importing shry/pymatgen
    t_wall: float  # whole subprocess
    command: list[str]


def _venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def ensure_shry_venv(venv: Path = VENV_DIR, verbose: bool = True) -> Path:
    """Create the SHRY venv if missing (``python -m venv`` + pinned ``pip install``).

    Idempotent: when the stamp file lists the same pins the venv python is returned at once.
    A file lock makes concurrent callers wait for one install. Returns the venv python.
    """
    py = _venv_python(venv)
    stamp = venv / _STAMP
    want = "\n".join(SHRY_PINS) + "\n"
    if py.exists() and stamp.exists() and stamp.read_text() == want:
        return py
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f".{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if py.exists() and stamp.exists() and stamp.read_text() == want:
            return py
        t0 = time.perf_counter()
        if not py.exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        cmd = [str(py), "-m", "pip", "install", "--disable-pip-version-check", "-q", *SHRY_PINS]
        subprocess.run(cmd, check=True)
        subprocess.run([str(py), "-c", "import shry.main, shry.core"], check=True)
        stamp.write_text(want)
        if verbose:
            print(f"[shry_runner] installed SHRY venv in {time.perf_counter() - t0:.0f} s: {venv}")
    return py


def _refined_parent(cif_path: Path):
    """Read the parent CIF and symmetrize it to Im-3 (refine_symmetry, symprec 1e-3)."""
    import ase.io
    import spglib
    from ase.spacegroup.symmetrize import refine_symmetry

    atoms = ase.io.read(str(cif_path))
    refine_symmetry(atoms, symprec=REFINE_SYMPREC)
    cell = (atoms.cell[:], atoms.get_scaled_positions(), atoms.numbers)
    ds = spglib.get_symmetry_dataset(cell, symprec=1e-5)
    number = ds.number if hasattr(ds, "number") else ds["number"]
    rotations = ds.rotations if hasattr(ds, "rotations") else ds["rotations"]
    if number != EXPECTED_SPACEGROUP or len(rotations) != EXPECTED_NOPS:
        raise RuntimeError(f"refined parent is No. {number} with {len(rotations)} ops, want Im-3")
    return atoms


def _occupancies(n_sites: int, host: str, dopant: str, n_m: int, n_vac: int) -> list[tuple]:
    """(species, occupancy string) rows of one site; printed occupancies sum to exactly 1."""
    if n_m < 0 or n_vac < 0 or n_m + n_vac > n_sites:
        raise ValueError(f"bad composition {n_m} M + {n_vac} V on {n_sites} sites")
    q = Decimal("1e-12")
    rows = [
        (dopant, Decimal(n_m) / Decimal(n_sites)),
        (VACANCY, Decimal(n_vac) / Decimal(n_sites)),
    ]
    rows = [(s, o.quantize(q)) for s, o in rows if o > 0]
    host_occ = Decimal(1) - sum((o for _, o in rows), Decimal(0))
    if n_m + n_vac < n_sites:
        rows.insert(0, (host, host_occ))
    return [(s, f"{o:.12f}") for s, o in rows]


def write_disordered_cif(
    cif_path: Path,
    out_path: Path,
    a5_m: int,
    a5_vac: int,
    a4_m: int = 0,
    a4_vac: int = 0,
    dopant: str = "Pt",
) -> Path:
    """Write the Im-3-refined parent as a P1 CIF with partial occupancies on A4 and A5.

    All sites of a group get the same occupancies (label ``A4``/``A5``); other sites stay ordered.
    """
    atoms = _refined_parent(cif_path)
    a, b, c, alpha, beta, gamma = atoms.cell.cellpar()
    lines = [
        "data_qcapprox_shry",
        f"_cell_length_a {a:.10f}",
        f"_cell_length_b {b:.10f}",
        f"_cell_length_c {c:.10f}",
        f"_cell_angle_alpha {alpha:.10f}",
        f"_cell_angle_beta {beta:.10f}",
        f"_cell_angle_gamma {gamma:.10f}",
        "_symmetry_space_group_name_H-M 'P 1'",
        "_symmetry_Int_Tables_number 1",
        "loop_",
        " _symmetry_equiv_pos_as_xyz",
        " 'x, y, z'",
        "loop_",
        " _atom_site_type_symbol",
        " _atom_site_label",
        " _atom_site_fract_x",
        " _atom_site_fract_y",
        " _atom_site_fract_z",
        " _atom_site_occupancy",
    ]
    groups = {"A4": (A4_INDICES, a4_m, a4_vac), "A5": (A5_INDICES, a5_m, a5_vac)}
    site_rows: dict[int, tuple[str, list[tuple]]] = {}
    symbols = atoms.get_chemical_symbols()
    for label, (indices, n_m, n_vac) in groups.items():
        if n_m == 0 and n_vac == 0:
            continue
        hosts = {symbols[i] for i in indices}
        if len(hosts) != 1:
            raise RuntimeError(f"{label} sites carry several species: {hosts}")
        rows = _occupancies(len(indices), hosts.pop(), dopant, n_m, n_vac)
        for i in indices:
            site_rows[i] = (label, rows)
    positions = atoms.get_scaled_positions(wrap=True)
    for i, (sym, frac) in enumerate(zip(symbols, positions, strict=True)):
        xyz = " ".join(f"{x:.12f}" for x in frac)
        label, rows = site_rows.get(i, (f"{sym}{i}", [(sym, "1.0")]))
        lines.extend(f" {s} {label} {xyz} {occ}" for s, occ in rows)
    out_path.write_text("\n".join(lines) + "\n")
    return out_path


def _parse_log(text: str) -> dict[str, int]:
    """Pull SHRY's reported numbers out of its log."""
    patterns = {
        "count": r"Expected unique patterns is (\d+)",
        "total_combinations": r"Total number of combinations is (\d+)",
        "n_ops": r"Total (\d+) symmetry operations",
        "spacegroup": r"Space group: .*\((\d+)\)",
    }
    out = {}
    for key, pat in patterns.items():
        m = re.search(pat, text)
        if m is None:
            raise RuntimeError(f"SHRY log has no '{pat}':\n{text[-3000:]}")
        out[key] = int(m.group(1))
    return out


def run_shry_detailed(
    cif_path: Path,
    a5_m: int,
    a5_vac: int,
    a4_m: int = 0,
    a4_vac: int = 0,
    dopant: str = "Pt",
    timeout: float = 600.0,
    symprec: float = REFINE_SYMPREC,
    keep_log: Path | None = None,
) -> ShryResult:
    """Run SHRY once (``--no-write``) on the requested composition and return all measurements.

    Raises ``TimeoutError`` (after killing the subprocess group) when ``timeout`` s pass, and
    ``RuntimeError`` when SHRY fails or does not use the 48 Im-3 operations.
    """
    py = ensure_shry_venv()
    with tempfile.TemporaryDirectory(prefix="qcapprox-shry-") as tmp:
        tmpdir = Path(tmp)
        cif = write_disordered_cif(
            Path(cif_path), tmpdir / "disordered.cif", a5_m, a5_vac, a4_m, a4_vac, dopant
        )
        driver = tmpdir / "shry_driver.py"
        driver.write_text(_DRIVER)
        args = ["--no-write", "--disable-progressbar", "--symprec", f"{symprec:g}", cif.name]
        cmd = [str(py), str(driver), *args]
        log_path = tmpdir / "shry.log"
        env = {**os.environ, **_ONE_CORE_ENV}
        env.pop("PYTHONPATH", None)
        t0 = time.perf_counter()
        with open(log_path, "w") as log:
            proc = subprocess.Popen(
                cmd, cwd=tmpdir, stdout=log, stderr=subprocess.STDOUT, env=env,
                start_new_session=True,
            )  # fmt: skip
            try:
                rc = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                raise TimeoutError(f"SHRY exceeded {timeout:.0f} s: {' '.join(args)}") from None
        t_wall = time.perf_counter() - t0
        text = log_path.read_text(errors="replace")
        if keep_log is not None:
            Path(keep_log).write_text(text)
        if rc != 0:
            raise RuntimeError(f"SHRY exited with {rc}:\n{text[-3000:]}")
        marker = re.search(r"^QCAPPROX_SHRY_RESULT (.*)$", text, flags=re.MULTILINE)
        if marker is None:
            raise RuntimeError(f"no result line from the SHRY driver:\n{text[-3000:]}")
        res = json.loads(marker.group(1))
        info = _parse_log(text)
    if info["n_ops"] != EXPECTED_NOPS or info["spacegroup"] != EXPECTED_SPACEGROUP:
        raise RuntimeError(f"SHRY saw space group {info['spacegroup']} / {info['n_ops']} ops")
    times = res["times"]
    return ShryResult(
        count=info["count"],
        generated=int(res["generated"]),
        total_combinations=info["total_combinations"],
        n_ops=info["n_ops"],
        spacegroup=info["spacegroup"],
        t_enum=times["count"] + times["generate"],
        t_generate=times["generate"],
        t_count=times["count"],
        t_setup=times["setup"],
        t_import=times["import"],
        t_wall=t_wall,
        command=["shry", *args],
    )


def run_shry(
    cif_path: Path,
    a5_m: int,
    a5_vac: int,
    a4_m: int = 0,
    a4_vac: int = 0,
    dopant: str = "Pt",
    timeout: float = 600.0,
) -> tuple[int, float]:
    """Return (distinct configurations reported by SHRY, SHRY enumeration seconds).

    The count is SHRY's "Expected unique patterns" (checked equal to the number of structures its
    ``--no-write`` loop generated). The time is SHRY's enumeration itself, measured with
    perf_counter inside the SHRY process around ``ScriptHelper.count()`` (Polya count) and
    ``ScriptHelper.write()`` (generation loop; with ``--no-write`` nothing is written). It excludes
    interpreter start-up, imports and SHRY's set-up (CIF parsing, symmetry search, permutation
    tables); SHRY prints no timing of its own. ``run_shry_detailed`` gives all parts.
    """
    res = run_shry_detailed(cif_path, a5_m, a5_vac, a4_m, a4_vac, dopant, timeout)
    if res.generated != res.count:
        raise RuntimeError(f"SHRY counted {res.count} but generated {res.generated}")
    return res.count, res.t_enum
