"""Bounded memory of `qcapprox predict`: peak resident set against the size of the store.

Enumerates a store of every A4 decoration (Sc, M, vacancy) with at most k vacancies on A5
(k = 2: 3,505,779 configurations, the store of issue 37) and predicts it with the bundled
rf family of Pt in a fresh process, reading that process's own peak resident set
(`os.wait4`). The member is trained into a private model cache first, on the 15,327-row
A4 inference set, so the measured run only reads it. Prediction streams the store in
chunks (`qcapprox.prediction.PREDICT_ROWS`), so the peak is one member and one chunk plus
8 bytes a row for the id check, whatever the size of the store; the issue's bound is
1 GB for the 3.5M-row store. Prints the rows, the wall time, the rate per limit and the
peak (the estimates of `qcapprox.prediction` come from here).

Usage: .venv/bin/python benchmarks/predict_memory.py [--max-defects 0 2] [--limits 24]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py

from qcapprox.paths import RECIPES_DIR

RECIPE = """name = "a4-all-a5-vacancies-{k}"
mode = "all"
[orbits.A4]
species = ["Sc", "M", "vacancy"]
[orbits.A5]
species = ["Sc", "vacancy"]
max_defects = {k}
"""
QCAPPROX = str(Path(sys.executable).parent / "qcapprox")


def run(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(seconds, peak RSS in MiB) of one qcapprox process."""
    start = time.perf_counter()
    proc = subprocess.Popen([QCAPPROX, *command], stdout=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"qcapprox {' '.join(command)} failed")
    return seconds, usage.ru_maxrss / 1024


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--max-defects", type=int, nargs="+", default=[0, 2])
    args.add_argument("--limits", default="24", help="'all' or a comma list of limits")
    args.add_argument("--labels", default="relaxed")
    opts = args.parse_args()
    n_limits = 13 if opts.limits == "all" else len(opts.limits.split(","))
    predict = ["--backbone", "rf", "--limits", opts.limits, "--labels", opts.labels]
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "QCAPPROX_CACHE": str(Path(tmp) / "cache")}
        warm = Path(tmp) / "warm.h5"
        run(["enumerate", str(RECIPES_DIR / "inference-a4.toml"), "-d", "Pt", "-o", str(warm)], env)
        run(["predict", str(warm), *predict], env)  # trains the members into the cache
        print(f"{'k':>2} {'configurations':>15} {'seconds':>8} {'rows/s/limit':>13} "
              f"{'peak RSS MiB':>13}", flush=True)  # fmt: skip
        for k in opts.max_defects:
            recipe = Path(tmp) / f"a5-vacancies-{k}.toml"
            recipe.write_text(RECIPE.format(k=k))
            store = Path(tmp) / f"k{k}.h5"
            run(["enumerate", str(recipe), "-d", "Pt", "-o", str(store), "--force"], env)
            seconds, peak = run(["predict", str(store), *predict, "--force"], env)
            with h5py.File(store) as handle:
                n = len(handle["configs/id"])
            rate = n * n_limits / seconds
            print(f"{k:>2} {n:>15,} {seconds:>8.1f} {rate:>13,.0f} {peak:>13.0f}", flush=True)
            store.unlink()


if __name__ == "__main__":
    main()
