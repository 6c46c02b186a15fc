"""Batch prediction of a whole store: predictions per limit, metrics, no rewrites."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from qcapprox.cli import app
from qcapprox.enumeration.recipe import Recipe
from qcapprox.enumeration.run import run_recipe
from qcapprox.models.forest import load_member, registry_dir
from qcapprox.parent import Parent
from qcapprox.paths import RECIPES_DIR
from qcapprox.prediction import predict_store
from qcapprox.store import Store


def test_predict_inference_set(tmp_path, parent_pt: Parent) -> None:
    path = tmp_path / "a4.h5"
    run_recipe(Recipe.load(RECIPES_DIR / "inference-a4.toml"), parent_pt, path)
    result = CliRunner().invoke(app, ["predict", str(path), "--limits", "0,24"])
    assert result.exit_code == 0, result.output
    store = Store(path)
    with h5py.File(path) as handle:
        for limit in (0, 24):
            values = handle[f"predictions/rf/limit-{limit:02d}"][:]
            np.testing.assert_allclose(
                values, load_member("Pt", limit).predict(store.occupancy), rtol=1e-12
            )
            card = json.loads((registry_dir("rf", "Pt", limit) / "card.json").read_text())
            assert handle["metrics/rf/test_rmse"][limit // 2] == card["test_rmse"]
        assert np.isnan(handle["metrics/rf/test_rmse"][1])  # limit 2 not predicted
        assert handle["metrics/rf"].attrs["test_mean"] == card["test_mean"]
        assert len(handle["configs/id"]) == 15327  # configurations untouched
    before = path.read_bytes()
    assert predict_store(path, "rf", [0, 24]) == []  # nothing rewritten
    assert path.read_bytes() == before


def test_interrupted_prediction_keeps_finished_limits(tmp_path, parent_pt: Parent) -> None:
    path = tmp_path / "a4.h5"
    run_recipe(Recipe.load(RECIPES_DIR / "inference-a4.toml"), parent_pt, path)

    def stop(done: int, total: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        predict_store(path, "rf", [0, 24], progress=stop)
    with h5py.File(path) as handle:
        assert sorted(handle["predictions/rf"]) == ["limit-00"]
        first = handle["predictions/rf/limit-00"][:]
    assert predict_store(path, "rf", [0, 24]) == [24]
    with h5py.File(path) as handle:
        np.testing.assert_array_equal(handle["predictions/rf/limit-00"][:], first)
        assert np.isfinite(handle["metrics/rf/test_rmse"][[0, 12]]).all()
        assert np.isnan(handle["metrics/rf/test_rmse"][1:12]).all()
