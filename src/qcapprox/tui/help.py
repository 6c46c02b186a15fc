"""The help screen (`?`, F1 or `h`): every key, every definition, every glyph, in plain words."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from qcapprox.tui.format import OCC_LEGEND
from qcapprox.tui.heatmap import PALETTE, SHADES

DEFINITIONS: tuple[tuple[str, str], ...] = (
    (
        "energies",
        "predicted energies above the convex hull, eV/atom, of models trained on CHGNet "
        "labels, a stand-in for DFT (another labeler recorded in the file is named as is)",
    ),
    ("limit", "the largest number of A5 defects in a training subset: 0, 2, ..., 24"),
    (
        "below-hull set B_i",
        "the configurations whose predicted energy above the hull at limit i is below the "
        "threshold t (key t sets it; by default each family opens at 0 eV/atom, or at the "
        "slightly positive threshold of its label set when nothing is predicted below 0, and "
        "the top line says '(opening: none below 0)')",
    ),
    ("n, % of set", "|B_i|, and |B_i| as a share of all configurations of the dopant"),
    ("Σm", "the sum of multiplicities over a set: how many decorations it stands for"),
    ("both, only i, only j", "B_i ∩ B_j, B_i without B_j, B_j without B_i"),
    (
        "overlap %",
        "% of Bi = 100 |B_i ∩ B_j| / |B_i|; % of Bj = 100 |B_i ∩ B_j| / |B_j|",
    ),
    ("Jaccard", "|B_i ∩ B_j| / |B_i ∪ B_j|: 1 for equal sets, 0 for disjoint ones"),
    (
        "recall vs 24",
        "|B_i ∩ B_24| / |B_24|, the limit-24 set taken as the truth; when B_24 is empty "
        "there is nothing to miss and the recall is 1 (the study's convention)",
    ),
    ("test RMSE", "eq. 3: root mean square error on the 63 test structures, eV/atom"),
    (
        "SimilarityScore",
        "eq. 4: 1 - |RMSE_i - RMSE_j| / ȳ, ȳ the mean test target. It is ill-conditioned "
        "when ȳ is near zero or negative (relaxed targets): read |ΔRMSE| beside it",
    ),
    ("|ΔRMSE|", "|RMSE_i - RMSE_j|, eV/atom: the same comparison without the division by ȳ"),
    (
        "robust candidates",
        "below t at >= k limits in the chosen backbones; ranked by the number of "
        "(backbone, limit) pairs below t, then by the mean prediction",
    ),
    (
        "Robustness (tab 7)",
        "the families ranked: mean and lowest recall vs 24 over limits 0-22, mean "
        "SimilarityScore and mean |ΔRMSE| vs 24, |B_24| and the known phase's rank at 24. "
        "vac. (vacuous): B_24 is empty, so the recall is 1 by convention only and says "
        "nothing; such families are ranked last",
    ),
    (
        "known phase ◆",
        "the known Sc57M13 phase: marked ◆ (bold) in every list that holds it, with its rank "
        "(1 = lowest energy) at the limits shown; Ctrl-P 'known' shows it in Detail",
    ),
    (
        "spread",
        "max - min of one configuration's predictions: across backbones at one limit "
        "(column), or across limits for one backbone (row)",
    ),
    ("-", "no predictions at that limit, or a ratio with an empty denominator"),
)


def glyph_legend() -> Text:
    """The glyphs and colours of the screens, explained."""
    text = Text()
    for colour in PALETTE:
        text.append("█", Style(color=colour))
    text.append("  heatmap colours, dark to bright = low to high (viridis: also in grey)\n")
    text.append("".join(SHADES[1:]))
    text.append("  shade glyphs, light to dark = low to high, where numbers do not fit\n")
    text.append(" 12 ", Style(reverse=True, bold=True))
    text.append("  the cursor cell (underlined when the map is not focused)\n")
    text.append("*", Style(bold=True))
    text.append("  in Detail: below the threshold t\n")
    text.append(f"A4 and A5 strings: {OCC_LEGEND}; composition v<vacancies> M<dopants>")
    return text


class HelpScreen(ModalScreen[None]):
    """Keys (from the live bindings, so the list never drifts) and definitions."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark,f1,h", "dismiss", "Close"),
    ]
    DEFAULT_CSS = """
    HelpScreen {
        align: center middle;
    }
    HelpScreen > VerticalScroll {
        width: 100%;
        max-width: 100;
        height: 100%;
        border: round $accent;
        background: $surface;
        padding: 0 1;
    }
    """

    def __init__(self, sections: Sequence[tuple[str, Sequence[tuple[str, str]]]]) -> None:
        super().__init__()
        self.sections = sections

    def compose(self) -> ComposeResult:
        text = Text()
        text.append("qcapprox results browser · escape closes · arrows scroll\n\n", "bold")
        for title, keys in self.sections:
            text.append(f"{title}\n", "bold underline")
            for key, description in keys:
                text.append(f"  {key:>12}  ", "bold")
                text.append(f"{description}\n")
            text.append("\n")
        text.append("Definitions\n", "bold underline")
        for term, meaning in DEFINITIONS:
            text.append(f"  {term}: ", "bold")
            text.append(f"{meaning}\n")
        text.append("\nGlyphs and colours\n", "bold underline")
        text.append_text(glyph_legend())
        with VerticalScroll():
            yield Static(text, id="help-text")

    def on_mount(self) -> None:
        self.query_one(VerticalScroll).focus()
