"""The Random Forest family (and any scikit-learn regressor by name) on defect descriptors.

Protocol of the study (section 4.3): for a dopant and a limit x, the train and validation
rows of the limit-x subset are split into 5 folds (fixed seed); one regressor is fitted per
fold on the other four, and the prediction is the mean of the 5 regressors. The target is
the energy above the hull (eV/atom) of the relaxed labels (or, as the cheap screen, of the
single points); rows whose label failed or did not converge are left out. The test RMSE
(eq. 3) is measured on the 63 test configurations (A4-only, compositions not trained on).

Registry: `calculators/<regressor>/<dopant>/limit-XX/card.json` (committed) holds the model
card of the relaxed-label family; `calculators/single-point/<regressor>/...` that of the
single-point family. A dopant trained on the user's own training set (`<user
data>/training/sc60<m>13.h5`, see qcapprox.paths) has its cards in `<user
data>/calculators/` with the same layout. The fitted regressors are large (tens of MB per
limit), so they are trained on first use, deterministically, into a cache
(`$QCAPPROX_CACHE`, default `~/.cache/qcapprox`) as skops files, and checked against the
card: the training-set hash must match, and so must the test RMSE. The cache's own copy of
the card records the sha256 of every file it wrote; a file that does not match (or a
corrupt cache) is not loaded and the member is trained afresh. skops loads only trusted
scikit-learn types.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
import zipfile
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path

import numpy as np
from sklearn.base import RegressorMixin, clone
from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor
from sklearn.model_selection import KFold

from qcapprox.datasets import LIMITS, TEST, TRAIN, VALIDATION, in_limit, write_split
from qcapprox.descriptors import Descriptors
from qcapprox.errors import QcapproxError
from qcapprox.parent import Parent
from qcapprox.paths import (
    DATA_DIR,
    REGISTRY_DIR,
    is_bundled,
    user_or_bundled,
    user_registry_dir,
    user_training_dir,
)
from qcapprox.pretraining import file_sha256
from qcapprox.store import RELAXED, Labels, Store, package_versions

N_FOLDS = 5
SEED = 2024
CARD_VERSIONS = ("qcapprox", "numpy", "scikit-learn", "skops", "ase", "pymatgen")
CACHE_HASHES = "files_sha256"  # key of the cache card: file name -> sha256 of its bytes


class ModelError(QcapproxError):
    """A model family cannot be trained, found or loaded."""


def make_regressor(name: str) -> RegressorMixin:
    """A fresh regressor by name: rf, hgb, or xgboost, lightgbm, catboost when installed."""
    builtin = {
        "rf": RandomForestRegressor(n_estimators=100, random_state=SEED, n_jobs=-1),
        "hgb": HistGradientBoostingRegressor(random_state=SEED),
    }
    if name in builtin:
        return builtin[name]
    optional = {
        "xgboost": ("xgboost", "XGBRegressor", {"random_state": SEED}),
        "lightgbm": ("lightgbm", "LGBMRegressor", {"random_state": SEED, "verbose": -1}),
        "catboost": ("catboost", "CatBoostRegressor", {"random_seed": SEED, "verbose": 0}),
    }
    if name not in optional:
        raise ModelError(f"unknown regressor {name!r}: use rf, hgb, {', '.join(optional)}")
    module, cls, kwargs = optional[name]
    try:
        return getattr(import_module(module), cls)(**kwargs)
    except ImportError as err:
        raise ModelError(f"regressor {name!r} needs `pip install {module}`") from err


def training_store(dopant: str) -> Path:
    """The labelled training set of a dopant: the user's (``<user data>/training/``) if it
    exists, else the bundled one (``data/training/``); the user's path for a new dopant."""
    name = f"sc60{dopant.lower()}13.h5"
    return user_or_bundled(user_training_dir() / name, DATA_DIR / "training" / name)


def family_path(regressor: str, dopant: str, limit: int, labels: str = RELAXED) -> Path:
    """Relative path of one family member: <regressor>/<dopant>/limit-XX, under
    single-point/ for the single-point family."""
    path = Path(regressor) / dopant / f"limit-{limit:02d}"
    return path if labels == RELAXED else Path(labels) / path


def registry_dir(
    regressor: str, dopant: str, limit: int, labels: str = RELAXED, registry: Path | None = None
) -> Path:
    """Where the card of one family member lives: under `registry` if given; else the
    user's registry if it has the card, else the bundled one (``calculators/``) if that has
    it, else the user's (new cards)."""
    member = family_path(regressor, dopant, limit, labels)
    if registry is not None:
        return Path(registry) / member
    card = user_or_bundled(user_registry_dir() / member / "card.json",
                           REGISTRY_DIR / member / "card.json")  # fmt: skip
    return card.parent


def cache_dir(regressor: str, dopant: str, limit: int, labels: str = RELAXED) -> Path:
    """Where the fitted regressors of one member are cached."""
    root = Path(os.environ.get("QCAPPROX_CACHE", Path.home() / ".cache" / "qcapprox"))
    return root / family_path(regressor, dopant, limit, labels)


@dataclass
class TrainingData:
    """Descriptors, targets and split of a labelled training store (one label set)."""

    store: Store
    labels: Labels
    descriptors: Descriptors
    features: np.ndarray
    split: np.ndarray

    @classmethod
    def load(cls, path: Path, labels: str = RELAXED) -> TrainingData:
        """Read a labelled store (its split is made and stored on first use)."""
        split = write_split(path)
        store = Store(path)
        descriptors = Descriptors.from_parent(store.parent)
        features = descriptors.transform(store.occupancy)
        return cls(store, store.label_set(labels), descriptors, features, split)

    @property
    def target(self) -> np.ndarray:
        """Energy above the hull of the labels, eV/atom."""
        return self.labels.e_above_hull

    def rows(self, limit: int) -> np.ndarray:
        """Usable train + validation rows of the limit-x subset."""
        fit = (self.split == TRAIN) | (self.split == VALIDATION)
        return np.flatnonzero(fit & self.labels.usable & in_limit(self.store.composition, limit))

    def test_rows(self) -> np.ndarray:
        """Usable test rows."""
        return np.flatnonzero((self.split == TEST) & self.labels.usable)

    def digest(self, limit: int) -> str:
        """SHA-256 of what a member is trained and tested on: ids, targets, split."""
        rows = np.concatenate([self.rows(limit), self.test_rows()])
        h = hashlib.sha256()
        for array in (self.store.ids[rows], self.target[rows], self.split[rows]):
            h.update(np.ascontiguousarray(array).tobytes())
        return h.hexdigest()


@dataclass
class ForestMember:
    """One limit of a family: the fold regressors and the descriptor map."""

    card: dict
    models: list[RegressorMixin]
    parent: Parent
    descriptors: Descriptors

    def predict(self, occupancy: np.ndarray) -> np.ndarray:
        """Mean prediction of the fold regressors: energy above hull, eV/atom.

        Few rows are predicted on one thread (thread start-up would dominate).
        """
        features = self.descriptors.transform(occupancy)
        for model in self.models:
            if "n_jobs" in model.get_params():
                model.set_params(n_jobs=1 if len(features) < 1000 else -1)
        return np.mean([m.predict(features) for m in self.models], axis=0)


def fit_member(data: TrainingData, regressor: str, limit: int) -> tuple[list, dict]:
    """Fit the 5 fold regressors of one limit; returns them and the model card."""
    start = time.perf_counter()
    rows = data.rows(limit)
    if len(rows) < N_FOLDS:
        raise ModelError(f"limit {limit}: only {len(rows)} training rows")
    folds = KFold(N_FOLDS, shuffle=True, random_state=SEED).split(rows)
    models, cv_sq = [], []
    for fit_idx, held_idx in folds:
        model = clone(make_regressor(regressor))
        model.fit(data.features[rows[fit_idx]], data.target[rows[fit_idx]])
        held = rows[held_idx]
        cv_sq.append((model.predict(data.features[held]) - data.target[held]) ** 2)
        models.append(model)
    test = data.test_rows()
    pred = np.mean([m.predict(data.features[test]) for m in models], axis=0)
    sizes = {
        name: int((np.isin(data.split[rows], code)).sum())
        for name, code in (("train", TRAIN), ("validation", VALIDATION))
    }
    card = {
        "backbone": regressor,
        "dopant": data.store.parent.dopant,
        "limit": limit,
        "regressor": type(models[0]).__name__,
        "hyperparameters": {k: repr(v) for k, v in models[0].get_params().items()},
        "protocol": f"{N_FOLDS}-fold CV on train+validation of the limit subset, mean of folds",
        "training_set": data.store.path.name,
        "training_set_sha256": data.digest(limit),
        "labels": data.labels.kind,
        "sizes": {**sizes, "test": len(test)},
        "left_out": int((~data.labels.usable).sum()),
        "labeler": f"{data.labels.describe}, {data.labels.attrs.get('calculator_version')}",
        "cv_rmse": float(np.sqrt(np.concatenate(cv_sq).mean())),
        "test_rmse": float(np.sqrt(((pred - data.target[test]) ** 2).mean())),
        "test_mean": float(data.target[test].mean()),
        "test_ids": [int(i) for i in data.store.ids[test]],
        "test_target": [float(v) for v in data.target[test]],
        "test_predictions": [float(v) for v in pred],
        "fit_seconds": round(time.perf_counter() - start, 2),
        "versions": package_versions(CARD_VERSIONS),
    }
    return models, card


def _save(models: list, card: dict, cache: Path) -> None:
    """Write the fold regressors, then the cache's copy of the card with the sha256 of
    every file (`files_sha256`), so a cache is complete only once its card is there."""
    import skops.io as sio  # here: skops imports torch through scikit-learn's array API

    cache.mkdir(parents=True, exist_ok=True)
    hashes = {}
    for k, model in enumerate(models):
        path = cache / f"fold-{k}.skops"
        tmp = path.with_name(path.name + ".tmp")
        sio.dump(model, tmp, compression=zipfile.ZIP_DEFLATED, compresslevel=6)
        hashes[path.name] = file_sha256(tmp)
        tmp.replace(path)
    tmp = cache / "card.json.tmp"
    tmp.write_text(json.dumps({**card, CACHE_HASHES: hashes}, indent=1))
    tmp.replace(cache / "card.json")


def _load_cached(cache: Path, digest: str) -> list | None:
    """The cached fold regressors of a training-set digest, each file checked against the
    sha256 in the cache's card before it is loaded; None (train afresh) when the cache is
    absent, of another training set, incomplete, corrupt or altered (with a warning)."""
    import skops.io as sio  # here: skops imports torch through scikit-learn's array API

    card_path = cache / "card.json"
    if not card_path.exists():
        return None
    try:
        card = json.loads(card_path.read_text())
    except (ValueError, UnicodeDecodeError):
        warnings.warn(f"{card_path} is corrupt: the model cache is rebuilt", stacklevel=3)
        return None
    if card.get("training_set_sha256") != digest:
        return None
    if CACHE_HASHES not in card:
        warnings.warn(f"{cache} holds no file hashes (an older qcapprox): rebuilt", stacklevel=3)
        return None
    hashes = card[CACHE_HASHES]
    models = []
    for k in range(N_FOLDS):
        path = cache / f"fold-{k}.skops"
        if not path.exists() or file_sha256(path) != hashes.get(path.name):
            warnings.warn(
                f"{path} is missing or not the file its cache card records (sha256): the "
                "model cache is rebuilt",
                stacklevel=3,
            )
            return None
        untrusted = sio.get_untrusted_types(file=path)
        if any(not t.startswith(("sklearn.", "numpy.")) for t in untrusted):
            raise ModelError(f"{path}: refuses to load untrusted types {untrusted}")
        models.append(sio.load(path, trusted=untrusted))
    return models


def load_member(
    dopant: str,
    limit: int,
    regressor: str = "rf",
    labels: str = RELAXED,
    training: Path | None = None,
    registry: Path | None = None,
) -> ForestMember:
    """One family member: from the cache, or trained now (seconds) and checked against
    its card. `training` (default: training_store) and `registry` (default: registry_dir)
    name the labelled training store and the registry explicitly."""
    if limit not in LIMITS:
        raise ModelError(f"limit {limit} is not one of {LIMITS}")
    make_regressor(regressor)  # an unknown name fails before any data is read
    path = Path(training) if training is not None else training_store(dopant)
    if not path.exists():
        raise ModelError(
            f"no training set for {dopant} ({path}); enumerate and label one first "
            f"(`qcapprox enumerate enumeration/training.toml -d {dopant} -o {path}` and "
            f"`qcapprox label {path}`)"
        )
    data = TrainingData.load(path, labels)
    digest = data.digest(limit)
    card_path = registry_dir(regressor, dopant, limit, labels, registry) / "card.json"
    card = json.loads(card_path.read_text()) if card_path.exists() else None
    if card is not None and card["training_set_sha256"] != digest:
        raise ModelError(f"{card_path}: the training set {path} changed since the card was made")
    cache = cache_dir(regressor, dopant, limit, labels)
    models = _load_cached(cache, digest)
    if models is None:
        models, fresh = fit_member(data, regressor, limit)
        if card is not None and not np.isclose(fresh["test_rmse"], card["test_rmse"], atol=1e-9):
            raise ModelError(f"{card_path}: retrained test RMSE {fresh['test_rmse']} differs")
        card = card or fresh
        _save(models, card, cache)
    return ForestMember(card, models, data.store.parent, data.descriptors)


def train_family(
    dopant: str,
    regressor: str = "rf",
    limits: tuple[int, ...] = LIMITS,
    labels: str = RELAXED,
    training: Path | None = None,
    registry: Path | None = None,
) -> list[dict]:
    """Train (or load) every limit and write the cards that are new into the registry (the
    bundled registry is only read)."""
    cards = []
    for limit in limits:
        card_path = registry_dir(regressor, dopant, limit, labels, registry) / "card.json"
        member = load_member(dopant, limit, regressor, labels, training, registry)
        if not (card_path.exists() and is_bundled(card_path)):
            card_path.parent.mkdir(parents=True, exist_ok=True)
            card_path.write_text(json.dumps(member.card, indent=1) + "\n")
        cards.append(member.card)
    return cards
