"""The report's figures, each drawn from `analysis.Family` objects and returned with the
numbers behind it (`style.Plot`: the CSV written beside the figure).

Families of one label set (relaxed or single-point) share a figure; the two label sets
never do: single points sit tens of meV/atom above relaxed energies and screen another
question. Energies are eV/atom, named by the results file's energy label (CHGNet
stand-in labels for the bundled data).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.image import AxesImage

from qcapprox.analysis import ILL_CONDITIONED_MEAN, REFERENCE, Family
from qcapprox.report.style import (
    CELL_FONT,
    CMAP,
    EMPTY,
    PAGE_WIDTH,
    SMALL,
    UNDEFINED,
    VACUOUS_KEY,
    CellNumbers,
    Plot,
    count_text,
    dodge,
    fits,
    legend_outside,
    look,
    new_figure,
    say,
)
from qcapprox.words import LIMITS

X = np.asarray(LIMITS, dtype=float)
LIMIT_AXIS = "limit (max A5 defects in training)"


def _limit_ticks(ax: Axes) -> None:
    ax.set_xticks(LIMITS, [str(x) for x in LIMITS])
    ax.set_xlabel(LIMIT_AXIS)


def subset_sizes(dopant: str, sizes: Mapping[str, np.ndarray]) -> Plot:
    """Training subdataset sizes per limit, stacked by split part (the study's Fig. 1)."""
    fig = new_figure(PAGE_WIDTH / 2 + 0.9, 2.6)
    ax = fig.add_subplot()
    parts = [c for c in ("train", "validation", "test") if c in sizes]
    bottom = np.zeros(len(LIMITS))
    for k, part in enumerate(parts):
        ax.bar(X, sizes[part], bottom=bottom, width=1.4, label=part, color=look(k).color)
        bottom = bottom + sizes[part]
    _limit_ticks(ax)
    ax.set(ylabel="structures", title=f"Sc-{dopant} · training subdataset sizes")
    legend_outside(ax)
    rows = [[LIMITS[k], *(int(sizes[p][k]) for p in parts)] for k in range(len(LIMITS))]
    return Plot(fig, ["limit", *parts], rows)


def histogram(
    dopant: str, labels: str, families: Sequence[Family], threshold: float, energy: str
) -> Plot | None:
    """Energies above the hull (Fig. 2 type): every family's limit-24 predictions over the
    inference set, and the test targets (the labels of this label set)."""
    series: dict[str, np.ndarray] = {}
    for family in families:
        if family.valid[REFERENCE]:
            series[f"{family.backbone} limit 24"] = family.predictions[REFERENCE]
    targets = next((f.metrics.test_target for f in families if f.metrics is not None), None)
    if targets is not None:
        series["test targets (labels)"] = targets
    series = {k: v[np.isfinite(v)] for k, v in series.items()}
    series = {k: v for k, v in series.items() if v.size}
    if not series:
        return None
    edges = np.histogram_bin_edges(np.concatenate(list(series.values())), bins=40)
    fig = new_figure(PAGE_WIDTH, 2.8)
    ax = fig.add_subplot()
    rows = []
    for k, (name, values) in enumerate(series.items()):
        counts, _ = np.histogram(values, bins=edges)
        ax.stairs(
            counts / len(values),
            edges,
            label=f"{name} (n={len(values):,})",
            color=look(k).color,
            linewidth=1.0,
        )
        rows += [[name, edges[b], edges[b + 1], int(counts[b])] for b in range(len(counts))]
    ax.axvline(threshold, color="0.3", linestyle=":", linewidth=0.8)
    ax.set(
        xlabel=f"energy above hull, eV/atom (dotted: threshold {threshold:+.3f})",
        ylabel="share of structures",
        title=f"Sc-{dopant} · {labels} families · energies above the hull · {energy}",
    )
    legend_outside(ax)
    return Plot(fig, ["series", "low", "high", "count"], rows)


def rmse(dopant: str, labels: str, families: Sequence[Family], energy: str) -> Plot | None:
    """Test RMSE per limit (eq. 3; the study's Figs. 3 and 5), one line per family."""
    scored = [f for f in families if f.rmse is not None]
    if not scored:
        return None
    fig = new_figure(PAGE_WIDTH, 2.8)
    ax = fig.add_subplot()
    rows = []
    for k, family in enumerate(scored):
        assert family.rmse is not None
        ax.plot(X, family.rmse, label=family.backbone, **look(k).line())
        rows += [[family.backbone, LIMITS[i], family.rmse[i]] for i in range(len(LIMITS))]
    _limit_ticks(ax)
    ax.set(
        ylabel="test RMSE, eV/atom",
        title=f"Sc-{dopant} · {labels} families · test RMSE (eq. 3) · {energy}",
    )
    legend_outside(ax)
    return Plot(fig, ["backbone", "limit", "test_rmse_eV_per_atom"], rows)


def predictions(
    dopant: str, labels: str, families: Sequence[Family], threshold: float, energy: str
) -> Plot:
    """Box plots of the predicted energies above the hull per limit, the families side by
    side at each limit (whiskers 1.5 IQR, outliers not drawn), with the threshold."""
    fig = new_figure(PAGE_WIDTH, 3.0)
    ax = fig.add_subplot()
    offsets = dodge(len(families), width=1.5)
    width = 1.6 / max(len(families), 1) * 0.8
    rows = []
    for k, family in enumerate(families):
        present = np.flatnonzero(family.valid)
        data = [p[np.isfinite(p)] for p in family.predictions[present]]
        if data:
            parts = ax.boxplot(
                data,
                positions=X[present] + offsets[k],
                widths=width,
                showfliers=False,
                manage_ticks=False,
                patch_artist=True,
            )
            for box in parts["boxes"]:
                box.set(facecolor=look(k).color, alpha=0.8, linewidth=0.6)
        ax.plot([], [], "s", color=look(k).color, label=family.backbone)
        for i, values in zip(present, data, strict=True):
            q = np.percentile(values, [5, 25, 50, 75, 95])
            rows.append([family.backbone, LIMITS[i], len(values), *q, int(family.sizes[i])])
    ax.axhline(threshold, color="tab:red", linestyle="--", linewidth=0.8)
    if not any(f.sizes[f.valid].any() for f in families):
        say(ax, EMPTY, y=0.9)
    _limit_ticks(ax)
    n = families[0].n if families else 0
    ax.set(
        ylabel="E above hull, eV/atom",
        title=f"Sc-{dopant} · {labels} families · predicted energies above the hull of "
        f"{n:,} configurations · {energy}\n(boxes: quartiles, black: median, whiskers "
        f"1.5 IQR, outliers not drawn; dashed: threshold {threshold:+.3f})",
    )
    legend_outside(ax)
    header = ["backbone", "limit", "n", "p5", "q1", "median", "q3", "p95", "below_hull"]
    return Plot(fig, header, rows)


def recall(
    dopant: str, labels: str, families: Sequence[Family], threshold: float, energy: str
) -> Plot:
    """Below-hull set sizes and recall against limit 24 per limit (the study's Fig. 11).
    Families side by side (small offsets, own markers) so that equal values stay
    visible; a family whose B24 is empty has the vacuous recall 1 (hollow, dashed)."""
    fig = new_figure(PAGE_WIDTH, 2.8)
    ax_n, ax_r = fig.subplots(1, 2)
    offsets = dodge(len(families), width=0.9)
    rows = []
    for k, family in enumerate(families):
        style = look(k, hollow=family.reference_empty)
        sizes = np.where(family.valid, family.sizes, np.nan)
        weighted = np.where(family.valid, family.weighted, np.nan)
        name = family.backbone + (", B24 empty" if family.reference_empty else "")
        ax_n.plot(X + offsets[k], sizes, **look(k).line())
        ax_r.plot(X + offsets[k], family.recall, label=name, **style.line())
        rows += [
            [family.backbone, LIMITS[i], sizes[i], weighted[i], family.recall[i]]
            for i in range(len(LIMITS))
        ]
    ax_n.set(ylabel="configurations", title=f"below-hull set size |B| (E < {threshold:+.3f})")
    ax_r.set(
        ylabel="recall |B ∩ B24| / |B24|",
        ylim=(-0.05, 1.08),
        title="recall against the limit-24 set",
    )
    if not any(f.sizes[f.valid].any() for f in families):
        say(ax_n, EMPTY)
    if families and all(f.reference_empty for f in families):
        say(ax_r, "every B24 empty: recall 1 by\nthe study's convention, it says nothing")
    for ax in (ax_n, ax_r):
        _limit_ticks(ax)
    vacuous = any(f.reference_empty for f in families)
    fig.legend(loc="outside right upper", title=VACUOUS_KEY if vacuous else None)
    fig.suptitle(f"Sc-{dopant} · {labels} families · inference set · {energy}")
    header = ["backbone", "limit", "below_hull", "below_hull_weighted", "recall_vs_24"]
    return Plot(fig, header, rows)


def _heatmap(
    fig: Figure,
    ax: Axes,
    matrix: np.ndarray,
    title: str,
    fmt: Callable[[float], str],
    lower: int | None = None,
    limits: tuple[float | None, float | None] = (None, None),
) -> AxesImage:
    """A limit-by-limit heatmap. `lower` = 0: only the lower triangle with the diagonal is
    drawn (a symmetric matrix), 1: without it (a diagonal fixed by definition); grey cells
    are undefined. The numbers are written in the cells when they fit at `CELL_FONT`;
    otherwise (a large grid) a colorbar gives the scale and the numbers are in the CSV."""
    n = len(matrix)
    shown = np.ones(matrix.shape, bool) if lower is None else np.tri(n, k=-lower, dtype=bool)
    cmap = matplotlib.colormaps[CMAP].with_extremes(bad=UNDEFINED)
    finite = matrix[np.isfinite(matrix) & shown]
    vmin, vmax = limits
    if vmin is None and vmax is None and finite.size and finite.min() == finite.max():
        vmin, vmax = finite.min() - 0.5, finite.max() + 0.5  # one value: a flat, valid range
    if vmin is not None and vmax is None and finite.size and finite.max() <= vmin:
        vmax = vmin + 1.0  # every value at the lower bound (e.g. all |dRMSE| zero)
    image = ax.imshow(
        np.ma.masked_invalid(matrix),
        cmap=cmap,
        vmin=vmin,
        vmax=vmax,
        alpha=shown.astype(float),
        interpolation="nearest",
    )
    ax.set_xticks(range(n), [str(x) for x in LIMITS])
    ax.set_yticks(range(n), [str(x) for x in LIMITS])
    ax.set(xlabel="limit j", ylabel="limit i")
    ax.spines[:].set_visible(lower is None)
    ax.tick_params(length=2, pad=1.5)
    cells = [
        (j, i, fmt(v)) for (i, j), v in np.ndenumerate(matrix) if shown[i, j] and np.isfinite(v)
    ]
    if fits(ax, n, [t for _, _, t in cells]):
        lo, hi = image.get_clim()
        numbers = [
            (j, i, text, "black" if (matrix[i, j] - lo) / (hi - lo or 1.0) > 0.6 else "white")
            for j, i, text in cells
        ]
        ax.add_artist(CellNumbers(ax, numbers, CELL_FONT))
    else:
        fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02)
        title += " (numbers in the CSV)"
    ax.set_title(title)
    return image


def similarity(family: Family, energy: str) -> Plot:
    """SimilarityScore (eq. 4) and |RMSE_i - RMSE_j| in one heatmap: the score is an affine
    function of |dRMSE| (S = 1 - |dRMSE| / ȳ), so one colour scale serves both, the colorbar
    carries both scales (|dRMSE| in meV/atom to its right, S to its left) and the cells
    hold |dRMSE| (well-defined whatever ȳ). Symmetric with a fixed diagonal (0 and 1): the
    lower triangle is drawn. Where ȳ is zero the score is undefined and its scale left
    out; where ȳ is near zero or negative the title says so."""
    assert family.metrics is not None and family.similarity is not None
    assert family.rmse_difference is not None
    sim, diff, mean = family.similarity, family.rmse_difference, family.metrics.test_mean
    fig = new_figure(PAGE_WIDTH * 0.72, 4.4, constrained=False)
    fig.subplots_adjust(left=0.1, right=0.7, bottom=0.1, top=0.84)
    ax = fig.add_subplot()
    milli = 1000 * diff
    largest = np.nanmax(milli, initial=0.0)
    digits = 2 if largest < 9.995 else 1  # small differences keep two decimals: 0.12
    image = _heatmap(fig, ax, milli, "", lambda v: f"{v:.{digits}f}", lower=1, limits=(0, None))
    ax.set_title("cells: |RMSE_i - RMSE_j|, meV/atom", fontsize=SMALL)
    box = ax.get_position(original=False)
    bar_ax = fig.add_axes((box.x1 + 0.13, box.y0, 0.03, box.height))
    bar = fig.colorbar(image, cax=bar_ax)
    bar.set_label("|RMSE_i - RMSE_j|, meV/atom")
    if np.isfinite(mean) and abs(mean) > 1e-12:
        score = bar_ax.secondary_yaxis(
            "left",
            functions=(lambda d: 1 - d / 1000 / mean, lambda s: (1 - s) * 1000 * mean),
        )
        score.set_ylabel("SimilarityScore (eq. 4)")
        score.tick_params(labelsize=SMALL)
        scale = "colour: both scales"
    else:
        scale = "SimilarityScore undefined (ȳ = 0)"
    warning = ""
    if mean < ILL_CONDITIONED_MEAN:
        warning = "; ill-conditioned: read the cells"
    fig.suptitle(
        f"Sc-{family.dopant} · {family.backbone} · test set · SimilarityScore = 1 - "
        f"|RMSE_i - RMSE_j| / ȳ\nȳ = {mean:.4f} eV/atom ({scale}{warning})\n{energy}"
    )
    rows = [
        [LIMITS[i], LIMITS[j], sim[i, j], diff[i, j]]
        for i in range(len(LIMITS))
        for j in range(len(LIMITS))
    ]
    header = ["limit_i", "limit_j", "similarity_score", "abs_rmse_difference_eV_per_atom"]
    return Plot(fig, header, rows)


def overlap(family: Family, energy: str) -> Plot:
    """Pairwise below-hull sets (the study's Figs. 12-15; drawn when some set is not
    empty): |Bi ∩ Bj| (symmetric: the lower
    triangle, |Bk| on the diagonal) and the percentage of Bi also in Bj (its transpose is
    the percentage of Bj). The CSV adds the percentage of Bj and the Jaccard index."""
    ov = family.overlap
    fig = new_figure(PAGE_WIDTH, 4.2, constrained=False)
    fig.subplots_adjust(left=0.06, right=0.99, bottom=0.1, top=0.83, wspace=0.12)
    ax_n, ax_p = fig.subplots(1, 2)
    _heatmap(fig, ax_n, ov.matrix("count"), "|Bi ∩ Bj| (diagonal: |Bk|)", count_text, 0)
    _heatmap(
        fig,
        ax_p,
        ov.matrix("pct_i"),
        "% of Bi also in Bj",
        lambda v: f"{v:.0f}",
        limits=(0, 100),
    )
    fig.suptitle(
        f"Sc-{family.dopant} · {family.backbone} · pairwise below-hull sets, predicted E above "
        f"hull < {family.threshold:+.3f} eV/atom\n({energy}; grey: undefined, an empty set or "
        "no model)"
    )
    rows = [
        [LIMITS[i], LIMITS[j], int(ov.both[i, j]), ov.pct_i[i, j], ov.pct_j[i, j], ov.jaccard[i, j]]
        for i in range(len(LIMITS))
        for j in range(len(LIMITS))
    ]
    return Plot(fig, ["limit_i", "limit_j", "both", "pct_i", "pct_j", "jaccard"], rows)


def rmse_boxplots(labels: str, by_dopant: Mapping[str, Sequence[Family]], energy: str) -> Plot:
    """The study's Figs. 4 and 7: per dopant, one box per backbone over its 13 limits'
    test RMSEs (black medians)."""
    names = list(dict.fromkeys(f.backbone for fams in by_dopant.values() for f in fams))
    dopants = list(by_dopant)
    fig = new_figure(PAGE_WIDTH, 2.8)
    ax = fig.add_subplot()
    width = 0.8 / max(len(names), 1)
    rows = []
    for b, name in enumerate(names):
        data, positions = [], []
        for d, dopant in enumerate(dopants):
            family = next((f for f in by_dopant[dopant] if f.backbone == name), None)
            if family is None or family.rmse is None or not np.isfinite(family.rmse).any():
                continue
            finite = family.rmse[np.isfinite(family.rmse)]
            data.append(finite)
            positions.append(d - 0.4 + width * (b + 0.5))
            q1, median, q3 = np.percentile(finite, [25, 50, 75])
            rows.append([dopant, name, len(finite), finite.min(), q1, median, q3, finite.max()])
        if data:
            parts = ax.boxplot(
                data,
                positions=positions,
                widths=width * 0.85,
                patch_artist=True,
                manage_ticks=False,
            )
            for box in parts["boxes"]:
                box.set(facecolor=look(b).color, alpha=0.8, linewidth=0.6)
        ax.plot([], [], "s", color=look(b).color, label=name)
    ax.set_xticks(range(len(dopants)), [f"Sc-{d}" for d in dopants])
    ax.set(
        ylabel="test RMSE, eV/atom",
        title=f"{labels} families · test RMSE over the 13 limits (black: median) · {energy}",
    )
    legend_outside(ax)
    header = ["dopant", "backbone", "n_limits", "min", "q1", "median", "q3", "max"]
    return Plot(fig, header, rows)


def recall_by_dopant(name: str, by_dopant: Mapping[str, Family], threshold: float) -> Plot:
    """One family name's recall against its limit-24 set for every dopant (offset side by
    side; a vacuous recall, B24 empty, hollow and dashed)."""
    fig = new_figure(PAGE_WIDTH, 2.6)
    ax = fig.add_subplot()
    offsets = dodge(len(by_dopant), width=0.6)
    rows = []
    for k, (dopant, family) in enumerate(by_dopant.items()):
        label = f"Sc-{dopant}" + (", B24 empty" if family.reference_empty else "")
        ax.plot(
            X + offsets[k],
            family.recall,
            label=label,
            **look(k, hollow=family.reference_empty).line(),
        )
        rows += [
            [dopant, LIMITS[i], family.recall[i], int(family.sizes[REFERENCE])]
            for i in range(len(LIMITS))
        ]
    _limit_ticks(ax)
    ax.set(
        ylabel="recall |B ∩ B24| / |B24|",
        ylim=(-0.05, 1.08),
        title=f"{name} · recall against the limit-24 set (E < {threshold:+.3f} eV/atom)",
    )
    vacuous = any(f.reference_empty for f in by_dopant.values())
    legend_outside(ax, title=VACUOUS_KEY if vacuous else None)
    return Plot(fig, ["dopant", "limit", "recall_vs_24", "size_24"], rows)
