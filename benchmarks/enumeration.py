"""Enumeration speed of qcapprox against SHRY 1.1.8 on the same compositions.

Prints configurations per second for the A4 inference set (all 91 compositions, Sc/M/vacancy
on 12 sites) and for single A5 compositions n M + n vacancies (n = 1..5; 5 + 5 is 4.9e8
labelled decorations), with SHRY's count and enumeration time for each. Both sides run
without writing: qcapprox produces the canonical occupancies and multiplicities in memory,
SHRY runs with --no-write. SHRY lives in its own virtualenv (see shry_runner.py), created
on first use (about 50 s).

Usage: .venv/bin/python benchmarks/enumeration.py [--no-shry] [--a4-shry]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

from ase.io import write

from qcapprox.enumeration import Enumerator
from qcapprox.enumeration.recipe import Recipe
from qcapprox.parent import Parent
from qcapprox.paths import RECIPES_DIR

sys.path.insert(0, str(Path(__file__).parent))
from shry_runner import run_shry


def ours(enumerator: Enumerator, compositions: list[tuple[int, ...]]) -> tuple[int, float]:
    """(configurations, seconds) of enumerating the compositions in memory."""
    start = time.perf_counter()
    n = 0
    for comp in compositions:
        for block in enumerator.enumerate(comp):
            n += len(block.occupancy)
    return n, time.perf_counter() - start


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--no-shry", action="store_true", help="qcapprox only")
    args.add_argument("--a4-shry", action="store_true", help="also SHRY on the 91 A4 sets")
    opts = args.parse_args()
    parent = Parent.load("Pt")
    enumerator = Enumerator.from_parent(parent)
    with tempfile.TemporaryDirectory() as tmp:
        cif = Path(tmp) / "sc60pt13.cif"
        write(cif, parent.atoms)
        tasks = Recipe.load(RECIPES_DIR / "inference-a4.toml").tasks(parent)
        comps = [t.composition for t in tasks]
        n, sec = ours(enumerator, comps)
        line = f"A4 inference set (91 compositions): {n:,} configurations in {sec:.3f} s"
        print(f"{line} = {n / sec:,.0f} configurations/s (qcapprox)", flush=True)
        if opts.a4_shry and not opts.no_shry:
            total, shry_sec = 0, 0.0
            for v, m, _, _ in comps:
                count, t = run_shry(cif, a5_m=0, a5_vac=0, a4_m=m, a4_vac=v)
                total, shry_sec = total + count, shry_sec + t
            print(f"  SHRY: {total:,} in {shry_sec:.3f} s (enumeration time summed over 91 runs)")
        print()
        head = f"{'A5':>7} {'labelled':>13} {'distinct':>12} {'qcapprox s':>11} {'config/s':>12}"
        print(head + ("" if opts.no_shry else f" {'SHRY':>12} {'SHRY s':>8} {'speed-up':>9}"))
        for k in range(1, 6):
            comp = (0, 0, k, k)
            n, sec = ours(enumerator, [comp])
            row = f"{k}M+{k}V".rjust(7) + f" {enumerator.labelled(comp):>13,} {n:>12,}"
            row += f" {sec:>11.3f} {n / sec:>12,.0f}"
            if not opts.no_shry:
                count, shry_sec = run_shry(cif, a5_m=k, a5_vac=k)
                assert count == n, f"SHRY counts {count}, qcapprox {n}"
                row += f" {count:>12,} {shry_sec:>8.2f} {shry_sec / sec:>8.1f}x"
            print(row, flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nqcapprox peak memory: {peak:.0f} MB")


if __name__ == "__main__":
    main()
