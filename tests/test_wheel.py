"""The wheel carries its data: built from the tracked files, installed into a fresh
environment, it runs from a directory outside the checkout (bundled parents, recipes,
references, training sets and model cards read through importlib.resources)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from qcapprox import __version__
from qcapprox.paths import REPO_ROOT

SCRIPT = """
from qcapprox.calculators import ForestHullCalculator
from qcapprox.parent import Parent
from qcapprox.paths import DATA_DIR, RECIPES_DIR
import qcapprox, sys

assert "site-packages" in qcapprox.__file__ and str(DATA_DIR).startswith(sys.prefix), DATA_DIR
parent = Parent.load("Pt")
atoms = parent.atoms.copy()  # the ideal Sc60Pt13
atoms.calc = ForestHullCalculator(dopant="Pt", limit=0, labels="single-point")
print(parent.spacegroup, RECIPES_DIR, atoms.calc.get_property("e_above_hull", atoms))
"""


def test_wheel_installs_and_runs_outside_the_checkout(tmp_path) -> None:
    tracked = (
        subprocess.run(["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True)
        .stdout.decode()
        .split("\0")
    )
    source = tmp_path / "source"
    for name in filter(None, tracked):
        if (REPO_ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / name, source / name)
    wheels = tmp_path / "wheels"
    subprocess.run(  # stored, not deflated: the same files, half the time
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation",
         "-q", "-w", str(wheels), "-C--build-option=--compression=stored"],
        check=True, capture_output=True,
    )  # fmt: skip
    (wheel,) = wheels.glob("qcapprox-*.whl")

    # a fresh environment: its own site-packages, the dependencies of this one on its path
    env_dir = tmp_path / "fresh"
    subprocess.run([sys._base_executable, "-m", "venv", "--without-pip", str(env_dir)], check=True)
    python = env_dir / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    Path(purelib, "deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    subprocess.run(
        [python, "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)],
        check=True, capture_output=True,
    )  # fmt: skip

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = {**os.environ, "QCAPPROX_CACHE": str(tmp_path / "cache"),
           "QCAPPROX_DATA": str(tmp_path / "user")}  # fmt: skip
    env.pop("PYTHONPATH", None)

    def run(*args: str) -> str:
        done = subprocess.run(args, cwd=outside, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return done.stdout

    qcapprox = str(env_dir / "bin" / "qcapprox")
    assert run(qcapprox, "--version").strip() == f"qcapprox {__version__}"
    recipes = Path(purelib) / "qcapprox" / "_bundled" / "enumeration"
    counted = run(qcapprox, "count", str(recipes / "training.toml"), "-d", "Pt")
    assert "training, Sc60Pt13 (Im-3 (204))" in counted
    out = run(str(python), "-c", SCRIPT)
    assert out.startswith("Im-3 (204)") and str(recipes) in out
    assert not list(outside.iterdir())  # nothing written where it ran
