"""Cluster correlation functions: definitions, invariance, resolution; the cluster expansion."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest

from qcapprox.clusters import DECIMALS, ClusterSpace, point_functions
from qcapprox.descriptors import Descriptors
from qcapprox.enumeration import Enumerator
from qcapprox.models.forest import load_member
from qcapprox.parent import Parent


@pytest.fixture(scope="module")
def space(parent_pt: Parent) -> ClusterSpace:
    return ClusterSpace.from_parent(parent_pt)


def test_point_functions_are_orthogonal() -> None:
    """(1/3) sum_s Theta_n(s) Theta_n'(s) = delta_nn' / 2, and each averages to 0."""
    theta = point_functions(np.arange(3))
    np.testing.assert_allclose(theta.T @ theta / 3, np.eye(2) / 2, atol=1e-12)
    np.testing.assert_allclose(theta.mean(axis=0), 0.0, atol=1e-12)


def test_invariant_under_the_group(space: ClusterSpace, enumerator_pt: Enumerator) -> None:
    occ = np.random.default_rng(0).integers(0, 3, size=(100, 36)).astype(np.uint8)
    reference = space.transform(occ)
    for perm in enumerator_pt.group[::7]:
        np.testing.assert_allclose(space.transform(occ[:, np.argsort(perm)]), reference,
                                   atol=1e-12)  # fmt: skip


def test_pair_correlations_by_their_definition(parent_pt: Parent, space: ClusterSpace) -> None:
    """Every pair function equals the orbit average of Theta_n1(s_i) Theta_n2(s_j) over
    the images of its representative pair under all 48 operations, computed directly, to
    the DECIMALS places it is rounded to."""
    occ = np.random.default_rng(1).integers(0, 3, size=36)
    theta = point_functions(occ)
    values = dict(zip(space.names, space.transform(occ)[0], strict=True))
    assert len(values) == len(space.functions)  # names are unique
    for f in space.functions:
        if f.order != 2:
            continue
        (i, j), (n1, n2) = f.sites[0], f.indices[0]
        images = parent_pt.group[:, [i, j]]
        expected = np.mean([theta[a, n1 - 1] * theta[b, n2 - 1] for a, b in images])
        # rounded to DECIMALS places, so that every machine gives the same bits
        assert values[f.name] == pytest.approx(expected, abs=0.5 * 10.0**-DECIMALS), f.name
        assert values[f.name] == round(expected, DECIMALS), f.name


def test_pairs_cover_every_shell_up_to_the_cutoff(parent_pt: Parent, space: ClusterSpace) -> None:
    """Each pair distance up to the cutoff, between each pair of orbits, has a function."""
    dist = parent_pt.atoms.get_all_distances(mic=True)[np.ix_(parent_pt.active, parent_pt.active)]
    orbit = np.array(["A4"] * 12 + ["A5"] * 24)
    pairs = [(i, j) for i, j in combinations(range(36), 2) if dist[i, j] <= space.pair_cutoff]
    shells = {(round(dist[i, j], 2), "-".join(sorted([orbit[i], orbit[j]]))) for i, j in pairs}
    found = {(round(f.radius, 2), "-".join(sorted(f.orbit.split("-"))))
             for f in space.functions if f.order == 2}  # fmt: skip
    assert shells == found


def test_correlations_resolve_the_arrangements_descriptors_cannot(
    parent_pt: Parent, enumerator_pt: Enumerator, space: ClusterSpace
) -> None:
    """Every one of the 30 distinct configurations of five A4 vacancies gets its own
    correlation vector; the defect descriptors give them far fewer distinct rows."""
    occ = np.concatenate([b.occupancy for b in enumerator_pt.enumerate((5, 0, 0, 0))])
    assert len(occ) == enumerator_pt.count((5, 0, 0, 0)) == 30
    cf = np.unique(np.round(space.transform(occ), 10), axis=0)
    desc = np.unique(Descriptors.from_parent(parent_pt).transform(occ), axis=0)
    assert len(cf) == 30
    assert len(desc) < 10


def test_cluster_expansion_member_and_its_ecis(parent_pt: Parent) -> None:
    """A limit-0 cluster expansion of the bundled Pt labels: its card lists the ECIs, and
    intercept + ECIs . correlations is its prediction."""
    member = load_member("Pt", 0, "ce")
    card = member.card
    assert card["features"].startswith("cluster correlations") and card["ecis"]
    occ = np.random.default_rng(4).integers(0, 3, size=(5, 36)).astype(np.uint8)
    occ[:, 12:] = 0
    x = dict(zip(member.descriptors.names, member.descriptors.transform(occ).T, strict=True))
    linear = card["intercept"] + sum(j * x[name] for name, j in card["ecis"].items())
    np.testing.assert_allclose(member.predict(occ), linear, atol=1e-9)
    assert np.isfinite(card["test_rmse"]) and card["sizes"]["test"] == 63
