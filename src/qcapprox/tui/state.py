"""What the UI shows for a selection (dopant, backbones, threshold), computed off the UI thread.

A threshold of None asks for the family's opening threshold (`analysis.opening_threshold`:
0 eV/atom when something is predicted below the hull, else the slightly positive threshold
of its label set); the view records the threshold it used and whether it was chosen so.

Every number comes from `qcapprox.analysis`; this module only gathers them. It imports no
more than numpy and the analysis, so the UI draws its first frame before the results
file (and the packages it needs: h5py, ASE) is opened.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from qcapprox import analysis
from qcapprox.analysis import Family, analyse_family
from qcapprox.tui.format import composition_filter, composition_strings, occupancy_strings

if TYPE_CHECKING:
    from qcapprox.results import Results

REFERENCE = analysis.REFERENCE  # index of limit 24, the ground truth of the recall
SETS = ("both", "only_i", "only_j")
SORTS = ("E@i", "E@j", "mult", "comp", "id")


@dataclass(frozen=True, eq=False)
class View:
    """Everything the screens need for one selection (compared by identity, so requests
    holding a view compare safely)."""

    results: Results  # the open results file the view was read from
    dopant: str
    threshold: float
    opening: bool  # the threshold is the family's opening threshold (none was given)
    primary: Family
    other: Family | None
    agreement: analysis.Overlap | None  # primary vs other at the same limit (13 x 1)
    ids: np.ndarray
    multiplicity: np.ndarray
    a4: np.ndarray  # A4 occupancy strings
    composition: np.ndarray  # composition strings
    counts: np.ndarray  # (n, 4) compositions
    subsets: dict[str, np.ndarray] | None  # training subset sizes per limit
    energy_label: str

    @property
    def key(self) -> tuple:
        """(dopant, backbone, other backbone, threshold asked for: None for the opening one)."""
        return (
            self.dopant,
            self.primary.backbone,
            self.other and self.other.backbone,
            None if self.opening else self.threshold,
        )

    @property
    def known(self) -> int | None:
        """Row of the known Sc57M13 phase, if the dopant's set holds it."""
        return self.primary.known

    @property
    def n(self) -> int:
        """Number of configurations of the dopant."""
        return len(self.ids)


def threshold_for(results: Results, dopant: str, backbone: str, threshold: float | None) -> float:
    """`threshold`, or (None) the family's opening threshold."""
    if threshold is not None:
        return threshold
    return analysis.opening_threshold(results.predictions(dopant, backbone), backbone)


def compute_view(
    results: Results, dopant: str, backbone: str, other: str | None, threshold: float | None
) -> View:
    """Analyse a selection; `other` is the second backbone of the side-by-side comparison,
    analysed at the same threshold (None: the opening threshold of `backbone`)."""
    opening = threshold is None
    threshold = threshold_for(results, dopant, backbone, threshold)
    primary = analyse_family(results, dopant, backbone, threshold)
    second = agreement = None
    if other is not None:
        second = analyse_family(results, dopant, other, threshold)
        agreement = analysis.overlap(
            primary.masks, second.masks, primary.valid, second.valid
        ).diagonal()
    parent = results.parent(dopant)
    a4 = parent.orbit_slices[parent.active_orbits[0]]
    return View(
        results=results,
        dopant=dopant,
        threshold=threshold,
        opening=opening,
        primary=primary,
        other=second,
        agreement=agreement,
        ids=results.ids(dopant),
        multiplicity=results.multiplicity(dopant),
        a4=occupancy_strings(results.occupancy(dopant)[:, a4]),
        composition=composition_strings(results.composition(dopant)),
        counts=results.composition(dopant),
        subsets=results.subset_sizes(dopant),
        energy_label=results.energy_label(dopant),
    )


def candidate_rows(
    view: View, i: int, j: int, cell_set: str, sort: str, query: str = ""
) -> np.ndarray:
    """Rows of one set of the cell (i, j) (`SETS`: both, only i, only j), filtered by a
    composition query and sorted (`SORTS`: energy at i or j lowest first, multiplicity
    largest first, composition, id); ties are broken by id.
    """
    masks = view.primary.masks
    rows = dict(zip(SETS, analysis.cell_members(masks[i], masks[j]), strict=True))[cell_set]
    if query.strip():
        rows = rows[composition_filter(view.composition[rows], query)]
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
    }[sort]
    return rows[np.lexsort(keys)]


def family_robustness(
    results: Results, dopant: str, threshold: float | None
) -> list[analysis.Robustness]:
    """Every family of `dopant` ranked by `analysis.robustness`, each at `threshold` (None:
    at its own opening threshold)."""
    families = [
        analyse_family(results, dopant, b, threshold_for(results, dopant, b, threshold))
        for b in results.backbones(dopant)
    ]
    return analysis.robustness(families)


def position(rows: np.ndarray, row: int | None) -> int | None:
    """Where store row `row` is in a listed `rows` (None: not listed)."""
    if row is None:
        return None
    hits = np.flatnonzero(rows == row)
    return int(hits[0]) if len(hits) else None
