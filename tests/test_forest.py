"""The Random Forest family and ForestHullCalculator on the bundled Pt training set."""

from __future__ import annotations

import json

import numpy as np
import pytest

from qcapprox.calculators import ForestHullCalculator
from qcapprox.datasets import TEST
from qcapprox.errors import IdentifyError
from qcapprox.hull import Hull
from qcapprox.models.forest import ModelError, load_member, registry_dir, training_store
from qcapprox.store import Store


@pytest.mark.parametrize("limit", [0, 24])
def test_member_reproduces_its_card(limit: int) -> None:
    member = load_member("Pt", limit)  # trains: raises if hash or test RMSE differ from card
    card = json.loads((registry_dir("rf", "Pt", limit) / "card.json").read_text())
    assert member.card == card
    store = Store(training_store("Pt"))
    test = np.flatnonzero(store.split == TEST)
    pred = member.predict(store.occupancy[test])
    rmse = np.sqrt(np.mean((pred - store.labels["e_above_hull"][test]) ** 2))
    assert rmse == pytest.approx(card["test_rmse"], abs=1e-12)
    assert rmse < 0.03  # eV/atom; the study reports about 0.01 for its DFT labels
    assert card["sizes"]["test"] == 63 and "stand-in for DFT" in card["labeler"]
    # a second load comes from the cache, with the same predictions
    np.testing.assert_allclose(
        load_member("Pt", limit).predict(store.occupancy[test]), pred, rtol=1e-12
    )


def test_calculator_follows_ase_contract() -> None:
    calc = ForestHullCalculator(dopant="Pt", limit=24)
    store = Store(training_store("Pt"))
    hull = Hull.load("Pt")
    row = 100
    atoms = store.parent.decorate(store.occupancy[row])
    atoms = atoms[np.random.default_rng(0).permutation(len(atoms))]
    atoms.calc = calc
    energy = atoms.get_potential_energy()
    e_hull = calc.get_property("e_above_hull")
    assert e_hull == pytest.approx(calc.member.predict(store.occupancy[row : row + 1])[0])
    n_sc = atoms.get_chemical_symbols().count("Sc")
    n_pt = len(atoms) - n_sc
    assert hull.e_above_hull(energy, n_sc, n_pt) == pytest.approx(e_hull, abs=1e-12)
    assert calc.get_property("formation_energy") == pytest.approx(
        hull.formation_energy(energy, n_sc, n_pt), abs=1e-12
    )
    calls = []
    original = calc.predict_e_above_hull
    calc.predict_e_above_hull = lambda occ: calls.append(1) or original(occ)
    atoms.get_potential_energy()
    assert calls == []  # results cache: unchanged atoms are not recomputed
    atoms.positions[0] += 0.01
    atoms.get_potential_energy()
    assert calls == [1]


def test_calculator_rejects_foreign_atoms_and_bad_limits() -> None:
    calc = ForestHullCalculator(dopant="Pt", limit=0)
    atoms = Store(training_store("Pt")).parent.decorate(np.zeros(36, np.uint8))
    atoms[7].symbol = "Au"
    atoms.calc = calc
    with pytest.raises(IdentifyError, match="atom 7 is Au"):
        atoms.get_potential_energy()
    with pytest.raises(ModelError, match="limit 5 is not one of"):
        ForestHullCalculator(dopant="Pt", limit=5)
    with pytest.raises(ModelError, match="no training set for Os"):
        ForestHullCalculator(dopant="Os", limit=0)
