"""Tab 7, Robustness: which family's below-hull sets move least with the limit. Every
family of the dopant, ranked by `analysis.robustness`: mean and min recall vs limit 24 over
limits 0-22, mean SimilarityScore and mean |ΔRMSE| vs limit 24, |B_24| and the known
phase's rank at limit 24. A family whose B_24 is empty is flagged *vacuous*: its recall is
1 by convention only and says nothing, so it is ranked after the others and its recalls
are not shown as numbers. Each family is analysed at the threshold given, or (none given)
at its own opening threshold, shown in column t."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from rich.style import Style
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Static
from textual.worker import get_current_worker

from qcapprox.analysis import Robustness
from qcapprox.tui.format import FAMILY_LEGEND, energy, known_name, number, short_family
from qcapprox.tui.messages import FamilyChosen
from qcapprox.tui.panes.base import Pane
from qcapprox.tui.state import View, family_robustness
from qcapprox.tui.table import Column, RowTable

VACUOUS = Style(dim=True, italic=True)
OTHER_COLUMNS = 57  # the width of the table's columns other than the family name


def cells(rank: int, r: Robustness) -> tuple[str, ...]:
    """One family's row: a vacuous recall is written `vac.`, not as a number."""
    recall, low = (
        ("vac.", "-")
        if r.vacuous
        else (number(r.mean_recall, "fraction", 5), number(r.min_recall, "fraction", 5))
    )
    return (
        str(rank + 1),
        r.backbone,
        f"{r.threshold:+.3f}",
        str(r.reference_size),
        recall,
        low,
        number(r.mean_similarity, "score", 5),
        energy(r.mean_rmse_difference),
        "-" if not np.isfinite(r.known_rank) else f"{r.known_rank:,.0f}",
    )


class FamilyTable(RowTable):
    """The ranking: enter opens the cursor's family."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter", "choose", "Open family")]


class RobustnessPane(Pane):
    """The families ranked by robustness; enter makes the cursor's family the primary one."""

    TAB = "robustness"
    TITLE = "Robustness"
    HELP = "7 Robustness (table: arrows)"
    DEFAULT_CSS = """
    RobustnessPane > Static { height: auto; }
    RobustnessPane > .title { color: $text-muted; }
    RobustnessPane > RowTable { height: 1fr; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.ranked: list[Robustness] = []
        self.key: tuple | None = None  # (results, dopant, threshold asked for) on screen
        self.heading = Static()
        self.notes = Static(classes="title")
        self.table = FamilyTable()

    def compose(self) -> ComposeResult:
        yield self.heading
        yield self.notes
        yield self.table

    def focus_target(self) -> FamilyTable:
        return self.table

    @staticmethod
    def request(view: View) -> tuple:
        """What the ranking depends on: the file, the dopant and the threshold asked for."""
        return (view.results, view.dopant, None if view.opening else view.threshold)

    def draw(self, view: View) -> None:
        if self.request(view) != self.key:  # another backbone ranks the same families
            self._rank(self.request(view))

    def on_resize(self) -> None:
        if self.ranked:
            self._fill()

    @work(thread=True, exclusive=True, group="robustness", description="ranking families")
    def _rank(self, request: tuple) -> None:
        results, dopant, threshold = request
        ranked = family_robustness(results, dopant, threshold)
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self.show_ranked, request, ranked)

    def show_ranked(self, request: tuple, ranked: list[Robustness]) -> None:
        """Show a ranking (dropped when the selection moved on meanwhile)."""
        if self.view is None or request != self.request(self.view):
            return
        self.key = request
        self.ranked = ranked
        _, dopant, threshold = request
        at = "each at its opening threshold t" if threshold is None else f"at t {threshold:+.3f}"
        vacuous = sum(r.vacuous for r in ranked)
        self.heading.update(
            f"{dopant}: {len(ranked)} families {at}, most robust first"
            + (f" · {vacuous} vacuous (B24 empty)" if vacuous else "")
        )
        self.notes.update(
            "rec, min: recall vs 24 over limits 0-22 (mean, lowest) · Sim: mean SimilarityScore "
            "vs 24 · |ΔR|: mean |RMSE_i - RMSE_24| eV/atom · |B24|: set size at 24 · "
            f"◆24: rank of {known_name(dopant)} at limit 24 · vac.: B24 empty, the recall is 1 "
            "by convention only (not robust) · ranked: non-vacuous first, mean recall, then "
            f"|ΔR| · {FAMILY_LEGEND}"
        )
        self._fill()

    def _fill(self) -> None:
        names = [r.backbone for r in self.ranked]
        if max(map(len, names), default=0) + OTHER_COLUMNS > self.size.width:
            names = [short_family(x) for x in names]  # full names where they fit
        columns = [
            Column("#", 2, "right"),
            Column("family", max((len(x) for x in names), default=6)),
            Column("t", 6, "right"),
            Column("|B24|", 5, "right"),
            Column("rec", 5, "right"),
            Column("min", 5, "right"),
            Column("Sim", 5, "right"),
            Column("|ΔR|", 6, "right"),
            Column("◆24", 6, "right"),
        ]
        ranked = self.ranked

        def row(k: int) -> tuple[str, ...]:
            texts = cells(k, ranked[k])
            return (texts[0], names[k], *texts[2:])

        self.table.set_rows(
            columns, len(ranked), row, lambda k: VACUOUS if ranked[k].vacuous else None
        )

    @on(RowTable.Chosen)
    def _chosen(self, event: RowTable.Chosen) -> None:
        event.stop()
        self.post_message(FamilyChosen(self.ranked[event.row].backbone))
