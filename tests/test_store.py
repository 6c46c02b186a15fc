"""The HDF5 store: round trips, resumable appends after kills, refusal of bad files."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from qcapprox.enumeration import Enumerator, run
from qcapprox.enumeration.recipe import Recipe
from qcapprox.enumeration.run import run_recipe
from qcapprox.errors import StoreError
from qcapprox.parent import Parent
from qcapprox.paths import RECIPES_DIR
from qcapprox.store import (
    CONFIG_FIELDS,
    SCHEMA_VERSION,
    Journal,
    Store,
    scan_store,
    write_atomically,
)

# A recipe of 182 tasks and 310,572 configurations (16 journal segments of 20,000 rows, so
# a kill after the first, second or third lands mid-run): every A4 composition with at
# most one A5 vacancy.
SLOW_RECIPE = """
name = "kill-test"
mode = "all"
[orbits.A4]
species = ["Sc", "M", "vacancy"]
[orbits.A5]
species = ["Sc", "vacancy"]
max_defects = 1
"""


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def contents(path: Path) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as handle:
        return {f: handle[f"configs/{f}"][:] for f in CONFIG_FIELDS}


def test_round_trip_parent_and_configs(tmp_path, parent_pt: Parent) -> None:
    out = tmp_path / "a4.h5"
    n = run_recipe(Recipe.load(RECIPES_DIR / "inference-a4.toml"), parent_pt, out)
    store = Store(out)
    assert n == len(store) == 15327
    assert store.multiplicity.sum() == 3**12
    stored = store.parent
    np.testing.assert_allclose(stored.atoms.positions, parent_pt.atoms.positions)
    np.testing.assert_array_equal(stored.active, parent_pt.active)
    np.testing.assert_array_equal(stored.group, parent_pt.group)
    assert stored.dopant == "Pt" and stored.active_orbits == ("A4", "A5")
    enumerator = Enumerator.from_parent(stored)
    np.testing.assert_array_equal(enumerator.ids(store.occupancy), store.ids)
    np.testing.assert_array_equal(stored.composition(store.occupancy), store.composition)
    for config_id in store.ids[::997]:
        atoms = store.atoms(int(config_id))
        np.testing.assert_array_equal(
            parent_pt.identify(atoms), store.occupancy[store.row(int(config_id))]
        )
    assert store.attrs["schema_version"] == SCHEMA_VERSION
    assert "inference-a4" in store.attrs["recipe"]


def test_rerun_is_a_no_op_and_other_run_is_refused(
    tmp_path, parent_pt: Parent, inference_pt: Path
) -> None:
    out = Path(shutil.copyfile(inference_pt, tmp_path / "a4.h5"))
    recipe = Recipe.load(RECIPES_DIR / "inference-a4.toml")
    before = digest(out)
    assert run_recipe(recipe, parent_pt, out) == 15327
    with pytest.raises(StoreError, match="holds another run"):
        run_recipe(Recipe.load(RECIPES_DIR / "training.toml"), parent_pt, out)
    with pytest.raises(StoreError, match="holds another run"):
        run_recipe(recipe, Parent.load("Rh"), out)
    assert digest(out) == before
    # unfinished work of another run in a journal is refused too
    other = tmp_path / "other.h5"
    Journal(other, {"recipe_name": "something else"})
    with pytest.raises(StoreError, match="holds another run"):
        run_recipe(recipe, parent_pt, other)


def test_killed_runs_resume_to_identical_content(tmp_path, parent_pt: Parent) -> None:
    recipe_path = tmp_path / "kill.toml"
    recipe_path.write_text(SLOW_RECIPE)
    clean = tmp_path / "clean.h5"
    run_recipe(Recipe.load(recipe_path), parent_pt, clean, commit_rows=20000)
    killed = tmp_path / "killed.h5"
    script = (
        "import sys; from qcapprox.parent import Parent; "
        "from qcapprox.enumeration.recipe import Recipe; "
        "from qcapprox.enumeration.run import run_recipe; "
        "run_recipe(Recipe.load(sys.argv[1]), Parent.load('Pt'), sys.argv[2], commit_rows=20000)"
    )
    journal = tmp_path / "killed.h5.partial"
    killed_mid_run = 0
    for wanted in (1, 2, 3):  # kill right after the run commits its wanted-th segment
        proc = subprocess.Popen([sys.executable, "-c", script, str(recipe_path), str(killed)])
        while len(list(journal.glob("segment-*.npz"))) < wanted and proc.poll() is None:
            time.sleep(0.01)  # poll for the event, however long start-up takes
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        if killed.exists():  # finished before the kill: it must be complete
            break
        killed_mid_run += 1
    assert killed_mid_run >= 1
    run_recipe(Recipe.load(recipe_path), parent_pt, killed, commit_rows=20000)
    a, b = contents(clean), contents(killed)
    for field in CONFIG_FIELDS:
        np.testing.assert_array_equal(a[field], b[field])
    assert len(np.unique(b["id"])) == len(b["id"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clean.h5", "kill.toml", "killed.h5"]


def test_interrupted_mid_task_resumes_after_its_committed_chunks(
    tmp_path, parent_pt: Parent, monkeypatch
) -> None:
    """Chunks are committed within a task (here after every chunk: commit_seconds=0); a run
    stopped in the middle of a task resumes after that task's committed chunks. Rows are
    sorted by id within each chunk of a task."""
    monkeypatch.setattr(run, "CHUNK", 100)
    recipe = Recipe.load(RECIPES_DIR / "inference-a4.toml")
    clean = tmp_path / "clean.h5"
    run_recipe(recipe, parent_pt, clean)  # in chunks of 100 as well
    seen: list[int] = []

    def stop(done: int, total: int, rows: int) -> None:
        seen.append(done)
        if seen.count(done) == 3:  # after the second chunk of task `done`
            raise KeyboardInterrupt

    out = tmp_path / "out.h5"
    with pytest.raises(KeyboardInterrupt):
        run_recipe(recipe, parent_pt, out, progress=stop, commit_seconds=0)
    journal = Journal(out, {})
    assert not out.exists() and journal.done == seen[-1]
    partial = sum(int((seg["task"] == journal.done).sum()) for seg in journal.load())
    assert 100 < partial <= 200  # two chunks of task `done`, committed before it ended
    run_recipe(recipe, parent_pt, out)
    a, b = contents(clean), contents(out)
    for field in CONFIG_FIELDS:
        np.testing.assert_array_equal(a[field], b[field])
    for task in np.unique(b["task"]):
        ids = b["id"][b["task"] == task]
        for start in range(0, len(ids), 100):
            assert np.all(np.diff(ids[start : start + 100]) > 0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clean.h5", "out.h5"]


def test_refuses_foreign_corrupt_and_other_version(tmp_path, parent_pt: Parent) -> None:
    recipe = Recipe.load(RECIPES_DIR / "inference-a4.toml")
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as handle:
        handle["x"] = np.arange(3)
    before = digest(foreign)
    with pytest.raises(StoreError, match="not a qcapprox store"):
        run_recipe(recipe, parent_pt, foreign)
    with pytest.raises(StoreError, match="not a qcapprox store"):
        Store(foreign)
    assert digest(foreign) == before

    good = tmp_path / "good.h5"
    run_recipe(recipe, parent_pt, good)
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    before = digest(truncated)
    with pytest.raises(StoreError, match="corrupt or truncated"):
        run_recipe(recipe, parent_pt, truncated)
    assert digest(truncated) == before
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"not hdf5 at all" * 100)
    with pytest.raises(StoreError, match=r"garbage\.h5: not a readable HDF5 file"):
        Store(garbage)

    with h5py.File(good, "r+") as handle:
        handle.attrs["schema_version"] = 99
    before = digest(good)
    with pytest.raises(StoreError, match="schema version 99"):
        run_recipe(recipe, parent_pt, good)
    assert digest(good) == before
    with pytest.raises(StoreError, match="no such file"):
        Store(tmp_path / "missing.h5")


def _set(name: str, row: int, value: int):
    def edit(handle: h5py.File) -> None:
        handle[name][row] = value

    return edit


@pytest.mark.parametrize(
    "edit, message",
    [
        (_set("configs/id", 7001, 0), r"configs/id holds id 0 more than once"),
        (_set("configs/multiplicity", 5003, 0), r"configs/multiplicity row 5003 \(id \d+\) is 0"),
        (_set("configs/composition", 12001, 9), r"configs/composition row 12001 \(id \d+\) is \["),
        (_set("configs/occupancy", 9999, 5), r"configs/occupancy row 9999 \(id \d+\) has code 5"),
        (lambda h: h.attrs.__setitem__("dopant", "../x"), r"attribute dopant = '\.\./x' is not"),
    ],
)
def test_store_and_scan_refuse_the_same_rows(
    edit, message: str, tmp_path, inference_pt: Path
) -> None:
    """`Store` (all rows at once) and `scan_store` (chunks of 1,000 rows) refuse the same
    faults with the same one-line message, rows counted over the whole store; the file is
    left as it was."""
    path = Path(shutil.copyfile(inference_pt, tmp_path / "bad.h5"))
    with h5py.File(path, "r+") as handle:
        edit(handle)
    before = digest(path)
    with pytest.raises(StoreError, match=message) as whole:
        Store(path)
    with pytest.raises(StoreError, match=message) as chunked:
        scan_store(path, chunk_rows=1000)
    assert str(whole.value) == str(chunked.value) and "\n" not in str(whole.value)
    assert str(whole.value).startswith(f"{path}: ")
    assert digest(path) == before


def test_scan_of_a_good_store(inference_pt: Path) -> None:
    scan = scan_store(inference_pt, chunk_rows=1000)
    store = Store(inference_pt)
    assert scan.rows == len(store) and scan.parent.dopant == "Pt"
    np.testing.assert_array_equal(scan.parent.permutations, store.parent.permutations)


def test_a_failed_write_names_the_file_and_removes_its_temporary(tmp_path) -> None:
    """A full disk (/dev/full: every write fails with errno 28) while a file is written
    under its temporary name: one line naming the file, the temporary removed, the file
    as it was."""
    target = tmp_path / "out.h5"
    target.write_bytes(b"old")
    (tmp_path / "out.h5.tmp").symlink_to("/dev/full")

    def fill(handle: h5py.File) -> None:
        handle["x"] = np.zeros(100_000)

    with pytest.raises(StoreError, match=r"out\.h5: could not be written, no space left") as err:
        write_atomically(target, fill)
    assert "errno 28" in str(err.value) and "\n" not in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.h5"]
    assert target.read_bytes() == b"old"
    journal = Journal(tmp_path / "run.h5", {"recipe_name": "x"})
    (journal.dir / "segment-000000.npz.tmp").symlink_to("/dev/full")
    with pytest.raises(StoreError, match=r"segment-000000\.npz: could not be written, no space"):
        journal.add(1, {"id": np.arange(100_000)})
    assert journal.segments() == [] and not (journal.dir / "segment-000000.npz.tmp").exists()
