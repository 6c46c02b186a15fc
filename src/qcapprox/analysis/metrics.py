"""Test errors and rank statistics: RMSE (eq. 3), mean signed error, SimilarityScore (eq. 4)
and its plain form |dRMSE|, and the within-composition rank correlations of the
configuration benchmark (Spearman, Kendall's tau-b, top-k of the truly lowest).
"""

from __future__ import annotations

import numpy as np


def finite_mean(values: np.ndarray) -> float:
    """Mean of the finite values, NaN (without a warning) when there are none."""
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    return float(finite.mean()) if finite.size else float("nan")


def rmse(predictions: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Eq. 3: RMSE = sqrt(sum_i (y_i - ŷ_i)^2 / N), over the last axis (one value per limit).

    A limit whose predictions are missing (NaN) gets NaN.
    """
    diff = np.asarray(predictions, dtype=float) - np.asarray(target, dtype=float)
    return np.sqrt(np.mean(diff**2, axis=-1))


def mean_signed_error(predictions: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Mean of (prediction - target) over the last axis, eV/atom: the bias of a member on
    the test rows (positive = it predicts them too high)."""
    diff = np.asarray(predictions, dtype=float) - np.asarray(target, dtype=float)
    return np.mean(diff, axis=-1)


#: Mean test target ȳ (eV/atom) below which eq. 4 is flagged as ill-conditioned.
ILL_CONDITIONED_MEAN = 0.01


def similarity_score(rmse_values: np.ndarray, mean: float) -> np.ndarray:
    """Eq. 4: SimilarityScore_ij = 1 - |RMSE_i - RMSE_j| / ȳ, ȳ the mean of the test targets.

    1 on the diagonal; NaN where an RMSE is missing. ȳ is used as the study writes it. It
    is ill-conditioned for relaxed targets: ȳ (energy above the hull) can be near zero or
    negative, which magnifies the differences or flips the sign of the score; read
    `rmse_difference` (the same comparison in eV/atom) beside it.
    """
    return 1.0 - rmse_difference(rmse_values) / float(mean)


def rmse_difference(rmse_values: np.ndarray) -> np.ndarray:
    """|RMSE_i - RMSE_j| (eV/atom): the plain difference behind eq. 4; NaN where missing."""
    r = np.asarray(rmse_values, dtype=float)
    return np.abs(r[:, None] - r[None, :])


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n of values, ties sharing their average rank."""
    values = np.asarray(values, dtype=float)
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1)
    for v in np.unique(values):
        tied = values == v
        ranks[tied] = ranks[tied].mean()
    return ranks


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation: Pearson's r of the average ranks (NaN if one side is
    constant or fewer than 3 values)."""
    if len(a) < 3:
        return np.nan
    ra, rb = average_ranks(a), average_ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return np.nan
    return float(np.corrcoef(ra, rb)[0, 1])


def kendall(a: np.ndarray, b: np.ndarray) -> float:
    """Kendall's tau-b: (concordant - discordant) / sqrt((n0 - ties_a)(n0 - ties_b)) over
    the n0 = n(n-1)/2 pairs (NaN if one side is constant or fewer than 3 values)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 3:
        return np.nan
    i, j = np.triu_indices(len(a), 1)
    sa, sb = np.sign(a[i] - a[j]), np.sign(b[i] - b[j])
    denominator = np.sqrt(np.count_nonzero(sa) * np.count_nonzero(sb))
    return float((sa * sb).sum() / denominator) if denominator else np.nan


def configuration_scores(
    predicted: np.ndarray, truth: np.ndarray, groups: np.ndarray, top: int = 5
) -> dict:
    """How a family ranks the configurations *within* each composition (group): per group
    Spearman and Kendall against the truth and whether the truly lowest configuration is
    among the `top` lowest predicted; over all rows the RMSE and the mean signed error
    (prediction - truth), eV/atom."""
    predicted, truth = np.asarray(predicted, float), np.asarray(truth, float)
    per_group = {}
    for g in np.unique(groups):
        rows = np.flatnonzero(groups == g)
        lowest = rows[np.argmin(truth[rows])]
        chosen = rows[np.argsort(predicted[rows], kind="stable")[:top]]
        per_group[str(g)] = {
            "n": len(rows),
            "spearman": spearman(predicted[rows], truth[rows]),
            "kendall": kendall(predicted[rows], truth[rows]),
            "lowest_in_top": bool(lowest in chosen),
            "distinct_predictions": len(np.unique(np.round(predicted[rows], 9))),
        }
    error = predicted - truth
    return {
        "rmse": float(np.sqrt(np.mean(error**2))),
        "mean_signed_error": float(error.mean()),
        "spearman": finite_mean(np.array([v["spearman"] for v in per_group.values()])),
        "kendall": finite_mean(np.array([v["kendall"] for v in per_group.values()])),
        "lowest_in_top": sum(v["lowest_in_top"] for v in per_group.values()),
        "groups": per_group,
    }
