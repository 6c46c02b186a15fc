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
dataset above is present with its shape and dtype, and reading it (`Store`, or `scan_store`
in bounded memory) that the `dopant` attribute is a metal's element symbol (it names
registry, training and reference files), that the parent holds Sc and that metal only, that
every occupancy code is 0, 1 or 2, every multiplicity positive, every composition that of
its occupancy, every id once, and that label sets hold float64 energies: a malformed file
is refused with one line naming the file and the dataset.

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

import errno
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
from ase.data import atomic_numbers
from pymatgen.core import Element

from qcapprox.errors import StoreError
from qcapprox.mapping import RelaxationMap, read_mapping
from qcapprox.parent import HOST, VACANCY, Parent
from qcapprox.words import LABEL_KINDS

FORMAT = "qcapprox-store"
SCHEMA_VERSION = 2
LABEL_FIELDS = ("energy", "formation_energy", "e_above_hull", "converged")
# label dataset -> dtype: the energies and hull quantities are float64 (an integer type
# would truncate them), converged a bool, error a string
LABEL_DTYPES: dict[str, type] = {
    "energy": np.float64,
    "formation_energy": np.float64,
    "e_above_hull": np.float64,
    "converged": np.bool_,
    "error": str,
}
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
CHECKED_FIELDS = ("id", "occupancy", "multiplicity", "composition")  # `check_rows` reads these
CHUNK_ROWS = 8192
SCAN_ROWS = 1 << 18  # rows read at a time by `scan_store`
RESERVE_MARGIN = 1 << 20  # bytes allocated beyond a write's estimate, for HDF5's records
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


def check_codes(
    occupancy: np.ndarray, ids: np.ndarray, path: Path, where: str = "", start: int = 0
) -> None:
    """Refuse occupancy codes other than 0 (Sc), 1 (M) and 2 (vacancy), naming the first
    configuration at fault (rows counted from `start`, the first row of this chunk)."""
    rows = np.flatnonzero(occupancy.max(axis=1, initial=0) > VACANCY)
    if len(rows):
        row = int(rows[0])
        site = int(np.argmax(occupancy[row] > VACANCY))
        raise StoreError(
            f"{path}: {where}configs/occupancy row {start + row} (id {int(ids[row])}) has code "
            f"{int(occupancy[row, site])} at active site {site} (rows with bad codes: "
            f"{len(rows)}); codes are 0 Sc, 1 M, 2 vacancy; the file was left untouched"
        )


def check_rows(columns: dict[str, np.ndarray], parent: Parent, path: Path, start: int = 0) -> None:
    """Refuse configuration rows (a chunk of configs/ columns starting at row `start`) with
    an occupancy code other than 0, 1, 2, a multiplicity below 1 or a composition that is
    not the counts of the occupancy, naming the first row at fault."""
    ids, occupancy = columns["id"], columns["occupancy"]
    check_codes(occupancy, ids, path, start=start)

    def fault(name: str, rows: np.ndarray, problem: str, fix: str) -> StoreError:
        row = int(rows[0])
        return StoreError(
            f"{path}: configs/{name} row {start + row} (id {int(ids[row])}) {problem} (rows at "
            f"fault: {len(rows)}); {fix}; the file was left untouched"
        )

    low = np.flatnonzero(columns["multiplicity"] < 1)
    if len(low):
        found = int(columns["multiplicity"][low[0]])
        raise fault("multiplicity", low, f"is {found}", "an orbit holds at least 1 decoration")
    counts = np.atleast_2d(parent.composition(occupancy))
    wrong = np.flatnonzero((counts != columns["composition"]).any(axis=1))
    if len(wrong):
        row = int(wrong[0])
        problem = (
            f"is {columns['composition'][row].tolist()}, but its occupancy has "
            f"{counts[row].tolist()} (vacancies, M per active orbit)"
        )
        raise fault("composition", wrong, problem, "enumerate the store again")


def check_unique(ids: np.ndarray, path: Path) -> None:
    """Refuse a configs/id column in which an id occurs more than once; `ids` is sorted in
    place (a copy is the caller's to make)."""
    ids.sort()
    twice = np.flatnonzero(ids[1:] == ids[:-1])
    if len(twice):
        raise StoreError(
            f"{path}: configs/id holds id {int(ids[twice[0]])} more than once (ids repeated: "
            f"{len(np.unique(ids[twice]))}); a store lists each configuration once: enumerate "
            "it again; the file was left untouched"
        )


def check_labels(group: h5py.Group, kind: str, n: int) -> None:
    """Refuse a labels/<kind> group of a store of n rows whose datasets are missing,
    misshapen or of another dtype than `LABEL_DTYPES` (from metadata alone)."""
    for key, dtype in LABEL_DTYPES.items():
        dset = group.get(key)
        if not isinstance(dset, h5py.Dataset) or dset.shape != (n,):
            found = "missing" if dset is None else f"shape {getattr(dset, 'shape', None)}"
            raise StoreError(
                f"{group.file.filename}: labels/{kind}/{key} is {found}, expected shape "
                f"({n},); the file was left untouched"
            )
        is_str = h5py.check_string_dtype(dset.dtype) is not None
        if not (is_str if dtype is str else dset.dtype == np.dtype(dtype)):
            expected = "str" if dtype is str else np.dtype(dtype).name
            raise StoreError(
                f"{group.file.filename}: labels/{kind}/{key} has dtype {dset.dtype}, expected "
                f"{expected}; the file was left untouched"
            )


@dataclass(frozen=True)
class Scan:
    """What `scan_store` found in a valid store: its parent and its number of rows."""

    path: Path
    parent: Parent
    rows: int


def scan_store(path: str | Path, chunk_rows: int = SCAN_ROWS) -> Scan:
    """Open a store and check all of it as `Store` does, reading `chunk_rows` rows at a
    time: the memory used does not grow with the store but for the ids (8 bytes a row),
    which must be held together to be checked unique."""
    path = Path(path)
    with open_store(path) as handle:
        parent = _read_parent(handle, path)
        configs = handle["configs"]
        n = configs["id"].shape[0]
        ids = np.empty(n, dtype=np.int64)
        for start in range(0, n, chunk_rows):
            columns = {f: configs[f][start : start + chunk_rows] for f in CHECKED_FIELDS}
            check_rows(columns, parent, path, start)
            ids[start : start + len(columns["id"])] = columns["id"]
        check_unique(ids, path)
        _read_split(handle, path, n)
        for kind in LABEL_KINDS:
            if f"labels/{kind}" in handle:
                check_labels(handle[f"labels/{kind}"], kind, n)
        return Scan(path, parent, n)


def _read_split(handle: h5py.File, path: Path, n: int) -> np.ndarray | None:
    """The split of a store of n rows (None if it has none yet); refused if misshapen."""
    if "split" not in handle:
        return None
    split = handle["split"][:]
    if split.shape != (n,):
        raise StoreError(
            f"{path}: split has shape {split.shape}, expected ({n},); the file was left untouched"
        )
    return split


def is_metal_symbol(value: object) -> bool:
    """Whether a value is the element symbol of a metal other than the host, exactly as
    written ('Pt'; not 'pt', 'Xx', 'O', 'Sc' or '../x'): a dopant, safe in a path."""
    return (
        isinstance(value, str)
        and value != HOST
        and Element.is_valid_symbol(value)
        and Element(value).is_metal
    )


class Store:
    """Read access to a store: parent, configurations and their atoms."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        with open_store(self.path) as handle:
            self.attrs = dict(handle.attrs)
            self._configs = {f: handle[f"configs/{f}"][:] for f in CONFIG_FIELDS}
            self.parent = _read_parent(handle, self.path)
            check_rows(self._configs, self.parent, self.path)
            check_unique(self.ids.copy(), self.path)
            self.split: np.ndarray | None = _read_split(handle, self.path, len(self))
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
        """Read a labels/<kind> group of a store of n rows; refuse missing, misshapen or
        mistyped label datasets (`check_labels`)."""
        check_labels(group, kind, n)
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


def _read_parent(handle: h5py.File | h5py.Group, path: Path) -> Parent:
    """The parent of a store (or of a results file's dopant group), its `dopant` attribute
    checked first: the element symbol of a metal, whose atoms and Sc are all the parent
    holds."""
    where = handle.name.strip("/") + "/" if handle.name != "/" else ""
    dopant = handle.attrs.get("dopant")
    if not is_metal_symbol(dopant):
        raise StoreError(
            f"{path}: {where}attribute dopant = {dopant!r} is not the element symbol of a "
            "metal other than Sc (e.g. Pt, Pd, Ir, Rh); the file was left untouched"
        )
    group = handle["parent"]
    numbers = group["numbers"][:]
    foreign = sorted(set(numbers.tolist()) - {atomic_numbers[HOST], atomic_numbers[dopant]})
    if foreign:
        raise StoreError(
            f"{path}: {where}parent/numbers holds atomic number {foreign[0]}, but a "
            f"Sc60{dopant}13 parent holds Sc and {dopant} only; the file was left untouched"
        )
    labels = group["orbit"].asstr()[:]
    active = group["active"][:]
    names = list(dict.fromkeys(labels[active]))
    orbits = {name: np.flatnonzero(labels == name) for name in dict.fromkeys(labels)}
    atoms = Atoms(
        numbers=numbers,
        positions=group["positions"][:],
        cell=group["cell"][:],
        pbc=True,
    )
    return Parent(
        atoms=atoms,
        orbits=orbits,
        active_orbits=tuple(names),
        dopant=dopant,
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
            atomic_bytes(ident, json.dumps(identity, sort_keys=True).encode())

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
        atomic_bytes(path, buffer.getvalue())

    def load(self) -> Iterator[dict[str, np.ndarray]]:
        """The committed segments' arrays, in order."""
        for path in self.segments():
            with np.load(path) as data:
                yield {key: data[key] for key in data.files if key != "done"}

    def remove(self) -> None:
        """Delete the journal once its work is in the target file."""
        shutil.rmtree(self.dir)


def atomic_bytes(path: Path, data: bytes) -> None:
    """Write bytes under a temporary name, sync and rename; a failed write removes the
    temporary file and says which file could not be written (`write_error`)."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as err:
        raise write_error(path, err) from err
    finally:
        tmp.unlink(missing_ok=True)


def write_error(path: Path, err: OSError) -> StoreError:
    """A failed write as one line naming the file: a full disk (errno 28) and the
    file-size limit (errno 27) are said as such, anything else as the system says it."""
    reasons = {
        errno.ENOSPC: "no space left on its disk: free some and run again",
        errno.EFBIG: "larger than the file-size limit of this process (`ulimit -f`)",
    }
    detail = err.strerror or str(err).splitlines()[0]
    reason = reasons.get(err.errno, detail)
    return StoreError(
        f"{path}: could not be written, {reason} (errno {err.errno}); its temporary file was "
        "removed and the file is as it was"
    )


def write_atomically(
    path: Path, fill: Callable[[h5py.File], None], base: Path | None = None, reserve: int = 0
) -> None:
    """Write an HDF5 file under a temporary name (a copy of `base` if given), then rename.

    Readers see either the old file or the complete new one, never a partial write. The
    disk space of the copy and of `reserve` more bytes (what `fill` adds at most) is
    allocated before HDF5 writes anything (`_reserve`): HDF5 cannot recover from a failed
    write (a full disk or the file-size limit left the process to crash at exit), so
    these fail first, in Python. A failed write removes the temporary file; an OSError
    becomes a StoreError naming `path` (`write_error`).
    """
    tmp = path.with_name(path.name + ".tmp")
    try:
        if base is not None:
            shutil.copyfile(base, tmp)
        else:
            h5py.File(tmp, "w", track_order=True).close()
        _reserve(tmp, tmp.stat().st_size + reserve)
        with h5py.File(tmp, "r+") as handle:
            fill(handle)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as err:
        raise write_error(path, err) from err
    finally:
        tmp.unlink(missing_ok=True)


def _reserve(path: Path, n_bytes: int) -> None:
    """Allocate the disk blocks of a file up to n_bytes (and `RESERVE_MARGIN` more for
    HDF5's own records), so that writes below fail neither for space nor for the
    file-size limit; OSError (errno 28 or 27) if they would. HDF5 truncates the file to
    what it used when it closes it."""
    handle = os.open(path, os.O_WRONLY)
    try:
        os.posix_fallocate(handle, 0, n_bytes + RESERVE_MARGIN)
    except OSError as err:
        if err.errno not in (errno.EOPNOTSUPP, errno.EINVAL):  # no fallocate: no reservation
            raise
    finally:
        os.close(handle)


def create_store(
    path: Path, parent: Parent, identity: dict, segments: Iterator[dict[str, np.ndarray]]
) -> int:
    """Write a complete store from segments of config columns; returns the row count."""
    rows = 0

    def fill(handle: h5py.File) -> None:
        nonlocal rows
        _create(handle, parent, identity)
        reserved = os.path.getsize(handle.filename)
        for columns in segments:
            n = len(columns["id"])
            reserved += sum(column.nbytes for column in columns.values())  # gzip: at most
            _reserve(Path(handle.filename), reserved)
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
