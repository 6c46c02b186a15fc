"""The Random Forest family (and any scikit-learn regressor by name) on defect descriptors.

Protocol of the study (section 4.3): for a dopant and a limit x, the train and validation
rows of the limit-x subset are split into 5 folds (fixed seed); one regressor is fitted per
fold on the other four, and the prediction is the mean of the 5 regressors. The target is
the energy above the hull (eV/atom) of the relaxed labels (or, as the cheap screen, of the
single points); rows whose label failed or did not converge are left out. The test RMSE
(eq. 3) is measured on the 63 test configurations (A4-only, compositions not trained on).

Registry (`qcapprox.models.base`): `calculators/<regressor>/<dopant>/limit-XX/card.json`
(committed) holds the model card of the relaxed-label family;
`calculators/single-point/<regressor>/...` that of the single-point family. A dopant trained
on the user's own training set (`<user data>/training/sc60<m>13.h5`, see qcapprox.paths)
has its cards in `<user data>/calculators/` with the same layout. The fitted regressors are
large (tens of MB per limit), so they are trained on first use, deterministically, into a
cache (`$QCAPPROX_CACHE`, default `~/.cache/qcapprox`) as skops files, and checked against
the card: the training-set hash must match, and so must the test RMSE. A member's cache is
keyed by its own content (`member_key`: the training-set digest, the regressor and its
arguments, the set-up), not by where its card lives, so two registries of the same member
share it and registries of different members never evict each other. The cache's own copy
of the card (a full member card: a cache hit always comes with it) records the sha256 of
every file it wrote; a file that does not match (or a corrupt cache) is not loaded and the
member is trained afresh. skops loads only trusted scikit-learn types. A fold file is
parsed once per process: the regressors are kept by the sha256 of their file (checked at
every load) and the types trusted in it, so a member loaded again (a screen predicts with
the family it has just trained) costs its hashes only; at most one family is kept (about
0.5 GB of memory for the 2,000-row Pt family).
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from qcapprox.clusters import DECIMALS, PAIR_CUTOFF, TRIPLET_CUTOFF
from qcapprox.descriptors import Descriptors
from qcapprox.errors import ModelError
from qcapprox.models.base import (
    CARD,
    TrainingSet,
    card_dir,
    check_card,
    check_limit,
    file_sha256,
    member_card,
    member_path,
    read_card,
    training_path,
    write_card,
)
from qcapprox.parent import Parent
from qcapprox.paths import cache_root, is_bundled
from qcapprox.settings import SEED
from qcapprox.words import LIMITS, RELAXED

if TYPE_CHECKING:
    from sklearn.base import RegressorMixin

N_FOLDS = 5
CARD_VERSIONS = ("qcapprox", "numpy", "scikit-learn", "skops", "ase", "pymatgen")
CACHE_HASHES = "files_sha256"  # key of the cache card: file name -> sha256 of its bytes
CACHE_TYPES = "files_types"  # key of the cache card: file name -> the non-default types in it
CACHE_KEYS = (CACHE_HASHES, CACHE_TYPES)  # what a cache card adds to the member's card
#: Fold regressors parsed (or written) in this process, by (file sha256, types trusted), the
#: most recent last; at most one family's worth is kept.
_PARSED: OrderedDict[tuple[str, tuple[str, ...]], RegressorMixin] = OrderedDict()
#: The regressors by name: (module, class, arguments). Modules are imported when a
#: regressor is made, so that naming the backbones imports no scikit-learn.
REGRESSORS: dict[str, tuple[str, str, dict]] = {
    "rf": ("sklearn.ensemble", "RandomForestRegressor",
           {"n_estimators": 100, "random_state": SEED, "n_jobs": -1}),
    "hgb": ("sklearn.ensemble", "HistGradientBoostingRegressor", {"random_state": SEED}),
    "xgboost": ("xgboost", "XGBRegressor", {"random_state": SEED}),
    "lightgbm": ("lightgbm", "LGBMRegressor", {"random_state": SEED, "verbose": -1}),
    "catboost": ("catboost", "CatBoostRegressor", {"random_seed": SEED, "verbose": 0}),
    # on cluster correlation functions (qcapprox.clusters), which resolve configurations
    # (a third of the 244 correlations per split, the usual choice for many features:
    # 3x faster than all of them)
    "rf-cf": ("sklearn.ensemble", "RandomForestRegressor",
              {"n_estimators": 100, "max_features": 1 / 3, "random_state": SEED, "n_jobs": -1}),
    "hgb-cf": ("sklearn.ensemble", "HistGradientBoostingRegressor", {"random_state": SEED}),
    # the cluster expansion: a sparse linear fit of the correlations (lasso, its penalty by
    # 5-fold CV inside each fold's training rows); its card lists the ECIs
    "ce": ("sklearn.linear_model", "LassoCV",
           {"cv": 5, "max_iter": 50000, "random_state": SEED}),
}  # fmt: skip
#: The regressors fitted on cluster correlations; the others take the defect descriptors.
ON_CLUSTERS = ("rf-cf", "hgb-cf", "ce")


class Features(Protocol):
    """A feature map of occupancies: `Descriptors` or `ClusterSpace`."""

    names: tuple[str, ...]

    def transform(self, occupancy: np.ndarray) -> np.ndarray: ...


def feature_map(regressor: str, parent: Parent) -> Features:
    """The features a regressor is fitted on: cluster correlations (`ON_CLUSTERS`) or the
    defect descriptors."""
    if regressor in ON_CLUSTERS:
        from qcapprox.clusters import ClusterSpace

        return ClusterSpace.from_parent(parent)
    return Descriptors.from_parent(parent)


def make_regressor(name: str) -> RegressorMixin:
    """A fresh regressor by name: rf, hgb, or xgboost, lightgbm, catboost when installed."""
    if name not in REGRESSORS:
        raise ModelError(f"unknown regressor {name!r}: use {', '.join(REGRESSORS)}")
    module, cls, kwargs = REGRESSORS[name]
    try:
        return getattr(import_module(module), cls)(**kwargs)
    except ImportError as err:
        raise ModelError(f"regressor {name!r} needs `pip install {module}`") from err


def registry_dir(
    regressor: str, dopant: str, limit: int, labels: str = RELAXED, registry: Path | None = None
) -> Path:
    """Where the card of one family member is read (`qcapprox.models.base.card_dir`)."""
    return card_dir(member_path(regressor, dopant, limit, labels), registry)


def member_key(regressor: str, digest: str, labels: str = RELAXED) -> str:
    """A member's content hash: SHA-256 of its training-set digest, its regressor (name,
    class and arguments), its set-up and, on cluster correlations, their definition (cutoffs
    and rounding): what its fitted regressors depend on."""
    content = [digest, regressor, repr(REGRESSORS[regressor]), labels]
    if regressor in ON_CLUSTERS:
        content.append([PAIR_CUTOFF, TRIPLET_CUTOFF, DECIMALS])
    return hashlib.sha256(json.dumps(content).encode()).hexdigest()


def cache_dir(regressor: str, digest: str, labels: str = RELAXED) -> Path:
    """Where the fitted regressors of one member (by its training-set digest) are cached:
    `<cache>/forest/<regressor>/<member_key>`."""
    return cache_root() / "forest" / regressor / member_key(regressor, digest, labels)


@dataclass
class ForestMember:
    """One limit of a family: the fold regressors and the descriptor map."""

    card: dict
    models: list[RegressorMixin]
    parent: Parent
    descriptors: Features

    def predict(self, occupancy: np.ndarray) -> np.ndarray:
        """Mean prediction of the fold regressors: energy above hull, eV/atom.

        Few rows are predicted on one thread (thread start-up would dominate).
        """
        features = self.descriptors.transform(occupancy)
        for model in self.models:
            if "n_jobs" in model.get_params():
                model.set_params(n_jobs=1 if len(features) < 1000 else -1)
        return np.mean([m.predict(features) for m in self.models], axis=0)


def fit_member(
    data: TrainingSet, features: np.ndarray, regressor: str, limit: int, names: Sequence[str] = ()
) -> tuple[list, dict]:
    """Fit the 5 fold regressors of one limit on the `features` (named `names`) of every
    row; returns them and the model card (a cluster expansion's lists its ECIs)."""
    from sklearn.base import clone
    from sklearn.model_selection import KFold

    start = time.perf_counter()
    rows = data.rows(limit)
    if len(rows) < N_FOLDS:
        raise ModelError(f"limit {limit}: only {len(rows)} training rows")
    folds = KFold(N_FOLDS, shuffle=True, random_state=SEED).split(rows)
    models, cv_sq = [], []
    for fit_idx, held_idx in folds:
        model = clone(make_regressor(regressor))
        model.fit(features[rows[fit_idx]], data.target[rows[fit_idx]])
        held = rows[held_idx]
        cv_sq.append((model.predict(features[held]) - data.target[held]) ** 2)
        models.append(model)
    pred = np.mean([m.predict(features[data.test_rows()]) for m in models], axis=0)
    card = member_card(
        data, limit, regressor, pred, time.perf_counter() - start, CARD_VERSIONS,
        regressor=type(models[0]).__name__,
        hyperparameters={k: repr(v) for k, v in models[0].get_params().items()},
        protocol=f"{N_FOLDS}-fold CV on train+validation of the limit subset, mean of folds",
        cv_rmse=float(np.sqrt(np.concatenate(cv_sq).mean())),
        features=f"cluster correlations ({len(names)})" if regressor in ON_CLUSTERS
        else f"defect descriptors ({len(names)})",
        **(_ecis(models, names) if regressor == "ce" else {}),
    )  # fmt: skip
    return models, card


def _ecis(models: list, names: Sequence[str]) -> dict:
    """The effective cluster interactions of a cluster expansion: the fold models' mean
    coefficients (eV/atom per unit correlation), the non-zero ones by size."""
    coef = np.mean([m.coef_ for m in models], axis=0)
    order = np.argsort(-np.abs(coef), kind="stable")
    return {
        "intercept": float(np.mean([m.intercept_ for m in models])),
        "ecis": {names[i]: float(coef[i]) for i in order if coef[i] != 0.0},
        "lasso_alpha": [float(m.alpha_) for m in models],
    }


def _save(models: list, card: dict, cache: Path) -> None:
    """Write the fold regressors, then the cache's copy of the card with the sha256 of
    every file (`files_sha256`) and the types skops does not trust by default in it
    (`files_types`), so a cache is complete only once its card is there."""
    import skops.io as sio  # here: skops imports torch through scikit-learn's array API

    cache.mkdir(parents=True, exist_ok=True)
    hashes, types = {}, {}
    for k, model in enumerate(models):
        path = cache / f"fold-{k}.skops"
        tmp = path.with_name(path.name + ".tmp")
        sio.dump(model, tmp, compression=zipfile.ZIP_DEFLATED, compresslevel=6)
        hashes[path.name] = file_sha256(tmp)
        types[path.name] = sio.get_untrusted_types(file=tmp)
        tmp.replace(path)
        _remember((hashes[path.name], tuple(types[path.name])), model)
    write_card(cache / CARD, {**card, CACHE_HASHES: hashes, CACHE_TYPES: types})


def _load_cached(cache: Path, digest: str) -> tuple[list, dict] | None:
    """The cached fold regressors of a training-set digest and the member card cached with
    them, each file checked against the sha256 in the cache's card before it is loaded,
    and loaded trusting only the scikit-learn and numpy types the card records for it
    (skops refuses any other: one parse of the file, not two); None (train afresh) when
    the cache is absent, of another training set, incomplete, corrupt or altered (with a
    warning)."""
    import skops.io as sio  # here: skops imports torch through scikit-learn's array API
    from skops.io.exceptions import UntrustedTypesFoundException

    card_path = cache / CARD
    if not card_path.exists():
        return None
    try:
        card = json.loads(card_path.read_text())
        check_card({k: v for k, v in card.items() if k not in CACHE_KEYS}, card_path)
    except (ValueError, UnicodeDecodeError, ModelError) as err:
        warnings.warn(f"{card_path} is corrupt ({err}): the model cache is rebuilt", stacklevel=3)
        return None
    if card["training_set_sha256"] != digest:
        return None
    if CACHE_HASHES not in card or CACHE_TYPES not in card:
        warnings.warn(
            f"{cache} holds no file hashes or types (an older qcapprox): rebuilt", stacklevel=3
        )
        return None
    hashes, types = card.pop(CACHE_HASHES), card.pop(CACHE_TYPES)
    models = []
    for k in range(N_FOLDS):
        path = cache / f"fold-{k}.skops"
        sha256 = file_sha256(path) if path.exists() else None
        if sha256 is None or sha256 != hashes.get(path.name):
            warnings.warn(
                f"{path} is missing or not the file its cache card records (sha256): the "
                "model cache is rebuilt",
                stacklevel=3,
            )
            return None
        trusted = types.get(path.name, [])
        if any(not t.startswith(("sklearn.", "numpy.")) for t in trusted):
            raise ModelError(f"{path}: refuses to load untrusted types {trusted}")
        key = (sha256, tuple(trusted))
        if key not in _PARSED:
            try:
                _remember(key, sio.load(path, trusted=trusted))
            except UntrustedTypesFoundException as err:  # a card edited to hide a type
                raise ModelError(
                    f"{path}: holds types its cache card does not record: {err}"
                ) from err
        _PARSED.move_to_end(key)
        models.append(_PARSED[key])
    return models, card


def _remember(key: tuple[str, tuple[str, ...]], model: RegressorMixin) -> None:
    """Keep a parsed fold regressor (`_PARSED`), dropping the least recent beyond one
    family (N_FOLDS x the limits)."""
    _PARSED[key] = model
    while len(_PARSED) > N_FOLDS * len(LIMITS):
        _PARSED.popitem(last=False)


def load_member(
    dopant: str,
    limit: int,
    regressor: str = "rf",
    labels: str = RELAXED,
    training: Path | None = None,
    registry: Path | None = None,
) -> ForestMember:
    """One family member: from the cache (with the card cached beside it), or trained now
    (seconds) and checked against its card. `training` (default: the dopant's training
    store, user's or bundled) and `registry` (default: user's, then bundled) name the
    training store and the registry; the registry's card (checked when read) comes first."""
    check_limit(limit)
    make_regressor(regressor)  # an unknown name fails before any data is read
    where = registry_dir(regressor, dopant, limit, labels, registry)
    card = read_card(where)
    path = training_path(dopant, training)
    data = TrainingSet.load(path, labels)
    descriptors = feature_map(regressor, data.parent)
    features = descriptors.transform(data.occupancy)
    digest = data.digest(limit)
    if card is not None and card["training_set_sha256"] != digest:
        raise ModelError(f"{where / CARD}: the training set {path} changed since the card was made")
    cache = cache_dir(regressor, digest, labels)
    cached = _load_cached(cache, digest)
    if cached is None:
        models, fresh = fit_member(data, features, regressor, limit, descriptors.names)
        if card is not None and not np.isclose(fresh["test_rmse"], card["test_rmse"], atol=1e-9):
            raise ModelError(f"{where / CARD}: retrained test RMSE {fresh['test_rmse']} differs")
        _save(models, fresh, cache)
        card = card or fresh
    else:
        models, kept = cached
        # limits whose subsets are equal share one cache entry: the card is this limit's
        card = card or {**kept, "limit": limit}
    return ForestMember(card, models, data.parent, descriptors)


def train_family(
    dopant: str,
    regressor: str = "rf",
    limits: Sequence[int] = LIMITS,
    labels: str = RELAXED,
    training: Path | None = None,
    registry: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[dict]:
    """Train (or load) every limit and write the cards that are new into the registry (the
    bundled registry is only read); `progress(done, total)` is called after each limit."""
    cards = []
    for k, limit in enumerate(limits):
        where = registry_dir(regressor, dopant, limit, labels, registry)
        member = load_member(dopant, limit, regressor, labels, training, registry)
        if not ((where / CARD).exists() and is_bundled(where)):
            write_card(where / CARD, member.card)
        cards.append(member.card)
        if progress:
            progress(k + 1, len(limits))
    return cards
