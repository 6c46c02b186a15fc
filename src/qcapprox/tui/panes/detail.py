"""Tab 5, Detail: one configuration: id, formula of the cell, composition, multiplicity,
the occupancy of every active site, and its predictions at every limit for every family
(`*` below the threshold) with their spread across families (column), its rank in the
primary family per limit (column), and min, max and spread across limits (rows). The
limit column stays in place when the table scrolls sideways."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.widgets import DataTable, Static

from qcapprox import analysis
from qcapprox.tui.format import (
    FAMILY_LEGEND,
    LIMITS,
    OCC_LEGEND,
    energy,
    known_name,
    occupancy_strings,
    short_family,
)
from qcapprox.tui.messages import ExportRequested, Notice
from qcapprox.tui.panes.base import EXPORT_BINDINGS, KNOWN_STYLE, Pane
from qcapprox.tui.state import View

NOTHING = "no configuration chosen: enter on a row of Candidates or Robust shows it here"


class DetailPane(Pane):
    """One configuration (`show_row`); c, p, x export it."""

    TAB = "detail"
    TITLE = "Detail"
    HELP = "5 Detail"
    DEFAULT_CSS = """
    DetailPane > Static { height: auto; }
    DetailPane > DataTable { height: 1fr; }
    """
    BINDINGS: ClassVar[list[BindingType]] = list(EXPORT_BINDINGS)

    def __init__(self) -> None:
        super().__init__()
        self.row: int | None = None
        self.heading = Static(NOTHING)
        self.notes = Static(classes="title")
        self.table = DataTable(cursor_type="row", zebra_stripes=True, fixed_columns=1)

    def compose(self) -> ComposeResult:
        yield self.heading
        yield self.notes
        yield self.table

    def focus_target(self) -> DataTable:
        return self.table

    def show_row(self, row: int | None) -> None:
        """Show store row `row` of the view's dopant (None: nothing chosen)."""
        self.row = row
        if row is None:
            self.heading.update(NOTHING)
            self.notes.update("")
            self.table.clear(columns=True)
            return
        self.redraw()

    def draw(self, view: View) -> None:
        if self.row is not None:
            self._read((view, self.row))

    @work(thread=True, exclusive=True, group="detail", description="reading one configuration")
    def _read(self, request: tuple[View, int]) -> None:
        from qcapprox.results import relaxation_words
        from qcapprox.tui.export import formula, predictions_of

        view, row = request
        results, dopant = view.results, view.dopant
        atoms = results.atoms(dopant, int(view.ids[row]))
        parent = results.parent(dopant)
        occupancy = results.occupancy(dopant)[row]
        relaxed = results.relaxed_into(dopant)  # what its CHGNet relaxation ended in
        info = {
            "formula": formula(atoms),
            "sites": [
                f"{name} {occupancy_strings(occupancy[None, parent.orbit_slices[name]])[0]}"
                for name in parent.active_orbits
            ],
            "ranks": analysis.ranks(view.primary.predictions, row),
            "relaxation": "" if relaxed is None
            else relaxation_words(int(relaxed[row]), int(view.ids[row])),
        }
        columns = predictions_of(results, dopant, row)
        self.app.call_from_thread(self.show_read, request, info, columns)

    def show_read(
        self, request: tuple[View, int], info: dict, columns: dict[str, np.ndarray]
    ) -> None:
        """Fill the title and the table (dropped when another row or view was asked for)."""
        if request != (self.view, self.row):
            return
        view, row = request
        comp = view.counts[row]
        title = Text(
            f"{view.dopant} id {view.ids[row]} · {info['formula']} per cell · A4 v{comp[0]} "
            f"M{comp[1]} · A5 v{comp[2]} M{comp[3]} · multiplicity {view.multiplicity[row]}"
        )
        if row == view.known:
            title.append(f"\n◆ the known {known_name(view.dopant)} phase", KNOWN_STYLE)
        if info["relaxation"]:
            title.append(f"\n{info['relaxation']}")
        self.heading.update(title)
        self.notes.update(
            "   ".join(info["sites"]) + f"   ({OCC_LEGEND})\n"
            f"E above hull eV/atom ({view.energy_label}) · * below {view.threshold:+.3f} · "
            f"spread max-min · rank in {view.primary.backbone} (1 = lowest) · {FAMILY_LEGEND}"
        )
        table = self.table
        table.clear(columns=True)
        table.add_column("limit")
        for backbone in columns:
            table.add_column(short_family(backbone))
        several = len(columns) > 1
        if several:
            table.add_column("spread")
        table.add_column("rank")
        values = np.array(list(columns.values()))  # (families, limits)
        with np.errstate(invalid="ignore"):
            finite = np.isfinite(values)
            lo = np.where(finite, values, np.inf)
            hi = np.where(finite, values, -np.inf)
        ranks = info["ranks"]
        for k, limit in enumerate(LIMITS):
            cells = []
            for value in values[:, k]:
                star = "*" if np.isfinite(value) and value < view.threshold else " "
                cells.append(Text(energy(value) + star, justify="right"))
            if several:
                spread = hi[:, k].max() - lo[:, k].min() if finite[:, k].any() else np.nan
                cells.append(Text(energy(spread) + " ", justify="right"))
            rank = "-" if not np.isfinite(ranks[k]) else f"{ranks[k]:,.0f}"
            cells.append(Text(rank, justify="right"))
            table.add_row(str(limit), *cells)
        summary = {
            "min": lo.min(axis=1),
            "max": hi.max(axis=1),
            "spread": hi.max(axis=1) - lo.min(axis=1),
        }
        for name, per_family in summary.items():
            per_family = np.where(finite.any(axis=1), per_family, np.nan)
            cells = [Text(energy(v) + " ", justify="right") for v in per_family]
            cells += [Text("")] * (2 if several else 1)
            table.add_row(Text(name, style="italic"), *cells)

    def action_export(self, kind: str) -> None:
        if self.row is None:
            self.post_message(Notice(f"choose a configuration first ({NOTHING.split(': ')[1]})"))
            return
        self.post_message(ExportRequested(np.array([self.row]), kind, None))
