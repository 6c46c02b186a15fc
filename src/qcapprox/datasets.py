"""Limits and the fixed train/validation/test split of a training store (the study's Table 1).

The limit-x subset holds the configurations with at most x defects (vacancies + dopants)
on A5; limits 0, 2, ..., 24 give 13 nested subsets (section 3.2 of the study). The split
(section 3.3) is a property of the training design, not of the labels: the test set is the
rows of the recipe's test tasks (the 63 A4-only compositions off the step-2 grid, so no
test composition is trained on); of the other n rows, ceil(n / 10) are drawn once, on the
limit-24 set, for validation and the rest are train; every smaller limit inherits that
assignment. Table 1: 1896 / 211 / 63 = 2170 (Pt, Pd), 909 / 102 / 63 = 1074 (Ir, Rh).
Rows whose label failed or did not converge are left out at training time, not here.
Stored in the store as `split` (uint8: 0 train, 1 validation, 2 test) with its seed.
"""

from __future__ import annotations

import math
from pathlib import Path

import h5py
import numpy as np

from qcapprox.enumeration.recipe import Recipe
from qcapprox.errors import StoreError
from qcapprox.settings import SEED
from qcapprox.store import Store, write_atomically, writer_lock
from qcapprox.words import LIMITS

TRAIN, VALIDATION, TEST = 0, 1, 2
VALIDATION_FRACTION = 0.1
SPLIT_SEED = SEED  # the validation rows, drawn once on limit 24


def a5_defects(composition: np.ndarray) -> np.ndarray:
    """Vacancies + dopants on A5 of every configuration (columns 2 and 3)."""
    return composition[:, 2] + composition[:, 3]


def in_limit(composition: np.ndarray, limit: int) -> np.ndarray:
    """Mask of the limit-x subset: at most `limit` A5 defects."""
    return a5_defects(composition) <= limit


def make_split(test: np.ndarray, seed: int = SPLIT_SEED) -> np.ndarray:
    """The split codes of every row, given the test rows (see module docstring);
    deterministic from the seed."""
    rng = np.random.default_rng(seed)
    split = np.full(len(test), TRAIN, dtype=np.uint8)
    split[test] = TEST
    rest = np.flatnonzero(~test)
    split[rng.choice(rest, size=math.ceil(VALIDATION_FRACTION * len(rest)), replace=False)] = (
        VALIDATION
    )
    return split


def test_rows(store: Store) -> np.ndarray:
    """Mask of the rows made by the test tasks of the store's recipe."""
    recipe = Recipe.parse(str(store.attrs["recipe"]), source=f"{store.path} (recipe)")
    tasks = recipe.tasks(store.parent)
    is_test = np.array([t.test for t in tasks], dtype=bool)
    if not is_test.any():
        raise StoreError(
            f"{store.path}: its recipe has no [test] table, so it has no test set; enumerate "
            "the training design (enumeration/training.toml)"
        )
    return is_test[store.task]


def write_split(path: str | Path, seed: int = SPLIT_SEED) -> np.ndarray:
    """The split of a training store, stored on first use (an existing one is kept and
    read without the store's writer lock, so it can be read while a labeling run writes)."""
    path = Path(path)
    if (split := Store(path).split) is not None:
        return split
    with writer_lock(path):
        store = Store(path)
        if store.split is not None:
            return store.split
        split = make_split(test_rows(store), seed)

        def fill(handle: h5py.File) -> None:
            handle["split"] = split
            handle["split"].attrs["codes"] = "0 train, 1 validation, 2 test"
            handle["split"].attrs["seed"] = seed

        write_atomically(path, fill, base=path)
    return split


def subset_sizes(composition: np.ndarray, split: np.ndarray) -> list[dict[str, int]]:
    """Train/validation/test/total sizes of every limit (the study's Figure 1 / Table 1)."""
    rows = []
    for limit in LIMITS:
        mask = in_limit(composition, limit)
        rows.append(
            {
                "limit": limit,
                "train": int((mask & (split == TRAIN)).sum()),
                "validation": int((mask & (split == VALIDATION)).sum()),
                "test": int((mask & (split == TEST)).sum()),
                "total": int(mask.sum()),
            }
        )
    return rows


def depth_compositions(
    stores: list[Store], a4_only: int = 10, a5_two: int = 3, kind: str = "relaxed"
) -> list[tuple[int, ...]]:
    """The compositions of the depth design, chosen from labelled training stores.

    Among the training (non-test) compositions present in every store, those with the lowest
    mean energy above the hull over the stores (each composition's Table 1 realization,
    usable labels only): the `a4_only` lowest with no A5 defect, then the `a5_two` lowest
    with two A5 defects. The depth design relaxes up to 20 distinct realizations of each, so
    that a model can learn what differs *within* a composition (enumeration/depth.toml).
    """
    means: dict[tuple[int, ...], list[float]] = {}
    for store in stores:
        labels = store.label_set(kind)
        keep = labels.usable & (write_split(store.path) != TEST)
        for comp, e in zip(store.composition[keep], labels.e_above_hull[keep], strict=True):
            means.setdefault(tuple(int(c) for c in comp), []).append(float(e))
    common = {c: float(np.mean(v)) for c, v in means.items() if len(v) == len(stores)}
    ranked = sorted(common, key=lambda c: (common[c], c))
    a4 = [c for c in ranked if c[2] + c[3] == 0][:a4_only]
    a5 = [c for c in ranked if c[2] + c[3] == 2][:a5_two]
    return sorted(a4 + a5)
