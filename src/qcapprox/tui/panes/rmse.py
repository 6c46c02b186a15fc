"""Tab 6, Test: the test RMSE per limit, |RMSE_i - RMSE_24| (and the training subset size
when the file records it), beside the SimilarityScore heatmap or the |ΔRMSE| heatmap."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import DataTable, Static

from qcapprox import analysis
from qcapprox.tui.format import LIMIT_LABELS, LIMITS, energy
from qcapprox.tui.heatmap import Heatmap
from qcapprox.tui.panes.base import Pane
from qcapprox.tui.state import REFERENCE, View


class RmsePane(Pane):
    """Test metrics of the primary family; `m` switches the map."""

    TAB = "test"
    TITLE = "Test"
    HELP = "6 Test"
    DEFAULT_CSS = """
    RmsePane > Static { height: auto; color: $text-muted; }
    RmsePane > Horizontal { height: 1fr; }
    RmsePane DataTable { width: 31; height: 1fr; margin-right: 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("m", "cycle_map", "Map")]

    def __init__(self) -> None:
        super().__init__()
        self.map = "similarity"
        self.heading = Static()
        self.table = DataTable(cursor_type="row")
        self.heatmap = Heatmap(LIMIT_LABELS, max_cell=6)

    def compose(self) -> ComposeResult:
        yield self.heading
        with Horizontal():
            yield self.table
            yield self.heatmap

    def focus_target(self) -> Heatmap:
        return self.heatmap

    def action_cycle_map(self) -> None:
        self.map = "difference" if self.map == "similarity" else "similarity"
        self.redraw()

    def draw(self, view: View) -> None:
        fam = view.primary
        table = self.table
        table.clear(columns=True)
        if fam.metrics is None or fam.rmse is None or fam.rmse_difference is None:
            self.heading.update(f"no test metrics for {fam.backbone} ({view.dopant}) in this file")
            self.heatmap.set_data(np.full((len(LIMITS), len(LIMITS)), np.nan), "score")
            return
        mean = fam.metrics.test_mean
        warning = (
            " · ȳ near zero or negative: SimilarityScore ill-conditioned, read |ΔRMSE|"
            if mean < analysis.ILL_CONDITIONED_MEAN
            else ""
        )
        shown = (
            "SimilarityScore (eq. 4)"
            if self.map == "similarity"
            else "|ΔRMSE| = |RMSE_i - RMSE_j|, eV/atom"
        )
        self.heading.update(
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
        matrix = fam.similarity if self.map == "similarity" else fam.rmse_difference
        self.heatmap.set_data(matrix, "score")
