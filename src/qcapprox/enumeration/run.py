"""Run a recipe for one parent into a store, resumably."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from qcapprox.enumeration.canonical import Enumerator
from qcapprox.enumeration.realizations import realizations
from qcapprox.enumeration.recipe import Recipe
from qcapprox.parent import Parent
from qcapprox.store import (
    Journal,
    check_same_run,
    create_store,
    open_store,
    package_versions,
    run_identity,
)

COMMIT_ROWS = 1 << 16  # rows buffered before a commit


def run_recipe(
    recipe: Recipe,
    parent: Parent,
    out: str | Path,
    progress: Callable[[int, int, int], None] | None = None,
    commit_rows: int = COMMIT_ROWS,
) -> int:
    """Enumerate (or sample) every task of `recipe` for `parent` into the store `out`.

    Work is committed to the journal `<out>.partial/` every `commit_rows` rows and resumed
    from there; the store appears, complete, when the last task is done. An existing store
    of the same run is left as it is. `progress(done_tasks, n_tasks, rows)` is called after
    every task. Returns the number of configurations in the store.
    """
    enumerator = Enumerator.from_parent(parent)
    tasks = recipe.tasks(parent)
    out = Path(out)
    meta = {"recipe": recipe.text, "recipe_name": recipe.name, "seed": recipe.seed}
    identity = run_identity(parent, meta)
    if out.exists():
        with open_store(out) as handle:
            check_same_run(out, identity, dict(handle.attrs))
            return len(handle["configs/id"])
    journal = Journal(out, identity)
    buffer: list[dict[str, np.ndarray]] = []
    rows = sum(len(s["id"]) for s in journal.load())
    for index in range(journal.done, len(tasks)):
        task = tasks[index]
        buffer.append(_task_rows(enumerator, recipe, task.composition, task.count, index))
        rows += len(buffer[-1]["id"])
        if sum(len(b["id"]) for b in buffer) >= commit_rows or index == len(tasks) - 1:
            journal.add(index + 1, {k: np.concatenate([b[k] for b in buffer]) for k in buffer[0]})
            buffer.clear()
        if progress:
            progress(index + 1, len(tasks), rows)
    identity["versions"] = json.dumps(package_versions())
    n = create_store(out, parent, identity, journal.load())
    journal.remove()
    return n


def _task_rows(
    enumerator: Enumerator,
    recipe: Recipe,
    composition: tuple[int, ...],
    count: int | None,
    index: int,
) -> dict[str, np.ndarray]:
    """The store columns of one task, sorted by configuration id."""
    if count is None:
        blocks = list(enumerator.enumerate(composition))
        occ = np.concatenate([b.occupancy for b in blocks])
        mult = np.concatenate([b.multiplicity for b in blocks])
    else:
        block = realizations(enumerator, composition, count, recipe.seed)
        occ, mult = block.occupancy, block.multiplicity
    ids = enumerator.ids(occ)
    order = np.argsort(ids)
    return {
        "id": ids[order],
        "occupancy": occ[order],
        "multiplicity": mult[order],
        "composition": np.tile(np.array(composition, np.int16), (len(occ), 1)),
        "task": np.full(len(occ), index, dtype=np.int32),
    }
