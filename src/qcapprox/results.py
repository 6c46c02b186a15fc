"""The results file: several dopants' predicted stores bundled into one HDF5 file.

Format `qcapprox-results`, schema version 1 (root attributes `format`, `schema_version`,
`sources` (JSON dopant -> store path), `versions` (JSON of package versions)):

    /<dopant>/                      attrs: the store's root attributes (dopant, recipe, ...)
    /<dopant>/parent/...            copy of the store's parent/ group
    /<dopant>/configs/...           copy of configs/ (id, occupancy, multiplicity,
                                    composition, task)
    /<dopant>/predictions/<backbone>/limit-XX
                                    (n,) float64, predicted energy above hull, eV/atom, of
                                    every configuration row; XX = 00, 02, ..., 24;
                                    attrs: model (registry path), labeler
    /<dopant>/metrics/<backbone>/test_rmse         (13,) float64, eV/atom, per limit
    /<dopant>/metrics/<backbone>/test_predictions  (13, n_test) float64
    /<dopant>/metrics/<backbone>/test_target       (n_test,) float64
                                    group attr test_mean: mean of the test targets (ȳ of eq. 4)
    /<dopant>/subsets               optional (13, 4) int64: train, validation, test and total
                                    sizes of every limit's training subset (from the dopant's
                                    labelled training store and its split, when bundled with it)
    /<dopant>/relaxed_into          optional (n,) int64: for every configuration relaxed in the
                                    dopant's labelled stores (training store and its depth
                                    design), the configuration its relaxation ended in
                                    (`qcapprox.mapping`); UNMAPPABLE (-1) where none matched,
                                    NOT_RELAXED (-2) for configurations never relaxed

Reading is lazy: opening lists the groups and checks what their metadata can show (every
top-level group an element symbol, prediction datasets named limit-00 ... limit-24 step 2,
floating point and one value per configuration, metrics and subsets of their shapes);
arrays are read on first use, checked (predictions finite, occupancy codes 0..2) and
cached. A file at fault is refused with a StoreError naming it and the dataset, and left
untouched.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
from ase import Atoms
from ase.data import chemical_symbols

from qcapprox.analysis import label_kind
from qcapprox.datasets import subset_sizes
from qcapprox.enumeration import Enumerator
from qcapprox.errors import StoreError
from qcapprox.mapping import UNMAPPABLE, read_mapping
from qcapprox.models import BACKBONES
from qcapprox.models.base import depth_store
from qcapprox.parent import Parent
from qcapprox.store import (
    _read_parent,
    check_codes,
    check_layout,
    open_hdf5,
    open_store,
    package_versions,
    write_atomically,
    writer_lock,
)
from qcapprox.words import LABEL_KINDS, LIMITS, RELAXED, limit_key, split_family_key

FORMAT = "qcapprox-results"
SCHEMA_VERSION = 1
GROUPS = ("parent", "configs", "predictions", "metrics")
SUBSET_COLUMNS = ("train", "validation", "test", "total")
#: /<dopant>/relaxed_into of a configuration never relaxed (UNMAPPABLE: relaxed, no match).
NOT_RELAXED = -2
KEPT = "kept its identity in its CHGNet relaxation"
UNMAPPABLE_TEXT = "relaxation unmappable"


def relaxation_words(into: int, own: int) -> str:
    """What a configuration (id `own`) relaxed into, in the words of the UI and the report,
    from its /<dopant>/relaxed_into value; "" when it was never relaxed."""
    if into == NOT_RELAXED:
        return ""
    if into == UNMAPPABLE:
        return UNMAPPABLE_TEXT
    return KEPT if into == own else f"relaxed into configuration {into}"
METRICS = ("test_rmse", "test_predictions", "test_target")
DEFAULT_LABELER = "chgnet (stand-in for DFT)"


def energy_label(labeler: str | None) -> str:
    """How energies are labelled on screen and in figures.

    The bundled labeler is CHGNet, a stand-in for DFT: its values are called "CHGNet
    stand-in labels", never DFT. Any other labeler is named as recorded.
    """
    if not labeler or "chgnet" in labeler.lower():
        return "CHGNet stand-in labels"
    return f"labels: {labeler}"


def _ordered_backbones(names: list[str]) -> tuple[str, ...]:
    """Families in the registry's order of backbones (rf first), the relaxed-label families
    of a backbone (the study's design, then other set-ups by name) before its other label
    sets, then unknown backbones by name."""
    order = list(BACKBONES)

    def key(name: str) -> tuple[int, int, bool, str]:
        backbone, setup = split_family_key(name)
        rank = order.index(backbone) if backbone in order else len(order)
        return rank, LABEL_KINDS.index(label_kind(name)), setup != RELAXED, name

    return tuple(sorted(names, key=key))


def bundle(
    stores: Mapping[str, Path], out: Path, training: Mapping[str, Path] | None = None
) -> Path:
    """Bundle per-dopant stores (dopant -> store path) into the results file `out`.

    Copies each store's parent/, configs/, predictions/ and metrics/ groups (h5py copy)
    and its root attributes into /<dopant>; written under a temporary name and renamed,
    under the writer lock of `out` (a second bundle into it fails at once, naming the
    first). Every store is validated (format, schema, dopant, prediction shapes) first.
    `training` (dopant -> labelled training store) adds /<dopant>/subsets, the sizes of
    the limit subsets, for the dopants whose training store has its split already, and
    /<dopant>/relaxed_into, what the configurations relaxed in it (and in its depth design)
    relaxed into.
    """
    out = Path(out)
    if not stores:
        raise StoreError(f"{out}: nothing to bundle, give at least one store")
    with writer_lock(out):
        _bundle(stores, out, training)
    return out


def _bundle(stores: Mapping[str, Path], out: Path, training: Mapping[str, Path] | None) -> None:
    """`bundle`'s work, under the writer lock of `out`."""
    subsets = {d: _subsets(Path(p), d) for d, p in (training or {}).items() if d in stores}
    for dopant, path in stores.items():
        with open_store(Path(path)) as handle:
            stored = str(handle.attrs.get("dopant"))
            if stored != dopant:
                raise StoreError(
                    f"{path} holds dopant {stored}, not {dopant}: pair each store with its dopant"
                )
            n = len(handle["configs/id"])
            for name, item in handle.get("predictions", {}).items():
                for key, dset in item.items():
                    if key not in {limit_key(x) for x in LIMITS} or dset.shape != (n,):
                        raise StoreError(
                            f"{path}: predictions/{name}/{key} has shape {dset.shape}; expected "
                            f"limit-00 ... limit-24 datasets of shape ({n},)"
                        )

    def fill(handle: h5py.File) -> None:
        handle.attrs["format"] = FORMAT
        handle.attrs["schema_version"] = SCHEMA_VERSION
        handle.attrs["sources"] = json.dumps({d: str(p) for d, p in stores.items()})
        handle.attrs["versions"] = json.dumps(package_versions())
        for dopant, path in stores.items():
            group = handle.create_group(dopant, track_order=True)
            with h5py.File(path, "r") as src:
                for key, value in src.attrs.items():
                    group.attrs[key] = value
                for name in GROUPS:
                    if name in src:
                        src.copy(src[name], group, name=name)
            ids = group["configs/id"][:]
            relaxed = _relaxed_into(ids, [training[dopant], depth_store(training[dopant])]
                                    if training and dopant in training else [])  # fmt: skip
            if relaxed is not None:
                group["relaxed_into"] = relaxed
            sizes = subsets.get(dopant)
            if sizes is not None:
                group["subsets"] = sizes
                group["subsets"].attrs["columns"] = list(SUBSET_COLUMNS)
                group["subsets"].attrs["source"] = str(training[dopant])

    write_atomically(out, fill)


def _subsets(path: Path, dopant: str) -> np.ndarray | None:
    """(13, 4) subset sizes of a training store, or None if it has no split yet."""
    with open_store(path) as handle:
        stored = str(handle.attrs.get("dopant"))
        if stored != dopant:
            raise StoreError(
                f"{path} holds dopant {stored}, not {dopant}: pair each training store "
                "with its dopant"
            )
        if "split" not in handle:
            return None
        rows = subset_sizes(handle["configs/composition"][:], handle["split"][:])
    return np.array([[row[c] for c in SUBSET_COLUMNS] for row in rows], dtype=np.int64)


def _relaxed_into(ids: np.ndarray, stores: list[Path]) -> np.ndarray | None:
    """(n,) what each configuration id relaxed into, from the relaxation maps of the
    labelled stores that exist (the first store that relaxed an id decides); None when no
    store holds a map."""
    out = np.full(len(ids), NOT_RELAXED, dtype=np.int64)
    found = False
    for path in stores:
        if not Path(path).exists():
            continue
        with open_store(Path(path)) as handle:
            group = handle.get(f"labels/{RELAXED}")
            mapping = None if group is None else read_mapping(group, len(handle["configs/id"]))
            if mapping is None:
                continue
            found = True
            labelled = handle["configs/id"][:]
        order = np.argsort(labelled, kind="stable")
        where = np.searchsorted(labelled[order], ids)
        where = np.minimum(where, len(labelled) - 1)
        hit = (labelled[order][where] == ids) & (out == NOT_RELAXED)
        out[hit] = mapping.relaxed_into[order][where[hit]]
    return out if found else None


@dataclass(frozen=True)
class Metrics:
    """Test-set metrics of one family (one backbone, one dopant), eV/atom.

    test_rmse: (13,) as stored; test_predictions: (13, n_test); test_target: (n_test,);
    test_mean: ȳ of eq. 4.
    """

    test_rmse: np.ndarray
    test_predictions: np.ndarray
    test_target: np.ndarray
    test_mean: float


class Results:
    """Read access to a results file; arrays are loaded lazily and cached.

    Use as a context manager or call `close()`; the file stays open (read-only) between.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._handle = _open_results(self.path)
        self._lock = threading.RLock()
        self._cache: dict[tuple, object] = {}
        try:
            self.attrs = dict(self._handle.attrs)
            self.dopants: tuple[str, ...] = tuple(self._handle.keys())
            self._backbones: dict[str, tuple[str, ...]] = {}
            self._limits: dict[tuple[str, str], tuple[int, ...]] = {}
            self._metrics: dict[str, tuple[str, ...]] = {}
            for dopant in self.dopants:
                group = self._handle[dopant]
                _check_dopant(group, self.path, dopant)
                preds = group.get("predictions", {})
                self._backbones[dopant] = _ordered_backbones(list(preds))
                for backbone in self._backbones[dopant]:
                    keys = set(preds[backbone])
                    self._limits[dopant, backbone] = tuple(
                        x for x in LIMITS if limit_key(x) in keys
                    )
                self._metrics[dopant] = _ordered_backbones(list(group.get("metrics", {})))
        except Exception:
            self._handle.close()
            raise
        if not self.dopants:
            self._handle.close()
            raise StoreError(f"{self.path}: results file holds no dopant; bundle some stores")

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Close the file."""
        self._handle.close()

    def __enter__(self) -> Results:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Results({str(self.path)!r}, dopants={self.dopants})"

    # ------------------------------------------------------------------ listing
    def _check(self, dopant: str, backbone: str | None = None) -> None:
        if dopant not in self.dopants:
            raise StoreError(f"{self.path}: no dopant {dopant!r} (holds {', '.join(self.dopants)})")
        if backbone is not None and backbone not in self._backbones[dopant]:
            raise StoreError(
                f"{self.path}: no predictions of backbone {backbone!r} for {dopant} "
                f"(holds {', '.join(self._backbones[dopant]) or 'none'})"
            )

    def backbones(self, dopant: str) -> tuple[str, ...]:
        """Backbones with predictions for a dopant, in the registry's order (rf first)."""
        self._check(dopant)
        return self._backbones[dopant]

    def limits(self, dopant: str, backbone: str) -> tuple[int, ...]:
        """Limits present in the predictions of a family."""
        self._check(dopant, backbone)
        return self._limits[dopant, backbone]

    def metric_backbones(self, dopant: str) -> tuple[str, ...]:
        """Backbones with test metrics for a dopant."""
        self._check(dopant)
        return self._metrics[dopant]

    # ------------------------------------------------------------------ arrays
    def _cached(self, key: tuple, load):
        with self._lock:
            if key not in self._cache:
                self._cache[key] = load()
            return self._cache[key]

    def _config(self, dopant: str, field: str) -> np.ndarray:
        self._check(dopant)
        return self._cached(
            ("configs", dopant, field), lambda: self._handle[dopant]["configs"][field][:]
        )

    def n_configs(self, dopant: str) -> int:
        """Number of configurations (rows) of a dopant."""
        self._check(dopant)
        return int(self._handle[dopant]["configs/id"].shape[0])

    def ids(self, dopant: str) -> np.ndarray:
        """Stable configuration ids (n,)."""
        return self._config(dopant, "id")

    def occupancy(self, dopant: str) -> np.ndarray:
        """(n, n_active) occupancies: 0 = Sc, 1 = M, 2 = vacancy (other codes are refused)."""
        self._check(dopant)

        def load() -> np.ndarray:
            occupancy = self._handle[dopant]["configs/occupancy"][:]
            check_codes(occupancy, self.ids(dopant), self.path, f"{dopant}/")
            return occupancy

        return self._cached(("configs", dopant, "occupancy"), load)

    def composition(self, dopant: str) -> np.ndarray:
        """(n, 4) counts (A4 vacancies, A4 M, A5 vacancies, A5 M)."""
        return self._config(dopant, "composition")

    def multiplicity(self, dopant: str) -> np.ndarray:
        """(n,) orbit sizes."""
        return self._config(dopant, "multiplicity")

    def predictions(self, dopant: str, backbone: str) -> np.ndarray:
        """(13, n) predicted energies above hull, eV/atom; rows = limits 0..24, NaN if missing."""
        self._check(dopant, backbone)

        def load() -> np.ndarray:
            group = self._handle[dopant]["predictions"][backbone]
            out = np.full((len(LIMITS), self.n_configs(dopant)), np.nan)
            for k, limit in enumerate(LIMITS):
                key = limit_key(limit)
                if key in group:  # shape and dtype were checked on opening
                    group[key].read_direct(out, dest_sel=np.s_[k])
                    name = f"{dopant}/predictions/{backbone}/{key}"
                    _check_finite(out[k], self.ids(dopant), self.path, name)
            out.setflags(write=False)
            return out

        return self._cached(("pred", dopant, backbone), load)

    def prediction_attrs(self, dopant: str, backbone: str) -> dict[int, dict]:
        """Attributes (model, labeler) of every present limit's dataset."""
        self._check(dopant, backbone)
        group = self._handle[dopant]["predictions"][backbone]
        return {x: dict(group[limit_key(x)].attrs) for x in self.limits(dopant, backbone)}

    def labeler(self, dopant: str) -> str:
        """The labeler recorded with the predictions (the bundled default if none)."""
        self._check(dopant)

        def load() -> str:
            for backbone in self._backbones[dopant]:
                group = self._handle[dopant]["predictions"][backbone]
                for key in group:
                    value = group[key].attrs.get("labeler")
                    if value:
                        return str(value)
            return DEFAULT_LABELER

        return self._cached(("labeler", dopant), load)

    def energy_label(self, dopant: str) -> str:
        """'CHGNet stand-in labels' (or the recorded labeler if it is another one)."""
        return energy_label(self.labeler(dopant))

    def metrics(self, dopant: str, backbone: str) -> Metrics | None:
        """Test metrics of a family, or None if the file holds none."""
        self._check(dopant)
        if backbone not in self._metrics[dopant]:
            return None

        def load() -> Metrics:
            group = self._handle[dopant]["metrics"][backbone]  # complete: checked on opening
            target = group["test_target"][:]
            mean = group.attrs.get("test_mean")
            return Metrics(
                test_rmse=group["test_rmse"][:],
                test_predictions=group["test_predictions"][:],
                test_target=target,
                test_mean=float(np.mean(target) if mean is None else mean),
            )

        return self._cached(("metrics", dopant, backbone), load)

    def relaxed_into(self, dopant: str) -> np.ndarray | None:
        """(n,) what each configuration relaxed into where a labelled store relaxed it:
        a configuration id (its own when it kept its identity), UNMAPPABLE (-1), or
        NOT_RELAXED (-2); None when the file carries no relaxation maps."""
        self._check(dopant)
        group = self._handle[dopant]
        if "relaxed_into" not in group:
            return None

        def load() -> np.ndarray:
            values = group["relaxed_into"][:]
            if values.size and values.min() < NOT_RELAXED:
                raise _fault(self.path, group["relaxed_into"], "holds ids below -2")
            return values

        return self._cached(("relaxed_into", dopant), load)

    def subset_sizes(self, dopant: str) -> dict[str, np.ndarray] | None:
        """Training subset sizes per limit (train, validation, test, total) from
        /<dopant>/subsets; None when the file has none (bundled without the training store)."""
        self._check(dopant)
        group = self._handle[dopant]
        if "subsets" not in group:
            return None
        table = group["subsets"][:]
        return {name: table[:, k] for k, name in enumerate(SUBSET_COLUMNS)}

    def parent(self, dopant: str) -> Parent:
        """The parent of a dopant's configurations (for export)."""
        self._check(dopant)
        return self._cached(
            ("parent", dopant), lambda: _read_parent(self._handle[dopant], self.path)
        )

    def row(self, dopant: str, config_id: int) -> int:
        """Row of a configuration id."""
        hits = np.flatnonzero(self.ids(dopant) == config_id)
        if len(hits) == 0:
            raise StoreError(f"{self.path}: {dopant} has no configuration with id {config_id}")
        return int(hits[0])

    def known_phase_row(self, dopant: str) -> int | None:
        """Row of the known Sc57M13 phase (`Parent.known_phase`, canonicalized) among the
        dopant's configurations, or None when the set does not hold it."""

        def load() -> int | None:
            parent = self.parent(dopant)
            known = Enumerator.from_parent(parent).config_ids(parent.known_phase())[0]
            hits = np.flatnonzero(self.ids(dopant) == known)
            return int(hits[0]) if len(hits) else None

        self._check(dopant)
        return self._cached(("known_phase_row", dopant), load)

    def atoms(self, dopant: str, config_id: int) -> Atoms:
        """The decorated Atoms of a configuration (parent.decorate(occupancy))."""
        row = self.row(dopant, config_id)
        atoms = self.parent(dopant).decorate(self.occupancy(dopant)[row])
        atoms.info["config_id"] = int(config_id)
        atoms.info["multiplicity"] = int(self.multiplicity(dopant)[row])
        return atoms


def _check_dopant(group: h5py.Group | h5py.Dataset, path: Path, dopant: str) -> None:
    """Refuse a dopant group whose layout no bundle writes, from metadata alone: a name
    that is not an element symbol, the store layout (`check_layout`), prediction datasets
    not named limit-00 ... limit-24 (step 2), not floating point or not one value per
    configuration, metrics without (13,) test_rmse, (13, n_test) test_predictions and
    (n_test,) test_target, subsets that are not (13, 4) integers."""
    if dopant not in chemical_symbols[1:] or not isinstance(group, h5py.Group):
        raise StoreError(
            f"{path}: top-level {dopant!r} is not a dopant group (one per element symbol, "
            "e.g. Pt); bundle the stores again; the file was left untouched"
        )
    check_layout(group, path, f"{dopant}/")
    n, rows = group["configs/id"].shape[0], len(LIMITS)
    limits = [limit_key(x) for x in LIMITS]
    for family in group.get("predictions", {}).values():
        if not isinstance(family, h5py.Group):
            raise _fault(path, family, "is not a group of limit datasets")
        for key, dset in family.items():
            if key not in limits:
                raise _fault(
                    path, dset, f"is not a limit: {limits[0]}, {limits[1]}, ..., {limits[-1]}"
                )
            _expect(path, dset, (n,), "f", "floating point energies (eV/atom)")
    for metrics in group.get("metrics", {}).values():
        if not isinstance(metrics, h5py.Group):
            raise _fault(path, metrics, "is not a group of test metrics")
        missing = [key for key in METRICS if key not in metrics]
        if missing:
            raise _fault(path, metrics, f"is incomplete: no {', '.join(missing)}")
        target = metrics["test_target"]
        n_test = target.shape[0] if isinstance(target, h5py.Dataset) and target.ndim else -1
        _expect(path, target, (n_test,), "f", "floating point (eV/atom)")
        _expect(path, metrics["test_rmse"], (rows,), "f", "floating point (eV/atom)")
        _expect(path, metrics["test_predictions"], (rows, n_test), "f", "floating point")
    if "relaxed_into" in group:
        _expect(path, group["relaxed_into"], (n,), "i", "configuration ids (int64)")
    if "subsets" in group:
        columns = ", ".join(SUBSET_COLUMNS)
        _expect(path, group["subsets"], (rows, 4), "iu", f"integers (limits x {columns})")


def _fault(path: Path, item: h5py.HLObject, problem: str) -> StoreError:
    """The one-line error of a results file's dataset or group."""
    return StoreError(f"{path}: {item.name.lstrip('/')} {problem}; the file was left untouched")


def _expect(path: Path, item: h5py.HLObject, shape: tuple, kinds: str, what: str) -> None:
    """Refuse `item` unless it is a dataset of `shape` whose dtype kind is in `kinds`."""
    if not isinstance(item, h5py.Dataset):
        raise _fault(path, item, f"is a group, expected {what} of shape {shape}")
    if item.shape != shape or item.dtype.kind not in kinds:
        raise _fault(
            path, item, f"is {item.dtype} of shape {item.shape}, expected {what} of shape {shape}"
        )


def _check_finite(values: np.ndarray, ids: np.ndarray, path: Path, name: str) -> None:
    """Refuse a prediction dataset holding NaN or +-inf, naming the first configuration."""
    bad = np.flatnonzero(~np.isfinite(values))
    if len(bad):
        row = int(bad[0])
        raise StoreError(
            f"{path}: {name} holds {len(bad)} non-finite value(s) (first: "
            f"{values[row]} at row {row}, id {int(ids[row])}); predictions are finite energies "
            "above the hull (eV/atom): predict the store again and bundle it; the file was "
            "left untouched"
        )


def _open_results(path: Path) -> h5py.File:
    """Open a results file read-only; refuse foreign, corrupt or other-version files."""
    hint = " (a single store: bundle it with results.bundle)"
    return open_hdf5(path, FORMAT, SCHEMA_VERSION, "results file", hint)
