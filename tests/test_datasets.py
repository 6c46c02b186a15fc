"""Limits and the split: nested subsets, 63 pristine test structures, inherited 90/10."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from qcapprox.datasets import (
    EXCLUDED,
    LIMITS,
    TEST,
    TRAIN,
    VALIDATION,
    in_limit,
    make_split,
    subset_sizes,
)
from qcapprox.enumeration import Enumerator
from qcapprox.enumeration.realizations import realizations
from qcapprox.enumeration.recipe import Recipe
from qcapprox.errors import StoreError
from qcapprox.parent import Parent
from qcapprox.paths import RECIPES_DIR


@pytest.fixture(scope="module")
def training_compositions() -> np.ndarray:
    parent = Parent.load("Rh")
    enumerator = Enumerator.from_parent(parent)
    recipe = Recipe.load(RECIPES_DIR / "training.toml")
    comps = []
    for task in recipe.tasks(parent):
        n = len(realizations(enumerator, task.composition, task.count, recipe.seed).occupancy)
        comps += [task.composition] * n
    return np.array(comps)


def test_split_rules(training_compositions: np.ndarray) -> None:
    comp = training_compositions
    usable = np.ones(len(comp), dtype=bool)
    usable[::50] = False  # failed labels
    split = make_split(comp, usable, seed=7)
    assert (split[~usable] == EXCLUDED).all()
    test = split == TEST
    assert test.sum() == 63
    assert (comp[test, 2:] == 0).all()  # no A5 defects in the test set
    fit = (split == TRAIN) | (split == VALIDATION)
    assert fit.sum() == usable.sum() - 63
    assert abs((split == VALIDATION).sum() / fit.sum() - 0.1) < 0.01
    np.testing.assert_array_equal(make_split(comp, usable, seed=7), split)  # deterministic
    assert not np.array_equal(make_split(comp, usable, seed=8), split)


def test_limits_are_nested_and_inherit_the_split(training_compositions: np.ndarray) -> None:
    comp = training_compositions
    split = make_split(comp, np.ones(len(comp), dtype=bool))
    sizes = subset_sizes(comp, split)
    assert [row["limit"] for row in sizes] == list(LIMITS)
    totals = [row["total"] for row in sizes]
    assert totals == sorted(totals) and totals[-1] == len(comp)
    for small, large in itertools.pairwise(LIMITS):
        assert (in_limit(comp, small) <= in_limit(comp, large)).all()
    assert all(row["test"] == 63 for row in sizes)
    # limit 0 holds exactly the A5-pristine configurations
    assert sizes[0]["total"] == int((comp[:, 2] + comp[:, 3] == 0).sum())
    for row in sizes:
        assert row["train"] + row["validation"] + row["test"] == row["total"]


def test_too_few_pristine_for_the_test_set() -> None:
    comp = np.array([[0, 0, 0, 0]] * 10 + [[0, 0, 2, 0]] * 100)
    with pytest.raises(StoreError, match="only 10 labelled"):
        make_split(comp, np.ones(len(comp), dtype=bool))
