"""Allegro training step, eager against nequip's train-time ``torch.compile``.

The `small` preset's AllegroModel is built as ``nequip-train`` builds it, with
``compile_mode`` eager or compile (nequip's ``CompileGraphModel``: make_fx, then inductor,
which emits C++ for the CPU), and trained with Adam on batches of 8 decorated training
structures (per-atom energy MSE). Reported: the first step (the compile) and the median
seconds per later step over three passes of `--batches` batches.

    python benchmarks/allegro_compile.py [--dopant Pt] [--threads 1] [--batches 8]
Writes benchmarks/results/allegro-compile-<dopant>.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from ase.calculators.singlepoint import SinglePointCalculator
from hydra.utils import instantiate
from nequip.data import AtomicDataDict
from nequip.data.transforms import ChemicalSpeciesToAtomTypeMapper
from nequip.utils.global_state import set_global_state

from qcapprox.models.allegro.config import scratch_model
from qcapprox.models.allegro.data import StoredDataset, write_dataset
from qcapprox.models.allegro.presets import PRESETS
from qcapprox.models.base import TrainingSet, training_store
from qcapprox.words import SINGLE_POINT

RESULTS = Path(__file__).parent / "results"
BATCH = 8


def batches(dopant: str, n_batches: int) -> list[dict]:
    """Batches of labelled training structures with their neighbour lists (as stored for
    training)."""
    data = TrainingSet.load(training_store(dopant), SINGLE_POINT)
    rows = np.random.default_rng(0).choice(len(data.energy), BATCH * n_batches, replace=False)
    images = []
    for row in rows:
        atoms = data.parent.decorate(data.store.occupancy[row])
        atoms.calc = SinglePointCalculator(atoms, energy=float(data.energy[row]))
        images.append(atoms)
    types = [data.parent.host, dopant]
    mapper = ChemicalSpeciesToAtomTypeMapper(
        model_type_names=types, chemical_species_to_atom_type_map={t: t for t in types}
    )
    with tempfile.TemporaryDirectory() as tmp:
        write_dataset(Path(tmp) / "train.pt", images, PRESETS["small"].r_max)
        dataset = StoredDataset(str(Path(tmp) / "train.pt"), transforms=[mapper])
    return [
        AtomicDataDict.batched_from_list([dataset[i] for i in range(k, k + BATCH)])
        for k in range(0, len(dataset), BATCH)
    ]


def step_seconds(mode: str, dopant: str, data: list[dict]) -> dict:
    """Seconds of the first training step and median seconds of the later ones."""
    energy, atoms = AtomicDataDict.TOTAL_ENERGY_KEY, AtomicDataDict.NUM_NODES_KEY
    shift = float(np.mean([float(b[energy].sum() / b[atoms].sum()) for b in data]))
    model = instantiate(
        {**scratch_model(PRESETS["small"], ["Sc", dopant], {"Sc": shift, dopant: shift}, 0.05,
                         forces=False),
         "avg_num_neighbors": 40.0, "compile_mode": mode},
        _recursive_=False, _convert_="all",
    )  # fmt: skip
    optimizer = torch.optim.Adam(model.parameters(), lr=PRESETS["small"].lr)

    def step(batch: dict) -> None:
        out = model(batch.copy())
        n = batch[atoms]
        loss = torch.mean(((out[energy] - batch[energy]).squeeze(-1) / n) ** 2)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    start = time.perf_counter()
    step(data[0])
    first = time.perf_counter() - start
    times = []
    for _ in range(3):
        for batch in data:
            start = time.perf_counter()
            step(batch)
            times.append(time.perf_counter() - start)
    return {"mode": mode, "first_step_s": first, "step_s": float(np.median(times))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dopant", default="Pt")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batches", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    set_global_state(allow_tf32=False)
    data = batches(args.dopant, args.batches)
    rows = [step_seconds(mode, args.dopant, data) for mode in ("eager", "compile")]
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"allegro-compile-{args.dopant}.json"
    out.write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1))
    print("| mode | first step s | s per step | speed-up |")
    print("| --- | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['mode']} | {r['first_step_s']:.2f} | {r['step_s']:.4f} | "
              f"{rows[0]['step_s'] / r['step_s']:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
