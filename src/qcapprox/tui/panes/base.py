"""What every pane shares: the view it shows, redrawn only while it is on screen."""

from __future__ import annotations

from typing import ClassVar

from rich.style import Style
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widget import Widget

from qcapprox.tui.format import KNOWN_MARK
from qcapprox.tui.heatmap import Heatmap
from qcapprox.tui.state import View
from qcapprox.tui.table import Column

EXPORT = Binding.Group("Export")
EXPORT_BINDINGS: list[BindingType] = [
    Binding("c", "export('cif')", "CIF", group=EXPORT),
    Binding("p", "export('poscar')", "POSCAR", group=EXPORT),
    Binding("x", "export('extxyz')", "extxyz", group=EXPORT),
]
KNOWN_STYLE = Style(bold=True, color="yellow")  # the known phase's row (the mark reads in grey)
MARK_COLUMN = Column(KNOWN_MARK, 1)


def mark(known: bool) -> str:
    """The mark column's cell: the known-phase glyph or a blank."""
    return KNOWN_MARK if known else " "


class LimitHeatmap(Heatmap):
    """The pairwise heatmap of the Limits and Compare tabs: enter lists the cell's
    candidates."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter", "select", "Candidates")]


class Pane(Vertical):
    """One tab's content. The app gives it each new view (`set_view`); a pane that is not
    on screen only notes that it is stale and draws when its tab is shown (`activated`)."""

    TAB: ClassVar[str]  # the tab's id
    TITLE: ClassVar[str]  # the tab's label
    HELP: ClassVar[str]  # what the pane's keys act on (help screen)

    def __init__(self) -> None:
        super().__init__(id=f"{self.TAB}-pane")
        self.view: View | None = None
        self.stale = False

    @property
    def shown(self) -> bool:
        """Its tab is the active one."""
        return self.parent is not None and self.parent.display

    def set_view(self, view: View) -> None:
        """A new selection was analysed: draw it now if shown, else when shown."""
        self.view = view
        self.redraw()

    def redraw(self) -> None:
        """Draw the view (now if shown, else when the tab is next activated)."""
        if self.view is None:
            return
        self.stale = not self.shown
        if not self.stale:
            self.draw(self.view)

    def activated(self) -> None:
        """The tab was shown: draw what changed while it was hidden; focus its main part."""
        self.focus_target().focus()
        if self.stale:
            self.redraw()

    def draw(self, view: View) -> None:
        """Show `view` (O(1) on the UI thread; work that grows goes to a worker)."""
        raise NotImplementedError

    def focus_target(self) -> Widget:
        """The widget that takes the focus when the tab is shown."""
        raise NotImplementedError
