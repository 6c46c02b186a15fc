"""Report figures: written as PNG and SVG, labelled as CHGNet stand-in values, with the
numbers of the analysis (checked through the CSV tables written beside the figures).
"""

from __future__ import annotations

import csv
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
        "Pt-rmse",
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
    assert "- nothing" in (out / "report.md").read_text()


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
        assert sizes["total"][-1] == int((split != 255).sum())


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
    sim = rows["rf SimilarityScore vs 24"]
    for k in range(13):
        expected = 1 - abs(rmse[k] - rmse[12]) / np.mean(metrics.test_target)
        assert float(sim[k]) == pytest.approx(expected, abs=5e-4)
    assert float(rows["rf test RMSE eV/atom"][-1]) == pytest.approx(rmse.mean(), abs=5e-5)
