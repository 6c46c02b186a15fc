"""Relaxation mapping: what a relaxed structure relaxed into, and the training policies."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from ase import Atoms
from typer.testing import CliRunner

from qcapprox.cli import app
from qcapprox.enumeration import Enumerator
from qcapprox.mapping import (
    UNMAPPABLE,
    RelaxationMap,
    apply_policy,
    decode_ids,
    map_relaxations,
    map_store,
    read_mapping,
)
from qcapprox.models.base import Setup, TrainingSet, training_store
from qcapprox.parent import VACANCY, Parent
from qcapprox.paths import DATA_DIR
from qcapprox.store import Store
from qcapprox.words import family_key, split_family_key


def _relaxations(parent: Parent, occupancies: list[np.ndarray], structures: list[Atoms]):
    """The arrays `map_relaxations` reads, for structures in decorated atom order."""
    cells = np.array([a.cell[:] for a in structures])
    positions = np.concatenate([a.positions for a in structures])
    offsets = np.concatenate([[0], np.cumsum([len(a) for a in structures])])
    return np.array(occupancies), cells, positions, offsets


def _a5_vacancy_next_to_a4(parent: Parent) -> tuple[int, int]:
    """An (A5 site, A4 site) pair of nearest neighbours, as occupancy positions."""
    dist = parent.atoms.get_all_distances(mic=True)[np.ix_(parent.active, parent.active)]
    a4, a5 = parent.orbit_slices["A4"], parent.orbit_slices["A5"]
    block = dist[a5, a4]
    k5, k4 = np.unravel_index(block.argmin(), block.shape)
    return a5.start + int(k5), a4.start + int(k4)


def test_unrelaxed_and_strained_structures_keep_their_identity(
    parent_pt: Parent, enumerator_pt: Enumerator
) -> None:
    rng = np.random.default_rng(5)
    occ = [enumerator_pt.canonicalize(rng.integers(0, 3, 36).astype(np.uint8))[0][0]
           for _ in range(4)]  # fmt: skip
    structures = []
    for k, o in enumerate(occ):
        atoms = parent_pt.decorate(o)
        if k % 2:  # a homogeneous strain and a rattle: still the same configuration
            atoms.set_cell(atoms.cell[:] @ np.diag([1.05, 0.97, 1.02]), scale_atoms=True)
            atoms.rattle(0.1, seed=k)
        structures.append(atoms)
    ids = enumerator_pt.ids(np.array(occ))
    mapping = map_relaxations(parent_pt, ids, *_relaxations(parent_pt, occ, structures))
    assert mapping.kept.all()
    np.testing.assert_array_equal(mapping.relaxed_into, ids)
    assert mapping.displacement[0] < 1e-8 and 0 < mapping.displacement[1] < 0.5


def test_an_atom_moving_into_a_vacancy_is_another_configuration(
    parent_pt: Parent, enumerator_pt: Enumerator
) -> None:
    """An A4 Sc atom moved onto the vacant A5 site next to it: the structure is the
    configuration with that A4 site vacant and the A5 site filled."""
    k5, k4 = _a5_vacancy_next_to_a4(parent_pt)
    start = np.zeros(36, dtype=np.uint8)
    start[k5] = VACANCY
    atoms = parent_pt.decorate(start)
    atom = int(parent_pt.active[k4])
    atom -= int((parent_pt.active[start == VACANCY] < atom).sum())  # vacancies are deleted
    atoms.positions[atom] = parent_pt.atoms.positions[parent_pt.active[k5]]
    expected = np.zeros(36, dtype=np.uint8)
    expected[k4] = VACANCY
    ids = enumerator_pt.config_ids(start[None])
    mapping = map_relaxations(parent_pt, ids, *_relaxations(parent_pt, [start], [atoms]))
    assert mapping.relaxed_into[0] == enumerator_pt.config_ids(expected[None])[0]
    assert not mapping.kept[0]
    # an atom 1.2 A off its site, with a tolerance of 1 A: unmappable
    strict = parent_pt.decorate(start)
    strict.positions[atom] += [1.2, 0.0, 0.0]
    lost = map_relaxations(parent_pt, ids, *_relaxations(parent_pt, [start], [strict]), 1.0)
    assert lost.relaxed_into[0] == UNMAPPABLE and 1.0 < lost.displacement[0] < 1.3


def test_a_host_atom_leaving_its_orbit_is_unmappable(parent_pt: Parent) -> None:
    """A non-active atom moved onto a vacant A5 site leaves a non-active site empty."""
    start = np.zeros(36, dtype=np.uint8)
    start[20] = VACANCY
    atoms = parent_pt.decorate(start)
    site = parent_pt.atoms.positions[parent_pt.active[20]]
    inactive = np.setdiff1d(np.arange(len(parent_pt.atoms)), parent_pt.active)
    host = inactive[parent_pt.atoms.numbers[inactive] == parent_pt.atoms.numbers[0]]
    nearest = host[np.argmin(np.linalg.norm(parent_pt.atoms.positions[host] - site, axis=1))]
    moved = int(nearest) - int((parent_pt.active[start == VACANCY] < nearest).sum())
    atoms.positions[moved] = site
    ids = np.array([0])
    mapping = map_relaxations(parent_pt, ids, *_relaxations(parent_pt, [start], [atoms]))
    assert mapping.relaxed_into[0] == UNMAPPABLE and not mapping.kept[0]


def test_bundled_stores_carry_the_map_of_their_relaxed_geometries() -> None:
    """The stored map is what mapping the stored relaxed geometries gives again."""
    store = Store(training_store("Rh"))
    stored = store.label_set("relaxed").mapping
    assert stored is not None
    again = map_store(store.path)
    np.testing.assert_array_equal(again.relaxed_into, stored.relaxed_into)
    np.testing.assert_array_equal(again.kept, stored.kept)
    np.testing.assert_allclose(again.displacement, stored.displacement)
    assert stored.kept.sum() < len(store)  # relaxations do leave their configuration
    known = np.flatnonzero(store.ids == Enumerator.from_parent(store.parent).config_ids(
        store.parent.known_phase()[None])[0])  # fmt: skip
    assert all(stored.kept[known])


def test_policies() -> None:
    """start keeps every usable row; kept only those that kept their identity; relaxed-into
    gives each target to the configuration its row became, the lowest when several land."""
    ids = np.array([10, 11, 12, 13])
    occ = decode_ids(ids, 36)
    target = np.array([0.05, 0.03, 0.04, 0.02])
    usable = np.array([True, True, True, False])
    mapping = RelaxationMap(
        np.array([10, 12, 12, UNMAPPABLE]), np.array([True, False, True, False]),
        np.zeros(4), 2.5,
    )  # fmt: skip
    rows, _, values = apply_policy("start", ids, occ, target, usable, mapping, Path("x"))
    assert rows.tolist() == [0, 1, 2]
    rows, _, _ = apply_policy("kept", ids, occ, target, usable, mapping, Path("x"))
    assert rows.tolist() == [0, 2]
    rows, into, values = apply_policy("relaxed-into", ids, occ, target, usable, mapping, Path("x"))
    assert rows.tolist() == [0, 1] and values.tolist() == [0.05, 0.03]
    np.testing.assert_array_equal(into, decode_ids(np.array([10, 12]), 36))
    with pytest.raises(Exception, match="qcapprox map"):
        apply_policy("kept", ids, occ, target, usable, None, Path("x"))


def test_end_spread_against_a_loop() -> None:
    """The label spread of each configuration reached by two or more relaxations, against
    a plain loop over random maps (unmappable rows, NaN energies and masked rows left out)."""
    rng = np.random.default_rng(5)
    into = rng.integers(0, 12, 200)
    into[rng.random(200) < 0.1] = UNMAPPABLE
    energies = rng.normal(0.01, 0.005, 200)
    energies[rng.random(200) < 0.05] = np.nan
    rows = rng.random(200) < 0.8
    mapping = RelaxationMap(into, into == np.arange(200), np.zeros(200), 2.5)
    expected = []
    for end in sorted(set(into.tolist()) - {UNMAPPABLE}):
        e = energies[(into == end) & rows & np.isfinite(energies)]
        if len(e) > 1:
            expected.append(e.max() - e.min())
    np.testing.assert_allclose(mapping.end_spread(energies, rows), expected)
    assert mapping.end_spread(energies, np.zeros(200, bool)).size == 0


def test_decode_ids_inverts_the_stable_ids(enumerator_pt: Enumerator) -> None:
    occ = np.random.default_rng(2).integers(0, 3, (50, 36)).astype(np.uint8)
    np.testing.assert_array_equal(decode_ids(enumerator_pt.ids(occ), 36), occ)


@pytest.mark.parametrize(
    "name", ["relaxed", "single-point", "relaxed+depth", "relaxed+kept",
             "relaxed+depth+relaxed-into", "single-point+depth"],
)  # fmt: skip
def test_setup_names_round_trip(name: str) -> None:
    assert Setup.parse(name).name == name
    assert split_family_key(family_key("allegro-sequential", name)) == ("allegro-sequential", name)
    assert split_family_key(family_key("rf-cf", name)) == ("rf-cf", name)


@pytest.mark.parametrize("name", ["relaxed+kept+depth", "relaxed+start", "relaxed+x", "dft",
                                  "single-point+kept"])  # fmt: skip
def test_setup_names_refused(name: str) -> None:
    with pytest.raises(Exception, match=r"set-up|relaxed labels only"):
        Setup.parse(name)


def test_training_sets_under_the_policies() -> None:
    """The kept set is the start set's rows that kept their identity; test rows are the
    study's under every policy; relaxed-into examples are distinct configurations."""
    path = training_store("Rh")
    start, kept, into = (
        TrainingSet.load(path, f"relaxed{p}") for p in ("", "+kept", "+relaxed-into")
    )
    mapping = start.labels.mapping
    assert kept.sizes(24)["train"] + kept.sizes(24)["validation"] == int(
        (mapping.kept & start.labels.usable & (start.split != 2)).sum()
    )
    for data in (kept, into):
        np.testing.assert_array_equal(data.ids[data.test_rows()], start.ids[start.test_rows()])
        np.testing.assert_array_equal(
            data.target[data.test_rows()], start.target[start.test_rows()]
        )
    train = into.rows(24)
    assert len(np.unique(into.ids[train])) == len(train)
    np.testing.assert_array_equal(
        Enumerator.from_parent(into.parent).ids(into.occupancy[train]), into.ids[train]
    )


def test_map_command_and_info(tmp_path: Path) -> None:
    path = tmp_path / "rh.h5"
    shutil.copyfile(training_store("Rh"), path)
    with h5py.File(path, "a") as handle:
        for key in ("relaxed_into", "kept", "mapping_displacement"):
            del handle[f"labels/relaxed/{key}"]
    runner = CliRunner()
    result = runner.invoke(app, ["info", str(path)])
    assert "relaxation map: none yet" in result.output
    result = runner.invoke(app, ["map", str(path)])
    assert result.exit_code == 0, result.output
    share = Store(path).label_set("relaxed").mapping.shares()
    assert f"{share['kept']:.0%} kept" in " ".join(result.output.split())
    # the held-out Pt set: several relaxations end in one configuration
    benchmark = DATA_DIR / "benchmark" / "sc60pt13-configurations.h5"
    held = Store(benchmark).label_set("relaxed")
    spread = held.mapping.end_spread(held.e_above_hull, held.usable)
    result = runner.invoke(app, ["info", str(benchmark)])
    said = " ".join(result.output.split())
    assert f"{spread.size:,} configurations are the end of two or more relaxations" in said
    assert f"up to {1000 * spread.max():.1f} meV/atom" in said


def test_the_depth_design_joins_the_training_rows(tmp_path: Path) -> None:
    """A depth store beside the training store adds its usable rows (but configurations
    Table 1 already holds) as train and validation examples of every limit they fit; the
    test rows stay Table 1's. Here the Pt configuration benchmark stands in for a depth
    store."""
    from qcapprox.datasets import TEST, VALIDATION
    from qcapprox.models.base import depth_store

    (tmp_path / "training").mkdir()
    training = tmp_path / "training" / "sc60pt13.h5"
    shutil.copyfile(training_store("Pt"), training)
    extra = DATA_DIR / "benchmark" / "sc60pt13-configurations.h5"
    shutil.copyfile(extra, depth_store(training))
    base = TrainingSet.load(training)
    deep = TrainingSet.load(training, "relaxed+depth")
    more = Store(extra)
    usable = more.label_set("relaxed").usable
    fresh = usable & ~np.isin(more.ids, base.ids)
    assert 0 < fresh.sum() < usable.sum()  # Table 1's test realizations are among them
    assert len(deep.rows(0)) == len(base.rows(0)) + int(fresh.sum())
    np.testing.assert_array_equal(deep.ids[deep.test_rows()], base.ids[base.test_rows()])
    added = np.flatnonzero(~np.isin(deep.ids, base.ids))
    assert (deep.split[added] != TEST).all() and (deep.split[added] == VALIDATION).any()
    assert deep.digest(0) != base.digest(0)
    alone = tmp_path / "sc60rh13.h5"
    shutil.copyfile(training_store("Rh"), alone)
    with pytest.raises(Exception, match="no depth design"):
        TrainingSet.load(alone, "relaxed+depth")


def test_a_calculator_of_another_set_up(parent_pt: Parent) -> None:
    """A forest calculator of a set-up (here relaxed-into at limit 0) answers with its
    member, whose card records the policy; an unknown set-up is refused."""
    from qcapprox.calculators import ForestHullCalculator

    atoms = parent_pt.decorate(parent_pt.known_phase())
    atoms.calc = ForestHullCalculator(dopant="Pt", limit=0, labels="relaxed+relaxed-into")
    value = atoms.calc.get_property("e_above_hull", atoms)
    member = atoms.calc.member
    assert member.card["setup"] == {"mapping": "relaxed-into", "depth": False}
    assert value == pytest.approx(member.predict(parent_pt.known_phase()[None])[0])
    with pytest.raises(Exception, match="set-up"):
        ForestHullCalculator(dopant="Pt", limit=0, labels="relaxed+sometimes")


def test_results_carry_what_the_labelled_configurations_relaxed_into(tmp_path: Path) -> None:
    """A bundle with the training store records, per inference row, what its relaxation in
    the training store ended in; rows never relaxed are NOT_RELAXED."""
    from resultsdata import build_store

    from qcapprox.results import NOT_RELAXED, Results, bundle

    (tmp_path / "training").mkdir()
    training = tmp_path / "training" / "sc60pt13.h5"
    shutil.copyfile(training_store("Pt"), training)  # no depth store beside the copy
    out = bundle({"Pt": build_store(tmp_path, "Pt")}, tmp_path / "r.h5", {"Pt": training})
    with h5py.File(training, "r") as handle:
        ids = handle["configs/id"][:]
        into = read_mapping(handle["labels/relaxed"], len(ids)).relaxed_into
    expected = {}
    for config, target in zip(ids.tolist(), into.tolist(), strict=True):
        expected.setdefault(config, target)
    results = Results(out)
    relaxed = results.relaxed_into("Pt")
    inference_ids = results.ids("Pt").tolist()
    assert [expected.get(c, NOT_RELAXED) for c in inference_ids] == relaxed.tolist()
    assert 0 < int((relaxed != NOT_RELAXED).sum()) < len(inference_ids)
