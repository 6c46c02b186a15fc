"""The `qcapprox` command line: a thin layer over the package's functions.

The root (`app`, `main`) registers the commands of one module per group: `store`
(enumerate, count, info, map, export, labels drop), `label` (label, references,
import-energies, rehull), `train` (limits, train, corpus, predict, bundle), `screen`
(screen, demo) and `view` (tui, report). Shared options live in `options`, progress in
`progress`. Modules import heavy libraries inside the commands only: `--version` and the
help pages load no h5py, ASE, torch or the like.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Sequence
from typing import Annotated

import typer

from qcapprox.cli import label, screen, store, train, view
from qcapprox.cli.core import App, console, errors
from qcapprox.errors import QcapproxError

app = App(
    help="Screen Sc-rich quasicrystal approximants Sc60M13: enumerate, label, predict, compare.",
    pretty_exceptions_enable=False,
)
for name, command in [
    ("enumerate", store.enumerate_cmd), ("count", store.count), ("info", store.info),
    ("map", store.map_cmd), ("export", store.export),
    ("label", label.label), ("references", label.references),
    ("import-energies", label.import_energies_cmd), ("rehull", label.rehull),
    ("limits", train.limits), ("train", train.train), ("corpus", train.corpus),
    ("predict", train.predict), ("bundle", train.bundle),
    ("screen", screen.screen), ("demo", screen.demo),
    ("tui", view.tui), ("report", view.report),
]:  # fmt: skip
    app.command(name)(command)
app.add_typer(store.labels_app, name="labels")


class Session:
    """Options of the whole command line, set before a sub-command runs."""

    debug = False


def _version(show: bool) -> None:
    if show:
        from qcapprox import __version__

        console.print(f"qcapprox {__version__}")
        raise typer.Exit


@app.callback()
def options(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the traceback of an error, not one line.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Screen Sc-rich quasicrystal approximants Sc60M13: enumerate, label, predict, compare."""
    Session.debug = debug


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point. Input a user can get wrong (options, paths, recipes, stores, models)
    ends in one line `error: ...` on stderr and exit code 2; `--debug` shows the
    traceback instead."""
    warnings.simplefilter("default")
    args = list(sys.argv[1:] if argv is None else argv) or ["--help"]
    Session.debug = False  # until the root options are parsed
    try:
        code = app(args=args, prog_name="qcapprox", standalone_mode=False)
    except (QcapproxError, typer.TyperException, OSError) as err:
        if Session.debug:
            raise
        errors.print(
            f"error: {_one_line(err)}", style="red", markup=False, highlight=False, soft_wrap=True
        )
        raise SystemExit(2) from err
    raise SystemExit(code if isinstance(code, int) else 0)


def _one_line(err: Exception) -> str:
    """The message of an error on one line: click's usage errors with their --help hint,
    OS errors with the file."""
    if isinstance(err, typer.TyperException):
        ctx = getattr(err, "ctx", None)
        hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        text = err.format_message() + hint
    elif isinstance(err, OSError) and err.filename is not None:
        text = f"{err.filename}: {err.strerror}"
    else:
        text = str(err)
    return " ".join(text.split())
