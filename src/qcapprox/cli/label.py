"""Commands that label: label, references, import-energies, rehull."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from qcapprox.cli.core import console
from qcapprox.cli.options import (
    CalculatorOpt,
    ChunkOpt,
    DopantOpt,
    FmaxOpt,
    LabelsOpt,
    MaxStepsOpt,
    OptimizerOpt,
    SchedulerOpt,
    WorkersOpt,
    check_out_dir,
    out_option,
    relaxation_of,
)
from qcapprox.cli.progress import Board
from qcapprox.settings import (
    DEFAULT_CALCULATOR,
    FMAX,
    LABEL_CHUNK,
    LABEL_WORKERS,
    MAX_STEPS,
    OPTIMIZER,
)
from qcapprox.words import RELAXED


def label(
    store: Annotated[Path, typer.Argument(help="A qcapprox store (.h5) to label.")],
    labels: LabelsOpt = RELAXED,
    calculator: CalculatorOpt = DEFAULT_CALCULATOR,
    fmax: FmaxOpt = FMAX,
    max_steps: MaxStepsOpt = MAX_STEPS,
    optimizer: OptimizerOpt = OPTIMIZER,
    scheduler: SchedulerOpt = None,
    workers: WorkersOpt = LABEL_WORKERS,
    chunk: ChunkOpt = LABEL_CHUNK,
    start_from: Annotated[
        Path | None,
        typer.Option(
            help="A store of another dopant with relaxed labels: configurations it relaxed "
            "start from its relaxed geometry (rescaled to this parent), not the parent's."
        ),
    ] = None,
) -> None:
    """Label every configuration with an ASE calculator (resumable, on dask workers)."""
    import numpy as np

    from qcapprox.labeling import label_store
    from qcapprox.store import Store

    relaxation = relaxation_of(labels, fmax, max_steps, optimizer)
    with Board(workers=True) as board:
        failed = label_store(
            store, calculator, relaxation, scheduler, workers, chunk,
            progress=board.step(f"label {store.name} ({labels})", "structures"),
            start_from=start_from,
        )  # fmt: skip
    done = Store(store).label_set(labels)
    unconverged = int((~done.converged & np.isfinite(done.energy)).sum())
    console.print(
        f"{store}: {len(done.energy):,} configurations, {done.describe}; {failed} failed, "
        f"{unconverged} unconverged (left out of training)"
    )


def references(
    dopant: DopantOpt,
    calculator: CalculatorOpt = DEFAULT_CALCULATOR,
    out: Annotated[
        Path | None,
        out_option("Directory of Sc-<M>.json (default: <user data dir>/references)."),
    ] = None,
) -> None:
    """Relax the Sc-M competing phases that define the convex hull, for any metal
    (resumable: phases already in the file are kept)."""
    from qcapprox.hull import Hull
    from qcapprox.paths import user_references_dir
    from qcapprox.references import build_references

    out = out or user_references_dir()
    check_out_dir(out)
    with Board() as board:
        step = board.step(f"references Sc-{dopant}", "phases")
        path = build_references(
            dopant, out, calculator, progress=lambda d, t, name: step(d, t, name)
        )
    hull = Hull.load(dopant, path)
    console.print(f"{path}: {len(hull.phase_names)} phases; hull: {', '.join(hull.stable_names)}")


def import_energies_cmd(
    store: Annotated[Path, typer.Argument(help="A qcapprox store (.h5) to label.")],
    structures: Annotated[
        Path, typer.Argument(help="extxyz, OUTCAR, vasprun.xml, ... with energies")
    ],
    labels: LabelsOpt = RELAXED,
    duplicates: Annotated[
        Literal["refuse", "lowest", "last"],
        typer.Option(
            help="Two structures of one configuration with different energies: refuse the "
            "import, or keep the lowest or the last energy."
        ),
    ] = "refuse",
    replace: Annotated[
        bool, typer.Option("--replace", help="Replace the store's label set of this kind.")
    ] = False,
) -> None:
    """Label a store with energies you computed elsewhere (e.g. DFT): every structure is
    checked first (periodic, a finite energy, a configuration of the store); any fault
    writes nothing."""
    from qcapprox.labeling import import_energies
    from qcapprox.store import writer_lock

    with writer_lock(store):
        matched = import_energies(store, structures, labels, duplicates=duplicates, replace=replace)
    console.print(f"{store}: {matched:,} configurations labelled ({labels}) from {structures}")


def rehull(
    stores: Annotated[list[Path], typer.Argument(help="Labelled qcapprox stores (.h5).")],
) -> None:
    """Recompute the formation energies and energies above the hull of labelled stores from
    the dopant's references as they are now (after `qcapprox references` added a phase)."""
    from qcapprox.hull import Hull
    from qcapprox.labeling import rehull as rehull_store
    from qcapprox.store import Store

    for path in stores:
        hull = Hull.load(Store(path).parent.dopant)
        counts = rehull_store(path, hull)
        below = ", ".join(f"{kind} {a:,} -> {b:,}" for kind, (a, b) in counts.items())
        console.print(f"{path}: hull {', '.join(hull.stable_names)}; rows below it: {below}")
