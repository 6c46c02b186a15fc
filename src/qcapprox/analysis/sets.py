"""Below-hull sets and their comparisons: B_k = {c : e_k(c) < t} as boolean masks, (L, n)
over L limits and n configurations; sizes, recall against B_24, pairwise overlaps, the
members of one cell, robust candidates. A missing prediction (NaN) is never below the
threshold, and a limit without predictions is *unavailable* (its ratios are NaN).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from qcapprox.words import LIMITS, RELAXED, SINGLE_POINT

METRICS = ("count", "pct_i", "pct_j", "jaccard")
METRIC_TITLES = {
    "count": "|Bi ∩ Bj|",
    "pct_i": "% of Bi",
    "pct_j": "% of Bj",
    "jaccard": "Jaccard",
}


def below_hull(predictions: np.ndarray, threshold: float = 0.0) -> np.ndarray:
    """Masks of the below-hull sets, B_k = {c : e_k(c) < threshold}; NaN is never below."""
    pred = np.asarray(predictions, dtype=float)
    with np.errstate(invalid="ignore"):
        return pred < threshold


def available(predictions: np.ndarray) -> np.ndarray:
    """Which limits (rows) hold predictions at all (any finite value)."""
    return np.isfinite(np.asarray(predictions, dtype=float)).any(axis=-1)


def set_sizes(masks: np.ndarray) -> np.ndarray:
    """|B_k| for every limit k (int64)."""
    return np.asarray(masks, dtype=bool).sum(axis=-1, dtype=np.int64)


def weighted_sizes(masks: np.ndarray, multiplicity: np.ndarray) -> np.ndarray:
    """Sum of multiplicities over B_k: the number of (not symmetry-reduced) decorations."""
    return np.asarray(masks, dtype=bool).astype(np.int64) @ np.asarray(multiplicity, np.int64)


def _intersections(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(La, Lb) int64 matrix |A_i ∩ B_j| (float matmul is exact below 2**53)."""
    a = np.asarray(a, dtype=bool)
    b = np.asarray(b, dtype=bool)
    return np.rint(a.astype(np.float64) @ b.T.astype(np.float64)).astype(np.int64)


def recall(
    masks: np.ndarray,
    reference: int = -1,
    valid: np.ndarray | None = None,
    empty: float = 1.0,
) -> np.ndarray:
    """Recall of every set against B_ref taken as ground truth (limit 24 by default).

    recall_k = |B_k ∩ B_ref| / |B_ref|. When B_ref is empty there is nothing to miss and the
    ratio is 0/0: the study's convention (its Random Forest recall is 1 where RF finds no
    candidate) makes every entry 1 (`empty`). Unavailable limits (`valid` False) are NaN; if
    the reference itself is unavailable, all entries are NaN.
    """
    m = np.asarray(masks, dtype=bool)
    ref = m[reference]
    n_ref = int(ref.sum())
    if n_ref == 0:
        out = np.full(m.shape[0], empty, dtype=float)
    else:
        out = _intersections(m, ref[None, :])[:, 0] / n_ref
    if valid is not None:
        valid = np.asarray(valid, dtype=bool)
        out = np.where(valid, out, np.nan) if valid[reference] else np.full(m.shape[0], np.nan)
    return out


@dataclass(frozen=True)
class Overlap:
    """Pairwise comparison of two families of sets A_i (rows) and B_j (columns).

    both[i, j] = |A_i ∩ B_j|; pct_i = 100 |A_i ∩ B_j| / |A_i| (percentage of set i);
    pct_j = 100 |A_i ∩ B_j| / |B_j| (percentage of set j); jaccard = |A_i ∩ B_j| /
    |A_i ∪ B_j|. A ratio with an empty denominator, or with an unavailable limit, is NaN.
    """

    both: np.ndarray
    size_i: np.ndarray
    size_j: np.ndarray
    pct_i: np.ndarray
    pct_j: np.ndarray
    jaccard: np.ndarray
    valid_i: np.ndarray
    valid_j: np.ndarray

    @property
    def only_i(self) -> np.ndarray:
        """|A_i \\ B_j|."""
        return self.size_i[:, None] - self.both

    @property
    def only_j(self) -> np.ndarray:
        """|B_j \\ A_i|."""
        return self.size_j[None, :] - self.both

    def matrix(self, metric: str) -> np.ndarray:
        """The matrix of one metric (count, pct_i, pct_j, jaccard) as float, NaN where undefined."""
        if metric == "count":
            out = self.both.astype(float)
            return np.where(self.valid_i[:, None] & self.valid_j[None, :], out, np.nan)
        if metric in ("pct_i", "pct_j", "jaccard"):
            return getattr(self, metric)
        raise ValueError(f"unknown metric {metric!r}; choose from {METRICS}")

    def diagonal(self) -> Overlap:
        """Per-index comparison A_k vs B_k (two backbones at the same limit), as (L, 1) overlaps."""
        k = np.arange(min(len(self.size_i), len(self.size_j)))
        return Overlap(
            both=self.both[k, k][:, None],
            size_i=self.size_i[k],
            size_j=self.size_j[k],
            pct_i=self.pct_i[k, k][:, None],
            pct_j=self.pct_j[k, k][:, None],
            jaccard=self.jaccard[k, k][:, None],
            valid_i=self.valid_i[k],
            valid_j=self.valid_j[k],
        )


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num = np.asarray(num, dtype=float)
    den = np.broadcast_to(np.asarray(den, dtype=float), num.shape)
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def overlap(
    masks_i: np.ndarray,
    masks_j: np.ndarray | None = None,
    valid_i: np.ndarray | None = None,
    valid_j: np.ndarray | None = None,
) -> Overlap:
    """Pairwise overlap matrices of two families of sets (of one family with itself if
    `masks_j` is None): the 13x13 limit-by-limit comparison, or, for two backbones,
    rows = limits of the first and columns = limits of the second.
    """
    a = np.asarray(masks_i, dtype=bool)
    same = masks_j is None
    b = a if same else np.asarray(masks_j, dtype=bool)
    va = np.ones(len(a), bool) if valid_i is None else np.asarray(valid_i, bool)
    vb = (va if same else np.ones(len(b), bool)) if valid_j is None else np.asarray(valid_j, bool)
    both = _intersections(a, b)
    size_i, size_j = set_sizes(a), set_sizes(b)
    union = size_i[:, None] + size_j[None, :] - both
    ok = va[:, None] & vb[None, :]
    pct_i = np.where(ok, 100.0 * _ratio(both, size_i[:, None]), np.nan)
    pct_j = np.where(ok, 100.0 * _ratio(both, size_j[None, :]), np.nan)
    jac = np.where(ok, _ratio(both, union), np.nan)
    return Overlap(both, size_i, size_j, pct_i, pct_j, jac, va, vb)


def cell_members(mask_i: np.ndarray, mask_j: np.ndarray) -> tuple[np.ndarray, ...]:
    """Rows in B_i ∩ B_j, in B_i only and in B_j only (ascending row indices)."""
    a = np.asarray(mask_i, dtype=bool)
    b = np.asarray(mask_j, dtype=bool)
    return np.flatnonzero(a & b), np.flatnonzero(a & ~b), np.flatnonzero(~a & b)


def ranks(predictions: np.ndarray, row: int) -> np.ndarray:
    """Rank of configuration `row` in every limit by predicted energy above the hull:
    1 + #{c : e_k(c) < e_k(row)} (1 = the lowest); NaN where the row has no prediction."""
    pred = np.atleast_2d(np.asarray(predictions, dtype=float))
    own = pred[:, row : row + 1]
    with np.errstate(invalid="ignore"):
        rank = 1.0 + (pred < own).sum(axis=1)
    return np.where(np.isfinite(own[:, 0]), rank, np.nan)



#: Index of limit 24 among the limits: the reference set B_24 of the recall.
REFERENCE = len(LIMITS) - 1


@dataclass(frozen=True)
class Candidates:
    """Robust candidates, ranked. rows: store rows; n_limits: (m, n_backbones) number of
    limits below the threshold per backbone; mean_prediction: mean over every available
    limit and backbone (eV/atom); multiplicity: orbit sizes carried along.
    """

    rows: np.ndarray
    backbones: tuple[str, ...]
    n_limits: np.ndarray
    mean_prediction: np.ndarray
    multiplicity: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def total_limits(self) -> np.ndarray:
        """Number of (backbone, limit) pairs below the threshold."""
        return self.n_limits.sum(axis=1)


def robust_candidates(
    predictions: Mapping[str, np.ndarray],
    multiplicity: np.ndarray,
    threshold: float = 0.0,
    min_limits: int = 13,
    require: str = "all",
) -> Candidates:
    """Configurations below `threshold` for at least `min_limits` limits, in every backbone
    (`require="all"`) or in at least one (`require="any"`).

    predictions: backbone -> (L, n) array. Ranked by the number of (backbone, limit) pairs
    below the threshold (descending), then by the mean prediction (ascending), then by row.
    """
    if require not in ("all", "any"):
        raise ValueError(f"require must be 'all' or 'any', not {require!r}")
    names = tuple(predictions)
    if not names:
        raise ValueError("robust_candidates needs the predictions of at least one backbone")
    preds = [np.asarray(predictions[b], dtype=float) for b in names]
    counts = np.stack([set_sizes(below_hull(p, threshold).T) for p in preds], axis=1)
    ok = counts >= min_limits
    keep = ok.all(axis=1) if require == "all" else ok.any(axis=1)
    rows = np.flatnonzero(keep)
    stacked = np.concatenate([p[:, rows] for p in preds], axis=0)
    finite = np.isfinite(stacked)
    total = np.where(finite, stacked, 0.0).sum(axis=0)
    n_finite = finite.sum(axis=0)
    mean = np.full(len(rows), np.nan)
    np.divide(total, n_finite, out=mean, where=n_finite > 0)
    n_limits = counts[rows]
    order = np.lexsort((rows, np.where(np.isnan(mean), np.inf, mean), -n_limits.sum(axis=1)))
    mult = np.asarray(multiplicity)[rows]
    return Candidates(rows[order], names, n_limits[order], mean[order], mult[order])


#: "Slightly positive" energies above the hull, eV/atom, per label set: the screen looks for
#: "negative (or at least slightly positive)" energies (the study, section 3.4). Relaxed
#: labels are the target; single points (the parent geometry) sit tens of meV/atom higher.
SLIGHTLY_POSITIVE = {RELAXED: 0.02, SINGLE_POINT: 0.08}


