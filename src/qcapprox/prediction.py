"""Batch prediction of whole stores with trained families, in bounded memory.

`predict_store` writes, for every requested limit x of a family (a backbone trained on one
label set, named by `qcapprox.words.family_key`: `rf`, `rf-single-point`, ...),

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
(see store.write_atomically), so an interrupted run keeps its finished limits.

Memory: the store is checked in chunks (`qcapprox.store.scan_store`) and predicted
`PREDICT_ROWS` rows at a time, read from the copy being written and written into it, so
the peak is one member and one chunk, plus the 8 bytes a row of the id check, whatever
the size of the store (benchmarks/predict_memory.py; `reuse` holds the results file's
arrays of the dopant whole). Before any work a `Plan` states the rows, the limits and
estimates of time, memory and disk; a store of more than `MAX_ROWS` rows is refused unless
the caller lifts the limit (`qcapprox predict --force`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import h5py
import numpy as np

from qcapprox.enumeration.run import human_duration, human_size
from qcapprox.errors import StoreError
from qcapprox.models import AllegroBackbone, Member
from qcapprox.models import backbone as get_backbone
from qcapprox.store import Scan, one_writer, open_store, scan_store, write_atomically
from qcapprox.words import LIMITS, MAX_ROWS, RELAXED, family_key, limit_key

CHECK_ROWS = 64
CHECK_TOL = 1e-6  # eV/atom: float32 models batched differently agree far closer
PREDICT_ROWS = 1 << 16  # rows predicted at a time (about 80 MB of a forest's work)
# Estimates from benchmarks/predict_memory.py (2 cores shared with a CHGNet relaxation): the
# Pt rf family predicts the 3,505,779-row store at 27,600 (limit 24) to 37,700 (limits 0,
# 12, 24) rows/s per limit, an Allegro member about 500 rows/s (allegro_inference.py); peak
# RSS 572 MiB for 15,327 rows and 643 MiB (limit 24) and 674 MiB (limits 0, 12, 24) for
# 3.5 million: one member and one chunk, plus 8 bytes a row for the id check.
ROWS_PER_SECOND = {"forest": 35_000, "allegro": 500}
PEAK_MEMORY = 800 * 2**20  # a family's members and one chunk, whatever the size of the store
STORE_BYTES_PER_ROW = 8  # a limit's predictions at most (gzip: a forest's repeat, 7x less)


def existing_limits(path: Path, backbone: str) -> set[int]:
    """Limits of a backbone already predicted in a store."""
    with open_store(path) as handle:
        group = handle.get(f"predictions/{backbone}")
        return {int(name.split("-")[1]) for name in group} if group is not None else set()


@dataclass(frozen=True)
class Plan:
    """A prediction's work, sized before any is done: the checked store (`scan`), the
    backbone, the family it writes and the limits still to predict."""

    scan: Scan
    backbone: str
    family: str
    limits: tuple[int, ...]

    @classmethod
    def of(
        cls,
        path: str | Path,
        backbone: str = "rf",
        limits: Sequence[int] = LIMITS,
        labels: str = RELAXED,
        scan: Scan | None = None,
    ) -> Plan:
        """Size the prediction of a store (`scan`: the store checked already, if it was)."""
        get_backbone(backbone)  # an unknown name fails first
        scan = scan or scan_store(path)
        family = family_key(backbone, labels)
        done = existing_limits(scan.path, family)
        return cls(scan, backbone, family, tuple(x for x in limits if x not in done))

    @property
    def seconds(self) -> float:
        """Estimated wall time."""
        kind = "allegro" if isinstance(get_backbone(self.backbone), AllegroBackbone) else "forest"
        return self.scan.rows * len(self.limits) / ROWS_PER_SECOND[kind]

    def describe(self) -> str:
        """One line: the size and the estimates."""
        n, k = self.scan.rows, len(self.limits)
        if not k:
            return f"{self.scan.path}: {self.family} has every limit asked for; nothing to predict"
        return (
            f"{self.scan.path}: {n:,} configurations x {k} limit{'s' * (k > 1)} of "
            f"{self.family}; estimated about {human_duration(self.seconds)}, peak memory about "
            f"{human_size(PEAK_MEMORY + 8 * n)}, the store grows by up to "
            f"{human_size(STORE_BYTES_PER_ROW * n * k)}"
        )

    def check(self, limit: int | None) -> None:
        """Refuse a store of more than `limit` rows (None: no limit)."""
        if limit is not None and self.limits and self.scan.rows > limit:
            raise StoreError(
                f"{self.describe()}: more than the limit of {limit:,} configurations; "
                "predict fewer limits at a time, or pass --force to predict it anyway"
            )


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
    plan: Plan | None = None,
    max_rows: int | None = MAX_ROWS,
) -> list[int]:
    """Predict every configuration of a store at each limit; returns the limits written.

    `plan` (made here if not given: the store checked in chunks) is checked against
    `max_rows` before any work. `reuse`: a results file whose predictions of the same rows
    are copied where the member reproduces them (see the module docstring). Each limit is
    predicted `PREDICT_ROWS` rows at a time into a copy of the store, renamed over it when
    the limit is complete, so an interrupted run keeps its finished limits and resumes
    after them; the store's writer lock is held meanwhile (a second writer fails at once).
    """
    path = Path(path)
    kind = get_backbone(backbone)
    plan = plan or Plan.of(path, backbone, limits, labels)
    plan.check(max_rows)
    parent = plan.scan.parent
    stored = _reusable(reuse, path, parent.dopant, plan.family) if reuse else {}
    for k, limit in enumerate(plan.limits):
        member = kind.load(parent.dopant, limit, labels, training, registry, parent)
        values = stored.get(limit)
        if values is not None and not _reproduces(member, path, values):
            values = None
        model = kind.card_dir(parent.dopant, limit, labels, registry)
        write = partial(
            _write_limit, backbone=plan.family, limit=limit, member=member, values=values,
            model=model,
        )  # fmt: skip
        n_test = len(member.card["test_target"])
        reserve = STORE_BYTES_PER_ROW * (plan.scan.rows + (len(LIMITS) + 2) * n_test)
        write_atomically(path, write, base=path, reserve=reserve)
        if progress:
            progress(k + 1, len(plan.limits))
    return list(plan.limits)


def _reusable(results: Path, path: Path, dopant: str, family: str) -> dict[int, np.ndarray]:
    """Limit -> stored predictions of a family in a results file, if it holds the dopant
    with exactly the configuration rows of the store `path` (else nothing)."""
    from qcapprox.results import Results

    with Results(results) as res, open_store(path) as handle:
        if dopant not in res.dopants or family not in res.backbones(dopant):
            return {}
        theirs = res.occupancy(dopant)
        ours = handle["configs/occupancy"]
        if theirs.shape != ours.shape:
            return {}
        for start in range(0, len(theirs), PREDICT_ROWS):
            if not np.array_equal(theirs[start : start + PREDICT_ROWS],
                                  ours[start : start + PREDICT_ROWS]):  # fmt: skip
                return {}
        values = res.predictions(dopant, family)
        return {x: values[LIMITS.index(x)] for x in res.limits(dopant, family)}


def _reproduces(member: Member, path: Path, values: np.ndarray) -> bool:
    """Whether a member predicts the stored values on CHECK_ROWS rows spread evenly over
    the store, to CHECK_TOL eV/atom."""
    rows = np.unique(np.linspace(0, len(values) - 1, CHECK_ROWS).astype(int))
    with open_store(path) as handle:
        occupancy = handle["configs/occupancy"][rows]
    return bool(np.allclose(member.predict(occupancy), values[rows], rtol=0, atol=CHECK_TOL))


def _write_limit(
    handle: h5py.File,
    backbone: str,
    limit: int,
    member: Member,
    values: np.ndarray | None,
    model: Path,
) -> None:
    """predictions/<backbone>/limit-XX (the member's predictions, `PREDICT_ROWS` rows at
    a time, or the reused `values`) and the limit's row of metrics/<backbone>.

    gzip without shuffle: a forest repeats values (7x smaller; shuffling its bytes would
    hide that), a network's float64s still lose a quarter."""
    card = member.card
    occupancy = handle["configs/occupancy"]
    dset = handle.require_group(f"predictions/{backbone}").create_dataset(
        limit_key(limit), shape=(occupancy.shape[0],), dtype=np.float64, compression="gzip"
    )
    if values is not None:
        dset[:] = values
    else:
        for start in range(0, occupancy.shape[0], PREDICT_ROWS):
            dset[start : start + PREDICT_ROWS] = member.predict(
                occupancy[start : start + PREDICT_ROWS]
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
