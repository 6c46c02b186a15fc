"""`qcapprox tui RESULTS.h5`: compare below-hull candidate sets across limits and backbones.

Keyboard first: every action has a key, listed in the footer for the focused part of the
screen and in the help screen (`?`, F1 or `h`); Ctrl-P searches the same actions. Tabs:
1 Limits (13x13 pairwise overlap heatmap, set sizes, recall vs limit 24), 2 Candidates
(the configurations of the heatmap cell), 3 Compare (two backbones side by side),
4 Robust (below the threshold at >= k limits), 5 Detail (one configuration: formula,
multiplicity, predictions at every limit and backbone and their spread, export), 6 Test
(test RMSE, |ΔRMSE| and SimilarityScore).

Responsive by construction: a key press does O(1) work on the UI thread (13x13 matrices,
one summary line); the work that grows with the data (opening the file, analysing a
selection, sorting and filtering candidates, ranking robust candidates, exporting) runs
in thread workers of exclusive groups, so a newer key cancels the older work and stale
answers are dropped (workers carry a fixed description: Textual would otherwise format
their arguments, whole arrays, on the UI thread); tables draw only their visible rows
(`RowTable`). The file is opened after the first frame; nothing here imports torch.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np
from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen, Screen
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
from textual.worker import Worker, get_current_worker

from qcapprox import analysis
from qcapprox.tui.format import LIMITS, OCC_LEGEND, energy, number, occupancy_strings
from qcapprox.tui.heatmap import Heatmap
from qcapprox.tui.help import HelpScreen
from qcapprox.tui.state import REFERENCE, SETS, SORTS, Family, View, candidate_rows
from qcapprox.tui.table import Column, RowTable

if TYPE_CHECKING:
    from qcapprox.results import Results

LIMIT_LABELS = [str(x) for x in LIMITS]
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
TABS = ("limits", "candidates", "compare", "robust", "detail", "test")
TAB_TITLES = {name: name.capitalize() for name in TABS}
NARROW = 80  # terminal width below which the layout is narrow (abbreviated status line)
SHORT, TALL = 24, 36  # terminal heights below which the UI is compact, from which it adds


class LimitHeatmap(Heatmap):
    """The heatmap of the Limits and Compare tabs: enter lists the cell's candidates."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter", "select", "Candidates")]


class FilterInput(Input):
    """The composition filter: escape clears and closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "app.clear_filter", "Clear filter")]


EXPORT_BINDINGS: list[BindingType] = [
    Binding("c", "app.export('cif')", "CIF"),
    Binding("p", "app.export('poscar')", "POSCAR"),
    Binding("x", "app.export('extxyz')", "extxyz"),
]


class LimitsPane(Vertical):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("m", "app.cycle_metric", "Metric")]


class CandidatesPane(Vertical):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("v", "app.cycle_set", "Set"),
        Binding("s", "app.cycle_sort", "Sort"),
        Binding("slash", "app.filter", "Filter", key_display="/"),
        *EXPORT_BINDINGS,
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
        *EXPORT_BINDINGS,
    ]


class DetailPane(Vertical):
    BINDINGS: ClassVar[list[BindingType]] = list(EXPORT_BINDINGS)


class TestPane(Vertical):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("m", "app.cycle_test_map", "Map")]


PANES = (
    ("1 Limits (heatmap: arrows move, home/end jump)", LimitsPane, LimitHeatmap),
    ("2 Candidates (table: arrows, page up/down, home/end)", CandidatesPane, RowTable),
    ("3 Compare", ComparePane, None),
    ("4 Robust", RobustPane, None),
    ("5 Detail", DetailPane, None),
    ("6 Test", TestPane, None),
)


class ThresholdScreen(ModalScreen[float | None]):
    """Ask for the below-hull threshold (eV/atom). The current value is selected when the
    field takes focus, so typing replaces it; what is not a finite number is refused with
    a notice saying why (the threshold stays)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, current: float) -> None:
        super().__init__()
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(id="threshold-box"):
            yield Label("Below-hull threshold t, eV/atom (sets: E above hull < t)")
            yield Input(
                value=f"{self.current:g}", type="number", select_on_focus=True, id="threshold-input"
            )
            yield Label("enter apply · escape cancel", classes="hint")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        try:
            value = float(event.value)
        except ValueError:
            self.notify(f"{event.value!r} is not a number", severity="error")
            return
        if not math.isfinite(value):
            self.notify(
                f"{event.value!r} is not a finite energy: give eV/atom, such as 0.01",
                severity="error",
            )
            return
        self.dismiss(value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class QcapproxApp(App[None]):
    """The qcapprox results browser. `load_error` holds the error if the file was refused."""

    CSS_PATH = "app.tcss"
    HORIZONTAL_BREAKPOINTS: ClassVar[list[tuple[int, str]]] = [
        (0, "-narrow"),
        (NARROW, "-normal"),
        (160, "-wide"),
    ]
    VERTICAL_BREAKPOINTS: ClassVar[list[tuple[int, str]]] = [
        (0, "-short"),
        (SHORT, "-medium"),
        (TALL, "-tall"),
    ]
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("question_mark,f1,h", "help", "Help", key_display="?"),
        Binding("d", "cycle_dopant", "Dopant"),
        Binding("b", "cycle_backbone", "Backbone"),
        Binding("t", "threshold", "Threshold"),
        Binding("1", "tab('limits')", "Tab", key_display="1-6"),
        *[Binding(str(k + 1), f"tab('{name}')", show=False) for k, name in enumerate(TABS) if k],
        Binding("escape", "hide_notice", "Hide notice", show=False),
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
        self.path = Path(path)
        self.title = f"qcapprox · {self.path.name}"
        self.results: Results | None = None
        self.load_error: Exception | None = None
        self.export_dir = Path(export_dir)
        self.dopant = dopant or ""
        self.backbone = backbone
        self.other: str | None = None
        self.threshold = float(threshold)
        self.metric = "count"
        self.test_map = "similarity"
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
            with TabPane("1 Limits", id="limits"), LimitsPane(id="limits-pane"):
                with Vertical(id="limits-main"):
                    yield Static(id="limits-title", classes="title")
                    yield LimitHeatmap(LIMIT_LABELS, id="heatmap", max_cell=7)
                    yield Static(id="cell-summary", classes="summary")
                yield RowTable(id="preview")
            with TabPane("2 Candidates", id="candidates"), CandidatesPane():
                yield Static(id="cand-title", classes="header")
                yield RowTable(id="cand-table")
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
                yield Static(id="robust-title", classes="header")
                yield RowTable(id="robust-table")
            with TabPane("5 Detail", id="detail"), DetailPane():
                yield Static(id="detail-title", classes="header")
                yield DataTable(id="detail-table", cursor_type="row", zebra_stripes=True)
            with TabPane("6 Test", id="test"), TestPane():
                yield Static(id="test-title", classes="header")
                with Horizontal(id="test-body"):
                    yield DataTable(id="rmse-table", cursor_type="row")
                    yield Heatmap(LIMIT_LABELS, id="similarity", max_cell=6)
        yield Static(id="notice")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one(TabbedContent).query_one("ContentTabs").can_focus = False
        self.query_one("#cand-filter").display = False
        self.query_one("#notice").display = False
        for heatmap in self.query(Heatmap):
            heatmap.cursor = self.cell
        self.query_one("#heatmap").focus()
        self.query_one("#status", Static).update(f" loading {self.path} …")
        self.query_one("#detail-title", Static).update(
            "no configuration chosen: enter on a row of Candidates or Robust shows it here"
        )
        self._open(self.path)

    def on_unmount(self) -> None:
        if self.results is not None:
            self.results.close()

    def on_resize(self) -> None:
        """Sizes change what is shown (extra heatmap rows, one- or two-line summaries)."""
        self._show_status()
        self._show_maps()

    @property
    def short(self) -> bool:
        """A terminal of fewer than 24 lines: the compact layout."""
        return self.size.height < SHORT

    # ------------------------------------------------------------------ opening
    @work(thread=True, exclusive=True, group="open", description="opening the results file")
    def _open(self, path: Path) -> None:
        """Open the results file (importing h5py and ASE off the UI thread)."""
        try:
            from qcapprox.results import Results

            results = Results(path)
        except Exception as err:  # the app says why and exits; `run` raises it again
            self.call_from_thread(self._refused, err)
            return
        self.call_from_thread(self._opened, results)

    def _refused(self, err: Exception) -> None:
        self.load_error = err
        self.exit(return_code=2)

    def _opened(self, results: Results) -> None:
        self.results = results
        if self.dopant not in results.dopants:
            self.dopant = next((d for d in results.dopants if results.backbones(d)), "")
            self.dopant = self.dopant or results.dopants[0]
        backbones = results.backbones(self.dopant)
        if self.backbone not in backbones:
            self.backbone = backbones[0] if backbones else None
        self.other = self._next_other(None)
        self.recompute()

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
        self.query("#busy").set(display=False)  # a query: the screen may be closing

    def _show_busy(self) -> None:
        self._busy_timer = None
        self.query("#busy").set(display=self._working())

    # ------------------------------------------------------------------ help, palette, notice
    def help_sections(self) -> list[tuple[str, list[tuple[str, str]]]]:
        """(title, [(keys, what they do)]) of every screen part, from the live bindings."""

        def rows(bindings: Iterable[BindingType]) -> list[tuple[str, str]]:
            out = []
            for binding in bindings:
                if isinstance(binding, Binding) and binding.description:
                    keys = binding.key_display or binding.key.replace("question_mark", "?")
                    out.append((keys, binding.description))
            return out

        sections = [("Everywhere", rows(self.BINDINGS))]
        for title, pane, widget in PANES:
            keys = rows(pane.BINDINGS)
            if widget is not None:
                keys = rows(widget.BINDINGS) + keys
            sections.append((title, keys))
        sections.append(("Heatmap keys", rows(Heatmap.BINDINGS)))
        sections.append(("Ctrl-P", [("ctrl+p", "search every action by name")]))
        return sections

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.help_sections()))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """The command palette (Ctrl-P): the app's own actions, then Textual's."""
        yield SystemCommand("Help", "Keys, definitions and legends", self.action_help)
        yield SystemCommand("Next dopant", "Cycle the dopant", self.action_cycle_dopant)
        yield SystemCommand("Next backbone", "Cycle the backbone", self.action_cycle_backbone)
        yield SystemCommand("Threshold", "Set the below-hull threshold", self.action_threshold)
        for name in TABS:
            yield SystemCommand(
                f"Tab {TAB_TITLES[name]}", f"Show the {name} tab", lambda n=name: self.action_tab(n)
            )
        for kind in ("cif", "poscar", "extxyz"):
            yield SystemCommand(
                f"Export {kind}",
                "Export the listed candidates (or the detail configuration)",
                lambda k=kind: self.action_export(k),
            )
        yield from super().get_system_commands(screen)

    def say(self, text: str) -> None:
        """Show a notice above the footer (it takes a line; it covers nothing)."""
        notice = self.query_one("#notice", Static)
        notice.update(Text(f" {text}  (escape hides)"))
        notice.display = True

    def action_hide_notice(self) -> None:
        self.query_one("#notice").display = False

    # ------------------------------------------------------------------ selection
    def _next_other(self, current: str | None) -> str | None:
        if self.results is None:
            return None
        choices = [b for b in self.results.backbones(self.dopant) if b != self.backbone]
        if not choices:
            return None
        if current in choices:
            return choices[(choices.index(current) + 1) % len(choices)]
        return choices[0]

    def _show_status(self) -> None:
        if self.results is None:
            return
        label = self.view.energy_label if self.view else self.results.energy_label(self.dopant)
        narrow = self.size.width < NARROW
        parts = [
            self.dopant,
            self.backbone or "no predictions",
            f"{'E<' if narrow else 'below '}{self.threshold:+.3f} eV/atom",
            label,
        ]
        if self.short:  # the tab row is hidden: the status names the tab
            parts.append(TAB_TITLES[self._active_tab()])
        self.query_one("#status", Static).update(" " + ("·" if narrow else " · ").join(parts))

    def action_cycle_dopant(self) -> None:
        if self.results is None:
            return
        dopants = self.results.dopants
        self.dopant = dopants[(dopants.index(self.dopant) + 1) % len(dopants)]
        backbones = self.results.backbones(self.dopant)
        if self.backbone not in backbones:
            self.backbone = backbones[0] if backbones else None
        if self.other not in backbones or self.other == self.backbone:
            self.other = self._next_other(None)
        self.detail_row = None
        self.recompute()

    def action_cycle_backbone(self) -> None:
        if self.results is None or not self.results.backbones(self.dopant):
            return
        backbones = self.results.backbones(self.dopant)
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

    def action_cycle_test_map(self) -> None:
        self.test_map = "difference" if self.test_map == "similarity" else "similarity"
        self._show_test()

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

    # ------------------------------------------------------------------ analysis
    def recompute(self) -> None:
        """Analyse the current selection in a worker thread."""
        if self.results is None:
            return
        self._show_status()
        if self.backbone is None:
            self.query_one("#limits-title", Static).update(
                f"{self.path.name}: no predictions for {self.dopant}"
            )
            return
        self._analyse(self.dopant, self.backbone, self.other, self.threshold)

    @work(thread=True, exclusive=True, group="analysis", description="analysing the selection")
    def _analyse(self, dopant: str, backbone: str, other: str | None, threshold: float) -> None:
        from qcapprox.tui.state import compute_view

        try:
            view = compute_view(self.results, dopant, backbone, other, threshold)
        except Exception as err:  # shown, not raised: the UI stays usable
            self.call_from_thread(self._failed, err)
            return
        if not get_current_worker().is_cancelled:
            self.call_from_thread(self._apply, view)

    def _failed(self, err: Exception) -> None:
        self.notify(str(err), title="analysis failed", severity="error", timeout=10)

    def selection_key(self) -> tuple:
        """(dopant, backbone, other backbone, threshold): what `View.key` must match."""
        return (self.dopant, self.backbone, self.other, self.threshold)

    def _apply(self, view: View) -> None:
        if view.key != self.selection_key():
            return  # a newer selection is on its way
        self.view = view
        self._show_status()
        self._show_maps()
        self._show_candidates()
        self._show_test()
        self.compute_robust()
        if self.detail_row is not None:
            self.show_detail(self.detail_row)

    # ------------------------------------------------------------------ limits and compare
    def _extra_rows(self, fam: Family, compare: bool) -> list[tuple[str, np.ndarray, str]]:
        """Rows under a heatmap: set sizes, their share, Σm, recall, as the height allows."""
        sizes = ("n", _sizes(fam), "count")
        recall = ("rec", fam.recall, "fraction")
        if self.short:
            return [] if compare else [sizes, recall]
        if compare:
            return [sizes, recall]
        rows = [sizes, ("%", 100 * fam.fraction, "percent")]
        if self.size.height >= TALL:
            rows.append(("Σm", np.where(fam.valid, fam.weighted, np.nan), "count"))
        return [*rows, recall]

    def _show_maps(self) -> None:
        view = self.view
        if view is None:
            return
        fam = view.primary
        self.query_one("#heatmap", Heatmap).set_data(
            fam.overlap.matrix(self.metric),
            METRIC_KINDS[self.metric],
            self._extra_rows(fam, False),
            empty=(
                ""
                if fam.sizes.any()
                else f"every set empty below {view.threshold:+.3f} (t: threshold)"
            ),
        )
        self.query_one("#limits-title", Static).update(
            f"{METRIC_TEXT[self.metric]} · rows i, columns j: limits"
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
        elif self.short:
            text = (
                f"i={li} j={lj} │ both {ov.both[i, j]} │ |Bi| {ov.size_i[i]} │ "
                f"|Bj| {ov.size_j[j]} │ J {number(ov.jaccard[i, j], 'fraction', 5)}"
            )
        else:
            recall = (
                "recall 1: B24 empty"  # the study's convention
                if fam.sizes[REFERENCE] == 0
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
            if fam.known is not None and fam.known_ranks is not None:
                energy = fam.known_values
                text += f"\nknown Sc57{view.dopant}13: " + " │ ".join(
                    f"{name} {energy[k]:+.3f} eV/atom, rank {fam.known_ranks[k]:,.0f}"
                    for name, k in (("@i", i), ("@j", j))
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
            heat = self.query_one(name, Heatmap)
            heat.set_data(fam.overlap.matrix(self.metric), kind, self._extra_rows(fam, True))
        title.update(
            f"left {a.backbone} · right {b.backbone} · {analysis.METRIC_TITLES[self.metric]} · "
            "table: both at one limit"
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
        """O(1) on the UI thread: summaries of precomputed matrices; candidates in a worker."""
        if event.heatmap.id == "similarity" or (event.i, event.j) == self.cell:
            return
        self.cell = (event.i, event.j)
        for other in self.query(LimitHeatmap):
            if other is not event.heatmap:
                other.set_reactive(Heatmap.cursor, self.cell)
                other.refresh()
        self._show_cell_summary()
        self._show_compare_summary()
        self._show_candidates()

    @on(Heatmap.Selected)
    def _cell_selected(self, event: Heatmap.Selected) -> None:
        self.action_tab("candidates")

    # ------------------------------------------------------------------ candidates
    def _active_tab(self) -> str:
        return self.query_one(TabbedContent).active or "limits"

    def _candidates_request(self) -> tuple:
        return (self.view, self.cell, self.cell_set, self.sort, self.query_text)

    def _show_candidates(self) -> None:
        """Sort and filter the cell's candidates in a worker (a newer request cancels it)."""
        if self.view is None:
            return
        tab = self._active_tab()
        if tab != "candidates" and not (tab == "limits" and self.query_one("#preview").display):
            self._stale.add("candidates")  # filled when shown
            return
        self._stale.discard("candidates")
        self._candidates_worker(self._candidates_request())

    @work(thread=True, exclusive=True, group="candidates", description="sorting the candidates")
    def _candidates_worker(self, request: tuple) -> None:
        view, (i, j), cell_set, sort, query = request
        rows = candidate_rows(view, i, j, cell_set, sort, query)
        if not get_current_worker().is_cancelled:
            self.call_from_thread(self._apply_candidates, request, rows)

    def _apply_candidates(self, request: tuple, rows: np.ndarray) -> None:
        if request != self._candidates_request():
            return  # stale: a newer request is on its way
        view, (i, j), cell_set, sort, query = request
        self.candidate_rows = rows
        li, lj = LIMITS[i], LIMITS[j]
        ov = view.primary.overlap
        sizes = {"both": ov.both[i, j], "only_i": ov.only_i[i, j], "only_j": ov.only_j[i, j]}
        names = {"both": f"both {li}&{lj}", "only_i": f"only {li}", "only_j": f"only {lj}"}
        title = Text(f"{view.primary.backbone} · limits i={li} j={lj}:")
        for name in SETS:
            style = "reverse bold" if name == cell_set else ""
            title.append(f" {names[name]} ({sizes[name]}) ", style)
        filt = f"filter '{query}'" if query.strip() else "no filter"
        title.append(
            f"\n{len(rows):,} rows · sorted by {SORT_TITLES[sort]} · {filt} · "
            f"E above hull eV/atom ({view.energy_label}) · A4: {OCC_LEGEND}"
        )
        self.query_one("#cand-title", Static).update(title)
        pred = view.primary.predictions
        columns = [
            Column("comp", view.composition.dtype.itemsize // 4),
            Column("A4", view.a4.dtype.itemsize // 4),
            Column(f"E@{li}", 8, "right"),
            Column(f"E@{lj}", 8, "right"),
            Column("mult", 4, "right"),
            Column("id", len(str(int(view.ids.max(initial=0)))), "right"),
        ]

        def cells(k: int) -> tuple[str, ...]:
            r = rows[k]
            return (
                view.composition[r],
                view.a4[r],
                energy(pred[i, r]),
                energy(pred[j, r]),
                str(view.multiplicity[r]),
                str(view.ids[r]),
            )

        for table in self.query("#cand-table, #preview").results(RowTable):
            table.set_rows(columns, len(rows), cells)

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

    @on(RowTable.Chosen, "#cand-table, #preview")
    def _candidate_chosen(self, event: RowTable.Chosen) -> None:
        if event.row < len(self.candidate_rows):
            self.show_detail(int(self.candidate_rows[event.row]))
            self.action_tab("detail")

    # ------------------------------------------------------------------ robust
    def compute_robust(self) -> None:
        """Rank robust candidates of the current view in a worker."""
        if self.view is None:
            return
        if self.scope != "backbone" and self.view.other is None:
            self.scope = "backbone"
        self._robust_worker(self.view, self.k, self.scope)

    @work(thread=True, exclusive=True, group="robust", description="ranking robust candidates")
    def _robust_worker(self, view: View, k: int, scope: str) -> None:
        preds = {view.primary.backbone: view.primary.predictions}
        if scope != "backbone" and view.other is not None:
            preds[view.other.backbone] = view.other.predictions
        found = analysis.robust_candidates(
            preds, view.multiplicity, view.threshold, k, "any" if scope == "either" else "all"
        )
        if not get_current_worker().is_cancelled:
            self.call_from_thread(self._apply_robust, view, k, scope, found)

    def _apply_robust(self, view: View, k: int, scope: str, found: analysis.Candidates) -> None:
        if view is not self.view or k != self.k or scope != self.scope:
            return
        self.robust = found
        names = {
            "backbone": view.primary.backbone,
            "both": f"both {' and '.join(found.backbones)}",
            "either": f"{' or '.join(found.backbones)}",
        }
        self.query_one("#robust-title", Static).update(
            f"below {view.threshold:+.3f} eV/atom at >= {k} of 13 limits in {names[scope]}: "
            f"{len(found):,} configurations (Σ multiplicity {int(found.multiplicity.sum()):,})\n"
            f"limits = number below per backbone ({'+'.join(found.backbones)}); ranked by "
            f"limits, then mean E (eV/atom, {view.energy_label})"
        )
        columns = [
            Column("comp", view.composition.dtype.itemsize // 4),
            Column("A4", view.a4.dtype.itemsize // 4),
            Column("limits", max(6, 3 * len(found.backbones)), "right"),
            Column("mean E", 8, "right"),
            Column("mult", 4, "right"),
            Column("id", len(str(int(view.ids.max(initial=0)))), "right"),
        ]

        def cells(rank: int) -> tuple[str, ...]:
            r = found.rows[rank]
            return (
                view.composition[r],
                view.a4[r],
                "+".join(str(x) for x in found.n_limits[rank]),
                energy(found.mean_prediction[rank]),
                str(found.multiplicity[rank]),
                str(view.ids[r]),
            )

        self.query_one("#robust-table", RowTable).set_rows(columns, len(found), cells)

    @on(RowTable.Chosen, "#robust-table")
    def _robust_chosen(self, event: RowTable.Chosen) -> None:
        if self.robust is not None and event.row < len(self.robust):
            self.show_detail(int(self.robust.rows[event.row]))
            self.action_tab("detail")

    # ------------------------------------------------------------------ detail
    def show_detail(self, row: int) -> None:
        """Show one configuration (a store row) in the Detail tab."""
        self.detail_row = row
        self._detail_worker(self.dopant, row)

    @work(thread=True, exclusive=True, group="detail", description="reading one configuration")
    def _detail_worker(self, dopant: str, row: int) -> None:
        from qcapprox.tui.export import formula, predictions_of

        results = self.results
        config_id = int(results.ids(dopant)[row])
        atoms = results.atoms(dopant, config_id)
        parent = results.parent(dopant)
        occupancy = results.occupancy(dopant)[row]
        sites = [
            f"{name} {occupancy_strings(occupancy[None, parent.orbit_slices[name]])[0]}"
            for name in parent.active_orbits
        ]
        info = {
            "id": config_id,
            "formula": formula(atoms),
            "multiplicity": int(results.multiplicity(dopant)[row]),
            "composition": results.composition(dopant)[row],
            "sites": sites,
            "label": results.energy_label(dopant),
        }
        columns = predictions_of(results, dopant, row)
        self.call_from_thread(self._apply_detail, dopant, row, info, columns)

    def _apply_detail(
        self, dopant: str, row: int, info: dict, columns: dict[str, np.ndarray]
    ) -> None:
        if dopant != self.dopant or row != self.detail_row:
            return
        comp = info["composition"]
        self.query_one("#detail-title", Static).update(
            f"{dopant} id {info['id']} · {info['formula']} per cell · A4 v{comp[0]} M{comp[1]} "
            f"· A5 v{comp[2]} M{comp[3]} · multiplicity {info['multiplicity']}\n"
            + "   ".join(info["sites"])
            + f"   ({OCC_LEGEND})\n"
            f"E above hull eV/atom ({info['label']}) · * below {self.threshold:+.3f} · "
            "spread max-min"
        )
        table = self.query_one("#detail-table", DataTable)
        table.clear(columns=True)
        table.add_column("limit")
        for backbone in columns:
            table.add_column(backbone)
        several = len(columns) > 1
        if several:
            table.add_column("spread")
        values = np.array(list(columns.values()))  # (backbones, limits)
        with np.errstate(invalid="ignore"):
            finite = np.isfinite(values)
            lo = np.where(finite, values, np.inf)
            hi = np.where(finite, values, -np.inf)
        for k, limit in enumerate(LIMITS):
            cells = []
            for value in values[:, k]:
                mark = "*" if np.isfinite(value) and value < self.threshold else " "
                cells.append(Text(energy(value) + mark, justify="right"))
            if several:
                spread = hi[:, k].max() - lo[:, k].min() if finite[:, k].any() else np.nan
                cells.append(Text(energy(spread) + " ", justify="right"))
            table.add_row(str(limit), *cells)
        summary = {
            "min": lo.min(axis=1),
            "max": hi.max(axis=1),
            "spread": hi.max(axis=1) - lo.min(axis=1),
        }
        for name, per_backbone in summary.items():
            per_backbone = np.where(finite.any(axis=1), per_backbone, np.nan)
            cells = [Text(energy(v) + " ", justify="right") for v in per_backbone]
            if several:
                cells.append(Text(""))
            table.add_row(Text(name, style="italic"), *cells)

    # ------------------------------------------------------------------ export
    def action_export(self, kind: str) -> None:
        """Export the listed candidates (Candidates, Robust) or the detail configuration."""
        view = self.view
        tab = self._active_tab()
        if view is None:
            return
        if tab == "candidates":
            i, j = self.cell
            rows = self.candidate_rows
            cell = f"i{LIMITS[i]}-j{LIMITS[j]}-{self.cell_set}"
            stem = f"{view.dopant}-{view.primary.backbone}-{cell}"
        elif tab == "robust" and self.robust is not None:
            rows = self.robust.rows
            stem = f"{view.dopant}-robust-k{self.k}-{self.scope}"
        elif self.detail_row is not None:
            rows, stem = np.array([self.detail_row]), None
        else:
            self.say("choose a configuration first (enter in Candidates or Robust)")
            return
        if len(rows) == 0:
            self.say("nothing to export: the list is empty")
            return
        self.say(f"exporting {len(rows):,} structures as {kind} …")
        self._export_worker(self.dopant, rows, kind, stem)

    @work(thread=True, exclusive=True, group="export", description="exporting structures")
    def _export_worker(self, dopant: str, rows: np.ndarray, kind: str, stem: str | None) -> None:
        from qcapprox.tui.export import export_structures

        worker = get_current_worker()
        try:
            path = export_structures(
                self.results,
                dopant,
                rows,
                kind,
                self.export_dir,
                stem,
                cancelled=lambda: worker.is_cancelled,
            )
        except Exception as err:
            self.call_from_thread(self.say, f"export failed: {err}")
            return
        self.call_from_thread(
            self.say, f"wrote {path} ({len(rows):,} structures with their predictions, {kind})"
        )

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
        mean = fam.metrics.test_mean
        warning = (
            " · ȳ near zero or negative: SimilarityScore ill-conditioned, read |ΔRMSE|"
            if mean < analysis.ILL_CONDITIONED_MEAN
            else ""
        )
        shown = (
            "SimilarityScore (eq. 4)"
            if self.test_map == "similarity"
            else "|ΔRMSE| = |RMSE_i - RMSE_j|, eV/atom"
        )
        title.update(
            f"{fam.backbone}: test RMSE (eq. 3, eV/atom), |ΔRMSE| vs 24; map: {shown} (m)\n"
            f"ȳ = {mean:.4f} eV/atom over {len(fam.metrics.test_target)} test structures · "
            f"{view.energy_label}{warning}"
        )
        train = view.subsets.get("train") if view.subsets else None
        table.add_columns("lim", "RMSE", "|Δ|24", *(["train"] if train is not None else []))
        for k, limit in enumerate(LIMITS):
            cells = [
                Text(energy(fam.rmse[k]), justify="right"),
                Text(energy(fam.rmse_difference[k, REFERENCE]), justify="right"),
            ]
            if train is not None:
                cells.append(Text(str(train[k]), justify="right"))
            table.add_row(str(limit), *cells)
        if self.test_map == "similarity":
            heat.set_data(fam.similarity, "score")
        else:
            heat.set_data(fam.rmse_difference, "score")

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
        self._show_status()
        if event.pane.id in ("candidates", "limits") and "candidates" in self._stale:
            self._show_candidates()


def _sizes(fam: Family) -> np.ndarray:
    """Set sizes per limit for display: NaN ('-') where a limit has no predictions."""
    return np.where(fam.valid, fam.sizes, np.nan)


def run(path: Path, **options: object) -> None:
    """Open the results browser on a results file (options: see QcapproxApp). A missing,
    foreign or corrupt file raises its error (StoreError) before anything is drawn; one
    refused by the app's own opening (replaced meanwhile) raises it after the app closes."""
    from qcapprox.results import Results

    Results(path).close()
    app = QcapproxApp(path, **options)
    app.run()
    if app.load_error is not None:
        raise app.load_error
