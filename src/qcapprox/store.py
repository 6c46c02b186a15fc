"""The HDF5 store: one file per set of configurations, append-only and resumable.

Schema version 2 (attributes on the root: `format` = "qcapprox-store", `schema_version`):

    /                      attrs: dopant, host, recipe (TOML text), recipe_name, seed,
                           symprec, spacegroup, parent_source, parent_sha256 (digest of
                           the parent), versions (JSON of package versions)
    /parent/cell           (3, 3) float64, Angstrom (rows are lattice vectors)
    /parent/positions      (n_atoms, 3) float64, Cartesian, Angstrom
    /parent/numbers        (n_atoms,) int32, atomic numbers (host Sc on active sites)
    /parent/orbit          (n_atoms,) str, orbit name of every atom
    /parent/active         (n_active,) int64, active atom indices: A4 then A5
    /parent/permutations   (n_ops, n_atoms) int32, site permutation of every operation
    /configs/id            (n,) int64, stable id: base-3 code of the canonical occupancy
    /configs/occupancy     (n, n_active) uint8, 0 = Sc, 1 = M, 2 = vacancy, all active sites
    /configs/multiplicity  (n,) int64, orbit size under the parent's group
    /configs/composition   (n, 2 n_orbits) int16, (A4 vac, A4 M, A5 vac, A5 M)
    /configs/task          (n,) int32, index of the recipe task that produced the row
    /labels/<kind>/...     label sets added by `qcapprox label` (docs/store.md): kind is
                           "relaxed" (the target) or "single-point"

The configs/ datasets are chunked (8192 rows) and gzip-compressed. Opening a store checks that every
dataset above is present with its shape and dtype (and `Store` that every occupancy code is
0, 1 or 2), so a malformed file is refused with a message naming the dataset.

HDF5 itself is not safe against a process killed in mid-write, so a run never writes into a
finished file in place: its committed work goes to a journal `<store>.partial/` of
atomically renamed segments, and the store is written under a temporary name and renamed
when complete (later steps that add groups copy, extend and rename the same way). A run
killed at any moment and started again resumes from the journal and ends with exactly the
same content. Files of another format or schema version, corrupt files and files of another
run are refused and never modified. One process writes a store at a time: writers hold
`writer_lock` (an advisory lock on `<store>.lock`); readers never wait, since every write
is an atomic rename.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import io
import json
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TypeVar

import h5py
import numpy as np
from ase import Atoms

from qcapprox.errors import StoreError
from qcapprox.mapping import RelaxationMap, read_mapping
from qcapprox.parent import VACANCY, Parent

FORMAT = "qcapprox-store"
SCHEMA_VERSION = 2
RELAXED, SINGLE_POINT = "relaxed", "single-point"
LABEL_KINDS = (RELAXED, SINGLE_POINT)
LABEL_FIELDS = ("energy", "formation_energy", "e_above_hull", "converged")
# dataset -> (shape, dtype); a name in a shape is a size of the store: n (rows), n_atoms,
# n_active (active sites), n_ops (symmetry operations), n_comp (2 per active orbit)
PARENT_LAYOUT: dict[str, tuple[tuple[int | str, ...], type]] = {
    "cell": ((3, 3), np.float64),
    "positions": (("n_atoms", 3), np.float64),
    "numbers": (("n_atoms",), np.int32),
    "orbit": (("n_atoms",), str),
    "active": (("n_active",), np.int64),
    "permutations": (("n_ops", "n_atoms"), np.int32),
}
CONFIG_LAYOUT: dict[str, tuple[tuple[int | str, ...], type]] = {
    "id": (("n",), np.int64),
    "occupancy": (("n", "n_active"), np.uint8),
    "multiplicity": (("n",), np.int64),
    "composition": (("n", "n_comp"), np.int16),
    "task": (("n",), np.int32),
}
CONFIG_FIELDS = tuple(CONFIG_LAYOUT)
CHUNK_ROWS = 8192
T = TypeVar("T")
PACKAGES = ("qcapprox", "numpy", "ase", "spglib", "pymatgen", "h5py")


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """Installed versions of the packages that shape a result."""
    out = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def open_hdf5(path: Path, fmt: str, schema_version: int, kind: str, hint: str = "") -> h5py.File:
    """Open a qcapprox HDF5 file read-only; refuse missing, corrupt, foreign and
    other-version files with a message naming the file (which is left untouched)."""
    try:
        handle = h5py.File(path, "r")
    except FileNotFoundError as err:
        raise StoreError(f"{path}: no such file") from err
    except OSError as err:
        raise StoreError(
            f"{path}: not a readable HDF5 file (corrupt or truncated?): {err}; "
            "the file was left untouched"
        ) from err
    found, schema = handle.attrs.get("format"), handle.attrs.get("schema_version")
    if found != fmt:
        handle.close()
        extra = hint if found else ""
        raise StoreError(
            f"{path}: not a qcapprox {kind} (format attribute {found!r}){extra}; "
            "the file was left untouched"
        )
    if schema != schema_version:
        handle.close()
        raise StoreError(
            f"{path}: {kind} schema version {schema}, this qcapprox reads version "
            f"{schema_version}; the file was left untouched"
        )
    return handle


def open_store(path: Path) -> h5py.File:
    """Open a store read-only and validate it; refuse foreign, corrupt or other-version
    files and files whose datasets are missing or malformed (`check_layout`)."""
    handle = open_hdf5(path, FORMAT, SCHEMA_VERSION, "store")
    try:
        check_layout(handle, path)
    except StoreError:
        handle.close()
        raise
    return handle


def check_layout(group: h5py.Group, path: Path, where: str = "") -> None:
    """Check that the parent/ and configs/ datasets of a store (or of a results file's
    dopant group `where`) are all present, with the shapes and dtypes of the schema, that
    the active sites are distinct atoms and that every symmetry operation is a permutation
    of the atoms. StoreError names the first dataset at fault."""
    layout = {f"parent/{k}": v for k, v in PARENT_LAYOUT.items()}
    layout |= {f"configs/{k}": v for k, v in CONFIG_LAYOUT.items()}

    def fault(name: str, problem: str) -> StoreError:
        return StoreError(f"{path}: {where}{name} {problem}; the file was left untouched")

    for name, (shape, dtype) in layout.items():
        dset = group.get(name)
        if not isinstance(dset, h5py.Dataset):
            raise fault(name, "is missing (not a complete qcapprox store)")
        is_str = h5py.check_string_dtype(dset.dtype) is not None
        if not (is_str if dtype is str else dset.dtype == np.dtype(dtype)):
            expected = "str" if dtype is str else np.dtype(dtype).name
            raise fault(name, f"has dtype {dset.dtype}, expected {expected}")
        if dset.ndim != len(shape):
            raise fault(name, f"has shape {dset.shape}, expected {len(shape)} dimensions")
    orbit = group["parent/orbit"].asstr()[:]
    active = group["parent/active"][:]
    n_atoms = len(orbit)
    if len(np.unique(active)) != len(active) or not np.all((active >= 0) & (active < n_atoms)):
        raise fault("parent/active", f"must list distinct atom indices below {n_atoms}")
    sizes = {
        "n": group["configs/id"].shape[0],
        "n_atoms": n_atoms,
        "n_active": len(active),
        "n_ops": group["parent/permutations"].shape[0],
        "n_comp": 2 * len(set(orbit[active])),
    }
    for name, (shape, _) in layout.items():
        expected = tuple(sizes.get(size, size) for size in shape)
        if group[name].shape != expected:
            raise fault(name, f"has shape {group[name].shape}, expected {expected}")
    perms = group["parent/permutations"][:]
    if not np.array_equal(np.sort(perms, axis=1), np.broadcast_to(np.arange(n_atoms), perms.shape)):
        raise fault("parent/permutations", "has a row that is not a permutation of the atoms")


def check_codes(occupancy: np.ndarray, ids: np.ndarray, path: Path, where: str = "") -> None:
    """Refuse occupancy codes other than 0 (Sc), 1 (M) and 2 (vacancy), naming the first
    configuration at fault."""
    rows = np.flatnonzero(occupancy.max(axis=1, initial=0) > VACANCY)
    if len(rows):
        row = int(rows[0])
        site = int(np.argmax(occupancy[row] > VACANCY))
        raise StoreError(
            f"{path}: {where}configs/occupancy row {row} (id {int(ids[row])}) has code "
            f"{int(occupancy[row, site])} at active site {site} (rows with bad codes: "
            f"{len(rows)}); codes are 0 Sc, 1 M, 2 vacancy; the file was left untouched"
        )


class Store:
    """Read access to a store: parent, configurations and their atoms."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        with open_store(self.path) as handle:
            self.attrs = dict(handle.attrs)
            self._configs = {f: handle[f"configs/{f}"][:] for f in CONFIG_FIELDS}
            check_codes(self.occupancy, self.ids, self.path)
            self.parent = _read_parent(handle, self.path)
            self.split: np.ndarray | None = handle["split"][:] if "split" in handle else None
            if self.split is not None and self.split.shape != (len(self),):
                raise StoreError(
                    f"{self.path}: split has shape {self.split.shape}, expected ({len(self)},); "
                    "the file was left untouched"
                )
            self.labels: dict[str, Labels] = {
                kind: Labels.read(handle[f"labels/{kind}"], kind, len(self))
                for kind in LABEL_KINDS
                if f"labels/{kind}" in handle
            }

    def __len__(self) -> int:
        return len(self._configs["id"])

    @property
    def ids(self) -> np.ndarray:
        """Stable configuration ids."""
        return self._configs["id"]

    @property
    def occupancy(self) -> np.ndarray:
        """(n, n_active) occupancies."""
        return self._configs["occupancy"]

    @property
    def multiplicity(self) -> np.ndarray:
        """Orbit sizes."""
        return self._configs["multiplicity"]

    @property
    def composition(self) -> np.ndarray:
        """(n, 4) counts (A4 vac, A4 M, A5 vac, A5 M)."""
        return self._configs["composition"]

    @property
    def task(self) -> np.ndarray:
        """Index of the recipe task that produced every row."""
        return self._configs["task"]

    def label_set(self, kind: str) -> Labels:
        """The labels of one kind ("relaxed" or "single-point"); a clear error if absent."""
        if kind not in LABEL_KINDS:
            raise StoreError(f"unknown label set {kind!r}: use one of {', '.join(LABEL_KINDS)}")
        if kind not in self.labels:
            have = ", ".join(self.labels) or "none"
            flag = " --relax" if kind == "relaxed" else ""
            raise StoreError(
                f"{self.path} has no {kind} labels (it has: {have}); run "
                f"`qcapprox label {self.path}{flag}` or choose --labels"
            )
        return self.labels[kind]

    def row(self, config_id: int) -> int:
        """Row of a configuration id."""
        hits = np.flatnonzero(self.ids == config_id)
        if len(hits) == 0:
            raise StoreError(f"{self.path}: no configuration with id {config_id}")
        return int(hits[0])

    def atoms(self, config_id: int) -> Atoms:
        """The decorated Atoms of a configuration id."""
        atoms = self.parent.decorate(self.occupancy[self.row(config_id)])
        atoms.info["config_id"] = int(config_id)
        return atoms


@dataclass(frozen=True)
class Labels:
    """One label set of a store: total energies (eV) and the hull quantities derived from
    them (eV/atom, eqs. 1 and 2 of the study), per row.

    kind: "relaxed" (positions and cell relaxed: the target) or "single-point" (the parent
    geometry). converged: False where a relaxation hit its step cap (single points: True
    where the energy is finite); error: "" or the error of a failed structure. usable =
    finite and converged.
    """

    kind: str
    energy: np.ndarray
    formation_energy: np.ndarray
    e_above_hull: np.ndarray
    converged: np.ndarray
    error: np.ndarray
    attrs: dict
    mapping: RelaxationMap | None = None  # relaxed labels: what each row relaxed into

    @classmethod
    def read(cls, group: h5py.Group, kind: str, n: int) -> Labels:
        """Read a labels/<kind> group of a store of n rows; refuse missing or misshapen
        label datasets."""
        for key in (*LABEL_FIELDS, "error"):
            dset = group.get(key)
            if not isinstance(dset, h5py.Dataset) or dset.shape != (n,):
                found = "missing" if dset is None else f"shape {getattr(dset, 'shape', None)}"
                raise StoreError(
                    f"{group.file.filename}: labels/{kind}/{key} is {found}, expected shape "
                    f"({n},); the file was left untouched"
                )
        return cls(
            kind,
            *(group[key][:] for key in LABEL_FIELDS),
            error=group["error"].asstr()[:],
            attrs=dict(group.attrs),
            mapping=read_mapping(group, n) if kind == "relaxed" else None,
        )

    @property
    def usable(self) -> np.ndarray:
        """Rows fit to train or test on: a finite label from a converged calculation."""
        return np.isfinite(self.e_above_hull) & self.converged.astype(bool)

    @property
    def describe(self) -> str:
        """One line naming the labels, for every output that shows them."""
        who = str(self.attrs.get("calculator", "?"))
        note = " (stand-in for DFT)" if self.attrs.get("stand_in_for_dft") else ""
        return f"{self.kind} labels from {who}{note}"


def _read_parent(handle: h5py.File, path: Path) -> Parent:
    group = handle["parent"]
    labels = group["orbit"].asstr()[:]
    active = group["active"][:]
    names = list(dict.fromkeys(labels[active]))
    orbits = {name: np.flatnonzero(labels == name) for name in dict.fromkeys(labels)}
    atoms = Atoms(
        numbers=group["numbers"][:],
        positions=group["positions"][:],
        cell=group["cell"][:],
        pbc=True,
    )
    return Parent(
        atoms=atoms,
        orbits=orbits,
        active_orbits=tuple(names),
        dopant=str(handle.attrs["dopant"]),
        permutations=group["permutations"][:].astype(np.intp),
        spacegroup=str(handle.attrs["spacegroup"]),
        symprec=float(handle.attrs["symprec"]),
        source=f"{path} (stored parent)",
    )


@contextmanager
def writer_lock(path: Path) -> Iterator[None]:
    """Hold the one-writer lock of a store: an exclusive advisory lock (`fcntl.flock`) on
    `<store>.lock`, a file that holds the writer's process id and exists while it writes.
    A second writer fails at once with a StoreError naming that process; readers never
    take the lock."""
    path = Path(path)
    lock = path.with_name(path.name + ".lock")
    with open(lock, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as err:
            handle.seek(0)
            raise StoreError(
                f"{path} is being written by another qcapprox process (pid "
                f"{handle.read().strip() or '?'}, lock {lock}); wait for it to finish: "
                "nothing was changed"
            ) from err
        if not lock.exists() or os.stat(lock).st_ino != os.fstat(handle.fileno()).st_ino:
            raise StoreError(f"{path}: its writer lock {lock} changed hands just now; run again")
        try:
            handle.truncate(0)
            handle.write(str(os.getpid()))
            handle.flush()
            yield
        finally:
            lock.unlink()


def one_writer(function: Callable[..., T]) -> Callable[..., T]:
    """Decorator of a function whose first argument is the store it writes: the function
    runs under that store's `writer_lock`."""

    @functools.wraps(function)
    def locked(path: str | Path, *args: object, **kwargs: object) -> T:
        with writer_lock(Path(path)):
            return function(path, *args, **kwargs)

    return locked


def parent_digest(parent: Parent) -> str:
    """SHA-256 of the parent's cell, positions (rounded to 1e-6 A) and numbers."""
    digest = hashlib.sha256()
    for array in (parent.atoms.cell[:], parent.atoms.positions):
        digest.update(np.round(np.asarray(array), 6).tobytes())
    digest.update(parent.atoms.numbers.astype(np.int64).tobytes())
    return digest.hexdigest()


def run_identity(parent: Parent, meta: dict) -> dict:
    """The attributes that identify a run: a store or journal resumes only the same run."""
    return {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "dopant": parent.dopant,
        "host": parent.host,
        "spacegroup": parent.spacegroup,
        "symprec": parent.symprec,
        "parent_source": parent.source,
        "parent_sha256": parent_digest(parent),
        **meta,
    }


def check_same_run(path: Path, identity: dict, stored: dict) -> None:
    """Refuse a store or journal written by another run (package versions may differ)."""
    for key, value in identity.items():
        if key == "versions":
            continue
        if stored.get(key) != value:
            raise StoreError(
                f"{path} holds another run ({key} = {stored.get(key)!r}, this run has "
                f"{value!r}); choose another output: the existing one was left untouched"
            )


class Journal:
    """Resumable work beside a target file: `<target>.partial/` holds numbered segments.

    Each segment (.npz) is written under a temporary name, synced and renamed, so a
    killed run leaves only whole segments; `done` (e.g. tasks completed) is recorded in
    every segment. The journal refuses to continue another run's work.
    """

    def __init__(self, target: Path, identity: dict) -> None:
        self.dir = target.with_name(target.name + ".partial")
        ident = self.dir / "identity.json"
        if ident.exists():
            check_same_run(self.dir, identity, json.loads(ident.read_text()))
        else:
            self.dir.mkdir(parents=True, exist_ok=True)
            _atomic_bytes(ident, json.dumps(identity, sort_keys=True).encode())

    @classmethod
    def existing(cls, target: Path) -> Journal | None:
        """The journal of `target` as it stands, to read (None if there is none): its
        identity is not checked and nothing is written."""
        journal = cls.__new__(cls)
        journal.dir = target.with_name(target.name + ".partial")
        return journal if (journal.dir / "identity.json").exists() else None

    def segments(self) -> list[Path]:
        """The committed segments in order."""
        return sorted(self.dir.glob("segment-*.npz"))

    @property
    def done(self) -> int:
        """Units of work committed (0 for a new journal)."""
        segments = self.segments()
        if not segments:
            return 0
        with np.load(segments[-1]) as data:
            return int(data["done"])

    def add(self, done: int, arrays: dict[str, np.ndarray]) -> None:
        """Commit one segment of arrays after `done` units of work."""
        path = self.dir / f"segment-{len(self.segments()):06d}.npz"
        buffer = io.BytesIO()
        np.savez(buffer, done=np.int64(done), **arrays)
        _atomic_bytes(path, buffer.getvalue())

    def load(self) -> Iterator[dict[str, np.ndarray]]:
        """The committed segments' arrays, in order."""
        for path in self.segments():
            with np.load(path) as data:
                yield {key: data[key] for key in data.files if key != "done"}

    def remove(self) -> None:
        """Delete the journal once its work is in the target file."""
        shutil.rmtree(self.dir)


def _atomic_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def write_atomically(
    path: Path, fill: Callable[[h5py.File], None], base: Path | None = None
) -> None:
    """Write an HDF5 file under a temporary name (a copy of `base` if given), then rename.

    Readers see either the old file or the complete new one, never a partial write.
    """
    tmp = path.with_name(path.name + ".tmp")
    if base is not None:
        shutil.copyfile(base, tmp)
    try:
        with h5py.File(tmp, "r+" if base is not None else "w", track_order=True) as handle:
            fill(handle)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def create_store(
    path: Path, parent: Parent, identity: dict, segments: Iterator[dict[str, np.ndarray]]
) -> int:
    """Write a complete store from segments of config columns; returns the row count."""
    rows = 0

    def fill(handle: h5py.File) -> None:
        nonlocal rows
        _create(handle, parent, identity)
        for columns in segments:
            n = len(columns["id"])
            for name in CONFIG_FIELDS:
                dset = handle[f"configs/{name}"]
                dset.resize(rows + n, axis=0)
                dset[rows:] = columns[name]
            rows += n

    write_atomically(path, fill)
    return rows


def _create(handle: h5py.File, parent: Parent, identity: dict) -> None:
    for key, value in identity.items():
        handle.attrs[key] = value
    group = handle.create_group("parent")
    group["cell"] = np.asarray(parent.atoms.cell[:])
    group["positions"] = parent.atoms.positions
    group["numbers"] = parent.atoms.numbers.astype(np.int32)
    group.create_dataset(
        "orbit", data=parent.orbit_of_atom.astype(str).tolist(), dtype=h5py.string_dtype()
    )
    group["active"] = parent.active.astype(np.int64)
    group["permutations"] = parent.permutations.astype(np.int32)
    configs = handle.create_group("configs")
    sizes = {"n": 0, "n_active": parent.n_active, "n_comp": 2 * len(parent.active_orbits)}
    for name, (layout, dtype) in CONFIG_LAYOUT.items():
        shape = tuple(sizes[size] for size in layout)
        configs.create_dataset(
            name,
            shape=shape,
            maxshape=(None, *shape[1:]),
            dtype=dtype,
            chunks=(CHUNK_ROWS, *shape[1:]),
            compression="gzip",
            compression_opts=4,
            shuffle=True,
        )
    configs["composition"].attrs["columns"] = [
        f"{orbit} {kind}" for orbit in parent.active_orbits for kind in ("vacancies", "M")
    ]
