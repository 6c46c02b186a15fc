"""Batch prediction of whole stores with trained families.

`predict_store` writes, for every requested limit x of a family (a backbone trained on one
label set, named by `qcapprox.models.family_key`: `rf`, `rf-single-point`, ...),

    predictions/<family>/limit-XX   (n,) float64, predicted energy above hull, eV/atom

and the test metrics of the family (from its model cards) next to them,

    metrics/<family>/test_rmse         (13,) float64, eV/atom, per limit (NaN if absent)
    metrics/<family>/test_predictions  (13, n_test) float64
    metrics/<family>/test_target       (n_test,) float64;  attrs: test_mean

A family's members come from the backbone registry (`qcapprox.models.backbone`). Existing
predictions are never rewritten: limits already present are skipped. Each limit
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

from qcapprox.datasets import LIMITS, limit_key
from qcapprox.models import backbone as get_backbone
from qcapprox.models import family_key
from qcapprox.store import RELAXED, Store, one_writer, open_store, write_atomically


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
    kind = get_backbone(backbone)
    store = Store(path)
    dopant = store.parent.dopant
    family = family_key(backbone, labels)
    todo = [x for x in limits if x not in existing_limits(path, family)]
    for k, limit in enumerate(todo):
        member = kind.load(dopant, limit, labels, training, registry, store.parent)
        values = member.predict(store.occupancy)
        model = kind.card_dir(dopant, limit, labels, registry)
        write = partial(
            _write_limit, backbone=family, limit=limit, values=values, card=member.card,
            model=model,
        )  # fmt: skip
        write_atomically(path, write, base=path)
        if progress:
            progress(k + 1, len(todo))
    return todo


def _write_limit(
    handle: h5py.File, backbone: str, limit: int, values: np.ndarray, card: dict, model: Path
) -> None:
    """predictions/<backbone>/limit-XX and the limit's row of metrics/<backbone>."""
    dset = handle.require_group(f"predictions/{backbone}").create_dataset(
        limit_key(limit), data=values
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
