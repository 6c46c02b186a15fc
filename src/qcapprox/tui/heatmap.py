"""A keyboard-driven heatmap of a square matrix (13 limits x 13 limits), with extra rows.

Cells show numbers when every value fits its cell (cell width >= 4 and no number that
would lose its second significant digit); counts that do not fit are shown in thousands
(`1.2` for 1,234, said in the legend: "counts in thousands"), and shade glyphs (` ░▒▓█`,
light to dark = low to high) are drawn when neither fits, so the map stays readable
without colour (NO_COLOR) and in narrow terminals. Column labels that do not fit their
cells are written downwards, one character per line. The last line is a legend of the
glyphs and colours. The cursor cell is drawn in reverse video.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
from rich.style import Style
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget

from qcapprox.tui.format import number

# viridis, dark to bright: monotone in luminance, so grey levels keep the order
PALETTE = (
    "#440154",
    "#482878",
    "#3e4989",
    "#31688e",
    "#26828e",
    "#1f9e89",
    "#35b779",
    "#6ece58",
    "#b5de2b",
    "#fde725",
)
SHADES = (" ", "░", "▒", "▓", "█")
MISSING = "-"
MARK = Style(bold=True, underline=True)
DIM = Style(dim=True)
ITALIC = Style(italic=True)
PLAIN = Style()
CURSOR = Style(reverse=True, bold=True)
# a number on a coloured ground (dark text on the bright 40%), or a coloured shade glyph
NUMBER_STYLES = tuple(
    Style(bgcolor=c, color="#000000" if k >= len(PALETTE) * 6 // 10 else "#ffffff")
    for k, c in enumerate(PALETTE)
)
SHADE_STYLES = tuple(Style(color=c) for c in PALETTE)


def thousands(value: float) -> str:
    """A count in thousands in at most 3 characters where possible: 1234 -> '1.2',
    15327 -> '15', 609 -> '0.6' (the compact form of narrow heatmaps)."""
    if not math.isfinite(value):
        return MISSING
    k = value / 1000
    return f"{k:.1f}" if k < 9.95 else f"{k:.0f}"


def _fits(texts: list[str], width: int) -> bool:
    return all(len(t) <= width and not t.startswith("#") for t in texts)


def _levels(values: np.ndarray, lo: float, hi: float, n: int) -> np.ndarray:
    """Bin indices 0..n-1 of values in [lo, hi] (-1 for NaN)."""
    span = hi - lo if hi > lo else 1.0
    with np.errstate(invalid="ignore"):
        scaled = np.clip((values - lo) / span, 0.0, 1.0)
        out = np.minimum((scaled * n).astype(int), n - 1)
    return np.where(np.isfinite(values), out, -1)


def _range(values: np.ndarray, kind: str) -> tuple[float, float]:
    if kind == "percent":
        return 0.0, 100.0
    if kind == "fraction":
        return 0.0, 1.0
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 0.0, 1.0
    if kind == "count":
        return 0.0, float(finite.max())
    return float(finite.min()), float(finite.max())


class Heatmap(Widget, can_focus=True):
    """Heatmap with a cell cursor; posts CursorMoved, and Selected on the `select` action
    (bind a key to it in a subclass)."""

    DEFAULT_CSS = """
    Heatmap {
        height: auto;
        width: 1fr;
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "move(-1, 0)", "Up", show=False),
        Binding("down", "move(1, 0)", "Down", show=False),
        Binding("left", "move(0, -1)", "Left", show=False),
        Binding("right", "move(0, 1)", "Right", show=False),
        Binding("home", "jump(0)", "First", show=False),
        Binding("end", "jump(-1)", "Last", show=False),
    ]

    cursor: reactive[tuple[int, int]] = reactive((0, 0), init=False)

    class CursorMoved(Message):
        """The cursor moved to (i, j)."""

        def __init__(self, heatmap: Heatmap, i: int, j: int) -> None:
            self.heatmap = heatmap
            self.i = i
            self.j = j
            super().__init__()

        @property
        def control(self) -> Heatmap:
            return self.heatmap

    class Selected(CursorMoved):
        """Enter was pressed on (i, j)."""

    def __init__(
        self,
        labels: Sequence[str],
        *,
        max_cell: int = 8,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.labels = [str(x) for x in labels]
        self.max_cell = max_cell
        n = len(self.labels)
        self.matrix = np.full((n, n), np.nan)
        self.kind = "count"
        self.extra: list[tuple[str, np.ndarray, str]] = []
        self.empty = ""
        self._cache: tuple[int, tuple] | None = None

    # ------------------------------------------------------------------ data
    def set_data(
        self,
        matrix: np.ndarray,
        kind: str,
        extra: Sequence[tuple[str, np.ndarray, str]] = (),
        empty: str = "",
    ) -> None:
        """Show `matrix` (kind: count, percent, fraction, score) and extra labelled rows;
        `empty` is said in the legend when there is nothing to show (e.g. all sets empty)."""
        self.matrix = np.asarray(matrix, dtype=float)
        self.kind = kind
        self.extra = [(label, np.asarray(v, dtype=float), k) for label, v, k in extra]
        self.empty = empty
        self._cache = None
        self.refresh(layout=True)

    def value(self, i: int | None = None, j: int | None = None) -> float:
        """The matrix value at (i, j) (the cursor by default)."""
        ci, cj = self.cursor
        return float(self.matrix[ci if i is None else i, cj if j is None else j])

    # ------------------------------------------------------------------ cursor
    def action_move(self, di: int, dj: int) -> None:
        i, j = self.cursor
        n = len(self.labels)
        self.cursor = (min(max(i + di, 0), n - 1), min(max(j + dj, 0), n - 1))

    def action_jump(self, where: int) -> None:
        n = len(self.labels)
        k = 0 if where == 0 else n - 1
        self.cursor = (k, k)

    def action_select(self) -> None:
        self.post_message(self.Selected(self, *self.cursor))

    def watch_cursor(self, cursor: tuple[int, int]) -> None:
        self.post_message(self.CursorMoved(self, *cursor))

    # ------------------------------------------------------------------ layout
    @property
    def label_width(self) -> int:
        return max(len(x) for x in [*self.labels, *(e[0] for e in self.extra)]) + 1

    def cell_width(self, width: int | None = None) -> int:
        """Characters per cell (a separator space included) for a widget width."""
        width = self.content_size.width if width is None else width
        cw = (width - self.label_width) // max(len(self.labels), 1)
        return max(2, min(self.max_cell, cw))

    def get_content_width(self, container, viewport) -> int:
        return self.label_width + len(self.labels) * self.max_cell

    def header_lines(self, width: int | None = None) -> int:
        """1, or the longest label's length when labels are written downwards."""
        longest = max(len(x) for x in self.labels)
        return 1 if longest < self.cell_width(width) else longest

    def get_content_height(self, container, viewport, width: int) -> int:
        return self.header_lines(width) + len(self.labels) + len(self.extra) + 1

    # ------------------------------------------------------------------ drawing
    @staticmethod
    def _cell(
        value: float, level: int, kind: str, cw: int, n_levels: int, form: str
    ) -> tuple[str, Style]:
        """Text and style of one cell: a number (or thousands) on a coloured ground, or a
        shade glyph (form: 'numbers', 'thousands' or 'shades')."""
        if level < 0:
            return MISSING.rjust(cw - 1), DIM
        if form != "shades":
            text = thousands(value) if form == "thousands" else number(value, kind, cw - 1)
            return text.rjust(cw - 1), NUMBER_STYLES[level]
        shade = SHADES[min(level * len(SHADES) // n_levels, len(SHADES) - 1)]
        return shade * (cw - 1), SHADE_STYLES[level]

    def _header(self, cw: int, cj: int, mark: Style, dim: Style) -> list[Text]:
        """Column labels right-aligned on their cells; labels wider than a cell are
        written downwards (one character per line) so that every column is labelled.
        """
        lines = self.header_lines(cw * len(self.labels) + self.label_width)
        longest = max(len(x) for x in self.labels)
        out = []
        for line in range(lines):
            header = Text(" " * self.label_width)
            for j, label in enumerate(self.labels):
                text = label.rjust(cw - 1) if lines == 1 else label.rjust(longest)[line]
                header.append(text.rjust(cw - 1), mark if j == cj else dim)
                header.append(" ")
            out.append(header)
        return out

    def form(self, cw: int) -> str:
        """How cells are drawn at cell width `cw`: 'numbers', 'thousands' (counts that do
        not fit) or 'shades'."""
        if cw < 4:
            return "shades"
        values = self.matrix[np.isfinite(self.matrix)]
        if _fits([number(v, self.kind, cw - 1) for v in values], cw - 1):
            return "numbers"
        if self.kind == "count" and _fits([thousands(v) for v in values], cw - 1):
            return "thousands"
        return "shades"

    def legend(self, form: str) -> Text:
        """The legend line: glyphs (or colours) from low to high with the range; '-' is
        a missing value."""
        lo, hi = _range(self.matrix, self.kind)
        if not np.isfinite(self.matrix).any():
            return Text(self.empty or "- no data", ITALIC)
        line = Text()
        if form != "shades":
            for colour in PALETTE:
                line.append("█", Style(color=colour))
        else:
            for k, shade in enumerate(SHADES[1:]):
                line.append(shade, Style(color=PALETTE[(k + 1) * len(PALETTE) // len(SHADES)]))
        low, high = number(lo, self.kind, 6), number(hi, self.kind, 6)
        line.append(f" {low} → {high} · - none", ITALIC)
        if form == "thousands":
            line.append(" · counts in thousands", ITALIC)
        if self.empty:
            line.append(f" · {self.empty}", ITALIC)
        return line

    def _grid(self, cw: int) -> tuple[list[list[tuple[str, Style]]], list[list[str]], str]:
        """Texts and styles of every cell and extra row at cell width `cw`, cached until
        the data or the width change (a cursor move only redraws)."""
        if self._cache is not None and self._cache[0] == cw:
            return self._cache[1]
        n = len(self.labels)
        n_levels = len(PALETTE)
        lo, hi = _range(self.matrix, self.kind)
        levels = _levels(self.matrix, lo, hi, n_levels)
        form = self.form(cw)
        cells = [
            [
                self._cell(self.matrix[i, j], levels[i, j], self.kind, cw, n_levels, form)
                for j in range(n)
            ]
            for i in range(n)
        ]
        extra = []
        for _, values, kind in self.extra:
            lo, hi = _range(values, kind)
            lv = _levels(values, lo, hi, n_levels)
            padded = [values[j] if j < len(values) else math.nan for j in range(n)]
            texts = [number(v, kind, cw - 1) for v in padded]
            if not _fits(texts, cw - 1) and kind == "count" and form == "thousands":
                texts = [thousands(v) for v in padded]
            if not _fits(texts, cw - 1):  # a row is all numbers or all shades
                texts = [
                    SHADES[min(lv[j] * len(SHADES) // n_levels, len(SHADES) - 1)] * (cw - 1)
                    if lv[j] >= 0
                    else MISSING
                    for j in range(n)
                ]
            extra.append([t.rjust(cw - 1) for t in texts])
        self._cache = (cw, (cells, extra, form))
        return cells, extra, form

    def render(self) -> Text:
        cw = self.cell_width()
        lw = self.label_width
        ci, cj = self.cursor
        cells, extra, form = self._grid(cw)
        lines = self._header(cw, cj, MARK, DIM)
        cursor = CURSOR if self.has_focus else MARK
        for i, row in enumerate(cells):
            line = Text(self.labels[i].rjust(lw - 1), MARK if i == ci else DIM)
            line.append(" ")
            for j, (text, style) in enumerate(row):
                line.append(text, style + cursor if (i, j) == (ci, cj) else style)
                line.append(" ")
            lines.append(line)
        for (label, _, _), texts in zip(self.extra, extra, strict=True):
            line = Text(label.ljust(lw), ITALIC)
            for j, text in enumerate(texts):
                line.append(text, MARK if j == cj else PLAIN)
                line.append(" ")
            lines.append(line)
        lines.append(self.legend(form))
        return Text("\n").join(lines)

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()
