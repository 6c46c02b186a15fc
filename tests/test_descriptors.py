"""Descriptors: symmetry invariance and agreement with explicit pair counting."""

from __future__ import annotations

import itertools

import numpy as np

from qcapprox.descriptors import Descriptors
from qcapprox.enumeration import Enumerator
from qcapprox.parent import Parent


def test_invariant_under_the_group(parent_pt: Parent, enumerator_pt: Enumerator) -> None:
    desc = Descriptors.from_parent(parent_pt)
    rng = np.random.default_rng(0)
    occ = rng.integers(0, 3, size=(200, 36)).astype(np.uint8)
    reference = desc.transform(occ)
    for perm in enumerator_pt.group[::5]:
        image = occ[:, np.argsort(perm)]
        np.testing.assert_array_equal(desc.transform(image), reference)


def test_contact_counts_match_explicit_pairs(parent_pt: Parent) -> None:
    desc = Descriptors.from_parent(parent_pt)
    dist = parent_pt.atoms.get_all_distances(mic=True)[np.ix_(parent_pt.active, parent_pt.active)]
    shortest = dist[np.triu_indices(36, 1)].min()
    orbit = np.array(["A4"] * 12 + ["A5"] * 24)
    name = {1: "M", 2: "vac"}
    rng = np.random.default_rng(3)
    for occ in rng.integers(0, 3, size=(20, 36)):
        expected = dict.fromkeys([n for n in desc.names if n.startswith("contacts")], 0)
        for i, j in itertools.combinations(range(36), 2):
            if dist[i, j] < 1.25 * shortest and occ[i] and occ[j]:
                (oi, si), (oj, sj) = sorted([(orbit[i], name[occ[i]]), (orbit[j], name[occ[j]])])
                species = "-".join(sorted([si, sj], key=["vac", "M"].index))
                expected[f"contacts {oi}-{oj} {species}"] += 1
        row = dict(zip(desc.names, desc.transform(occ)[0], strict=True))
        for key, value in expected.items():
            assert row[key] == value, key
        assert row["A4 vac"] == (occ[:12] == 2).sum() and row["A5 M"] == (occ[12:] == 1).sum()
        n_dop = 26 + (occ == 1).sum()
        n_host = 120 - (occ != 0).sum()
        assert row["x_M"] == n_dop / (n_dop + n_host)
        assert row["n_atoms"] == 146 - (occ == 2).sum()
