"""Batch prediction of whole stores with trained families.

`predict_store` writes, for every requested limit x of a family (a backbone trained on one
label set, named by `qcapprox.models.family_key`: `rf`, `rf-single-point`, ...),

    predictions/<family>/limit-XX   (n,) float64, predicted energy above hull, eV/atom

and the test metrics of the family (from its model cards) next to them,

    metrics/<family>/test_rmse         (13,) float64, eV/atom, per limit (NaN if absent)
    metrics/<family>/test_predictions  (13, n_test) float64
    metrics/<family>/test_target       (n_test,) float64;  attrs: test_mean

A family's members come from the backbone registry (`qcapprox.models.backbone`). Existing
predictions are never rewritten: limits already present are skipped. With `reuse`, a results
file predicted before, a limit is copied from it instead of predicted when the dopant's
configurations are the same rows and the member (loaded and verified against its card)
reproduces the stored values on `CHECK_ROWS` rows spread over the set, to `CHECK_TOL`: a
retrained or changed member never passes, and an unchanged Allegro family of 15,327
configurations costs seconds instead of minutes. Each limit
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
from qcapprox.models import Member, family_key
from qcapprox.models import backbone as get_backbone
from qcapprox.store import RELAXED, Store, one_writer, open_store, write_atomically

CHECK_ROWS = 64
CHECK_TOL = 1e-6  # eV/atom: float32 models batched differently agree far closer


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
    reuse: Path | None = None,
) -> list[int]:
    """Predict every configuration of a store at each limit; returns the limits written.

    `reuse`: a results file whose predictions of the same rows are copied where the member
    reproduces them (see the module docstring). Each limit is written as soon as it is
    predicted (a copy of the store, extended and renamed over it), so an interrupted run
    keeps its finished limits and resumes after them; the store's writer lock is held
    meanwhile (a second writer fails at once).
    """
    path = Path(path)
    kind = get_backbone(backbone)
    store = Store(path)
    dopant = store.parent.dopant
    family = family_key(backbone, labels)
    todo = [x for x in limits if x not in existing_limits(path, family)]
    stored = _reusable(reuse, dopant, family, store.occupancy) if reuse else {}
    for k, limit in enumerate(todo):
        member = kind.load(dopant, limit, labels, training, registry, store.parent)
        values = stored.get(limit)
        if values is None or not _reproduces(member, store.occupancy, values):
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


def _reusable(path: Path, dopant: str, family: str, occupancy: np.ndarray) -> dict[int, np.ndarray]:
    """Limit -> stored predictions of a family in a results file, if it holds the dopant
    with exactly these configuration rows (else nothing)."""
    from qcapprox.results import Results

    with Results(path) as results:
        if dopant not in results.dopants or family not in results.backbones(dopant):
            return {}
        if not np.array_equal(results.occupancy(dopant), occupancy):
            return {}
        values = results.predictions(dopant, family)
        return {x: values[LIMITS.index(x)] for x in results.limits(dopant, family)}


def _reproduces(member: Member, occupancy: np.ndarray, values: np.ndarray) -> bool:
    """Whether a member predicts the stored values on CHECK_ROWS rows spread evenly over
    the set, to CHECK_TOL eV/atom."""
    rows = np.unique(np.linspace(0, len(occupancy) - 1, CHECK_ROWS).astype(int))
    return bool(np.allclose(member.predict(occupancy[rows]), values[rows], rtol=0, atol=CHECK_TOL))


def _write_limit(
    handle: h5py.File, backbone: str, limit: int, values: np.ndarray, card: dict, model: Path
) -> None:
    """predictions/<backbone>/limit-XX and the limit's row of metrics/<backbone>.

    gzip without shuffle: a forest repeats values (7x smaller; shuffling its bytes would
    hide that), a network's float64s still lose a quarter."""
    dset = handle.require_group(f"predictions/{backbone}").create_dataset(
        limit_key(limit), data=values, compression="gzip"
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
