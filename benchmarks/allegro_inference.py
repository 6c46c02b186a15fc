"""Allegro speed: batch prediction of a store (structures/s per model), one
`AllegroHullCalculator` call, and the training time per member from the model cards.

Batch prediction decorates the parent's neighbour list once and masks it per
configuration (`qcapprox.models.allegro.inference.ParentGraph`); the calculator identifies the
configuration of its atoms and makes one such call.

Usage: .venv/bin/python benchmarks/allegro_inference.py [--dopant Pt] [--variant ordinary]
       [--limit 24] [--n 3000] [--threads 2]
(The member must be registered: calculators/[single-point/]allegro*/<dopant>/limit-XX/.)
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from qcapprox.calculators import AllegroHullCalculator
from qcapprox.enumeration.recipe import Recipe
from qcapprox.enumeration.run import run_recipe
from qcapprox.models.allegro.inference import load_allegro_member
from qcapprox.models.base import member_path
from qcapprox.parent import Parent
from qcapprox.paths import RECIPES_DIR, REGISTRY_DIR
from qcapprox.store import Store
from qcapprox.words import ALLEGRO_BACKBONES


def training_minutes(dopant: str, labels: str) -> None:
    """Median and total `fit_seconds` of every registered family of a dopant."""
    for backbone in ALLEGRO_BACKBONES.values():
        family = REGISTRY_DIR / member_path(backbone, dopant, 0, labels).parent
        cards = sorted(family.glob("limit-*/card.json"))
        if not cards:
            continue
        seconds = np.array([json.loads(c.read_text())["fit_seconds"] for c in cards])
        print(
            f"training {backbone} {dopant}: {len(cards)} members, median "
            f"{np.median(seconds) / 60:.1f} min, max {seconds.max() / 60:.1f} min, "
            f"sum {seconds.sum() / 60:.0f} min"
        )


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--dopant", default="Pt")
    args.add_argument("--variant", default="ordinary")
    args.add_argument("--limit", type=int, default=24)
    args.add_argument("--n", type=int, default=3000, help="configurations to predict")
    args.add_argument("--threads", type=int, default=2)
    args.add_argument("--labels", default="single-point", help="label set of the member")
    opts = args.parse_args()
    torch.set_num_threads(opts.threads)
    parent = Parent.load(opts.dopant)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "a4.h5"
        run_recipe(Recipe.load(RECIPES_DIR / "inference-a4.toml"), parent, path)
        occupancy = Store(path).occupancy
    rng = np.random.default_rng(0)
    occ = occupancy[rng.choice(len(occupancy), min(opts.n, len(occupancy)), replace=False)]
    member = load_allegro_member(opts.dopant, opts.limit, opts.variant, labels=opts.labels)
    member.predict(occ[:32], parent)  # load and warm up
    name = ALLEGRO_BACKBONES[opts.variant]
    print(f"{name} {opts.dopant} limit {opts.limit}, {opts.threads} threads")
    for batch_size in (8, 32, 64):
        start = time.perf_counter()
        member.energy_model.energies(parent, occ, batch_size=batch_size)
        sec = time.perf_counter() - start
        print(f"batch prediction, batch {batch_size}: {len(occ) / sec:,.0f} structures/s "
              f"({len(occ):,} in {sec:.1f} s)")  # fmt: skip

    calc = AllegroHullCalculator(opts.dopant, opts.limit, opts.variant, labels=opts.labels)
    times = []
    for k in range(21):
        atoms = parent.decorate(occ[k])
        atoms.calc = calc
        start = time.perf_counter()
        calc.get_property("energy", atoms)  # identify + one batched model call
        times.append(time.perf_counter() - start)
    print(
        f"one AllegroHullCalculator call (energy): {1e3 * np.median(times[1:]):.1f} ms "
        "(median of 20)"
    )
    training_minutes(opts.dopant, opts.labels)


if __name__ == "__main__":
    main()
