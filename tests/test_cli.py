"""The command line: every sub-command has --help; enumerate, count, info and export work."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read, write
from labelers import lennard_jones
from typer.testing import CliRunner

from qcapprox.cli import app, main
from qcapprox.parent import Parent
from qcapprox.paths import RECIPES_DIR
from qcapprox.store import Store

runner = CliRunner()


def test_help_lists_subcommands_and_each_has_help() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    commands = [c.name or c.callback.__name__ for c in app.registered_commands]
    commands = [c.removesuffix("_cmd") for c in commands]
    for name in commands:
        assert name in result.output
        sub = runner.invoke(app, [name, "--help"])
        assert sub.exit_code == 0 and "Usage" in sub.output, name
        short = runner.invoke(app, [name, "-h"])
        assert short.exit_code == 0 and short.output == sub.output, name


def test_version() -> None:
    from importlib.metadata import version

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"qcapprox {version('qcapprox')}"


def test_python_m_qcapprox(tmp_path) -> None:
    """`python -m qcapprox` is the command line: its answers and its exit codes."""
    from importlib.metadata import version

    def run(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "qcapprox", *args]
        return subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)

    shown = run("--version")
    assert shown.returncode == 0 and shown.stdout == f"qcapprox {version('qcapprox')}\n"
    wrong = run("no-such-command")
    assert wrong.returncode == 2 and wrong.stdout == ""
    assert wrong.stderr.startswith("error: No such command 'no-such-command'")


def test_command_line_imports_no_heavy_library() -> None:
    """Importing the command line, building every command and printing the version or a
    help page load none of the heavy libraries (they load in the commands that use them)."""
    heavy = ("h5py", "ase", "pymatgen", "spglib", "torch", "sklearn")
    code = f"""
import json, sys
import qcapprox.cli
from typer.testing import CliRunner
loaded = {{"import": [m for m in {heavy!r} if m in sys.modules]}}
runner = CliRunner()
for args in (["--version"], ["label", "--help"], ["tui", "--help"]):
    assert runner.invoke(qcapprox.cli.app, args).exit_code == 0, args
loaded["version and help"] = [m for m in {heavy!r} if m in sys.modules]
print(json.dumps(loaded))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == {"import": [], "version and help": []}


def test_help_shows_no_type_beside_flags() -> None:
    """Flags take no value: no `<bool>` beside them (nor beside --help); options that take
    one keep their type."""
    for args in (["label", "--help"], ["--help"], ["labels", "drop", "--help"]):
        result = runner.invoke(app, args, terminal_width=100)
        assert result.exit_code == 0 and "<bool>" not in result.output, args
    text = runner.invoke(app, ["label", "--help"], terminal_width=100).output
    assert "--labels" in text and "<float>" in text
    assert "--relax" not in text and "--single-point" not in text  # the old spelling, gone


def _commands() -> dict:
    """Every click command of the command line by its path ('enumerate', 'labels drop')."""
    import typer.main

    found, todo = {}, [("", typer.main.get_command(app))]
    while todo:
        path, group = todo.pop()
        for name, command in group.commands.items():
            if hasattr(command, "commands"):
                todo.append((f"{path}{name} ", command))
            else:
                found[f"{path}{name}"] = command
    return found


#: The commands that choose a label set, and those that write an output.
LABEL_SET_COMMANDS = {"label", "screen", "train", "predict", "import-energies", "labels drop"}
OUTPUT_COMMANDS = {"enumerate", "export", "references", "corpus", "bundle", "screen", "demo",
                   "tui", "report"}  # fmt: skip


def test_every_label_set_is_chosen_with_labels(capsys) -> None:
    """`--labels relaxed|single-point` wherever a label set is chosen; the old spellings
    (`--relax/--single-point`, `--out-dir`, `--export-dir`) are gone from the help."""
    commands = _commands()
    with_labels = {n for n, c in commands.items() if any("--labels" in p.opts for p in c.params)}
    assert with_labels == LABEL_SET_COMMANDS
    arguments = {"label": ["x.h5"], "screen": ["-d", "Os"], "train": ["rf", "-d", "Pt"],
                 "predict": ["x.h5"], "import-energies": ["x.h5", "e.xyz"],
                 "labels drop": ["x.h5"]}  # fmt: skip
    for name, args in arguments.items():
        with pytest.raises(SystemExit) as exit_:
            main([*name.split(), *args, "--labels", "dft"])
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and "'dft' is not one of 'relaxed', 'single-point'" in err
    shown = {
        opt for c in commands.values() for p in c.params if not getattr(p, "hidden", False)
        for opt in (*p.opts, *p.secondary_opts)
    }  # fmt: skip
    assert not {"--relax", "--single-point", "--out-dir", "--export-dir"} & shown


def test_every_output_is_o_out() -> None:
    """Every command that writes a file or a directory takes it with -o/--out."""
    commands = _commands()
    with_out = {n for n, c in commands.items() if any("-o" in p.opts for p in c.params)}
    assert with_out == OUTPUT_COMMANDS
    for name in OUTPUT_COMMANDS:
        param = next(p for p in commands[name].params if "-o" in p.opts)
        assert sorted(param.opts) == ["--out", "-o"], name


def test_progress_is_logged_when_not_a_terminal(tmp_path) -> None:
    """Output to a pipe or a file: no bars, no escape sequences, but log lines with counts,
    share and ETA (every 5 % at most), the last with the time taken; stderr stays empty."""
    recipe = RECIPES_DIR / "inference-a4.toml"
    command = [sys.executable, "-m", "qcapprox", "enumerate", str(recipe), "-d", "Rh"]
    out = subprocess.run([*command, "-o", "rh.h5"], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0 and out.stderr == "", out.stderr
    assert "\x1b" not in out.stdout
    lines = [line for line in out.stdout.splitlines() if "enumerate rh.h5: " in line]
    assert 1 < len(lines) <= 21, out.stdout
    pattern = r"enumerate rh\.h5: \d+/91 compositions \(\d+ %\), [\d,]+ configurations, ETA \d+"
    assert all(re.search(pattern, line) for line in lines[:-1]), lines
    assert re.search(r"91/91 compositions \(100 %\), 15,327 configurations, done in", lines[-1])
    assert out.stdout.splitlines()[-1].startswith("rh.h5: 15,327 configurations (Im-3")


def test_warnings_are_shown_once(capsys) -> None:
    """A warning repeated by every structure is shown once (each distinct one), as a log
    line beside the progress lines; the dask workers' ones (sent by their preload) too."""
    from qcapprox.cli.progress import WARNINGS_TOPIC, Board, dask_setup

    with Board() as board:
        warnings.simplefilter("always")  # every call reaches the board (restored on exit)
        step = board.step("work", "items")
        for done in range(1, 6):
            warnings.warn("torch says so", UserWarning, stacklevel=1)
            warnings.warn("something else", RuntimeWarning, stacklevel=1)
            step(done, 5)

        events: list[tuple[str, dict]] = []
        worker = SimpleNamespace(log_event=lambda topic, msg: events.append((topic, msg)))
        with warnings.catch_warnings():
            dask_setup(worker)
            for _ in range(3):
                warnings.warn("from a worker", UserWarning, stacklevel=1)
        assert [(topic, msg["message"]) for topic, msg in events] == [
            (WARNINGS_TOPIC, "from a worker")
        ]
        for _ in range(2):  # two workers send it
            board.warn_once(events[0][1]["category"], events[0][1]["message"], "dask worker")
    out = capsys.readouterr().out
    assert out.count("torch says so") == 1 and out.count("something else") == 1
    assert out.count("from a worker") == 1
    assert "UserWarning: torch says so" in out and "work: 5/5 items (100 %), done in" in out


def test_tui_refuses_a_missing_file_before_the_ui_starts(tmp_path) -> None:
    """`qcapprox tui missing.h5`: one line on stderr, exit code 2, nothing drawn (no escape
    sequence on either stream)."""
    command = [sys.executable, "-m", "qcapprox", "tui", "missing.h5"]
    out = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 2
    assert out.stdout == "" and out.stderr == "error: missing.h5: no such file\n"


@pytest.mark.parametrize("content", [b"not HDF5", None])
def test_tui_refuses_a_foreign_file_without_starting(tmp_path, monkeypatch, capsys, content):
    """A file that is not a results file (not HDF5, or HDF5 of another kind) is refused
    with a line naming it before the app runs; so is a threshold that is not finite."""
    import h5py

    from qcapprox.tui.app import QcapproxApp

    path = tmp_path / "foreign.h5"
    if content is None:
        with h5py.File(path, "w") as handle:
            handle.attrs["format"] = "something else"
    else:
        path.write_bytes(content)

    def never(self: QcapproxApp) -> None:
        raise AssertionError("the app ran")

    monkeypatch.setattr(QcapproxApp, "run", never)
    for args, message in [
        ([str(path)], f"error: {path}: not a "),
        ([str(path), "--threshold", "nan"], "error: Invalid value for '--threshold': nan is"),
    ]:
        with pytest.raises(SystemExit) as exit_:
            main(["tui", *args])
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith(message) and err.count("\n") == 1, err


def test_enumerate_info_export_round_trip(tmp_path) -> None:
    out = tmp_path / "rh.h5"
    recipe = RECIPES_DIR / "inference-a4.toml"
    result = runner.invoke(app, ["enumerate", str(recipe), "--dopant", "Rh", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "15,327 configurations" in result.output
    info = runner.invoke(app, ["info", str(out)])
    assert "15,327 configurations" in info.output and "91 compositions" in info.output
    store = Store(out)
    parent = Parent.load("Rh")
    for row, name in [(17, "x.cif"), (5000, "POSCAR"), (15000, "x.extxyz")]:
        target = tmp_path / name
        result = runner.invoke(app, ["export", str(out), "--row", str(row), "-o", str(target)])
        assert result.exit_code == 0, result.output
        np.testing.assert_array_equal(parent.identify(read(target)), store.occupancy[row])
    config_id = str(int(store.ids[42]))
    target = str(tmp_path / "y.cif")
    result = runner.invoke(app, ["export", str(out), "--id", config_id, "-o", target])
    assert result.exit_code == 0


def test_count_sizes_a_recipe() -> None:
    result = runner.invoke(app, ["count", str(RECIPES_DIR / "training.toml"), "--dopant", "Ir"])
    assert result.exit_code == 0
    assert "1074 compositions (1011 train/validation + 63 test)" in result.output
    assert "1,074 configurations to" in result.output
    assert "training: 1,074 configurations (at most 1 each) in 1,074 compositions" in result.output
    assert "peak memory about" in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["info", "missing.h5"], "no such file"),
        (["count", "missing.toml", "--dopant", "Pt"], "cannot read the recipe"),
        (["export", "missing.h5", "--row", "1", "-o", "x.cif"], "no such file"),
    ],
)
def test_errors_are_clear(args, message) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code != 0
    assert message in str(result.exception)


def test_corpus_builds_labels_and_never_overwrites(tmp_path) -> None:
    from qcapprox.models.allegro.corpus import corpus_structures, read_corpus

    out = tmp_path / "rh.extxyz"
    args = ["corpus", "-o", str(out), "--dopants", "Rh", "--calculator", "labelers:lennard_jones"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    images = read_corpus(out)
    expected = corpus_structures(dopants=("Rh",))
    assert [a.get_chemical_formula() for a in images] == [
        a.get_chemical_formula() for a in expected
    ]
    lj = lennard_jones()
    expected[7].calc = lj
    assert images[7].get_potential_energy() == pytest.approx(expected[7].get_potential_energy())
    before = out.read_bytes()
    again = runner.invoke(app, args)
    assert again.exit_code != 0 and "exists" in str(again.exception)
    assert out.read_bytes() == before
    missing = runner.invoke(app, ["corpus", "-o", str(tmp_path / "os.extxyz"), "--dopants", "Os"])
    assert missing.exit_code != 0 and "qcapprox references --dopant Os" in str(missing.exception)


def test_corpus_option_is_for_pretrained_only(tmp_path) -> None:
    result = runner.invoke(
        app, ["train", "rf", "--dopant", "Pt", "--corpus", str(tmp_path / "c.extxyz")]
    )
    assert result.exit_code != 0 and "--variant pretrained" in str(result.exception)


def test_demo_table_at_limit_24(results_path) -> None:
    """The demo's summary: per dopant, the set sizes below 0 and below the slightly positive
    threshold of the family's labels, and the known phase's prediction and rank at limit
    24, as counted here from the predictions."""
    from rich.console import Console

    from qcapprox.analysis import SLIGHTLY_POSITIVE
    from qcapprox.cli.screen import demo_table
    from qcapprox.results import Results
    from qcapprox.words import RELAXED

    with Results(results_path) as res:
        dopants = res.dopants
        expected = {}
        for dopant in dopants:
            e = res.predictions(dopant, "rf")[-1]
            row = res.known_phase_row(dopant)
            assert row is not None
            expected[dopant] = [
                f"{(e < 0).sum():,}", f"{SLIGHTLY_POSITIVE[RELAXED]:g}",
                f"{(e < SLIGHTLY_POSITIVE[RELAXED]).sum():,}", f"{e[row]:+.3f}",
                f"{int((e < e[row]).sum()) + 1:,}",
            ]  # fmt: skip
    table, any_below = demo_table(results_path, {d: "rf" for d in dopants})
    console = Console(record=True, width=80)
    console.print(table)
    text = console.export_text()
    assert max(map(len, text.splitlines())) <= 80 and "…" not in text  # nothing cut
    cells = {line.split()[0]: line.split()[1:] for line in text.splitlines() if line.strip()}
    for dopant in dopants:
        assert cells[dopant][0] == "rf"
        assert cells[dopant][2:7] == expected[dopant]
    with Results(results_path) as res:
        below = any((res.predictions(d, "rf") < 0).any() for d in dopants)
    assert any_below == below


def test_demo_pipeline_on_one_dopant(tmp_path) -> None:
    """`qcapprox demo`'s pipeline (qcapprox.inference) on Rh and a small recipe: the store
    enumerated, predicted by the shipped RF family at all 13 limits, bundled; each step
    reports its progress."""
    from qcapprox.inference import inference_store, screen_bundled
    from qcapprox.results import Results

    (tmp_path / "small.toml").write_text(
        'name = "small"\nmode = "random"\nseed = 5\nrealizations = 2\n'
        '[orbits.A4]\nspecies = ["Sc", "M", "vacancy"]\nstep = 4\n'
    )
    reports: dict[str, tuple[int, int]] = {}

    def step(name: str):
        return lambda done, total: reports.__setitem__(name, (done, total))

    run = screen_bundled(tmp_path / "runs", step, dopants=("Rh",), recipe=tmp_path / "small.toml")
    store = inference_store(tmp_path / "runs", "Rh")
    assert run.families == {"Rh": "rf"} and run.skipped == ()
    assert run.results == tmp_path / "runs" / "sc60m13-inference.h5"
    with Results(run.results) as res:
        assert res.dopants == ("Rh",)
        predictions = res.predictions("Rh", "rf")
    assert predictions.shape == (13, len(Store(store))) and np.isfinite(predictions).all()
    assert reports == {
        "enumerate sc60rh13-inference-a4.h5": (10, 10),
        "predict rf Sc60Rh13 (first use trains)": (13, 13),
    }


def _structures(path, store: Store, rows_energies) -> None:
    """Write structures of the store's rows with total energies (eV)."""
    images = []
    for row, energy in rows_energies:
        atoms = store.parent.decorate(store.occupancy[row])
        atoms.calc = SinglePointCalculator(atoms, energy=energy)
        images.append(atoms)
    write(path, images)


def test_import_duplicates_replace_and_drop(tmp_path, inference_pt) -> None:
    """Two energies of one configuration: `--duplicates lowest` keeps the lower, `last` the
    later (`--replace` replaces the set on purpose); `labels drop` removes a set, and the
    store takes an import again; the store is never left with a partial or stray file."""
    path = tmp_path / "a4.h5"
    path.write_bytes(inference_pt.read_bytes())
    store = Store(path)
    e0 = -6.5 * len(store.parent.atoms)
    _structures(
        tmp_path / "e.extxyz", store, [(4, e0), (9, e0 - 1.0), (4, e0 - 5.0), (9, e0 - 1.0)]
    )
    args = ["import-energies", str(path), str(tmp_path / "e.extxyz")]

    def energies() -> np.ndarray:
        return Store(path).label_set("relaxed").energy[[4, 9]]

    result = runner.invoke(app, [*args, "--duplicates", "lowest"])
    assert result.exit_code == 0, result.output
    assert "2 configurations labelled" in " ".join(result.output.split())
    np.testing.assert_array_equal(energies(), [e0 - 5.0, e0 - 1.0])
    again = runner.invoke(app, [*args, "--duplicates", "last"])
    assert again.exit_code != 0 and "--replace" in str(again.exception)
    _structures(tmp_path / "e.extxyz", store, [(4, e0 - 5.0), (4, e0 + 2.0)])
    result = runner.invoke(app, [*args, "--duplicates", "last", "--replace"])
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(energies(), [e0 + 2.0, np.nan])
    assert Store(path).label_set("relaxed").usable.sum() == 1
    result = runner.invoke(app, ["labels", "drop", str(path), "--labels", "relaxed"])
    assert result.exit_code == 0 and "relaxed labels removed" in " ".join(result.output.split())
    assert Store(path).labels == {}
    np.testing.assert_array_equal(Store(path).occupancy, store.occupancy)
    result = runner.invoke(app, [*args, "--labels", "single-point", "--duplicates", "lowest"])
    assert result.exit_code == 0, result.output
    assert list(Store(path).labels) == ["single-point"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a4.h5", "e.extxyz"]
