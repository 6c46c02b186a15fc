"""The report's look and its writing: figures sized for a printed page (at most 7.2 in wide,
text at 6.5-8 pt at that size), one colour and marker per backbone in every figure, dark
box medians, legends outside the data, compact numbers for heatmap cells, and files
written whole (rendered in memory, then renamed into place: a killed report leaves no half
file).
"""

from __future__ import annotations

import contextlib
import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from qcapprox.store import atomic_bytes
from qcapprox.words import BACKBONE_NAMES

PAGE_WIDTH = 7.2  # in: a printed page; a column is half of it
FONT = 8.0  # pt: titles and axis labels
SMALL = 7.0  # pt: ticks, legends
CELL_FONT = 6.5  # pt: numbers inside heatmap cells, the smallest text of the report
DPI = 200
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


def short(value: float) -> str:
    """Two decimals without the leading zero (.94, -.12), and 1 for 1.00: fits a cell."""
    text = f"{value:.2f}".replace("0.", ".", 1) if abs(value) < 1 else f"{value:.2f}"
    return "1" if text == "1.00" else text


def fits(ax: Axes, columns: int, texts: Sequence[str]) -> bool:
    """Whether the longest of `texts` fits a cell of an axes split into `columns` at
    `CELL_FONT` (a glyph is at most about 0.62 em wide); on a large grid it does not."""
    figure = ax.get_figure()
    assert figure is not None
    width_pt = ax.get_position().width * figure.get_figwidth() * 72 / columns
    longest = max((len(t) for t in texts), default=0)
    return longest * 0.62 * CELL_FONT <= 0.95 * width_pt


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


def figure_bytes(figure: Figure, fmt: str) -> bytes:
    """A figure rendered in memory in one format (PNG at `DPI`; SVG without a date)."""
    buffer = io.BytesIO()
    metadata = {"Date": None} if fmt == "svg" else None
    with context():
        figure.savefig(buffer, format=fmt, dpi=DPI, metadata=metadata)
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
    renamed into place whole."""
    files = {out_dir / f"{stem}.{fmt}": figure_bytes(plot.figure, fmt) for fmt in formats}
    files[out_dir / f"{stem}.csv"] = csv_bytes(plot.header, plot.rows)
    for path, data in files.items():
        atomic_bytes(path, data)
    return list(files)
