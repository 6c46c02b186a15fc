"""`qcapprox tui RESULTS.h5`: compare below-hull candidate sets across limits and backbones.

Keyboard first: every action has a key, listed in the footer for the focused part of
the screen. Tabs: 1 Limits (13x13 pairwise overlap heatmap, set sizes, recall vs limit
24), 2 Candidates (the configurations of the heatmap cell), 3 Compare (two backbones side
by side), 4 Robust (below the threshold at >= k limits), 5 Detail (one configuration:
predictions at every limit and backbone, occupancy, export), 6 Test (test RMSE and
SimilarityScore). Analysis runs in worker threads; the keys never wait for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
from ase.io import write
from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.timer import Timer
from textual.widgets import (
    DataTable,
    Footer,
    Input,
    Label,
    LoadingIndicator,
    Static,
    TabbedContent,
    TabPane,
)
from textual.worker import Worker

from qcapprox import analysis
from qcapprox.parent import Parent
from qcapprox.results import LIMITS, Results
from qcapprox.tui.format import (
    OCC_LEGEND,
    composition_filter,
    energy,
    number,
    occupancy_strings,
)
from qcapprox.tui.heatmap import Heatmap
from qcapprox.tui.state import Family, View, compute_view

LIMIT_LABELS = [str(x) for x in LIMITS]
SETS = ("both", "only_i", "only_j")
SORTS = ("E@i", "E@j", "mult", "comp", "id")
SORT_TITLES = {
    "E@i": "E at i, lowest first",
    "E@j": "E at j, lowest first",
    "mult": "multiplicity, largest first",
    "comp": "composition (A4 vacancies, A4 M, ...)",
    "id": "id",
}
METRIC_KINDS = {"count": "count", "pct_i": "percent", "pct_j": "percent", "jaccard": "fraction"}
METRIC_TEXT = {
    "count": "|Bi ∩ Bj|: configurations below at both limits",
    "pct_i": "|Bi ∩ Bj| / |Bi|, % of the row set",
    "pct_j": "|Bi ∩ Bj| / |Bj|, % of the column set",
    "jaccard": "Jaccard |Bi ∩ Bj| / |Bi ∪ Bj|",
}
EXPORTS = {"cif": ("cif", "cif"), "poscar": ("vasp", "POSCAR"), "extxyz": ("extxyz", "extxyz")}
MAX_ROWS = 1000
TABS = ("limits", "candidates", "compare", "robust", "detail", "test")


class LimitHeatmap(Heatmap):
    """The heatmap of the Limits and Compare tabs: enter lists the cell's candidates."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter", "select", "Candidates")]


class CandidateTable(DataTable):
    """A table of configurations: enter opens the detail."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter", "select_cursor", "Detail")]


class FilterInput(Input):
    """The composition filter: escape clears and closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "app.clear_filter", "Clear filter")]


class LimitsPane(Vertical):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("m", "app.cycle_metric", "Metric")]


class CandidatesPane(Vertical):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("v", "app.cycle_set", "Set"),
        Binding("s", "app.cycle_sort", "Sort"),
        Binding("slash", "app.filter", "Filter", key_display="/"),
    ]


class ComparePane(Vertical):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("m", "app.cycle_metric", "Metric"),
        Binding("o", "app.cycle_other", "Other"),
    ]


class RobustPane(Vertical):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("k", "app.cycle_k", "Min limits"),
        Binding("a", "app.cycle_scope", "Scope"),
    ]


class DetailPane(Vertical):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("c", "app.export('cif')", "CIF"),
        Binding("p", "app.export('poscar')", "POSCAR"),
        Binding("x", "app.export('extxyz')", "extxyz"),
    ]


class ThresholdScreen(ModalScreen[float | None]):
    """Ask for the below-hull threshold (eV/atom)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, current: float) -> None:
        super().__init__()
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(id="threshold-box"):
            yield Label("Below-hull threshold t, eV/atom (sets: E above hull < t)")
            yield Input(value=f"{self.current:g}", type="number", id="threshold-input")
            yield Label("enter apply · escape cancel", classes="hint")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        try:
            value = float(event.value)
        except ValueError:
            self.notify(f"{event.value!r} is not a number", severity="error")
            return
        self.dismiss(value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class QcapproxApp(App[None]):
    """The qcapprox results browser."""

    CSS_PATH = "app.tcss"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("d", "cycle_dopant", "Dopant"),
        Binding("b", "cycle_backbone", "Backbone"),
        Binding("t", "threshold", "Threshold"),
        Binding("1", "tab('limits')", "Tab", key_display="1-6"),
        *[Binding(str(k + 1), f"tab('{name}')", show=False) for k, name in enumerate(TABS) if k],
        Binding("q", "quit", "Quit"),
    ]

    def __init__(
        self,
        path: str | Path,
        *,
        threshold: float = 0.0,
        dopant: str | None = None,
        backbone: str | None = None,
        export_dir: str | Path = ".",
    ) -> None:
        super().__init__()
        self.results = Results(path)
        self.title = f"qcapprox · {self.results.path.name}"
        self.export_dir = Path(export_dir)
        self.dopant = dopant or next(
            (d for d in self.results.dopants if self.results.backbones(d)), self.results.dopants[0]
        )
        backbones = self.results.backbones(self.dopant)
        self.backbone = backbone or (backbones[0] if backbones else None)
        self.other = self._next_other(None)
        self.threshold = float(threshold)
        self.metric = "count"
        self.cell = (0, len(LIMITS) - 1)
        self.cell_set = "both"
        self.sort = "E@i"
        self.query_text = ""
        self.k = len(LIMITS)
        self.scope = "backbone"
        self.view: View | None = None
        self.detail_row: int | None = None
        self.candidate_rows = np.zeros(0, dtype=np.int64)
        self.robust: analysis.Candidates | None = None
        self._busy_timer: Timer | None = None
        self._stale: set[str] = set()

    # ------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        with Horizontal(id="status-bar"):
            yield Static(id="status")
            yield LoadingIndicator(id="busy")
        with TabbedContent(initial="limits"):
            with TabPane("1 Limits", id="limits"), LimitsPane():
                yield Static(id="limits-title", classes="title")
                yield LimitHeatmap(LIMIT_LABELS, id="heatmap", max_cell=7)
                yield Static(id="cell-summary", classes="summary")
            with TabPane("2 Candidates", id="candidates"), CandidatesPane():
                yield Static(id="cand-title", classes="title")
                yield CandidateTable(id="cand-table", cursor_type="row", zebra_stripes=True)
                yield FilterInput(
                    placeholder="composition filter, e.g. M3 or v1 M2 (enter keep, escape clear)",
                    id="cand-filter",
                    compact=True,
                )
            with TabPane("3 Compare", id="compare"), ComparePane():
                yield Static(id="compare-title", classes="title")
                with Horizontal(id="compare-maps"):
                    yield LimitHeatmap(LIMIT_LABELS, id="cmp-a", max_cell=6)
                    yield LimitHeatmap(LIMIT_LABELS, id="cmp-b", max_cell=6)
                    yield DataTable(id="agreement", cursor_type="row", show_cursor=False)
                yield Static(id="compare-summary", classes="summary")
            with TabPane("4 Robust", id="robust"), RobustPane():
                yield Static(id="robust-title", classes="title")
                yield CandidateTable(id="robust-table", cursor_type="row", zebra_stripes=True)
            with TabPane("5 Detail", id="detail"), DetailPane():
                yield Static(id="detail-title", classes="title")
                yield DataTable(id="detail-table", cursor_type="row", zebra_stripes=True)
            with TabPane("6 Test", id="test"), Vertical():
                yield Static(id="test-title", classes="title")
                with Horizontal(id="test-body"):
                    yield DataTable(id="rmse-table", cursor_type="row")
                    yield Heatmap(LIMIT_LABELS, id="similarity", max_cell=6)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one(TabbedContent).query_one("ContentTabs").can_focus = False
        self.query_one("#cand-filter").display = False
        for heatmap in self.query(Heatmap):
            heatmap.cursor = self.cell
        self.query_one("#heatmap").focus()
        self._show_status()
        self.recompute()

    def on_unmount(self) -> None:
        self.results.close()

    # ------------------------------------------------------------------ busy indicator
    def _working(self) -> bool:
        return any(not worker.is_finished for worker in self.workers)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """Show the progress indicator while a worker runs for longer than a moment."""
        if self._working():
            if self._busy_timer is None:
                self._busy_timer = self.set_timer(0.2, self._show_busy)
            return
        if self._busy_timer is not None:
            self._busy_timer.stop()
            self._busy_timer = None
        self.query_one("#busy").display = False

    def _show_busy(self) -> None:
        self._busy_timer = None
        self.query_one("#busy").display = self._working()

    # ------------------------------------------------------------------ selection
    def _next_other(self, current: str | None) -> str | None:
        choices = [b for b in self.results.backbones(self.dopant) if b != self.backbone]
        if not choices:
            return None
        if current in choices:
            return choices[(choices.index(current) + 1) % len(choices)]
        return choices[0]

    def _show_status(self) -> None:
        label = self.view.energy_label if self.view else self.results.energy_label(self.dopant)
        parts = [
            self.dopant,
            self.backbone or "no predictions",
            f"below {self.threshold:+.3f} eV/atom",
            label,
        ]
        self.query_one("#status", Static).update(" " + " · ".join(parts))

    def action_cycle_dopant(self) -> None:
        dopants = self.results.dopants
        self.dopant = dopants[(dopants.index(self.dopant) + 1) % len(dopants)]
        backbones = self.results.backbones(self.dopant)
        if self.backbone not in backbones:
            self.backbone = backbones[0] if backbones else None
        self.other = (
            self.other
            if self.other in backbones and self.other != self.backbone
            else (self._next_other(None))
        )
        self.detail_row = None
        self.recompute()

    def action_cycle_backbone(self) -> None:
        backbones = self.results.backbones(self.dopant)
        if not backbones:
            return
        index = backbones.index(self.backbone) if self.backbone in backbones else -1
        self.backbone = backbones[(index + 1) % len(backbones)]
        if self.other == self.backbone:
            self.other = self._next_other(None)
        self.recompute()

    def action_cycle_other(self) -> None:
        self.other = self._next_other(self.other)
        self.recompute()

    def action_threshold(self) -> None:
        def done(value: float | None) -> None:
            if value is not None and value != self.threshold:
                self.threshold = value
                self.recompute()

        self.push_screen(ThresholdScreen(self.threshold), done)

    def action_cycle_metric(self) -> None:
        metrics = analysis.METRICS
        self.metric = metrics[(metrics.index(self.metric) + 1) % len(metrics)]
        self._show_maps()

    def action_tab(self, name: str) -> None:
        self.query_one(TabbedContent).active = name

    def action_cycle_set(self) -> None:
        self.cell_set = SETS[(SETS.index(self.cell_set) + 1) % len(SETS)]
        self._show_candidates()

    def action_cycle_sort(self) -> None:
        self.sort = SORTS[(SORTS.index(self.sort) + 1) % len(SORTS)]
        self._show_candidates()

    def action_filter(self) -> None:
        box = self.query_one("#cand-filter", Input)
        box.display = True
        box.focus()

    def action_cycle_k(self) -> None:
        self.k = self.k - 1 if self.k > 1 else len(LIMITS)
        self.compute_robust()

    def action_cycle_scope(self) -> None:
        scopes = ("backbone", "both", "either") if self.other else ("backbone",)
        self.scope = (
            scopes[(scopes.index(self.scope) + 1) % len(scopes)]
            if self.scope in scopes
            else scopes[0]
        )
        self.compute_robust()

    # ------------------------------------------------------------------ workers
    def recompute(self) -> None:
        """Analyse the current selection in a worker thread."""
        self._show_status()
        if self.backbone is None:
            self.query_one("#limits-title", Static).update(
                f"{self.results.path.name}: no predictions for {self.dopant}"
            )
            return
        self._analyse(self.dopant, self.backbone, self.other, self.threshold)

    @work(thread=True, exclusive=True, group="analysis")
    def _analyse(self, dopant: str, backbone: str, other: str | None, threshold: float) -> None:
        try:
            view = compute_view(self.results, dopant, backbone, other, threshold)
        except Exception as err:  # shown, not raised: the UI stays usable
            self.call_from_thread(self._failed, err)
            return
        self.call_from_thread(self._apply, view)

    def _failed(self, err: Exception) -> None:
        self.notify(str(err), title="analysis failed", severity="error", timeout=10)

    def _apply(self, view: View) -> None:
        if view.key != (self.dopant, self.backbone, self.other, self.threshold):
            return  # a newer selection is on its way
        self.view = view
        self._show_status()
        self._show_maps()
        self._show_candidates()
        self._show_test()
        self.compute_robust()
        if self.detail_row is not None:
            self.show_detail(self.detail_row)

    @work(thread=True, exclusive=True, group="robust")
    def _robust_worker(self, view: View, k: int, scope: str) -> None:
        preds = {view.primary.backbone: view.primary.predictions}
        if scope != "backbone" and view.other is not None:
            preds[view.other.backbone] = view.other.predictions
        found = analysis.robust_candidates(
            preds, view.multiplicity, view.threshold, k, "any" if scope == "either" else "all"
        )
        self.call_from_thread(self._apply_robust, view, k, scope, found)

    def compute_robust(self) -> None:
        """Rank robust candidates of the current view in a worker."""
        if self.view is None:
            return
        if self.scope != "backbone" and self.view.other is None:
            self.scope = "backbone"
        self._robust_worker(self.view, self.k, self.scope)

    def _apply_robust(self, view: View, k: int, scope: str, found: analysis.Candidates) -> None:
        if view is not self.view or k != self.k or scope != self.scope:
            return
        self.robust = found
        self._show_robust()

    @work(thread=True, exclusive=True, group="detail")
    def _detail_worker(self, dopant: str, row: int) -> None:
        columns = {
            b: self.results.predictions(dopant, b)[:, row] for b in self.results.backbones(dopant)
        }
        occupancy = self.results.occupancy(dopant)[row]
        parent = self.results.parent(dopant)
        self.call_from_thread(self._apply_detail, dopant, row, columns, occupancy, parent)

    def show_detail(self, row: int) -> None:
        """Show one configuration (a store row) in the Detail tab."""
        self.detail_row = row
        self._detail_worker(self.dopant, row)

    @work(thread=True, group="export")
    def _export_worker(self, dopant: str, row: int, kind: str) -> None:
        fmt, suffix = EXPORTS[kind]
        config_id = int(self.results.ids(dopant)[row])
        atoms = self.results.atoms(dopant, config_id)
        atoms.info["dopant"] = dopant
        self.export_dir.mkdir(parents=True, exist_ok=True)
        path = self.export_dir / f"{dopant}-{config_id}.{suffix}"
        try:
            write(path, atoms, format=fmt)
        except Exception as err:
            self.call_from_thread(self._exported, None, str(err))
            return
        self.call_from_thread(self._exported, path, atoms.get_chemical_formula())

    def _exported(self, path: Path | None, message: str) -> None:
        if path is None:
            self.notify(message, title="export failed", severity="error")
        else:
            self.notify(f"wrote {path} ({message})", title="export")

    def action_export(self, kind: str) -> None:
        if self.detail_row is None:
            self.notify("choose a configuration first (enter in Candidates or Robust)")
            return
        self._export_worker(self.dopant, self.detail_row, kind)

    # ------------------------------------------------------------------ limits and compare
    def _show_maps(self) -> None:
        view = self.view
        if view is None:
            return
        fam = view.primary
        kind = METRIC_KINDS[self.metric]
        extra = [
            ("n", _sizes(fam), "count"),
            ("Σm", np.where(fam.valid, fam.weighted, np.nan), "count"),
            ("rec", fam.recall, "fraction"),
        ]
        self.query_one("#heatmap", Heatmap).set_data(fam.overlap.matrix(self.metric), kind, extra)
        self.query_one("#limits-title", Static).update(
            f"{METRIC_TEXT[self.metric]} · rows i, columns j = limits"
        )
        self._show_cell_summary()
        self._show_compare()

    def _show_cell_summary(self) -> None:
        view = self.view
        if view is None:
            return
        i, j = self.cell
        fam = view.primary
        ov = fam.overlap
        li, lj = LIMITS[i], LIMITS[j]
        if not (fam.valid[i] and fam.valid[j]):
            missing = [str(LIMITS[k]) for k in (i, j) if not fam.valid[k]]
            text = f"i={li} j={lj}: no predictions at limit {', '.join(missing)} for {fam.backbone}"
        else:
            text = (
                f"i={li} j={lj} │ both {ov.both[i, j]} │ only i {ov.only_i[i, j]} │ "
                f"only j {ov.only_j[i, j]} │ Jaccard {number(ov.jaccard[i, j], 'fraction', 5)}\n"
                f"|Bi| {ov.size_i[i]} ({number(ov.pct_i[i, j], 'percent', 5)}% in both) │ "
                f"|Bj| {ov.size_j[j]} ({number(ov.pct_j[i, j], 'percent', 5)}%) │ "
                f"recall i vs 24 {number(fam.recall[i], 'fraction', 5)}"
            )
        self.query_one("#cell-summary", Static).update(text)

    def _show_compare(self) -> None:
        view = self.view
        title = self.query_one("#compare-title", Static)
        table = self.query_one("#agreement", DataTable)
        table.clear(columns=True)
        if view is None or view.other is None:
            title.update("Compare needs two backbones; this dopant has one.")
            return
        a, b = view.primary, view.other
        kind = METRIC_KINDS[self.metric]
        for name, fam in (("#cmp-a", a), ("#cmp-b", b)):
            extra = [("n", _sizes(fam), "count"), ("rec", fam.recall, "fraction")]
            self.query_one(name, Heatmap).set_data(fam.overlap.matrix(self.metric), kind, extra)
        title.update(
            f"left {a.backbone} · right {b.backbone} · {METRIC_TEXT[self.metric]}\n"
            "table: same limit, both backbones"
        )
        ag = view.agreement
        table.add_columns("lim", "both", "J")
        for k, limit in enumerate(LIMITS):
            ok = ag.valid_i[k] and ag.valid_j[k]
            table.add_row(
                str(limit),
                Text(str(ag.both[k, 0]) if ok else "-", justify="right"),
                Text(number(ag.jaccard[k, 0], "fraction", 4), justify="right"),
                key=str(limit),
            )
        self._show_compare_summary()

    def _show_compare_summary(self) -> None:
        view = self.view
        if view is None or view.other is None:
            return
        i, j = self.cell
        a, b = view.primary, view.other
        ag = view.agreement

        def cell(fam: Family) -> str:
            value = fam.overlap.matrix(self.metric)[i, j]
            return number(value, METRIC_KINDS[self.metric], 7)

        both = ag.both[i, 0] if ag.valid_i[i] and ag.valid_j[i] else np.nan
        self.query_one("#compare-summary", Static).update(
            f"i={LIMITS[i]} j={LIMITS[j]}: {a.backbone} {cell(a)} · {b.backbone} {cell(b)}\n"
            f"limit {LIMITS[i]}: {a.backbone} {number(_sizes(a)[i], 'count', 7)} · "
            f"{b.backbone} {number(_sizes(b)[i], 'count', 7)} · "
            f"both {number(both, 'count', 7)} · Jaccard {number(ag.jaccard[i, 0], 'fraction', 5)}"
        )

    @on(Heatmap.CursorMoved)
    def _cursor_moved(self, event: Heatmap.CursorMoved) -> None:
        if event.heatmap.id == "similarity":
            return
        self.cell = (event.i, event.j)
        for other in self.query(LimitHeatmap):
            if other is not event.heatmap and other.cursor != self.cell:
                other.cursor = self.cell
        self._show_cell_summary()
        self._show_compare_summary()
        self._show_candidates()

    @on(Heatmap.Selected)
    def _cell_selected(self, event: Heatmap.Selected) -> None:
        self.action_tab("candidates")

    # ------------------------------------------------------------------ candidates
    def cell_rows(self) -> np.ndarray:
        """Rows of the current set of the current cell, filtered and sorted as shown."""
        view = self.view
        if view is None:
            return np.zeros(0, dtype=np.int64)
        i, j = self.cell
        masks = view.primary.masks
        rows = dict(zip(SETS, analysis.cell_members(masks[i], masks[j]), strict=True))[
            self.cell_set
        ]
        if self.query_text.strip():
            rows = rows[composition_filter(view.composition[rows], self.query_text)]
        pred = view.primary.predictions
        e_i = np.nan_to_num(pred[i, rows], nan=np.inf)
        e_j = np.nan_to_num(pred[j, rows], nan=np.inf)
        ids = view.ids[rows]
        keys = {
            "E@i": (ids, e_i),
            "E@j": (ids, e_j),
            "mult": (ids, e_i, -view.multiplicity[rows]),
            "comp": (ids, e_i, *view.counts[rows].T[::-1]),
            "id": (ids,),
        }[self.sort]
        return rows[np.lexsort(keys)]

    def _active_tab(self) -> str:
        return self.query_one(TabbedContent).active

    def _show_candidates(self) -> None:
        view = self.view
        if view is None:
            return
        if self._active_tab() != "candidates":  # filled when the tab is shown
            self._stale.add("candidates")
            return
        self._stale.discard("candidates")
        i, j = self.cell
        li, lj = LIMITS[i], LIMITS[j]
        masks = view.primary.masks
        sizes = [len(x) for x in analysis.cell_members(masks[i], masks[j])]
        names = {"both": f"both {li}&{lj}", "only_i": f"only {li}", "only_j": f"only {lj}"}
        title = Text(f"{view.primary.backbone} · limits i={li} j={lj}: ")
        for name, size in zip(SETS, sizes, strict=True):
            style = "reverse bold" if name == self.cell_set else ""
            title.append(f" {names[name]} ({size}) ", style)
        rows = self.cell_rows()
        self.candidate_rows = rows
        shown = rows[:MAX_ROWS]
        filt = f"filter '{self.query_text}'" if self.query_text.strip() else "no filter"
        title.append(
            f"\nsorted by {SORT_TITLES[self.sort]} · {filt} · {len(rows)} rows"
            + (f", first {MAX_ROWS} shown" if len(rows) > MAX_ROWS else "")
            + " · E: eV/atom"
        )
        self.query_one("#cand-title", Static).update(title)
        table = self.query_one("#cand-table", DataTable)
        table.clear(columns=True)
        table.add_column("id", key="id")
        table.add_column("comp", key="comp")
        table.add_column("A4", key="a4")
        table.add_column(f"E@{li}", key="e_i")
        table.add_column(f"E@{lj}", key="e_j")
        table.add_column("mult", key="mult")
        pred = view.primary.predictions
        table.add_rows(
            [
                (
                    str(view.ids[r]),
                    view.composition[r],
                    view.a4[r],
                    Text(energy(pred[i, r]), justify="right"),
                    Text(energy(pred[j, r]), justify="right"),
                    Text(str(view.multiplicity[r]), justify="right"),
                )
                for r in shown
            ]
        )

    @on(Input.Changed, "#cand-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.query_text = event.value
        self._show_candidates()

    @on(Input.Submitted, "#cand-filter")
    def _filter_done(self, event: Input.Submitted) -> None:
        self.query_one("#cand-table").focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#cand-filter", Input)
        box.value = ""
        box.display = False
        self.query_text = ""
        self._show_candidates()
        self.query_one("#cand-table").focus()

    @on(DataTable.RowSelected, "#cand-table")
    def _candidate_chosen(self, event: DataTable.RowSelected) -> None:
        rows = self.candidate_rows
        if event.cursor_row < len(rows):
            self.show_detail(int(rows[event.cursor_row]))
            self.action_tab("detail")

    # ------------------------------------------------------------------ robust
    def _show_robust(self) -> None:
        view, found = self.view, self.robust
        if view is None or found is None:
            return
        if self._active_tab() != "robust":
            self._stale.add("robust")
            return
        self._stale.discard("robust")
        scope = {
            "backbone": view.primary.backbone,
            "both": f"both {view.primary.backbone} and {view.other.backbone if view.other else ''}",
            "either": f"{view.primary.backbone} or {view.other.backbone if view.other else ''}",
        }[self.scope]
        self.query_one("#robust-title", Static).update(
            f"below {view.threshold:+.3f} eV/atom at >= {self.k} of 13 limits in {scope}: "
            f"{len(found)} configurations (Σ multiplicity {int(found.multiplicity.sum())})\n"
            "ranked by limits below, then mean E (eV/atom)"
            + (f"; first {MAX_ROWS} shown" if len(found) > MAX_ROWS else "")
        )
        table = self.query_one("#robust-table", DataTable)
        table.clear(columns=True)
        table.add_columns("id", "comp", "A4", "limits", "mean E", "mult")
        for k in range(min(len(found), MAX_ROWS)):
            r = found.rows[k]
            table.add_row(
                str(view.ids[r]),
                view.composition[r],
                view.a4[r],
                Text("+".join(str(x) for x in found.n_limits[k]), justify="right"),
                Text(energy(found.mean_prediction[k]), justify="right"),
                Text(str(found.multiplicity[k]), justify="right"),
            )

    @on(DataTable.RowSelected, "#robust-table")
    def _robust_chosen(self, event: DataTable.RowSelected) -> None:
        if self.robust is not None and event.cursor_row < len(self.robust):
            self.show_detail(int(self.robust.rows[event.cursor_row]))
            self.action_tab("detail")

    # ------------------------------------------------------------------ detail
    def _apply_detail(
        self,
        dopant: str,
        row: int,
        columns: dict[str, np.ndarray],
        occupancy: np.ndarray,
        parent: Parent,
    ) -> None:
        if dopant != self.dopant or row != self.detail_row:
            return
        config_id = int(self.results.ids(dopant)[row])
        comp = self.results.composition(dopant)[row]
        mult = int(self.results.multiplicity(dopant)[row])
        sites = [
            f"{name} {occupancy_strings(occupancy[None, sl])[0]}"
            for name, sl in parent.orbit_slices.items()
        ]
        self.query_one("#detail-title", Static).update(
            f"{dopant} id {config_id} · A4 v{comp[0]} M{comp[1]} · A5 v{comp[2]} M{comp[3]} · "
            f"multiplicity {mult}\n" + "\n".join(sites) + f"   ({OCC_LEGEND})\n"
            f"E above hull, eV/atom ({self.results.energy_label(dopant)}); * below "
            f"{self.threshold:+.3f}"
        )
        table = self.query_one("#detail-table", DataTable)
        table.clear(columns=True)
        table.add_column("limit")
        for backbone in columns:
            table.add_column(backbone)
        for k, limit in enumerate(LIMITS):
            cells = []
            for values in columns.values():
                value = values[k]
                mark = "*" if np.isfinite(value) and value < self.threshold else " "
                cells.append(Text(energy(value) + mark, justify="right"))
            table.add_row(str(limit), *cells)

    # ------------------------------------------------------------------ test
    def _show_test(self) -> None:
        view = self.view
        if view is None:
            return
        fam = view.primary
        table = self.query_one("#rmse-table", DataTable)
        table.clear(columns=True)
        heat = self.query_one("#similarity", Heatmap)
        title = self.query_one("#test-title", Static)
        if fam.metrics is None or fam.rmse is None:
            title.update(f"no test metrics for {fam.backbone} ({view.dopant}) in this file")
            heat.set_data(np.full((len(LIMITS), len(LIMITS)), np.nan), "score")
            return
        title.update(
            f"{fam.backbone}: test RMSE (eq. 3, eV/atom) and SimilarityScore (eq. 4)\n"
            f"ȳ = {fam.metrics.test_mean:.4f} eV/atom over {len(fam.metrics.test_target)} "
            f"test structures · {view.energy_label}"
        )
        train = view.subsets.get("train") if view.subsets else None
        table.add_columns("lim", "RMSE", *(["train"] if train is not None else []))
        for k, limit in enumerate(LIMITS):
            cells = [Text(energy(fam.rmse[k]), justify="right")]
            if train is not None:
                cells.append(Text(str(train[k]), justify="right"))
            table.add_row(str(limit), *cells)
        heat.set_data(fam.similarity, "score")

    # ------------------------------------------------------------------ tabs
    @on(TabbedContent.TabActivated)
    def _tab_activated(self, event: TabbedContent.TabActivated) -> None:
        focus = {
            "limits": "#heatmap",
            "candidates": "#cand-table",
            "compare": "#cmp-a",
            "robust": "#robust-table",
            "detail": "#detail-table",
            "test": "#similarity",
        }[event.pane.id]
        self.query_one(focus).focus()
        if event.pane.id == "candidates" and "candidates" in self._stale:
            self._show_candidates()
        if event.pane.id == "robust" and "robust" in self._stale:
            self._show_robust()


def _sizes(fam: Family) -> np.ndarray:
    """Set sizes per limit for display: NaN ('-') where a limit has no predictions."""
    return np.where(fam.valid, fam.sizes, np.nan)


def run(path: Path, **options: object) -> None:
    """Open the results browser on a results file (options: see QcapproxApp)."""
    QcapproxApp(path, **options).run()
