"""Batch prediction of whole stores with trained families.

`predict_store` writes, for every requested limit x of a family (a backbone trained on one
label set, named by `qcapprox.models.family_key`: `rf`, `rf-single-point`, ...),

    predictions/<family>/limit-XX   (n,) float64, predicted energy above hull, eV/atom

and the test metrics of the family (from its model cards) next to them,

    metrics/<family>/test_rmse         (13,) float64, eV/atom, per limit (NaN if absent)
    metrics/<family>/test_predictions  (13, n_test) float64
    metrics/<family>/test_target       (n_test,) float64;  attrs: test_mean

Existing predictions are never rewritten: limits already present are skipped. Each limit
is written as soon as it is predicted, by extending a copy of the store and renaming it
(see store.write_atomically), so an interrupted run keeps its finished limits. The forests predict a
15,327-configuration inference set in a fraction of a second per limit and the Allegro
models batch the parent's neighbour list, so both run in this process.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import h5py
import numpy as np

from qcapprox.datasets import LIMITS
from qcapprox.models import family_key, forest
from qcapprox.parent import Parent
from qcapprox.store import RELAXED, Store, one_writer, open_store, write_atomically


def member_predictor(
    backbone: str,
    dopant: str,
    limit: int,
    parent: Parent,
    labels: str = RELAXED,
    training: Path | None = None,
    registry: Path | None = None,
) -> tuple[dict, Path, Callable[[np.ndarray], np.ndarray]]:
    """Card, registry path and e_above_hull predictor of one family member of a backbone:
    `rf` (or another regressor name, trained on `labels` of the store `training`) or
    `allegro`, `allegro-sequential`, `allegro-pretrained`; `registry` overrides where the
    cards are read (default: user's, then bundled)."""
    if backbone.startswith("allegro"):
        from qcapprox.models import allegro

        variant = allegro.variant_of(backbone)
        member = allegro.load_allegro_member(dopant, limit, variant, registry)
        where = allegro.registry_dir(variant, dopant, limit, registry)
        return member.card, where, lambda occ: member.predict(occ, parent)
    rf = forest.load_member(dopant, limit, backbone, labels, training, registry)
    where = forest.registry_dir(backbone, dopant, limit, labels, registry)
    return rf.card, where, rf.predict


def existing_limits(path: Path, backbone: str) -> set[int]:
    """Limits of a backbone already predicted in a store."""
    with open_store(path) as handle:
        group = handle.get(f"predictions/{backbone}")
        return {int(name.split("-")[1]) for name in group} if group is not None else set()


@one_writer
def predict_store(
    path: str | Path,
    backbone: str = "rf",
    limits: Sequence[int] = LIMITS,
    progress: Callable[[int, int], None] | None = None,
    labels: str = RELAXED,
    training: Path | None = None,
    registry: Path | None = None,
) -> list[int]:
    """Predict every configuration of a store at each limit; returns the limits written.

    Each limit is written as soon as it is predicted (a copy of the store, extended and
    renamed over it), so an interrupted run keeps its finished limits and resumes after them;
    the store's writer lock is held meanwhile (a second writer fails at once).
    """
    path = Path(path)
    store = Store(path)
    family = family_key(backbone, labels)
    todo = [x for x in limits if x not in existing_limits(path, family)]
    for k, limit in enumerate(todo):
        card, model, predict = member_predictor(
            backbone, store.parent.dopant, limit, store.parent, labels, training, registry
        )
        values = predict(store.occupancy)
        write = partial(
            _write_limit, backbone=family, limit=limit, values=values, card=card, model=model
        )
        write_atomically(path, write, base=path)
        if progress:
            progress(k + 1, len(todo))
    return todo


def _write_limit(
    handle: h5py.File, backbone: str, limit: int, values: np.ndarray, card: dict, model: Path
) -> None:
    """predictions/<backbone>/limit-XX and the limit's row of metrics/<backbone>."""
    dset = handle.require_group(f"predictions/{backbone}").create_dataset(
        f"limit-{limit:02d}", data=values
    )
    dset.attrs["model"] = str(model)
    dset.attrs["labeler"] = card["labeler"]
    dset.attrs["units"] = "eV/atom, energy above hull"
    metrics = handle.require_group(f"metrics/{backbone}")
    n_test = len(card["test_target"])
    rmse = metrics.require_dataset("test_rmse", (len(LIMITS),), float, fillvalue=np.nan)
    test_pred = metrics.require_dataset(
        "test_predictions", (len(LIMITS), n_test), float, fillvalue=np.nan
    )
    rmse[LIMITS.index(limit)] = card["test_rmse"]
    test_pred[LIMITS.index(limit)] = card["test_predictions"]
    if "test_target" not in metrics:
        metrics["test_target"] = np.array(card["test_target"])
        metrics["test_ids"] = np.array(card["test_ids"], dtype=np.int64)
        metrics.attrs["test_mean"] = card["test_mean"]
