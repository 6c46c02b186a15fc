"""Prediction speed: descriptors per second, an RF family's load (from the cache, then again
in the same process), the family on a whole A4 inference set, and one `atoms.calc` call of
ForestHullCalculator.

Usage: .venv/bin/python benchmarks/prediction.py [--dopant Pt]
(The family must be trainable: data/training/sc60<m>13.h5 labelled.)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from qcapprox.calculators import ForestHullCalculator
from qcapprox.descriptors import Descriptors
from qcapprox.enumeration.recipe import Recipe
from qcapprox.enumeration.run import run_recipe
from qcapprox.models.forest import load_member
from qcapprox.parent import Parent
from qcapprox.paths import RECIPES_DIR
from qcapprox.store import Store
from qcapprox.words import LIMITS


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--dopant", default="Pt")
    opts = args.parse_args()
    parent = Parent.load(opts.dopant)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "a4.h5"
        run_recipe(Recipe.load(RECIPES_DIR / "inference-a4.toml"), parent, path)
        occupancy = Store(path).occupancy
    descriptors = Descriptors.from_parent(parent)
    rng = np.random.default_rng(0)
    many = rng.integers(0, 3, size=(200_000, 36)).astype(np.uint8)
    start = time.perf_counter()
    descriptors.transform(many)
    sec = time.perf_counter() - start
    print(f"descriptors: {len(many) / sec:,.0f} configurations/s ({len(many):,} in {sec:.2f} s)")

    start = time.perf_counter()
    members = [load_member(opts.dopant, limit) for limit in LIMITS]
    print(f"RF family load (13 limits, cache or training): {time.perf_counter() - start:.1f} s")
    start = time.perf_counter()
    for limit in LIMITS:
        load_member(opts.dopant, limit)
    print(
        f"RF family loaded again in this process (hashes checked, no file parsed): "
        f"{time.perf_counter() - start:.1f} s"
    )
    start = time.perf_counter()
    for member in members:
        member.predict(occupancy)
    sec = time.perf_counter() - start
    print(
        f"RF family (13 limits x 5 forests) on the A4 inference set ({len(occupancy):,}): "
        f"{sec:.2f} s"
    )

    calc = ForestHullCalculator(dopant=opts.dopant, limit=24)
    atoms = parent.decorate(occupancy[len(occupancy) // 2])
    times = []
    for k in range(20):
        atoms.rattle(1e-3, seed=k)  # a new state: no cached result
        atoms.calc = calc
        start = time.perf_counter()
        atoms.get_potential_energy()
        times.append(time.perf_counter() - start)
    print(
        f"one atoms.calc call (identify + descriptors + 5 forests): "
        f"{1e3 * np.median(times):.1f} ms (median of 20)"
    )


if __name__ == "__main__":
    main()
