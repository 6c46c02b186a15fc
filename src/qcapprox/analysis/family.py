"""One family analysis, the numbers the UI, the report and the command line all show.

A family (one backbone for one dopant, members at the 13 limits) gives predictions
e_k(c) of every configuration c at every limit k. At a threshold t its analysis holds:

- the below-hull sets B_k = {c : e_k(c) < t}, their sizes and the share |B_k| / n;
- the recall |B_k ∩ B_24| / |B_24| against limit 24, with `reference_empty` saying when
  B_24 is empty (every recall is then 1 by the study's convention: a vacuous 1);
- the test RMSE per limit (eq. 3), the SimilarityScore (eq. 4) and its plain form
  |dRMSE| = |RMSE_i - RMSE_j|, and the mean signed test error (the bias);
- the known Sc57M13 phase's prediction and rank (1 = lowest) at every limit.

`robustness` ranks families by how little their below-hull sets move with the limit.
`opening_threshold` is where a family's sets are worth looking at: 0 eV/atom when some
prediction is below the hull, else the slightly positive threshold of its label set.
Only numpy: the results object is any reader with the methods `analyse_family` calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from qcapprox.analysis.metrics import (
    finite_mean,
    mean_signed_error,
    rmse,
    rmse_difference,
    similarity_score,
)
from qcapprox.analysis.sets import (
    REFERENCE,
    SLIGHTLY_POSITIVE,
    Overlap,
    available,
    below_hull,
    overlap,
    ranks,
    recall,
    set_sizes,
    weighted_sizes,
)
from qcapprox.words import split_family_key

if TYPE_CHECKING:
    from qcapprox.results import Metrics, Results


def label_kind(family: str) -> str:
    """The label set (relaxed or single-point) a family was trained on, from its name."""
    return split_family_key(family)[1].split("+")[0]


def opening_threshold(predictions: np.ndarray, family: str) -> float:
    """0 eV/atom when any limit predicts a configuration below the hull, else the slightly
    positive threshold of the family's label set (`SLIGHTLY_POSITIVE`)."""
    with np.errstate(invalid="ignore"):
        below = bool((np.asarray(predictions, dtype=float) < 0).any())
    return 0.0 if below else SLIGHTLY_POSITIVE[label_kind(family)]


@dataclass(frozen=True, eq=False)
class Family:
    """The analysis of one family at one threshold (compared by identity: its arrays have
    no single truth value). Arrays run over the 13 limits unless said otherwise; NaN where
    a limit (or the test metrics) is missing. Energies in eV/atom.
    """

    dopant: str
    backbone: str
    threshold: float
    predictions: np.ndarray  # (13, n)
    valid: np.ndarray
    masks: np.ndarray  # (13, n) the below-hull sets
    sizes: np.ndarray
    fraction: np.ndarray  # |B_k| / n
    weighted: np.ndarray  # sum of multiplicities over B_k
    recall: np.ndarray  # |B_k ∩ B_24| / |B_24|
    reference_empty: bool  # B_24 is empty: the recalls are a vacuous 1
    overlap: Overlap  # 13 x 13, limit by limit
    metrics: Metrics | None
    rmse: np.ndarray | None  # test RMSE per limit
    similarity: np.ndarray | None  # 13 x 13 SimilarityScore
    rmse_difference: np.ndarray | None  # 13 x 13 |RMSE_i - RMSE_j|
    bias: np.ndarray | None  # mean signed test error per limit
    known: int | None  # row of the known Sc57M13 phase, if the set holds it
    known_values: np.ndarray | None  # its prediction per limit
    known_ranks: np.ndarray | None  # its rank per limit (1 = lowest)

    @property
    def n(self) -> int:
        """Number of configurations."""
        return self.predictions.shape[1]


def analyse_family(results: Results, dopant: str, backbone: str, threshold: float) -> Family:
    """Everything above for the family `backbone` of `dopant` in a results file."""
    pred = results.predictions(dopant, backbone)
    valid = available(pred)
    masks = below_hull(pred, threshold)
    metrics = results.metrics(dopant, backbone)
    errors = sim = diff = bias = None
    if metrics is not None:
        errors = rmse(metrics.test_predictions, metrics.test_target)
        sim = similarity_score(errors, metrics.test_mean)
        diff = rmse_difference(errors)
        bias = mean_signed_error(metrics.test_predictions, metrics.test_target)
    sizes = set_sizes(masks)
    known = results.known_phase_row(dopant)
    return Family(
        dopant=dopant,
        backbone=backbone,
        threshold=threshold,
        predictions=pred,
        valid=valid,
        masks=masks,
        sizes=sizes,
        fraction=np.where(valid, sizes / max(pred.shape[1], 1), np.nan),
        weighted=weighted_sizes(masks, results.multiplicity(dopant)),
        recall=recall(masks, REFERENCE, valid=valid),
        reference_empty=bool(valid[REFERENCE] and sizes[REFERENCE] == 0),
        overlap=overlap(masks, valid_i=valid),
        metrics=metrics,
        rmse=errors,
        similarity=sim,
        rmse_difference=diff,
        bias=bias,
        known=known,
        known_values=None if known is None else pred[:, known],
        known_ranks=None if known is None else ranks(pred, known),
    )


@dataclass(frozen=True)
class Robustness:
    """How much one family's below-hull sets move with the limit.

    mean_recall, min_recall: over limits 0-22 (limit 24's is 1 by definition), NaN when
    none is available; mean_similarity: mean SimilarityScore of each limit against limit
    24; mean_rmse_difference: mean |RMSE_k - RMSE_24| (eV/atom); reference_size: |B_24|
    (0 flags a vacuous recall); known_rank: the known phase's rank at limit 24.
    """

    backbone: str
    threshold: float
    mean_recall: float
    min_recall: float
    mean_similarity: float
    mean_rmse_difference: float
    reference_size: int
    known_rank: float

    @property
    def vacuous(self) -> bool:
        """B_24 is empty: the recall of 1 says nothing."""
        return self.reference_size == 0


def summarize(family: Family) -> Robustness:
    """The robustness summary of one family."""
    others = np.arange(REFERENCE)
    lower = family.recall[others]
    finite = lower[np.isfinite(lower)]

    def against_24(matrix: np.ndarray | None) -> float:
        return float("nan") if matrix is None else finite_mean(matrix[others, REFERENCE])

    return Robustness(
        backbone=family.backbone,
        threshold=family.threshold,
        mean_recall=finite_mean(lower),
        min_recall=float(finite.min()) if finite.size else float("nan"),
        mean_similarity=against_24(family.similarity),
        mean_rmse_difference=against_24(family.rmse_difference),
        reference_size=int(family.sizes[REFERENCE]),
        known_rank=(
            float("nan") if family.known_ranks is None else float(family.known_ranks[REFERENCE])
        ),
    )


def robustness(families: list[Family]) -> list[Robustness]:
    """Summaries ranked most robust first: families with a non-empty B_24 before the
    vacuous ones, then by mean recall (highest first), then by mean |dRMSE| (lowest)."""

    def key(r: Robustness) -> tuple:
        recall_key = -r.mean_recall if np.isfinite(r.mean_recall) else np.inf
        drmse = r.mean_rmse_difference if np.isfinite(r.mean_rmse_difference) else np.inf
        return (r.vacuous, recall_key, drmse, r.backbone)

    return sorted((summarize(f) for f in families), key=key)
