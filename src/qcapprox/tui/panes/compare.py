"""Tab 3, Compare: two families side by side: their pairwise heatmaps (same metric and
cursor), their names over the maps at every size, and a table of the two at the same limit
(narrow terminals give the cursor limit's line under the maps instead)."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import DataTable, Label, Static

from qcapprox import analysis
from qcapprox.analysis import Family
from qcapprox.tui.format import LIMIT_LABELS, LIMITS, number, short_family
from qcapprox.tui.panes.base import LimitHeatmap, Pane
from qcapprox.tui.panes.limits import METRIC_KINDS, extra_rows, sizes
from qcapprox.tui.state import View


class ComparePane(Pane):
    """Two families' heatmaps; `o` takes the next other family, `m` cycles the metric."""

    TAB = "compare"
    TITLE = "Compare"
    HELP = "3 Compare"
    SCOPED_CSS = False
    DEFAULT_CSS = """
    ComparePane .names { height: 1; }
    ComparePane .names Label { width: 1fr; margin-right: 1; text-style: bold; }
    ComparePane .names #names-table { width: 20; margin-right: 0; text-style: none; }
    ComparePane #compare-maps { height: auto; }
    ComparePane LimitHeatmap { width: 1fr; margin-right: 1; }
    ComparePane DataTable { width: 20; height: 16; }
    ComparePane .summary { height: auto; }
    Screen.-narrow ComparePane DataTable { display: none; }
    Screen.-narrow ComparePane #names-table { display: none; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("m", "cycle_metric", "Metric"),
        Binding("o", "app.cycle_other", "Other"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.cell = (0, len(LIMITS) - 1)
        self.metric = "count"
        self.maps = (LimitHeatmap(LIMIT_LABELS, max_cell=6), LimitHeatmap(LIMIT_LABELS, max_cell=6))
        self.names = (Label(), Label())
        self.heading = Static(classes="title")
        self.agreement = DataTable(cursor_type="row", show_cursor=False)
        self.summary = Static(classes="summary")

    def compose(self) -> ComposeResult:
        yield self.heading
        with Horizontal(classes="names"):
            yield from self.names
            yield Label("same limit", id="names-table")
        with Horizontal(id="compare-maps"):
            yield from self.maps
            yield self.agreement
        yield self.summary

    def on_mount(self) -> None:
        for heatmap in self.maps:
            heatmap.set_reactive(LimitHeatmap.cursor, self.cell)

    def focus_target(self) -> LimitHeatmap:
        return self.maps[0]

    def set_cell(self, cell: tuple[int, int]) -> None:
        self.cell = cell
        for heatmap in self.maps:
            if heatmap.cursor != cell:
                heatmap.set_reactive(LimitHeatmap.cursor, cell)
                heatmap.refresh()
        if self.view is not None and self.shown:
            self.show_summary(self.view)

    def action_cycle_metric(self) -> None:
        metrics = analysis.METRICS
        self.metric = metrics[(metrics.index(self.metric) + 1) % len(metrics)]
        self.redraw()

    def draw(self, view: View) -> None:
        table = self.agreement
        table.clear(columns=True)
        if view.other is None or view.agreement is None:
            self.heading.update("Compare needs two backbones; this dopant has one.")
            for name in self.names:
                name.update("")
            return
        narrow = self.screen.size.width < 80
        kind = METRIC_KINDS[self.metric]
        for heatmap, label, fam in zip(
            self.maps, self.names, (view.primary, view.other), strict=True
        ):
            heatmap.set_data(
                fam.overlap.matrix(self.metric),
                kind,
                extra_rows(fam, self.screen.size.height, True),
                empty="" if fam.sizes.any() else "every set empty",
            )
            label.update(short_family(fam.backbone) if narrow else fam.backbone)
        self.heading.update(f"{analysis.METRIC_TITLES[self.metric]} · rows i, columns j: limits")
        ag = view.agreement
        table.add_columns("lim", "both", "J")
        for k, limit in enumerate(LIMITS):
            ok = ag.valid_i[k] and ag.valid_j[k]
            table.add_row(
                str(limit),
                Text(str(ag.both[k, 0]) if ok else "-", justify="right"),
                Text(number(ag.jaccard[k, 0], "fraction", 4), justify="right"),
            )
        self.show_summary(view)

    def on_resize(self) -> None:
        self.redraw()

    def show_summary(self, view: View) -> None:
        """The cursor cell in both families, and the two at the cursor's row limit."""
        if view.other is None or view.agreement is None:
            return
        i, j = self.cell
        a, b = view.primary, view.other
        ag = view.agreement

        def cell(fam: Family) -> str:
            return number(fam.overlap.matrix(self.metric)[i, j], METRIC_KINDS[self.metric], 7)

        names = [a.backbone, b.backbone]
        if self.screen.size.width < 80:
            names = [short_family(x) for x in names]
        both = ag.both[i, 0] if ag.valid_i[i] and ag.valid_j[i] else float("nan")
        self.summary.update(
            f"i={LIMITS[i]} j={LIMITS[j]}: {names[0]} {cell(a)} · {names[1]} {cell(b)}\n"
            f"limit {LIMITS[i]}: {names[0]} {number(sizes(a)[i], 'count', 7)} · "
            f"{names[1]} {number(sizes(b)[i], 'count', 7)} · "
            f"both {number(both, 'count', 7)} · Jaccard {number(ag.jaccard[i, 0], 'fraction', 5)}"
        )
