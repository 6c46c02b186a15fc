"""Commands that run a whole screen: `screen` (a new dopant end to end, `qcapprox.screen`)
and `demo` (the bundled dopants' inference sets, `qcapprox.inference`), with their
summaries from `qcapprox.analysis`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from qcapprox.cli.core import console
from qcapprox.cli.options import (
    CalculatorOpt,
    DopantOpt,
    FmaxOpt,
    LabelsOpt,
    LimitsOpt,
    MaxStepsOpt,
    OptimizerOpt,
    RegistryOpt,
    SchedulerOpt,
    WorkersOpt,
    check_out_dir,
    limits_of,
    out_option,
    relaxation_of,
)
from qcapprox.cli.progress import Board
from qcapprox.errors import QcapproxError
from qcapprox.paths import BUNDLED_RESULTS, RECIPES_DIR
from qcapprox.settings import DEFAULT_CALCULATOR, FMAX, LABEL_WORKERS, MAX_STEPS, OPTIMIZER
from qcapprox.words import RELAXED

if TYPE_CHECKING:
    from rich.table import Table


def screen(
    dopant: DopantOpt,
    out: Annotated[
        Path | None,
        out_option(
            "Directory of the inference store and the results file (default: <user data "
            "dir>/results)."
        ),
    ] = None,
    labels: LabelsOpt = RELAXED,
    calculator: CalculatorOpt = DEFAULT_CALCULATOR,
    fmax: FmaxOpt = FMAX,
    max_steps: MaxStepsOpt = MAX_STEPS,
    optimizer: OptimizerOpt = OPTIMIZER,
    design: Annotated[
        Path, typer.Option(help="Training design recipe (needs a \\[test] table).")
    ] = RECIPES_DIR / "training.toml",
    inference: Annotated[Path, typer.Option(help="Inference recipe.")] = RECIPES_DIR
    / "inference-a4.toml",
    limits: LimitsOpt = "all",
    scheduler: SchedulerOpt = None,
    workers: WorkersOpt = LABEL_WORKERS,
    training: Annotated[
        Path | None,
        typer.Option(
            help="Training store, built here unless bundled (default: the user's, else the "
            "bundled one)."
        ),
    ] = None,
    registry: RegistryOpt = None,
    start_from: Annotated[
        str,
        typer.Option(
            help="Where relaxations start: 'auto' (the bundled Pt set's relaxed geometries "
            "once it has them), 'parent' (the parent geometry) or a store with relaxed labels."
        ),
    ] = "auto",
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Start without asking.")] = False,
) -> None:
    """A new dopant end to end: references, training design, labels, RF family, inference
    set, predictions and a results file for `qcapprox tui` (every step resumable)."""
    from qcapprox.hull import dopant_symbol
    from qcapprox.paths import user_data_dir
    from qcapprox.screen import Screen, default_start

    relaxation = relaxation_of(labels, fmax, max_steps, optimizer)  # checked first
    if start_from == "auto":  # reads the bundled Pt set only when asked to
        source = default_start(dopant_symbol(dopant))
    else:
        source = None if start_from == "parent" else Path(start_from)
    if out is None:
        out = user_data_dir() / "results"
        out.mkdir(parents=True, exist_ok=True)
    check_out_dir(out)
    if not out.is_dir():
        raise QcapproxError(f"--out {out}: no such directory (make it first; nothing was done)")
    run = Screen(
        dopant, out, calculator, relaxation, design, inference, limits_of(limits), workers,
        training_set=training, registry=registry, start_from=source, scheduler=scheduler,
    )  # fmt: skip
    run.check()
    for line in run.cost(run.parent()):
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    if not yes and not typer.confirm("start?", default=True):
        raise typer.Exit(1)
    with Board(workers=True) as board:
        results = run.run(board.step)
    console.print(known_phase_line(results, run.symbol, run.labels), highlight=False,
                  markup=False, soft_wrap=True)  # fmt: skip
    console.print(f"results: {results}  (open with `qcapprox tui {results}`)")


def known_phase_line(results: Path, dopant: str, labels: str) -> str:
    """At the highest trained limit of the RF family on `labels`: how many configurations
    lie below 0 and below the label set's slightly positive threshold, and where the known
    phase's arrangement (the Pm-3 6f half of A4 vacant) is predicted and ranked."""
    from qcapprox.analysis import SLIGHTLY_POSITIVE, analyse_family
    from qcapprox.results import Results
    from qcapprox.words import LIMITS, family_key

    near = SLIGHTLY_POSITIVE[labels]
    family = family_key("rf", labels)
    with Results(results) as res:
        below, close = (analyse_family(res, dopant, family, t) for t in (0.0, near))
        source = res.energy_label(dopant)
        limit = res.limits(dopant, family)[-1]
    k = LIMITS.index(limit)
    line = (
        f"limit {limit}: {int(below.sizes[k]):,} configurations below the hull, "
        f"{int(close.sizes[k]):,} below +{near:g} eV/atom"
    )
    if close.known_values is not None and close.known_ranks is not None:
        line += (
            f"; Sc57{dopant}13 (the known phase's arrangement) at "
            f"{close.known_values[k]:+.3f} eV/atom, rank {int(close.known_ranks[k]):,} of "
            f"{close.n:,}"
        )
    return f"{line} (RF; {source})"


def demo(
    out: Annotated[
        Path | None, out_option("Where the stores go (default: <user data dir>/runs).")
    ] = None,
    ui: Annotated[bool, typer.Option(help="Open the UI at the end when in a terminal.")] = True,
    near: Annotated[
        float | None,
        typer.Option(
            help="A 'slightly positive' threshold, eV/atom, shown beside 0 (default: "
            "analysis.SLIGHTLY_POSITIVE of the families' labels).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """The main job on bundled defaults: enumerate the A4 inference sets of the four
    dopants, predict them with the shipped RF families (on relaxed labels where the training
    set has them, else on single points), bundle the results, summarize."""
    from qcapprox.analysis import SLIGHTLY_POSITIVE, label_kind
    from qcapprox.inference import screen_bundled
    from qcapprox.paths import user_data_dir
    from qcapprox.words import SINGLE_POINT

    out = out or user_data_dir() / "runs"
    check_out_dir(out)
    with Board() as board:
        run = screen_bundled(out, board.step)
    for dopant in run.skipped:
        console.print(f"[yellow]{dopant}: training set not labelled yet, no predictions")
    for dopant, family in run.families.items():
        if label_kind(family) != RELAXED:
            console.print(
                f"[yellow]{dopant}: no relaxed labels yet (relabeling in progress): the "
                f"single-point family {family} stands in, the cheap screen"
            )
    if run.results is None:
        return
    table, any_below = demo_table(run.results, run.families, near)
    console.print(table)
    if not any_below:
        console.print(
            "No configuration is predicted below the hull at any limit; t is the slightly "
            f"positive threshold of each family's labels ({SLIGHTLY_POSITIVE[RELAXED]:g} eV/atom "
            f"relaxed, {SLIGHTLY_POSITIVE[SINGLE_POINT]:g} single points); the UI opens each "
            "family at it (key `t` changes it)."
        )
    if {label_kind(f) for f in run.families.values()} != {RELAXED}:
        console.print(
            "Single-point labels (the ideal parent geometry, no relaxation) sit tens of "
            "meV/atom above the relaxed ones; the relaxed families (the study's target) "
            "come with the relabeling in progress (`qcapprox info` on a training set)."
        )
    console.print(f"results: {run.results}  (open with `qcapprox tui {run.results}`)")
    console.print(
        f"every shipped family, rf and Allegro (precomputed): `qcapprox tui {BUNDLED_RESULTS}`"
    )
    if ui and sys.stdout.isatty() and sys.stdin.isatty():
        from qcapprox.tui import run as run_tui

        run_tui(run.results, threshold=None if any_below or near is None else near)


def demo_table(
    results: Path, families: dict[str, str], near: float | None = None
) -> tuple[Table, bool]:
    """The demo's summary of a results file at limit 24, one row per dopant and its family:
    lowest predicted energy above the hull, set sizes below 0 and below t (`near`, else
    `analysis.SLIGHTLY_POSITIVE` of the family's labels), the known Sc57M13 phase's
    prediction and rank, test RMSE. Also whether anything is below 0 at any limit."""
    import numpy as np
    from rich import box
    from rich.table import Table

    from qcapprox.analysis import SLIGHTLY_POSITIVE, analyse_family, label_kind
    from qcapprox.results import Results

    any_below = False
    with Results(results) as res:
        sizes = sorted({res.n_configs(d) for d in res.dopants})
        table = Table(
            title=f"A4 inference sets ({' or '.join(f'{n:,}' for n in sizes)} configurations) "
            "at limit 24, eV/atom; models trained on CHGNet labels, a stand-in for DFT",
            box=box.SIMPLE,
            collapse_padding=True,
            pad_edge=False,
        )
        for col in ("dopant", "family", "min", "< 0", "t", "< t", "Sc57M13", "rank", "RMSE"):
            table.add_column(col, justify="left" if col in ("dopant", "family") else "right")
        for dopant in res.dopants:
            family = families[dopant]
            t = near if near is not None else SLIGHTLY_POSITIVE[label_kind(family)]
            below, close = (analyse_family(res, dopant, family, x) for x in (0.0, t))
            any_below |= bool(below.sizes[below.valid].sum() > 0)
            known = ("-", "-")
            if close.known_values is not None and close.known_ranks is not None:
                known = (f"{close.known_values[-1]:+.3f}", f"{close.known_ranks[-1]:,.0f}")
            table.add_row(
                dopant, family, f"{np.nanmin(close.predictions[-1]):+.3f}",
                f"{int(below.sizes[-1]):,}", f"{t:g}", f"{int(close.sizes[-1]):,}", *known,
                "-" if close.rmse is None else f"{close.rmse[-1]:.4f}",
            )  # fmt: skip
    return table, any_below
