"""Batch prediction of a whole store: predictions per limit, metrics, no rewrites."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from qcapprox.cli import app
from qcapprox.models import trained_backbones
from qcapprox.models.forest import load_member, registry_dir
from qcapprox.prediction import predict_store
from qcapprox.store import Store
from qcapprox.words import RELAXED, SINGLE_POINT, family_key


def test_predict_inference_set(tmp_path, inference_pt: Path, pt_labels: str) -> None:
    path = Path(shutil.copyfile(inference_pt, tmp_path / "a4.h5"))
    args = ["predict", str(path), "--limits", "0,24", "--labels", pt_labels]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    family = family_key("rf", pt_labels)
    assert f"predictions/{family}" in result.output and pt_labels in result.output
    store = Store(path)
    with h5py.File(path) as handle:
        for limit in (0, 24):
            values = handle[f"predictions/{family}/limit-{limit:02d}"][:]
            member = load_member("Pt", limit, labels=pt_labels)
            np.testing.assert_allclose(values, member.predict(store.occupancy), rtol=1e-12)
            card_path = registry_dir("rf", "Pt", limit, pt_labels) / "card.json"
            card = json.loads(card_path.read_text())
            assert handle[f"metrics/{family}/test_rmse"][limit // 2] == card["test_rmse"]
        assert np.isnan(handle[f"metrics/{family}/test_rmse"][1])  # limit 2 not predicted
        assert handle[f"metrics/{family}"].attrs["test_mean"] == card["test_mean"]
        assert len(handle["configs/id"]) == 15327  # configurations untouched
    before = path.read_bytes()
    assert predict_store(path, "rf", [0, 24], labels=pt_labels) == []  # nothing rewritten
    assert path.read_bytes() == before


def test_interrupted_prediction_keeps_finished_limits(
    tmp_path, inference_pt: Path, pt_labels: str
) -> None:
    path = Path(shutil.copyfile(inference_pt, tmp_path / "a4.h5"))
    family = family_key("rf", pt_labels)

    def stop(done: int, total: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        predict_store(path, "rf", [0, 24], progress=stop, labels=pt_labels)
    with h5py.File(path) as handle:
        assert sorted(handle[f"predictions/{family}"]) == ["limit-00"]
        first = handle[f"predictions/{family}/limit-00"][:]
    assert predict_store(path, "rf", [0, 24], labels=pt_labels) == [24]
    with h5py.File(path) as handle:
        np.testing.assert_array_equal(handle[f"predictions/{family}/limit-00"][:], first)
        assert np.isfinite(handle[f"metrics/{family}/test_rmse"][[0, 12]]).all()
        assert np.isnan(handle[f"metrics/{family}/test_rmse"][1:12]).all()


def test_predict_all_trained_families(tmp_path, inference_pt: Path) -> None:
    """`--backbone all` predicts with every family that has a card at all 13 limits for
    the store's dopant and label set, and with nothing else."""
    registry = tmp_path / "registry"
    shutil.copytree(
        registry_dir("rf", "Pt", 0, SINGLE_POINT).parent, registry / "single-point/rf/Pt"
    )
    assert trained_backbones("Pt", SINGLE_POINT, registry) == ["rf"]
    assert trained_backbones("Pt", RELAXED, registry) == []
    assert trained_backbones("Rh", SINGLE_POINT, registry) == []
    path = Path(shutil.copyfile(inference_pt, tmp_path / "a4.h5"))
    args = ["predict", str(path), "--backbone", "all", "--labels", SINGLE_POINT, "--limits", "24",
            "--registry", str(registry)]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    with h5py.File(path) as handle:
        assert list(handle["predictions"]) == ["rf-single-point"]
        values = handle["predictions/rf-single-point/limit-24"][:]
    member = load_member("Pt", 24, labels=SINGLE_POINT, registry=registry)
    np.testing.assert_allclose(values, member.predict(Store(path).occupancy), rtol=1e-12)
    (registry / "single-point/rf/Pt/limit-12/card.json").unlink()  # a family with a gap
    assert trained_backbones("Pt", SINGLE_POINT, registry) == []
    result = CliRunner().invoke(app, [*args[:-2], "--registry", str(registry), "--labels", RELAXED])
    assert result.exit_code == 0 and "no family is trained on relaxed" in " ".join(
        result.output.split()
    )


def test_predict_reuses_reproduced_results(tmp_path, inference_pt: Path, pt_labels: str) -> None:
    """`--reuse`: a limit whose member reproduces the stored check rows is copied from the
    results file (a marked row outside the check comes along); a limit whose check fails is
    predicted again."""
    from qcapprox.prediction import CHECK_ROWS
    from qcapprox.results import bundle

    first = Path(shutil.copyfile(inference_pt, tmp_path / "first.h5"))
    predict_store(first, "rf", [0, 24], labels=pt_labels)
    results = tmp_path / "results.h5"
    bundle({"Pt": first}, results)
    family = family_key("rf", pt_labels)
    n = len(Store(first).occupancy)
    checked = set(np.linspace(0, n - 1, CHECK_ROWS).astype(int))
    marked = next(i for i in range(n) if i not in checked)
    with h5py.File(results, "r+") as handle:
        handle[f"Pt/predictions/{family}/limit-00"][marked] += 1.0  # outside the check
        handle[f"Pt/predictions/{family}/limit-24"][0] += 1.0  # a checked row
    again = Path(shutil.copyfile(inference_pt, tmp_path / "again.h5"))
    args = [
        "predict",
        str(again),
        "--limits",
        "0,24",
        "--labels",
        pt_labels,
        "--reuse",
        str(results),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    with h5py.File(first) as a, h5py.File(again) as b:
        old0, new0 = a[f"predictions/{family}/limit-00"][:], b[f"predictions/{family}/limit-00"][:]
        assert new0[marked] == old0[marked] + 1.0  # copied
        np.testing.assert_array_equal(np.delete(new0, marked), np.delete(old0, marked))
        np.testing.assert_allclose(
            b[f"predictions/{family}/limit-24"][:],
            a[f"predictions/{family}/limit-24"][:],
            rtol=1e-12,
        )  # predicted again: the tampered value is gone
        assert b[f"metrics/{family}/test_rmse"][12] == a[f"metrics/{family}/test_rmse"][12]


def test_prediction_streams_in_chunks(
    tmp_path, inference_pt: Path, pt_labels: str, monkeypatch
) -> None:
    """Chunks of 1,000 rows (16 of them, the last short) give the predictions of the whole
    set at once; the plan says the size first."""
    from qcapprox import prediction

    path = Path(shutil.copyfile(inference_pt, tmp_path / "a4.h5"))
    monkeypatch.setattr(prediction, "PREDICT_ROWS", 1000)
    plan = prediction.Plan.of(path, "rf", [24], pt_labels)
    assert plan.limits == (24,) and plan.scan.rows == 15327
    assert plan.describe().startswith(f"{path}: 15,327 configurations x 1 limit of ")
    assert predict_store(path, "rf", [24], labels=pt_labels, plan=plan) == [24]
    family = family_key("rf", pt_labels)
    with h5py.File(path) as handle:
        values = handle[f"predictions/{family}/limit-24"][:]
    member = load_member("Pt", 24, labels=pt_labels)
    # rtol: a forest's threads add the trees' votes in any order
    np.testing.assert_allclose(values, member.predict(Store(path).occupancy), rtol=1e-12)
    assert "nothing to predict" in prediction.Plan.of(path, "rf", [24], pt_labels).describe()


def test_large_store_is_predicted_with_force_only(
    tmp_path, inference_pt: Path, pt_labels: str, monkeypatch
) -> None:
    """Above the row cap the estimate is stated and the store refused (exit 2, nothing
    written); --force lifts the cap. The summary names the labels the family learned."""
    path = Path(shutil.copyfile(inference_pt, tmp_path / "a4.h5"))
    args = ["predict", str(path), "--limits", "0", "--labels", pt_labels]
    monkeypatch.setattr("qcapprox.cli.train.MAX_ROWS", 10_000)
    before = path.read_bytes()
    result = CliRunner().invoke(app, args)
    assert result.exit_code != 0
    assert "15,327 configurations x 1 limit of" in result.output  # the estimate, first
    message = str(result.exception)
    assert "more than the limit of 10,000 configurations" in message and "--force" in message
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a4.h5"]
    result = CliRunner().invoke(app, [*args, "--force"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "peak memory about" in text and "CHGNet stand-in labels" in text
    with h5py.File(path) as handle:
        assert handle[f"predictions/{family_key('rf', pt_labels)}/limit-00"].shape == (15327,)
