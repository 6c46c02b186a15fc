"""Report speed: `write_report` on the bundled results (qcapprox.paths.BUNDLED_RESULTS),
wall-clock and CPU time of this process, the number of files and of progress steps.

The CPU time is the fairer figure on a shared machine: on a loaded one (e.g. a background
relaxation using every core) the wall-clock time grows, the CPU time much less.

Usage: .venv/bin/python benchmarks/report.py [RESULTS.h5] [--threshold 0.0 0.02]
(default: the bundled results at 0 eV/atom, the CLI's default, where every bundled set
is empty, and at 0.02 eV/atom, the relaxed "slightly positive" threshold, where they are
not). Target: under 60 s.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from qcapprox.paths import BUNDLED_RESULTS
from qcapprox.report import write_report


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("results", nargs="?", type=Path, default=BUNDLED_RESULTS)
    args.add_argument("--threshold", type=float, nargs="+", default=[0.0, 0.02])
    opts = args.parse_args()
    print(f"{opts.results.name}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    for threshold in opts.threshold:
        steps: list[int] = []
        with tempfile.TemporaryDirectory() as tmp:
            wall, cpu = time.perf_counter(), time.process_time()
            paths = write_report(
                opts.results,
                Path(tmp),
                threshold=threshold,
                progress=lambda done, total, steps=steps: steps.append(done),
            )
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        print(
            f"threshold {threshold:+.3f} eV/atom: {wall:.1f} s wall, {cpu:.1f} s CPU, "
            f"{len(paths)} files, {len(steps)} progress steps"
        )
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
