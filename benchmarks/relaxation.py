"""Relaxation throughput: seconds and steps per structure, energy error against a tight
reference, per ASE optimizer and force threshold, and the workers x threads layout.

Every (structure, optimizer) pair is relaxed once down to the tight threshold (fmax 0.01
eV/A, positions and cell, `FrechetCellFilter`) from the parent geometry, as the labeler
does; the trajectory of an ASE optimizer does not depend on its threshold, so the first
step at which max|F| < f gives the steps, seconds and energy of a run at threshold f. The
error of threshold f is that energy minus the tight energy of the same run (what stopping
early costs); "basin" is the run's tight energy minus the lowest tight energy of all
optimizers for the structure (different optimizers may end in different local minima).
Throughput is structures per hour on the machine's cores with one structure per worker.
The layout part times relaxation steps (FIRE) with workers x threads, and with the BLAS
left at its default thread count (the baseline before qcapprox limited it).

    python benchmarks/relaxation.py --dopant Pt --n 10 --optimizers FIRE,FIRE2,BFGS,LBFGS
Writes benchmarks/results/relaxation-<dopant>.json and prints Markdown tables.
`--gradients` times chgnet's CHGNetCalculator against the bundled CHGNetLabeler instead;
`--malloc` times the labeler with glibc's, dask's and qcapprox's worker malloc settings;
`--graph` times chgnet's graph converter against `qcapprox.labeler.crystal_graph` on
rattled, compressed (relaxation-like) structures; `--batched` times CHGNet on batches of
1, 4 and 8 structures per model call (what batched relaxation, e.g. torch-sim, would do),
per structure on one thread. `--start-from SOURCE` relaxes `--n` structures of the dopant's
training set that SOURCE (another dopant's store with relaxed labels) relaxed, from the
parent geometry and from SOURCE's relaxed geometry (`qcapprox.labeling.start_geometries`),
with the labeler's settings: steps, seconds and the energy difference of the two ends.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from qcapprox.datasets import a5_defects
from qcapprox.labeling import Relaxation, make_calculator, start_geometries
from qcapprox.models.base import training_store
from qcapprox.parent import Parent
from qcapprox.settings import THREADS_ENV
from qcapprox.store import Store

THRESHOLDS = (0.2, 0.15, 0.1, 0.075, 0.05, 0.02)
RESULTS = Path(__file__).parent / "results"


def _init(threads: int, blas: int | None = None) -> None:
    from threadpoolctl import threadpool_limits

    os.environ[THREADS_ENV] = str(threads)
    make_calculator("chgnet")
    if blas is not None:
        threadpool_limits(blas, user_api="blas")  # the unlimited baseline


def trace(job: tuple[Parent, np.ndarray, str, float, int]) -> list[tuple[float, float, float]]:
    """(max force, energy per atom, seconds) after every step of one relaxation."""
    parent, occupancy, name, tight, steps = job
    atoms = parent.decorate(occupancy)
    atoms.calc = make_calculator("chgnet")
    relaxation = Relaxation(tight, steps, name)
    opt = relaxation.start(atoms)
    out, start = [], time.perf_counter()
    for _ in opt.irun(fmax=relaxation.fmax, steps=relaxation.max_steps):
        force = float(opt.optimizable.gradient_norm(opt.optimizable.get_gradient()))
        out.append((force, float(atoms.get_potential_energy()) / len(atoms),
                    time.perf_counter() - start))  # fmt: skip
    return out


def layout(
    parent: Parent, occupancy: np.ndarray, workers: int, threads: int, blas: int | None
) -> float:
    """FIRE relaxation steps per second with workers x threads (BLAS limited to the
    threads, or to `blas`)."""
    with get_context("spawn").Pool(workers, _init, (threads, blas)) as pool:
        pool.map(_steps, [(parent, occupancy, 2)] * workers)  # warm up
        start = time.perf_counter()
        pool.map(_steps, [(parent, occupancy, 20)] * workers)
        return workers * 20 / (time.perf_counter() - start)


def _steps(job: tuple[Parent, np.ndarray, int]) -> None:
    parent, occupancy, n = job
    atoms = parent.decorate(occupancy)
    atoms.calc = make_calculator("chgnet")
    Relaxation(fmax=1e-6, max_steps=n).run(atoms)


def gradients(parent: Parent, occupancy: np.ndarray, calls: int = 20) -> dict[str, float]:
    """Median seconds of one energy + forces + stress call on one thread: chgnet's
    CHGNetCalculator (two backward passes that build the gradient's graph) against the
    bundled CHGNetLabeler (one pass), alternating so that both see the same machine load."""
    from chgnet.model.dynamics import CHGNetCalculator

    from qcapprox.labeler import CHGNetLabeler

    _init(1)
    stock = CHGNetCalculator(use_device="cpu")
    calculators = {
        "chgnet CHGNetCalculator": stock,
        "qcapprox CHGNetLabeler": CHGNetLabeler(model=stock.model, use_device="cpu"),
    }
    times: dict[str, list[float]] = {key: [] for key in calculators}
    for k in range(calls):
        atoms = parent.decorate(occupancy)
        atoms.rattle(0.01, seed=k)
        for key, calc in calculators.items():
            start = time.perf_counter()
            calc.get_property("stress", atoms.copy())  # energy, forces and stress in one call
            times[key].append(time.perf_counter() - start)
    return {key: float(np.median(t)) for key, t in times.items()}  # fmt: skip


def graph(store: Store, n: int = 8, reps: int = 5) -> dict[str, float]:
    """Median seconds per crystal graph of n training structures, compressed by 5 % and
    rattled (a relaxed cell has about five times the angles of the parent geometry):
    chgnet's converter (one Python object per edge) against the array-built graph."""
    from chgnet.model import CHGNet
    from pymatgen.io.ase import AseAtomsAdaptor

    from qcapprox.labeler import crystal_graph

    _init(1)
    converter = CHGNet.load(verbose=False).graph_converter
    builders = {
        "chgnet CrystalGraphConverter": converter,
        "qcapprox crystal_graph": lambda s: crystal_graph(converter, s),
    }
    times: dict[str, list[float]] = {key: [] for key in builders}
    for row in np.linspace(0, len(store) - 1, n).astype(int):
        atoms = store.parent.decorate(store.occupancy[row])
        atoms.set_cell(atoms.cell * 0.95, scale_atoms=True)
        atoms.rattle(0.05, seed=int(row))
        structure = AseAtomsAdaptor.get_structure(atoms)
        for _ in range(reps):
            for key, build in builders.items():
                start = time.perf_counter()
                build(structure)
                times[key].append(time.perf_counter() - start)
    return {key: float(np.median(t)) for key, t in times.items()}


def batched(store: Store, sizes: tuple[int, ...] = (1, 4, 8), reps: int = 5) -> dict[str, float]:
    """Median seconds per structure of energy + forces + stress with `size` structures in
    one CHGNet call (one graph batch, one backward pass), on one thread; sizes alternate
    so that all see the same machine load."""
    import torch
    from chgnet.model.model import BatchedGraph
    from pymatgen.io.ase import AseAtomsAdaptor

    _init(1)
    model = make_calculator("chgnet").model
    rows = np.linspace(len(store) // 2, len(store) - 1, max(sizes)).astype(int)
    structures = [AseAtomsAdaptor.get_structure(store.atoms(int(store.ids[r]))) for r in rows]

    def call(batch: list) -> None:
        graphs = [model.graph_converter(s) for s in batch]
        graph = BatchedGraph.from_graphs(graphs, bond_basis_expansion=model.bond_basis_expansion,
                                         angle_basis_expansion=model.angle_basis_expansion,
                                         compute_stress=True)  # fmt: skip
        energy = model._compute(graph)["e"]
        torch.autograd.grad(energy.sum(), [*graph.atom_positions, *graph.strains])

    times: dict[int, list[float]] = {size: [] for size in sizes}
    for _ in range(reps):
        for size in sizes:
            start = time.perf_counter()
            for k in range(0, len(structures), size):
                call(structures[k : k + size])
            times[size].append((time.perf_counter() - start) / len(structures))
    return {f"batch of {size}": float(np.median(t)) for size, t in times.items()}


def probe(dopant: str, calls: int = 20) -> dict[str, float]:
    """Per call of the bundled labeler on one thread, in this process: wall, user and
    system seconds and minor page faults (medians would hide nothing here: means)."""
    import resource

    parent = Parent.load(dopant)
    os.environ["QCAPPROX_TORCH_THREADS"] = "1"
    calc = make_calculator("chgnet")
    atoms = parent.decorate(parent.known_phase())
    calc.get_property("stress", atoms.copy())  # warm up
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for k in range(calls):
        atoms.rattle(0.01, seed=k)
        calc.get_property("stress", atoms.copy())
    after = resource.getrusage(resource.RUSAGE_SELF)
    return {"wall_s": (time.perf_counter() - start) / calls,
            "user_s": (after.ru_utime - before.ru_utime) / calls,
            "system_s": (after.ru_stime - before.ru_stime) / calls,
            "page_faults": (after.ru_minflt - before.ru_minflt) / calls}  # fmt: skip


def malloc(dopant: str) -> dict[str, dict[str, float]]:
    """`probe` in fresh processes with glibc's default malloc, with the environment dask
    gives its workers (MALLOC_TRIM_THRESHOLD_=65536) and with the labeler's workers' one."""
    import subprocess
    import sys

    import dask
    import distributed  # noqa: F401  (loads its config defaults)

    from qcapprox.labeling import WORKER_MALLOC

    dask_env = dict(dask.config.get("distributed.nanny.pre-spawn-environ"))
    with dask.config.set(WORKER_MALLOC):
        ours = dict(dask.config.get("distributed.nanny.pre-spawn-environ"))  # a copy
    plain = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    envs = {"glibc default": plain,
            "dask workers (trim 64 KiB)": {**plain, **{k: str(v) for k, v in dask_env.items()}},
            "qcapprox workers (trim 1 GiB, mmap 32 MiB)": {
                **plain, **{k: str(v) for k, v in ours.items()}}}  # fmt: skip
    out = {}
    for name, env in envs.items():
        run = subprocess.run([sys.executable, __file__, "--dopant", dopant, "--probe"],
                             env=env, capture_output=True, text=True, check=True)  # fmt: skip
        out[name] = json.loads(run.stdout.strip().splitlines()[-1])
    return out


def _relax_from(job: tuple[Parent, np.ndarray, tuple | None]) -> dict[str, float]:
    """One relaxation with the labeler's settings, from the parent geometry (start None) or
    from (cell, fractional positions): steps, converged, eV/atom at the end, seconds."""
    parent, occupancy, start = job
    atoms = parent.decorate(occupancy)
    atoms.calc = make_calculator("chgnet")
    if start is not None:
        atoms.set_cell(start[0])
        atoms.set_scaled_positions(start[1])
    begin = time.perf_counter()
    steps, converged = Relaxation().run(atoms)
    seconds = time.perf_counter() - begin
    energy = atoms.get_potential_energy() / len(atoms)
    return {"steps": steps, "converged": converged, "energy": energy, "seconds": seconds}


def start_from(store: Store, source: Path, n: int, seed: int, workers: int) -> list[dict]:
    """n structures the source relaxed (spread evenly over the A5-defect counts), each
    relaxed from the parent geometry and from the source's relaxed geometry."""
    starts, _ = start_geometries(store, source)
    rows = np.array(sorted(starts))
    defects = a5_defects(store.composition[rows])
    rng = np.random.default_rng(seed)
    levels = np.unique(defects)
    picks = [rng.choice(rows[defects == d]) for d in levels[:: max(1, len(levels) // n)]][:n]
    jobs = [(store.parent, store.occupancy[r], start) for r in picks
            for start in (None, starts[r])]  # fmt: skip
    with get_context("spawn").Pool(workers, _init, (1,)) as pool:
        ends = pool.map(_relax_from, jobs, chunksize=1)
    defects_of = dict(zip(rows.tolist(), defects.tolist(), strict=True))
    return [{"row": int(r), "a5_defects": defects_of[int(r)],
             "parent": ends[2 * k], "source": ends[2 * k + 1]}
            for k, r in enumerate(picks)]  # fmt: skip


def report_start_from(runs: list[dict], workers: int) -> None:
    """Markdown: per start, steps, seconds, throughput; the energy difference of the ends."""
    print("| start | steps (median / max) | s per structure | structures/h | converged |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for start in ("parent", "source"):
        steps = [run[start]["steps"] for run in runs]
        seconds = float(np.mean([run[start]["seconds"] for run in runs]))
        print(f"| {start} | {np.median(steps):.0f} / {max(steps)} | {seconds:.1f} | "
              f"{workers * 3600 / seconds:.0f} | "
              f"{sum(run[start]['converged'] for run in runs)}/{len(runs)} |")  # fmt: skip
    delta = np.array([1000 * (run["source"]["energy"] - run["parent"]["energy"]) for run in runs])
    print(f"\nsource end minus parent end, meV/atom: min {delta.min():+.1f}, median "
          f"{np.median(delta):+.1f}, max {delta.max():+.1f}; lower by more than 1: "
          f"{int((delta < -1).sum())}, within 1: {int((abs(delta) <= 1).sum())}, higher by "
          f"more than 1: {int((delta > 1).sum())} of {len(delta)}")  # fmt: skip


def summarize(runs: list[dict], workers: int, tight: float) -> list[dict]:
    """Per optimizer and threshold: steps, seconds, throughput and energy errors."""
    names = list(dict.fromkeys(run["optimizer"] for run in runs))
    rows = {run["row"] for run in runs}
    best = {r: min(run["trace"][-1][1] for run in runs if run["row"] == r) for r in rows}
    table = []
    for name in names:
        mine = [x for x in runs if x["optimizer"] == name]
        basin = [1000 * (run["trace"][-1][1] - best[run["row"]]) for run in mine]
        for fmax in THRESHOLDS:
            steps, seconds, errors = [], [], []
            for run in mine:
                hit = next((k for k, t in enumerate(run["trace"]) if t[0] < fmax), None)
                k = len(run["trace"]) - 1 if hit is None else hit
                steps.append(k + 1)
                seconds.append(run["trace"][k][2])
                errors.append(1000 * (run["trace"][k][1] - run["trace"][-1][1]))
            table.append({
                "optimizer": name, "fmax": fmax,
                "steps_median": float(np.median(steps)), "steps_max": int(max(steps)),
                "seconds_mean": float(np.mean(seconds)),
                "structures_per_hour": workers * 3600 / float(np.mean(seconds)),
                "error_mev_max": float(np.max(np.abs(errors))),
                "error_mev_mean": float(np.mean(errors)),
                "basin_mev_mean": float(np.mean(basin)),
                "tight_reached": int(sum(run["trace"][-1][0] < tight for run in mine)),
            })  # fmt: skip
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dopant", default="Pt")
    parser.add_argument("--n", type=int, default=10, help="structures")
    parser.add_argument("--optimizers", default="FIRE,FIRE2,PreconLBFGS")
    parser.add_argument("--tight", type=float, default=0.01)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--store", type=Path, default=None)
    parser.add_argument("--table", type=Path, help="only print the tables of a saved run (.json)")
    parser.add_argument("--no-layout", action="store_true", help="skip the layout timings")
    parser.add_argument("--out", default="", help="suffix of the results file name")
    parser.add_argument(
        "--gradients",
        action="store_true",
        help="only time chgnet's calculator against the bundled labeler",
    )
    parser.add_argument(
        "--malloc",
        action="store_true",
        help="only time the labeler under three malloc environments",
    )
    parser.add_argument(
        "--batched",
        action="store_true",
        help="only time CHGNet on batches of 1, 4 and 8 structures per call",
    )
    parser.add_argument(
        "--graph",
        action="store_true",
        help="only time chgnet's graph converter against the array-built graph",
    )
    parser.add_argument(
        "--start-from",
        type=Path,
        help="relax from the parent and from this store's relaxed geometries",
    )
    parser.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        print(json.dumps(probe(args.dopant)))
        return
    if args.malloc:
        figures = malloc(args.dopant)
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / f"relaxation-malloc-{args.dopant}.json").write_text(json.dumps(figures))
        for name, f in figures.items():
            print(f"  {name}: {f['wall_s']:.3f} s per call (user {f['user_s']:.3f}, system "
                  f"{f['system_s']:.3f}), {f['page_faults']:,.0f} page faults")  # fmt: skip
        return
    store = Store(args.store or training_store(args.dopant))
    timings = {  # mode: (seconds per call by name, unit scale, unit)
        "gradients": (lambda: gradients(store.parent, store.occupancy[len(store) // 2]),
                      1, "s per energy + forces + stress"),
        "graph": (lambda: graph(store), 1000, "ms per graph"),
        "batched": (lambda: batched(store), 1, "s per structure (energy + forces + stress)"),
    }  # fmt: skip
    for mode, (measure, scale, unit) in timings.items():
        if getattr(args, mode):
            seconds = measure()
            RESULTS.mkdir(exist_ok=True)
            (RESULTS / f"relaxation-{mode}-{args.dopant}.json").write_text(json.dumps(seconds))
            for key, value in seconds.items():
                print(f"  {key}: {value * scale:.3f} {unit}")
            return
    if args.start_from:
        runs = start_from(store, args.start_from, args.n, args.seed, args.workers)
        RESULTS.mkdir(exist_ok=True)
        out = RESULTS / f"relaxation-{args.dopant}-from-{args.start_from.stem}{args.out}.json"
        out.write_text(json.dumps(runs))
        report_start_from(runs, args.workers)
        return
    if args.table:
        saved = json.loads(args.table.read_text())
        report(summarize(saved["runs"], args.workers, args.tight), saved["layouts"])
        return

    rows = np.sort(np.random.default_rng(args.seed).choice(len(store), args.n, replace=False))
    names = args.optimizers.split(",")
    jobs = [(store.parent, store.occupancy[r], name, args.tight, args.steps)
            for r in rows for name in names]  # fmt: skip
    with get_context("spawn").Pool(args.workers, _init, (1,)) as pool:
        traces = pool.map(trace, jobs, chunksize=1)
    runs = [
        {"row": int(r), "optimizer": name, "trace": t}
        for (r, name), t in zip([(r, n) for r in rows for n in names], traces, strict=True)
    ]
    table = summarize(runs, args.workers, args.tight)
    occupancy = store.occupancy[rows[0]]
    cores = os.cpu_count() or 1
    runs_of = {
        f"{args.workers} workers x 1 thread": (args.workers, 1, None),
        f"1 worker x {cores} threads": (1, cores, None),
        f"{args.workers} workers x 1 thread, BLAS default ({cores})": (args.workers, 1, cores),
    }
    layouts = (
        {}
        if args.no_layout
        else {key: layout(store.parent, occupancy, *spec) for key, spec in runs_of.items()}
    )
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"relaxation-{args.dopant}{args.out}.json"
    out.write_text(json.dumps({"rows": rows.tolist(), "table": table, "layouts": layouts,
                               "runs": runs}, indent=None))  # fmt: skip
    report(table, layouts)


def report(table: list[dict], layouts: dict[str, float]) -> None:
    """Print the Markdown table and the layout figures."""
    print(
        "| optimizer | fmax eV/A | steps (median / max) | s per structure | structures/h "
        "| error vs tight, max / mean meV/atom | basin meV/atom |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in table:
        print(f"| {row['optimizer']} | {row['fmax']} | {row['steps_median']:.0f} / "
              f"{row['steps_max']} | {row['seconds_mean']:.1f} | "
              f"{row['structures_per_hour']:.0f} | {row['error_mev_max']:.1f} / "
              f"{row['error_mev_mean']:+.1f} | {row['basin_mev_mean']:+.1f} |")  # fmt: skip
    print("\nFIRE relaxation steps per second (146-atom cell, positions and cell):")
    for key, rate in layouts.items():
        print(f"  {key}: {rate:.2f}/s")


if __name__ == "__main__":
    main()
