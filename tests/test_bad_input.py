"""Bad input, as a new user gives it (issue 11): every case ends in exit code 2 and one line
`error: ...` on stderr that names the culprit, and leaves every file as it was (no file
changed, added or removed). Then the guards that are not errors: one writer per store while
readers go on, and model files checked against their recorded sha256 before loading."""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path

import h5py
import numpy as np
import pytest
import skops.io as sio
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import Trajectory, write
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
from qcapprox.store import Store, writer_lock

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


def attribute(name: str, value: object) -> Callable[[h5py.File], None]:
    """An edit: a root attribute set to value."""
    return lambda handle: handle.attrs.__setitem__(name, value)


def at(row: int, value: int) -> Callable[[np.ndarray], np.ndarray]:
    """A change of a column: the value of one row replaced."""

    def make(column: np.ndarray) -> np.ndarray:
        column[row] = value
        return column

    return make


def oxygen_in_parent(numbers: np.ndarray) -> np.ndarray:
    numbers[0] = 8
    return numbers


def labels_with(key: str, dtype: type) -> Callable[[h5py.File], None]:
    """An edit: a complete labels/single-point group whose `key` has another dtype."""

    def edit(handle: h5py.File) -> None:
        group = handle.create_group("labels/single-point")
        n = len(handle["configs/id"])
        for name in ("energy", "formation_energy", "e_above_hull"):
            group[name] = np.full(n, -1.5, dtype=dtype if name == key else np.float64)
        group["converged"] = np.ones(n, bool)
        group.create_dataset("error", data=[""] * n, dtype=h5py.string_dtype())

    return edit


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


def structures(
    *rows: tuple[int, float], pbc: object = True, symbol: str | None = None, name: str = "e.extxyz"
) -> Callable[[Path, pytest.MonkeyPatch], None]:
    """Setup: a file of structures of the store's configurations (row, energy above
    -6.5 eV/atom) with energies; `pbc` and an atom turned into `symbol` spoil them."""

    def setup(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        store = Store(work / STORE)
        images = []
        for row, energy in rows:
            atoms = store.parent.decorate(store.occupancy[row])
            atoms.pbc = pbc
            if symbol:
                atoms[3].symbol = symbol
            atoms.calc = SinglePointCalculator(atoms, energy=-6.5 * len(atoms) + energy)
            images.append(atoms)
        if images:
            write(work / name, images)
        else:
            Trajectory(work / name, "w").close()

    return setup


def labelled(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Setup: the store with single-point labels, and structures to import."""
    with h5py.File(work / STORE, "r+") as handle:
        labels_with("energy", np.float64)(handle)
    structures((0, 0.1))(work, monkeypatch)


TRAVERSAL = "../../elsewhere/evil"  # a dopant attribute that leads out of the registry
SP_CARD = REGISTRY_DIR / "single-point" / "rf" / "Pt" / "limit-00" / "card.json"


def planted(work: Path) -> Path:
    """A card outside the registry `work/registry`, where `rf/<TRAVERSAL>/limit-00` leads."""
    card = work / "elsewhere" / "evil" / "limit-00" / "card.json"
    card.parent.mkdir(parents=True)
    shutil.copyfile(SP_CARD, card)
    (work / "registry").mkdir()
    assert (work / "registry" / "rf" / TRAVERSAL / "limit-00" / "card.json").resolve() == card
    return card


def traversal(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Setup: bad.h5 with the dopant attribute TRAVERSAL, and the card it leads to."""
    store_edit(attribute("dopant", TRAVERSAL))(work, monkeypatch)
    planted(work)


def card(change: Callable[[dict], object] | bytes) -> Callable[[Path, pytest.MonkeyPatch], None]:
    """Setup: registry reg/ with the shipped single-point rf Pt limit-00 card, changed by
    `change` (the JSON object it returns) or replaced by the given bytes."""

    def setup(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        path = work / "reg" / SP_CARD.relative_to(REGISTRY_DIR)
        path.parent.mkdir(parents=True)
        if isinstance(change, bytes):
            path.write_bytes(change)
        else:
            path.write_text(json.dumps(change(json.loads(SP_CARD.read_text()))))

    return setup


def without(key: str) -> Callable[[dict], dict]:
    return lambda content: {k: v for k, v in content.items() if k != key}


def setting(key: str, value: object) -> Callable[[dict], dict]:
    return lambda content: {**content, key: value}


def locked(work: Path, monkeypatch: pytest.MonkeyPatch) -> AbstractContextManager:
    """Setup: the store's writer lock held (by this process, through another open file)."""
    return writer_lock(work / STORE)


def locked_out(work: Path, monkeypatch: pytest.MonkeyPatch) -> AbstractContextManager:
    return writer_lock(work / "out.h5")


ENUMERATE = ["enumerate", "bad.toml", "-d", "Pt", *OUT]
IMPORT = ["import-energies", STORE, "e.extxyz"]
PREDICT_SP = ["predict", STORE, "--limits", "0", "--labels", "single-point", "--registry", "reg"]
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
    ("report-under-file", ["report", "r.h5", "-o", "x.cif/figures"],
     "--out x.cif/figures lies under the file x.cif", text("x.cif", "data_x\n")),
    ("references-out-dir-file", ["references", "-d", "Pt", "-o", "x.cif"],
     "--out x.cif is a file: give a directory (nothing was done)", text("x.cif", "data_x\n")),
    ("references-under-file", ["references", "-d", "Pt", "-o", "x.cif/refs"],
     "--out x.cif/refs lies under the file x.cif", text("x.cif", "data_x\n")),
    ("screen-out-dir-file", ["screen", "-d", "Os", "--yes", "-o", "x.cif"],
     "--out x.cif is a file", text("x.cif", "data_x\n")),
    ("screen-out-dir-missing", ["screen", "-d", "Os", "--yes", "-o", "no"],
     "--out no: no such directory", None),
    ("demo-out-dir-file", ["demo", "-o", "x.cif"], "--out x.cif is a file",
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
    # --- stores: values (issue 37)
    ("dopant-traversal", ["predict", "bad.h5", "--limits", "0", "--registry", "registry"],
     f"bad.h5: attribute dopant = '{TRAVERSAL}' is not the element symbol of a metal", traversal),
    ("dopant-Xx", ["info", "bad.h5"], "attribute dopant = 'Xx' is not the element symbol",
     store_edit(attribute("dopant", "Xx"))),
    ("dopant-O", ["predict", "bad.h5", "--limits", "0"], "attribute dopant = 'O' is not",
     store_edit(attribute("dopant", "O"))),
    ("dopant-lowercase", ["export", "bad.h5", "--row", "0", "-o", "x.cif"], "dopant = 'pt'",
     store_edit(attribute("dopant", "pt"))),
    ("dopant-host", ["info", "bad.h5"], "dopant = 'Sc' is not the element symbol of a metal other",
     store_edit(attribute("dopant", "Sc"))),
    ("dopant-not-in-parent", ["info", "bad.h5"], "parent/numbers holds atomic number 78, but a "
     "Sc60Pd13 parent holds Sc and Pd only", store_edit(attribute("dopant", "Pd"))),
    ("parent-oxygen", ["info", "bad.h5"], "parent/numbers holds atomic number 8",
     store_edit(replace("parent/numbers", oxygen_in_parent))),
    ("energy-int32", ["info", "bad.h5"],
     "bad.h5: labels/single-point/energy has dtype int32, expected float64",
     store_edit(labels_with("energy", np.int32))),
    ("e-above-hull-int32", ["predict", "bad.h5", "--limits", "0"],
     "labels/single-point/e_above_hull has dtype int32, expected float64",
     store_edit(labels_with("e_above_hull", np.int32))),
    ("formation-float32", ["info", "bad.h5"],
     "labels/single-point/formation_energy has dtype float32, expected float64",
     store_edit(labels_with("formation_energy", np.float32))),
    ("duplicate-id", ["info", "bad.h5"], "bad.h5: configs/id holds id 0 more than once",
     store_edit(replace("configs/id", at(1, 0)))),
    ("multiplicity-0", ["predict", "bad.h5", "--limits", "0"],
     "bad.h5: configs/multiplicity row 3 (id",
     store_edit(replace("configs/multiplicity", at(3, 0)))),
    ("multiplicity-negative", ["info", "bad.h5"], ") is -4 (rows at fault: 1)",
     store_edit(replace("configs/multiplicity", at(15000, -4)))),
    ("composition", ["export", "bad.h5", "--row", "0", "-o", "x.cif"],
     "configs/composition row 9 (id", store_edit(replace("configs/composition", at(9, 5)))),
    ("composition-bundle", ["bundle", "-o", "r.h5", "bad.h5"], "configs/composition row 9",
     store_edit(replace("configs/composition", at(9, 5)))),
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
    # --- imported energies: checked before anything is written (issue 37)
    ("import-nan", IMPORT, "e.extxyz: structure 1 has energy nan: energies must be finite",
     structures((0, 0.0), (1, np.nan))),
    ("import-inf", IMPORT, "e.extxyz: structure 0 has energy -inf", structures((0, -np.inf))),
    ("import-duplicate", IMPORT, "e.extxyz: structures 0 and 2 are both configuration 0 with "
     "energies", structures((0, 0.0), (1, 0.0), (0, 5.0))),
    ("import-pbc-false", IMPORT, "e.extxyz: structure 0 has pbc=[False, False, False]",
     structures((0, 0.0), pbc=False)),
    ("import-pbc-partial", IMPORT, "structure 0 has pbc=[True, True, False]: a label of the bulk",
     structures((0, 0.0), (1, 0.0), pbc=[True, True, False])),
    ("import-none", [*IMPORT[:2], "e.traj"], "e.traj: holds no structures; nothing was imported",
     structures(name="e.traj")),
    ("import-oxygen", IMPORT, "e.extxyz: structure 0: atom 3 is O", structures((1, 0.0),
                                                                             symbol="O")),
    ("import-again", [*IMPORT, "--labels", "single-point"],
     "already has single-point labels: pass --replace", labelled),
    ("import-duplicates-policy", [*IMPORT, "--duplicates", "first"], "'first' is not one of",
     structures((0, 0.0))),
    ("drop-absent", ["labels", "drop", STORE, "--labels", "relaxed"],
     f"{STORE} has no relaxed labels (it has: none); nothing was changed", None),
    ("drop-locked", ["labels", "drop", STORE, "--labels", "relaxed"], "being written by", locked),
    ("drop-labels-missing", ["labels", "drop", STORE], "Missing option '--labels'", None),
    # --- models: verified before they are loaded
    ("registry-file", ["predict", STORE, "--limits", "0", "--registry", "reg.txt"],
     "reg.txt is a file, not a model registry", text("reg.txt", "x\n")),
    ("card-not-json", PREDICT_SP, "card.json: not a readable JSON model card", card(b"{oops")),
    ("card-binary", PREDICT_SP, "card.json: not a readable JSON model card", card(b"\xff\xfe\0")),
    ("card-list", PREDICT_SP, "card.json: not a valid model card (a JSON list, expected an object)",
     card(lambda c: [c])),
    ("card-no-sha256", PREDICT_SP, "card.json: not a valid model card (training_set_sha256 is "
     "missing", card(without("training_set_sha256"))),
    ("card-sha256-short", PREDICT_SP, "training_set_sha256 is not 64 hexadecimal digits",
     card(setting("training_set_sha256", "abc"))),
    ("card-limit-text", PREDICT_SP, "limit is '0', expected int", card(setting("limit", "0"))),
    ("card-limit-13", PREDICT_SP, "limit 13 is not one of", card(setting("limit", 13))),
    ("card-rmse-null", PREDICT_SP, "test_rmse is None, expected int or float",
     card(setting("test_rmse", None))),
    ("card-sizes", PREDICT_SP, "sizes {'train': 5} are not train, validation and test counts",
     card(setting("sizes", {"train": 5}))),
    ("card-sizes-list", PREDICT_SP, "sizes is ['train'], expected dict",
     card(setting("sizes", ["train"]))),
    ("card-dopant", PREDICT_SP, "dopant '../x' is not the element symbol of a metal",
     card(setting("dopant", "../x"))),
    ("card-test-lengths", PREDICT_SP, "test_ids, test_target and test_predictions differ",
     card(lambda c: {**c, "test_ids": c["test_ids"][1:]})),
    ("allegro-sha256", ["predict", STORE, "--backbone", "allegro", "--limits", "0",
                        "--labels", "single-point"],
     "model.nequip.zip: sha256", tampered_allegro),
    # --- one writer per store
    ("locked-predict", ["predict", STORE, "--limits", "0"], "being written by another", locked),
    ("locked-import", ["import-energies", STORE, "x.xyz"], f"{STORE} is being written", locked),
    ("locked-limits", ["limits", STORE], f"{STORE} is being written by another", locked),
    ("locked-enumerate", [*INFERENCE, *OUT], "out.h5 is being written by another", locked_out),
    ("locked-bundle", ["bundle", *OUT, STORE], "out.h5 is being written by another", locked_out),
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
        mp.setattr("qcapprox.cli.store.MAX_CONFIGURATIONS", 100)
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
    digest = base.TrainingSet.load(base.training_store("Pt"), pt_labels).digest(0)
    cache = forest.cache_dir("rf", digest, pt_labels)
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


# ----------------------------------------------------------------------------- paths from files
OPENED: list[str] = []  # every file opened while `watching` (an audit hook: no mock)
WATCHING: list[bool] = []


def _audit(event: str, args: tuple) -> None:
    if WATCHING and event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        OPENED.append(os.path.realpath(os.fsdecode(args[0])))


@contextmanager
def watching_opens() -> Iterator[list[str]]:
    """The files this process opens meanwhile (Python's `open` audit event)."""
    if not hasattr(watching_opens, "hooked"):
        sys.addaudithook(_audit)
        watching_opens.hooked = True
    OPENED.clear()
    WATCHING.append(True)
    try:
        yield OPENED
    finally:
        WATCHING.clear()


def test_a_card_planted_outside_the_registry_is_never_read(work: Path, monkeypatch, capsys) -> None:
    """A store whose dopant leads out of the registry, a member path built from such a
    dopant, and a registry directory that is a symbolic link out of it: each is refused
    before the planted card (or the model beside it) is opened."""
    traversal(work, monkeypatch)
    card_path = str((work / "elsewhere" / "evil" / "limit-00" / "card.json").resolve())
    registry = work / "registry"
    before = files(work)
    with watching_opens() as opened:
        assert TRAVERSAL in refused(["predict", "bad.h5", "--registry", str(registry)], capsys)
        for load in (
            lambda: forest.load_member(TRAVERSAL, 0, registry=registry),
            lambda: load_allegro_member(TRAVERSAL, 0, "ordinary", registry),
            lambda: base.member_path("rf", TRAVERSAL, 0),
            lambda: base.training_store(TRAVERSAL),
        ):
            with pytest.raises(ModelError, match="is not the element symbol of a metal"):
                load()
        (registry / "rf").mkdir()
        (registry / "rf" / "Pt").symlink_to(work / "elsewhere" / "evil")
        with pytest.raises(ModelError, match=r"rf/Pt/limit-00 resolves to .*outside the registry"):
            forest.load_member("Pt", 0, registry=registry)
        assert card_path not in opened
        base.read_card(Path(card_path).parent)  # the hook sees a card that is read
        assert card_path in opened  # (other threads open files too, e.g. /proc/<pid>/statm)
    (registry / "rf" / "Pt").unlink()
    (registry / "rf").rmdir()
    assert files(work) == before


def test_train_into_a_fresh_registry_from_the_cache_writes_a_full_card(tmp_path) -> None:
    """The cache holds the member (loaded once): training it into an empty registry writes
    the member's complete card (issue 37: it wrote `null`), and predicting with that
    registry works."""
    member = forest.load_member("Pt", 0, labels="single-point")
    registry = tmp_path / "fresh"
    with pytest.raises(SystemExit) as done:
        main(["train", "rf", "-d", "Pt", "--limits", "0", "--labels", "single-point",
              "--registry", str(registry)])  # fmt: skip
    assert done.value.code == 0
    written = registry / "single-point" / "rf" / "Pt" / "limit-00" / "card.json"
    card = base.read_card(written.parent)  # checked against the schema
    assert "null" not in written.read_text()
    assert card["training_set_sha256"] == member.card["training_set_sha256"]
    assert card["test_rmse"] == pytest.approx(member.card["test_rmse"], abs=1e-12)
    with pytest.raises(ModelError, match="not a valid model card"):
        base.write_card(written, {**card, "sizes": None})  # never written with a null
    assert base.read_card(written.parent) == card


def test_cache_is_keyed_by_member_content(tmp_path, monkeypatch) -> None:
    """Members of two training sets (the same backbone, dopant and limit, two registries)
    are cached apart: loading one never evicts the other, and the same member read through
    another registry shares its cache."""
    monkeypatch.setenv("QCAPPROX_CACHE", str(tmp_path / "cache"))
    other = tmp_path / "sc60pt13.h5"
    shutil.copyfile(base.training_store("Pt"), other)
    with h5py.File(other, "r+") as handle:
        handle["labels/single-point/e_above_hull"][:50] += 0.01  # other targets
    first = forest.load_member("Pt", 0, labels="single-point", registry=tmp_path / "a")
    second = forest.load_member(
        "Pt", 0, labels="single-point", training=other, registry=tmp_path / "b"
    )
    digests = [m.card["training_set_sha256"] for m in (first, second)]
    caches = [forest.cache_dir("rf", d, "single-point") for d in digests]
    assert digests[0] != digests[1] and caches[0] != caches[1]
    kept = files(tmp_path / "cache")
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").rglob("*") if p.is_file()}
    again = forest.load_member("Pt", 0, labels="single-point", registry=tmp_path / "c")
    assert again.card == first.card  # a cache hit comes with its card
    assert files(tmp_path / "cache") == kept
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # nothing refitted


# ----------------------------------------------------------------------------- writers
@contextmanager
def file_size_limit(n_bytes: int) -> Iterator[None]:
    """This process may write no file beyond n_bytes (RLIMIT_FSIZE; Python ignores
    SIGXFSZ, so a write past it fails with errno 27, as a full disk fails with 28)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (n_bytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def test_predict_past_the_file_size_limit_names_the_store(work: Path, capsys) -> None:
    """The copy of the store fits, the predictions do not: one line naming the store and
    the limit, no temporary file left, the store as it was."""
    forest.load_member("Pt", 0, labels="single-point")  # in the cache: nothing to write there
    before = files(work)
    with file_size_limit((work / STORE).stat().st_size + 4096):
        err = refused(["predict", STORE, "--limits", "0", "--labels", "single-point"], capsys)
    assert f"error: {STORE}: could not be written, larger than the file-size limit" in err
    assert "(errno 27)" in err
    assert files(work) == before


def test_enumerate_past_the_file_size_limit_names_the_file(work: Path, capsys) -> None:
    """A journal segment past the limit: one line naming it; no temporary file; the journal
    keeps what it committed and the same command, with room, finishes the store."""
    before = files(work)
    with file_size_limit(200_000):
        err = refused([*INFERENCE, *OUT], capsys)
    assert "out.h5.partial/segment-000000.npz: could not be written, larger than the file" in err
    assert "(errno 27)" in err
    after = files(work)
    assert {k: v for k, v in after.items() if k in before} == before
    assert sorted(map(str, set(after) - set(before))) == ["out.h5.partial/identity.json"]
    with pytest.raises(SystemExit) as done:
        main([*INFERENCE, *OUT])
    assert done.value.code == 0 and len(Store(work / "out.h5")) == 15327


def test_report_past_the_file_size_limit_leaves_whole_files(
    work: Path, results_path: Path, capsys
) -> None:
    """Figures are written whole or not at all: a figure past the limit is one line naming
    it, and the report directory holds no temporary or truncated file."""
    out = work / "figures"
    with file_size_limit(40_000):
        err = refused(["report", str(results_path), "-o", str(out)], capsys)
    assert f"error: {out}/" in err and "larger than the file-size limit" in err
    written = sorted(out.iterdir())
    assert not [p for p in written if p.suffix == ".tmp"]
    failed = Path(err.split()[1].rstrip(":"))
    assert not failed.exists()
    for path in written:  # every file there is complete
        if path.suffix == ".png":
            assert path.read_bytes().endswith(b"IEND\xaeB`\x82")
        if path.suffix == ".svg":
            assert path.read_text().rstrip().endswith("</svg>")
