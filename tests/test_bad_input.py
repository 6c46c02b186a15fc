"""Bad input, as a new user gives it (issue 11): every case ends in exit code 2 and one line
`error: ...` on stderr that names the culprit, and leaves every file as it was (no file
changed, added or removed). Then the guards that are not errors: one writer per store while
readers go on, and model files checked against their recorded sha256 before loading."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import h5py
import numpy as np
import pytest
import skops.io as sio
from sklearn.dummy import DummyRegressor

import qcapprox.screen  # noqa: F401  (binds the real training_store before any patch)
from qcapprox.cli import main
from qcapprox.enumeration.recipe import Recipe
from qcapprox.enumeration.run import run_recipe
from qcapprox.errors import AllegroError, ModelError, StoreError
from qcapprox.models import base, forest
from qcapprox.models.allegro.inference import MODEL_FILE, load_allegro_member
from qcapprox.models.base import file_sha256
from qcapprox.parent import Parent
from qcapprox.paths import RECIPES_DIR, REGISTRY_DIR
from qcapprox.store import writer_lock

BUNDLED_TRAINING_STORE = base.training_store
STORE = "store.h5"  # the A4 inference set of Pt in every test's directory
OUT = ["-o", "out.h5"]
ORBITS = '[orbits.A4]\nspecies = ["Sc", "M", "vacancy"]\n'


@pytest.fixture(autouse=True)
def private_training_stores(tmp_path_factory, monkeypatch) -> None:
    """Models read copies of the bundled training stores (their first use writes the split,
    and the bundled stores stay as they are). qcapprox.screen, which binds training_store
    on import, is imported above, so the patch does not outlive these tests in it."""
    root = tmp_path_factory.getbasetemp() / "training-copies"

    def copy(dopant: str) -> Path:
        path = root / f"sc60{dopant.lower()}13.h5"
        if not path.exists():
            root.mkdir(exist_ok=True)
            shutil.copyfile(BUNDLED_TRAINING_STORE(dopant), path)
        return path

    monkeypatch.setattr(base, "training_store", copy)


@pytest.fixture(scope="module")
def inference_store(tmp_path_factory, parent_pt: Parent) -> Path:
    path = tmp_path_factory.mktemp("inference") / STORE
    run_recipe(Recipe.load(RECIPES_DIR / "inference-a4.toml"), parent_pt, path)
    return path


@pytest.fixture
def work(tmp_path, monkeypatch, inference_store: Path) -> Path:
    """A directory with the store, as the current directory."""
    shutil.copyfile(inference_store, tmp_path / STORE)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def files(root: Path) -> dict[Path, bytes]:
    """Every file under root with its bytes."""
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def refused(args: list[str], capsys) -> str:
    """Run the command line; assert exit code 2 and one line `error: ...` on stderr; return it."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


# ----------------------------------------------------------------------------- setups
def text(name: str, content: str | bytes) -> Callable[[Path, pytest.MonkeyPatch], None]:
    """Setup: a file of the given content."""

    def setup(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        path = work / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())

    return setup


def recipe(content: str) -> Callable[[Path, pytest.MonkeyPatch], None]:
    """Setup: the recipe bad.toml."""
    return text("bad.toml", content)


def store_edit(edit: Callable[[h5py.File], None]) -> Callable[[Path, pytest.MonkeyPatch], None]:
    """Setup: bad.h5, a copy of the store edited with h5py."""

    def setup(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        shutil.copyfile(work / STORE, work / "bad.h5")
        with h5py.File(work / "bad.h5", "r+") as handle:
            edit(handle)

    return setup


def replace(name: str, make: Callable[[np.ndarray], np.ndarray | None]) -> Callable:
    """An edit: dataset `name` rewritten as make(old data), or deleted if that is None."""

    def edit(handle: h5py.File) -> None:
        data = make(handle[name][:])
        del handle[name]
        if data is not None:
            handle[name] = data

    return edit


def code_7(occ: np.ndarray) -> np.ndarray:
    occ[5, 3] = 7
    return occ


def not_a_permutation(perms: np.ndarray) -> np.ndarray:
    perms[1, 0] = perms[1, 1]
    return perms


def labels_without_e_above_hull(handle: h5py.File) -> None:
    group = handle.create_group("labels/single-point")
    n = len(handle["configs/id"])
    for key in ("energy", "formation_energy", "converged", "error"):
        group[key] = np.zeros(n)


def foreign(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with h5py.File(work / "bad.h5", "w") as handle:
        handle["x"] = np.arange(3)


def truncated(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = (work / STORE).read_bytes()
    (work / "bad.h5").write_bytes(data[: len(data) // 3])


def copy_store(name: str) -> Callable[[Path, pytest.MonkeyPatch], None]:
    def setup(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        shutil.copyfile(work / STORE, work / name)

    return setup


def tampered_allegro(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A user registry whose Allegro Pt limit-0 zip differs by one byte from its card's hash
    (read before the bundled one)."""
    monkeypatch.setenv("QCAPPROX_DATA", str(work / "user"))
    member = Path("single-point") / "allegro" / "Pt" / "limit-00"
    where = work / "user" / "calculators" / member
    shutil.copytree(REGISTRY_DIR / member, where)
    model = where / MODEL_FILE
    model.write_bytes(model.read_bytes() + b"\0")


def locked(work: Path, monkeypatch: pytest.MonkeyPatch) -> AbstractContextManager:
    """Setup: the store's writer lock held (by this process, through another open file)."""
    return writer_lock(work / STORE)


def locked_out(work: Path, monkeypatch: pytest.MonkeyPatch) -> AbstractContextManager:
    return writer_lock(work / "out.h5")


ENUMERATE = ["enumerate", "bad.toml", "-d", "Pt", *OUT]
INFERENCE = ["enumerate", str(RECIPES_DIR / "inference-a4.toml"), "-d", "Pt"]
A5_VACANCIES_7 = ORBITS.replace('"M", ', "") + '[orbits.A5]\nspecies = ["Sc", "vacancy"]\n'
CASES = [
    # --- command-line options: checked before any work
    ("limits-abc", ["predict", STORE, "--limits", "abc"], "'abc' is not a limit", None),
    ("limits-empty", ["predict", STORE, "--limits", ""], "'' is not a limit", None),
    ("limits-semicolon", ["predict", STORE, "--limits", "0;12"], "'0;12' is not", None),
    ("limits-all-and", ["predict", STORE, "--limits", "all,0"], "'all' is not a limit", None),
    ("limits-repeated", ["predict", STORE, "--limits", "24,24"], "limit 24 is repeated", None),
    ("limits-odd", ["predict", STORE, "--limits", "0,5"], "'5' is not a limit", None),
    ("train-limits", ["train", "rf", "-d", "Pt", "--limits", "1"], "'1' is not a limit", None),
    ("train-jobs-rf", ["train", "rf", "-d", "Pt", "--jobs", "2"], "for `train allegro` only", None),
    ("train-jobs-0", ["train", "allegro", "-d", "Pt", "--jobs", "0"], "'--jobs'", None),
    ("labels", ["predict", STORE, "--labels", "dft"], "'dft' is not one of", None),
    ("import-labels", ["import-energies", STORE, "x.xyz", "--labels", "x"], "'x' is not", None),
    ("row-not-int", ["export", STORE, "--row", "abc", "-o", "x.cif"], "'--row'", None),
    ("id-and-row", ["export", STORE, "--row", "1", "--id", "2", "-o", "x.cif"], "exactly", None),
    ("row-range", ["export", STORE, "--row", "99999", "-o", "x.cif"], "row 99999 out", None),
    ("no-such-id", ["export", STORE, "--id", "5", "-o", "x.cif"], "no configuration with", None),
    ("missing-option", ["count", "x.toml"], "Missing option '--dopant'", None),
    ("unknown-option", ["info", STORE, "--bogus"], "No such option: --bogus", None),
    ("unknown-command", ["nosuch"], "No such command 'nosuch'", None),
    ("show-negative", ["count", "x.toml", "-d", "Pt", "--show", "-1"], "'--show'", None),
    ("orbit-without-cif", [*INFERENCE, "--orbit", "A4=12e", *OUT], "give --cif", None),
    ("orbit-malformed", [*INFERENCE, "--cif", "p.cif", "--orbit", "A4", *OUT], "'A4'", None),
    ("cif-missing", [*INFERENCE, "--cif", "p.cif", *OUT], "p.cif: cannot read the CIF", None),
    ("dopant", [*INFERENCE[:-1], "Xx", *OUT], "--dopant Xx", None),
    ("backbone", ["predict", STORE, "--backbone", "forest"], "unknown regressor 'forest'", None),
    ("allegro-variant", ["predict", STORE, "--backbone", "allegro-x"], "'allegro-x'", None),
    # --- paths: nothing overwritten by accident
    ("export-over-input", ["export", STORE, "--row", "0", "-o", STORE, "--format", "extxyz"],
     f"--out {STORE} is the input {STORE}", None),
    ("export-format", ["export", STORE, "--row", "0", "-o", "e.weird"], "e.weird: no", None),
    ("export-no-extension", ["export", STORE, "--row", "0", "-o", "e"], "--out e: no", None),
    ("export-over-store", ["export", STORE, "--row", "0", "-o", "other.h5", "--format", "cif"],
     "--out other.h5 exists and is not a structure file", copy_store("other.h5")),
    ("export-directory", ["export", STORE, "--row", "0", "-o", "no/x.cif"], "no does not", None),
    ("enumerate-directory", [*INFERENCE, "-o", "no/x.h5"], "the directory no does not", None),
    ("enumerate-proc", [*INFERENCE, "-o", "/proc/x.h5"], "/proc/x.h5", None),
    ("enumerate-over-file", [*INFERENCE, "-o", "x.cif"], "x.cif: not a readable HDF5",
     text("x.cif", "data_x\n")),
    ("enumerate-other-run", [*INFERENCE[:-1], "Rh", "-o", STORE], "holds another run", None),
    ("bundle-over-input", ["bundle", "-o", STORE, STORE], f"--out {STORE} is the input", None),
    ("bundle-over-file", ["bundle", "-o", "x.cif", STORE], "x.cif exists and is not a results",
     text("x.cif", "data_x\n")),
    ("bundle-twice", ["bundle", "-o", "r.h5", STORE, "other.h5"], "both hold Sc60Pt13",
     copy_store("other.h5")),
    ("report-over-file", ["report", "r.h5", "-o", "x.cif"], "--out x.cif is a file",
     text("x.cif", "data_x\n")),
    ("info-missing", ["info", "missing.h5"], "missing.h5: no such file", None),
    ("rehull-unlabelled", ["rehull", STORE], "has no labels: nothing to recompute", None),
    ("rehull-missing", ["rehull", "missing.h5"], "missing.h5: no such file", None),
    ("recipe-missing", ["count", "missing.toml", "-d", "Pt"], "missing.toml: cannot read", None),
    ("structures-missing", ["import-energies", STORE, "missing.xyz", "--labels", "single-point"],
     "missing.xyz: cannot read structures", None),
    # --- recipes: a schema, checked before any work (no store, no journal)
    ("toml", ENUMERATE, "bad.toml: not valid TOML", recipe("mode = ")),
    ("step-text", ENUMERATE, "orbits.A4.step must be an integer >= 1, not 'two'",
     recipe(ORBITS + 'step = "two"\n')),
    ("step-zero", ENUMERATE, "orbits.A4.step must be", recipe(ORBITS + "step = 0\n")),
    ("seed-text", ENUMERATE, "seed must be an integer >= 0, not 'abc'",
     recipe('seed = "abc"\n' + ORBITS)),
    ("seed-bool", ENUMERATE, "seed must be an integer", recipe("seed = true\n" + ORBITS)),
    ("orbit-number", ENUMERATE, "orbits.A4 must be a table", recipe("orbits = {A4 = 5}\n")),
    ("retired-key", ENUMERATE, "pristine_orbit is no longer a recipe key",
     recipe('pristine_orbit = "A9"\n' + ORBITS)),
    ("retired-table", ENUMERATE, "min_sc_fraction is no longer a recipe key",
     recipe(ORBITS + '[min_sc_fraction]\ndefault = "2/3"\n')),
    ("unknown-key", ENUMERATE, "unknown key sead", recipe("sead = 3\n" + ORBITS)),
    ("unknown-orbit-key", ENUMERATE, "unknown key orbits.A4.steps", recipe(ORBITS + "steps = 2\n")),
    ("realizations", ENUMERATE, "realizations must be an integer >= 1, not -5",
     recipe('mode = "random"\nrealizations = -5\n' + ORBITS)),
    ("max-defects", ENUMERATE, "orbits.A4.max_defects must be an integer >= 0, not -3",
     recipe(ORBITS + "max_defects = -3\n")),
    ("fraction-above-one", ENUMERATE, "sc_fraction_above.default must be a fraction in [0, 1)",
     recipe(ORBITS + "[sc_fraction_above]\ndefault = 5\n")),
    ("fraction-text", ENUMERATE, "sc_fraction_above.Pt must be a fraction",
     recipe(ORBITS + '[sc_fraction_above]\nPt = "two thirds"\n')),
    ("fraction-element", ENUMERATE, "not 'Xx'",
     recipe(ORBITS + '[sc_fraction_above]\nXx = "1/2"\n')),
    ("no-orbits", ENUMERATE, "needs an [orbits.<name>] table", recipe('name = "x"\n')),
    ("species", ENUMERATE, "orbits.A4.species must include 'Sc'",
     recipe('[orbits.A4]\nspecies = ["Sc", "Au"]\n')),
    ("mode", ENUMERATE, "mode must be 'all' or 'random'", recipe('mode = "some"\n' + ORBITS)),
    ("unknown-orbit", ENUMERATE, "orbits ['B7'] are not active orbits",
     recipe('[orbits.B7]\nspecies = ["Sc", "M"]\n')),
    ("test-orbit", ENUMERATE, "test.orbit must name", recipe(ORBITS + '[test]\norbit = "A9"\n')),
    ("empty-result", ENUMERATE, "nothing to enumerate",
     recipe(ORBITS + '[sc_fraction_above]\ndefault = "9/10"\n')),
    ("too-large", ENUMERATE, "46,087,734 configurations (Burnside)",
     recipe(A5_VACANCIES_7 + "max_defects = 7\n")),
    # --- stores: shape, dtype, codes, required datasets
    ("code-7", ["predict", "bad.h5", "--limits", "0"], "row 5 (id",
     store_edit(replace("configs/occupancy", code_7))),
    ("code-7-export", ["export", "bad.h5", "--row", "5", "-o", "x.cif"], "has code 7",
     store_edit(replace("configs/occupancy", code_7))),
    ("code-7-bundle", ["bundle", "-o", "r.h5", "bad.h5"], "has code 7 at active site 3",
     store_edit(replace("configs/occupancy", code_7))),
    ("float-occupancy", ["export", "bad.h5", "--row", "0", "-o", "x.cif"],
     "configs/occupancy has dtype float64, expected uint8",
     store_edit(replace("configs/occupancy", lambda occ: occ.astype(float)))),
    ("occupancy-35", ["info", "bad.h5"], "configs/occupancy has shape (15327, 35)",
     store_edit(replace("configs/occupancy", lambda occ: occ[:, :35]))),
    ("no-permutations", ["info", "bad.h5"], "parent/permutations is missing",
     store_edit(replace("parent/permutations", lambda p: None))),
    ("no-task", ["predict", "bad.h5"], "configs/task is missing",
     store_edit(replace("configs/task", lambda t: None))),
    ("composition-dtype", ["info", "bad.h5"], "configs/composition has dtype int64",
     store_edit(replace("configs/composition", lambda c: c.astype(np.int64)))),
    ("rows-differ", ["info", "bad.h5"], "configs/multiplicity has shape (15326,)",
     store_edit(replace("configs/multiplicity", lambda m: m[1:]))),
    ("permutation", ["info", "bad.h5"], "parent/permutations has a row that is not",
     store_edit(replace("parent/permutations", not_a_permutation))),
    ("labels-incomplete", ["info", "bad.h5"], "labels/single-point/e_above_hull is missing",
     store_edit(labels_without_e_above_hull)),
    ("foreign", ["info", "bad.h5"], "bad.h5: not a qcapprox store", foreign),
    ("schema", ["info", "bad.h5"], "schema version 99",
     store_edit(lambda h: h.attrs.__setitem__("schema_version", 99))),
    ("truncated", ["export", "bad.h5", "--row", "0", "-o", "x.cif"], "corrupt or truncated",
     truncated),
    ("start-from-unrelaxed", ["label", STORE, "--start-from", STORE], "has no relaxed labels",
     None),
    ("screen-start-from", ["screen", "-d", "Pt", "--yes", "--training", "new.h5",
                           "--start-from", "missing.h5"],
     "missing.h5", None),
    ("label-fmax", ["label", STORE, "--fmax", "0"], "needs fmax > 0 and max_steps > 0", None),
    ("screen-optimizer", ["screen", "-d", "Os", "--yes", "--optimizer", "Newton"],
     "optimizer 'Newton': use one of FIRE", None),
    ("reuse-foreign", ["predict", STORE, "--limits", "0", "--reuse", "bad.h5"],
     "bad.h5: not a qcapprox results file", foreign),
    # --- models: verified before they are loaded
    ("allegro-sha256", ["predict", STORE, "--backbone", "allegro", "--limits", "0",
                        "--labels", "single-point"],
     "model.nequip.zip: sha256", tampered_allegro),
    # --- one writer per store
    ("locked-predict", ["predict", STORE, "--limits", "0"], "being written by another", locked),
    ("locked-import", ["import-energies", STORE, "x.xyz"], f"{STORE} is being written", locked),
    ("locked-limits", ["limits", STORE], f"{STORE} is being written by another", locked),
    ("locked-enumerate", [*INFERENCE, *OUT], "out.h5 is being written by another", locked_out),
]  # fmt: skip


@pytest.mark.parametrize(
    "args, message, setup", [pytest.param(*case[1:], id=case[0]) for case in CASES]
)
def test_bad_input(args, message, setup, work: Path, monkeypatch, capsys) -> None:
    held = setup(work, monkeypatch) if setup else None
    with held if isinstance(held, AbstractContextManager) else nullcontext():
        before = files(work)
        err = refused(args, capsys)
        assert message in err
        assert files(work) == before  # no file changed, added or removed


def test_enough_cases() -> None:
    assert len(CASES) >= 40 and len({case[0] for case in CASES}) == len(CASES)


def test_debug_shows_the_traceback(work: Path) -> None:
    with pytest.raises(StoreError, match="no such file"):
        main(["--debug", "info", "missing.h5"])


def test_brackets_survive(work: Path, capsys) -> None:
    (work / "bad.toml").write_text('name = "x"\n')
    assert "[orbits.<name>]" in refused(ENUMERATE, capsys)


def test_second_writer_fails_fast_and_readers_go_on(work: Path, capsys) -> None:
    """Another process holds the store's lock: writers are refused at once, `info` reads;
    once it lets go, the lock file is gone and the same command works."""
    script = (
        "import sys; from qcapprox.store import writer_lock\n"
        "with writer_lock(sys.argv[1]):\n    print('locked', flush=True); sys.stdin.read()\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", script, str(work / STORE)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline() == "locked\n"  # the event: the lock is held
        before = files(work)
        err = refused(["predict", STORE, "--limits", "0"], capsys)
        assert f"(pid {holder.pid}" in err
        with pytest.raises(SystemExit) as reader:
            main(["info", STORE])
        assert reader.value.code == 0 and "15,327 configurations" in capsys.readouterr().out
        assert files(work) == before
    finally:
        holder.communicate("")
    assert not (work / f"{STORE}.lock").exists()
    with pytest.raises(SystemExit) as done:
        main(["export", STORE, "--row", "0", "-o", "x.cif"])
    assert done.value.code == 0


def test_export_replaces_a_structure_file_and_force_replaces_others(work: Path) -> None:
    shutil.copyfile(work / STORE, work / "other.extxyz")
    for args in (["-o", "x.cif"], ["-o", "x.cif"], ["-o", "other.extxyz", "--force"]):
        with pytest.raises(SystemExit) as exit_info:
            main(["export", STORE, "--row", "0", *args])
        assert exit_info.value.code == 0
    assert b"Sc" in (work / "other.extxyz").read_bytes()


def test_large_recipe_runs_with_force_only(work: Path, capsys) -> None:
    """The size guard is stated before the work; --force lifts it (here a small limit)."""
    (work / "bad.toml").write_text(ORBITS)
    before = files(work)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("qcapprox.cli.MAX_CONFIGURATIONS", 100)
        assert "more than the limit of 100 configurations" in refused(ENUMERATE, capsys)
        assert files(work) == before
        with pytest.raises(SystemExit) as exit_info:
            main([*ENUMERATE, "--force"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "15,327 configurations (Burnside)" in out and "peak memory" in out


# ----------------------------------------------------------------------------- models
def test_rf_cache_files_are_checked_and_rebuilt(tmp_path, monkeypatch, pt_labels: str) -> None:
    """The cache's card records the sha256 of every fold file; foreign regressors (the
    issue's DummyRegressor) or random bytes in their place are not loaded: the member is
    trained afresh and predicts as before."""
    monkeypatch.setenv("QCAPPROX_CACHE", str(tmp_path))
    cache = forest.cache_dir("rf", "Pt", 0, pt_labels)
    member = forest.load_member("Pt", 0, labels=pt_labels)
    occupancy = member.parent.known_phase()[None]
    expected = member.predict(occupancy)
    folds = sorted(cache.glob("fold-*.skops"))

    def recorded() -> dict[str, str]:
        return json.loads((cache / "card.json").read_text())[forest.CACHE_HASHES]

    assert recorded() == {p.name: file_sha256(p) for p in folds} and len(folds) == forest.N_FOLDS
    dummy = DummyRegressor(strategy="constant", constant=-0.5).fit([[0.0]], [-0.5])
    for path in folds:
        sio.dump(dummy, path)
    with pytest.warns(UserWarning, match="not the file its cache card records"):
        rebuilt = forest.load_member("Pt", 0, labels=pt_labels)
    np.testing.assert_allclose(rebuilt.predict(occupancy), expected)
    assert recorded() == {p.name: file_sha256(p) for p in folds}
    folds[2].write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.warns(UserWarning, match="fold-2.skops is missing or not the file"):
        forest.load_member("Pt", 0, labels=pt_labels)
    (cache / "card.json").write_text("{not json")
    with pytest.warns(UserWarning, match="card.json is corrupt"):
        forest.load_member("Pt", 0, labels=pt_labels)
    assert recorded() == {p.name: file_sha256(p) for p in folds}
    # the files are loaded trusting only the types the card records, and only sklearn's
    card = json.loads((cache / "card.json").read_text())
    assert card[forest.CACHE_TYPES] == {p.name: ["sklearn.tree._tree.Tree"] for p in folds}
    for hidden, message in (([], "types its cache card does not record"),
                            (["os.system"], "refuses to load untrusted types")):  # fmt: skip
        card[forest.CACHE_TYPES]["fold-1.skops"] = hidden
        (cache / "card.json").write_text(json.dumps(card))
        with pytest.raises(ModelError, match=message):
            forest.load_member("Pt", 0, labels=pt_labels)


def test_allegro_zip_is_checked_before_loading(tmp_path, monkeypatch) -> None:
    tampered_allegro(tmp_path, monkeypatch)
    with pytest.raises(AllegroError, match="is not the model_sha256"):
        load_allegro_member("Pt", 0, "ordinary", labels="single-point")
    shipped = load_allegro_member("Pt", 0, "ordinary", REGISTRY_DIR, labels="single-point")
    assert shipped.card["limit"] == 0
