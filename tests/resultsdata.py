"""Test data for the analysis, TUI and report tests: real A4 inference stores built with the
package, plus synthetic (deterministic) predictions and test metrics, bundled into a
results file in the session's temporary directory.

The predictions are a smooth function of the composition and the id, plus a
limit-dependent shift and seeded noise: not physics, only numbers whose sets the tests
recompute independently (with Python sets).
"""

from __future__ import annotations

import functools
import shutil
from pathlib import Path

import h5py
import numpy as np

from qcapprox.enumeration.recipe import Recipe
from qcapprox.enumeration.run import run_recipe
from qcapprox.parent import Parent
from qcapprox.paths import RECIPES_DIR
from qcapprox.results import bundle
from qcapprox.words import LIMITS, limit_key

LABELER = "chgnet 0.4.2 (stand-in for DFT)"
# backbone -> limits left out (to exercise missing limits)
FAMILIES = {"rf": (), "allegro": (10,)}


def synthetic_predictions(
    ids: np.ndarray,
    composition: np.ndarray,
    backbone: int,
    missing: tuple[int, ...] = (),
    seed: int = 0,
) -> np.ndarray:
    """(13, n) energies above hull, eV/atom (seed: one per dopant)."""
    v4 = composition[:, 0].astype(float)
    m4 = composition[:, 1].astype(float)
    base = (
        0.070
        + 0.004 * seed
        - 0.011 * m4
        + 0.005 * v4
        - 0.0004 * m4 * v4
        + 0.008 * ((ids % 11) / 10 - 0.5)
    )
    out = np.empty((len(LIMITS), len(ids)))
    for k, limit in enumerate(LIMITS):
        rng = np.random.default_rng([seed, backbone, k])
        scale = 0.002 if backbone == 0 else 0.012
        shift = 0.003 * np.sin(0.8 * k + backbone) + 0.0005 * k
        out[k] = base + shift + rng.normal(0.0, scale, len(ids))
        if limit in missing:
            out[k] = np.nan
    return out


def add_predictions(path: Path, families: dict[str, tuple[int, ...]] = FAMILIES) -> None:
    """Write predictions/<backbone>/limit-XX and metrics/<backbone>/... into a store."""
    with h5py.File(path, "r+") as handle:
        ids = handle["configs/id"][:]
        comp = handle["configs/composition"][:]
        seed = sum(map(ord, str(handle.attrs["dopant"]))) % 5
        for b, (backbone, missing) in enumerate(families.items()):
            pred = synthetic_predictions(ids, comp, b, missing, seed)
            group = handle.require_group(f"predictions/{backbone}")
            for k, limit in enumerate(LIMITS):
                if limit in missing:
                    continue
                dset = group.create_dataset(limit_key(limit), data=pred[k])
                dset.attrs["model"] = (
                    f"calculators/{backbone}/{handle.attrs['dopant']}/{limit_key(limit)}"
                )
                dset.attrs["labeler"] = LABELER
            rng = np.random.default_rng(77 + b)
            target = rng.uniform(0.0, 0.06, 63)
            test = (
                target[None, :]
                + rng.normal(0.0, 1.0, (13, 63)) * (0.006 + 0.0008 * np.arange(13))[:, None]
            )
            for k, limit in enumerate(LIMITS):
                if limit in missing:
                    test[k] = np.nan
            metrics = handle.require_group(f"metrics/{backbone}")
            metrics["test_rmse"] = np.sqrt(np.mean((test - target) ** 2, axis=1))
            metrics["test_predictions"] = test
            metrics["test_target"] = target
            metrics.attrs["test_mean"] = float(target.mean())


def build_store(directory: Path, dopant: str, families: dict = FAMILIES) -> Path:
    """A predicted A4 inference store (15,327 rows) for one dopant."""
    path = directory / f"sc60{dopant.lower()}13.h5"
    if not path.exists():
        run_recipe(Recipe.load(RECIPES_DIR / "inference-a4.toml"), Parent.load(dopant), path)
        add_predictions(path, families)
    return path


@functools.cache
def results_file(directory: Path, dopants: tuple[str, ...] = ("Pt", "Pd")) -> Path:
    """A results file bundling predicted stores of `dopants` (built once per directory)."""
    directory.mkdir(parents=True, exist_ok=True)
    stores = {d: build_store(directory, d) for d in dopants}
    return bundle(stores, directory / "results.h5")


def training_store(directory: Path, dopant: str = "Pt") -> Path:
    """A stand-in labelled training store: a copy of the inference store with synthetic A5
    defect counts (0..24) and a split (0 train, 1 validation, 2 test, 255 excluded)."""
    path = directory / f"training-{dopant.lower()}.h5"
    if not path.exists():
        shutil.copyfile(build_store(directory, dopant), path)
        with h5py.File(path, "r+") as handle:
            ids = handle["configs/id"][:]
            comp = handle["configs/composition"][:]
            comp[:, 2] = ids % 25
            handle["configs/composition"][...] = comp
            split = np.where(ids % 10 == 3, 1, 0).astype(np.uint8)
            split[np.flatnonzero(comp[:, 2] == 0)[:63]] = 2
            split[ids % 97 == 5] = 255
            handle["split"] = split
    return path
