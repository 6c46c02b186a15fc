"""Run a recipe for one parent into a store: sized first, streamed, resumable.

Before any work a `Plan` states the rows the recipe writes (the Burnside count of every
composition, capped at the realizations asked for) with estimates of the disk space, the
peak memory and the time; a run larger than `MAX_CONFIGURATIONS` is refused unless the
caller lifts the limit (`qcapprox enumerate --force`).

A task's configurations are produced block by block and cut into chunks of `CHUNK` rows
in enumeration order, each chunk sorted by configuration id (so a task of at most `CHUNK`
rows, as in every bundled recipe, is sorted by id as a whole). Whole chunks are committed
to the journal `<out>.partial/` every `COMMIT_SECONDS` of work or `COMMIT_ROWS` rows,
whichever comes first: memory holds at most a few chunks whatever the size of a
composition, and a kill loses seconds. The enumeration is deterministic, so a resumed run
regenerates a partly committed task and skips its committed chunks. The store appears,
complete, when the last task is done; one process writes it at a time (`writer_lock`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qcapprox.enumeration.canonical import Enumerator
from qcapprox.enumeration.realizations import realizations
from qcapprox.enumeration.recipe import Recipe, Task
from qcapprox.errors import EnumerationError
from qcapprox.parent import Parent
from qcapprox.store import (
    Journal,
    check_same_run,
    create_store,
    open_store,
    package_versions,
    run_identity,
    writer_lock,
)
from qcapprox.words import MAX_CONFIGURATIONS

CHUNK = 1 << 18  # rows of a task sorted by id together
COMMIT_ROWS = 1 << 19  # rows buffered at most before a commit
COMMIT_SECONDS = 2.0  # work between commits at most (a kill loses no more)
# Estimates from benchmarks/enumeration_memory.py (2 cores shared with other work): 0.27 to
# 0.63 million rows/s; peak RSS 381, 432, 510 MiB for 4.8, 16.4, 46.1 million rows (bounded
# by CHUNK, COMMIT_ROWS and the enumerator's blocks, not by the size of the set); stores of
# 3.7 to 4.1 bytes a row.
ROWS_PER_SECOND = 400_000  # enumerated, journaled and written to the store
SECONDS_PER_TASK = 0.002  # per composition (Burnside count, realizations): the whole run for
# 2,170 of the training design (4.1-4.2 s), with a CHGNet relabeling on both cores
JOURNAL_BYTES_PER_ROW = 64  # uncompressed segments, removed at the end
STORE_BYTES_PER_ROW = 6  # the gzip-compressed store
PEAK_MEMORY = 600 * 2**20  # resident set of a streamed run, whatever its size


@dataclass(frozen=True)
class Plan:
    """A recipe's work for one parent, sized before any is done: the tasks and the rows
    each writes (`task_rows`)."""

    recipe: Recipe
    tasks: tuple[Task, ...]
    rows: tuple[int, ...]

    @classmethod
    def of(cls, recipe: Recipe, parent: Parent, enumerator: Enumerator | None = None) -> Plan:
        """Size a recipe for a parent (Burnside counts, no enumeration)."""
        enumerator = enumerator or Enumerator.from_parent(parent)
        tasks = tuple(recipe.tasks(parent))
        return cls(recipe, tasks, tuple(task_rows(enumerator, task) for task in tasks))

    @property
    def configurations(self) -> int:
        """Rows of the store."""
        return sum(self.rows)

    @property
    def seconds(self) -> float:
        """Estimated wall time of the run."""
        return self.configurations / ROWS_PER_SECOND + len(self.tasks) * SECONDS_PER_TASK

    def describe(self) -> str:
        """One line: the size and the estimates."""
        n, recipe = self.configurations, self.recipe
        how = "Burnside" if recipe.mode == "all" else f"at most {recipe.realizations} each"
        return (
            f"{recipe.name}: {n:,} configurations ({how}) in {len(self.tasks):,} "
            f"compositions; estimated {human_size(n * STORE_BYTES_PER_ROW)} store, "
            f"{human_size(n * JOURNAL_BYTES_PER_ROW)} journal while it runs, peak memory about "
            f"{human_size(PEAK_MEMORY)}, about {human_duration(self.seconds)}"
        )

    def check(self, limit: int | None) -> None:
        """Refuse a run of more than `limit` configurations (None: no limit)."""
        if limit is not None and self.configurations > limit:
            raise EnumerationError(
                f"{self.describe()}: more than the limit of {limit:,} configurations; narrow "
                "the recipe (max_defects, species, step) or pass --force to run it anyway"
            )


def task_rows(enumerator: Enumerator, task: Task) -> int:
    """Rows a task writes: every symmetry-distinct configuration of its composition (the
    Burnside count), or `count` realizations, fewer if there are fewer distinct ones."""
    if task.count == 1:
        return 1  # every composition has a configuration: no need to count them
    distinct = enumerator.count(task.composition)
    return distinct if task.count is None else min(distinct, task.count)


def human_size(n_bytes: float) -> str:
    """A size for the estimate lines of enumerate and predict: "under 1 MB", MB or GB."""
    if n_bytes < 2**20:
        return "under 1 MB"
    return f"{n_bytes / 2**30:.1f} GB" if n_bytes >= 2**30 else f"{n_bytes / 2**20:.0f} MB"


def human_duration(seconds: float) -> str:
    """A duration for the estimate lines of enumerate and predict: s, min or h."""
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def run_recipe(
    recipe: Recipe,
    parent: Parent,
    out: str | Path,
    progress: Callable[[int, int, int], None] | None = None,
    commit_rows: int = COMMIT_ROWS,
    commit_seconds: float = COMMIT_SECONDS,
    plan: Plan | None = None,
    max_configurations: int | None = MAX_CONFIGURATIONS,
) -> int:
    """Enumerate (or sample) every task of `recipe` for `parent` into the store `out`.

    `plan` (made here if not given) is checked against `max_configurations` before any
    work. An existing store of the same run is left as it is. `progress(done_tasks,
    n_tasks, rows)` is called after every chunk. Returns the number of configurations in
    the store.
    """
    out = Path(out)
    enumerator = Enumerator.from_parent(parent)
    meta = {"recipe": recipe.text, "recipe_name": recipe.name, "seed": recipe.seed}
    identity = run_identity(parent, meta)
    with writer_lock(out):
        if out.exists():
            with open_store(out) as handle:
                check_same_run(out, identity, dict(handle.attrs))
                return len(handle["configs/id"])
        plan = plan or Plan.of(recipe, parent, enumerator)
        plan.check(max_configurations)
        journal = Journal(out, {**identity, "chunk_rows": CHUNK})  # resumes at chunk bounds
        done = journal.done  # tasks complete
        rows = skip = 0
        for segment in journal.load():
            rows += len(segment["id"])
            skip += int((segment["task"] == done).sum())  # committed rows of task `done`
        buffer = _Buffer(journal, commit_rows, commit_seconds)
        n_tasks = len(plan.tasks)
        for index in range(done, n_tasks):
            task = plan.tasks[index]
            for occ, mult in _chunks(enumerator, recipe, task, skip if index == done else 0):
                buffer.add(_columns(enumerator, occ, mult, task.composition, index))
                rows += len(occ)
                if buffer.due():
                    buffer.commit(index)
                if progress:
                    progress(index, n_tasks, rows)
            if buffer.due() or index == n_tasks - 1:
                buffer.commit(index + 1)
            if progress:
                progress(index + 1, n_tasks, rows)
        identity["versions"] = json.dumps(package_versions())
        n = create_store(out, parent, identity, journal.load())
        journal.remove()
    return n


class _Buffer:
    """Chunks waiting for the journal, committed every `seconds` or `rows` rows."""

    def __init__(self, journal: Journal, rows: int, seconds: float) -> None:
        self.journal, self.rows, self.seconds = journal, rows, seconds
        self.columns: list[dict[str, np.ndarray]] = []
        self.since = time.monotonic()

    def add(self, columns: dict[str, np.ndarray]) -> None:
        """Buffer one chunk's columns."""
        self.columns.append(columns)

    def due(self) -> bool:
        """Whether enough rows or time have gathered for a commit."""
        buffered = sum(len(c["id"]) for c in self.columns)
        return buffered >= self.rows or time.monotonic() - self.since >= self.seconds

    def commit(self, done: int) -> None:
        """Write the buffered chunks as one journal segment, after `done` complete tasks."""
        if self.columns:
            keys = self.columns[0]
            self.journal.add(done, {k: np.concatenate([c[k] for c in self.columns]) for k in keys})
        self.columns.clear()
        self.since = time.monotonic()


def _chunks(
    enumerator: Enumerator, recipe: Recipe, task: Task, skip: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """A task's (occupancy, multiplicity) in chunks of CHUNK rows in enumeration order
    (the last one shorter), without the first `skip` rows (a multiple of CHUNK)."""
    if task.count is None:
        blocks: Iterator = (
            (b.occupancy, b.multiplicity) for b in enumerator.enumerate(task.composition)
        )
    else:
        block = realizations(enumerator, task.composition, task.count, recipe.seed)
        blocks = iter([(block.occupancy, block.multiplicity)])
    pending: list[tuple[np.ndarray, np.ndarray]] = []
    n = start = 0  # rows pending; row of the task where they start
    for occ, mult in blocks:
        pending.append((occ, mult))
        n += len(occ)
        if n < CHUNK:
            continue
        occ_all = np.concatenate([p[0] for p in pending])
        mult_all = np.concatenate([p[1] for p in pending])
        cut = n - n % CHUNK
        for k in range(0, cut, CHUNK):
            if start + k >= skip:
                yield occ_all[k : k + CHUNK], mult_all[k : k + CHUNK]
        pending, n, start = [(occ_all[cut:], mult_all[cut:])], n - cut, start + cut
    if n and start >= skip:
        yield np.concatenate([p[0] for p in pending]), np.concatenate([p[1] for p in pending])


def _columns(
    enumerator: Enumerator,
    occupancy: np.ndarray,
    multiplicity: np.ndarray,
    composition: tuple[int, ...],
    index: int,
) -> dict[str, np.ndarray]:
    """The store columns of one chunk of task `index`, sorted by configuration id."""
    ids = enumerator.ids(occupancy)
    order = np.argsort(ids, kind="stable")
    return {
        "id": ids[order],
        "occupancy": occupancy[order],
        "multiplicity": multiplicity[order],
        "composition": np.tile(np.array(composition, np.int16), (len(ids), 1)),
        "task": np.full(len(ids), index, dtype=np.int32),
    }
