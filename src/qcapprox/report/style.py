"""The report's look and its writing: figures sized for a printed page (at most 7.2 in wide,
text at 6.5-8 pt at that size), one colour and marker per backbone in every figure, dark
box medians, legends outside the data, compact numbers for heatmap cells, and files
written whole (rendered in memory, then renamed into place: a killed report leaves no half
file).

Speed (the bundled results' report is benchmarked, `benchmarks/report.py`): a figure drawn
with constrained layout has its layout computed once and frozen before it is rendered in
each format; heatmap numbers are drawn by one `CellNumbers` artist (in PNG a copy of each
distinct string rendered once, in SVG real text) instead of a `Text` artist per cell;
PNGs are compressed at level 1 (fast zlib; about 15 % larger files).
"""

from __future__ import annotations

import contextlib
import csv
import functools
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.backend_bases import RendererBase
from matplotlib.backends.backend_agg import RendererAgg
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.layout_engine import ConstrainedLayoutEngine

from qcapprox.store import atomic_bytes
from qcapprox.words import BACKBONE_NAMES

PAGE_WIDTH = 7.2  # in: a printed page; a column is half of it
FONT = 8.0  # pt: titles and axis labels
SMALL = 7.0  # pt: ticks, legends
CELL_FONT = 6.5  # pt: numbers inside heatmap cells, the smallest text of the report
DPI = 200
PNG_OPTIONS = {"compress_level": 1}  # zlib level: 1 is several times faster than 6
RC = {
    "font.size": FONT,
    "axes.titlesize": FONT,
    "axes.labelsize": FONT,
    "figure.titlesize": FONT,
    "xtick.labelsize": SMALL,
    "ytick.labelsize": SMALL,
    "legend.fontsize": SMALL,
    "legend.frameon": False,
    "boxplot.medianprops.color": "black",  # visible on any box colour
    "boxplot.medianprops.linewidth": 1.2,
    "boxplot.whiskerprops.linewidth": 0.7,
    "boxplot.capprops.linewidth": 0.7,
    "svg.hashsalt": "qcapprox",  # deterministic SVG ids
    "svg.fonttype": "none",  # text stays text (searchable, small)
}
CMAP = "viridis"
UNDEFINED = "#d0d0d0"  # heatmap cells without a value
PALETTE = matplotlib.colormaps["tab10"].colors
MARKERS = "osD^vPX*<>h"
EMPTY = "empty: no configuration below the threshold"
VACUOUS_KEY = "hollow, dashed: B24 empty,\nrecall 1 by convention"  # legend title: a vacuous recall


@dataclass(frozen=True)
class Look:
    """How one series is drawn (a backbone, a dopant): colour, marker, hollow or filled."""

    color: tuple[float, ...]
    marker: str
    hollow: bool = False

    def line(self) -> dict:
        """Keyword arguments of `Axes.plot` for this series."""
        face = "white" if self.hollow else self.color
        return {
            "color": self.color,
            "marker": self.marker,
            "markersize": 3.5,
            "markerfacecolor": face,
            "linewidth": 1.0,
            "linestyle": "--" if self.hollow else "-",
        }


def look(index: int, hollow: bool = False) -> Look:
    """The `index`-th series look (colour and marker cycle independently)."""
    return Look(PALETTE[index % len(PALETTE)], MARKERS[index % len(MARKERS)], hollow)


def backbone_look(backbone: str, hollow: bool = False) -> Look:
    """A backbone keeps its colour and marker in every figure (its place in the registry)."""
    index = BACKBONE_NAMES.index(backbone) if backbone in BACKBONE_NAMES else len(BACKBONE_NAMES)
    return look(index, hollow)


def dodge(n: int, width: float = 0.5) -> np.ndarray:
    """Horizontal offsets (in limit units) that set n series sharing values side by side."""
    return np.zeros(1) if n <= 1 else np.linspace(-width / 2, width / 2, n)


def legend_outside(ax: Axes, title: str | None = None) -> None:
    """The axes' legend to the right of it, outside the data."""
    ax.legend(
        loc="upper left",
        bbox_to_anchor=(1.02, 1.0),
        borderaxespad=0.0,
        title=title,
        title_fontsize=SMALL,
    )


def say(ax: Axes, text: str, y: float = 0.5) -> None:
    """Write `text` across an axes at height `y` (an empty set, missing data)."""
    ax.text(
        0.5,
        y,
        text,
        transform=ax.transAxes,
        ha="center",
        va="center",
        fontsize=SMALL,
        bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": "0.6"},
    )


def count_text(value: float) -> str:
    """A count in at most four characters: 987, 1.2k, 15k."""
    if value < 1000:
        return f"{value:.0f}"
    return f"{value / 1000:.1f}k" if value < 9950 else f"{value / 1000:.0f}k"


def fits(ax: Axes, columns: int, texts: Sequence[str]) -> bool:
    """Whether the longest of `texts` fits a cell of an axes split into `columns` at
    `CELL_FONT` (a glyph is at most about 0.62 em wide); on a large grid it does not.
    The axes' position is taken after its aspect is applied (an image's square cells)."""
    figure = ax.get_figure()
    assert figure is not None
    ax.apply_aspect()
    width_pt = ax.get_position(original=False).width * figure.get_figwidth() * 72 / columns
    longest = max((len(t) for t in texts), default=0)
    return longest * 0.62 * CELL_FONT <= 0.95 * width_pt


@functools.lru_cache(maxsize=4096)
def _stamp(text: str, colour: str, size: float, dpi: float, hinting: str) -> tuple:
    """`text` rendered once by Agg on a transparent canvas: (RGBA rows bottom first, x and
    y of the centre of its line box from the image's left and bottom, pixels). `hinting`
    (rcParams["text.hinting"]) is part of the key only: the glyphs depend on it."""
    prop = FontProperties(size=size)
    probe = RendererAgg(1, 1, dpi)
    _, line_h, line_d = probe.get_text_width_height_descent("lp", prop, False)
    width, height, descent = probe.get_text_width_height_descent(text, prop, False)
    height, descent = max(height, line_h), max(descent, line_d)
    pad = 2
    canvas = RendererAgg(math.ceil(width) + 2 * pad, math.ceil(height) + 2 * pad, dpi)
    gc = canvas.new_gc()
    gc.set_foreground(colour)
    canvas.draw_text(gc, pad, canvas.height - pad - descent, text, prop, 0.0)  # y from the top
    gc.restore()
    image = np.asarray(canvas.buffer_rgba())[::-1].copy()
    return image, pad + width / 2, pad + height / 2


class CellNumbers(Artist):
    """Numbers centred on the cells of a heatmap, drawn in one artist.

    cells: (x, y, text, colour) in data coordinates of `ax`. One `Text` artist per cell
    costs about 2 ms per cell to draw (layout and glyph rendering by FreeType each time):
    most of a heatmap's time. On Agg (PNG) each distinct string is rendered once per
    process and every cell is a copy of it (`renderer.draw_image`, pixel-aligned: at most
    half a pixel from where `Text` puts it); on vector renderers (SVG) every cell is a real
    text element (`renderer.draw_text`). Centred as `Text(ha="center", va="center")`
    centres a line: on its width and on the height of a line ("lp"), whatever its digits.
    """

    zorder = 3  # above the image

    def __init__(self, ax: Axes, cells: Sequence[tuple[float, float, str, str]], size: float):
        super().__init__()
        self.axes = ax
        self.cells = [(float(x), float(y), str(t), c) for x, y, t, c in cells]
        self.size = size

    @property
    def texts(self) -> list[str]:
        """The numbers, in cell order."""
        return [t for _, _, t, _ in self.cells]

    def draw(self, renderer: RendererBase) -> None:
        if not self.get_visible() or not self.cells:
            return
        ax = self.axes
        assert ax is not None
        points = ax.transData.transform([(x, y) for x, y, _, _ in self.cells])
        renderer.open_group("cell-numbers", self.get_gid())
        gc = renderer.new_gc()
        gc.set_clip_rectangle(ax.bbox)
        if isinstance(renderer, RendererAgg):
            hinting = str(matplotlib.rcParams["text.hinting"])
            for (px, py), (_, _, text, colour) in zip(points, self.cells, strict=True):
                image, cx, cy = _stamp(text, colour, self.size, renderer.dpi, hinting)
                renderer.draw_image(gc, round(px - cx), round(py - cy), image)
        else:
            self._draw_text(renderer, gc, points)
        gc.restore()
        renderer.close_group("cell-numbers")
        self.stale = False

    def _draw_text(self, renderer: RendererBase, gc, points: np.ndarray) -> None:
        """Every cell as a text element (vector output)."""
        prop = FontProperties(size=self.size)
        _, line_h, line_d = renderer.get_text_width_height_descent("lp", prop, False)
        _, canvas_height = renderer.get_canvas_width_height()
        metrics: dict[str, tuple[float, float, float]] = {}
        for (px, py), (_, _, text, colour) in zip(points, self.cells, strict=True):
            if text not in metrics:
                metrics[text] = renderer.get_text_width_height_descent(text, prop, False)
            width, height, descent = metrics[text]
            height, descent = max(height, line_h), max(descent, line_d)
            baseline = py - height / 2 + descent  # from the bottom of the canvas
            if renderer.flipy():  # as Text.draw: SVG counts y from the top
                baseline = canvas_height - baseline
            gc.set_foreground(colour)
            renderer.draw_text(gc, px - width / 2, baseline, text, prop, 0.0)


@dataclass
class Plot:
    """A drawn figure and the numbers behind it, written as a CSV table beside it."""

    figure: Figure
    header: list[str]
    rows: list[list] = field(default_factory=list)


def context() -> contextlib.AbstractContextManager:
    """The report's style (`RC`): figures must be drawn inside it (artists read their font
    sizes when they are created)."""
    return matplotlib.rc_context(RC)


def new_figure(width: float, height: float, constrained: bool = True) -> Figure:
    """A figure at most `PAGE_WIDTH` wide (inches). Fixed layouts (constrained=False) are
    much cheaper to draw than constrained ones."""
    layout = "constrained" if constrained else None
    return Figure(figsize=(min(width, PAGE_WIDTH), height), layout=layout)


def freeze_layout(figure: Figure) -> None:
    """Compute a constrained layout once and keep it: every later rendering (one per
    format) then skips the layout, the costliest step of drawing a small figure."""
    engine = figure.get_layout_engine()
    if isinstance(engine, ConstrainedLayoutEngine):
        with context():
            engine.execute(figure)
        figure.set_layout_engine("none")


def figure_bytes(figure: Figure, fmt: str) -> bytes:
    """A figure rendered in memory in one format (PNG at `DPI`, compressed fast; SVG
    without a date)."""
    buffer = io.BytesIO()
    options: dict = {"metadata": {"Date": None}} if fmt == "svg" else {}
    if fmt == "png":
        options["pil_kwargs"] = PNG_OPTIONS
    with context():
        figure.savefig(buffer, format=fmt, dpi=DPI, **options)
    return buffer.getvalue()


def csv_bytes(header: list[str], rows: list[list]) -> bytes:
    """A CSV table as bytes."""
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(header)
    writer.writerows(rows)
    return text.getvalue().encode()


def save(plot: Plot, out_dir: Path, stem: str, formats: Sequence[str]) -> list[Path]:
    """Write a figure in each format and its CSV table, every file rendered first and
    renamed into place whole (the layout computed once for all formats)."""
    freeze_layout(plot.figure)
    files = {out_dir / f"{stem}.{fmt}": figure_bytes(plot.figure, fmt) for fmt in formats}
    files[out_dir / f"{stem}.csv"] = csv_bytes(plot.header, plot.rows)
    for path, data in files.items():
        atomic_bytes(path, data)
    return list(files)
