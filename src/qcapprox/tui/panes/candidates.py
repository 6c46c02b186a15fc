"""Tab 2, Candidates: the configurations of the heatmap cell (i, j): in both sets, only in
B_i or only in B_j; sorted, filtered by composition, exported; enter shows one in Detail.
The known Sc57M13 phase is marked (◆, bold) where listed, and its rank at i and j is in the
title whether listed or not."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Input, Static
from textual.worker import get_current_worker

from qcapprox.tui.format import LIMITS, OCC_LEGEND, energy, known_name
from qcapprox.tui.messages import ConfigurationChosen, ExportRequested
from qcapprox.tui.panes.base import EXPORT_BINDINGS, KNOWN_STYLE, MARK_COLUMN, Pane, mark
from qcapprox.tui.state import SETS, SORTS, View, candidate_rows, position
from qcapprox.tui.table import Column, RowTable

SORT_TITLES = {
    "E@i": "E at i, lowest first",
    "E@j": "E at j, lowest first",
    "mult": "multiplicity, largest first",
    "comp": "composition (A4 vacancies, A4 M, ...)",
    "id": "id",
}


def known_line(view: View, limits: tuple[int, ...], listed: int | None) -> str:
    """Where the known phase is: its place in the list and its rank at the given limit
    indices (empty when the dopant's set does not hold it)."""
    fam = view.primary
    if fam.known is None or fam.known_ranks is None:
        return ""
    place = "not listed" if listed is None else f"row {listed + 1:,}"
    ranks = ", ".join(f"{fam.known_ranks[k]:,.0f} at {LIMITS[k]}" for k in limits)
    return f"◆ {known_name(view.dopant)} {place} · rank {ranks}"


def fill(table: RowTable, view: View, i: int, j: int, rows: np.ndarray) -> int | None:
    """List store rows `rows` of the cell (i, j); returns the known phase's position."""
    pred = view.primary.predictions
    known = position(rows, view.known)
    columns = [
        MARK_COLUMN,
        Column("comp", view.composition.dtype.itemsize // 4),
        Column("A4", view.a4.dtype.itemsize // 4),
        Column(f"E@{LIMITS[i]}", 8, "right"),
        Column(f"E@{LIMITS[j]}", 8, "right"),
        Column("mult", 4, "right"),
        Column("id", len(str(int(view.ids.max(initial=0)))), "right"),
    ]

    def cells(k: int) -> tuple[str, ...]:
        r = rows[k]
        return (
            mark(k == known),
            view.composition[r],
            view.a4[r],
            energy(pred[i, r]),
            energy(pred[j, r]),
            str(view.multiplicity[r]),
            str(view.ids[r]),
        )

    table.set_rows(columns, len(rows), cells, lambda k: KNOWN_STYLE if k == known else None)
    return known


class FilterInput(Input):
    """The composition filter: escape clears and closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "clear", "Clear filter")]

    def action_clear(self) -> None:
        self.value = ""
        self.display = False
        self.post_message(self.Submitted(self, ""))


class CandidatesPane(Pane):
    """The cell's candidates: set (`v`), sort (`s`), filter (`/`), export, enter detail."""

    TAB = "candidates"
    TITLE = "Candidates"
    HELP = "2 Candidates (table: arrows, page up/down, home/end)"
    DEFAULT_CSS = """
    CandidatesPane > Static { height: auto; }
    CandidatesPane > RowTable { height: 1fr; }
    CandidatesPane > FilterInput { dock: bottom; display: none; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("v", "cycle_set", "Set"),
        Binding("s", "cycle_sort", "Sort"),
        Binding("slash", "filter", "Filter", key_display="/"),
        *EXPORT_BINDINGS,
    ]

    def __init__(self) -> None:
        super().__init__()
        self.cell = (0, len(LIMITS) - 1)
        self.cell_set = "both"
        self.sort = "E@i"
        self.query_text = ""
        self.rows = np.zeros(0, dtype=np.int64)
        self.table = RowTable()
        self.heading = Static(id="cand-title")
        self.notes = Static(classes="title")
        self.known = Static()
        self.filter_box = FilterInput(
            placeholder="composition filter, e.g. M3 or v1 M2 (enter keep, escape clear)",
            compact=True,
        )

    def compose(self) -> ComposeResult:
        yield self.heading
        yield self.notes
        yield self.known
        yield self.table
        yield self.filter_box

    def focus_target(self) -> RowTable:
        return self.table

    def set_cell(self, cell: tuple[int, int]) -> None:
        self.cell = cell
        self.redraw()

    def request(self) -> tuple:
        """What the list on screen must answer: view, cell, set, sort, filter."""
        return (self.view, self.cell, self.cell_set, self.sort, self.query_text)

    def draw(self, view: View) -> None:
        self._sort(self.request())

    @work(thread=True, exclusive=True, group="candidates", description="sorting the candidates")
    def _sort(self, request: tuple) -> None:
        view, (i, j), cell_set, sort, query = request
        rows = candidate_rows(view, i, j, cell_set, sort, query)
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self.show_rows, request, rows)

    def show_rows(self, request: tuple, rows: np.ndarray) -> None:
        """Show a sorted list (dropped when a newer request is on its way)."""
        if request != self.request():
            return
        view, (i, j), cell_set, sort, query = request
        self.rows = rows
        known = fill(self.table, view, i, j, rows)
        li, lj = LIMITS[i], LIMITS[j]
        ov = view.primary.overlap
        sizes = {"both": ov.both[i, j], "only_i": ov.only_i[i, j], "only_j": ov.only_j[i, j]}
        names = {"both": f"both {li}&{lj}", "only_i": f"only {li}", "only_j": f"only {lj}"}
        title = Text(f"{view.primary.backbone} · i={li} j={lj}:")
        for name in SETS:
            style = "reverse bold" if name == cell_set else ""
            title.append(f" {names[name]} ({sizes[name]}) ", style)
        filt = f"filter '{query}'" if query.strip() else "no filter"
        title.append(f" {len(rows):,} rows, sorted by {sort}, {filt}")
        self.heading.update(title)
        self.notes.update(
            f"sorted by {SORT_TITLES[sort]} · E above hull eV/atom ({view.energy_label}) · "
            f"A4: {OCC_LEGEND}"
        )
        line = known_line(view, (i, j), known)
        self.known.update(Text(line, KNOWN_STYLE))
        self.known.display = bool(line)

    def action_cycle_set(self) -> None:
        self.cell_set = SETS[(SETS.index(self.cell_set) + 1) % len(SETS)]
        self.redraw()

    def action_cycle_sort(self) -> None:
        self.sort = SORTS[(SORTS.index(self.sort) + 1) % len(SORTS)]
        self.redraw()

    def action_filter(self) -> None:
        self.filter_box.display = True
        self.filter_box.focus()

    @on(Input.Changed)
    def _filter_changed(self, event: Input.Changed) -> None:
        self.query_text = event.value
        self.redraw()

    @on(Input.Submitted)
    def _filter_done(self, event: Input.Submitted) -> None:
        self.table.focus()

    @on(RowTable.Chosen)
    def _chosen(self, event: RowTable.Chosen) -> None:
        event.stop()
        if event.row < len(self.rows):
            self.post_message(ConfigurationChosen(int(self.rows[event.row])))

    def action_export(self, kind: str) -> None:
        if self.view is None:
            return
        i, j = self.cell
        stem = f"{self.view.dopant}-{self.view.primary.backbone}"
        stem += f"-i{LIMITS[i]}-j{LIMITS[j]}-{self.cell_set}"
        self.post_message(ExportRequested(self.rows, kind, stem))
