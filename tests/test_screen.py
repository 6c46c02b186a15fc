"""A new dopant end to end (`qcapprox screen`): references, training design, labels, RF
family, inference set, predictions and a results file, on a tiny design with a cheap ASE
calculator; every step resumes; nothing bundled is written."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from qcapprox.cli import main
from qcapprox.hull import Hull
from qcapprox.references import CATALOGUE, build_references
from qcapprox.results import Results
from qcapprox.store import Store
from qcapprox.words import SINGLE_POINT

LJ = "labelers:lennard_jones"
# 13 A4 compositions (Sc or Os, no vacancy): 7 on the step-2 grid, 6 off it (the test set)
DESIGN = """
name = "tiny-design"
mode = "random"
seed = 3
realizations = 1
[orbits.A4]
species = ["Sc", "M"]
step = 2
[orbits.A5]
species = ["Sc"]
[test]
orbit = "A4"
"""
INFERENCE = """
name = "tiny-inference"
mode = "random"
seed = 4
realizations = 1
[orbits.A4]
species = ["Sc", "M"]
step = 1
[orbits.A5]
species = ["Sc"]
"""


@pytest.fixture(scope="module")
def references(tmp_path_factory) -> Path:
    """The Sc-Os references with Lennard-Jones, relaxed once per module, but for elemental
    Sc: every screen of the module relaxes that one phase itself."""
    out = tmp_path_factory.mktemp("references")
    build_references("Os", out, LJ, only=tuple(p.key for p in CATALOGUE if p.key != "Sc"))
    return out


@pytest.fixture
def user(tmp_path, monkeypatch, references) -> Path:
    """A user data directory with the module's Sc-Os references (all phases but Sc)."""
    monkeypatch.setenv("QCAPPROX_DATA", str(tmp_path / "user"))
    shutil.copytree(references, tmp_path / "user" / "references")
    return tmp_path / "user"


def contents(directory: Path) -> dict[Path, bytes]:
    """Every file under a directory, with its bytes."""
    return {p: p.read_bytes() for p in directory.rglob("*") if p.is_file()}


def run(args: list[str]) -> int:
    """Exit code of one `qcapprox` command line."""
    with pytest.raises(SystemExit) as stop:
        main(args)
    return int(stop.value.code)


def test_screen_a_new_dopant_end_to_end(
    tmp_path, user, capsys, monkeypatch, dask_scheduler: str
) -> None:
    (tmp_path / "design.toml").write_text(DESIGN)
    (tmp_path / "inference.toml").write_text(INFERENCE)
    out = tmp_path / "out"
    out.mkdir()
    args = [
        "screen", "--dopant", "Os", "--labels", "single-point", "--calculator", LJ, "--yes",
        "--design", str(tmp_path / "design.toml"), "--inference", str(tmp_path / "inference.toml"),
        "--limits", "0,24", "--scheduler", dask_scheduler, "-o", str(out),
    ]  # fmt: skip
    with pytest.raises(SystemExit) as stop:
        main(args)
    printed = capsys.readouterr().out
    assert stop.value.code == 0, printed
    assert "references: 1 Sc-Os phases to relax" in printed  # Sc, missing from the fixture
    assert "training: 13 structures to label (single-point)" in printed
    assert f"labels computed on the workers of the dask scheduler {dask_scheduler}" in printed
    summary = next(line for line in printed.splitlines() if line.startswith("limit 24:"))

    training = user / "training" / "sc60os13.h5"
    assert SINGLE_POINT in Store(training).labels and len(Store(training)) == 13
    cards = sorted((user / "calculators" / "single-point" / "rf" / "Os").glob("*/card.json"))
    assert [c.parent.name for c in cards] == ["limit-00", "limit-24"]
    results = out / "sc60os13-results.h5"
    with Results(results) as res:
        assert res.dopants == ("Os",)
        predicted = res.predictions("Os", "rf-single-point")
        assert np.isfinite(predicted[[0, -1]]).all() and predicted.shape[1] == 13
        known = res.known_phase_row("Os")
    # the summary: limit 24's counts below 0 and +0.08, and the known phase's rank
    e = predicted[-1]
    assert summary.startswith(f"limit 24: {int((e < 0).sum())} configurations below the hull, "
                              f"{int((e < 0.08).sum())} below +0.08 eV/atom")  # fmt: skip
    assert known is None and "Sc57" not in summary  # this small set lacks the known phase
    assert "lennard_jones" in summary and "CHGNet" not in summary

    stamps = {p: p.stat().st_mtime_ns for p in (training, out / "sc60os13-inference.h5")}
    with pytest.raises(SystemExit) as stop:  # a rerun resumes: nothing is recomputed
        main(args)
    assert stop.value.code == 0
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert "references: 0 Sc-Os phases to relax (present)" in capsys.readouterr().out
    assert len(Hull.load("Os").phase_names) == len(CATALOGUE)

    # explicit paths: another user data dir sees nothing, --training and --registry do
    monkeypatch.setenv("QCAPPROX_DATA", str(tmp_path / "elsewhere"))
    fresh = tmp_path / "fresh.h5"
    assert run(["enumerate", str(tmp_path / "inference.toml"), "-d", "Os", "-o", str(fresh)]) == 0
    predict = ["predict", str(fresh), "--labels", "single-point", "--limits", "0,24"]
    capsys.readouterr()
    assert run(predict) == 2 and "no training set for Os" in capsys.readouterr().err
    explicit = ["--training", str(training), "--registry", str(user / "calculators")]
    assert run(predict + explicit) == 0
    with h5py.File(fresh) as handle:
        group = handle["predictions/rf-single-point"]
        np.testing.assert_array_equal(group["limit-00"][:], predicted[0])
        np.testing.assert_array_equal(group["limit-24"][:], predicted[-1])
    assert not (tmp_path / "elsewhere" / "calculators").exists()

    # screen takes them too: nothing is labelled again, the family comes from that registry
    # (the other user has the Sc-Os references already)
    shutil.copytree(user / "references", tmp_path / "elsewhere" / "references")
    again = tmp_path / "again"
    again.mkdir()
    capsys.readouterr()
    assert run([*args[:-1], str(again), *explicit]) == 0
    printed = capsys.readouterr().out
    assert "references: 0 Sc-Os phases to relax (present)" in printed
    assert f"training: 0 structures to label (single-point) in {training}" in printed
    with Results(again / "sc60os13-results.h5") as res:
        np.testing.assert_array_equal(res.predictions("Os", "rf-single-point"), predicted)
    assert not (tmp_path / "elsewhere" / "calculators").exists()
    assert not (tmp_path / "elsewhere" / "training").exists()


def test_screen_refuses_a_design_without_a_test_set(tmp_path, user, capsys) -> None:
    (tmp_path / "design.toml").write_text(INFERENCE)
    before = contents(user)
    with pytest.raises(SystemExit) as stop:
        main(["screen", "-d", "Os", "--design", str(tmp_path / "design.toml"), "--yes",
              "-o", str(tmp_path)])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert stop.value.code == 2 and "needs a [test] table" in err and "\n" not in err
    assert contents(user) == before and before  # the references copied in, nothing else


def test_known_phase_line_of_the_bundled_results() -> None:
    """The screen's summary line on the bundled results: limit 24's counts and the rank of
    Sc57Pt13, recomputed here from the predictions."""
    from qcapprox.cli.screen import known_phase_line
    from qcapprox.paths import BUNDLED_RESULTS

    line = known_phase_line(BUNDLED_RESULTS, "Pt", SINGLE_POINT)
    with Results(BUNDLED_RESULTS) as res:
        e = res.predictions("Pt", "rf-single-point")[-1]
        known = res.known_phase_row("Pt")
    rank = int((e < e[known]).sum()) + 1
    assert line.startswith(f"limit 24: {int((e < 0).sum()):,} configurations below the hull, "
                           f"{int((e < 0.08).sum()):,} below +0.08 eV/atom")  # fmt: skip
    assert f"Sc57Pt13 (the known phase's arrangement) at {e[known]:+.3f} eV/atom" in line
    assert f"rank {rank:,} of {len(e):,}" in line and line.endswith("(RF; CHGNet stand-in labels)")


def test_screen_relaxations_start_from_a_relaxed_store(
    tmp_path, user, capsys, dask_scheduler: str
) -> None:
    """`--start-from STORE`: a second screen's relaxations start from the first one's
    relaxed geometries (every configuration of the same design: here the same dopant, so
    they start at their minima, 0 steps), and the plan says so. `--fmax` reaches the
    relaxations (0.2 eV/A: 7 FIRE steps from the parent here, not 51 at the default)."""
    (tmp_path / "design.toml").write_text(DESIGN)
    (tmp_path / "inference.toml").write_text(INFERENCE)
    common = ["-d", "Os", "--calculator", LJ, "--yes", "--design", str(tmp_path / "design.toml"),
              "--inference", str(tmp_path / "inference.toml"), "--limits", "24", "--fmax", "0.2",
              "--scheduler", dask_scheduler, "-o", str(tmp_path)]  # fmt: skip
    assert run(["screen", "--start-from", "parent", *common]) == 0
    source, again = user / "training" / "sc60os13.h5", tmp_path / "again.h5"
    capsys.readouterr()
    args = ["--training", str(again), "--registry", str(tmp_path / "registry")]
    assert run(["screen", "--start-from", str(source), *args, *common]) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert f"relaxations start from the relaxed geometries in {source}" in printed
    with h5py.File(source) as a, h5py.File(again) as b:
        assert "fmax 0.2 eV/A" in a["labels/relaxed"].attrs["settings"]
        assert not a["labels/relaxed/from_source"][:].any()
        assert b["labels/relaxed/from_source"][:].all()
        assert (b["labels/relaxed/steps"][:] == 0).all()
        assert "sc60os13.h5 relaxed geometries, sha256" in b["labels/relaxed"].attrs["settings"]
