"""The report's Markdown tables, every number taken from `analysis.Family` (and
`analysis.robustness`, `analysis.study_comparison`): per family and limit, the
robustness ranking, each family's limit-24 candidates with what their relaxations
ended in, what ranks configurations (not only compositions), the known Sc57M13 phase
against the hull's reference sets, and the study's headline results beside ours.
Energies are CHGNet stand-in values (eV/atom), never DFT.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from qcapprox import analysis
from qcapprox.analysis import REFERENCE, Family
from qcapprox.parent import Parent
from qcapprox.results import UNMAPPABLE_TEXT, relaxation_words
from qcapprox.words import LIMITS, split_family_key

LOWER = slice(0, REFERENCE)  # limits 0-22: the ones compared with limit 24
CANDIDATES = 10  # candidates listed per family: the lowest of its limit-24 set
LOWEST_WHEN_EMPTY = 5  # listed instead when the limit-24 set is empty
RANKING_LOWEST = 50  # the set "what ranks configurations" looks at when B_24 is empty
SAME_VALUE = 1e-6  # eV/atom: predictions closer than this count as one value
COMPOSITION = "composition (A4 vac, A4 M, A5 vac, A5 M)"


@dataclass(frozen=True)
class Configurations:
    """What report.md says of a dopant's configurations besides their predictions: ids
    (n,), compositions (n, 4) counts, and what each relaxed into (`Results.relaxed_into`:
    an id, UNMAPPABLE, NOT_RELAXED; None when the results file carries no maps)."""

    ids: np.ndarray
    composition: np.ndarray
    relaxed_into: np.ndarray | None

    def composition_text(self, row: int) -> str:
        """The composition of a row as "6, 0, 0, 0"."""
        return ", ".join(str(int(c)) for c in self.composition[row])

    def relaxation(self, row: int) -> str:
        """What the row's CHGNet relaxation ended in, in words; "" when nothing is known
        (never relaxed in a bundled labelled store, or no maps in the file)."""
        if self.relaxed_into is None:
            return ""
        return relaxation_words(int(self.relaxed_into[row]), int(self.ids[row]))


def _cell(value: float, fmt: str) -> str:
    return "-" if not np.isfinite(value) else format(value, fmt)


def known_name(dopant: str) -> str:
    """The known phase's formula, Sc57M13."""
    return f"Sc57{dopant}13"


def per_limit(dopant: str, labels: str, families: Sequence[Family]) -> list[str]:
    """One row per quantity and family, one column per limit, and a mean column.

    Rows: test RMSE (eq. 3), mean signed test error (prediction - target: the bias),
    |RMSE_k - RMSE_24|, SimilarityScore against limit 24 (row 24 of eq. 4), below-hull set
    size |B_k| and recall |B_k ∩ B_24| / |B_24| (1 when B_24 is empty), and the known
    Sc57M13 phase's predicted energy above the hull and rank (1 = lowest) when the
    inference set holds it. The mean is over limits 0-22 for the rows against limit 24,
    over all limits for RMSE and bias. Missing limits show "-".
    """
    header = ["quantity", *map(str, LIMITS), "mean"]
    lines = [
        f"### {labels} families: figures per limit",
        "",
        "| " + " | ".join(header) + " |",
        "| --- |" + " ---: |" * (len(header) - 1),
    ]

    def row(name: str, values: np.ndarray, fmt: str, mean: float = np.nan) -> None:
        cells = [_cell(v, fmt) for v in values] + [_cell(mean, fmt)]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")

    mean = analysis.finite_mean
    for f in families:
        if f.rmse is None or f.bias is None or f.similarity is None or f.rmse_difference is None:
            continue
        row(f"{f.backbone} test RMSE eV/atom", f.rmse, ".4f", mean(f.rmse))
        row(f"{f.backbone} mean signed test error eV/atom", f.bias, "+.4f", mean(f.bias))
        diff = f.rmse_difference[REFERENCE]
        row(f"{f.backbone} abs(RMSE - RMSE 24) eV/atom", diff, ".4f", mean(diff[LOWER]))
        sim = f.similarity[REFERENCE]
        row(f"{f.backbone} SimilarityScore vs 24", sim, ".3f", mean(sim[LOWER]))
    for f in families:
        row(f"{f.backbone} below-hull set size", np.where(f.valid, f.sizes, np.nan), ",.0f")
        row(f"{f.backbone} recall vs 24", f.recall, ".2f", mean(f.recall[LOWER]))
    for f in families:
        if f.known_values is None or f.known_ranks is None:
            continue
        name = known_name(dopant)
        row(f"{f.backbone} {name} E above hull eV/atom", f.known_values, "+.4f")
        row(f"{f.backbone} {name} rank of {f.n:,}", f.known_ranks, ",.0f")
    return [*lines, ""]


def robustness(dopant: str, labels: str, families: Sequence[Family]) -> list[str]:
    """`analysis.robustness` as a table, most robust first: a family whose B_24 is empty
    is ranked last and flagged (its recall of 1 is vacuous)."""
    ranked = analysis.robustness(list(families))
    name = known_name(dopant)
    lines = [
        f"### {labels} families: robustness (most robust first)",
        "",
        "Recall and SimilarityScore of limits 0-22 against limit 24; |dRMSE| = "
        f"|RMSE_k - RMSE_24|, eV/atom; {name} rank at limit 24 (1 = lowest).",
        "",
        f"| rank | family | B24 size | mean recall | min recall | mean SimilarityScore "
        f"| mean abs dRMSE | {name} rank at 24 | note |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for k, r in enumerate(ranked, 1):
        note = "B24 empty: recall 1 by convention, says nothing" if r.vacuous else ""
        cells = [
            str(k),
            r.backbone,
            f"{r.reference_size:,}",
            _cell(r.mean_recall, ".3f"),
            _cell(r.min_recall, ".3f"),
            _cell(r.mean_similarity, ".4f"),
            _cell(r.mean_rmse_difference, ".4f"),
            _cell(r.known_rank, ",.0f"),
            note,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return [*lines, ""]


def reference_sets(parent: Parent, families: Sequence[Family]) -> list[str]:
    """Where the known Sc57M13 phase sits against each reference set of the hull
    (`qcapprox.hull.REFERENCE_SETS`): each family's limit-24 prediction (made against the
    full set) rebased onto every set, E_hull' = E_hull + H(x) - H'(x)."""
    from qcapprox.errors import HullError
    from qcapprox.hull import REFERENCE_SETS, Hull

    known = [f for f in families if f.known_values is not None]
    if not known:
        return []
    try:
        hulls = {name: Hull.load(parent.dopant, references=name) for name in REFERENCE_SETS}
    except HullError:
        return []  # no reference file here to rebase with
    n_host, n_dop = (int(c[0]) for c in parent.formula_counts(parent.known_phase()))
    full = hulls["full"]
    lines = [
        f"{known_name(parent.dopant)} against the hull's reference sets (limit-24 "
        "predictions, eV/atom; "
        + "; ".join(f"{n}: {', '.join(h.stable_names)}" for n, h in hulls.items())
        + "):",
        "",
        "| family | " + " | ".join(hulls) + " |",
        "| --- |" + " ---: |" * len(hulls),
    ]
    for f in known:
        assert f.known_values is not None
        value = f.known_values[REFERENCE]
        cells = [f"{float(full.rebase(value, n_host, n_dop, h)):+.4f}" for h in hulls.values()]
        lines.append(f"| {f.backbone} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def nothing_below(by_dopant: Mapping[str, Sequence[Family]], threshold: float) -> list[str]:
    """A paragraph per label set whose families all put no configuration below the
    threshold at limit 24: their recalls are vacuous, and the study's screen also keeps
    "slightly positive" energies (`analysis.SLIGHTLY_POSITIVE`)."""
    empty: dict[str, bool] = {}
    for families in by_dopant.values():
        for f in families:
            labels = analysis.label_kind(f.backbone)
            empty[labels] = empty.get(labels, True) and f.reference_empty
    lines = []
    for labels, is_empty in sorted(empty.items()):
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


def study(by_dopant: Mapping[str, Sequence[Family]], threshold: float) -> list[str]:
    """`analysis.study_comparison` as one table per set-up of the families (relaxed,
    single-point, ...): the study's headline results (DFT) beside ours (CHGNet stand-in
    labels), with a verdict."""
    # set-up -> (rmse, recall, empty)[dopant][backbone]
    groups: dict[str, tuple[dict, dict, dict]] = {}
    for dopant, families in by_dopant.items():
        for f in families:
            backbone, setup = split_family_key(f.backbone)
            rmse_of, recall_of, empty_of = groups.setdefault(setup, ({}, {}, {}))
            if f.rmse is not None:
                rmse_of.setdefault(dopant, {})[backbone] = f.rmse
            recall_of.setdefault(dopant, {})[backbone] = f.recall
            empty_of.setdefault(dopant, {})[backbone] = f.reference_empty
    lines = []
    for setup, (rmse_of, recall_of, empty_of) in sorted(groups.items()):
        lines += [
            f"### The study's headline results beside ours ({setup} families)",
            "",
            f"The study's figures are DFT; ours are models trained on CHGNet {setup} labels, "
            f"a stand-in for DFT. Recall at threshold {threshold:+.3f} eV/atom. Test RMSE: "
            "the mean over limits counts as the same as the study's within a factor of "
            f"{analysis.SAME_SCALE}.",
            "",
            "| the study | its figure | ours | verdict |",
            "| --- | --- | --- | --- |",
            *(
                f"| {f.claim} | {f.study} | {f.ours} | {f.verdict} |"
                for f in analysis.study_comparison(rmse_of, recall_of, empty_of)
            ),
            "",
        ]
    return lines


def known_phase(dopant: str, family: Family | None, configs: Configurations) -> list[str]:
    """Which configuration the known Sc57M13 phase is, and what its CHGNet relaxation
    ended in when a bundled labelled store relaxed it."""
    if family is None or family.known is None:
        return []
    row = family.known
    relaxed = configs.relaxation(row)
    said = {"": ".", UNMAPPABLE_TEXT: f"; its {UNMAPPABLE_TEXT}."}.get(relaxed, f"; it {relaxed}.")
    return [
        f"The known {known_name(dopant)} phase is configuration {int(configs.ids[row])} "
        f"({COMPOSITION}: {configs.composition_text(row)}){said}",
        "",
    ]


def _lowest(family: Family, rows: np.ndarray) -> np.ndarray:
    """`rows` ordered by the limit-24 prediction (lowest first, ties by row)."""
    values = family.predictions[REFERENCE, rows]
    return rows[np.argsort(values, kind="stable")]


def _reference_rows(family: Family, when_empty: int) -> tuple[np.ndarray, bool]:
    """The rows of the family's limit-24 below-hull set, or (when the set is empty, said by
    the flag) its `when_empty` lowest limit-24 predictions."""
    below = np.flatnonzero(family.masks[REFERENCE])
    if below.size:
        return below, False
    return _lowest(family, np.arange(family.n))[:when_empty], True


def candidates(
    dopant: str, labels: str, families: Sequence[Family], configs: Configurations
) -> list[str]:
    """Each family's candidates: the lowest `CANDIDATES` of its limit-24 below-hull set
    (or its `LOWEST_WHEN_EMPTY` lowest predictions when the set is empty), with their
    composition, prediction, the limits whose sets hold them, and what their CHGNet
    relaxation ended in (kept its identity, relaxed into another configuration,
    unmappable, or nothing known)."""
    name = known_name(dopant)
    lines = [
        f"### {labels} families: candidates at limit 24",
        "",
        f"Each family's {CANDIDATES} lowest limit-24 predictions inside its below-hull set "
        f"B_24 (its {LOWEST_WHEN_EMPTY} lowest predictions when B_24 is empty, marked), "
        "eV/atom; *limits*: how many limits' sets hold it; *relaxation*: what the "
        "configuration's CHGNet relaxation in a bundled labelled store ended in (empty: "
        "never relaxed there).",
        "",
    ]
    if configs.relaxed_into is None:
        lines += [
            "*This results file carries no relaxation maps: bundle it with the labelled "
            "training stores to see which candidates relax into another configuration.*",
            "",
        ]
    lines += [
        f"| family | rank at 24 | configuration | {COMPOSITION} | E above hull at 24 "
        "| limits | relaxation |",
        "| --- | ---: | ---: | --- | ---: | ---: | --- |",
    ]
    for f in families:
        if not f.valid[REFERENCE]:
            lines.append(f"| {f.backbone} | - | no limit-24 model | | | | |")
            continue
        rows, empty = _reference_rows(f, LOWEST_WHEN_EMPTY)
        for row in rows if empty else _lowest(f, rows)[:CANDIDATES]:
            rank = analysis.ranks(f.predictions[REFERENCE], int(row))[0]
            known = f" ({name})" if f.known is not None and row == f.known else ""
            where = f"{int(f.masks[f.valid, row].sum())}/{int(f.valid.sum())}"
            lines.append(
                f"| {f.backbone}{' (B24 empty)' if empty else ''} | {rank:,.0f} "
                f"| {int(configs.ids[row])}{known} | {configs.composition_text(row)} "
                f"| {f.predictions[REFERENCE, row]:+.4f} | {where} "
                f"| {configs.relaxation(row)} |"
            )
    return [*lines, ""]


def distinct_values(values: np.ndarray, groups: np.ndarray) -> tuple[int, int, int]:
    """Over the groups (compositions) with more than one member: (number of such groups,
    members in them, distinct values in them summed over groups). Values closer than
    `SAME_VALUE` are one value (sorted, a new value where the gap exceeds it)."""
    multi = members = distinct = 0
    for group in np.unique(groups):
        inside = np.sort(values[groups == group])
        if inside.size < 2:
            continue
        multi += 1
        members += inside.size
        distinct += 1 + int((np.diff(inside) > SAME_VALUE).sum())
    return multi, members, distinct


def configuration_ranking(
    labels: str, families: Sequence[Family], configs: Configurations
) -> list[str]:
    """What ranks configurations: inside each family's limit-24 below-hull set (or its
    `RANKING_LOWEST` lowest predictions when the set is empty), the compositions with more
    than one configuration and the distinct values the family predicts inside them. A
    family that gives every configuration of a composition the same value ranks
    compositions only."""
    lines = [
        f"### {labels} families: what ranks configurations",
        "",
        f"Inside each family's limit-24 below-hull set (its {RANKING_LOWEST} lowest "
        "limit-24 predictions when the set is empty): the compositions holding more than "
        "one of its configurations, and how many distinct values (apart by more than "
        f"{SAME_VALUE * 1e6:g} µeV/atom) the family predicts inside them. A family that gives "
        "every configuration of a composition the same value ranks compositions only: "
        "its order inside a composition says nothing.",
        "",
        "| family | set | configurations | compositions | with more than one configuration "
        "| their configurations | distinct values in them | verdict |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for f in families:
        if not f.valid[REFERENCE]:
            lines.append(f"| {f.backbone} | no limit-24 model | | | | | | |")
            continue
        rows, empty = _reference_rows(f, RANKING_LOWEST)
        which = (
            f"{RANKING_LOWEST} lowest (B_24 empty)" if empty else f"B_24 (E < {f.threshold:+.3f})"
        )
        _, groups = np.unique(configs.composition[rows], axis=0, return_inverse=True)
        groups = groups.ravel()
        multi, members, distinct = distinct_values(f.predictions[REFERENCE, rows], groups)
        if multi == 0:
            verdict = "no composition with several configurations"
        elif distinct == multi:
            verdict = "ranks compositions only"
        elif distinct == members:
            verdict = "ranks configurations"
        else:
            verdict = f"partly: {members - distinct:,} configurations share a value"
        cells = [
            f.backbone,
            which,
            f"{rows.size:,}",
            f"{int(groups.max(initial=-1)) + 1:,}",
            f"{multi:,}",
            f"{members:,}",
            f"{distinct:,}",
            verdict,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return [*lines, ""]
