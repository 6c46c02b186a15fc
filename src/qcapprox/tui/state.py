"""What the UI shows for a selection (dopant, backbones, threshold), computed off the UI thread.

Every number comes from `qcapprox.analysis`; this module only gathers them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qcapprox import analysis
from qcapprox.results import LIMITS, Metrics, Results
from qcapprox.tui.format import composition_strings, occupancy_strings

REFERENCE = len(LIMITS) - 1  # index of limit 24, the ground truth of the recall


@dataclass(frozen=True)
class Family:
    """The below-hull analysis of one family (dopant, backbone) at one threshold."""

    backbone: str
    predictions: np.ndarray
    valid: np.ndarray
    masks: np.ndarray
    sizes: np.ndarray
    weighted: np.ndarray
    recall: np.ndarray
    overlap: analysis.Overlap
    metrics: Metrics | None
    rmse: np.ndarray | None
    similarity: np.ndarray | None


def analyse_family(results: Results, dopant: str, backbone: str, threshold: float) -> Family:
    """Below-hull sets, sizes, recall vs limit 24, pairwise overlaps and test metrics."""
    pred = results.predictions(dopant, backbone)
    valid = analysis.available(pred)
    masks = analysis.below_hull(pred, threshold)
    metrics = results.metrics(dopant, backbone)
    rmse = sim = None
    if metrics is not None:
        rmse = analysis.rmse(metrics.test_predictions, metrics.test_target)
        sim = analysis.similarity_score(rmse, metrics.test_mean)
    return Family(
        backbone=backbone,
        predictions=pred,
        valid=valid,
        masks=masks,
        sizes=analysis.set_sizes(masks),
        weighted=analysis.weighted_sizes(masks, results.multiplicity(dopant)),
        recall=analysis.recall(masks, REFERENCE, valid=valid),
        overlap=analysis.overlap(masks, valid_i=valid),
        metrics=metrics,
        rmse=rmse,
        similarity=sim,
    )


@dataclass(frozen=True)
class View:
    """Everything the screens need for one selection."""

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

    @property
    def key(self) -> tuple:
        return (
            self.dopant,
            self.primary.backbone,
            self.other and self.other.backbone,
            self.threshold,
        )


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
    )
