"""Competing phases for any metal: the element in its own ground state (ASE's reference
states), the binary prototypes, resumable builds, the user data directory, clear refusals;
the bundled sets reproduce with CHGNet."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qcapprox.cli import main
from qcapprox.errors import HullError
from qcapprox.hull import Hull, reference_path
from qcapprox.references import CATALOGUE, build_references, element

LJ = "labelers:lennard_jones"
THREE = ("Sc", "{M}", "Sc{M}")  # both elements and B2: the smallest hull


def test_elements_in_their_own_ground_state() -> None:
    a, _, c = element("Os").cell.cellpar()[:3]
    assert len(element("Os")) == 2 and c / a == pytest.approx(1.579)  # hcp, not fcc
    assert len(element("Fe")) == 1
    assert element("Fe").cell.cellpar()[3] == pytest.approx(109.47, abs=0.01)  # bcc
    describe = {p.key: p for p in CATALOGUE}
    assert describe["{M}"].describe("Os").startswith("Mg (A3, hcp")
    assert describe["{M}"].describe("Fe").startswith("W (A2, bcc")
    assert describe["{M}"].describe("Pt").startswith("Cu (A1, fcc")
    assert (
        describe["Sc"].describe("Os")
        == json.loads(reference_path("Pt").read_text())["phases"][0]["prototype"]
    )  # the bundled sets' words


def test_build_is_resumable_and_found_by_the_hull(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("QCAPPROX_DATA", str(tmp_path))
    out = tmp_path / "references"
    seen: list[tuple[int, int, str]] = []
    path = build_references("Os", out, LJ, only=THREE[:2], progress=lambda *a: seen.append(a))
    assert seen == [(0, 2, ""), (1, 2, "Sc"), (2, 2, "Os")]
    first = path.read_bytes()
    seen.clear()
    build_references("Os", out, LJ, only=THREE, progress=lambda *a: seen.append(a))
    assert seen == [(2, 3, ""), (3, 3, "ScOs")]  # the two elements are not relaxed again
    data = json.loads(path.read_text())
    assert [p["name"] for p in data["phases"]] == ["Sc", "Os", "ScOs"]
    assert json.loads(first)["phases"] == data["phases"][:2]
    assert reference_path("Os") == path
    hull = Hull.load("Os")
    assert hull.source == str(path) and set(hull.phase_names) == {"Sc", "Os", "ScOs"}
    assert data["phases"][1]["prototype"].startswith("Mg (A3, hcp")
    assert reference_path("Pt").parent.name == "references"  # bundled: still found
    assert Hull.load("Pt").dopant == "Pt"

    before = path.read_bytes()
    with pytest.raises(HullError, match="was built with"):
        build_references("Os", out, "labelers:fragile", only=THREE)
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    ("dopant", "message"),
    [
        ("Xx", "'Xx' is not an element symbol"),
        ("Mn", "Mn: ASE's reference state is cubic"),
        ("Sc", "is the host element Sc"),
    ],
)
def test_bad_metals_are_one_line_errors(dopant, message, tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["references", "--dopant", dopant, "-o", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert stop.value.code == 2 and err.count("\n") == 0 and message in err, err
    assert list(tmp_path.iterdir()) == []


def test_bundled_sets_reproduce_with_chgnet(tmp_path) -> None:
    """The dopant's element (the phase whose start lattice moved, from the old table to
    ASE's) of each bundled set, rebuilt with CHGNet: within 1 meV/atom (a few s each)."""
    pytest.importorskip("chgnet")
    for dopant in ("Pt", "Pd", "Ir", "Rh"):
        path = build_references(dopant, tmp_path, "chgnet", only=("{M}",))
        (new,) = json.loads(path.read_text())["phases"]
        bundled = json.loads(reference_path(dopant).read_text())
        old = next(p for p in bundled["phases"] if p["name"] == dopant)
        assert abs(new["e_per_atom"] - old["e_per_atom"]) < 1e-3, dopant
        assert json.loads(path.read_text())["settings"] == bundled["settings"]


def test_user_data_dir_is_per_user_and_overridable(tmp_path, monkeypatch) -> None:
    import platformdirs

    from qcapprox.paths import DATA_ENV, REPO_ROOT, user_data_dir

    monkeypatch.delenv(DATA_ENV)
    assert user_data_dir() == Path(platformdirs.user_data_dir("qcapprox"))
    assert not user_data_dir().resolve().is_relative_to(REPO_ROOT)
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    assert user_data_dir() == tmp_path
    assert reference_path("Os") == tmp_path / "references" / "Sc-Os.json"


def test_sc3m_phases_lower_the_sc_rich_hull(tmp_path) -> None:
    """The Fe3C-type Sc3Pt rebuilt with CHGNet keeps Pnma and its bundled energy (within
    1 meV/atom), and it is a vertex of the Sc-Pt hull, below the Sc - Sc2Pt tie line."""
    pytest.importorskip("chgnet")
    from qcapprox.hull import Hull

    path = build_references("Pt", tmp_path, "chgnet", only=("Sc3{M}_D011",))
    (new,) = json.loads(path.read_text())["phases"]
    bundled = json.loads(reference_path("Pt").read_text())
    old = next(p for p in bundled["phases"] if p["name"] == "Sc3Pt_D011")
    assert abs(new["e_per_atom"] - old["e_per_atom"]) < 1e-3
    assert new["relaxation"]["spacegroup_relaxed"] == "Pnma (62)"
    hull = Hull.load("Pt")
    assert "Sc3Pt_D011" in hull.stable_names
    sc2pt = hull.formation_energy(next(p["energy"] for p in bundled["phases"]
                                       if p["name"] == "Sc2Pt_C16"), 8, 4)  # fmt: skip
    assert hull.hull_energy(0.25) < 0.75 * sc2pt  # below the line from Sc (0) to Sc2Pt (1/3)
