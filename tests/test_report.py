"""Report figures: written as PNG and SVG, labelled as CHGNet stand-in values, sized for
print, with the numbers of the analysis (checked through the CSV tables written beside
the figures); empty sets are said to be empty and nothing warns.
"""

from __future__ import annotations

import csv
import re
import warnings
from itertools import pairwise
from pathlib import Path

import h5py
import matplotlib.image
import numpy as np
import pytest
from resultsdata import FAMILIES as RESULTS_FAMILIES
from resultsdata import build_store, training_store

from qcapprox import analysis
from qcapprox.report import style, write_report
from qcapprox.results import LIMITS, Results, bundle

#: The test families: two relaxed ones (allegro without limit 10) and a single-point one.
FAMILIES = {**RESULTS_FAMILIES, "rf-single-point": ()}


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[Path, Path, list[Path], list[str]]:
    directory = tmp_path_factory.getbasetemp() / "report-results"
    directory.mkdir(exist_ok=True)
    results = bundle(
        {"Pt": build_store(directory, "Pt", FAMILIES)},
        directory / "report-results.h5",
        training={"Pt": training_store(directory, "Pt")},
    )
    out = tmp_path_factory.mktemp("report")
    messages: list[str] = []
    paths = write_report(results, out, log=messages.append)
    return results, out, paths, messages


@pytest.fixture(scope="module")
def svg_report(tmp_path_factory, report) -> tuple[Path, list[Path], list[tuple[int, int]]]:
    """The same report in SVG only (heatmaps included), with its progress calls."""
    out = tmp_path_factory.mktemp("svg-report")
    calls: list[tuple[int, int]] = []
    paths = write_report(
        report[0], out, formats=("svg",), progress=lambda done, total: calls.append((done, total))
    )
    return out, paths, calls


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path) as handle:
        return list(csv.DictReader(handle))


LINE_FIGURES = (
    "Pt-subset-sizes",
    "Pt-relaxed-histogram",
    "Pt-relaxed-rmse",
    "Pt-relaxed-predictions",
    "Pt-relaxed-recall",
    "Pt-single-point-histogram",
    "Pt-single-point-recall",
    "rmse-boxplots-relaxed",
    "rmse-boxplots-single-point",
    "recall-rf",
    "recall-allegro",
    "recall-rf-single-point",
)
HEATMAPS = tuple(f"Pt-{family}-{kind}" for family in FAMILIES for kind in ("similarity", "overlap"))


def test_figures_written(report) -> None:
    """Line and box figures in PNG and SVG, heatmaps (an image) in PNG only, every one
    with its CSV; relaxed and single-point families in separate figures."""
    _, out, paths, messages = report
    names = {p.name for p in paths}
    for stem in LINE_FIGURES:
        assert {f"{stem}.png", f"{stem}.svg", f"{stem}.csv"} <= names, stem
    for stem in HEATMAPS:
        assert {f"{stem}.png", f"{stem}.csv"} <= names and f"{stem}.svg" not in names, stem
    assert all(p.exists() and p.parent == out for p in paths)
    image = matplotlib.image.imread(out / "Pt-rf-overlap.png")
    assert image.ndim == 3 and image.shape[0] > 500
    svg = (out / "Pt-relaxed-rmse.svg").read_text()
    assert "CHGNet stand-in labels" in svg and "DFT" not in svg
    assert {r["backbone"] for r in read_csv(out / "Pt-relaxed-rmse.csv")} == {"rf", "allegro"}
    single = {r["backbone"] for r in read_csv(out / "Pt-single-point-recall.csv")}
    assert single == {"rf-single-point"}
    assert messages == []  # nothing skipped
    text = (out / "report.md").read_text()
    assert "- nothing" in text
    for path in paths:  # report.md embeds every figure once, as PNG
        if path.suffix == ".png":
            assert f"]({path.name})" in text, path.name
    captions = re.findall(r"!\[([^\]]*)\]", text)
    assert all("CHGNet stand-in labels" in c for c in captions if "subdataset" not in c)
    assert "DFT" not in " ".join(captions)


def test_files_complete(report, svg_report) -> None:
    """Every file the report returns is whole: images decode, SVGs parse, CSV tables have
    their rows; no temporary file is left."""
    from xml.etree import ElementTree

    for out, paths in ((report[1], report[2]), (svg_report[0], svg_report[1])):
        assert sorted(out.iterdir()) == sorted(paths)
        for path in paths:
            if path.suffix == ".png":
                assert matplotlib.image.imread(path).size
            elif path.suffix == ".svg":
                assert ElementTree.parse(path).getroot().tag.endswith("svg")
            elif path.suffix == ".csv":
                assert read_csv(path), path.name
        assert paths[-1].name == "report.md"


def test_progress_counts_up_to_total(svg_report) -> None:
    """progress(done, total): once per figure and once for report.md, done increasing by
    one up to total."""
    _, paths, calls = svg_report
    total = calls[0][1]
    assert [done for done, _ in calls] == list(range(1, total + 1))
    assert {t for _, t in calls} == {total}
    figures = {p.stem for p in paths if p.suffix == ".svg"}
    assert total == len(figures) + 1


def test_interrupted_report_leaves_no_partial_file(tmp_path: Path, report, monkeypatch) -> None:
    """A report that fails midway (here the 7th figure cannot be rendered) leaves only
    whole files behind, and no report.md."""
    calls = {"n": 0}
    render = style.figure_bytes

    def failing(figure, fmt: str) -> bytes:
        calls["n"] += 1
        if calls["n"] == 7:
            raise KeyboardInterrupt  # as a user pressing Ctrl-C
        return render(figure, fmt)

    monkeypatch.setattr(style, "figure_bytes", failing)
    with pytest.raises(KeyboardInterrupt):
        write_report(report[0], tmp_path, formats=("png", "svg"))
    left = sorted(tmp_path.iterdir())
    assert left and not (tmp_path / "report.md").exists()
    assert not [p for p in left if p.suffix not in (".png", ".svg", ".csv")]
    for path in left:
        if path.suffix == ".png":
            assert matplotlib.image.imread(path).size
        elif path.suffix == ".csv":
            assert read_csv(path)
    stems = {p.stem for p in left}
    assert all((tmp_path / f"{stem}.csv").exists() for stem in stems)


def test_readable_at_print_size(report, svg_report) -> None:
    """At most 7.2 in wide (a printed page) and no text below 6.5 pt at that size, in the
    line figures and in the heatmaps (written as SVG on request)."""
    svgs = [p for p in report[2] + svg_report[1] if p.suffix == ".svg"]
    assert {p.stem for p in svgs} >= set(HEATMAPS)
    for path in svgs:
        svg = path.read_text()
        width = float(re.search(r'width="([\d.]+)pt"', svg).group(1))
        assert width <= 7.2 * 72 + 1, path.name
        sizes = [float(x) for x in re.findall(r"font-size: ([\d.]+)px", svg)]
        assert sizes and min(sizes) >= 6.5, (path.name, min(sizes))
    overlap = (svg_report[0] / "Pt-rf-overlap.svg").read_text()
    size = read_csv(svg_report[0] / "Pt-rf-overlap.csv")[0]["both"]  # |B_0|, on the diagonal
    assert f">{size}</text>" in overlap  # the numbers are written in the cells


def test_empty_sets_said_and_no_warnings(tmp_path: Path, report) -> None:
    results, _, _, _ = report
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        paths = write_report(results, tmp_path, threshold=-1.0, formats=("svg",))
    assert not (tmp_path / "Pt-rf-overlap.svg").exists()  # one sentence in report.md
    predictions = (tmp_path / "Pt-relaxed-predictions.svg").read_text()
    assert "empty: no configuration below the threshold" in predictions
    recall = (tmp_path / "Pt-relaxed-recall.svg").read_text()
    assert "B24 empty" in recall and "recall 1 by convention" in recall
    values = {r["recall_vs_24"] for r in read_csv(tmp_path / "Pt-relaxed-recall.csv")}
    assert values == {"1.0", "nan"}  # nan: allegro has no limit 10
    text = (tmp_path / "report.md").read_text()
    assert "the study's convention" in text and len(paths) > 10
    assert "Sc-Pt rf (CHGNet stand-in labels): every below-hull set is empty below" in text


def test_numbers_equal_independent_counts(report) -> None:
    results, out, _, _ = report
    with Results(results) as res:
        pred = res.predictions("Pt", "rf")
        mult = res.multiplicity("Pt")
        metrics = res.metrics("Pt", "allegro")
    sets = [set(np.flatnonzero(pred[k] < 0).tolist()) for k in range(13)]
    rows = read_csv(out / "Pt-rf-overlap.csv")
    assert len(rows) == 169
    for row in rows:
        i, j = LIMITS.index(int(row["limit_i"])), LIMITS.index(int(row["limit_j"]))
        assert int(row["both"]) == len(sets[i] & sets[j])
        assert float(row["jaccard"]) == pytest.approx(
            len(sets[i] & sets[j]) / len(sets[i] | sets[j])
        )
    recall = [r for r in read_csv(out / "Pt-relaxed-recall.csv") if r["backbone"] == "rf"]
    for k, row in enumerate(recall):
        assert float(row["below_hull"]) == len(sets[k])
        assert float(row["below_hull_weighted"]) == sum(int(mult[c]) for c in sets[k])
        assert float(row["recall_vs_24"]) == pytest.approx(len(sets[k] & sets[12]) / len(sets[12]))
    rmse = [r for r in read_csv(out / "Pt-relaxed-rmse.csv") if r["backbone"] == "allegro"]
    for k, row in enumerate(rmse):
        expected = np.sqrt(np.mean((metrics.test_predictions[k] - metrics.test_target) ** 2))
        if k == 5:  # allegro has no limit 10
            assert row["test_rmse_eV_per_atom"] == "nan"
        else:
            assert float(row["test_rmse_eV_per_atom"]) == pytest.approx(expected)


def test_subset_sizes_from_training_store(report) -> None:
    results, out, _, _ = report
    training = results.parent / "training-pt.h5"

    with h5py.File(training) as handle:
        a5 = handle["configs/composition"][:, 2] + handle["configs/composition"][:, 3]
        split = handle["split"][:]
    for row in read_csv(out / "Pt-subset-sizes.csv"):
        limit = int(row["limit"])
        for name, code in (("train", 0), ("validation", 1), ("test", 2)):
            assert int(row[name]) == sum(
                1 for d, s in zip(a5, split, strict=True) if d <= limit and s == code
            )
    with Results(results) as res:
        sizes = res.subset_sizes("Pt")
        used = sizes["train"][-1] + sizes["validation"][-1] + sizes["test"][-1]
        assert used == int(np.isin(split, (0, 1, 2)).sum()) <= sizes["total"][-1]


def test_missing_data_is_skipped_and_said(tmp_path: Path, report) -> None:
    results, _, _, _ = report
    store = results.parent / "sc60pt13.h5"
    bare = bundle({"Pt": store}, tmp_path / "bare.h5")  # no training store

    with h5py.File(bare, "r+") as handle:  # and no metrics of any family
        del handle["Pt/metrics"]
    messages: list[str] = []
    paths = write_report(bare, tmp_path / "out", formats=("svg",), log=messages.append)
    names = {p.name for p in paths}
    assert "Pt-subset-sizes.svg" not in names and "Pt-relaxed-rmse.svg" not in names
    assert "Pt-rf-overlap.svg" in names and "Pt-relaxed-recall.svg" in names
    assert any("subset sizes" in m and "skipped" in m for m in messages)
    assert any("test RMSE" in m for m in messages)
    text = (tmp_path / "out" / "report.md").read_text()
    assert "training subset sizes per limit" in text


def test_family_table_in_report_md(report) -> None:
    results, out, _, _ = report
    text = (out / "report.md").read_text()
    rows = {
        line.split(" | ")[0].strip("| "): line.strip("| ").split(" | ")[1:]
        for line in text.splitlines()
        if line.startswith("| ") and not line.startswith("| quantity")
    }
    with Results(results) as res:
        pred = res.predictions("Pt", "allegro")
        metrics = res.metrics("Pt", "rf")
    sets = [set(np.flatnonzero(pred[k] < 0).tolist()) for k in range(13)]
    recall = rows["allegro recall vs 24"]
    sizes = rows["allegro below-hull set size"]
    for k in range(13):
        if k == 5:  # allegro has no limit 10
            assert recall[k] == sizes[k] == "-"
            continue
        assert float(recall[k]) == pytest.approx(len(sets[k] & sets[12]) / len(sets[12]), abs=5e-3)
        assert int(sizes[k].replace(",", "")) == len(sets[k])
    rmse = np.sqrt(np.mean((metrics.test_predictions - metrics.test_target) ** 2, axis=1))
    diff = rows["rf abs(RMSE - RMSE 24) eV/atom"]
    for k in range(13):
        assert float(diff[k]) == pytest.approx(abs(rmse[k] - rmse[12]), abs=5e-5)
    sim = rows["rf SimilarityScore vs 24"]
    expected = 1 - np.abs(rmse - rmse[12]) / np.mean(metrics.test_target)
    for k in range(13):
        assert float(sim[k]) == pytest.approx(expected[k], abs=5e-4)
    assert float(sim[13]) == pytest.approx(expected[:12].mean(), abs=5e-4)
    assert float(diff[13]) == pytest.approx(np.abs(rmse - rmse[12])[:12].mean(), abs=5e-5)
    assert float(rows["rf test RMSE eV/atom"][-1]) == pytest.approx(rmse.mean(), abs=5e-5)
    bias = np.mean(metrics.test_predictions - metrics.test_target, axis=1)
    signed = rows["rf mean signed test error eV/atom"]
    for k in range(13):
        assert float(signed[k]) == pytest.approx(bias[k], abs=5e-5)


def test_similarity_boxplots_and_predictions_csv(report) -> None:
    results, out, _, _ = report
    with Results(results) as res:
        pred = res.predictions("Pt", "allegro")
        metrics = {b: res.metrics("Pt", b) for b in ("rf", "allegro")}
    rmse = {
        b: np.sqrt(np.mean((m.test_predictions - m.test_target) ** 2, axis=1))
        for b, m in metrics.items()
    }
    for row in read_csv(out / "Pt-rf-similarity.csv"):
        i, j = LIMITS.index(int(row["limit_i"])), LIMITS.index(int(row["limit_j"]))
        diff = abs(rmse["rf"][i] - rmse["rf"][j])
        assert float(row["abs_rmse_difference_eV_per_atom"]) == pytest.approx(diff)
        mean = metrics["rf"].test_target.mean()
        assert float(row["similarity_score"]) == pytest.approx(1 - diff / mean)
    boxes = {
        r["backbone"]: r for r in read_csv(out / "rmse-boxplots-relaxed.csv") if r["dopant"] == "Pt"
    }
    allegro = rmse["allegro"][np.isfinite(rmse["allegro"])]
    assert int(boxes["allegro"]["n_limits"]) == 12  # no limit 10
    assert float(boxes["allegro"]["median"]) == pytest.approx(np.median(allegro))
    assert float(boxes["rf"]["q3"]) == pytest.approx(np.percentile(rmse["rf"], 75))
    rows = [r for r in read_csv(out / "Pt-relaxed-predictions.csv") if r["backbone"] == "allegro"]
    assert [int(r["limit"]) for r in rows] == [x for x in LIMITS if x != 10]
    for row in rows:
        k = LIMITS.index(int(row["limit"]))
        assert float(row["median"]) == pytest.approx(np.median(pred[k]))
        assert int(row["below_hull"]) == int((pred[k] < 0).sum())
    hist = [r for r in read_csv(out / "Pt-relaxed-histogram.csv") if r["series"].startswith("rf")]
    with Results(results) as res:
        rf24 = res.predictions("Pt", "rf")[12]
    assert sum(int(r["count"]) for r in hist) == len(rf24)


def test_known_phase_in_report_md(report) -> None:
    """The report gives each family's prediction and rank of the known Sc57Pt13 phase: the
    row of the bundled Sc57Pt13 structure, its predicted value and its rank by hand."""
    from bisect import bisect_left

    from ase.io import read

    from qcapprox.enumeration import Enumerator
    from qcapprox.paths import PARENTS_DIR

    results, out, _, _ = report
    text = (out / "report.md").read_text()
    rows = {
        line.split(" | ")[0].strip("| "): line.strip("| ").split(" | ")[1:]
        for line in text.splitlines()
        if line.startswith("| ")
    }
    with Results(results) as res:
        parent = res.parent("Pt")
        enumerator = Enumerator.from_parent(parent)
        canonical, _ = enumerator.canonicalize(
            parent.identify(read(PARENTS_DIR / "sc57m13_Pt.cif"))
        )
        row = res.known_phase_row("Pt")
        assert res.ids("Pt")[row] == enumerator.ids(canonical)[0]
        pred = res.predictions("Pt", "allegro")
    n = pred.shape[1]
    energy, rank = (
        rows["allegro Sc57Pt13 E above hull eV/atom"],
        rows[f"allegro Sc57Pt13 rank of {n:,}"],
    )
    for k in range(13):
        if k == 5:  # allegro has no limit 10
            assert energy[k] == rank[k] == "-"
            continue
        assert float(energy[k]) == pytest.approx(pred[k, row], abs=5e-5)
        assert int(rank[k].replace(",", "")) == bisect_left(sorted(pred[k]), pred[k, row]) + 1


def test_study_comparison_in_report_md(report) -> None:
    """report.md sets the study's headline results beside the families', with figures
    recomputed here from the predictions and the stored test metrics."""
    results, out, _, _ = report
    text = (out / "report.md").read_text()
    assert "### The study's headline results beside ours (relaxed families)" in text
    rows = {
        line.strip("| ").split(" | ")[0]: line.strip("| ").split(" | ")[1:]
        for line in text.split("headline results")[1].splitlines()
        if line.startswith("| ")
    }
    with Results(results) as res:
        pred = res.predictions("Pt", "rf")
        metrics = res.metrics("Pt", "rf")
    sets = [set(np.flatnonzero(pred[k] < 0).tolist()) for k in range(13)]
    full = sum(sets[k] >= sets[12] for k in range(12))  # recall 1: B_24 inside B_k
    assert rows["Random Forest recall vs limit 24"][1].startswith(f"Pt {full}/12 limits")
    rmse = np.sqrt(np.mean((metrics.test_predictions - metrics.test_target) ** 2, axis=1))
    assert rows["Random Forest test RMSE (eV/atom)"][1] == f"Pt rf {rmse.mean():.4f}"
    assert rows["gradient boosting test RMSE (eV/atom)"][1:] == ["-", "no data"]


def test_nothing_below_the_threshold_is_said(report, tmp_path) -> None:
    """When no family puts a configuration below the threshold at limit 24, report.md says
    that the recalls are 1 by convention and names the slightly positive threshold; at a
    threshold that leaves sets, it does not."""
    results, out, _, _ = report
    assert "No family trained on" not in (out / "report.md").read_text()
    with Results(results) as res:
        lowest = min(np.nanmin(res.predictions("Pt", b)[12]) for b in res.backbones("Pt"))
    write_report(results, tmp_path, threshold=lowest - 1e-6, formats=("svg",))
    text = (tmp_path / "report.md").read_text()
    assert "No family trained on relaxed labels predicts a configuration below" in text
    assert "--threshold 0.02" in text
    assert "rf B24 empty: recall 1 by the study's convention" in text


def test_known_phase_against_the_reference_sets(report) -> None:
    """The report's reference-set table: each family's limit-24 value of the known phase
    against the full set (as predicted) and rebased onto the reported types only."""
    from qcapprox.hull import Hull

    results, out, _, _ = report
    lines = (out / "report.md").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if "against the hull's reference sets" in line)
    table = {
        line.split(" | ")[0].strip("| "): line.strip("| ").split(" | ")[1:]
        for line in lines[start + 2 :]
        if line.startswith("| ") and not line.startswith("| ---")
    }
    with Results(results) as res:
        row = res.known_phase_row("Pt")
        value = res.predictions("Pt", "rf")[12, row]
    full, reported = Hull.load("Pt"), Hull.load("Pt", references="reported")
    x = 26 / 140  # Sc114Pt26: six A4 vacancies
    assert float(table["rf"][0]) == pytest.approx(value, abs=5e-5)
    shift = full.hull_energy(x) - reported.hull_energy(x)
    assert float(table["rf"][1]) == pytest.approx(value + shift, abs=5e-5)
    assert shift < 0  # the full set's hull is lower at Sc57Pt13's composition


def table(text: str, heading: str) -> list[list[str]]:
    """The rows (cells) of the Markdown table under `heading` in report.md."""
    lines = text.split(heading, 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| "))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("| "):
            break
        rows.append(line[2:-2].split(" | "))
    return rows


def test_report_numbers_are_the_family_analysis(report) -> None:
    """report.md's tables show exactly analysis.Family's numbers (bias, set sizes, recall,
    the known phase's value and rank) and analysis.robustness's ranking, with vacuous
    limit-24 sets flagged."""
    results, out, _, _ = report
    text = (out / "report.md").read_text()
    with Results(results) as res:
        families = {b: analysis.analyse_family(res, "Pt", b, 0.0) for b in res.backbones("Pt")}
    rows = {r[0]: r[1:] for r in table(text, "### relaxed families: figures per limit")}
    rows |= {r[0]: r[1:] for r in table(text, "### single-point families: figures per limit")}

    def same(cells: list[str], values: np.ndarray, digits: int) -> None:
        for cell, value in zip(cells, values, strict=True):
            if np.isfinite(value):
                assert float(cell.replace(",", "")) == pytest.approx(value, abs=10**-digits)
            else:
                assert cell == "-"

    for name, f in families.items():
        same(rows[f"{name} mean signed test error eV/atom"][:13], f.bias, 4)
        same(rows[f"{name} test RMSE eV/atom"][:13], f.rmse, 4)
        same(rows[f"{name} recall vs 24"][:13], f.recall, 2)
        same(rows[f"{name} below-hull set size"][:13], np.where(f.valid, f.sizes, np.nan), 0)
        same(rows[f"{name} Sc57Pt13 E above hull eV/atom"][:13], f.known_values, 4)
        same(rows[f"{name} Sc57Pt13 rank of {f.n:,}"][:13], f.known_ranks, 0)
    ranked = table(text, "### relaxed families: robustness")
    expected = analysis.robustness([families["rf"], families["allegro"]])
    assert [r[1] for r in ranked] == [e.backbone for e in expected]
    for cells, r in zip(ranked, expected, strict=True):
        assert int(cells[2].replace(",", "")) == r.reference_size
        assert float(cells[3]) == pytest.approx(r.mean_recall, abs=1e-3)
        assert float(cells[7].replace(",", "")) == r.known_rank
        assert ("B24 empty" in cells[8]) == r.vacuous


def test_vacuous_recall_flagged_in_robustness(tmp_path: Path, report) -> None:
    """At a threshold where only some limit-24 sets are empty, those families are ranked
    last in the robustness table and flagged; their recall lines are marked as vacuous."""
    results = report[0]
    with Results(results) as res:
        low = {b: float(np.nanmin(res.predictions("Pt", b)[12])) for b in ("rf", "allegro")}
    threshold = (low["rf"] + low["allegro"]) / 2  # B24 empty for the higher one only
    write_report(results, tmp_path, threshold=threshold, formats=("svg",))
    ranked = table((tmp_path / "report.md").read_text(), "### relaxed families: robustness")
    empty = max(low, key=low.get)
    assert ranked[-1][1] == empty and "B24 empty" in ranked[-1][8]
    assert "B24 empty" not in ranked[0][8]
    recall = (tmp_path / "Pt-relaxed-recall.svg").read_text()
    assert f"{empty}, B24 empty" in recall and "recall 1 by convention" in recall


@pytest.fixture(scope="module")
def mapped(tmp_path_factory, report) -> tuple[Path, Path, np.ndarray]:
    """A copy of the test results file that says what configurations relaxed into (row r:
    r % 4 == 0 kept its identity, 1 relaxed into the next row's configuration, 2
    unmappable, 3 never relaxed; the known phase kept its identity) and whose rf family
    gives every configuration of a composition the same limit-24 value (its mean over the
    composition, as descriptors blind inside a composition do), with its report."""
    from qcapprox.mapping import UNMAPPABLE
    from qcapprox.results import NOT_RELAXED

    directory = tmp_path_factory.mktemp("mapped")
    results = directory / "mapped.h5"
    results.write_bytes(report[0].read_bytes())
    with Results(report[0]) as res:
        ids = res.ids("Pt")
        composition = res.composition("Pt")
        known = res.known_phase_row("Pt")
        rf24 = res.predictions("Pt", "rf")[12]
    rows = np.arange(len(ids))
    into = np.select(
        [rows % 4 == 0, rows % 4 == 1, rows % 4 == 2],
        [ids, np.roll(ids, -1), np.full(len(ids), UNMAPPABLE)],
        NOT_RELAXED,
    ).astype(np.int64)
    into[known] = ids[known]
    groups: dict[tuple, list[int]] = {}
    for row, counts in enumerate(composition.tolist()):
        groups.setdefault(tuple(counts), []).append(row)
    blind = rf24.copy()
    for members in groups.values():
        blind[members] = rf24[members].mean()
    with h5py.File(results, "r+") as handle:
        handle["Pt/relaxed_into"] = into
        handle["Pt/predictions/rf/limit-24"][...] = blind
    out = directory / "report"
    write_report(results, out, formats=("svg",))
    return results, out, into


def relaxation_words(config_id: int, into: int) -> str:
    """What report.md must say of a configuration's relaxation (written out here)."""
    if into == -2:
        return ""
    if into == -1:
        return "relaxation unmappable"
    if into == config_id:
        return "kept its identity in its CHGNet relaxation"
    return f"relaxed into configuration {into}"


def test_candidates_say_what_they_relaxed_into(mapped) -> None:
    """Every listed candidate's relaxation cell says what /Pt/relaxed_into holds for it,
    and the known phase's sentence says it kept its identity."""
    results, out, into = mapped
    text = (out / "report.md").read_text()
    with Results(results) as res:
        row_of = {int(c): r for r, c in enumerate(res.ids("Pt"))}
        known = int(res.ids("Pt")[res.known_phase_row("Pt")])
        composition = res.composition("Pt")
    seen = set()
    for heading in ("relaxed families", "single-point families"):
        rows = table(text, f"### {heading}: candidates at limit 24")
        assert rows
        for cells in rows:
            config = int(cells[2].split()[0])
            expected = relaxation_words(config, int(into[row_of[config]]))
            assert cells[6].strip() == expected, cells
            assert cells[3] == ", ".join(map(str, composition[row_of[config]])), cells
            seen.add(expected.split(" configuration")[0] if expected else "")
    assert {"", "relaxation unmappable", "relaxed into"} <= seen  # the kinds are exercised
    assert "kept its identity in its CHGNet relaxation" in seen
    assert (
        f"The known Sc57Pt13 phase is configuration {known} (composition (A4 vac, A4 M, "
        "A5 vac, A5 M): 6, 0, 0, 0); it kept its identity in its CHGNet relaxation." in text
    )
    assert "carries no relaxation maps" not in text


def test_candidates_are_each_familys_lowest_limit_24_set(mapped) -> None:
    """The candidates of a family are the 10 lowest of its limit-24 set, lowest first,
    with their rank, value and the number of limits whose set holds them."""
    results, out, _ = mapped
    with Results(results) as res:
        ids = res.ids("Pt")
        pred = res.predictions("Pt", "allegro")
    rows = table((out / "report.md").read_text(), "### relaxed families: candidates")
    listed = [r for r in rows if r[0] == "allegro"]
    below = sorted((v, r) for r, v in enumerate(pred[12].tolist()) if v < 0)
    assert len(listed) == min(10, len(below))
    present = [k for k in range(13) if k != 5]  # allegro has no limit 10
    for cells, (value, row) in zip(listed, below, strict=False):
        assert int(cells[2].split()[0]) == int(ids[row])
        assert float(cells[4]) == pytest.approx(value, abs=5e-5)
        assert int(cells[1].replace(",", "")) == 1 + sum(v < value for v in pred[12].tolist())
        assert cells[5] == f"{sum(pred[k, row] < 0 for k in present)}/12"


def distinct_counts(values: list[float], compositions: list[tuple]) -> tuple[int, int, int]:
    """(compositions with more than one configuration, their configurations, distinct
    values inside them: values more than 1e-6 eV/atom above the previous one, in order),
    counted in plain Python."""
    members: dict[tuple, list[float]] = {}
    for value, comp in zip(values, compositions, strict=True):
        members.setdefault(comp, []).append(value)
    several = [sorted(v) for v in members.values() if len(v) > 1]
    distinct = sum(1 + sum(b - a > 1e-6 for a, b in pairwise(v)) for v in several)
    return len(several), sum(map(len, several)), distinct


def test_what_ranks_configurations(mapped, tmp_path: Path) -> None:
    """The "what ranks configurations" table counts, inside each family's limit-24 set
    (or its 50 lowest predictions when the set is empty), the compositions with several
    configurations and the distinct values inside them; the rf family made blind inside
    compositions ranks compositions only, allegro (noisy) ranks configurations."""
    results, out, _ = mapped
    with Results(results) as res:
        composition = [tuple(c) for c in res.composition("Pt").tolist()]
        pred = {b: res.predictions("Pt", b)[12] for b in res.backbones("Pt")}

    def expected(backbone: str, threshold: float) -> tuple[list[int], tuple[int, int, int]]:
        values = pred[backbone].tolist()
        rows = [r for r, v in enumerate(values) if v < threshold]
        if not rows:
            rows = sorted(range(len(values)), key=lambda r: (values[r], r))[:50]
        counts = distinct_counts([values[r] for r in rows], [composition[r] for r in rows])
        return rows, counts

    for threshold, directory in ((0.0, out), (-1.0, tmp_path)):
        if threshold < 0:
            write_report(results, tmp_path, threshold=threshold, formats=("svg",))
        text = (directory / "report.md").read_text()
        found = {}
        for heading in ("relaxed families", "single-point families"):
            found |= {r[0]: r for r in table(text, f"### {heading}: what ranks configurations")}
        assert set(found) == set(pred)
        for backbone, cells in found.items():
            rows, (several, inside, distinct) = expected(backbone, threshold)
            assert ("50 lowest (B_24 empty)" in cells[1]) == (threshold < 0)
            assert int(cells[2].replace(",", "")) == len(rows)
            assert int(cells[3].replace(",", "")) == len({composition[r] for r in rows})
            numbers = [int(c.replace(",", "")) for c in cells[4:7]]
            assert numbers == [several, inside, distinct], backbone
        assert several > 0  # the counts are exercised
        assert found["rf"][7] == "ranks compositions only"
        assert found["allegro"][7] == "ranks configurations"


def test_no_relaxation_maps_is_said(report) -> None:
    """A results file without relaxation maps says so once per label set and leaves every
    relaxation cell empty."""
    text = (report[1] / "report.md").read_text()
    assert "carries no relaxation maps" in text
    rows = table(text, "### relaxed families: candidates at limit 24")
    assert rows and all(cells[6].strip() == "" for cells in rows)
    assert "The known Sc57Pt13 phase is configuration" in text
    assert "kept its identity" not in text
