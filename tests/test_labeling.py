"""Labeling with any ASE calculator on dask: labels, failures, resumption, imports."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write

from qcapprox.enumeration.recipe import Recipe
from qcapprox.enumeration.run import run_recipe
from qcapprox.hull import Hull
from qcapprox.labeling import LabelingError, import_energies, label_store
from qcapprox.parent import Parent
from qcapprox.store import Store

TINY = """
name = "tiny"
mode = "random"
seed = 5
realizations = 2
[orbits.A4]
species = ["Sc", "M", "vacancy"]
step = 4
"""
LJ = "labelers:lennard_jones"


@pytest.fixture
def tiny(tmp_path, monkeypatch, parent_pt: Parent) -> Path:
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))  # dask workers import labelers
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(TINY)
    out = tmp_path / "tiny.h5"
    run_recipe(Recipe.load(recipe), parent_pt, out)
    return out


def test_labels_equal_direct_calculation_and_hull(tiny: Path) -> None:
    from labelers import lennard_jones

    assert label_store(tiny, LJ, n_workers=1, chunk_size=3) == 0
    store = Store(tiny)
    hull = Hull.load("Pt")
    calc = lennard_jones()
    for row in (0, len(store) // 2, len(store) - 1):
        atoms = store.parent.decorate(store.occupancy[row])
        atoms.calc = calc
        assert store.labels["energy"][row] == pytest.approx(atoms.get_potential_energy())
    n_host, n_dop = store.parent.formula_counts(store.occupancy)
    np.testing.assert_allclose(
        store.labels["e_above_hull"], hull.e_above_hull(store.labels["energy"], n_host, n_dop)
    )
    assert store.labels_attrs["calculator"] == LJ
    assert not store.labels_attrs["stand_in_for_dft"]
    assert not (tiny.parent / "tiny.h5.labels.partial").exists()
    with pytest.raises(LabelingError, match="already labelled"):
        label_store(tiny, LJ, n_workers=1)


def test_failures_are_recorded_not_fatal(tiny: Path) -> None:
    failed = label_store(tiny, "labelers:fragile", n_workers=1, chunk_size=4)
    store = Store(tiny)
    has_vacancy = (store.occupancy == 2).any(axis=1)
    assert failed == has_vacancy.sum() > 0
    assert np.isnan(store.labels["energy"][has_vacancy]).all()
    assert np.isfinite(store.labels["energy"][~has_vacancy]).all()
    assert all("vacancies not supported" in e for e in store.labels["error"][has_vacancy])


def test_resume_uses_committed_journal(tiny: Path) -> None:
    """Committed chunks are not recomputed: a journal chunk with marked energies survives."""
    from qcapprox.labeling import label_chunk, label_journal

    store = Store(tiny)
    journal = label_journal(tiny, store, LJ)
    rows = np.arange(3)
    chunk = label_chunk(LJ, store.parent, rows, store.occupancy[rows])
    chunk["energy"] = np.array([1.0, 2.0, 3.0])  # what a previous run committed
    journal.add(3, chunk)
    label_store(tiny, LJ, n_workers=1, chunk_size=5)
    energy = Store(tiny).labels["energy"]
    np.testing.assert_array_equal(energy[:3], [1.0, 2.0, 3.0])
    assert np.isfinite(energy[3:]).all() and (energy[3:] < 0).all()


def test_import_energies_from_extxyz_any_order(tiny: Path, tmp_path, parent_pt: Parent) -> None:
    store = Store(tiny)
    rng = np.random.default_rng(1)
    images, expected = [], {}
    for row in rng.permutation(len(store))[:5]:
        atoms = store.parent.decorate(store.occupancy[row])
        atoms = atoms[rng.permutation(len(atoms))]
        atoms.rattle(0.05, seed=int(row))
        energy = -6.5 * len(atoms) + float(row)
        atoms.calc = SinglePointCalculator(atoms, energy=energy)
        images.append(atoms)
        expected[int(row)] = energy
    write(tmp_path / "dft.extxyz", images)
    assert import_energies(tiny, tmp_path / "dft.extxyz") == 5
    labels = Store(tiny).labels
    for row, energy in expected.items():
        assert labels["energy"][row] == energy
    assert np.isnan(labels["energy"]).sum() == len(store) - 5
    assert (labels["error"] == "no structure").sum() == len(store) - 5
