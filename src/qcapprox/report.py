"""`qcapprox report RESULTS.h5 -o DIR`: the study's figures for a results file (PNG and SVG).

Per dopant: training subset sizes per limit (when the results file records them), test
RMSE per limit (eq. 3), below-hull set sizes and recall against limit 24; per dopant and
backbone: SimilarityScore heatmap (eq. 4) and pairwise below-hull overlap heatmaps (count,
% of set i, % of set j, Jaccard); per backbone: recall of every dopant. Every number comes
from `qcapprox.analysis`, and the same numbers are written as CSV next to the figures.
Energies are labelled as CHGNet stand-in values. `DIR/report.md` holds, per dopant, a
table of every family's figures per limit (test RMSE, SimilarityScore against limit 24,
below-hull set size, recall against limit 24) and lists what was written and what was
skipped, and why.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from qcapprox import analysis
from qcapprox.results import LIMITS, Metrics, Results

REFERENCE = len(LIMITS) - 1
RC = {
    "svg.hashsalt": "qcapprox",  # deterministic SVG ids
    "svg.fonttype": "none",  # text stays text (searchable, small)
    "font.size": 8,
}
CMAP = "viridis"


def _save(fig: Figure, out_dir: Path, stem: str, formats: Sequence[str]) -> list[Path]:
    paths = []
    for fmt in formats:
        path = out_dir / f"{stem}.{fmt}"
        metadata = {"Date": None} if fmt == "svg" else None
        with matplotlib.rc_context(RC):
            fig.savefig(path, format=fmt, dpi=150, metadata=metadata)
        paths.append(path)
    return paths


def _heatmap(
    ax, matrix: np.ndarray, title: str, fmt: Callable[[float], str] | None, vmin=None, vmax=None
):
    cmap = matplotlib.colormaps[CMAP].with_extremes(bad="#d0d0d0")
    data = np.ma.masked_invalid(matrix)
    image = ax.imshow(data, cmap=cmap, vmin=vmin, vmax=vmax, origin="upper")
    ax.set_xticks(range(len(LIMITS)), [str(x) for x in LIMITS])
    ax.set_yticks(range(len(LIMITS)), [str(x) for x in LIMITS])
    ax.set_xlabel("limit j")
    ax.set_ylabel("limit i")
    ax.set_title(title)
    if fmt is None:
        return image
    lo, hi = image.get_clim()
    for (i, j), value in np.ndenumerate(matrix):
        if np.isfinite(value):
            bright = (value - lo) / (hi - lo or 1.0) > 0.6
            text = ax.text(
                j,
                i,
                fmt(value),
                ha="center",
                va="center",
                fontsize=5,
                color="black" if bright else "white",
            )
            text.set_in_layout(False)
    return image


def _write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_report(
    results: Path,
    out_dir: Path,
    *,
    threshold: float = 0.0,
    formats: Sequence[str] = ("png", "svg"),
    log: Callable[[str], None] | None = None,
) -> list[Path]:
    """Write the figures (and CSV tables, report.md) of a results file into `out_dir`.

    Returns the written paths. Figures whose data the file lacks are skipped, and the
    skip is reported through `log` and in report.md.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    notes: list[str] = []

    def skip(message: str) -> None:
        notes.append(message)
        if log:
            log(f"skipped: {message}")

    recall_by_backbone: dict[str, dict[str, np.ndarray]] = {}
    tables: list[str] = []
    with Results(results) as res:
        for dopant in res.dopants:
            label = res.energy_label(dopant)
            backbones = res.backbones(dopant)
            if not backbones:
                skip(f"{dopant}: no predictions in {res.path.name}, no inference figures")
            families = {}
            for backbone in backbones:
                pred = res.predictions(dopant, backbone)
                valid = analysis.available(pred)
                masks = analysis.below_hull(pred, threshold)
                families[backbone] = (pred, valid, masks)
                recall_by_backbone.setdefault(backbone, {})[dopant] = analysis.recall(
                    masks, REFERENCE, valid=valid
                )
            metrics = {b: res.metrics(dopant, b) for b in res.metric_backbones(dopant)}
            tables += family_table(dopant, metrics, families, label)
            written += _subset_sizes(dopant, res.subset_sizes(dopant), out_dir, formats, skip)
            written += _rmse(dopant, metrics, label, out_dir, formats, skip)
            written += _recall(
                dopant, families, res.multiplicity(dopant), threshold, label, out_dir, formats
            )
            for backbone, m in metrics.items():
                rmse = analysis.rmse(m.test_predictions, m.test_target)
                sim = analysis.similarity_score(rmse, m.test_mean)
                fig = Figure(figsize=(5.2, 4.6), layout="constrained")
                ax = fig.add_subplot()
                image = _heatmap(
                    ax,
                    sim,
                    f"Sc-{dopant} · {backbone} · SimilarityScore (eq. 4), test set\n"
                    f"ȳ = {m.test_mean:.4f} eV/atom · {label}",
                    lambda v: f"{v:.2f}",
                )
                fig.colorbar(image, ax=ax, shrink=0.8)
                written += _save(fig, out_dir, f"{dopant}-{backbone}-similarity", formats)
            for backbone, (_, valid, masks) in families.items():
                ov = analysis.overlap(masks, valid_i=valid)
                fig = Figure(figsize=(10, 9))  # fixed margins: constrained layout is slow here
                fig.subplots_adjust(
                    left=0.06, right=0.97, bottom=0.06, top=0.92, wspace=0.25, hspace=0.3
                )
                axes = fig.subplots(2, 2)
                panels = [
                    ("count", "|Bi ∩ Bj|", lambda v: f"{v:.0f}", None, None),
                    ("pct_i", "% of Bi in both", None, 0, 100),
                    ("pct_j", "% of Bj in both", None, 0, 100),
                    ("jaccard", "Jaccard |Bi ∩ Bj| / |Bi ∪ Bj|", None, 0, 1),
                ]
                for ax, (metric, title, fmt, lo, hi) in zip(axes.flat, panels, strict=True):
                    image = _heatmap(ax, ov.matrix(metric), title, fmt, lo, hi)
                    fig.colorbar(image, ax=ax, shrink=0.8)
                fig.suptitle(
                    f"Sc-{dopant} · {backbone} · pairwise below-hull sets, predicted E above "
                    f"hull < {threshold:+.3f} eV/atom ({label})"
                )
                stem = f"{dopant}-{backbone}-overlap"
                written += _save(fig, out_dir, stem, formats)
                written.append(
                    _write_csv(
                        out_dir / f"{stem}.csv",
                        ["limit_i", "limit_j", "both", "pct_i", "pct_j", "jaccard"],
                        [
                            [
                                LIMITS[i],
                                LIMITS[j],
                                int(ov.both[i, j]),
                                ov.pct_i[i, j],
                                ov.pct_j[i, j],
                                ov.jaccard[i, j],
                            ]
                            for i in range(len(LIMITS))
                            for j in range(len(LIMITS))
                        ],
                    )
                )
        for backbone, by_dopant in recall_by_backbone.items():
            fig = Figure(figsize=(5, 3.4), layout="constrained")
            ax = fig.add_subplot()
            for dopant, rec in by_dopant.items():
                ax.plot(LIMITS, rec, marker="o", label=f"Sc-{dopant}")
            ax.set(
                xlabel="limit",
                ylabel="recall vs limit 24",
                xticks=LIMITS,
                ylim=(-0.05, 1.05),
                title=f"{backbone} · recall against the limit-24 set (< {threshold:+.3f} eV/atom)",
            )
            ax.legend()
            written += _save(fig, out_dir, f"recall-{backbone}", formats)
        index = out_dir / "report.md"
        lines = [
            f"# qcapprox report: {res.path.name}",
            "",
            f"Below-hull threshold: predicted energy above hull < {threshold:+.3f} eV/atom. "
            "Energies: " + ", ".join(sorted({res.energy_label(d) for d in res.dopants})) + ".",
            "",
            f"## Families (below-hull sets at < {threshold:+.3f} eV/atom)",
            "",
            *tables,
            "## Files",
            *[f"- {p.name}" for p in written],
            "",
            "## Skipped",
            *([f"- {n}" for n in notes] or ["- nothing"]),
            "",
        ]
        index.write_text("\n".join(lines))
    return [*written, index]


def _cell(value: float, fmt: str) -> str:
    return "-" if not np.isfinite(value) else format(value, fmt)


def family_table(
    dopant: str,
    metrics: dict[str, Metrics],
    families: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
    label: str,
) -> list[str]:
    """Markdown table, one row per figure and backbone, one column per limit.

    Rows: test RMSE (eq. 3), SimilarityScore against limit 24 (row 24 of eq. 4; the mean
    of the off-diagonal entries in the last column), below-hull set size |B_k| and recall
    |B_k ∩ B_24| / |B_24| on the inference set. Missing limits show "-".
    """
    header = ["figure", *map(str, LIMITS), "mean"]
    lines = [
        f"### Sc-{dopant} ({label})",
        "",
        "| " + " | ".join(header) + " |",
        "| --- |" + " ---: |" * (len(header) - 1),
    ]

    def row(name: str, values: np.ndarray, fmt: str, mean: float = np.nan) -> None:
        cells = [_cell(v, fmt) for v in values] + [_cell(mean, fmt)]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")

    for backbone, m in metrics.items():
        rmse = analysis.rmse(m.test_predictions, m.test_target)
        row(f"{backbone} test RMSE eV/atom", rmse, ".4f", float(np.nanmean(rmse)))
        sim = analysis.similarity_score(rmse, m.test_mean)
        off = sim[~np.eye(len(LIMITS), dtype=bool)]
        row(f"{backbone} SimilarityScore vs 24", sim[REFERENCE], ".3f", float(np.nanmean(off)))
    for backbone, (_, valid, masks) in families.items():
        sizes = np.where(valid, analysis.set_sizes(masks), np.nan)
        row(f"{backbone} below-hull set size", sizes, ",.0f")
        rec = analysis.recall(masks, REFERENCE, valid=valid)
        row(f"{backbone} recall vs 24", rec, ".2f", float(np.nanmean(rec[:REFERENCE])))
    return [*lines, ""]


def _subset_sizes(dopant, sizes, out_dir, formats, skip) -> list[Path]:
    if sizes is None:
        skip(
            f"{dopant}: training subset sizes per limit: the results file has no "
            f"{dopant}/subsets (bundle with the training stores) nor metrics n_train"
        )
        return []
    fig = Figure(figsize=(5, 3.4), layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(len(LIMITS))
    bottom = np.zeros(len(LIMITS))
    parts = [c for c in ("train", "validation", "test") if c in sizes]
    for part in parts:
        ax.bar(x, sizes[part], bottom=bottom, label=part)
        bottom = bottom + sizes[part]
    ax.set(
        xticks=x,
        xticklabels=[str(v) for v in LIMITS],
        xlabel="limit (max A5 defects)",
        ylabel="structures",
        title=f"Sc-{dopant} · training subdataset sizes",
    )
    ax.legend()
    stem = f"{dopant}-subset-sizes"
    paths = _save(fig, out_dir, stem, formats)
    paths.append(
        _write_csv(
            out_dir / f"{stem}.csv",
            ["limit", *parts],
            [[LIMITS[k], *(int(sizes[p][k]) for p in parts)] for k in range(len(LIMITS))],
        )
    )
    return paths


def _rmse(dopant, metrics, label, out_dir, formats, skip) -> list[Path]:
    if not metrics:
        skip(f"{dopant}: test RMSE and SimilarityScore: the results file holds no metrics/")
        return []
    fig = Figure(figsize=(5, 3.4), layout="constrained")
    ax = fig.add_subplot()
    rows = []
    for backbone, m in metrics.items():
        rmse = analysis.rmse(m.test_predictions, m.test_target)
        ax.plot(LIMITS, rmse, marker="o", label=backbone)
        rows += [[backbone, LIMITS[k], rmse[k]] for k in range(len(LIMITS))]
    ax.set(
        xlabel="limit",
        ylabel="test RMSE, eV/atom",
        xticks=LIMITS,
        title=f"Sc-{dopant} · test RMSE (eq. 3) · {label}",
    )
    ax.legend()
    stem = f"{dopant}-rmse"
    paths = _save(fig, out_dir, stem, formats)
    paths.append(
        _write_csv(out_dir / f"{stem}.csv", ["backbone", "limit", "test_rmse_eV_per_atom"], rows)
    )
    return paths


def _recall(dopant, families, multiplicity, threshold, label, out_dir, formats) -> list[Path]:
    if not families:
        return []
    fig = Figure(figsize=(9, 3.4), layout="constrained")
    ax_n, ax_r = fig.subplots(1, 2)
    rows = []
    for backbone, (_, valid, masks) in families.items():
        sizes = np.where(valid, analysis.set_sizes(masks), np.nan)
        weighted = np.where(valid, analysis.weighted_sizes(masks, multiplicity), np.nan)
        rec = analysis.recall(masks, REFERENCE, valid=valid)
        ax_n.plot(LIMITS, sizes, marker="o", label=backbone)
        ax_r.plot(LIMITS, rec, marker="o", label=backbone)
        rows += [[backbone, LIMITS[k], sizes[k], weighted[k], rec[k]] for k in range(len(LIMITS))]
    ax_n.set(
        xlabel="limit",
        ylabel="configurations",
        xticks=LIMITS,
        title=f"below-hull set size |B| (E < {threshold:+.3f} eV/atom)",
    )
    ax_r.set(
        xlabel="limit",
        ylabel="recall",
        xticks=LIMITS,
        ylim=(-0.05, 1.05),
        title="recall against the limit-24 set",
    )
    ax_n.legend()
    fig.suptitle(f"Sc-{dopant} · inference set · {label}")
    stem = f"{dopant}-recall"
    paths = _save(fig, out_dir, stem, formats)
    paths.append(
        _write_csv(
            out_dir / f"{stem}.csv",
            ["backbone", "limit", "below_hull", "below_hull_weighted", "recall_vs_24"],
            rows,
        )
    )
    return paths
