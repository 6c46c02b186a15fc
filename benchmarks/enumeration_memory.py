"""Bounded memory of `qcapprox enumerate`: peak resident set against the size of the set.

Runs `qcapprox enumerate --force` in a fresh process on recipes of growing size, all of
one family (Sc or vacancy on A4 and on A5, at most k vacancies on A5; k = 7 is 46,087,734
configurations in 104 compositions, the largest composition 6,692,784 of them), and reads
each process's own peak resident set (`os.wait4`). Streaming the store in chunks keeps the
peak independent of the number of configurations; the issue's bound is 1 GB for a
41M-configuration recipe. Also prints the wall time, the rate and the store size (the
estimates of `qcapprox.enumeration.run` come from here). Needs about 3.5 GB of free disk
for the journal of the largest run.

Usage: .venv/bin/python benchmarks/enumeration_memory.py [--max-defects 3 5 6 7]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from qcapprox.enumeration import Enumerator
from qcapprox.enumeration.recipe import Recipe
from qcapprox.enumeration.run import Plan
from qcapprox.parent import Parent

RECIPE = """name = "a5-vacancies-{k}"
mode = "all"
[orbits.A4]
species = ["Sc", "vacancy"]
[orbits.A5]
species = ["Sc", "vacancy"]
max_defects = {k}
"""


def run(recipe: Path, out: Path) -> tuple[float, float]:
    """(seconds, peak RSS in MiB) of one `qcapprox enumerate --force` process."""
    command = [str(Path(sys.executable).parent / "qcapprox"), "enumerate", str(recipe)]
    command += ["--dopant", "Pt", "--out", str(out), "--force"]
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed")
    return seconds, usage.ru_maxrss / 1024


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--max-defects", type=int, nargs="+", default=[3, 5, 6, 7])
    opts = args.parse_args()
    parent = Parent.load("Pt")
    enumerator = Enumerator.from_parent(parent)
    head = f"{'k':>2} {'configurations':>15} {'largest comp.':>14} {'seconds':>8}"
    print(head + f" {'config/s':>10} {'peak RSS MiB':>13} {'store MiB':>10}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for k in opts.max_defects:
            recipe = Path(tmp) / f"a5-vacancies-{k}.toml"
            recipe.write_text(RECIPE.format(k=k))
            plan = Plan.of(Recipe.load(recipe), parent, enumerator)
            out = Path(tmp) / f"k{k}.h5"
            seconds, peak = run(recipe, out)
            n = plan.configurations
            row = f"{k:>2} {n:>15,} {max(plan.rows):>14,} {seconds:>8.1f} {n / seconds:>10,.0f}"
            print(f"{row} {peak:>13.0f} {out.stat().st_size / 2**20:>10.1f}", flush=True)
            out.unlink()


if __name__ == "__main__":
    main()
