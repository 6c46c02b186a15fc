"""What every command module shares besides its options: the typer app class whose help
shows no `<bool>` beside flags, and the consoles (results on stdout, errors on stderr)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer
from rich.console import Console
from typer.core import TyperCommand, TyperGroup, TyperOption

#: Results, summaries and progress (`qcapprox.cli.progress`) of the commands.
console = Console()
#: Errors: one line each (`qcapprox.cli.main`).
errors = Console(stderr=True)


class _NoFlagType:
    """Help without a `<bool>` type beside flags: they take no value (typer's rich help
    shows the type of every option, flags and --help included, unless a metavar is set)."""

    def get_params(self, ctx: typer.Context) -> list[Any]:
        params = super().get_params(ctx)  # type: ignore[misc]
        for param in params:
            if isinstance(param, TyperOption) and param.is_flag and param.metavar is None:
                param.metavar = ""
        return params


class Command(_NoFlagType, TyperCommand):
    """A sub-command (help without flag types)."""


class Group(_NoFlagType, TyperGroup):
    """A group of sub-commands (help without flag types)."""


class App(typer.Typer):
    """A typer app whose commands are `Command`s and whose groups are `Group`s, with -h as
    well as --help."""

    def __init__(self, **options: Any) -> None:
        options.setdefault("context_settings", {"help_option_names": ["-h", "--help"]})
        options.setdefault("no_args_is_help", True)
        super().__init__(cls=Group, **options)

    def command(self, name: str | None = None, **options: Any) -> Callable:
        """Register a sub-command (see typer.Typer.command) of class `Command`."""
        return super().command(name, cls=Command, **options)
