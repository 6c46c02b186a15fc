"""Tab 1, Limits: the 13x13 pairwise comparison of the limits' below-hull sets (rows i,
columns j), set sizes, shares, Σm and recall vs 24 under it, the exact numbers of the
cursor cell (with the known phase's value and rank at i and j); tall or wide terminals
also list the cell's candidates (in both sets)."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import Static
from textual.worker import get_current_worker

from qcapprox import analysis
from qcapprox.analysis import Family
from qcapprox.tui.format import LIMIT_LABELS, LIMITS, known_name, number
from qcapprox.tui.messages import ConfigurationChosen
from qcapprox.tui.panes.base import LimitHeatmap, Pane
from qcapprox.tui.panes.candidates import fill
from qcapprox.tui.state import View, candidate_rows
from qcapprox.tui.table import RowTable

METRIC_KINDS = {"count": "count", "pct_i": "percent", "pct_j": "percent", "jaccard": "fraction"}
METRIC_TEXT = {
    "count": "|Bi ∩ Bj|: configurations below at both limits",
    "pct_i": "|Bi ∩ Bj| / |Bi|, % of the row set",
    "pct_j": "|Bi ∩ Bj| / |Bj|, % of the column set",
    "jaccard": "Jaccard |Bi ∩ Bj| / |Bi ∪ Bj|",
}
SHORT, TALL = 24, 36  # terminal heights below which the UI is compact, from which it adds


def sizes(fam: Family) -> np.ndarray:
    """Set sizes per limit for display: NaN ('-') where a limit has no predictions."""
    return np.where(fam.valid, fam.sizes, np.nan)


def extra_rows(fam: Family, height: int, compare: bool) -> list[tuple[str, np.ndarray, str]]:
    """Rows under a heatmap: set sizes and recall; tall terminals add their share and Σm
    (Compare: sizes and recall on tall terminals only)."""
    n = ("n", sizes(fam), "count")
    recall = ("rec", fam.recall, "fraction")
    if compare and height < TALL:
        return []
    if compare or height < TALL:
        return [n, recall]
    share = ("%", 100 * fam.fraction, "percent")
    return [n, share, ("Σm", np.where(fam.valid, fam.weighted, np.nan), "count"), recall]


class LimitsPane(Pane):
    """The heatmap of one family's limits; `m` cycles the metric, enter lists the cell."""

    TAB = "limits"
    TITLE = "Limits"
    HELP = "1 Limits (heatmap: arrows move, home/end jump)"
    SCOPED_CSS = False  # rules follow the screen's size classes
    DEFAULT_CSS = """
    LimitsPane #limits-main { height: auto; }
    LimitsPane .summary { height: auto; }
    LimitsPane #preview { display: none; border-top: solid $panel; }
    Screen.-tall LimitsPane #preview { display: block; }
    Screen.-wide LimitsPane { layout: horizontal; }
    Screen.-wide LimitsPane #limits-main { width: 96; height: 1fr; margin-right: 1; }
    Screen.-wide LimitsPane #preview { display: block; border-top: none;
                                       border-left: solid $panel; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("m", "cycle_metric", "Metric")]

    def __init__(self) -> None:
        super().__init__()
        self.cell = (0, len(LIMITS) - 1)
        self.metric = "count"
        self.heatmap = LimitHeatmap(LIMIT_LABELS, max_cell=7)
        self.heading = Static(classes="title")
        self.summary = Static(classes="summary")
        self.preview = RowTable(id="preview")
        self.rows = np.zeros(0, dtype=np.int64)

    def compose(self) -> ComposeResult:
        with Vertical(id="limits-main"):
            yield self.heading
            yield self.heatmap
            yield self.summary
        yield self.preview

    def on_mount(self) -> None:
        self.heatmap.set_reactive(LimitHeatmap.cursor, self.cell)

    def focus_target(self) -> LimitHeatmap:
        return self.heatmap

    def set_cell(self, cell: tuple[int, int]) -> None:
        """The shared cursor cell moved: O(1), the summary and (if shown) the preview."""
        self.cell = cell
        if self.heatmap.cursor != cell:
            self.heatmap.set_reactive(LimitHeatmap.cursor, cell)
            self.heatmap.refresh()
        if self.view is not None and self.shown:
            self.show_summary(self.view)
            self.list_cell(self.view)

    def action_cycle_metric(self) -> None:
        metrics = analysis.METRICS
        self.metric = metrics[(metrics.index(self.metric) + 1) % len(metrics)]
        self.redraw()

    def on_resize(self) -> None:
        self.redraw()  # sizes change the rows under the map and the summary

    def draw(self, view: View) -> None:
        fam = view.primary
        empty = "" if fam.sizes.any() else f"every set empty below {view.threshold:+.3f}"
        self.heatmap.set_data(
            fam.overlap.matrix(self.metric),
            METRIC_KINDS[self.metric],
            extra_rows(fam, self.screen.size.height, False),
            empty=empty and f"{empty} (t: threshold)",
        )
        self.heading.update(f"{METRIC_TEXT[self.metric]} · rows i, columns j: limits")
        self.show_summary(view)
        self.list_cell(view)

    def show_summary(self, view: View) -> None:
        """The exact numbers of the cursor cell (one line on short terminals)."""
        i, j = self.cell
        fam = view.primary
        ov = fam.overlap
        li, lj = LIMITS[i], LIMITS[j]
        if not (fam.valid[i] and fam.valid[j]):
            missing = [str(LIMITS[k]) for k in (i, j) if not fam.valid[k]]
            text = f"i={li} j={lj}: no predictions at limit {', '.join(missing)} for {fam.backbone}"
        elif self.screen.size.height < SHORT:
            text = (
                f"i={li} j={lj} │ both {ov.both[i, j]} │ |Bi| {ov.size_i[i]} │ "
                f"|Bj| {ov.size_j[j]} │ J {number(ov.jaccard[i, j], 'fraction', 5)}"
            )
        else:
            recall = (
                "recall 1: B24 empty"  # the study's convention
                if fam.reference_empty
                else f"recall {number(fam.recall[i], 'fraction', 5)}"
            )
            text = (
                f"i={li} j={lj} │ both {ov.both[i, j]} │ only i {ov.only_i[i, j]} │ "
                f"only j {ov.only_j[i, j]} │ Jaccard {number(ov.jaccard[i, j], 'fraction', 5)} │ "
                f"{recall}\n"
                f"|Bi| {ov.size_i[i]:,} = {number(100 * fam.fraction[i], 'percent', 5)}% of "
                f"{view.n:,} │ |Bj| {ov.size_j[j]:,} │ in both: "
                f"{number(ov.pct_i[i, j], 'percent', 5)}% of Bi, "
                f"{number(ov.pct_j[i, j], 'percent', 5)}% of Bj"
            )
            values, ranks = fam.known_values, fam.known_ranks
            if values is not None and ranks is not None:
                text += f"\n◆ known {known_name(view.dopant)} (eV/atom): " + " │ ".join(
                    f"{name} {values[k]:+.3f} rank {ranks[k]:,.0f}"
                    for name, k in (("@i", i), ("@j", j))
                )
        self.summary.update(text)

    # ------------------------------------------------------------------ the cell's list
    def list_cell(self, view: View) -> None:
        """List the cell's candidates (in both sets) in a worker, if the preview is shown."""
        if self.preview.display:
            self._sort((view, self.cell))

    @work(thread=True, exclusive=True, group="preview", description="listing the cell")
    def _sort(self, request: tuple[View, tuple[int, int]]) -> None:
        view, (i, j) = request
        rows = candidate_rows(view, i, j, "both", "E@i")
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self.show_rows, request, rows)

    def show_rows(self, request: tuple[View, tuple[int, int]], rows: np.ndarray) -> None:
        """Show the cell's list (dropped when the selection moved on meanwhile)."""
        if request != (self.view, self.cell):
            return
        self.rows = rows
        fill(self.preview, request[0], *request[1], rows)

    @on(RowTable.Chosen)
    def _chosen(self, event: RowTable.Chosen) -> None:
        event.stop()
        if event.row < len(self.rows):
            self.post_message(ConfigurationChosen(int(self.rows[event.row])))
