"""`qcapprox tui RESULTS.h5`: compare below-hull candidate sets across limits and families.

Keyboard first: every action has a key, listed in the footer for the focused part of the
screen and in the help screen (`?`, F1 or `h`); Ctrl-P searches the same actions (and
"known" finds the known Sc57M13 phase). One pane widget per tab (`qcapprox.tui.panes`):
1 Limits, 2 Candidates, 3 Compare, 4 Robust, 5 Detail, 6 Test, 7 Robustness. The app
composes them and holds the shared selection: the dopant, the primary and the other
family, the threshold (None: each family's opening threshold) and the heatmap cell. It
analyses a selection in a worker and gives the resulting `View` to every pane; panes post
messages upward (`qcapprox.tui.messages`).

Responsive by construction: a key press does O(1) work on the UI thread (13x13 matrices,
one summary line); the work that grows with the data (opening the file, analysing a
selection, sorting and filtering candidates, ranking, exporting) runs in thread workers of
exclusive groups, so a newer key cancels the older work and stale answers are dropped
(workers carry a fixed description: Textual would otherwise format their arguments, whole
arrays, on the UI thread); tables draw only their visible rows (`RowTable`); hidden panes
draw when shown. The file is opened after the first frame; nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, TypeVar

import numpy as np
from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, LoadingIndicator, Static, TabbedContent, TabPane
from textual.worker import Worker, get_current_worker

from qcapprox.tui.commands import KnownPhaseCommands
from qcapprox.tui.format import LIMITS, known_name, short_family
from qcapprox.tui.heatmap import Heatmap
from qcapprox.tui.help import HelpScreen
from qcapprox.tui.messages import ConfigurationChosen, ExportRequested, FamilyChosen, Notice
from qcapprox.tui.panes import (
    PANES,
    CandidatesPane,
    ComparePane,
    DetailPane,
    LimitHeatmap,
    LimitsPane,
    Pane,
)
from qcapprox.tui.state import View
from qcapprox.tui.threshold import ThresholdScreen

if TYPE_CHECKING:
    from qcapprox.results import Results

P = TypeVar("P", bound=Pane)
NARROW = 80  # terminal width below which the layout is narrow (abbreviated status line)
SHORT = 24  # terminal height below which the tab row is hidden (the status names the tab)


class QcapproxApp(App[None]):
    """The qcapprox results browser. `threshold` None opens each family at its opening
    threshold (`analysis.opening_threshold`); `load_error` holds the error if the file was
    refused."""

    CSS_PATH = Path(__file__).with_name("app.tcss")  # absolute: subclasses anywhere find it
    COMMANDS = App.COMMANDS | {KnownPhaseCommands}
    HORIZONTAL_BREAKPOINTS: ClassVar[list[tuple[int, str]]] = [
        (0, "-narrow"),
        (NARROW, "-normal"),
        (160, "-wide"),
    ]
    VERTICAL_BREAKPOINTS: ClassVar[list[tuple[int, str]]] = [
        (0, "-short"),
        (SHORT, "-medium"),
        (36, "-tall"),
    ]
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("question_mark,f1,h", "help", "Help", key_display="?"),
        Binding("d", "cycle_dopant", "Dopant", show=False),
        Binding("b", "cycle_backbone", "Backbone", show=False),
        Binding("t", "threshold", "Threshold", show=False),
        Binding("1", "tab('limits')", "Tab", key_display="1-7", show=False),
        *[Binding(str(k + 1), f"tab('{p.TAB}')", show=False) for k, p in enumerate(PANES) if k],
        Binding("ctrl+p", "command_palette", "Search", key_display="^p"),
        Binding("escape", "hide_notice", "Hide notice", show=False),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(
        self,
        path: str | Path,
        *,
        threshold: float | None = None,
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
        self.threshold = None if threshold is None else float(threshold)
        self.cell = (0, len(LIMITS) - 1)
        self.view: View | None = None
        self.panes: dict[str, Pane] = {pane.TAB: pane() for pane in PANES}
        self.status = Static(id="status")
        self.busy = LoadingIndicator(id="busy")
        self.notice = Static(id="notice")
        self.tabs = TabbedContent(initial="limits")
        self._busy_timer: Timer | None = None

    # ------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        with Horizontal(id="status-bar"):
            yield self.status
            yield self.busy
        with self.tabs:
            for k, pane in enumerate(self.panes.values()):
                with TabPane(f"{k + 1} {pane.TITLE}", id=pane.TAB):
                    yield pane
        yield self.notice
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.tabs.query_one("ContentTabs").can_focus = False
        self.notice.display = False
        self.pane(LimitsPane).focus_target().focus()
        self.status.update(f" loading {self.path} …")
        self._open(self.path)

    def pane(self, kind: type[P]) -> P:
        """The pane of a type."""
        pane = self.panes[kind.TAB]
        assert isinstance(pane, kind)
        return pane

    def on_unmount(self) -> None:
        if self.results is not None:
            self.results.close()

    def on_resize(self) -> None:
        self._show_status()

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
        self.busy.display = False

    def _show_busy(self) -> None:
        """Show the indicator while any worker runs, and look again shortly: the state
        messages of the panes' workers do not reach the app (they do not bubble)."""
        self._busy_timer = None
        self.busy.display = self._working()
        if self.busy.display:
            self._busy_timer = self.set_timer(0.1, self._show_busy)

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
        for pane in self.panes.values():
            focus = pane.focus_target()
            own = rows(type(focus).BINDINGS) if not isinstance(focus, Heatmap) else []
            if isinstance(focus, LimitHeatmap):
                own = rows(LimitHeatmap.BINDINGS)
            sections.append((pane.HELP, own + rows(pane.BINDINGS)))
        sections.append(("Heatmap keys", rows(Heatmap.BINDINGS)))
        sections.append(("Ctrl-P", [("ctrl+p", "search every action by name; 'known' "
                                                "finds the known Sc57M13 phase")]))  # fmt: skip
        return sections

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.help_sections()))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """The command palette (Ctrl-P): the app's own actions, then Textual's."""
        yield SystemCommand("Help", "Keys, definitions and legends", self.action_help)
        yield SystemCommand("Next dopant", "Cycle the dopant", self.action_cycle_dopant)
        yield SystemCommand("Next backbone", "Cycle the family", self.action_cycle_backbone)
        yield SystemCommand("Threshold", "Set the below-hull threshold", self.action_threshold)
        yield SystemCommand(
            "Opening threshold",
            "Each family at its own opening threshold (0, or slightly positive when none is below)",
            self.action_opening_threshold,
        )
        for k, pane in enumerate(self.panes.values()):
            yield SystemCommand(
                f"Tab {pane.TITLE}", f"Show tab {k + 1}", lambda t=pane.TAB: self.action_tab(t)
            )
        yield from super().get_system_commands(screen)

    def say(self, text: str) -> None:
        """Show a notice above the footer (it takes a line; it covers nothing)."""
        self.notice.update(Text(f" {text}  (escape hides)"))
        self.notice.display = True

    def action_hide_notice(self) -> None:
        self.notice.display = False

    @on(Notice)
    def _notice(self, message: Notice) -> None:
        self.say(message.text)

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

    def active_tab(self) -> str:
        """The id of the tab on screen."""
        return self.tabs.active or "limits"

    def _show_status(self) -> None:
        if self.results is None:
            return
        view = self.view
        label = view.energy_label if view else self.results.energy_label(self.dopant)
        narrow = self.size.width < NARROW
        backbone = self.backbone or "no predictions"
        if view is None or view.key != self.selection_key():
            threshold = "…" if self.threshold is None else f"{self.threshold:+.3f}"
        else:  # an opening threshold above 0 says why
            threshold = f"{view.threshold:+.3f}"
        unit = "" if narrow else " eV/atom"
        if view is not None and view.opening and view.threshold > 0:
            unit += " (none<0)" if narrow else " (opening: none below 0)"
        parts = [self.dopant, backbone, f"{'E<' if narrow else 'below '}{threshold}{unit}", label]
        if self.size.height < SHORT:  # the tab row is hidden: the status names the tab
            parts.append(self.panes[self.active_tab()].TITLE)
        line = " " + ("·" if narrow else " · ").join(parts)
        if len(line) > self.size.width:  # the family's short name, not a cut line
            line = line.replace(backbone, short_family(backbone), 1)
        self.status.update(line)

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
        self.pane(DetailPane).show_row(None)
        self.recompute()

    def action_cycle_backbone(self) -> None:
        if self.results is None or not self.results.backbones(self.dopant):
            return
        backbones = self.results.backbones(self.dopant)
        index = backbones.index(self.backbone) if self.backbone in backbones else -1
        self._set_backbone(backbones[(index + 1) % len(backbones)])

    def _set_backbone(self, backbone: str) -> None:
        self.backbone = backbone
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

        current = self.view.threshold if self.view is not None else (self.threshold or 0.0)
        self.push_screen(ThresholdScreen(current), done)

    def action_opening_threshold(self) -> None:
        self.threshold = None
        self.recompute()

    def action_tab(self, name: str) -> None:
        self.tabs.active = name

    async def action_known(self) -> None:
        """Show the known Sc57M13 phase in Detail (or say that the set does not hold it)."""
        view = self.view
        if view is None:
            return
        if view.known is None:
            self.say(f"{known_name(view.dopant)} is not among {view.dopant}'s configurations")
            return
        self._choose(view.known)

    # ------------------------------------------------------------------ analysis
    def selection_key(self) -> tuple:
        """(dopant, backbone, other backbone, threshold asked for): what `View.key` matches."""
        return (self.dopant, self.backbone, self.other, self.threshold)

    def recompute(self) -> None:
        """Analyse the current selection in a worker thread."""
        if self.results is None:
            return
        self._show_status()
        if self.backbone is None:
            self.say(f"{self.path.name}: no predictions for {self.dopant}")
            return
        self._analyse(self.results, self.selection_key())

    @work(thread=True, exclusive=True, group="analysis", description="analysing the selection")
    def _analyse(self, results: Results, key: tuple) -> None:
        from qcapprox.tui.state import compute_view

        try:
            view = compute_view(results, *key)
        except Exception as err:  # shown, not raised: the UI stays usable
            self.call_from_thread(self.notify, str(err), title="analysis failed", severity="error")
            return
        if not get_current_worker().is_cancelled:
            self.call_from_thread(self._apply, view)

    def _apply(self, view: View) -> None:
        if view.key != self.selection_key():
            return  # a newer selection is on its way
        self.view = view
        self._show_status()
        for pane in self.panes.values():
            pane.set_view(view)

    # ------------------------------------------------------------------ messages from panes
    @on(Heatmap.CursorMoved)
    def _cursor_moved(self, event: Heatmap.CursorMoved) -> None:
        """O(1) on the UI thread: the panes that share the cell update their summaries."""
        if not isinstance(event.heatmap, LimitHeatmap) or (event.i, event.j) == self.cell:
            return
        self.cell = (event.i, event.j)
        self.pane(LimitsPane).set_cell(self.cell)
        self.pane(ComparePane).set_cell(self.cell)
        self.pane(CandidatesPane).set_cell(self.cell)

    @on(Heatmap.Selected)
    def _cell_selected(self, event: Heatmap.Selected) -> None:
        self.action_tab("candidates")

    @on(ConfigurationChosen)
    def _configuration_chosen(self, message: ConfigurationChosen) -> None:
        self._choose(message.row)

    def _choose(self, row: int) -> None:
        self.action_tab("detail")
        self.pane(DetailPane).show_row(row)

    @on(FamilyChosen)
    def _family_chosen(self, message: FamilyChosen) -> None:
        self._set_backbone(message.backbone)
        self.action_tab("limits")

    @on(TabbedContent.TabActivated)
    def _tab_activated(self, event: TabbedContent.TabActivated) -> None:
        self.panes[event.pane.id or "limits"].activated()
        self._show_status()

    # ------------------------------------------------------------------ export
    @on(ExportRequested)
    def _export_requested(self, message: ExportRequested) -> None:
        if len(message.rows) == 0:
            self.say("nothing to export: the list is empty")
            return
        self.say(f"exporting {len(message.rows):,} structures as {message.kind} …")
        self._export(self.dopant, message.rows, message.kind, message.stem)

    @work(thread=True, exclusive=True, group="export", description="exporting structures")
    def _export(self, dopant: str, rows: np.ndarray, kind: str, stem: str | None) -> None:
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


def run(
    results: str | Path,
    threshold: float | None = None,
    export_dir: str | Path = ".",
    **options: str | None,
) -> None:
    """Open the results browser on a results file. `threshold` None opens each family at
    its opening threshold (0 eV/atom, or the slightly positive threshold of its label set
    when nothing is predicted below 0), and the UI says so; a number is used as given.
    `options`: `dopant`, `backbone` (see QcapproxApp). A missing, foreign or corrupt file
    raises its error (StoreError) before anything is drawn; one refused by the app's own
    opening (replaced meanwhile) raises it after the app closes."""
    from qcapprox.results import Results

    Results(results).close()
    app = QcapproxApp(results, threshold=threshold, export_dir=export_dir, **options)
    app.run()
    if app.load_error is not None:
        raise app.load_error
