"""Exact enumeration: Burnside agreement, brute force, canonical forms, realizations."""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import pytest

from qcapprox.enumeration import Enumerator
from qcapprox.enumeration.realizations import realizations
from qcapprox.enumeration.recipe import Recipe
from qcapprox.errors import EnumerationError, RecipeError
from qcapprox.parent import Parent
from qcapprox.paths import RECIPES_DIR


def collect(enumerator: Enumerator, composition) -> tuple[np.ndarray, np.ndarray]:
    blocks = list(enumerator.enumerate(composition))
    return (
        np.concatenate([b.occupancy for b in blocks]),
        np.concatenate([b.multiplicity for b in blocks]),
    )


def check_exact(enumerator: Enumerator, composition) -> int:
    occ, mult = collect(enumerator, composition)
    assert len(occ) == enumerator.count(composition), composition
    assert mult.sum() == enumerator.labelled(composition), composition
    ids = enumerator.ids(occ)
    assert len(np.unique(ids)) == len(ids)
    canonical, mult2 = enumerator.canonicalize(occ)
    np.testing.assert_array_equal(canonical, occ)
    np.testing.assert_array_equal(mult2, mult)
    counts = np.concatenate(
        [[(occ[:, sl] == 2).sum(1), (occ[:, sl] == 1).sum(1)] for sl in enumerator.slices]
    ).T
    assert (counts == np.array(composition)).all()
    return len(occ)


def test_necklaces_known_counts() -> None:
    """Binary necklaces: C6 on 6 beads with 3 black gives 4, D6 gives 3 (OEIS A000031)."""
    rotations = np.array([np.roll(np.arange(6), k) for k in range(6)])
    cyclic = Enumerator(rotations, [slice(0, 6)])
    assert cyclic.count((0, 3)) == 4 and check_exact(cyclic, (0, 3)) == 4
    dihedral = Enumerator(np.concatenate([rotations, rotations[:, ::-1]]), [slice(0, 6)])
    assert dihedral.count((0, 3)) == 3 and check_exact(dihedral, (0, 3)) == 3
    # ternary necklaces of length 6 with 2+2+2 beads under C6: (1/6)(90 + 2*6 + ...) = 16
    assert check_exact(cyclic, (2, 2)) == 16


def test_a4_all_compositions_against_brute_force(enumerator_pt: Enumerator) -> None:
    """All 3^12 labelled A4 decorations canonicalized independently: same orbits."""
    labelled = np.array(list(itertools.product([0, 1, 2], repeat=12)), dtype=np.uint8)
    full = np.zeros((len(labelled), 36), dtype=np.uint8)
    full[:, :12] = labelled
    canonical, _ = enumerator_pt.canonicalize(full)
    brute = np.unique(enumerator_pt.ids(canonical))
    enumerated = []
    for v in range(13):
        for m in range(13 - v):
            occ, _ = collect(enumerator_pt, (v, m, 0, 0))
            assert len(occ) == enumerator_pt.count((v, m, 0, 0))
            enumerated.append(enumerator_pt.ids(occ))
    np.testing.assert_array_equal(np.sort(np.concatenate(enumerated)), brute)
    assert len(brute) == 15327


@pytest.mark.parametrize(
    "composition",
    [
        (0, 0, 1, 1),
        (0, 0, 2, 2),
        (0, 0, 3, 3),
        (0, 0, 12, 0),
        (0, 0, 0, 6),
        (0, 0, 4, 2),
        (2, 1, 1, 1),
        (6, 0, 2, 0),
        (1, 1, 1, 1),
        (12, 0, 2, 2),
        (4, 4, 0, 1),
        (3, 0, 0, 3),
        (0, 12, 24, 0),
        (0, 0, 6, 0),
        (6, 6, 1, 0),
    ],
)
def test_burnside_agreement(enumerator_pt: Enumerator, composition) -> None:
    check_exact(enumerator_pt, composition)


def test_five_plus_five_on_a5_counts(enumerator_pt: Enumerator) -> None:
    """The benchmark case: 5 M + 5 vacancies on A5, about 4.9e8 labelled decorations."""
    n = 0
    total = 0
    for block in enumerator_pt.enumerate((0, 0, 5, 5)):
        n += len(block.occupancy)
        total += int(block.multiplicity.sum())
    assert n == enumerator_pt.count((0, 0, 5, 5)) == 10_306_548
    assert total == enumerator_pt.labelled((0, 0, 5, 5)) == 494_236_512


def test_bad_compositions(enumerator_pt: Enumerator) -> None:
    with pytest.raises(EnumerationError, match="do not fit"):
        enumerator_pt.count((10, 3, 0, 0))
    with pytest.raises(EnumerationError, match="needs 4 counts"):
        list(enumerator_pt.enumerate((1, 1)))


def test_realizations_deterministic_distinct_canonical(enumerator_pt: Enumerator) -> None:
    for comp, n in [((2, 2, 4, 2), 5), ((0, 2, 0, 0), 10), ((4, 0, 6, 6), 3)]:
        first = realizations(enumerator_pt, comp, n, seed=11)
        again = realizations(enumerator_pt, comp, n, seed=11)
        other = realizations(enumerator_pt, comp, n, seed=12)
        np.testing.assert_array_equal(first.occupancy, again.occupancy)
        assert len(first.occupancy) == min(n, enumerator_pt.count(comp))
        ids = enumerator_pt.ids(first.occupancy)
        assert len(set(ids)) == len(ids)
        canonical, mult = enumerator_pt.canonicalize(first.occupancy)
        np.testing.assert_array_equal(canonical, first.occupancy)
        np.testing.assert_array_equal(mult, first.multiplicity)
        if enumerator_pt.count(comp) > 100:
            assert not np.array_equal(first.occupancy, other.occupancy)


def test_realizations_uniform_over_distinct_configurations(enumerator_pt: Enumerator) -> None:
    """(0,0,1,1) has 15 orbits of sizes 24 and 48: draws must not follow the sizes."""
    comp = (0, 0, 1, 1)
    occ, mult = collect(enumerator_pt, comp)
    index = {int(i): k for k, i in enumerate(enumerator_pt.ids(occ))}
    draws = 1500
    hits = np.zeros(len(occ))
    for seed in range(draws):
        block = realizations(enumerator_pt, comp, 1, seed=seed)
        hits[index[int(enumerator_pt.ids(block.occupancy)[0])]] += 1
    expected = draws / len(occ)
    chi2 = ((hits - expected) ** 2 / expected).sum()
    assert chi2 < 36  # 14 degrees of freedom, p < 0.001
    small = mult < mult.max()
    assert small.any()
    # sampling labelled decorations would favour large orbits by a factor of 2
    assert hits[small].mean() > 0.8 * hits[~small].mean()


def independent_grid_count(bound: Fraction) -> int:
    """Step-2 compositions on A4 and A5 with x_Sc strictly above the bound, counted directly
    from the cell's 120 Sc + 26 M (36 active Sc sites)."""
    n = 0
    for v4, m4, v5, m5 in itertools.product(
        range(0, 13, 2), range(0, 13, 2), range(0, 25, 2), range(0, 25, 2)
    ):
        if v4 + m4 <= 12 and v5 + m5 <= 24:
            sc, dop = 120 - v4 - m4 - v5 - m5, 26 + m4 + m5
            n += Fraction(sc, sc + dop) > bound
    return n


@pytest.mark.parametrize(
    "dopant,bound,grid",
    [
        ("Pt", Fraction(2, 3), 2107),
        ("Pd", Fraction(2, 3), 2107),
        ("Ir", Fraction(11, 15), 1011),
        ("Rh", Fraction(11, 15), 1011),
    ],
)
def test_training_recipe_is_table_1(dopant: str, bound: Fraction, grid: int) -> None:
    """Grid compositions (train + validation) and the 63 off-grid A4-only test ones."""
    parent = Parent.load(dopant)
    recipe = Recipe.load(RECIPES_DIR / "training.toml")
    tasks = recipe.tasks(parent)
    fit = [t.composition for t in tasks if not t.test]
    test = [t.composition for t in tasks if t.test]
    assert len(fit) == independent_grid_count(bound) == grid
    assert all(t.count == 1 for t in tasks)
    # test: A4 only, an odd number of vacancies or of M, every such composition once
    assert len(test) == len(set(test)) == 63
    assert all(c[2] == c[3] == 0 and (c[0] % 2 or c[1] % 2) for c in test)
    assert len({(v, m) for v in range(13) for m in range(13 - v)} - {c[:2] for c in test}) == 28
    assert not set(test) & set(fit)


def test_inference_recipe_total(parent_pt: Parent, enumerator_pt: Enumerator) -> None:
    recipe = Recipe.load(RECIPES_DIR / "inference-a4.toml")
    tasks = recipe.tasks(parent_pt)
    assert len(tasks) == 91 and all(t.count is None for t in tasks)
    # Burnside over all A4 colourings at once: (1/|G|) sum_g 3^(cycles of g on A4)
    total = 0
    for perm in enumerator_pt.group:
        seen, n_cycles = set(), 0
        for i in range(12):
            if i not in seen:
                n_cycles += 1
                j = i
                while j not in seen:
                    seen.add(j)
                    j = perm[j]
        total += 3**n_cycles
    assert sum(enumerator_pt.count(t.composition) for t in tasks) == total // 48 == 15327


def test_recipe_errors(tmp_path, parent_pt: Parent) -> None:
    with pytest.raises(RecipeError, match="not valid TOML"):
        Recipe.parse("mode = ", source="x.toml")
    with pytest.raises(RecipeError, match="mode must be"):
        Recipe.parse('mode = "some"\n[orbits.A4]\nspecies=["Sc"]')
    with pytest.raises(RecipeError, match="must include 'Sc'"):
        Recipe.parse('[orbits.A4]\nspecies=["Au"]')
    with pytest.raises(RecipeError, match="not active orbits"):
        Recipe.parse('[orbits.B7]\nspecies=["Sc", "M"]').compositions(parent_pt)
    with pytest.raises(RecipeError, match="cannot read"):
        Recipe.load(tmp_path / "missing.toml")
    with pytest.raises(RecipeError, match=r"test\.orbit"):
        Recipe.parse('[orbits.A4]\nspecies=["Sc", "M"]\n[test]\norbit = "A9"')
    with pytest.raises(RecipeError, match="sc_fraction_above"):
        Recipe.parse('[orbits.A4]\nspecies=["Sc"]\n[min_sc_fraction]\ndefault = "2/3"')


def test_listed_compositions(parent_pt: Parent, enumerator_pt: Enumerator) -> None:
    """A recipe's `compositions` replace the grid, each taken as written (no Sc bound); the
    configuration benchmark holds every distinct configuration of 3, 5 and 7 A4 vacancies,
    the depth design at most 20 of each of its compositions."""
    bench = Recipe.load(RECIPES_DIR / "configurations.toml")
    tasks = bench.tasks(parent_pt)
    assert [t.composition for t in tasks] == [(3, 0, 0, 0), (5, 0, 0, 0), (7, 0, 0, 0)]
    assert all(t.count is None and not t.test for t in tasks)
    assert sum(enumerator_pt.count(t.composition) for t in tasks) == 11 + 30 + 30
    depth = Recipe.load(RECIPES_DIR / "depth.toml").tasks(parent_pt)
    assert len(depth) == 13 and all(t.count == 20 for t in depth)
    with pytest.raises(RecipeError, match="needs 4 counts"):
        Recipe.parse('compositions = [[1, 0]]\n[orbits.A4]\nspecies=["Sc", "vacancy"]').tasks(
            parent_pt
        )
    with pytest.raises(RecipeError, match="species"):
        Recipe.parse('compositions = [[0, 1, 0, 0]]\n[orbits.A4]\nspecies=["Sc", "vacancy"]').tasks(
            parent_pt
        )
    with pytest.raises(RecipeError, match="12 sites"):
        Recipe.parse(
            'compositions = [[13, 0, 0, 0]]\n[orbits.A4]\nspecies=["Sc", "vacancy"]'
        ).tasks(parent_pt)
    with pytest.raises(RecipeError, match="twice"):
        Recipe.parse("compositions = [[1, 0, 0, 0], [1, 0, 0, 0]]\n[orbits.A4]\nspecies=['Sc']")
    with pytest.raises(RecipeError, match="list of count lists"):
        Recipe.parse("compositions = [[-1, 0, 0, 0]]\n[orbits.A4]\nspecies=['Sc']")
