"""Tests of qcapprox.hull: eqs. 1 and 2, the bundled references and the error messages."""

import json
from pathlib import Path

import numpy as np
import pytest
from pymatgen.analysis.phase_diagram import PDEntry
from pymatgen.core import Composition

from qcapprox.errors import HullError, QcapproxError
from qcapprox.hull import Hull, reference_path

DOPANTS = ["Pt", "Pd", "Ir", "Rh"]

# Parent models (data/parents/README.md, CHGNet eV/atom): (n_Sc, n_M, e_per_atom).
SC60 = {"Rh": -6.8438, "Pt": -6.7568, "Pd": -6.4091, "Ir": -7.1626}
SC57 = {"Rh": -6.9126, "Pt": -6.8184, "Pd": -6.4533, "Ir": -7.2496}
# E_hull (meV/atom) of those energies on the hull of all bundled references, computed once
# with this module from data/references (Sc-rich hull vertex: Sc3M in the Fe3C type, Re3B
# for Pd; before those joined the references, Sc2M in the C16 type and Sc57M13 below it).
EXPECTED_SC60 = {"Rh": 57.9, "Pt": 46.6, "Pd": 47.5, "Ir": 56.3}
EXPECTED_SC57 = {"Rh": 16.0, "Pt": 7.7, "Pd": 11.1, "Ir": 9.8}
# README "set 2" (hcp Sc, fcc M, B2, L1_2, C15, Ti2Ni-type Sc2M) values, meV/atom.
SET2_SC60 = {"Rh": 22.0, "Pt": 5.0, "Pd": 26.1, "Ir": 5.4}
SET2_SC57 = {"Rh": -21.5, "Pt": -35.8, "Pd": -11.3, "Ir": -43.4}


@pytest.fixture(scope="module", params=DOPANTS)
def hull(request) -> Hull:
    return Hull.load(request.param)


def _phases(dopant: str) -> list[dict]:
    return json.loads(reference_path(dopant).read_text())["phases"]


# ---------------------------------------------------------------- bundled references
def test_every_reference_on_or_above_hull_and_elements_exactly_zero(hull: Hull) -> None:
    for name in hull.phase_names:
        assert hull.e_above_hull_of_phase(name) >= -1e-9, name
    assert hull.e_above_hull_of_phase("Sc") == 0.0
    assert hull.e_above_hull_of_phase(hull.dopant) == 0.0
    assert hull.stable_names[0] == "Sc" and hull.stable_names[-1] == hull.dopant


def test_agrees_with_pymatgen_e_above_hull(hull: Hull) -> None:
    for phase in _phases(hull.dopant):
        entry = PDEntry(Composition(phase["formula"]), phase["energy"])
        expected = hull.phase_diagram.get_e_above_hull(entry, allow_negative=True)
        assert hull.e_above_hull_of_phase(phase["name"]) == pytest.approx(expected, abs=1e-9)


def test_hull_is_convex_and_spans_0_to_1(hull: Hull) -> None:
    x, e = hull.stable_x, hull.stable_e_form
    assert x[0] == 0.0 and x[-1] == 1.0 and e[0] == 0.0 and e[-1] == 0.0
    assert np.all(np.diff(x) > 0)
    slopes = np.diff(e) / np.diff(x)
    assert np.all(np.diff(slopes) > 0)  # strictly convex vertices
    assert np.all(e[1:-1] < 0)
    np.testing.assert_array_equal(hull.stable_points, np.column_stack([x, e]))


def test_hull_at_stable_phase_equals_its_formation_energy(hull: Hull) -> None:
    by_name = {p["name"]: p for p in _phases(hull.dopant)}
    for name in hull.stable_names:
        comp = Composition(by_name[name]["formula"])
        nh, nd = comp["Sc"], comp[hull.dopant]
        e_form = hull.formation_energy(by_name[name]["energy"], nh, nd)
        assert hull.hull_energy(nd / (nh + nd)) == pytest.approx(e_form, abs=1e-12)


def test_elemental_references_match_files_and_sc_is_shared() -> None:
    e_sc = set()
    for m in DOPANTS:
        hull = Hull.load(m)
        by_name = {p["name"]: p for p in _phases(m)}
        assert hull.e_host == pytest.approx(by_name["Sc"]["e_per_atom"], abs=1e-12)
        assert hull.e_dopant == pytest.approx(by_name[m]["e_per_atom"], abs=1e-12)
        e_sc.add(hull.e_host)
    assert len(e_sc) == 1  # one hcp Sc relaxation, identical in all four files


# ---------------------------------------------------------------- eqs. 1 and 2
def test_formation_energy_of_elements_is_zero(hull: Hull) -> None:
    n = np.array([1, 2, 7, 146])
    zeros = np.zeros_like(n)
    np.testing.assert_allclose(hull.formation_energy(n * hull.e_host, n, zeros), 0, atol=1e-12)
    np.testing.assert_allclose(hull.formation_energy(n * hull.e_dopant, zeros, n), 0, atol=1e-12)
    assert hull.hull_energy(0.0) == 0.0 and hull.hull_energy(1.0) == 0.0


def test_round_trips_are_exact(hull: Hull) -> None:
    rng = np.random.default_rng(7)
    n_host = rng.integers(84, 121, size=500)
    n_dopant = rng.integers(26, 63, size=500)
    n = n_host + n_dopant
    energy = n * rng.uniform(-9.0, -6.0, size=500)
    e_hull = hull.e_above_hull(energy, n_host, n_dopant)
    np.testing.assert_allclose(
        hull.energy_from_e_above_hull(e_hull, n_host, n_dopant), energy, rtol=0, atol=1e-9
    )
    e_form = hull.formation_energy(energy, n_host, n_dopant)
    np.testing.assert_allclose(
        hull.energy_from_formation(e_form, n_host, n_dopant), energy, rtol=0, atol=1e-9
    )
    np.testing.assert_allclose(e_form - hull.hull_energy(n_dopant / n), e_hull, rtol=0, atol=1e-12)


def test_vectorized_matches_pymatgen_for_arbitrary_configurations(hull: Hull) -> None:
    rng = np.random.default_rng(3)
    n_host = rng.integers(0, 40, size=25)
    n_dopant = rng.integers(1, 40, size=25)
    energy = (n_host * hull.e_host + n_dopant * hull.e_dopant) + rng.uniform(-30, 5, size=25)
    ours = hull.e_above_hull(energy, n_host, n_dopant)
    assert isinstance(ours, np.ndarray) and ours.shape == (25,)
    for nh, nd, e, value in zip(n_host, n_dopant, energy, ours, strict=True):
        entry = PDEntry(Composition({"Sc": int(nh), hull.dopant: int(nd)}), float(e))
        expected = hull.phase_diagram.get_e_above_hull(entry, allow_negative=True)
        assert value == pytest.approx(expected, abs=1e-9)


def test_scalars_in_floats_out_and_broadcasting() -> None:
    hull = Hull.load("Pt")
    value = hull.e_above_hull(-6.7568 * 146, 120, 26)
    assert isinstance(value, float)
    both = hull.e_above_hull(np.array([-6.7568 * 146, -6.8184 * 140]), np.array([120, 114]), 26)
    assert both.shape == (2,)
    assert both[0] == pytest.approx(value, abs=1e-15)
    grid = hull.hull_energy(np.linspace(0, 1, 11).reshape(11, 1))
    assert grid.shape == (11, 1)


# ---------------------------------------------------------------- a toy hull by hand
def test_toy_three_phase_hull_by_hand() -> None:
    # e_Sc = -6, e_Pt = -5 (per atom); ScPt: E_f = (-13 + 6 + 5) / 2 = -1.0 eV/atom at x = 1/2.
    # Sc2Pt: E_f = (-17.5 + 12 + 5) / 3 = -1/6, hull at x = 1/3 is -2/3 -> 0.5 above.
    toy = Hull.from_entries(
        "Pt",
        {
            "Sc": ("Sc2", -12.0),
            "Pt": ({"Pt": 1}, -5.0),
            "ScPt": ((1, 1), -13.0),
            "Sc2Pt": ("Sc2Pt", -17.5),
        },
    )
    assert toy.e_host == -6.0 and toy.e_dopant == -5.0
    assert toy.stable_names == ("Sc", "ScPt", "Pt")
    np.testing.assert_allclose(toy.stable_x, [0.0, 0.5, 1.0])
    np.testing.assert_allclose(toy.stable_e_form, [0.0, -1.0, 0.0], atol=1e-12)
    # x = 1/4: H = -0.5; Sc3Pt at -24.2 eV: E_f = (-24.2 + 18 + 5) / 4 = -0.3 -> +0.2 above.
    assert toy.hull_energy(0.25) == pytest.approx(-0.5, abs=1e-12)
    assert toy.formation_energy(-24.2, 3, 1) == pytest.approx(-0.3, abs=1e-12)
    assert toy.e_above_hull(-24.2, 3, 1) == pytest.approx(0.2, abs=1e-12)
    # x = 3/4: H = -0.5; 0.1 eV/atom below the hull -> E = 4 * (-0.6) - 6 - 15 = -23.4.
    assert toy.energy_from_e_above_hull(-0.1, 1, 3) == pytest.approx(-23.4, abs=1e-12)
    assert toy.e_above_hull_of_phase("Sc2Pt") == pytest.approx(0.5, abs=1e-12)
    assert toy.e_above_hull_of_phase("ScPt") == 0.0


# ---------------------------------------------------------------- the parent models
@pytest.mark.parametrize("dopant", DOPANTS)
def test_parent_models_against_all_references(dopant: str) -> None:
    hull = Hull.load(dopant)
    sc60 = 1000 * hull.e_above_hull(SC60[dopant] * 146, 120, 26)
    sc57 = 1000 * hull.e_above_hull(SC57[dopant] * 140, 114, 26)
    # Sc60M13 well above the hull, Sc57M13 just above it (within 0.02 eV/atom)
    assert sc60 > 20 > sc57 > 0
    assert sc60 == pytest.approx(EXPECTED_SC60[dopant], abs=0.2)
    assert sc57 == pytest.approx(EXPECTED_SC57[dopant], abs=0.2)
    # the extra Sc-rich phases (C16 Sc2M, Fe3C-type Sc3M etc.) can only lower the hull
    assert sc60 >= SET2_SC60[dopant] - 0.1 and sc57 >= SET2_SC57[dopant] - 0.1


@pytest.mark.parametrize("dopant", DOPANTS)
def test_readme_set2_hull_is_reproduced(dopant: str) -> None:
    m = dopant
    names = {"Sc", m, f"Sc{m}", f"Sc{m}3", f"Sc{m}2_C15", f"Sc2{m}_Ti2Ni"}
    set2 = Hull.from_entries(
        m, {p["name"]: (p["formula"], p["energy"]) for p in _phases(m) if p["name"] in names}
    )
    assert set(set2.phase_names) == names
    assert 1000 * set2.e_above_hull(SC60[m] * 146, 120, 26) == pytest.approx(SET2_SC60[m], abs=0.15)
    assert 1000 * set2.e_above_hull(SC57[m] * 140, 114, 26) == pytest.approx(SET2_SC57[m], abs=0.15)


# ---------------------------------------------------------------- errors
def test_missing_reference_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(HullError, match=r"Sc-Os\.json"):
        Hull.load("Os", tmp_path)
    with pytest.raises(HullError, match="does not exist"):
        Hull.load("Pt", tmp_path / "nowhere.json")


def test_file_without_elemental_phase(tmp_path: Path) -> None:
    data = json.loads(reference_path("Pt").read_text())
    data["phases"] = [p for p in data["phases"] if p["name"] != "Pt"]
    path = tmp_path / "Sc-Pt.json"
    path.write_text(json.dumps(data))
    with pytest.raises(HullError, match=r"Sc-Pt\.json.*no elemental Pt phase"):
        Hull.load("Pt", tmp_path)


def test_inconsistent_phase_in_file_is_named(tmp_path: Path) -> None:
    data = json.loads(reference_path("Pd").read_text())
    data["phases"][2]["e_per_atom"] += 0.01
    path = tmp_path / "refs.json"
    path.write_text(json.dumps(data))
    with pytest.raises(HullError, match=r"refs\.json: phase 'ScPd'.*e_per_atom"):
        Hull.load("Pd", path)
    path.write_text("{not json")
    with pytest.raises(HullError, match=r"refs\.json"):
        Hull.load("Pd", path)
    path.write_text(reference_path("Pd").read_text())
    with pytest.raises(HullError, match="holds dopant 'Pd'"):
        Hull.load("Pt", path)


def test_bad_inputs_raise_hull_error() -> None:
    hull = Hull.load("Ir")
    with pytest.raises(HullError, match="n_host"):
        hull.e_above_hull(-700.0, -1, 26)
    with pytest.raises(HullError, match=r"n_dopant.*index \[1\]"):
        hull.formation_energy(np.array([-700.0, -700.0]), 100, np.array([20, -3]))
    with pytest.raises(HullError, match="no atoms"):
        hull.formation_energy(0.0, 0, 0)
    with pytest.raises(HullError, match=r"\[0, 1\]"):
        hull.hull_energy(1.5)
    with pytest.raises(HullError, match="no reference phase 'ScIr5'"):
        hull.e_above_hull_of_phase("ScIr5")
    with pytest.raises(HullError, match="contains Pt"):
        Hull.from_entries("Ir", {"Sc": ("Sc", -6.0), "Ir": ("Ir", -8.0), "x": ("ScPt", -1.0)})
    with pytest.raises(HullError, match=r"phase 'neg'.*>= 0"):
        Hull.from_entries("Ir", {"Sc": ("Sc", -6.0), "Ir": ("Ir", -8.0), "neg": ((-1, 2), -9.0)})
    with pytest.raises(HullError, match="no elemental Sc"):
        Hull.from_entries("Ir", {"Ir": ("Ir", -8.0), "ScIr": ("ScIr", -17.0)})
    with pytest.raises(HullError, match="not an element"):
        Hull.load("Xx")
    assert issubclass(HullError, QcapproxError)


def test_reference_sets_and_rebase() -> None:
    """The reported set keeps the elements and the reported types only; rebasing an energy
    above the full hull onto it adds H_full(x) - H_reported(x), and the formation energy
    (hull-independent) is unchanged."""
    from qcapprox.hull import REFERENCE_SETS

    full = Hull.load("Pt")
    reported = Hull.load("Pt", references="reported")
    phases = json.loads(reference_path("Pt").read_text())["phases"]
    kinds = REFERENCE_SETS["reported"]
    assert set(reported.phase_names) == {p["name"] for p in phases if p["kind"] in kinds}
    assert set(full.phase_names) == {p["name"] for p in phases}
    n_host, n_dop, energy = 114, 26, -6.81 * 140
    above_full = full.e_above_hull(energy, n_host, n_dop)
    rebased = full.rebase(above_full, n_host, n_dop, reported)
    assert rebased == pytest.approx(reported.e_above_hull(energy, n_host, n_dop), abs=1e-12)
    assert full.formation_energy(energy, n_host, n_dop) == reported.formation_energy(
        energy, n_host, n_dop
    )
    assert rebased < above_full  # fewer phases: a higher hull
    with pytest.raises(HullError, match="reference set"):
        Hull.load("Pt", references="some")
