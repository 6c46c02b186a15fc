"""Parents: bundled models, symmetry, orbits, decorate/identify and their errors."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from ase.io import read, write

from qcapprox.errors import IdentifyError, ParentError
from qcapprox.parent import DOPANT, MIN_DISTANCE, VACANCY, Parent
from qcapprox.paths import PARENTS_DIR
from qcapprox.words import BUNDLED_DOPANTS


@pytest.mark.parametrize("dopant", BUNDLED_DOPANTS)
def test_bundled_parent_is_im3_with_a4_a5(dopant: str) -> None:
    parent = Parent.load(dopant)
    assert len(parent.atoms) == 146
    assert parent.spacegroup == "Im-3 (204)"
    assert parent.group.shape == (48, 36)
    assert parent.atoms.get_chemical_formula() == f"{dopant}26Sc120"
    assert [len(parent.orbits[n]) for n in ("A4", "A5")] == [12, 24]
    np.testing.assert_array_equal(parent.active, np.arange(110, 146))
    # every operation maps A4 onto A4 and A5 onto A5
    assert (parent.group[:, :12] < 12).all() and (parent.group[:, 12:] >= 12).all()
    # the orbits partition the atoms
    sizes = sorted(len(v) for v in parent.orbits.values())
    assert sum(sizes) == 146 and sizes == [2, 12, 12, 24, 24, 24, 48]


def test_group_is_a_group(parent_pt: Parent) -> None:
    perms = {tuple(p) for p in parent_pt.group}
    for a in parent_pt.group[:8]:
        for b in parent_pt.group:
            assert tuple(a[b]) in perms


def test_decorate_identify_round_trip_any_order_rattled_strained(parent_pt: Parent) -> None:
    rng = np.random.default_rng(7)
    for _ in range(20):
        occ = rng.integers(0, 3, size=36).astype(np.uint8)
        atoms = parent_pt.decorate(occ)
        assert len(atoms) == 146 - (occ == VACANCY).sum()
        assert (atoms.numbers == 78).sum() == 26 + (occ == DOPANT).sum()
        atoms = atoms[rng.permutation(len(atoms))]
        atoms.rattle(0.15, seed=int(rng.integers(1000)))
        atoms.set_cell(atoms.cell * 1.02, scale_atoms=True)
        atoms.translate([0.7, -0.3, 0.2])
        match = parent_pt.match(atoms)
        np.testing.assert_array_equal(match.occupancy, occ)
        assert 0 < match.max_displacement < 1.0


def test_decorated_atoms_are_clean(parent_pt: Parent, tmp_path) -> None:
    """numbers, positions, cell and pbc only: the CIF reader's leftovers (per-atom
    `spacegroup_kinds`, the parent's `occupancy` dict, a `spacegroup` of P1) describe the
    parent file, not the configuration, and would travel into every file written."""
    raw = replace(parent_pt, atoms=read(PARENTS_DIR / "sc60m13_Pt.cif"))  # as the reader gives
    assert "spacegroup_kinds" in raw.atoms.arrays and "occupancy" in raw.atoms.info
    occupancy = parent_pt.known_phase()
    occupancy[20] = DOPANT
    for parent in (parent_pt, raw):
        atoms = parent.decorate(occupancy)
        assert set(atoms.arrays) == {"numbers", "positions"} and atoms.info == {}
        assert atoms.pbc.all() and atoms.cell.rank == 3 and not atoms.constraints
        assert len(atoms) == 140 and parent_pt.identify(atoms).tolist() == occupancy.tolist()
        write(tmp_path / "c.extxyz", atoms)
        header = (tmp_path / "c.extxyz").read_text().splitlines()[1]
        assert "Properties=species:S:1:pos:R:3 " in header
        for leftover in ("spacegroup_kinds", "occupancy", "spacegroup", "unit_cell"):
            assert leftover not in header
        back = read(tmp_path / "c.extxyz")
        assert set(back.arrays) == {"numbers", "positions"} and back.info == {}
    assert parent_pt.atoms.info == {} and set(parent_pt.atoms.arrays) == {"numbers", "positions"}


@pytest.mark.parametrize("dopant", BUNDLED_DOPANTS)
def test_relaxed_sc57_models_identify_as_six_a4_vacancies(dopant: str) -> None:
    parent = Parent.load(dopant)
    atoms = read(PARENTS_DIR / f"sc57m13_{dopant}.cif")
    match = parent.match(atoms)
    assert parent.composition(match.occupancy).tolist() == [6, 0, 0, 0]
    assert match.max_displacement > 1.3  # relaxation moves atoms next to the vacancies


def test_identify_foreign_element_names_the_atom(parent_pt: Parent) -> None:
    atoms = parent_pt.decorate(np.zeros(36, np.uint8))
    atoms[40].symbol = "Au"
    with pytest.raises(IdentifyError, match="atom 40 is Au"):
        parent_pt.identify(atoms)


def test_identify_wrong_element_on_non_active_site(parent_pt: Parent) -> None:
    atoms = parent_pt.decorate(np.zeros(36, np.uint8))
    atoms[5].symbol = "Pt"  # an inner-icosahedron Sc
    with pytest.raises(IdentifyError, match="wrong element on a non-active site"):
        parent_pt.identify(atoms)


def test_identify_missing_non_active_atom(parent_pt: Parent) -> None:
    atoms = parent_pt.decorate(np.zeros(36, np.uint8))
    del atoms[3]
    with pytest.raises(IdentifyError, match="site 3 of orbit ico_inner"):
        parent_pt.identify(atoms)


def test_identify_atom_far_from_any_site(parent_pt: Parent) -> None:
    occ = np.zeros(36, np.uint8)
    occ[0] = VACANCY
    atoms = parent_pt.decorate(occ)
    atoms.positions[120] += [3.0, 3.0, 0.0]
    with pytest.raises(IdentifyError, match="matches no parent site"):
        parent_pt.identify(atoms)


def test_identify_too_many_atoms(parent_pt: Parent) -> None:
    atoms = parent_pt.decorate(np.zeros(36, np.uint8))
    atoms += atoms[:1]
    with pytest.raises(IdentifyError, match="147 atoms"):
        parent_pt.identify(atoms)


def test_from_cif_by_wyckoff_and_indices(tmp_path) -> None:
    path = PARENTS_DIR / "sc60m13_Rh.cif"
    by_index = Parent.from_cif(path, {"A4": list(range(110, 122)), "A5": list(range(122, 146))})
    assert by_index.spacegroup == "Im-3 (204)"
    by_wyckoff = Parent.from_cif(path, {"A4": "12e", "A5": list(range(122, 146))})
    np.testing.assert_array_equal(by_wyckoff.active, by_index.active)
    with pytest.raises(ParentError, match="24g matches 2 Sc orbits"):
        Parent.from_cif(path, {"A4": "12e", "A5": "24g"})


def test_from_cif_errors(tmp_path) -> None:
    broken = tmp_path / "broken.cif"
    broken.write_text("data_x\n_cell_length_a 14.0\nloop_\n_atom_site_label\n")
    with pytest.raises(ParentError, match=r"broken\.cif"):
        Parent.from_cif(broken, {"A4": "12e", "A5": "12e"})
    path = PARENTS_DIR / "sc60m13_Pt.cif"
    with pytest.raises(ParentError, match="not closed under the space group"):
        Parent.from_cif(path, {"A4": list(range(110, 116)), "A5": list(range(122, 146))})
    with pytest.raises(ParentError, match=r"orbit\(s\) \['A5'\] not given"):
        Parent.from_cif(path, {"A4": "12e"})
    with pytest.raises(ParentError, match="must hold host Sc"):
        Parent.from_cif(path, {"A4": list(range(86, 110)), "A5": list(range(122, 146))})
    atoms = read(path)
    atoms[0].symbol = "Au"
    write(tmp_path / "three.cif", atoms)
    with pytest.raises(ParentError, match="exactly one dopant"):
        Parent.from_cif(tmp_path / "three.cif", {"A4": "12e", "A5": "12e"})


ORBITS = {"A4": list(range(110, 122)), "A5": list(range(122, 146))}


@pytest.mark.parametrize("dopant", ["O", "Xe", "H"])
def test_from_cif_refuses_a_dopant_that_is_not_a_metal(dopant: str, tmp_path) -> None:
    atoms = read(PARENTS_DIR / "sc60m13_Pt.cif")
    atoms.symbols[atoms.symbols == "Pt"] = dopant
    path = tmp_path / f"sc60{dopant.lower()}13.cif"
    write(path, atoms)
    with pytest.raises(ParentError, match=rf"{path.name}: the dopant {dopant} is not a metal"):
        Parent.from_cif(path, ORBITS)


def test_from_cif_refuses_atoms_closer_than_any_bond(tmp_path) -> None:
    """Two atoms within MIN_DISTANCE are one site written twice or a typo: both named."""
    atoms = read(PARENTS_DIR / "sc60m13_Pt.cif")
    moved = atoms.copy()
    moved.positions[57] = moved.positions[3] + [0.4, 0.0, 0.0]
    twice = atoms[88:89]  # a Pt site listed twice, 0.2 A apart
    twice.positions += [0.0, 0.2, 0.0]
    doubled = atoms + twice
    across = atoms.copy()  # close through the periodic boundary
    across.positions[57] = across.positions[3] + across.cell[0] - [0.5, 0.0, 0.0]
    cases = ((moved, r"atoms 3 \(Sc\) and 57 \(Sc\) are 0\.40 A apart"),
             (doubled, r"atoms 88 \(Pt\) and 146 \(Pt\) are 0\.20 A apart"),
             (across, r"atoms 3 \(Sc\) and 57 \(Sc\) are 0\.50 A apart"))  # fmt: skip
    for k, (bad, message) in enumerate(cases):
        path = tmp_path / f"close-{k}.cif"
        write(path, bad)
        with pytest.raises(ParentError, match=rf"close-{k}\.cif: {message}, closer than 1\.0 A"):
            Parent.from_cif(path, ORBITS)
    # ASE's CIF reader merges a site written twice at one position; Atoms keep both
    with pytest.raises(ParentError, match=r"^Atoms: atoms 88 \(Pt\) and 146 \(Pt\) are 0\.00"):
        Parent.from_atoms(atoms + atoms[88:89], ORBITS)
    assert MIN_DISTANCE == 1.0 < Parent.load("Pt").atoms.get_all_distances(mic=True)[0, 1:].min()


def test_from_cif_refuses_a_parent_below_its_group(tmp_path) -> None:
    """0.2 A of noise on every position drops Im-3 (48 operations) to P1 (1): refused
    unless a tolerance symmetrizes it back or the user names the group."""
    atoms = read(PARENTS_DIR / "sc60m13_Pt.cif")
    direction = np.random.default_rng(0).normal(size=(len(atoms), 3))
    atoms.positions += 0.2 * direction / np.linalg.norm(direction, axis=1, keepdims=True)
    path = tmp_path / "noisy.cif"
    write(path, atoms)
    with pytest.raises(ParentError) as err:
        Parent.from_cif(path, ORBITS)
    message = str(err.value)
    assert message.startswith(
        f"{path}: at symprec=0.001 the structure is P1 (1) with 1 operation(s), not the "
        "expected Im-3 (204) with 48"
    )
    assert "pass a larger symprec" in message and "spacegroup=1 " in message
    assert "\n" not in message
    parent = Parent.from_cif(path, ORBITS, symprec=0.8)  # about four times the noise
    assert parent.spacegroup == "Im-3 (204)" and parent.group.shape == (48, 36)
    np.testing.assert_array_equal(parent.active, Parent.load("Pt").active)
    named = Parent.from_cif(path, ORBITS, spacegroup=1)
    assert named.spacegroup == "P1 (1)" and named.group.shape == (1, 36)
    assert Parent.from_cif(path, ORBITS, spacegroup=None).group.shape == (1, 36)
    # spglib crashes the interpreter at tolerances like this one: refused first
    for symprec in (1.2, 0.0):
        with pytest.raises(ParentError, match=rf"symprec={symprec} is outside 0 < symprec <= 0\.9"):
            Parent.from_cif(path, ORBITS, symprec=symprec)
    bundled = PARENTS_DIR / "sc60m13_Pt.cif"
    with pytest.raises(ParentError, match=r"is Im-3 \(204\) with 48 operation\(s\), not the "
                                          r"expected Pm-3 \(200\) with 24"):  # fmt: skip
        Parent.from_cif(bundled, ORBITS, spacegroup=200)
    with pytest.raises(ParentError, match="spacegroup=231 is not a space group number"):
        Parent.from_cif(bundled, ORBITS, spacegroup=231)


def test_for_dopant_substitutes_and_scales() -> None:
    with pytest.warns(UserWarning, match="unrelaxed"):
        parent = Parent.for_dopant("Au")
    assert parent.dopant == "Au"
    assert parent.atoms.get_chemical_formula() == "Au26Sc120"
    assert parent.group.shape == (48, 36)
    assert parent.atoms.cell[0, 0] > Parent.load("Pt").atoms.cell[0, 0]  # Au is larger than Pt
    with pytest.raises(ParentError, match="not an element"):
        Parent.for_dopant("Xx")
    with pytest.raises(ParentError, match="no metallic radius"):
        Parent.for_dopant("O")
