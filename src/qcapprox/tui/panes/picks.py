"""Tab 4, Robust: robust candidates, the configurations below the threshold at >= k limits
in this family, both families or either (the second is the one of Compare); the known
phase is marked where listed."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Static
from textual.worker import get_current_worker

from qcapprox import analysis
from qcapprox.tui.format import LIMITS, energy
from qcapprox.tui.messages import ConfigurationChosen, ExportRequested
from qcapprox.tui.panes.base import EXPORT_BINDINGS, KNOWN_STYLE, MARK_COLUMN, Pane, mark
from qcapprox.tui.panes.candidates import known_line
from qcapprox.tui.state import REFERENCE, View, position
from qcapprox.tui.table import Column, RowTable

SCOPES = ("backbone", "both", "either")


class PicksPane(Pane):
    """Robust candidates: `k` lowers the number of limits, `a` changes the scope."""

    TAB = "robust"
    TITLE = "Robust"
    HELP = "4 Robust"
    DEFAULT_CSS = """
    PicksPane > Static { height: auto; color: $text-muted; }
    PicksPane > RowTable { height: 1fr; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("k", "cycle_k", "Min limits"),
        Binding("a", "cycle_scope", "Scope"),
        *EXPORT_BINDINGS,
    ]

    def __init__(self) -> None:
        super().__init__()
        self.k = len(LIMITS)
        self.scope = "backbone"
        self.found: analysis.Candidates | None = None
        self.heading = Static()
        self.table = RowTable()

    def compose(self) -> ComposeResult:
        yield self.heading
        yield self.table

    def focus_target(self) -> RowTable:
        return self.table

    def action_cycle_k(self) -> None:
        self.k = self.k - 1 if self.k > 1 else len(LIMITS)
        self.redraw()

    def action_cycle_scope(self) -> None:
        scopes = SCOPES if self.view is not None and self.view.other is not None else SCOPES[:1]
        k = scopes.index(self.scope) + 1 if self.scope in scopes else 0
        self.scope = scopes[k % len(scopes)]
        self.redraw()

    def draw(self, view: View) -> None:
        if view.other is None:
            self.scope = "backbone"
        self._rank((view, self.k, self.scope))

    @work(thread=True, exclusive=True, group="robust", description="ranking robust candidates")
    def _rank(self, request: tuple[View, int, str]) -> None:
        view, k, scope = request
        preds = {view.primary.backbone: view.primary.predictions}
        if scope != "backbone" and view.other is not None:
            preds[view.other.backbone] = view.other.predictions
        found = analysis.robust_candidates(
            preds, view.multiplicity, view.threshold, k, "any" if scope == "either" else "all"
        )
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self.show_found, request, found)

    def show_found(self, request: tuple[View, int, str], found: analysis.Candidates) -> None:
        """Show a ranked list (dropped when a newer request is on its way)."""
        if request != (self.view, self.k, self.scope):
            return
        view, k, scope = request
        self.found = found
        known = position(found.rows, view.known)
        names = {
            "backbone": view.primary.backbone,
            "both": f"both {' and '.join(found.backbones)}",
            "either": f"{' or '.join(found.backbones)}",
        }
        title = Text(
            f"below {view.threshold:+.3f} eV/atom at >= {k} of 13 limits in {names[scope]}: "
            f"{len(found):,} configurations (Σ multiplicity {int(found.multiplicity.sum()):,})\n"
            f"limits = number below per backbone ({'+'.join(found.backbones)}); ranked by "
            f"limits, then mean E (eV/atom, {view.energy_label})"
        )
        if line := known_line(view, (REFERENCE,), known):
            title.append(f"\n{line}", KNOWN_STYLE)
        self.heading.update(title)
        columns = [
            MARK_COLUMN,
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
                mark(rank == known),
                view.composition[r],
                view.a4[r],
                "+".join(str(x) for x in found.n_limits[rank]),
                energy(found.mean_prediction[rank]),
                str(found.multiplicity[rank]),
                str(view.ids[r]),
            )

        self.table.set_rows(
            columns, len(found), cells, lambda rank: KNOWN_STYLE if rank == known else None
        )

    @on(RowTable.Chosen)
    def _chosen(self, event: RowTable.Chosen) -> None:
        event.stop()
        if self.found is not None and event.row < len(self.found):
            self.post_message(ConfigurationChosen(int(self.found.rows[event.row])))

    def action_export(self, kind: str) -> None:
        if self.view is None or self.found is None:
            return
        stem = f"{self.view.dopant}-robust-k{self.k}-{self.scope}"
        self.post_message(ExportRequested(self.found.rows, kind, stem))
