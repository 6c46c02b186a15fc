"""Limits and the split of the study's Table 1: nested subsets, 63 test structures whose
compositions are never trained on, ceil(n/10) validation drawn once and inherited."""

from __future__ import annotations

import itertools
import math
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from qcapprox.datasets import (
    TEST,
    TRAIN,
    VALIDATION,
    in_limit,
    make_split,
    subset_sizes,
    write_split,
)
from qcapprox.enumeration.recipe import Recipe
from qcapprox.enumeration.run import run_recipe
from qcapprox.errors import StoreError
from qcapprox.parent import Parent
from qcapprox.paths import RECIPES_DIR
from qcapprox.store import Store, writer_lock
from qcapprox.words import LIMITS

TABLE_1 = {"Pt": (1896, 211, 63), "Pd": (1896, 211, 63), "Ir": (909, 102, 63), "Rh": (909, 102, 63)}


@pytest.fixture(scope="module", params=sorted(TABLE_1))
def design(request, tmp_path_factory) -> Path:
    """The training design of one dopant, enumerated into a store."""
    out = tmp_path_factory.mktemp("design") / f"{request.param}.h5"
    run_recipe(Recipe.load(RECIPES_DIR / "training.toml"), Parent.load(request.param), out)
    return out


def test_table_1_and_no_test_composition_in_training(design: Path) -> None:
    split = write_split(design)
    store = Store(design)
    sizes = subset_sizes(store.composition, split)[-1]
    train, validation, test = TABLE_1[store.parent.dopant]
    assert (sizes["train"], sizes["validation"], sizes["test"]) == (train, validation, test)
    assert sizes["total"] == len(store) == train + validation + test
    assert validation == math.ceil((train + validation) / 10)
    fit = {tuple(c) for c in store.composition[split != TEST]}
    tested = {tuple(c) for c in store.composition[split == TEST]}
    assert len(tested) == 63 and not fit & tested
    assert (store.composition[split == TEST, 2:] == 0).all()  # A4 only


def test_limits_are_nested_and_inherit_the_split(design: Path) -> None:
    store = Store(design)
    split = write_split(design)
    comp = store.composition
    sizes = subset_sizes(comp, split)
    assert [row["limit"] for row in sizes] == list(LIMITS)
    totals = [row["total"] for row in sizes]
    assert totals == sorted(totals) and totals[-1] == len(comp)
    for small, large in itertools.pairwise(LIMITS):
        assert (in_limit(comp, small) <= in_limit(comp, large)).all()
    assert all(row["test"] == 63 for row in sizes)
    # limit 0 holds exactly the A5-pristine configurations: 28 on the grid + 63 test
    assert sizes[0]["total"] == int((comp[:, 2] + comp[:, 3] == 0).sum()) == 91
    for row in sizes:
        assert row["train"] + row["validation"] + row["test"] == row["total"]


def test_split_is_deterministic_and_stored_once(design: Path, tmp_path: Path) -> None:
    stored = write_split(design)
    copy = tmp_path / "copy.h5"
    shutil.copyfile(design, copy)
    test = Store(copy).split == TEST
    np.testing.assert_array_equal(make_split(test, seed=7), make_split(test, seed=7))
    assert not np.array_equal(make_split(test, seed=7), make_split(test, seed=8))
    assert set(np.unique(make_split(test))) == {TRAIN, VALIDATION, TEST}
    np.testing.assert_array_equal(write_split(copy, seed=99), stored)


def test_a_stored_split_is_read_while_another_process_writes(design: Path, tmp_path: Path) -> None:
    """A labeling run holds the store's writer lock for hours: the stored split (and so
    `qcapprox limits`) is read without it; a split still to be written waits for it."""
    stored = write_split(design)
    fresh = tmp_path / "fresh.h5"
    shutil.copyfile(design, fresh)
    with h5py.File(fresh, "r+") as handle:
        del handle["split"]
    with writer_lock(design), writer_lock(fresh):
        np.testing.assert_array_equal(write_split(design), stored)
        with pytest.raises(StoreError, match="being written by another qcapprox process"):
            write_split(fresh)
    assert Store(fresh).split is None


def test_a_store_without_a_test_design_has_no_split(tmp_path: Path) -> None:
    recipe = Recipe.parse(
        'mode = "random"\nrealizations = 1\n[orbits.A4]\nspecies = ["Sc", "vacancy"]\nstep = 4\n'
    )
    out = tmp_path / "no-test.h5"
    run_recipe(recipe, Parent.load("Pt"), out)
    with pytest.raises(StoreError, match=r"no \[test\] table"):
        write_split(out)


def test_the_depth_recipe_lists_the_lowest_compositions() -> None:
    """enumeration/depth.toml holds `depth_compositions` of the bundled relaxed labels, none
    of them a Table 1 test composition or one of the configuration benchmark."""
    from qcapprox.datasets import depth_compositions
    from qcapprox.models.base import training_store

    stores = [Store(training_store(m)) for m in ("Pt", "Pd", "Ir", "Rh")]
    parent = stores[0].parent
    listed = Recipe.load(RECIPES_DIR / "depth.toml").compositions(parent)
    assert listed == depth_compositions(stores)
    held_out = Recipe.load(RECIPES_DIR / "configurations.toml").compositions(parent)
    training = Recipe.load(RECIPES_DIR / "training.toml")
    assert not set(listed) & (set(held_out) | set(training.test_compositions(parent)))
    assert set(held_out) <= set(training.test_compositions(parent))
