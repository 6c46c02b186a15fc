"""Limits and the fixed train/validation/test split of a labelled training store.

The limit-x subset holds the configurations with at most x defects (vacancies + dopants)
on A5; limits 0, 2, ..., 24 give 13 nested subsets (section 3.2 of the study). The split
(section 3.3): the test set is 63 configurations without A5 defects; the remaining
labelled configurations are split once, on the limit-24 set, into train (90 %) and
validation (10 %), and every smaller limit inherits that assignment. Configurations
whose label failed are excluded (code 255). Stored in the store as `split` (uint8:
0 train, 1 validation, 2 test, 255 excluded) with its seed and sizes as attributes.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from qcapprox.errors import StoreError
from qcapprox.store import Store, write_atomically

LIMITS = tuple(range(0, 25, 2))
TRAIN, VALIDATION, TEST, EXCLUDED = 0, 1, 2, 255
N_TEST = 63
VALIDATION_FRACTION = 0.1
SPLIT_SEED = 2024


def a5_defects(composition: np.ndarray) -> np.ndarray:
    """Vacancies + dopants on A5 of every configuration (columns 2 and 3)."""
    return composition[:, 2] + composition[:, 3]


def in_limit(composition: np.ndarray, limit: int) -> np.ndarray:
    """Mask of the limit-x subset: at most `limit` A5 defects."""
    return a5_defects(composition) <= limit


def make_split(
    composition: np.ndarray, usable: np.ndarray, seed: int = SPLIT_SEED, n_test: int = N_TEST
) -> np.ndarray:
    """The split codes of every row (see module docstring), deterministic from the seed."""
    rng = np.random.default_rng(seed)
    split = np.full(len(composition), EXCLUDED, dtype=np.uint8)
    pristine = np.flatnonzero(usable & (a5_defects(composition) == 0))
    if len(pristine) < n_test:
        raise StoreError(
            f"only {len(pristine)} labelled configurations without A5 defects, {n_test} needed "
            "for the test set"
        )
    test = rng.choice(pristine, size=n_test, replace=False)
    split[test] = TEST
    rest = np.flatnonzero(usable & (split == EXCLUDED))
    rest = rest[rng.permutation(len(rest))]
    n_val = round(VALIDATION_FRACTION * len(rest))
    split[rest[:n_val]] = VALIDATION
    split[rest[n_val:]] = TRAIN
    return split


def write_split(path: str | Path, seed: int = SPLIT_SEED) -> np.ndarray:
    """Compute the split of a labelled store and store it (once; an existing one is kept)."""
    path = Path(path)
    store = Store(path)
    if store.labels is None:
        raise StoreError(f"{path} has no labels: run `qcapprox label {path}` first")
    if store.split is not None:
        return store.split
    split = make_split(store.composition, np.isfinite(store.labels["e_above_hull"]), seed)

    def fill(handle: h5py.File) -> None:
        handle["split"] = split
        handle["split"].attrs["codes"] = "0 train, 1 validation, 2 test, 255 excluded"
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
                "total": int((mask & (split != EXCLUDED)).sum()),
            }
        )
    return rows
