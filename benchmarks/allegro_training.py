"""Allegro training speed: minutes per member and test RMSE, per training set-up.

Every set-up trains the same member (one dopant, variant, limit and label set of the
bundled training set) from scratch into a temporary registry, one after the other on the
same machine, and reads the card: wall time, epochs, seconds per epoch, validation and
test RMSE (eV/atom, energy above the hull, the 63 test structures). Set-ups:

- ``lists-per-epoch``: the `small` preset with nequip's ``NeighborListTransform`` applied to
  every structure at every epoch (the pipeline before `qcapprox.models.allegro.data`);
- ``small``: the `small` preset as shipped now (neighbour lists computed once);
- ``batch16``: `small` with batches of 16 and the learning rate times sqrt(2);
- ``half-budget``: `small` with half the structure passes per stage;
- ``half-epochs``: `half-budget` with half the minimum epochs as well;
- ``r-max-4``: `small` with a 4 A cutoff (about half the neighbour pairs of 5 A);
- ``cosine``: `small` with half the budget and epoch floor, a 4x learning rate (0.02) and a
  cosine schedule (`Preset.lr_schedule`) instead of halving on plateaus;
- ``fast``: the `fast` preset, ``cosine`` for the stages trained from scratch and `small`'s
  plateau schedule, budget and epoch floor for the fine-tuning stages (`Preset.fine_tune`);
- ``compile``: `small` with nequip's train-time ``torch.compile`` (``compile_mode:
  compile``: the same model, compiled by inductor to C++; `allegro_compile.py` times
  its steps alone);
- ``side-by-side``: `small`, two members trained at once with one thread each (the layout
  of a family run next to another one); its minutes are the wall time per member and its
  ``members_per_hour`` the pair's throughput.

Before training, the data pipeline alone is timed: one pass over the training structures
with the neighbour list computed (as every epoch did) and read back precomputed.

    python benchmarks/allegro_training.py --dopant Pt --limit 24 --labels single-point
Writes benchmarks/results/allegro-training-<dopant>-<limit>.json (``-relaxed.json`` on
relaxed labels) and prints a table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from qcapprox.models.allegro import runner
from qcapprox.models.allegro.config import DATASETS, stage_r_max
from qcapprox.models.allegro.data import NEQUIP_DTYPE, StoredDataset, write_dataset
from qcapprox.models.allegro.presets import PRESETS, Preset
from qcapprox.models.allegro.training import train_allegro_member
from qcapprox.models.base import TrainingSet, training_store
from qcapprox.settings import THREADS_ENV

RESULTS = Path(__file__).parent / "results"
SMALL = PRESETS["small"]
# `fast` with its from-scratch schedule in the fine-tuning stages as well
COSINE = dataclasses.replace(PRESETS["fast"], name="small-cosine", fine_tune={})
SETUPS: dict[str, Preset] = {
    "lists-per-epoch": SMALL,
    "small": SMALL,
    "batch16": dataclasses.replace(
        SMALL, name="small-batch16", batch_size=16, lr=SMALL.lr * math.sqrt(2)
    ),
    "half-budget": dataclasses.replace(SMALL, name="small-half-budget", budget=SMALL.budget // 2),
    "half-epochs": dataclasses.replace(
        SMALL, name="small-half-epochs", budget=SMALL.budget // 2, min_epochs=SMALL.min_epochs // 2
    ),
    "r-max-4": dataclasses.replace(SMALL, name="small-r-max-4", r_max=4.0),
    "cosine": COSINE,
    "fast": PRESETS["fast"],
    "compile": dataclasses.replace(SMALL, name="small-compile", extra={"compile_mode": "compile"}),
    "side-by-side": SMALL,
}


def pipeline_seconds(dopant: str, labels: str, n: int = 200) -> dict[str, float]:
    """Seconds per structure of building nequip's input with the neighbour list (what every
    epoch did) and of reading it back stored (`StoredDataset`)."""
    from nequip.data import from_ase
    from nequip.data.transforms import NeighborListTransform

    data = TrainingSet.load(training_store(dopant), labels)
    images = [data.parent.decorate(data.store.occupancy[r]) for r in data.rows(24)[:n]]
    neighbours = NeighborListTransform(r_max=SMALL.r_max)
    start = time.perf_counter()
    for atoms in images:
        neighbours(from_ase(atoms))
    per_epoch = (time.perf_counter() - start) / len(images)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "train.pt"
        write_dataset(path, images, SMALL.r_max)
        dataset = StoredDataset(str(path))
        start = time.perf_counter()
        for k in range(len(dataset)):
            dataset[k]
        stored = (time.perf_counter() - start) / len(images)
    return {"lists_per_epoch_s": per_epoch, "lists_stored_s": stored}


def lists_per_epoch() -> None:
    """Switch the runner back to computing neighbour lists at every epoch."""
    import torch
    from nequip.data import from_ase
    from nequip.utils.dtype import torch_default_dtype

    def write(path: Path, images, r_max: float) -> None:
        with torch_default_dtype(NEQUIP_DTYPE):
            torch.save([from_ase(atoms) for atoms in images], path)

    stage_config = runner.stage_config

    def config(preset: Preset, stage_dir: Path, type_names, model: dict, *args) -> dict:
        out = stage_config(preset, stage_dir, type_names, model, *args)
        lists = {"_target_": "nequip.data.transforms.NeighborListTransform",
                 "r_max": stage_r_max(preset, model)}  # fmt: skip
        for split in DATASETS:
            out["data"][f"{split}_dataset"]["transforms"].insert(0, lists)
        return out

    runner.write_dataset, runner.stage_config = write, config


def train(setup: str, args: argparse.Namespace) -> dict:
    """Train one member with a set-up in a fresh work directory and registry (two at once,
    one thread each, for ``side-by-side``)."""
    if setup == "side-by-side":
        os.environ[THREADS_ENV] = "1"
        start = time.perf_counter()
        with ThreadPoolExecutor(2) as pool:
            pair = list(pool.map(lambda _: train("small", args), range(2)))
        wall = time.perf_counter() - start
        del os.environ[THREADS_ENV]
        row = {key: sum(r[key] for r in pair) / 2 for key in pair[0] if key != "setup"}
        return {**row, "setup": setup, "members_per_hour": 2 * 3600 / wall}
    if setup == "lists-per-epoch":
        lists_per_epoch()
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        card = train_allegro_member(args.dopant, args.limit, args.variant, SETUPS[setup],
                                    Path(tmp) / "work", registry=Path(tmp) / "registry",
                                    labels=args.labels, keep_workdir=False)  # fmt: skip
        wall = time.perf_counter() - start
    epochs = sum(stage["epochs"] for stage in card["stages"])
    fitting = sum(stage["seconds"] for stage in card["stages"])
    return {"setup": setup, "minutes": wall / 60, "epochs": epochs,
            "seconds_per_epoch": fitting / epochs, "validation_rmse": card["validation_rmse"],
            "test_rmse": card["test_rmse"], "n_train": card["sizes"]["train"],
            "members_per_hour": 60 / (wall / 60)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dopant", default="Pt")
    parser.add_argument("--limit", type=int, default=24)
    parser.add_argument("--variant", default="ordinary")
    parser.add_argument("--labels", default="single-point")
    parser.add_argument("--setups", default=",".join(SETUPS))
    args = parser.parse_args()
    pipeline = pipeline_seconds(args.dopant, args.labels)
    print(f"data pipeline per structure: {1e3 * pipeline['lists_per_epoch_s']:.2f} ms with "
          f"the neighbour list, {1e3 * pipeline['lists_stored_s']:.2f} ms stored")  # fmt: skip
    suffix = "-relaxed" if args.labels == "relaxed" else ""
    out = RESULTS / f"allegro-training-{args.dopant}-{args.limit}{suffix}.json"
    setups = args.setups.split(",")
    # rows of other set-ups or variants from an earlier run are kept
    rows = [r for r in json.loads(out.read_text())["rows"]
            if r["setup"] not in setups or r.get("variant", "ordinary") != args.variant] if (
        out.exists()) else []  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    # the per-epoch set-up patches the runner for good: it runs last
    for setup in sorted(setups, key=lambda s: s == "lists-per-epoch"):
        rows.append({**train(setup, args), "variant": args.variant})
        out.write_text(json.dumps({"args": vars(args), "pipeline": pipeline, "rows": rows}))
        print(json.dumps(rows[-1]))
    print("| set-up | variant | minutes | members/h | epochs | s/epoch | validation RMSE | "
          "test RMSE |")  # fmt: skip
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        rate = f"{r['members_per_hour']:.1f}" if "members_per_hour" in r else "-"
        print(f"| {r['setup']} | {r.get('variant', 'ordinary')} | {r['minutes']:.1f} | "
              f"{rate} | {r['epochs']:.0f} | "
              f"{r['seconds_per_epoch']:.1f} | {r['validation_rmse']:.4f} | "
              f"{r['test_rmse']:.4f} |")  # fmt: skip


if __name__ == "__main__":
    main()
