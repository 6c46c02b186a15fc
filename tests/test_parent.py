"""Parents: bundled models, symmetry, orbits, decorate/identify and their errors."""

from __future__ import annotations

import numpy as np
import pytest
from ase.io import read, write

from qcapprox.errors import IdentifyError, ParentError
from qcapprox.parent import BUNDLED_DOPANTS, DOPANT, VACANCY, Parent
from qcapprox.paths import PARENTS_DIR


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
