"""Report figures: written as PNG and SVG, labelled as CHGNet stand-in values, sized for
print, with the numbers of the analysis (checked through the CSV tables written beside
the figures); empty sets are said to be empty and nothing warns.
"""

from __future__ import annotations

import csv
import re
import warnings
from pathlib import Path

import h5py
import matplotlib.image
import numpy as np
import pytest
from resultsdata import build_store, training_store

from qcapprox.report import write_report
from qcapprox.results import LIMITS, Results, bundle


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[Path, Path, list[Path], list[str]]:
    directory = tmp_path_factory.getbasetemp() / "results"
    directory.mkdir(exist_ok=True)
    results = bundle(
        {"Pt": build_store(directory, "Pt")},
        directory / "report-results.h5",
        training={"Pt": training_store(directory, "Pt")},
    )
    out = tmp_path_factory.mktemp("report")
    messages: list[str] = []
    paths = write_report(results, out, log=messages.append)
    return results, out, paths, messages


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path) as handle:
        return list(csv.DictReader(handle))


def test_figures_written(report) -> None:
    _, out, paths, messages = report
    names = {p.name for p in paths}
    for stem in (
        "Pt-subset-sizes",
        "Pt-histogram",
        "Pt-rmse",
        "rmse-boxplots",
        "Pt-predictions",
        "Pt-recall",
        "Pt-rf-similarity",
        "Pt-allegro-similarity",
        "Pt-rf-overlap",
        "Pt-allegro-overlap",
        "recall-rf",
        "recall-allegro",
    ):
        assert {f"{stem}.png", f"{stem}.svg"} <= names, stem
    assert all(p.exists() and p.parent == out for p in paths)
    image = matplotlib.image.imread(out / "Pt-rf-overlap.png")
    assert image.ndim == 3 and image.shape[0] > 500
    svg = (out / "Pt-rmse.svg").read_text()
    assert "CHGNet stand-in labels" in svg and "DFT" not in svg
    assert "CHGNet stand-in labels" in (out / "Pt-rf-overlap.svg").read_text()
    assert messages == []  # nothing skipped
    text = (out / "report.md").read_text()
    assert "- nothing" in text
    for path in paths:  # report.md embeds every PNG figure
        if path.suffix == ".png":
            assert f"]({path.name})" in text, path.name


def test_readable_at_print_size(report) -> None:
    """At most 7.2 in wide (a printed page) and no text below 6.5 pt at that size."""
    paths = report[2]
    for path in paths:
        if path.suffix != ".svg":
            continue
        svg = path.read_text()
        width = float(re.search(r'width="([\d.]+)pt"', svg).group(1))
        assert width <= 7.2 * 72 + 1, path.name
        sizes = [float(x) for x in re.findall(r"font-size: ([\d.]+)px", svg)]
        assert sizes and min(sizes) >= 6.5, (path.name, min(sizes))


def test_empty_sets_said_and_no_warnings(tmp_path: Path, report) -> None:
    results, _, _, _ = report
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        paths = write_report(results, tmp_path, threshold=-1.0, formats=("svg",))
    overlap = (tmp_path / "Pt-rf-overlap.svg").read_text()
    assert "empty: no configuration below the threshold" in overlap
    assert (
        "empty: no configuration below the threshold"
        in (tmp_path / "Pt-predictions.svg").read_text()
    )
    recall = (tmp_path / "Pt-recall.svg").read_text()
    assert "B24 empty" in recall and "recall = 1, the study" in recall
    values = {r["recall_vs_24"] for r in read_csv(tmp_path / "Pt-recall.csv")}
    assert values == {"1.0", "nan"}  # nan: allegro has no limit 10
    text = (tmp_path / "report.md").read_text()
    assert "the study's convention" in text and len(paths) > 10


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
    recall = [r for r in read_csv(out / "Pt-recall.csv") if r["backbone"] == "rf"]
    for k, row in enumerate(recall):
        assert float(row["below_hull"]) == len(sets[k])
        assert float(row["below_hull_weighted"]) == sum(int(mult[c]) for c in sets[k])
        assert float(row["recall_vs_24"]) == pytest.approx(len(sets[k] & sets[12]) / len(sets[12]))
    rmse = [r for r in read_csv(out / "Pt-rmse.csv") if r["backbone"] == "allegro"]
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
    assert "Pt-subset-sizes.svg" not in names and "Pt-rmse.svg" not in names
    assert "Pt-rf-overlap.svg" in names and "Pt-recall.svg" in names
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
        if line.startswith("| ") and not line.startswith("| figure")
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
    boxes = {r["backbone"]: r for r in read_csv(out / "rmse-boxplots.csv") if r["dopant"] == "Pt"}
    allegro = rmse["allegro"][np.isfinite(rmse["allegro"])]
    assert int(boxes["allegro"]["n_limits"]) == 12  # no limit 10
    assert float(boxes["allegro"]["median"]) == pytest.approx(np.median(allegro))
    assert float(boxes["rf"]["q3"]) == pytest.approx(np.percentile(rmse["rf"], 75))
    rows = [r for r in read_csv(out / "Pt-predictions.csv") if r["backbone"] == "allegro"]
    assert [int(r["limit"]) for r in rows] == [x for x in LIMITS if x != 10]
    for row in rows:
        k = LIMITS.index(int(row["limit"]))
        assert float(row["median"]) == pytest.approx(np.median(pred[k]))
        assert int(row["below_hull"]) == int((pred[k] < 0).sum())
    hist = [r for r in read_csv(out / "Pt-histogram.csv") if r["series"].startswith("rf")]
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
