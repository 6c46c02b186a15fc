"""A table that draws only the rows on screen: any number of rows costs the same to show.

Contents are a row count and a function from a row index to its cell strings, so giving
a table new contents is O(1) on the UI thread (the work that grows with the data, such
as sorting and filtering, happens in workers before); a cell is formatted only when its
row is drawn. Line 0 is the column header and stays in place while the rows scroll.
A table wider than its widget scrolls sideways a column at a time (left/right).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip


@dataclass(frozen=True)
class Column:
    """A column: its title, width in characters and alignment ('left' or 'right')."""

    title: str
    width: int
    justify: str = "left"

    def fit(self, text: str) -> str:
        """`text` padded (or cut) to the column width."""
        text = text[: self.width]
        return text.rjust(self.width) if self.justify == "right" else text.ljust(self.width)


def _no_cells(row: int) -> Sequence[str]:
    return ()


def _no_style(row: int) -> Style | None:
    return None


class RowTable(ScrollView, can_focus=True):
    """A keyboard-driven table of `row_count` rows; enter posts `Chosen` for the cursor row."""

    DEFAULT_CSS = """
    RowTable {
        height: 1fr;
        overflow-x: hidden;
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "move(-1)", "Up", show=False),
        Binding("down", "move(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "jump(0)", "First", show=False),
        Binding("end", "jump(-1)", "Last", show=False),
        Binding("enter", "choose", "Detail", show=False),
        Binding("left", "sideways(-1)", "Column left", key_display="←", show=False),
        Binding("right", "sideways(1)", "Column right", key_display="→", show=False),
    ]

    cursor_row: reactive[int] = reactive(0, init=False)

    class Chosen(Message):
        """Enter was pressed on a row."""

        def __init__(self, table: RowTable, row: int) -> None:
            self.table = table
            self.row = row
            super().__init__()

        @property
        def control(self) -> RowTable:
            return self.table

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.columns: tuple[Column, ...] = ()
        self.row_count = 0
        self._cells: Callable[[int], Sequence[str]] = _no_cells
        self._style: Callable[[int], Style | None] = _no_style

    # ------------------------------------------------------------------ contents
    def set_rows(
        self,
        columns: Sequence[Column],
        count: int,
        cells: Callable[[int], Sequence[str]],
        style: Callable[[int], Style | None] = _no_style,
    ) -> None:
        """Show `count` rows whose cells are `cells(k)`, drawn in `style(k)` (None: plain);
        the cursor returns to row 0."""
        self.columns = tuple(columns)
        self.row_count = int(count)
        self._cells = cells
        self._style = style
        width = sum(c.width + 1 for c in self.columns)
        self.virtual_size = Size(width, self.row_count + 1)
        self.set_reactive(RowTable.cursor_row, 0)
        self.scroll_to(y=0, animate=False, immediate=True)
        self.refresh()

    def row(self, k: int) -> list[str]:
        """The cell strings of row k (as drawn, without padding)."""
        return list(self._cells(k))

    # ------------------------------------------------------------------ cursor
    def _visible_rows(self) -> int:
        return max(self.scrollable_content_region.height - 1, 1)

    def action_move(self, delta: int) -> None:
        if self.row_count:
            self.cursor_row = min(max(self.cursor_row + delta, 0), self.row_count - 1)

    def action_page(self, direction: int) -> None:
        self.action_move(direction * self._visible_rows())

    def action_jump(self, where: int) -> None:
        if self.row_count:
            self.cursor_row = 0 if where == 0 else self.row_count - 1

    def action_choose(self) -> None:
        if self.row_count:
            self.post_message(self.Chosen(self, self.cursor_row))

    def action_sideways(self, direction: int) -> None:
        """Scroll to the previous or next column boundary (no further than the last
        column needs)."""
        starts = [0]
        for column in self.columns[:-1]:
            starts.append(starts[-1] + column.width + 1)
        x = round(self.scroll_x)
        if direction > 0:
            target = next((s for s in starts if s > x), x)
        else:
            target = next((s for s in reversed(starts) if s < x), 0)
        self.scroll_to(x=min(target, self.max_scroll_x), animate=False, immediate=True, force=True)
        self.refresh()

    def move_cursor(self, row: int) -> None:
        """Put the cursor on row `row` (clamped)."""
        if self.row_count:
            self.cursor_row = min(max(row, 0), self.row_count - 1)

    def watch_cursor_row(self, old: int, new: int) -> None:
        top = round(self.scroll_y)
        visible = self._visible_rows()
        if new < top:
            self.scroll_to(y=new, animate=False, immediate=True)
        elif new >= top + visible:
            self.scroll_to(y=new - visible + 1, animate=False, immediate=True)
        self.refresh()

    def on_click(self, event: events.Click) -> None:
        row = round(self.scroll_y) + event.y - 1
        if event.y >= 1 and 0 <= row < self.row_count:
            self.cursor_row = row

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

    # ------------------------------------------------------------------ drawing
    def _line(self, cells: Sequence[str]) -> str:
        return " ".join(c.fit(str(t)) for c, t in zip(self.columns, cells, strict=False))

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        base = self.rich_style
        if y == 0:
            text = self._line([c.title for c in self.columns])
            style = base + Style(bold=True, underline=True)
        else:
            row = round(self.scroll_y) + y - 1
            if row >= self.row_count:
                return Strip.blank(width, base)
            text = self._line(self._cells(row))
            style = base + (self._style(row) or Style())
            if row == self.cursor_row:
                style = base + (Style(reverse=True) if self.has_focus else Style(bold=True))
        x = round(self.scroll_x)
        return Strip([Segment(text, style)]).crop_extend(x, x + width, base)
