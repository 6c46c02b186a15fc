"""`qcapprox report RESULTS.h5 -o DIR`: the study's figures and tables for a results file.

Every number comes from one `analysis.Family` per family (one backbone for one dopant at
the 13 limits, `analysis.analyse_family`), the same analysis the UI and the command line
show. Every energy is a CHGNet value, a stand-in for DFT, and is labelled as such.
Relaxed and single-point families are never mixed in a figure. Figures (eV/atom; at most
7.2 in wide, text 6.5-8 pt at that size), each with its numbers as CSV beside it:

- `<M>-subset-sizes`: training subset sizes per limit (the study's Fig. 1), when recorded;
- per label set `<L>` (relaxed, single-point):
  - `<M>-<L>-histogram`: energies above the hull (Fig. 2 type), every family's limit-24
    predictions over the inference set and the test targets;
  - `<M>-<L>-rmse`: test RMSE per limit (eq. 3; Figs. 3 and 5);
  - `<M>-<L>-predictions`: box plots of the predicted energies per limit and family;
  - `<M>-<L>-recall`: below-hull set sizes and recall against limit 24 (Fig. 11);
  - `rmse-boxplots-<L>`: the 13 test RMSEs of every family, per dopant (Figs. 4 and 7);
- per family `<F>` (e.g. `rf`, `rf-single-point`):
  - `<M>-<F>-similarity`: SimilarityScore (eq. 4; Figs. 6, 8-10) and |RMSE_i - RMSE_j| in
    one heatmap (the score is 1 - |dRMSE| / ȳ: one colour, a colorbar with both scales,
    |dRMSE| in the cells; eq. 4 is ill-conditioned when ȳ is near zero);
  - `<M>-<F>-overlap`: pairwise below-hull sets (Figs. 12-15): count, % of set i, % of
    set j, Jaccard;
  - `recall-<F>`: recall against limit 24 of every dopant.

Line and box figures are written in every format asked (PNG and SVG by default);
heatmaps, whose cells are an image, in the raster ones only (an SVG would embed the same
PNG). `DIR/report.md` embeds the figures, with per dopant and label set a table per
limit (test RMSE, bias, |dRMSE|, SimilarityScore, set sizes, recall, the known Sc57M13
phase's value and rank), the robustness ranking (`analysis.robustness`, vacuous
limit-24 sets flagged), each family's limit-24 candidates and what ranks configurations
(distinct predictions inside a composition); what each listed candidate and the known
phase relaxed into in CHGNet (`Results.relaxed_into`: kept its identity, relaxed into
another configuration, unmappable, or nothing said when nothing is known); the known
phase against the hull's reference sets; the study's headline results beside ours; what
was written and what was skipped, and why.

Every file is rendered in memory and renamed into place whole, report.md last: a report
killed midway leaves complete files and no report.md.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from qcapprox import analysis
from qcapprox.analysis import Family
from qcapprox.report import figures, tables
from qcapprox.report.style import Plot, context, save
from qcapprox.results import Results
from qcapprox.store import atomic_bytes
from qcapprox.words import LABEL_KINDS, Progress

__all__ = ["FORMATS", "write_report"]

FORMATS = ("png", "svg")
ALL_DOPANTS = "all"  # the section of the figures across dopants


@dataclass(frozen=True)
class Item:
    """One figure of the report: where report.md shows it, its file stem and caption, how
    to draw it (None: nothing to draw), and whether it is a heatmap (raster formats only)."""

    section: tuple[str, str]
    stem: str
    caption: str
    draw: Callable[[], Plot | None]
    heatmap: bool = False


def _by_labels(families: Sequence[Family]) -> dict[str, list[Family]]:
    """Families grouped by label set (relaxed first)."""
    groups: dict[str, list[Family]] = {}
    for family in families:
        groups.setdefault(analysis.label_kind(family.backbone), []).append(family)
    return dict(sorted(groups.items(), key=lambda g: LABEL_KINDS.index(g[0])))


def write_report(
    results: Path,
    out_dir: Path,
    *,
    threshold: float = 0.0,
    formats: Sequence[str] = FORMATS,
    log: Callable[[str], None] | None = None,
    progress: Progress | None = None,
) -> list[Path]:
    """Write the figures, their CSV tables and report.md of a results file into `out_dir`.

    threshold: the below-hull threshold, eV/atom (B_k = {c : e_k(c) < threshold}).
    Figures whose data the file lacks are skipped, said through `log` and in report.md.
    `progress(done, total)` is called after each figure and after report.md. Returns the
    written paths.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []

    def skip(message: str) -> None:
        notes.append(message)
        if log:
            log(f"skipped: {message}")

    with Results(results) as res:
        by_dopant = {
            d: [analysis.analyse_family(res, d, b, threshold) for b in res.backbones(d)]
            for d in res.dopants
        }
        energy = {d: res.energy_label(d) for d in res.dopants}
        sections: dict[tuple[str, str], list[str]] = {}
        items: list[Item] = []
        for dopant, families in by_dopant.items():
            configs = tables.Configurations(
                res.ids(dopant), res.composition(dopant), res.relaxed_into(dopant)
            )
            items += _dopant_items(
                res, dopant, families, configs, threshold, energy[dopant], sections, skip
            )
        items += _all_dopant_items(by_dopant, threshold, energy, sections)
        written = _draw(items, out_dir, formats, sections, progress)
        labels = ", ".join(sorted(set(energy.values())))
        lines = [
            f"# qcapprox report: {res.path.name}",
            "",
            f"Energies: {labels} (CHGNet values, a stand-in for DFT), eV/atom. Below-hull "
            f"threshold: predicted energy above hull < {threshold:+.3f} eV/atom. Recall against "
            "limit 24 is 1 where the limit-24 set is empty (the study's convention: a vacuous "
            "1, flagged). SimilarityScore (eq. 4) divides by the mean test target ȳ and is "
            "ill-conditioned when ȳ is near zero or negative: |RMSE_i - RMSE_j| (eV/atom) is "
            "shown with it (tables; one heatmap, a colour scale for each).",
            "",
            *tables.nothing_below(by_dopant, threshold),
            *(line for body in sections.values() for line in body),
            "## Files",
            *[f"- {p.name}" for p in written],
            "",
            "## Skipped",
            *([f"- {n}" for n in notes] or ["- nothing"]),
            "",
        ]
    index = out_dir / "report.md"
    atomic_bytes(index, "\n".join(lines).encode())
    if progress:
        progress(len(items) + 1, len(items) + 1)
    return [*written, index]


def _dopant_items(
    res: Results,
    dopant: str,
    families: list[Family],
    configs: tables.Configurations,
    threshold: float,
    energy: str,
    sections: dict[tuple[str, str], list[str]],
    skip: Callable[[str], None],
) -> list[Item]:
    """The tables (into `sections`) and figures of one dopant."""
    head = (dopant, "")
    sections[head] = [
        f"## Sc-{dopant} ({energy})",
        "",
        *tables.known_phase(dopant, families[0] if families else None, configs),
    ]
    if not families:
        skip(f"{dopant}: no predictions in {res.path.name}, no inference figures")
    if not any(f.metrics is not None for f in families):
        skip(f"{dopant}: test RMSE and SimilarityScore: the results file holds no metrics/")
    for name in sorted(set(res.metric_backbones(dopant)) - set(res.backbones(dopant))):
        skip(f"{dopant} {name}: test metrics without predictions, not analysed")
    items = []
    sizes = res.subset_sizes(dopant)
    if sizes is None:
        skip(
            f"{dopant}: training subset sizes per limit: the results file has no "
            f"{dopant}/subsets (bundle with the training stores)"
        )
    else:
        items.append(
            Item(
                head,
                f"{dopant}-subset-sizes",
                f"Sc-{dopant}: training subdataset sizes per limit",
                partial(figures.subset_sizes, dopant, sizes),
            )
        )
    for labels, group in _by_labels(families).items():
        where = (dopant, labels)
        sections[where] = [
            *tables.per_limit(dopant, labels, group),
            *tables.robustness(dopant, labels, group),
            *tables.candidates(dopant, labels, group, configs),
            *tables.configuration_ranking(labels, group, configs),
        ]
        stem, caption = f"{dopant}-{labels}", f"Sc-{dopant}, {labels} families ({energy})"
        draws: dict[str, tuple[str, Callable[[], Plot | None]]] = {
            "histogram": (
                "energies above the hull",
                partial(figures.histogram, dopant, labels, group, threshold, energy),
            ),
            "rmse": ("test RMSE per limit", partial(figures.rmse, dopant, labels, group, energy)),
            "predictions": (
                "predicted energies above the hull per limit",
                partial(figures.predictions, dopant, labels, group, threshold, energy),
            ),
            "recall": (
                "below-hull set sizes and recall against limit 24",
                partial(figures.recall, dopant, labels, group, threshold, energy),
            ),
        }
        items += [
            Item(where, f"{stem}-{kind}", f"{caption}: {text}", draw)
            for kind, (text, draw) in draws.items()
        ]
        for f in group:
            name = f"Sc-{dopant} {f.backbone} ({energy})"
            if f.metrics is not None:
                items.append(
                    Item(
                        where,
                        f"{dopant}-{f.backbone}-similarity",
                        f"{name}: SimilarityScore and |RMSE_i - RMSE_j| (one colour, both scales)",
                        partial(figures.similarity, f, energy),
                        heatmap=True,
                    )
                )
            if not f.sizes[f.valid].any():  # an all-empty heatmap says one sentence
                sections[where] += [
                    f"*{name}: every below-hull set is empty below "
                    f"{threshold:+.3f} eV/atom, no pairwise figure.*",
                    "",
                ]
                continue
            items.append(
                Item(
                    where,
                    f"{dopant}-{f.backbone}-overlap",
                    f"{name}: pairwise below-hull sets",
                    partial(figures.overlap, f, energy),
                    heatmap=True,
                )
            )
    if families:
        sections[(dopant, "~known")] = tables.reference_sets(res.parent(dopant), families)
    return items


def _all_dopant_items(
    by_dopant: dict[str, list[Family]],
    threshold: float,
    energy: dict[str, str],
    sections: dict[tuple[str, str], list[str]],
) -> list[Item]:
    """The study table (into `sections`) and the figures across dopants."""
    where = (ALL_DOPANTS, "")
    sections[where] = ["## All dopants", "", *tables.study(by_dopant, threshold)]
    labels_text = ", ".join(sorted(set(energy.values())))
    items = []
    groups: dict[str, dict[str, list[Family]]] = {}
    for dopant, families in by_dopant.items():
        for labels, group in _by_labels(families).items():
            if any(f.rmse is not None for f in group):
                groups.setdefault(labels, {})[dopant] = group
    for labels, group_by_dopant in groups.items():
        items.append(
            Item(
                where,
                f"rmse-boxplots-{labels}",
                f"{labels} families: test RMSE over the 13 limits, per dopant ({labels_text})",
                partial(figures.rmse_boxplots, labels, group_by_dopant, labels_text),
            )
        )
    names = dict.fromkeys(f.backbone for families in by_dopant.values() for f in families)
    for name in names:
        found = {d: f for d, fams in by_dopant.items() for f in fams if f.backbone == name}
        items.append(
            Item(
                where,
                f"recall-{name}",
                f"{name}: recall against the limit-24 set, per dopant ({labels_text})",
                partial(figures.recall_by_dopant, name, found, threshold),
            )
        )
    return items


def _draw(
    items: list[Item],
    out_dir: Path,
    formats: Sequence[str],
    sections: dict[tuple[str, str], list[str]],
    progress: Progress | None,
) -> list[Path]:
    """Draw and write every item, embed its first image in its section of report.md."""
    raster = [f for f in formats if f != "svg"] or list(formats)
    written: list[Path] = []
    total = len(items) + 1
    for done, item in enumerate(items, 1):
        with context():
            plot = item.draw()
        if plot is not None:
            paths = save(plot, out_dir, item.stem, raster if item.heatmap else formats)
            written += paths
            image = paths[0].name
            sections[item.section] += [f"![{item.caption}]({image})", "", f"*{item.caption}*", ""]
        if progress:
            progress(done, total)
    return written
