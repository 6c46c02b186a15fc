"""The threshold field (`t`): a below-hull threshold in eV/atom, or nothing changes."""

from __future__ import annotations

import math
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label


def parse_threshold(text: str) -> float:
    """A finite energy in eV/atom from `text`; ValueError saying why otherwise."""
    try:
        value = float(text)
    except ValueError:
        what = "an empty entry" if not text.strip() else repr(text)
        raise ValueError(f"{what} is not a number: give eV/atom, such as 0.02") from None
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite energy: give eV/atom, such as 0.02")
    return value


class ThresholdScreen(ModalScreen[float | None]):
    """Ask for the below-hull threshold (eV/atom). The current value is selected when the
    field opens, so typing replaces it; enter on what is not a finite number is refused
    with a message in the box (the threshold stays); escape cancels."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]
    DEFAULT_CSS = """
    ThresholdScreen { align: center middle; }
    ThresholdScreen > Vertical {
        width: 64; max-width: 100%; height: auto;
        border: round $accent; padding: 0 1; background: $surface;
    }
    ThresholdScreen .hint { color: $text-muted; }
    ThresholdScreen .error { color: $error; text-style: bold; display: none; }
    """

    def __init__(self, current: float) -> None:
        super().__init__()
        self.field = Input(value=f"{current:g}", type="number", select_on_focus=True)
        self.error = Label(classes="error")

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Below-hull threshold t, eV/atom (sets: E above hull < t)")
            yield self.field
            yield self.error
            yield Label("enter apply · escape cancel", classes="hint")

    def on_mount(self) -> None:
        self.field.focus()
        self.field.select_all()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        try:
            value = parse_threshold(event.value)
        except ValueError as err:
            self.error.update(f"{err} (t stays)")
            self.error.display = True
            return
        self.dismiss(value)

    def action_cancel(self) -> None:
        self.dismiss(None)
