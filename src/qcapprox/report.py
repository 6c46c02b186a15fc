"""`qcapprox report RESULTS.h5 -o DIR`: the study's figures for a results file (PNG and SVG).

Figures, sized for print (at most 7.2 in wide, text at 7-9 pt at that size):

- `<M>-subset-sizes`: training subset sizes per limit (the study's Fig. 1), when recorded;
- `<M>-histogram`: histogram of energies above the hull (Fig. 2 type): the predictions of
  every backbone's limit-24 model over the inference set, and the test targets;
- `<M>-rmse`: test RMSE per limit (eq. 3; Figs. 3 and 5);
- `rmse-boxplots`: box plots of the 13 test RMSEs of every backbone, per dopant (Figs. 4
  and 7);
- `<M>-<backbone>-similarity`: SimilarityScore heatmap (eq. 4; Figs. 6, 8-10) beside the
  |RMSE_i - RMSE_j| heatmap in eV/atom (eq. 4 divides by the mean test target ȳ, which is
  ill-conditioned when ȳ is near zero or negative);
- `<M>-predictions`: box plots of the predicted energies above the hull per limit, one row
  per backbone, with the threshold;
- `<M>-recall`: below-hull set sizes and recall against limit 24 per limit (Fig. 11);
- `<M>-<backbone>-overlap`: pairwise below-hull set heatmaps (Figs. 12-15): count, % of
  set i, % of set j, Jaccard;
- `recall-<backbone>`: recall against limit 24 of every dopant.

Every number comes from `qcapprox.analysis`, and the numbers behind each figure are
written as CSV beside it. Energies are labelled as CHGNet stand-in values (never DFT). An
empty below-hull set says "empty" in its figure; the recall is 1 when the limit-24 set is
empty (the study's convention). `DIR/report.md` embeds the figures, with a per-dopant table
of every family's figures per limit and, per label set, the study's headline results beside
ours (`analysis.study_comparison`), and lists what was written and what was skipped, and
why.
"""

from __future__ import annotations

import csv
import io
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from qcapprox import analysis
from qcapprox.parent import Parent
from qcapprox.results import LIMITS, Metrics, Results
from qcapprox.store import atomic_bytes

REFERENCE = analysis.REFERENCE
RC = {
    "svg.hashsalt": "qcapprox",  # deterministic SVG ids
    "svg.fonttype": "none",  # text stays text (searchable, small)
}
FONT = 8  # pt, at the figure's own size (at most 7.2 in wide: a printed page)
CELL_FONT = 6.5  # pt, numbers inside heatmap cells
CMAP = "viridis"
EMPTY = "empty: no configuration below the threshold"
RECALL_NOTE = "recall = 1 where B24 is empty (the study's convention)"


def _style(ax) -> None:
    ax.tick_params(labelsize=FONT - 1)
    ax.xaxis.label.set_size(FONT)
    ax.yaxis.label.set_size(FONT)
    ax.title.set_size(FONT)


def _say(ax, text: str, y: float = 0.5) -> None:
    """Write `text` across an axes at height `y` (an empty set, missing data)."""
    ax.text(
        0.5,
        y,
        text,
        transform=ax.transAxes,
        ha="center",
        va="center",
        fontsize=FONT,
        bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": "0.6"},
    )


def _save(fig: Figure, out_dir: Path, stem: str, formats: Sequence[str]) -> list[Path]:
    """Write a figure in each format, each rendered in memory and renamed into place (a
    killed report leaves no truncated figure)."""
    paths = []
    for fmt in formats:
        path = out_dir / f"{stem}.{fmt}"
        metadata = {"Date": None} if fmt == "svg" else None
        buffer = io.BytesIO()
        with matplotlib.rc_context(RC):
            fig.savefig(buffer, format=fmt, dpi=200, metadata=metadata)
        atomic_bytes(path, buffer.getvalue())
        paths.append(path)
    return paths


def _count_text(value: float) -> str:
    return f"{value:.0f}" if value < 10_000 else f"{value / 1000:.0f}k"


def _short(value: float) -> str:
    """Two decimals without the leading zero (.94, -.12), and 1 for 1.00: fits a cell."""
    text = f"{value:.2f}".replace("0.", ".", 1) if abs(value) < 1 else f"{value:.2f}"
    return "1" if text == "1.00" else text


def _heatmap(
    ax,
    matrix: np.ndarray,
    title: str,
    fmt: Callable[[float], str] | None,
    vmin: float | None = None,
    vmax: float | None = None,
    empty: str = "",
):
    """A 13x13 limit-by-limit heatmap; grey cells are undefined; `empty` is written over it."""
    cmap = matplotlib.colormaps[CMAP].with_extremes(bad="#d0d0d0")
    data = np.ma.masked_invalid(matrix)
    finite = matrix[np.isfinite(matrix)]
    if vmin is None and vmax is None and finite.size and finite.min() == finite.max():
        vmin, vmax = finite.min() - 0.5, finite.max() + 0.5  # one value: a flat, valid range
    image = ax.imshow(data, cmap=cmap, vmin=vmin, vmax=vmax, origin="upper")
    ax.set_xticks(range(len(LIMITS)), [str(x) for x in LIMITS])
    ax.set_yticks(range(len(LIMITS)), [str(x) for x in LIMITS])
    ax.set_xlabel("limit j")
    ax.set_ylabel("limit i")
    ax.set_title(title)
    _style(ax)
    if empty:
        _say(ax, empty)
    elif fmt is not None:
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
                    fontsize=CELL_FONT,
                    color="black" if bright else "white",
                )
                text.set_in_layout(False)
    return image


def _colorbar(fig: Figure, image, ax, label: str = "") -> None:
    bar = fig.colorbar(image, ax=ax, shrink=0.8)
    bar.ax.tick_params(labelsize=FONT - 1)
    if label:
        bar.set_label(label, fontsize=FONT - 1)


def _write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    """Write a CSV table under a temporary name and rename it into place."""
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(header)
    writer.writerows(rows)
    atomic_bytes(path, text.getvalue().encode())
    return path


Family = tuple[np.ndarray, np.ndarray, np.ndarray]  # predictions, valid, masks


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
    skip is reported through `log` and in report.md. Empty below-hull sets are drawn and
    said to be empty; nothing warns.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    notes: list[str] = []
    sections: list[str] = []
    image = "png" if "png" in formats else formats[0]

    def skip(message: str) -> None:
        notes.append(message)
        if log:
            log(f"skipped: {message}")

    def embed(paths: list[Path], caption: str) -> list[Path]:
        for path in paths:
            if path.suffix == f".{image}":
                sections.extend([f"![{caption}]({path.name})", "", f"*{caption}*", ""])
        return paths

    recall_by_backbone: dict[str, dict[str, np.ndarray]] = {}
    empty_by_dopant: dict[str, dict[str, bool]] = {}  # B_24 empty, per family
    rmse_by_dopant: dict[str, dict[str, np.ndarray]] = {}
    with Results(results) as res:
        labels = sorted({res.energy_label(d) for d in res.dopants})
        for dopant in res.dopants:
            label = res.energy_label(dopant)
            sections += [f"## Sc-{dopant} ({label})", ""]
            backbones = res.backbones(dopant)
            if not backbones:
                skip(f"{dopant}: no predictions in {res.path.name}, no inference figures")
            families: dict[str, Family] = {}
            for backbone in backbones:
                pred = res.predictions(dopant, backbone)
                valid = analysis.available(pred)
                masks = analysis.below_hull(pred, threshold)
                families[backbone] = (pred, valid, masks)
                recall_by_backbone.setdefault(backbone, {})[dopant] = analysis.recall(
                    masks, REFERENCE, valid=valid
                )
                empty_by_dopant.setdefault(dopant, {})[backbone] = not masks[REFERENCE].any()
            metrics = {b: res.metrics(dopant, b) for b in res.metric_backbones(dopant)}
            rmse_by_dopant[dopant] = {
                b: analysis.rmse(m.test_predictions, m.test_target) for b, m in metrics.items()
            }
            known = res.known_phase_row(dopant)
            sections += family_table(dopant, metrics, families, known)
            if known is not None:
                sections += reference_sets(res.parent(dopant), families, known)
            sizes = res.subset_sizes(dopant)
            paths = _subset_sizes(dopant, sizes, out_dir, formats, skip)
            written += embed(paths, f"Sc-{dopant}: training subdataset sizes per limit")
            paths = _histogram(dopant, families, metrics, threshold, label, out_dir, formats)
            written += embed(paths, f"Sc-{dopant}: energies above the hull ({label})")
            paths = _rmse(dopant, metrics, label, out_dir, formats, skip)
            written += embed(paths, f"Sc-{dopant}: test RMSE per limit")
            for backbone, m in metrics.items():
                paths = _similarity(dopant, backbone, m, label, out_dir, formats)
                written += embed(
                    paths, f"Sc-{dopant} {backbone}: SimilarityScore and |RMSE_i - RMSE_j|"
                )
            paths = _predictions(dopant, families, threshold, label, out_dir, formats)
            written += embed(paths, f"Sc-{dopant}: predicted energies above the hull per limit")
            paths = _recall(
                dopant, families, res.multiplicity(dopant), threshold, label, out_dir, formats
            )
            written += embed(paths, f"Sc-{dopant}: below-hull set sizes and recall vs 24")
            for backbone, (_, valid, masks) in families.items():
                paths = _overlap(dopant, backbone, valid, masks, threshold, label, out_dir, formats)
                written += embed(paths, f"Sc-{dopant} {backbone}: pairwise below-hull sets")
        sections += ["## All dopants", ""]
        sections += study_table(rmse_by_dopant, recall_by_backbone, empty_by_dopant, threshold)
        if any(rmse_by_dopant.values()):
            paths = _rmse_boxplots(rmse_by_dopant, labels, out_dir, formats)
            written += embed(paths, "test RMSE over the 13 limits, per backbone and dopant")
        for backbone, by_dopant in recall_by_backbone.items():
            paths = _recall_by_dopant(backbone, by_dopant, threshold, out_dir, formats)
            written += embed(paths, f"{backbone}: recall against the limit-24 set")
        index = out_dir / "report.md"
        lines = [
            f"# qcapprox report: {res.path.name}",
            "",
            f"Below-hull threshold: predicted energy above hull < {threshold:+.3f} eV/atom. "
            f"Energies: {', '.join(labels)}. Recall against limit 24 is 1 where the limit-24 "
            "set is empty (the study's convention). SimilarityScore (eq. 4) divides by the "
            "mean test target ȳ and is ill-conditioned when ȳ is near zero or negative: "
            "|RMSE_i - RMSE_j| (eV/atom) is shown beside it.",
            "",
            *_nothing_below(empty_at_24(empty_by_dopant), threshold),
            *sections,
            "## Files",
            *[f"- {p.name}" for p in written],
            "",
            "## Skipped",
            *([f"- {n}" for n in notes] or ["- nothing"]),
            "",
        ]
        atomic_bytes(index, "\n".join(lines).encode())
    return [*written, index]


def _cell(value: float, fmt: str) -> str:
    return "-" if not np.isfinite(value) else format(value, fmt)


def family_table(
    dopant: str,
    metrics: dict[str, Metrics],
    families: dict[str, Family],
    known: int | None = None,
) -> list[str]:
    """Markdown table, one row per figure and backbone, one column per limit.

    Rows: test RMSE (eq. 3), mean signed test error (prediction - target: the bias),
    |RMSE_k - RMSE_24| (eV/atom), SimilarityScore against limit
    24 (row 24 of eq. 4), below-hull set size |B_k| and recall |B_k ∩ B_24| / |B_24| on
    the inference set (1 when B_24 is empty); the mean column is over limits 0-22 for the
    rows against limit 24 and over all limits for the test RMSE. When the
    inference set holds the known Sc57M13 phase (row `known`), its predicted energy above
    the hull and its rank among the configurations. Missing limits show "-".
    """
    header = ["figure", *map(str, LIMITS), "mean"]
    lines = [
        "### Every family's figures per limit",
        "",
        "| " + " | ".join(header) + " |",
        "| --- |" + " ---: |" * (len(header) - 1),
    ]

    def row(name: str, values: np.ndarray, fmt: str, mean: float = np.nan) -> None:
        cells = [_cell(v, fmt) for v in values] + [_cell(mean, fmt)]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")

    for backbone, m in metrics.items():
        rmse = analysis.rmse(m.test_predictions, m.test_target)
        row(f"{backbone} test RMSE eV/atom", rmse, ".4f", analysis.finite_mean(rmse))
        bias = analysis.mean_signed_error(m.test_predictions, m.test_target)
        row(f"{backbone} mean signed test error eV/atom", bias, "+.4f", analysis.finite_mean(bias))
        diff = analysis.rmse_difference(rmse)[REFERENCE]
        mean = analysis.finite_mean(diff[:REFERENCE])
        row(f"{backbone} abs(RMSE - RMSE 24) eV/atom", diff, ".4f", mean)
        sim = analysis.similarity_score(rmse, m.test_mean)[REFERENCE]
        row(f"{backbone} SimilarityScore vs 24", sim, ".3f", analysis.finite_mean(sim[:REFERENCE]))
    for backbone, (_, valid, masks) in families.items():
        sizes = np.where(valid, analysis.set_sizes(masks), np.nan)
        row(f"{backbone} below-hull set size", sizes, ",.0f")
        rec = analysis.recall(masks, REFERENCE, valid=valid)
        row(f"{backbone} recall vs 24", rec, ".2f", analysis.finite_mean(rec[:REFERENCE]))
    if known is not None:
        for backbone, (pred, _, _) in families.items():
            row(f"{backbone} Sc57{dopant}13 E above hull eV/atom", pred[:, known], "+.4f")
            row(f"{backbone} Sc57{dopant}13 rank of {pred.shape[1]:,}",
                analysis.ranks(pred, known), ",.0f")  # fmt: skip
    return [*lines, ""]


def reference_sets(parent: Parent, families: dict[str, Family], known: int) -> list[str]:
    """Where the known Sc57M13 phase sits against each reference set of the hull
    (`qcapprox.hull.REFERENCE_SETS`): each family's limit-24 prediction (made against the
    full set) rebased onto every set, E_hull' = E_hull + H(x) - H'(x)."""
    from qcapprox.errors import HullError
    from qcapprox.hull import REFERENCE_SETS, Hull

    try:
        hulls = {name: Hull.load(parent.dopant, references=name) for name in REFERENCE_SETS}
    except HullError:
        return []  # no reference file here to rebase with
    n_host, n_dop = (int(c[0]) for c in parent.formula_counts(parent.known_phase()))
    full = hulls["full"]
    names = list(hulls)
    lines = [
        f"Sc57{parent.dopant}13 against the hull's reference sets (limit-24 predictions, "
        "eV/atom; "
        + "; ".join(f"{n}: {', '.join(h.stable_names)}" for n, h in hulls.items())
        + "):",
        "",
        "| family | " + " | ".join(names) + " |",
        "| --- |" + " ---: |" * len(names),
    ]
    for backbone, (pred, _, _) in families.items():
        value = pred[REFERENCE, known]
        cells = [f"{float(full.rebase(value, n_host, n_dop, h)):+.4f}" for h in hulls.values()]
        lines.append(f"| {backbone} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def empty_at_24(empty: dict[str, dict[str, bool]]) -> dict[str, bool]:
    """Per label set: whether every family trained on it has an empty B_24 (from
    `empty[dopant][family]`)."""
    from qcapprox.models import split_family_key

    out: dict[str, bool] = {}
    for families in empty.values():
        for key, is_empty in families.items():
            labels = split_family_key(key)[1]
            out[labels] = out.get(labels, True) and is_empty
    return out


def _nothing_below(all_empty: dict[str, bool], threshold: float) -> list[str]:
    """A paragraph for the label sets whose families put no configuration below the
    threshold at limit 24: what that means, and the study's "slightly positive" screen."""
    lines = []
    for labels, is_empty in sorted(all_empty.items()):
        near = analysis.SLIGHTLY_POSITIVE[labels]
        if is_empty and threshold < near:
            lines += [
                f"No family trained on {labels} labels predicts a configuration below "
                f"{threshold:+.3f} eV/atom at limit 24: those B_24 are empty, so their recalls "
                "are 1 by the study's convention and say nothing. The study's screen also "
                "keeps 'slightly positive' energies (section 3.4): `qcapprox report RESULTS "
                f"-o DIR --threshold {near:g}` compares the sets below {near:+.3f} eV/atom.",
                "",
            ]
    return lines


def study_table(
    rmse: dict[str, dict[str, np.ndarray]],
    recall: dict[str, dict[str, np.ndarray]],
    empty: dict[str, dict[str, bool]],
    threshold: float,
) -> list[str]:
    """Markdown tables of `analysis.study_comparison`, one per label set of the families:
    the study's headline results (DFT) beside ours (CHGNet labels), with a verdict.
    `empty[dopant][family]`: whether the family's limit-24 below-hull set is empty."""
    from qcapprox.models import split_family_key

    # labels -> (rmse, recall, empty)[dopant][backbone]
    by_labels: dict[str, tuple[dict, dict, dict]] = {}

    def put(which: int, dopant: str, key: str, values: np.ndarray | bool) -> None:
        backbone, labels = split_family_key(key)
        group = by_labels.setdefault(labels, ({}, {}, {}))[which]
        group.setdefault(dopant, {})[backbone] = values

    for dopant, families in rmse.items():
        for key, values in families.items():
            put(0, dopant, key, values)
    for key, dopants in recall.items():
        for dopant, values in dopants.items():
            put(1, dopant, key, values)
    for dopant, families in empty.items():
        for key, is_empty in families.items():
            put(2, dopant, key, is_empty)
    lines = []
    for labels, (rmse_of, recall_of, empty_of) in sorted(by_labels.items()):
        lines += [
            f"### The study's headline results beside ours ({labels} families)",
            "",
            f"The study's figures are DFT; ours are models trained on CHGNet {labels} labels, "
            f"a stand-in for DFT. Recall at threshold {threshold:+.3f} eV/atom. Test RMSE: "
            "the mean over limits counts as the same as the study's within a factor of "
            f"{analysis.SAME_SCALE}.",
            "",
            "| the study | its figure | ours | verdict |",
            "| --- | --- | --- | --- |",
            *(f"| {f.claim} | {f.study} | {f.ours} | {f.verdict} |"
              for f in analysis.study_comparison(rmse_of, recall_of, empty_of)),
            "",
        ]  # fmt: skip
    return lines


def _subset_sizes(dopant, sizes, out_dir, formats, skip) -> list[Path]:
    if sizes is None:
        skip(
            f"{dopant}: training subset sizes per limit: the results file has no "
            f"{dopant}/subsets (bundle with the training stores)"
        )
        return []
    fig = Figure(figsize=(4.8, 3.0), layout="constrained")
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
    _style(ax)
    ax.legend(fontsize=FONT - 1)
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


def _histogram(dopant, families, metrics, threshold, label, out_dir, formats) -> list[Path]:
    """Energies above the hull (Fig. 2 type): limit-24 predictions and the test targets."""
    series: dict[str, np.ndarray] = {}
    for backbone, (pred, valid, _) in families.items():
        if valid[REFERENCE]:
            series[f"{backbone} limit 24, inference set"] = pred[REFERENCE]
    targets = next((m.test_target for m in metrics.values()), None)
    if targets is not None:
        series["test targets (labels)"] = targets
    series = {k: v[np.isfinite(v)] for k, v in series.items()}
    series = {k: v for k, v in series.items() if v.size}
    if not series:
        return []
    values = np.concatenate(list(series.values()))
    edges = np.histogram_bin_edges(values, bins=40)
    fig = Figure(figsize=(4.8, 3.0), layout="constrained")
    ax = fig.add_subplot()
    rows = []
    for name, v in series.items():
        counts, _ = np.histogram(v, bins=edges)
        ax.stairs(counts / len(v), edges, label=f"{name} (n={len(v):,})")
        rows += [[name, edges[k], edges[k + 1], int(counts[k])] for k in range(len(counts))]
    ax.axvline(threshold, color="0.3", linestyle="--", linewidth=0.8)
    ax.set(
        xlabel=f"energy above hull, eV/atom (dashed: threshold {threshold:+.3f})",
        ylabel="share of structures",
        title=f"Sc-{dopant} · energies above the hull · {label}",
    )
    _style(ax)
    ax.legend(fontsize=FONT - 1)
    stem = f"{dopant}-histogram"
    paths = _save(fig, out_dir, stem, formats)
    paths.append(_write_csv(out_dir / f"{stem}.csv", ["series", "low", "high", "count"], rows))
    return paths


def _rmse(dopant, metrics, label, out_dir, formats, skip) -> list[Path]:
    if not metrics:
        skip(f"{dopant}: test RMSE and SimilarityScore: the results file holds no metrics/")
        return []
    fig = Figure(figsize=(4.8, 3.0), layout="constrained")
    ax = fig.add_subplot()
    rows = []
    for backbone, m in metrics.items():
        rmse = analysis.rmse(m.test_predictions, m.test_target)
        ax.plot(LIMITS, rmse, marker="o", markersize=3, label=backbone)
        rows += [[backbone, LIMITS[k], rmse[k]] for k in range(len(LIMITS))]
    ax.set(
        xlabel="limit",
        ylabel="test RMSE, eV/atom",
        xticks=LIMITS,
        title=f"Sc-{dopant} · test RMSE (eq. 3) · {label}",
    )
    _style(ax)
    ax.legend(fontsize=FONT - 1)
    stem = f"{dopant}-rmse"
    paths = _save(fig, out_dir, stem, formats)
    paths.append(
        _write_csv(out_dir / f"{stem}.csv", ["backbone", "limit", "test_rmse_eV_per_atom"], rows)
    )
    return paths


def _rmse_boxplots(rmse_by_dopant, labels, out_dir, formats) -> list[Path]:
    """Figs. 4 and 7: per dopant, one box per backbone over its 13 limits' test RMSEs."""
    backbones = list(dict.fromkeys(b for by in rmse_by_dopant.values() for b in by))
    dopants = [d for d, by in rmse_by_dopant.items() if by]
    fig = Figure(figsize=(7.2, 3.2), layout="constrained")
    ax = fig.add_subplot()
    width = 0.8 / max(len(backbones), 1)
    colors = matplotlib.colormaps["tab10"].colors
    rows = []
    for b, backbone in enumerate(backbones):
        data, positions = [], []
        for d, dopant in enumerate(dopants):
            values = rmse_by_dopant[dopant].get(backbone)
            if values is None or not np.isfinite(values).any():
                continue
            finite = values[np.isfinite(values)]
            data.append(finite)
            positions.append(d - 0.4 + width * (b + 0.5))
            q1, median, q3 = np.percentile(finite, [25, 50, 75])
            rows.append([dopant, backbone, len(finite), finite.min(), q1, median, q3, finite.max()])
        if not data:
            continue
        parts = ax.boxplot(
            data, positions=positions, widths=width * 0.85, patch_artist=True, manage_ticks=False
        )
        for box in parts["boxes"]:
            box.set(facecolor=colors[b % len(colors)], alpha=0.7)
        ax.plot([], [], "s", color=colors[b % len(colors)], label=backbone)
    ax.set_xticks(range(len(dopants)), [f"Sc-{d}" for d in dopants])
    ax.set(
        ylabel="test RMSE, eV/atom",
        title=f"test RMSE over the 13 limits, per backbone ({', '.join(labels)})",
    )
    _style(ax)
    ax.legend(fontsize=FONT - 1, ncols=min(len(backbones), 4))
    stem = "rmse-boxplots"
    paths = _save(fig, out_dir, stem, formats)
    paths.append(
        _write_csv(
            out_dir / f"{stem}.csv",
            ["dopant", "backbone", "n_limits", "min", "q1", "median", "q3", "max"],
            rows,
        )
    )
    return paths


def _similarity(dopant, backbone, m: Metrics, label, out_dir, formats) -> list[Path]:
    """SimilarityScore (eq. 4) beside |RMSE_i - RMSE_j| in eV/atom."""
    rmse = analysis.rmse(m.test_predictions, m.test_target)
    sim = analysis.similarity_score(rmse, m.test_mean)
    diff = analysis.rmse_difference(rmse)
    fig = Figure(figsize=(7.2, 3.6), layout="constrained")
    ax_s, ax_d = fig.subplots(1, 2)
    image = _heatmap(ax_s, sim, "SimilarityScore (eq. 4)", _short)
    _colorbar(fig, image, ax_s)
    image = _heatmap(ax_d, 1000 * diff, "|RMSE_i - RMSE_j|, meV/atom", lambda v: f"{v:.1f}", vmin=0)
    _colorbar(fig, image, ax_d, "meV/atom")
    warning = ""
    if m.test_mean < analysis.ILL_CONDITIONED_MEAN:
        warning = " (ȳ near zero or negative: read the right panel)"
    fig.suptitle(
        f"Sc-{dopant} · {backbone} · test set · ȳ = {m.test_mean:.4f} eV/atom{warning} · {label}",
        fontsize=FONT,
    )
    stem = f"{dopant}-{backbone}-similarity"
    paths = _save(fig, out_dir, stem, formats)
    paths.append(
        _write_csv(
            out_dir / f"{stem}.csv",
            ["limit_i", "limit_j", "similarity_score", "abs_rmse_difference_eV_per_atom"],
            [
                [LIMITS[i], LIMITS[j], sim[i, j], diff[i, j]]
                for i in range(len(LIMITS))
                for j in range(len(LIMITS))
            ],
        )
    )
    return paths


def _predictions(dopant, families, threshold, label, out_dir, formats) -> list[Path]:
    """Box plots of the predicted energies above the hull per limit, one row per backbone."""
    if not families:
        return []
    fig = Figure(figsize=(7.2, 0.6 + 1.9 * len(families)), layout="constrained")
    axes = np.atleast_1d(fig.subplots(len(families), 1, sharex=True, squeeze=False)[:, 0])
    rows = []
    for ax, (backbone, (pred, valid, masks)) in zip(axes, families.items(), strict=True):
        data = [pred[k][np.isfinite(pred[k])] for k in range(len(LIMITS))]
        present = [k for k in range(len(LIMITS)) if valid[k]]
        ax.boxplot(
            [data[k] for k in present],
            positions=present,
            widths=0.6,
            showfliers=False,
            manage_ticks=False,
        )
        ax.axhline(threshold, color="tab:red", linestyle="--", linewidth=0.8)
        sizes = analysis.set_sizes(masks)
        for k in present:
            q = np.percentile(data[k], [5, 25, 50, 75, 95])
            rows.append([backbone, LIMITS[k], len(data[k]), *q, int(sizes[k])])
        if not sizes[present].any():
            _say(ax, EMPTY, y=0.9)
        ax.set_ylabel("E above hull\neV/atom")
        ax.set_title(
            f"{backbone}: {len(pred[0]):,} configurations per limit (whiskers 1.5 IQR, "
            f"outliers not drawn; dashed: threshold {threshold:+.3f})"
        )
        _style(ax)
    axes[-1].set_xticks(range(len(LIMITS)), [str(x) for x in LIMITS])
    axes[-1].set_xlabel("limit")
    _style(axes[-1])
    fig.suptitle(f"Sc-{dopant} · predicted energies above the hull · {label}", fontsize=FONT)
    stem = f"{dopant}-predictions"
    paths = _save(fig, out_dir, stem, formats)
    paths.append(
        _write_csv(
            out_dir / f"{stem}.csv",
            ["backbone", "limit", "n", "p5", "q1", "median", "q3", "p95", "below_hull"],
            rows,
        )
    )
    return paths


def _recall(dopant, families, multiplicity, threshold, label, out_dir, formats) -> list[Path]:
    if not families:
        return []
    fig = Figure(figsize=(7.2, 3.0), layout="constrained")
    ax_n, ax_r = fig.subplots(1, 2)
    rows = []
    empty24 = []
    for backbone, (_, valid, masks) in families.items():
        sizes = np.where(valid, analysis.set_sizes(masks), np.nan)
        weighted = np.where(valid, analysis.weighted_sizes(masks, multiplicity), np.nan)
        rec = analysis.recall(masks, REFERENCE, valid=valid)
        if valid[REFERENCE] and sizes[REFERENCE] == 0:
            empty24.append(backbone)
        ax_n.plot(LIMITS, sizes, marker="o", markersize=3, label=backbone)
        ax_r.plot(LIMITS, rec, marker="o", markersize=3, label=backbone)
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
    all_sizes = np.array([r[2] for r in rows], dtype=float)
    if not np.nansum(all_sizes):
        _say(ax_n, EMPTY)
    if empty24:
        names = textwrap.fill(", ".join(empty24), 36)
        _say(ax_r, f"B24 empty for {names}:\nrecall = 1, the study's convention")
    for ax in (ax_n, ax_r):
        _style(ax)
    ax_n.legend(fontsize=FONT - 1)
    fig.suptitle(f"Sc-{dopant} · inference set · {label}", fontsize=FONT)
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


def _overlap(dopant, backbone, valid, masks, threshold, label, out_dir, formats) -> list[Path]:
    ov = analysis.overlap(masks, valid_i=valid)
    empty = EMPTY if not ov.size_i[valid].any() else ""
    fig = Figure(figsize=(7.2, 6.6))  # fixed margins: constrained layout is slow here
    fig.subplots_adjust(left=0.07, right=0.97, bottom=0.07, top=0.9, wspace=0.25, hspace=0.35)
    axes = fig.subplots(2, 2)
    panels = [
        ("count", "|Bi ∩ Bj|", _count_text, None, None),
        ("pct_i", "% of Bi in both", lambda v: f"{v:.0f}", 0, 100),
        ("pct_j", "% of Bj in both", lambda v: f"{v:.0f}", 0, 100),
        ("jaccard", "Jaccard |Bi ∩ Bj| / |Bi ∪ Bj|", _short, 0, 1),
    ]
    for ax, (metric, title, fmt, lo, hi) in zip(axes.flat, panels, strict=True):
        image = _heatmap(ax, ov.matrix(metric), title, fmt, lo, hi, empty)
        _colorbar(fig, image, ax)
    fig.suptitle(
        f"Sc-{dopant} · {backbone} · pairwise below-hull sets, predicted E above hull "
        f"< {threshold:+.3f} eV/atom\n({label}; grey: undefined, an empty set or no model)",
        fontsize=FONT + 1,
    )
    stem = f"{dopant}-{backbone}-overlap"
    paths = _save(fig, out_dir, stem, formats)
    paths.append(
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
    return paths


def _recall_by_dopant(backbone, by_dopant, threshold, out_dir, formats) -> list[Path]:
    fig = Figure(figsize=(4.8, 3.0), layout="constrained")
    ax = fig.add_subplot()
    for dopant, rec in by_dopant.items():
        ax.plot(LIMITS, rec, marker="o", markersize=3, label=f"Sc-{dopant}")
    ax.set(
        xlabel="limit",
        ylabel="recall vs limit 24",
        xticks=LIMITS,
        ylim=(-0.05, 1.05),
        title=f"{backbone} · recall against the limit-24 set (< {threshold:+.3f} eV/atom)\n"
        f"{RECALL_NOTE}",
    )
    _style(ax)
    ax.legend(fontsize=FONT - 1)
    return _save(fig, out_dir, f"recall-{backbone}", formats)
