"""Below-hull sets across limits: overlaps, recall, test RMSE, SimilarityScore, robust picks.

Notation (reference/, sections 4.4-5.2). A family of one backbone gives, for every limit
i in 0, 2, ..., 24 (13 limits, index k = i / 2), a prediction of the energy above hull
e_k(c) of every configuration c (eV/atom). Its *below-hull set* at threshold t is

    B_k = { c : e_k(c) < t }          (t = 0 eV/atom by default)

Sets are boolean masks: an (L, n) array holds B_0 ... B_{L-1} over n configurations. A
missing prediction (NaN, e.g. a limit not trained) is never below the threshold; such a
limit is *unavailable* and every ratio that involves it is NaN.

Everything here is vectorized numpy; the terminal UI and the report figures show exactly
these numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from qcapprox.models.allegro.presets import BACKBONES as ALLEGRO_VARIANTS
from qcapprox.models.forest import REGRESSORS
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


#: Index of limit 24 among the limits: the reference set B_24 of the recall.
REFERENCE = len(LIMITS) - 1
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


# ----------------------------------------------------------- the study's headline results
#: Test RMSE of the energy above hull (eV/atom, low and high end) the study reports on its
#: DFT labels (sections 4.3 and 4.4): Random Forest about 0.01, gradient boosting about
#: 0.02, every Allegro variant 0.010-0.015.
STUDY_RMSE = {"rf": (0.01, 0.01), "boosting": (0.02, 0.02), "allegro": (0.010, 0.015)}
BOOSTING = tuple(name for name in REGRESSORS if name != "rf")
ALLEGRO = tuple(ALLEGRO_VARIANTS.values())  # ordinary, sequential, pretrained
#: A mean test RMSE within [low / SAME_SCALE, high * SAME_SCALE] of the study's is "the same".
SAME_SCALE = 1.5


@dataclass(frozen=True)
class Finding:
    """One headline result of the study beside ours. `verdict`: "reproduces" (holds for
    every dopant, limit or family compared), "partly" (for more than half), "does not"
    or "no data" (the families it needs are missing)."""

    claim: str
    study: str
    ours: str
    verdict: str


def _verdict(hits: int, total: int) -> str:
    if total == 0:
        return "no data"
    return "reproduces" if hits == total else "partly" if 2 * hits > total else "does not"


def finite_mean(values: np.ndarray) -> float:
    """Mean of the finite values, NaN (without a warning) when there are none."""
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    return float(finite.mean()) if finite.size else float("nan")


def _min_finite(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.min()) if finite.size else float("nan")


def study_comparison(
    rmse: Mapping[str, Mapping[str, np.ndarray]],
    recall: Mapping[str, Mapping[str, np.ndarray]],
    empty: Mapping[str, Mapping[str, bool]] | None = None,
) -> list[Finding]:
    """The study's headline results beside ours, row by row.

    `rmse[dopant][backbone]` and `recall[dopant][backbone]` hold one value per limit (13,
    NaN where missing): the test RMSE (eq. 3) and the recall |B_k ∩ B_24| / |B_24| at one
    threshold. Backbones are named without a label-set suffix (rf, hgb, allegro,
    allegro-sequential, ...). RMSE rows compare the mean over limits per dopant with the
    study's figure (`SAME_SCALE`); ordering rows count limits; recall rows use limits
    0-22 (the limit-24 recall is 1 by definition). `empty[dopant][backbone]` is True where
    B_24 is empty: its recalls are 1 by the study's convention, and the row says so.
    """
    out: list[Finding] = []

    def vacuous(dopant: str, *backbones: str) -> str:
        """What the recall figures of these families rest on when a B_24 is empty."""
        names = [b for b in backbones if (empty or {}).get(dopant, {}).get(b, False)]
        if not names:
            return ""
        return f"; {', '.join(names)} B24 empty: recall 1 by the study's convention"

    def scale(claim: str, key: str, names: tuple[str, ...]) -> None:
        low, high = STUDY_RMSE[key]
        study = f"{low:.3f}" if low == high else f"{low:.3f}-{high:.3f}"
        parts, hits = [], 0
        for dopant, families in rmse.items():
            for name in names:
                mean = finite_mean(families.get(name, np.full(1, np.nan)))
                if np.isfinite(mean):
                    parts.append(f"{dopant} {name} {mean:.4f}")
                    hits += low / SAME_SCALE <= mean <= high * SAME_SCALE
        ours = "; ".join(parts) or "-"
        out.append(Finding(claim, study, ours, _verdict(hits, len(parts))))

    def order(claim: str, study: str, first: str, second: str) -> None:
        """Limits where the `first` family's test RMSE is below the `second`'s."""
        parts, hits, total = [], 0, 0
        for dopant, families in rmse.items():
            if first in families and second in families:
                a, b = np.asarray(families[first]), np.asarray(families[second])
                both = np.isfinite(a) & np.isfinite(b)
                k, n = int((a[both] < b[both]).sum()), int(both.sum())
                parts.append(f"{dopant} {k}/{n} limits")
                hits, total = hits + k, total + n
        out.append(Finding(claim, study, "; ".join(parts) or "-", _verdict(hits, total)))

    scale("Random Forest test RMSE (eV/atom)", "rf", ("rf",))
    scale("gradient boosting test RMSE (eV/atom)", "boosting", BOOSTING)
    scale("Allegro test RMSE, every variant (eV/atom)", "allegro", ALLEGRO)
    ordinary, sequential, pretrained = ALLEGRO
    order("self-pretrained (sequential) Allegro below ordinary", "at every limit",
          sequential, ordinary)  # fmt: skip
    order("AFLOW-pretrained Allegro above ordinary", "bigger errors", ordinary, pretrained)

    parts, hits, total = [], 0, 0
    for dopant, families in recall.items():
        if "rf" in families:
            values = np.asarray(families["rf"])[:-1]
            values = values[np.isfinite(values)]
            if not values.size:
                continue
            k = int((values == 1).sum())
            parts.append(
                f"{dopant} {k}/{len(values)} limits (min {values.min():.2f}"
                + vacuous(dopant, "rf")
                + ")"
            )
            hits, total = hits + k, total + len(values)
    out.append(Finding("Random Forest recall vs limit 24", "1 at every limit",
                       "; ".join(parts) or "-", _verdict(hits, total)))  # fmt: skip

    parts, hits, total = [], 0, 0
    for dopant, families in recall.items():
        if ordinary in families and "rf" in families:
            lowest, forest = (_min_finite(np.asarray(families[b])[:-1]) for b in (ordinary, "rf"))
            if not (np.isfinite(lowest) and np.isfinite(forest)):
                continue
            parts.append(
                f"{dopant} Allegro min {lowest:.2f}, RF min {forest:.2f}"
                + vacuous(dopant, ordinary, "rf")
            )
            hits, total = hits + int(lowest < forest), total + 1
    out.append(Finding("ordinary Allegro recall vs limit 24 falls further than RF's",
                       "0 to 1 (RF: 1)", "; ".join(parts) or "-",
                       _verdict(hits, total)))  # fmt: skip

    parts, hits, total = [], 0, 0
    for dopant, families in recall.items():
        if ordinary not in families:
            continue
        base = finite_mean(np.asarray(families[ordinary])[:-1])
        for name in ALLEGRO[1:]:
            if name in families:
                mean = finite_mean(np.asarray(families[name])[:-1])
                parts.append(
                    f"{dopant} {name.removeprefix('allegro-')} {mean:.2f} vs {base:.2f}"
                    + vacuous(dopant, ordinary, name)
                )
                hits, total = hits + int(mean >= base), total + 1
    out.append(Finding("pre-training steadies Allegro's below-hull sets (mean recall)",
                       "sequential and pretrained above ordinary", "; ".join(parts) or "-",
                       _verdict(hits, total)))  # fmt: skip
    return out


# ----------------------------------------------------------------------------- configurations
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
