"""Labeling with any ASE calculator on dask: single points and relaxations, failures,
resumption, imports."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write
from ase.stress import full_3x3_to_voigt_6_stress

from qcapprox.enumeration.recipe import Recipe
from qcapprox.enumeration.run import run_recipe
from qcapprox.errors import StoreError
from qcapprox.hull import Hull, reference_path
from qcapprox.labeling import (
    LabelingError,
    Relaxation,
    import_energies,
    label_store,
    make_calculator,
    rehull,
    stale_hull,
)
from qcapprox.parent import Parent
from qcapprox.store import Store

SIX = """
name = "six"
mode = "random"
seed = 5
realizations = 1
[orbits.A4]
species = ["Sc", "M", "vacancy"]
step = 6
"""

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


def make_store(tmp_path: Path, monkeypatch, parent: Parent, text: str) -> Path:
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))  # dask workers import labelers
    out = tmp_path / "tiny.h5"
    run_recipe(Recipe.parse(text), parent, out)
    return out


@pytest.fixture
def tiny(tmp_path, monkeypatch, parent_pt: Parent) -> Path:
    return make_store(tmp_path, monkeypatch, parent_pt, TINY)


@pytest.fixture
def six(tmp_path, monkeypatch, parent_pt: Parent) -> Path:
    return make_store(tmp_path, monkeypatch, parent_pt, SIX)


# 0.2 eV/A: 7 FIRE steps per structure here (34-53 at 0.1), the same code path
RELAXATION = Relaxation(fmax=0.2, max_steps=500)


@pytest.fixture(scope="module")
def relaxed_six(tmp_path_factory, parent_pt: Parent, dask_scheduler: str) -> Path:
    """The `six` store relaxed with Lennard-Jones (RELAXATION), once per module: read it,
    never write it."""
    with pytest.MonkeyPatch.context() as mp:
        path = make_store(tmp_path_factory.mktemp("relaxed"), mp, parent_pt, SIX)
        assert label_store(path, LJ, RELAXATION, scheduler=dask_scheduler, chunk_size=4) == 0
    return path


def test_labels_equal_direct_calculation_and_hull(tiny: Path, dask_scheduler: str) -> None:
    from labelers import lennard_jones

    assert label_store(tiny, LJ, scheduler=dask_scheduler, chunk_size=3) == 0
    store = Store(tiny)
    labels = store.label_set("single-point")
    hull = Hull.load("Pt")
    calc = lennard_jones()
    for row in (0, len(store) // 2, len(store) - 1):
        atoms = store.parent.decorate(store.occupancy[row])
        atoms.calc = calc
        assert labels.energy[row] == pytest.approx(atoms.get_potential_energy())
    n_host, n_dop = store.parent.formula_counts(store.occupancy)
    np.testing.assert_allclose(labels.e_above_hull, hull.e_above_hull(labels.energy, n_host, n_dop))
    assert labels.attrs["calculator"] == LJ
    assert not labels.attrs["stand_in_for_dft"]
    assert labels.usable.all() and "relaxed" not in store.labels
    assert not (tiny.parent / "tiny.h5.labels-single-point.partial").exists()
    with pytest.raises(LabelingError, match="already has single-point labels"):
        label_store(tiny, LJ, scheduler=dask_scheduler)


def test_relaxed_labels_match_an_independent_relaxation(relaxed_six: Path) -> None:
    """The relaxed energy is that of ASE's own FIRE + FrechetCellFilter run; the stored cell
    and positions give it back; the single points are kept beside it."""
    from ase import Atoms
    from ase.filters import FrechetCellFilter
    from ase.optimize import FIRE
    from labelers import lennard_jones
    from threadpoolctl import threadpool_limits

    six = relaxed_six
    store = Store(six)
    relaxed, single = store.label_set("relaxed"), store.label_set("single-point")
    assert relaxed.converged.all() and relaxed.usable.all()
    assert (relaxed.energy < single.energy).all()
    with h5py.File(six) as handle:
        group = handle["labels/relaxed"]
        cell, positions = group["cell"][:], group["positions"][:]
        offset, steps = group["atoms_offset"][:], group["steps"][:]
        displacement = group["max_displacement"][:]
    assert (steps > 0).all() and (steps <= RELAXATION.max_steps).all() and (displacement > 0).all()
    for row in (0, len(store) - 1):
        decorated = store.parent.decorate(store.occupancy[row])
        decorated.calc = lennard_jones()
        assert single.energy[row] == pytest.approx(decorated.get_potential_energy())
        opt = FIRE(FrechetCellFilter(decorated), logfile=None)
        with threadpool_limits(1):  # as the labeler's workers run it
            assert opt.run(fmax=RELAXATION.fmax, steps=RELAXATION.max_steps)
        assert relaxed.energy[row] == pytest.approx(decorated.get_potential_energy(), abs=1e-8)
        assert steps[row] == opt.nsteps
        again = Atoms(decorated.numbers, positions[offset[row] : offset[row + 1]],
                      cell=cell[row], pbc=True, calculator=lennard_jones())  # fmt: skip
        assert again.get_potential_energy() == pytest.approx(relaxed.energy[row], abs=1e-8)
    assert "FIRE" in relaxed.attrs["settings"] and "fmax 0.2 " in relaxed.attrs["settings"]


def test_relaxations_start_from_a_source_store(
    relaxed_six: Path, tmp_path, monkeypatch, parent_pt: Parent, dask_scheduler: str
) -> None:
    """`start_from`: a second store of the same configurations, relaxed from the source's
    relaxed geometries with the same calculator and settings, starts at the minimum (0
    steps) and ends at the source's energies; its single points stay the parent's."""
    six = relaxed_six
    again = make_store(tmp_path, monkeypatch, parent_pt, SIX)
    assert (
        label_store(again, LJ, RELAXATION, scheduler=dask_scheduler, chunk_size=4, start_from=six)
        == 0
    )
    source, store = Store(six), Store(again)
    np.testing.assert_array_equal(store.occupancy, source.occupancy)
    relaxed = store.label_set("relaxed")
    np.testing.assert_allclose(relaxed.energy, source.label_set("relaxed").energy, atol=1e-8)
    np.testing.assert_array_equal(
        store.label_set("single-point").energy, source.label_set("single-point").energy
    )
    with h5py.File(again) as handle:
        assert (handle["labels/relaxed/steps"][:] == 0).all()
        assert handle["labels/relaxed/from_source"][:].all()
    assert f"{six.name} relaxed geometries, sha256 " in relaxed.attrs["settings"]
    with h5py.File(six) as handle:
        assert not handle["labels/relaxed/from_source"][:].any()  # relaxed from the parent


def test_start_geometries_carry_the_strain_to_another_parent(relaxed_six: Path, tmp_path) -> None:
    """Start geometries for another dopant: h = h0 h0_s^-1 h_s, the source's fractional
    coordinates; only the configurations the source relaxed to convergence."""
    from qcapprox.labeling import start_geometries

    six = relaxed_six
    rh = tmp_path / "rh.h5"
    run_recipe(Recipe.parse(SIX), Parent.load("Rh"), rh)
    source, store = Store(six), Store(rh)
    starts, what = start_geometries(store, six)
    assert sorted(starts) == list(range(len(store))) and what.startswith(f"{six.name} relaxed")
    with h5py.File(six) as handle:
        cell, positions = handle["labels/relaxed/cell"][:], handle["labels/relaxed/positions"][:]
        offset = handle["labels/relaxed/atoms_offset"][:]
    h0_s, h0 = source.parent.atoms.cell[:], store.parent.atoms.cell[:]
    for row in (0, len(store) - 1):
        start_cell, frac = starts[row]
        np.testing.assert_allclose(start_cell, h0 @ np.linalg.inv(h0_s) @ cell[row], atol=1e-10)
        ratio = np.linalg.det(start_cell) / np.linalg.det(cell[row])
        assert ratio == pytest.approx(np.linalg.det(h0) / np.linalg.det(h0_s))
        np.testing.assert_allclose(frac @ cell[row], positions[offset[row] : offset[row + 1]])
        assert len(frac) == len(store.parent.decorate(store.occupancy[row]))
    with pytest.raises(StoreError, match="has no relaxed labels"):
        start_geometries(store, rh)


def test_step_cap_flags_unconverged_rows(six: Path, dask_scheduler: str) -> None:
    assert label_store(six, LJ, Relaxation(fmax=1e-4, max_steps=3), scheduler=dask_scheduler) == 0
    relaxed = Store(six).label_set("relaxed")
    assert not relaxed.converged.any() and not relaxed.usable.any()
    assert np.isfinite(relaxed.energy).all()


def test_failures_are_recorded_not_fatal(tiny: Path, dask_scheduler: str) -> None:
    failed = label_store(tiny, "labelers:fragile", scheduler=dask_scheduler, chunk_size=4)
    store = Store(tiny)
    labels = store.label_set("single-point")
    has_vacancy = (store.occupancy == 2).any(axis=1)
    assert failed == has_vacancy.sum() > 0
    assert np.isnan(labels.energy[has_vacancy]).all()
    assert np.isfinite(labels.energy[~has_vacancy]).all()
    assert not labels.usable[has_vacancy].any()
    assert all("vacancies not supported" in e for e in labels.error[has_vacancy])


def test_local_workers_keep_freed_memory(tiny: Path) -> None:
    """The local dask workers start with large malloc thresholds (not dask's 64 KiB trim)."""
    assert label_store(tiny, "labelers:malloc_checked", n_workers=1, chunk_size=8) == 0
    assert Store(tiny).label_set("single-point").usable.all()


def test_resume_uses_committed_journal(tiny: Path, dask_scheduler: str) -> None:
    """Committed chunks are not recomputed: a journal chunk with marked energies survives."""
    from qcapprox.labeling import label_chunk, label_journal

    store = Store(tiny)
    journal = label_journal(tiny, store, LJ)
    rows = np.arange(3)
    chunk = label_chunk(LJ, store.parent, rows, store.occupancy[rows])
    chunk["single_point"] = np.array([1.0, 2.0, 3.0])  # what a previous run committed
    journal.add(3, chunk)
    label_store(tiny, LJ, scheduler=dask_scheduler, chunk_size=5)
    energy = Store(tiny).label_set("single-point").energy
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
    stored = Store(tiny)
    labels = stored.label_set("relaxed")
    assert "single-point" not in stored.labels
    for row, energy in expected.items():
        assert labels.energy[row] == energy
    assert np.isnan(labels.energy).sum() == len(store) - 5
    assert (labels.error == "no structure").sum() == len(store) - 5
    assert labels.usable.sum() == 5


def test_rehull_after_a_new_competing_phase(tiny: Path, tmp_path) -> None:
    """A phase 60 meV/atom below the hull at x = 1/4 joins the references: rehull gives the
    labels the energies above the new hull (eqs. 1 and 2 recomputed here with np.interp),
    keeps the energies and records the new references; an unlabelled store is refused."""
    import json

    with pytest.raises(LabelingError, match="has no labels"):
        rehull(tiny)
    store = Store(tiny)
    old = Hull.load("Pt")
    n_sc, n_pt = store.parent.formula_counts(store.occupancy)
    wanted = np.linspace(-0.02, 0.06, len(store))  # eV/atom above the old hull
    images = []
    for row in range(len(store)):
        atoms = store.parent.decorate(store.occupancy[row])
        energy = old.energy_from_e_above_hull(wanted[row], n_sc[row], n_pt[row])
        atoms.calc = SinglePointCalculator(atoms, energy=energy)
        images.append(atoms)
    write(tmp_path / "energies.extxyz", images)
    assert import_energies(tiny, tmp_path / "energies.extxyz") == len(store)
    energy = Store(tiny).label_set("relaxed").energy.copy()

    phases = json.loads(reference_path("Pt").read_text())["phases"]
    entries = {p["name"]: (p["formula"], p["energy"]) for p in phases}
    deep = old.energy_from_formation(old.hull_energy(0.25) - 0.06, 3, 1)
    new = Hull.from_entries("Pt", {**entries, "Sc3Pt_deep": ("Sc3Pt", deep)})
    assert "Sc3Pt_deep" in new.stable_names
    counts = rehull(tiny, new)

    labels = Store(tiny).label_set("relaxed")
    np.testing.assert_array_equal(labels.energy, energy)
    n = n_sc + n_pt
    e_form = (energy - n_sc * new.e_host - n_pt * new.e_dopant) / n
    expected = e_form - np.interp(n_pt / n, new.stable_x, new.stable_e_form)
    np.testing.assert_allclose(labels.e_above_hull, expected, atol=1e-12)
    np.testing.assert_allclose(labels.formation_energy, e_form, atol=1e-12)
    assert (expected > wanted).all()  # the hull went down at every composition here
    assert counts == {"relaxed": (int((wanted < 0).sum()), int((expected < 0).sum()))}
    with h5py.File(tiny) as handle:
        recorded = json.loads(handle["labels/relaxed"].attrs["references"])
    assert recorded["stable"] == list(new.stable_names)
    # against the bundled references these labels are stale: training warns, info says so
    assert "qcapprox rehull" in stale_hull(Store(tiny), "relaxed")
    rehull(tiny)
    assert stale_hull(Store(tiny), "relaxed") is None


def test_bundled_labeler_equals_chgnet_calculator() -> None:
    """The one-pass gradients of CHGNetLabeler are chgnet's own energy, forces and stress
    (on a rattled, strained Sc57Pt13: forces and stress nonzero), with or without its
    weights frozen."""
    from chgnet.model.dynamics import CHGNetCalculator

    from qcapprox.labeler import CHGNetLabeler

    parent = Parent.load("Pt")
    atoms = parent.decorate(parent.known_phase())
    atoms.rattle(0.05, seed=3)
    atoms.set_cell(atoms.cell * np.diag([1.01, 0.99, 1.0]), scale_atoms=True)
    reference = CHGNetCalculator(use_device="cpu")
    labeler = CHGNetLabeler(model=reference.model, use_device="cpu")
    expected, got = (
        {
            key: getattr(calc, f"get_{key}")(atoms)
            for key in ("potential_energy", "forces", "stress")
        }
        for calc in (reference, labeler)
    )
    assert abs(np.abs(expected["forces"]).max()) > 0.1
    assert abs(got["potential_energy"] - expected["potential_energy"]) < 1e-4
    np.testing.assert_allclose(got["forces"], expected["forces"], atol=1e-4)
    voigt = full_3x3_to_voigt_6_stress(expected["stress"])  # chgnet keeps the 3x3 form
    np.testing.assert_allclose(got["stress"], voigt, atol=1e-6)
    # the relabeling's calculator: the same labeler with its weights frozen
    frozen = make_calculator("chgnet")
    assert not any(p.requires_grad for p in frozen.model.parameters())
    assert abs(frozen.get_potential_energy(atoms) - got["potential_energy"]) < 1e-6
    np.testing.assert_allclose(frozen.get_forces(atoms), got["forces"], atol=1e-6)


@pytest.mark.parametrize("cell", ["sc57pt13", "fcc-pt"])
def test_crystal_graph_equals_chgnet_converter(cell: str) -> None:
    """The array-built graph is chgnet's own, index for index: a rattled, compressed
    Sc57Pt13 (thousands of angles) and one-atom fcc Pt (every edge to a periodic image of
    the atom itself, paired with its reverse image)."""
    from ase.build import bulk
    from chgnet.model import CHGNet
    from pymatgen.io.ase import AseAtomsAdaptor

    from qcapprox.labeler import crystal_graph

    if cell == "fcc-pt":
        atoms = bulk("Pt", "fcc", a=3.92)
    else:
        parent = Parent.load("Pt")
        atoms = parent.decorate(parent.known_phase())
        atoms.set_cell(atoms.cell * 0.93, scale_atoms=True)
        atoms.rattle(0.1, seed=5)
    structure = AseAtomsAdaptor.get_structure(atoms)
    converter = CHGNet.load(verbose=False).graph_converter
    expected, got = converter(structure), crystal_graph(converter, structure)
    assert len(expected.bond_graph) > (1000 if cell == "sc57pt13" else 100)
    fields = ("atomic_number", "atom_frac_coord", "atom_graph", "neighbor_image",
              "directed2undirected", "undirected2directed", "bond_graph", "lattice")  # fmt: skip
    for field in fields:
        a, b = getattr(expected, field), getattr(got, field)
        assert a.dtype == b.dtype and a.shape == b.shape and bool((a == b).all()), field
    assert got.composition == expected.composition


def test_cli_label_logs_progress_lines_when_not_a_terminal(tiny: Path, dask_scheduler: str) -> None:
    """A background run (output to a file) gets plain progress lines with counts and time
    left (here: the time taken), and the summary; the labels are written."""
    from typer.testing import CliRunner

    from qcapprox.cli import app

    args = ["label", str(tiny), "--labels", "single-point", "--calculator", LJ,
            "--scheduler", dask_scheduler]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    n = len(Store(tiny))
    line = f"label {tiny.name} (single-point): {n:,}/{n:,} structures (100 %), done in "
    assert line in result.output
    text = " ".join(result.output.split())  # the summary wraps at the console's width
    assert f"{n:,} configurations" in text and "0 failed, 0 unconverged" in text
    assert Store(tiny).label_set("single-point").usable.all()


def test_labels_in_progress_from_the_journal(tiny: Path) -> None:
    """`qcapprox info` reads a run in progress from its committed journal: rows done,
    failed, and the limits whose rows are all done (none until every row is)."""
    from typer.testing import CliRunner

    from qcapprox.cli import app
    from qcapprox.labeling import label_chunk, label_journal, labels_in_progress
    from qcapprox.words import LIMITS

    store = Store(tiny)
    assert labels_in_progress(tiny) == {}
    assert not list(tiny.parent.glob("*.partial"))  # reading writes nothing
    journal = label_journal(tiny, store, "labelers:fragile")
    rows = np.arange(len(store))
    for part in (rows[:3], rows[3:]):
        before = labels_in_progress(tiny)
        journal.add(int(part[-1]) + 1, label_chunk("labelers:fragile", store.parent, part,
                                                   store.occupancy[part]))  # fmt: skip
    assert before["single-point"]["done"] == 3 and before["single-point"]["limits"] == []
    run = labels_in_progress(tiny)["single-point"]
    failed = int((store.occupancy == 2).any(axis=1).sum())  # fragile fails on vacancies
    assert (run["done"], run["total"], run["failed"]) == (len(store), len(store), failed)
    assert run["converged"] == len(store) - failed and run["limits"] == list(LIMITS)
    text = " ".join(CliRunner().invoke(app, ["info", str(tiny)]).output.split())
    assert f"single-point labels in progress: {len(store)}/{len(store)} rows" in text
    # the energies above the hull of the rows done, recomputed from the journal
    segments = list(journal.load())
    energy = np.concatenate([seg["single_point"] for seg in segments])
    rows = np.concatenate([seg["row"] for seg in segments])
    ok = np.isfinite(energy)
    n_sc, n_pt = store.parent.formula_counts(store.occupancy[rows[ok]])
    expected = Hull.load("Pt").e_above_hull(energy[ok], n_sc, n_pt)
    np.testing.assert_allclose(np.sort(run["e_above_hull"]), np.sort(expected))
    assert f"median {np.median(expected):+.3f} eV/atom" in text
