"""Below-hull sets across limits: overlaps, recall, test RMSE, SimilarityScore, robust picks,
and the one family analysis the terminal UI, the report and the command line share.

Notation (reference/, sections 4.4-5.2). A family of one backbone gives, for every limit
i in 0, 2, ..., 24 (13 limits, index k = i / 2), a prediction of the energy above hull
e_k(c) of every configuration c (eV/atom). Its *below-hull set* at threshold t is

    B_k = { c : e_k(c) < t }          (t = 0 eV/atom by default)

Sets are boolean masks: an (L, n) array holds B_0 ... B_{L-1} over n configurations.
Modules: `sets` (sets, overlaps, recall, ranks, robust candidates), `metrics` (RMSE,
SimilarityScore, rank correlations), `family` (`Family`, `analyse_family`, `robustness`),
`study` (the study's headline results beside ours). Everything is vectorized numpy and
imports nothing heavier.
"""

from qcapprox.analysis.family import (
    Family,
    Robustness,
    analyse_family,
    label_kind,
    opening_threshold,
    robustness,
    summarize,
)
from qcapprox.analysis.metrics import (
    ILL_CONDITIONED_MEAN,
    average_ranks,
    configuration_scores,
    finite_mean,
    kendall,
    mean_signed_error,
    rmse,
    rmse_difference,
    similarity_score,
    spearman,
)
from qcapprox.analysis.sets import (
    METRIC_TITLES,
    METRICS,
    REFERENCE,
    SLIGHTLY_POSITIVE,
    Candidates,
    Overlap,
    available,
    below_hull,
    cell_members,
    overlap,
    ranks,
    recall,
    robust_candidates,
    set_sizes,
    weighted_sizes,
)
from qcapprox.analysis.study import SAME_SCALE, STUDY_RMSE, Finding, study_comparison

__all__ = [
    "ILL_CONDITIONED_MEAN", "METRICS", "METRIC_TITLES", "REFERENCE", "SAME_SCALE",
    "SLIGHTLY_POSITIVE", "STUDY_RMSE", "Candidates", "Family", "Finding", "Overlap",
    "Robustness", "analyse_family", "available", "average_ranks", "below_hull",
    "cell_members", "configuration_scores", "finite_mean", "kendall", "label_kind",
    "mean_signed_error", "opening_threshold", "overlap", "ranks", "recall", "rmse",
    "rmse_difference", "robust_candidates", "robustness", "set_sizes", "similarity_score",
    "spearman", "study_comparison", "summarize", "weighted_sizes",
]  # fmt: skip
