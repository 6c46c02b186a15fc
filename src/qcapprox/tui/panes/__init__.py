"""One pane widget per tab: each owns its layout (CSS), keys, workers and the messages it
posts upward; the app composes them and holds the shared selection."""

from qcapprox.tui.panes.base import LimitHeatmap, Pane
from qcapprox.tui.panes.candidates import CandidatesPane
from qcapprox.tui.panes.compare import ComparePane
from qcapprox.tui.panes.detail import DetailPane
from qcapprox.tui.panes.limits import LimitsPane
from qcapprox.tui.panes.picks import PicksPane
from qcapprox.tui.panes.rmse import RmsePane
from qcapprox.tui.panes.robustness import RobustnessPane

#: The tabs in order (keys 1-7).
PANES: tuple[type[Pane], ...] = (
    LimitsPane, CandidatesPane, ComparePane, PicksPane, DetailPane, RmsePane, RobustnessPane,
)  # fmt: skip

__all__ = [
    "PANES", "CandidatesPane", "ComparePane", "DetailPane", "LimitHeatmap", "LimitsPane",
    "Pane", "PicksPane", "RmsePane", "RobustnessPane",
]  # fmt: skip
