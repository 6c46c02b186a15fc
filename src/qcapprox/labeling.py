"""Label a store with any ASE calculator: resumable, parallel on dask.distributed.

Two label sets, side by side in the store (docs/store.md):

- **relaxed** (the target of the study, section 3.4): every configuration is decorated at
  the parent geometry (vacancies removed, dopant substituted), then its positions and cell
  are relaxed (ASE `FrechetCellFilter`) with an ASE optimizer until the largest force,
  cell components included, is below `fmax` (0.02 eV/A by default: at 0.05 the heavily
  defected structures are still tens of meV/atom above the minimum they reach; see
  benchmarks/relaxation.py) or the step cap is hit
  (then it is flagged unconverged and left out of training). E_total of the relaxed
  structure is the label; the single point at the parent geometry is kept as well. With a
  source store (`start_from`: another dopant's relaxed labels of the same configurations)
  a relaxation starts instead from the source's relaxed geometry of the same
  configuration, its strain carried over to this parent (`start_geometries`).
- **single-point**: E_total at the parent geometry, with forces and stress: the cheap screen.

From E_total and the atom counts the formation energy (eq. 1) and the energy above the
hull (eq. 2) follow with `qcapprox.hull.Hull`.

The bundled labeler is CHGNet (weights in its wheel, offline): a stand-in for the DFT
(VASP) labels of the study. `--calculator module:factory` takes any ASE calculator, e.g. a
VASP factory on a SLURM cluster behind a dask-jobqueue scheduler (`--scheduler ADDRESS`).

Chunks of configurations run on dask workers (a LocalCluster of processes by default);
this process alone writes: finished chunks are committed to the journal
`<store>.labels-<kind>.partial/`, and when all are done the labels are added to a copy of the
store which then replaces it. A killed run restarts where it stopped and recomputes nothing
committed. A structure whose calculation fails is recorded with its error and skipped.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cache
from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING

import h5py
import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.filters import FrechetCellFilter
from ase.optimize.optimize import Optimizer

from qcapprox.datasets import a5_defects, in_limit
from qcapprox.errors import HullError, IdentifyError, LabelingError, StoreError
from qcapprox.hull import Hull
from qcapprox.mapping import (
    UNMAPPABLE,
    RelaxationMap,
    map_relaxations,
    map_store,
    write_mapping,
)
from qcapprox.parent import VACANCY, Parent
from qcapprox.settings import (
    DEFAULT_CALCULATOR,
    FMAX,
    LABEL_CHUNK,
    LABEL_WORKERS,
    MAX_STEPS,
    OPTIMIZER,
    torch_threads,
)
from qcapprox.store import Journal, Store, one_writer, open_store, write_atomically
from qcapprox.words import LABEL_KINDS, LIMITS, MAX_DISPLACEMENT, RELAXED

if TYPE_CHECKING:
    from dask.distributed import LocalCluster

SINGLE_POINT_SETTINGS = "single point at the parent geometry"


def calculator_info(spec: str, relaxation: Relaxation | None = None) -> dict[str, str]:
    """Name, version and settings of a calculator spec (and relaxation), for provenance."""
    how = SINGLE_POINT_SETTINGS if relaxation is None else relaxation.settings
    if spec == DEFAULT_CALCULATOR:
        return {
            "calculator": "chgnet",
            "calculator_version": _version("chgnet"),
            "settings": f"CHGNetCalculator(use_device='cpu'), pretrained weights 0.3.0; {how}",
        }
    module = spec.partition(":")[0]
    return {
        "calculator": spec,
        "calculator_version": _version(module.split(".")[0]),
        "settings": f"factory {spec}(); {how}",
    }


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"


@cache
def make_calculator(spec: str) -> Calculator:
    """The calculator of a spec: "chgnet" or "module:factory" (factory() -> Calculator).

    Cached per process, so every dask worker builds its calculator once. The worker's BLAS
    is limited to its threads ($QCAPPROX_TORCH_THREADS, default 1), whatever the
    calculator: the cell filter does small dense algebra every step, and a BLAS that spreads
    3x3 solves over all cores took 2.5x CHGNet's time per step (benchmarks/relaxation.py).
    The bundled labeler's weights are frozen (no gradient is ever taken with respect to
    them): its backward pass records less, 4 % of a call, same numbers bit for bit.
    """
    import scipy.linalg  # noqa: F401  (loaded before its BLAS is limited)
    from threadpoolctl import threadpool_limits

    threads = torch_threads(default=1)
    threadpool_limits(threads)
    if spec == DEFAULT_CALCULATOR:
        import torch

        from qcapprox.labeler import CHGNetLabeler

        torch.set_num_threads(threads)
        calc = CHGNetLabeler(use_device="cpu")
        calc.model.requires_grad_(False)
        return calc
    module, _, name = spec.partition(":")
    if not name:
        raise LabelingError(f"calculator {spec!r}: use 'chgnet' or 'module:factory'")
    try:
        factory = getattr(import_module(module), name)
    except (ImportError, AttributeError) as err:
        raise LabelingError(f"calculator {spec!r}: cannot import {name} from {module}") from err
    calc = factory()
    if not isinstance(calc, Calculator) and not hasattr(calc, "get_potential_energy"):
        raise LabelingError(f"calculator {spec!r}: {name}() did not return an ASE calculator")
    return calc


# glibc malloc of the local dask workers. dask sets MALLOC_TRIM_THRESHOLD_=65536, which
# also freezes the mmap threshold at 128 KiB: every tensor of a CHGNet step is then a fresh
# mmap, 75,000 page faults per step and 3x the time (0.44 s instead of 0.13-0.15 s per
# 146-atom step, benchmarks/relaxation.py --malloc). Large thresholds keep freed memory
# in the process for the next step.
WORKER_MALLOC = {
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": str(2**30),
    "distributed.nanny.pre-spawn-environ.MALLOC_MMAP_THRESHOLD_": str(2**25),
}


def local_cluster(n_workers: int = LABEL_WORKERS) -> LocalCluster:
    """The local dask cluster of labeling: `n_workers` processes of one thread each, with
    the malloc thresholds of WORKER_MALLOC. Close it when done (it is a context manager)."""
    import dask
    from dask.distributed import LocalCluster

    with dask.config.set(WORKER_MALLOC):
        return LocalCluster(
            n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=":0"
        )


@dataclass(frozen=True)
class Relaxation:
    """How a structure is relaxed: positions and cell (ASE `FrechetCellFilter`) with an ASE
    optimizer until max_i |F_i| < fmax (eV/A; the filter's cell forces count as well) or
    `max_steps` optimizer steps (then the structure is flagged unconverged); `origin` names
    where the relaxations start (provenance)."""

    fmax: float = FMAX
    max_steps: int = MAX_STEPS
    optimizer: str = OPTIMIZER
    origin: str = "the parent geometry"

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise LabelingError(f"optimizer {self.optimizer!r}: use one of {', '.join(OPTIMIZERS)}")
        if not (self.fmax > 0 and self.max_steps > 0):
            raise LabelingError("relaxation needs fmax > 0 and max_steps > 0")

    @property
    def settings(self) -> str:
        """One line for provenance."""
        return (
            f"relaxed: FrechetCellFilter + {self.optimizer}, fmax {self.fmax} eV/A, "
            f"at most {self.max_steps} steps, from {self.origin}"
        )

    def start(self, atoms: Atoms) -> Optimizer:
        """The optimizer of `atoms` (with its calculator) on its FrechetCellFilter; the
        Precon* optimizers use ASE's Exp preconditioner (Packwood et al. 2016)."""
        module = "ase.optimize.precon" if self.optimizer.startswith("Precon") else "ase.optimize"
        optimizer = getattr(import_module(module), self.optimizer)
        extra = {"precon": "Exp"} if self.optimizer.startswith("Precon") else {}
        return optimizer(FrechetCellFilter(atoms), logfile=None, **extra)

    def run(self, atoms: Atoms) -> tuple[int, bool]:
        """Relax `atoms` (with its calculator) in place; (steps taken, converged)."""
        opt = self.start(atoms)
        converged = bool(opt.run(fmax=self.fmax, steps=self.max_steps))
        return int(opt.nsteps), converged


OPTIMIZERS = ("FIRE", "FIRE2", "BFGS", "LBFGS", "BFGSLineSearch", "PreconLBFGS", "PreconFIRE")


def internal_displacement(initial: Atoms, final: Atoms) -> float:
    """Largest atomic displacement of a relaxation without its homogeneous strain, Angstrom:
    max_i |((s_i' - s_i) mod 1) h0|, with s the fractional coordinates before (s) and after
    (s') and h0 the initial cell (differences wrapped to the nearest image)."""
    delta = final.get_scaled_positions(wrap=False) - initial.get_scaled_positions(wrap=False)
    delta -= np.round(delta)
    return float(np.linalg.norm(delta @ initial.cell[:], axis=1).max(initial=0.0))


def _same_structure(a: Parent, b: Parent, tol: float = 0.05) -> bool:
    """Whether two parents are one structure type: the same active sites and every site at
    the same fractional coordinates within `tol` (periodic), whatever the elements."""
    if len(a.atoms) != len(b.atoms) or not np.array_equal(a.active, b.active):
        return False
    delta = a.atoms.get_scaled_positions() - b.atoms.get_scaled_positions()
    return bool(np.abs(delta - np.round(delta)).max() < tol)


Start = tuple[np.ndarray, np.ndarray]  # (cell (3, 3), fractional positions (n_atoms, 3))


def start_geometries(store: Store, source: Path) -> tuple[dict[int, Start], str]:
    """Where the relaxations of a store start when a source store (another dopant, the same
    parent structure type) has relaxed the same configurations: row -> (cell, fractional
    positions), and a description of the source with the SHA-256 of its geometries.

    The source's relaxed cell h_s = h0_s D (rows are lattice vectors, D its deformation of
    the source parent h0_s) becomes h = h0 D = h0 h0_s^-1 h_s on this parent h0, with the
    source's fractional coordinates: the same relaxed structure, rescaled to this dopant.
    Only converged source relaxations are used; other rows start from the parent geometry.
    """
    source_store = Store(source)
    labels = source_store.label_set(RELAXED)
    if not _same_structure(source_store.parent, store.parent):
        raise LabelingError(
            f"{source}: its parent is not the structure of {store.path.name}'s parent (sites "
            "or their fractional coordinates differ); start from a store of the same type"
        )
    with open_store(source) as handle:
        group = handle["labels/relaxed"]
        cell, positions, offset = group["cell"][:], group["positions"][:], group["atoms_offset"][:]
    index = {occ.tobytes(): i for i, occ in enumerate(source_store.occupancy) if labels.usable[i]}
    h0_source, h0 = source_store.parent.atoms.cell[:], store.parent.atoms.cell[:]
    digest = hashlib.sha256()
    starts: dict[int, Start] = {}
    for row, occ in enumerate(store.occupancy):
        i = index.get(occ.tobytes())
        if i is None:
            continue
        relaxed = positions[offset[i] : offset[i + 1]]
        deformation = np.linalg.solve(h0_source, cell[i])  # h0_s^-1 h_s
        starts[row] = (h0 @ deformation, np.linalg.solve(cell[i].T, relaxed.T).T)
        digest.update(cell[i].tobytes() + relaxed.tobytes())
    what = f"{source.name} relaxed geometries, sha256 {digest.hexdigest()[:16]}"
    return starts, what


def label_chunk(
    spec: str,
    parent: Parent,
    rows: np.ndarray,
    occupancy: np.ndarray,
    relaxation: Relaxation | None = None,
    starts: list[Start | None] | None = None,
) -> dict[str, np.ndarray]:
    """Single points (and, with a relaxation, relaxed energies) of a chunk of configurations
    (runs on a worker). Arrays per structure; per-atom arrays are concatenated in row order.
    `starts`: per configuration, the geometry its relaxation starts from (None: the parent
    geometry); the single point is always the parent geometry's."""
    calc = make_calculator(spec)
    starts = starts or [None] * len(rows)
    n = len(rows)
    out: dict[str, list] = {key: [] for key in ("forces", "natoms", "error", "positions")}
    single = np.full(n, np.nan)
    stress = np.full((n, 6), np.nan)
    energy, steps = np.full(n, np.nan), np.zeros(n, dtype=np.int32)
    converged, displacement = np.zeros(n, dtype=bool), np.full(n, np.nan)
    cell = np.full((n, 3, 3), np.nan)
    for k, occ in enumerate(occupancy):
        atoms = parent.decorate(occ)
        initial = atoms.copy()
        atoms.calc = calc
        out["natoms"].append(len(atoms))
        forces = np.full((len(atoms), 3), np.nan)
        try:
            single[k] = atoms.get_potential_energy()
            forces = np.asarray(atoms.get_forces(), dtype=float)
            if "stress" in getattr(calc, "implemented_properties", ()):
                stress[k] = atoms.get_stress(voigt=True)
            if relaxation is not None:
                if starts[k] is not None:
                    atoms.set_cell(starts[k][0])
                    atoms.set_scaled_positions(starts[k][1])
                steps[k], converged[k] = relaxation.run(atoms)
                energy[k] = atoms.get_potential_energy()
                displacement[k] = internal_displacement(initial, atoms)
            out["error"].append("")
        except Exception as err:  # a failed structure is recorded, not fatal
            out["error"].append(f"{type(err).__name__}: {err}")
        out["forces"].append(forces)
        if relaxation is not None:
            out["positions"].append(atoms.positions)
            cell[k] = atoms.cell[:]
    result = {
        "row": rows,
        "single_point": single,
        "stress": stress,
        "forces": np.concatenate(out["forces"]),
        "natoms": np.array(out["natoms"], dtype=np.int64),
        "error": np.array(out["error"], dtype=str),
    }
    if relaxation is not None:
        result |= {
            "energy": energy,
            "steps": steps,
            "converged": converged,
            "max_displacement": displacement,
            "from_source": np.array([start is not None for start in starts]),
            "cell": cell,
            "positions": np.concatenate(out["positions"]),
        }
    return result


def labels_in_progress(path: Path) -> dict[str, dict]:
    """The labeling runs in progress beside a store (their committed journals), per label
    set: rows done, converged and failed, the limits whose rows are all done (their
    members could be trained on them) and, when the dopant's references are found, the
    energies above the hull (eV/atom) of the converged rows done so far."""
    store = Store(path)
    try:
        hull = Hull.load(store.parent.dopant)
    except HullError:
        hull = None
    progress = {}
    for kind in LABEL_KINDS:
        journal = Journal.existing(_journal_target(path, kind))
        if journal is None:
            continue
        done = np.zeros(len(store), dtype=bool)
        energy = np.full(len(store), np.nan)
        column = "energy" if kind == RELAXED else "single_point"
        failed = 0
        for segment in journal.load():
            done[segment["row"]] = True
            failed += int((segment["error"] != "").sum())
            ok = segment["converged"] if "converged" in segment else np.isfinite(
                segment["single_point"])  # fmt: skip
            energy[segment["row"][ok]] = segment[column][ok]
        good = np.flatnonzero(np.isfinite(energy))
        progress[kind] = {
            "done": int(done.sum()), "total": len(store), "converged": len(good),
            "failed": failed, "journal": journal.dir,
            "limits": [x for x in LIMITS if done[in_limit(store.composition, x)].all()],
        }  # fmt: skip
        if hull is not None and len(good):
            n_host, n_dop = store.parent.formula_counts(store.occupancy[good])
            progress[kind]["e_above_hull"] = hull.e_above_hull(energy[good], n_host, n_dop)
    return progress


def label_journal(
    path: Path, store: Store, calculator: str, relaxation: Relaxation | None = None
) -> Journal:
    """The resumable journal of labeling `store` (at `path`) with a calculator spec."""
    kind = "single-point" if relaxation is None else "relaxed"
    identity = {
        # the parent's digest, under the key the committed journals already carry
        "store_sha256": store.attrs["parent_sha256"],
        "recipe": str(store.attrs["recipe"]),
        "rows": len(store),
        **calculator_info(calculator, relaxation),
    }
    return Journal(_journal_target(path, kind), identity)


def _journal_target(path: Path, kind: str) -> Path:
    """What the journal of labeling `path` with one label set is named after."""
    return path.with_name(f"{path.name}.labels-{kind}")


@one_writer
def label_store(
    path: str | Path,
    calculator: str = DEFAULT_CALCULATOR,
    relaxation: Relaxation | None = None,
    scheduler: str | None = None,
    n_workers: int = LABEL_WORKERS,
    chunk_size: int = LABEL_CHUNK,
    hull: Hull | None = None,
    progress: Callable[[int, int], None] | None = None,
    start_from: Path | None = None,
) -> int:
    """Label every configuration of a store, relaxed (with a `relaxation`) or as single
    points; returns the number of failed structures. Relaxing also stores the single points
    unless the store has them already. `start_from`: a store of the same parent type with
    relaxed labels; configurations it relaxed (converged) start from its geometry."""
    from dask.distributed import Client, as_completed

    path = Path(path)
    store = Store(path)
    kind = "single-point" if relaxation is None else "relaxed"
    if kind in store.labels:
        raise LabelingError(
            f"{path} already has {kind} labels ({store.labels[kind].attrs['calculator']})"
        )
    hull = hull or Hull.load(store.parent.dopant)
    starts: dict[int, Start] = {}
    if start_from is not None:
        if relaxation is None:
            raise LabelingError("starting geometries from another store need a relaxation")
        starts, what = start_geometries(store, Path(start_from))
        relaxation = replace(
            relaxation, origin=f"{what} where it has the configuration, else the parent geometry"
        )
    journal = label_journal(path, store, calculator, relaxation)
    done = np.zeros(len(store), dtype=bool)
    for segment in journal.load():
        done[segment["row"]] = True
    # fewest A5 defects first: the test set and the small limits are complete early
    todo = np.flatnonzero(~done)
    todo = todo[np.argsort(a5_defects(store.composition[todo]), kind="stable")]
    if progress:
        progress(int(done.sum()), len(store))
    if len(todo):
        cluster = local_cluster(n_workers) if scheduler is None else None
        with Client(scheduler or cluster) as client:
            parent = client.scatter(store.parent, broadcast=True)
            chunks = [todo[i : i + chunk_size] for i in range(0, len(todo), chunk_size)]
            futures = [
                client.submit(label_chunk, calculator, parent, rows, store.occupancy[rows],
                              relaxation, [starts.get(int(r)) for r in rows], pure=False)
                for rows in chunks
            ]  # fmt: skip
            for future in as_completed(futures):
                result = future.result()
                journal.add(int(done.sum() + len(result["row"])), result)
                done[result["row"]] = True
                if progress:
                    progress(int(done.sum()), len(store))
                future.release()
        if cluster is not None:
            cluster.close()
    kinds = [kind]
    if relaxation is not None and "single-point" not in store.labels:
        kinds.append("single-point")  # the relaxation's first step, kept
    info = calculator_info(calculator, relaxation)
    failed = write_labels(path, store, journal, hull, info, kinds)
    journal.remove()
    return failed


PER_ATOM = ("forces", "positions")  # journal arrays with one row per atom


def _gather(journal: Journal, n: int, path: Path) -> dict[str, np.ndarray]:
    """The journal's segments as whole columns in row order (per-atom arrays with offsets)."""
    segments = list(journal.load())
    rows = np.concatenate([seg["row"] for seg in segments])
    if len(rows) != n or not np.array_equal(np.sort(rows), np.arange(n)):
        raise StoreError(f"{path}: the labels journal misses rows; run `qcapprox label` again")
    order = np.argsort(rows)
    columns: dict[str, np.ndarray] = {}
    for key in segments[0]:
        if key in PER_ATOM:
            continue
        columns[key] = np.concatenate([seg[key] for seg in segments])[order]
    natoms = np.concatenate([seg["natoms"] for seg in segments])
    starts = np.concatenate([[0], np.cumsum(natoms)])
    for key in PER_ATOM:
        if key not in segments[0]:
            continue
        flat = np.concatenate([seg[key] for seg in segments])
        columns[key] = np.concatenate([flat[starts[i] : starts[i + 1]] for i in order])
    columns["offset"] = np.concatenate([[0], np.cumsum(columns["natoms"])])
    return columns


def write_labels(
    path: Path,
    store: Store,
    journal: Journal,
    hull: Hull,
    info: dict,
    kinds: list[str],
    mapping: RelaxationMap | None = None,
) -> int:
    """Add the label sets `kinds` (labels/relaxed, labels/single-point) from the journal to a
    copy of the store, then rename; returns the number of failed rows. Relaxed labels carry
    their relaxation map (`qcapprox.mapping`): `mapping`, else mapped from the relaxed
    geometries."""
    columns = _gather(journal, len(store), path)
    n_host, n_dop = store.parent.formula_counts(store.occupancy)
    error = columns["error"].astype(str)

    def hull_columns(group: h5py.Group, energy: np.ndarray, converged: np.ndarray) -> None:
        group["energy"] = energy
        _write_hull_fields(group, hull, energy, n_host, n_dop)
        group["converged"] = converged
        group.create_dataset("error", data=error.tolist(), dtype=h5py.string_dtype())
        for key, value in info.items():
            group.attrs[key] = value
        group.attrs["stand_in_for_dft"] = info["calculator"] == DEFAULT_CALCULATOR

    def per_atom(group: h5py.Group, key: str) -> None:
        group.create_dataset(key, data=columns[key], chunks=True, compression="gzip", shuffle=True)
        group["atoms_offset"] = columns["offset"]

    if "relaxed" in kinds:
        mapping = mapping or map_relaxations(
            store.parent, store.ids, store.occupancy, columns["cell"], columns["positions"],
            columns["offset"],
        )  # fmt: skip

    def fill(handle: h5py.File) -> None:
        if "single-point" in kinds:
            group = handle.create_group("labels/single-point")
            hull_columns(group, columns["single_point"], np.isfinite(columns["single_point"]))
            calculator = str(info["settings"]).split(";")[0]
            group.attrs["settings"] = f"{calculator}; {SINGLE_POINT_SETTINGS}"
            per_atom(group, "forces")
            group["stress"] = columns["stress"]
        if "relaxed" in kinds:
            group = handle.create_group("labels/relaxed")
            hull_columns(group, columns["energy"], columns["converged"])
            for key in ("steps", "max_displacement", "cell"):
                group[key] = columns[key]
            group["from_source"] = columns.get("from_source", np.zeros(len(store), dtype=bool))
            per_atom(group, "positions")
            write_mapping(group, mapping)

    write_atomically(path, fill, base=path)
    return int((error != "").sum())


def _write_hull_fields(
    group: h5py.Group, hull: Hull, energy: np.ndarray, n_host: np.ndarray, n_dop: np.ndarray
) -> None:
    """The hull quantities of a label set from its total energies (eqs. 1 and 2), and the
    references they come from (replaced if the group has them)."""
    for key, values in (("formation_energy", hull.formation_energy(energy, n_host, n_dop)),
                        ("e_above_hull", hull.e_above_hull(energy, n_host, n_dop))):  # fmt: skip
        if key in group:
            del group[key]
        group[key] = values
    group.attrs["references"] = json.dumps(
        {"source": hull.source, "stable": list(hull.stable_names)}
    )


def stale_hull(store: Store, kind: str) -> str | None:
    """Why the hull quantities of a label set no longer match the dopant's references (its
    recorded hull vertices differ from the current ones), or None when they match or no
    references are found here to compare with."""
    recorded = json.loads(store.label_set(kind).attrs.get("references", "{}")).get("stable")
    try:
        current = list(Hull.load(store.parent.dopant).stable_names)
    except HullError:
        return None
    if recorded is None or recorded == current:
        return None
    return (
        f"{store.path}: the {kind} labels' energies above the hull were computed against "
        f"the hull {', '.join(recorded)}, not the current {', '.join(current)}; run "
        f"`qcapprox rehull {store.path}`"
    )


@one_writer
def rehull(path: str | Path, hull: Hull | None = None) -> dict[str, tuple[int, int]]:
    """Recompute the formation energies and energies above the hull of every label set of a
    store from its total energies, with `hull` (default: the dopant's references as they are
    now): after the references changed, e.g. a new competing phase. Written to a copy, then
    renamed. Returns {label set: (rows below the hull before, after)}."""
    path = Path(path)
    store = Store(path)
    if not store.labels:
        raise LabelingError(f"{path} has no labels: nothing to recompute")
    hull = hull or Hull.load(store.parent.dopant)
    n_host, n_dop = store.parent.formula_counts(store.occupancy)
    counts = {}
    for kind in store.labels:
        labels = store.label_set(kind)
        after = hull.e_above_hull(labels.energy, n_host, n_dop)
        counts[kind] = (int((labels.e_above_hull < 0).sum()), int((after < 0).sum()))

    def fill(handle: h5py.File) -> None:
        for kind, labels in store.labels.items():
            _write_hull_fields(handle[f"labels/{kind}"], hull, labels.energy, n_host, n_dop)

    write_atomically(path, fill, base=path)
    return counts


@one_writer
def remap(
    path: str | Path,
    tolerance: float = MAX_DISPLACEMENT,
    progress: Callable[[int, int], None] | None = None,
) -> RelaxationMap:
    """Map the relaxed labels of a store from their stored relaxed geometries
    (`qcapprox.mapping`), replacing a map they have; written to a copy, then renamed."""
    path = Path(path)
    mapping = map_store(path, tolerance, progress)
    write_atomically(path, lambda h: write_mapping(h["labels/relaxed"], mapping), base=path)
    return mapping


DUPLICATES = ("refuse", "lowest", "last")  # what import_energies does with a configuration twice
SAME_ENERGY = 1e-6  # eV: two energies of one configuration this close are one energy


def import_energies(
    store_path: str | Path,
    structures: str | Path,
    kind: str = "relaxed",
    hull: Hull | None = None,
    duplicates: str = "refuse",
    replace: bool = False,
) -> int:
    """Label a store from structures with energies (extxyz, VASP OUTCAR/vasprun, any ASE
    format), e.g. the DFT results of the study. Returns the number of configurations
    labelled.

    Each structure is matched to its configuration with `Parent.identify` (any atom order,
    relaxed or not) and its total energy becomes the label of `kind` ("relaxed" for the
    energies of relaxed structures, the default; "single-point" for the parent geometry).
    Configurations without a structure get NaN and the error "no structure".

    Every structure is checked before anything is written: periodic in all three
    directions, a finite energy, a configuration of the store. Two structures of one
    configuration whose energies differ (by more than `SAME_ENERGY`) are refused unless
    `duplicates` says which to keep ("lowest" or "last"). A file without structures, or
    any fault, writes nothing. An existing label set of `kind` is refused unless `replace`;
    then it is replaced in one rename (the store holds the old set or the new one). The
    caller holds the store's writer lock (`qcapprox import-energies` does).
    """
    from ase.io import read

    from qcapprox.enumeration import Enumerator

    store_path, structures = Path(store_path), Path(structures)
    if kind not in LABEL_KINDS:
        raise LabelingError(f"unknown label set {kind!r}: use one of {', '.join(LABEL_KINDS)}")
    if duplicates not in DUPLICATES:
        raise LabelingError(f"duplicates {duplicates!r}: use one of {', '.join(DUPLICATES)}")
    store = Store(store_path)
    if kind in store.labels and not replace:
        raise LabelingError(
            f"{store_path} already has {kind} labels: pass --replace to replace them, or "
            f"remove them with `qcapprox labels drop {store_path} --labels {kind}`"
        )
    try:
        images = read(structures, index=":")
    except Exception as err:
        raise LabelingError(f"{structures}: cannot read structures ({err})") from err
    if not images:
        raise LabelingError(f"{structures}: holds no structures; nothing was imported")
    hull = hull or Hull.load(store.parent.dopant)
    enumerator = Enumerator.from_parent(store.parent)
    energy = np.full(len(store), np.nan)
    source = np.full(len(store), -1)  # the structure each row's energy comes from
    into = np.full(len(store), UNMAPPABLE, dtype=np.int64)
    displacement = np.full(len(store), np.nan)
    for k, atoms in enumerate(images):
        where = f"{structures}: structure {k}"
        if not atoms.pbc.all():
            raise LabelingError(
                f"{where} has pbc={atoms.pbc.tolist()}: a label of the bulk crystal needs a "
                "structure periodic in all three directions"
            )
        try:
            value = float(atoms.get_potential_energy())
        except Exception as err:
            raise LabelingError(f"{where} carries no energy") from err
        if not np.isfinite(value):
            raise LabelingError(f"{where} has energy {value}: energies must be finite")
        try:
            match = store.parent.match(atoms)
        except IdentifyError as err:
            raise LabelingError(f"{where}: {err}") from err
        config_id = enumerator.config_ids(match.occupancy)[0]
        hits = np.flatnonzero(store.ids == config_id)
        if len(hits) == 0:
            raise LabelingError(f"{where} is not a configuration of {store_path}")
        row = hits[0]
        if source[row] >= 0:  # the configuration again
            same = abs(value - energy[row]) <= SAME_ENERGY
            if not same and duplicates == "refuse":
                raise LabelingError(
                    f"{structures}: structures {source[row]} and {k} are both configuration "
                    f"{config_id} with energies {energy[row]:.6f} and {value:.6f} eV; pass "
                    "--duplicates lowest or --duplicates last to choose"
                )
            if same or (duplicates == "lowest" and value >= energy[row]):
                continue
        energy[row], source[row] = value, k
        into[row], displacement[row] = config_id, match.max_displacement
    natoms = len(store.parent.atoms) - (store.occupancy == VACANCY).sum(axis=1)
    info = {
        "calculator": f"imported from {structures.name}",
        "calculator_version": "",
        "settings": f"{kind} total energies of the given structures",
    }
    n = len(store)
    missing = np.isnan(energy)
    columns = {
        "row": np.arange(n),
        "natoms": natoms,
        "error": np.where(missing, "no structure", ""),
        "stress": np.full((n, 6), np.nan),
        "forces": np.full((int(natoms.sum()), 3), np.nan),
    }
    if kind == "single-point":
        columns["single_point"] = energy
    else:
        columns |= {
            "single_point": np.full(n, np.nan),
            "energy": energy,
            "steps": np.zeros(n, dtype=np.int32),
            "converged": ~missing,
            "max_displacement": np.full(n, np.nan),
            "cell": np.full((n, 3, 3), np.nan),
            "positions": np.full((int(natoms.sum()), 3), np.nan),
        }
    target = store_path.with_name(f"{store_path.name}.labels-import")
    if (stale := Journal.existing(target)) is not None:
        stale.remove()  # an import killed before: never resumed, the caller holds the lock
    journal = Journal(target, info)
    # an imported structure is the configuration it identifies as: it kept its identity
    mapping = RelaxationMap(into, into != UNMAPPABLE, displacement, MAX_DISPLACEMENT)
    try:
        journal.add(n, columns)
        if kind in store.labels:
            replaced = store_path.with_name(f"{store_path.name}.replace")
            try:
                _copy_without_labels(store_path, kind, replaced)
                write_labels(replaced, store, journal, hull, info, [kind], mapping)
                os.replace(replaced, store_path)
            finally:
                replaced.unlink(missing_ok=True)
        else:
            write_labels(store_path, store, journal, hull, info, [kind], mapping)
    finally:
        journal.remove()
    return int((~missing).sum())


def _copy_without_labels(path: Path, kind: str, out: Path) -> None:
    """Write `out` (atomically): the store `path` without its labels/<kind> group."""

    def fill(handle: h5py.File) -> None:
        with h5py.File(path, "r") as src:
            for key, value in src.attrs.items():
                handle.attrs[key] = value
            for name, item in src.items():
                if name != "labels":
                    src.copy(item, handle, name=name)
                    continue
                kept = [other for other in item if other != kind]
                if kept:
                    group = handle.create_group("labels")
                    for other in kept:
                        src.copy(item[other], group, name=other)

    write_atomically(out, fill, reserve=path.stat().st_size)  # the copy is no larger


@one_writer
def drop_labels(path: str | Path, kind: str) -> None:
    """Remove a label set of a store on purpose (`qcapprox labels drop`): a copy without
    labels/<kind> is written and renamed over the store, under its writer lock."""
    path = Path(path)
    if kind not in LABEL_KINDS:
        raise LabelingError(f"unknown label set {kind!r}: use one of {', '.join(LABEL_KINDS)}")
    store = Store(path)
    if kind not in store.labels:
        have = ", ".join(store.labels) or "none"
        raise LabelingError(f"{path} has no {kind} labels (it has: {have}); nothing was changed")
    _copy_without_labels(path, kind, path)
