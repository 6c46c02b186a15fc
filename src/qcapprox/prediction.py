"""Batch prediction of whole stores with trained families.

`predict_store` writes, for every requested limit x of a backbone,

    predictions/<backbone>/limit-XX   (n,) float64, predicted energy above hull, eV/atom

and the test metrics of the family (from its model cards) next to them,

    metrics/<backbone>/test_rmse         (13,) float64, eV/atom, per limit (NaN if absent)
    metrics/<backbone>/test_predictions  (13, n_test) float64
    metrics/<backbone>/test_target       (n_test,) float64;  attrs: test_mean

Existing predictions are never rewritten: limits already present are skipped. The store
is extended as a copy and renamed (see store.write_atomically). The forests predict a
15,327-configuration inference set in a fraction of a second per limit and the Allegro
models batch the parent's neighbour list, so both run in this process.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import h5py
import numpy as np

from qcapprox.datasets import LIMITS
from qcapprox.models import forest
from qcapprox.parent import Parent
from qcapprox.store import Store, open_store, write_atomically


def member_predictor(
    backbone: str, dopant: str, limit: int, parent: Parent
) -> tuple[dict, Path, Callable[[np.ndarray], np.ndarray]]:
    """Card, registry path and e_above_hull predictor of one family member of a backbone:
    `rf` (or another regressor name) or `allegro`, `allegro-sequential`, `allegro-pretrained`."""
    if backbone.startswith("allegro"):
        from qcapprox.models import allegro

        variant = allegro.variant_of(backbone)
        member = allegro.load_allegro_member(dopant, limit, variant)
        where = allegro.registry_dir(variant, dopant, limit)
        return member.card, where, lambda occ: member.predict(occ, parent)
    rf = forest.load_member(dopant, limit, backbone)
    return rf.card, forest.registry_dir(backbone, dopant, limit), rf.predict


def existing_limits(path: Path, backbone: str) -> set[int]:
    """Limits of a backbone already predicted in a store."""
    with open_store(path) as handle:
        group = handle.get(f"predictions/{backbone}")
        return {int(name.split("-")[1]) for name in group} if group is not None else set()


def predict_store(
    path: str | Path,
    backbone: str = "rf",
    limits: Sequence[int] = LIMITS,
    progress: Callable[[int, int], None] | None = None,
) -> list[int]:
    """Predict every configuration of a store at each limit; returns the limits written."""
    path = Path(path)
    store = Store(path)
    todo = [x for x in limits if x not in existing_limits(path, backbone)]
    predictions: dict[int, np.ndarray] = {}
    cards: dict[int, dict] = {}
    models: dict[int, Path] = {}
    for k, limit in enumerate(todo):
        cards[limit], models[limit], predict = member_predictor(
            backbone, store.parent.dopant, limit, store.parent
        )
        predictions[limit] = predict(store.occupancy)
        if progress:
            progress(k + 1, len(todo))
    if not todo:
        return []

    def fill(handle: h5py.File) -> None:
        group = handle.require_group(f"predictions/{backbone}")
        for limit, values in predictions.items():
            dset = group.create_dataset(f"limit-{limit:02d}", data=values)
            dset.attrs["model"] = str(models[limit])
            dset.attrs["labeler"] = cards[limit]["labeler"]
            dset.attrs["units"] = "eV/atom, energy above hull"
        metrics = handle.require_group(f"metrics/{backbone}")
        n_test = len(next(iter(cards.values()))["test_target"])
        rmse = metrics.require_dataset("test_rmse", (len(LIMITS),), float, fillvalue=np.nan)
        test_pred = metrics.require_dataset(
            "test_predictions", (len(LIMITS), n_test), float, fillvalue=np.nan
        )
        for limit, card in cards.items():
            rmse[LIMITS.index(limit)] = card["test_rmse"]
            test_pred[LIMITS.index(limit)] = card["test_predictions"]
        if "test_target" not in metrics:
            card = next(iter(cards.values()))
            metrics["test_target"] = np.array(card["test_target"])
            metrics["test_ids"] = np.array(card["test_ids"], dtype=np.int64)
            metrics.attrs["test_mean"] = card["test_mean"]

    write_atomically(path, fill, base=path)
    return todo
