"""What the UI shows for a selection (dopant, backbones, threshold), computed off the UI thread.

Every number comes from `qcapprox.analysis`; this module only gathers them. It imports no
more than numpy and the analysis, so the UI draws its first frame before the results
file (and the packages it needs: h5py, ASE) is opened.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from qcapprox import analysis
from qcapprox.tui.format import composition_filter, composition_strings, occupancy_strings

if TYPE_CHECKING:
    from qcapprox.results import Metrics, Results

REFERENCE = analysis.REFERENCE  # index of limit 24, the ground truth of the recall
SETS = ("both", "only_i", "only_j")
SORTS = ("E@i", "E@j", "mult", "comp", "id")


@dataclass(frozen=True, eq=False)
class Family:
    """The below-hull analysis of one family (dopant, backbone) at one threshold (compared
    by identity: its arrays have no single truth value).

    fraction: |B_k| / n, the share of the n configurations below the threshold;
    rmse_difference: |RMSE_i - RMSE_j| in eV/atom, the plain form of the SimilarityScore.
    """

    backbone: str
    predictions: np.ndarray
    valid: np.ndarray
    masks: np.ndarray
    sizes: np.ndarray
    fraction: np.ndarray
    weighted: np.ndarray
    recall: np.ndarray
    overlap: analysis.Overlap
    metrics: Metrics | None
    rmse: np.ndarray | None
    similarity: np.ndarray | None
    rmse_difference: np.ndarray | None


def analyse_family(results: Results, dopant: str, backbone: str, threshold: float) -> Family:
    """Below-hull sets, sizes, recall vs limit 24, pairwise overlaps and test metrics."""
    pred = results.predictions(dopant, backbone)
    valid = analysis.available(pred)
    masks = analysis.below_hull(pred, threshold)
    metrics = results.metrics(dopant, backbone)
    rmse = sim = diff = None
    if metrics is not None:
        rmse = analysis.rmse(metrics.test_predictions, metrics.test_target)
        sim = analysis.similarity_score(rmse, metrics.test_mean)
        diff = analysis.rmse_difference(rmse)
    sizes = analysis.set_sizes(masks)
    return Family(
        backbone=backbone,
        predictions=pred,
        valid=valid,
        masks=masks,
        sizes=sizes,
        fraction=np.where(valid, sizes / max(pred.shape[1], 1), np.nan),
        weighted=analysis.weighted_sizes(masks, results.multiplicity(dopant)),
        recall=analysis.recall(masks, REFERENCE, valid=valid),
        overlap=analysis.overlap(masks, valid_i=valid),
        metrics=metrics,
        rmse=rmse,
        similarity=sim,
        rmse_difference=diff,
    )


@dataclass(frozen=True, eq=False)
class View:
    """Everything the screens need for one selection (compared by identity, so requests
    holding a view compare safely)."""

    dopant: str
    threshold: float
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
    known: int | None = None  # row of the known Sc57M13 phase, if the set holds it
    known_ranks: np.ndarray | None = None  # its rank per limit in the primary family

    @property
    def key(self) -> tuple:
        return (
            self.dopant,
            self.primary.backbone,
            self.other and self.other.backbone,
            self.threshold,
        )

    @property
    def n(self) -> int:
        """Number of configurations of the dopant."""
        return len(self.ids)


def compute_view(
    results: Results, dopant: str, backbone: str, other: str | None, threshold: float
) -> View:
    """Analyse a selection; `other` is the second backbone of the side-by-side comparison."""
    primary = analyse_family(results, dopant, backbone, threshold)
    second = agreement = None
    if other is not None:
        second = analyse_family(results, dopant, other, threshold)
        agreement = analysis.overlap(
            primary.masks, second.masks, primary.valid, second.valid
        ).diagonal()
    parent = results.parent(dopant)
    a4 = parent.orbit_slices[parent.active_orbits[0]]
    known = results.known_phase_row(dopant)
    return View(
        dopant=dopant,
        threshold=threshold,
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
        known=known,
        known_ranks=None if known is None else analysis.ranks(primary.predictions, known),
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
