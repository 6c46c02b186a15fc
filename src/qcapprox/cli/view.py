"""Commands that show results: `tui` (the terminal UI) and `report` (figures, tables)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qcapprox.cli.core import console
from qcapprox.cli.options import OpeningThresholdOpt, ThresholdOpt, check_out_dir, out_option
from qcapprox.cli.progress import Board

ResultsArg = Annotated[Path, typer.Argument(help="A results file (qcapprox bundle).")]


def tui(
    results: ResultsArg,
    threshold: OpeningThresholdOpt = None,
    out: Annotated[Path, out_option("Where exported structures go.")] = Path("."),
) -> None:
    """Compare below-hull candidate sets across limits and backbones in the terminal (a
    missing or foreign results file is refused before the UI starts)."""
    from qcapprox.tui import run

    run(results, threshold=threshold, export_dir=out)


def report(
    results: ResultsArg,
    out: Annotated[Path, out_option("Directory for the figures.")],
    threshold: ThresholdOpt = 0.0,
) -> None:
    """Write the study's figures for these results (PNG and SVG)."""
    from qcapprox.report import write_report

    check_out_dir(out)
    with Board() as board:
        step = board.step(f"report {results.name}", "steps")
        files = write_report(
            results, out, threshold=threshold, log=console.print, progress=step
        )
    console.print(f"{out}: {len(files)} files (energies: CHGNet stand-in labels)")
