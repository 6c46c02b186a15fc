"""Running nequip: training stages (``nequip-train``) and packaging (``nequip-package``).

A member (or the corpus model) is trained as a list of `Stage`s run in order by one loop,
`run_stages`, in a work directory: each stage writes its training and validation
structures with their neighbour lists (`write_dataset`) and its config
(`qcapprox.models.allegro.config`) in its own directory, and runs ``nequip-train`` there
in a subprocess. A stage with ``done.json`` is finished; an interrupted one resumes from
its ``last.ckpt``. The best checkpoint of the last stage is then packaged (`package`)
into the ``.nequip.zip`` file that is registered (`train_and_package`: once per work
directory). A work directory belongs to one identity (training data and settings,
`prepare_workdir`): another identity starts afresh.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms

from qcapprox.errors import AllegroError
from qcapprox.models.allegro.config import DATASETS, MONITOR, stage_config, stage_r_max
from qcapprox.models.allegro.data import write_dataset
from qcapprox.models.allegro.presets import Preset
from qcapprox.settings import torch_threads


@dataclass(frozen=True)
class Stage:
    """One nequip-train run of a training: its rows (indices of the structures it is given),
    the model section of its config and its learning rate.

    `name` is the stage's name in the card, `directory` its run directory in the work
    directory (the name by default), `notes` extra fields of its record in the card;
    a `fine_tune` stage runs with the preset's fine-tuning fields (`Preset.fine_tuning`).
    """

    name: str
    train: np.ndarray
    validation: np.ndarray
    model: dict
    lr: float
    budget: int | None = None
    fine_tune: bool = False
    directory: str = ""
    notes: dict = field(default_factory=dict)

    @property
    def dirname(self) -> str:
        return self.directory or self.name


def prepare_workdir(workdir: Path, identity: dict) -> Path:
    """A work directory for one identity (what is trained, on which data, with which
    settings): kept to resume if it holds that identity, emptied otherwise."""
    marker = workdir / "digest.json"
    if workdir.exists() and (not marker.exists() or json.loads(marker.read_text()) != identity):
        shutil.rmtree(workdir)  # another data set or settings: start afresh
    workdir.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps(identity))
    return workdir


def run_stages(
    workdir: Path,
    stages: Sequence[Stage],
    images: Callable[[np.ndarray], list[Atoms]],
    preset: Preset,
    type_names: Sequence[str],
    forces: bool,
    packaged: bool = False,
) -> tuple[Path, list[dict]]:
    """Run the stages in order (finished ones are skipped, an interrupted one resumes);
    `images(rows)` gives the labelled structures of rows. Returns the best checkpoint of
    the last stage and the records of all. The datasets of a finished stage are written
    again for packaging, unless the member is `packaged` already."""
    records = []
    for stage in stages:
        if len(stage.train) == 0 or len(stage.validation) == 0:
            raise AllegroError(
                f"stage {stage.dirname}: {len(stage.train)} training and "
                f"{len(stage.validation)} validation rows; both must be non-empty"
            )
        stage_dir = workdir / stage.dirname
        done = stage_dir / "done.json"
        if packaged and done.exists():
            record = json.loads(done.read_text())
        else:
            stage_dir.mkdir(parents=True, exist_ok=True)
            r_max = stage_r_max(preset, stage.model)
            for split, rows in (("train", stage.train), ("val", stage.validation)):
                if not (stage_dir / DATASETS[split]).exists():
                    write_dataset(stage_dir / DATASETS[split], images(rows), r_max)
            settings = preset.fine_tuning() if stage.fine_tune else preset
            config = stage_config(settings, stage_dir, type_names, stage.model,
                                  len(stage.train), forces, stage.lr, stage.budget)  # fmt: skip
            record = run_stage(stage_dir, config)
        records.append({**record, "name": stage.name, "train": len(stage.train),
                        "validation": len(stage.validation), **stage.notes})  # fmt: skip
    return workdir / stages[-1].dirname / "best.ckpt", records


def _nequip_env() -> dict[str, str]:
    """Environment of the nequip subprocesses: torch's intra-op threads (OMP_NUM_THREADS)
    from `qcapprox.settings.torch_threads`, when set."""
    env = dict(os.environ)
    env.setdefault("HYDRA_FULL_ERROR", "1")
    env.setdefault("PYTHONWARNINGS", "ignore")
    threads = torch_threads()
    if threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    return env


def _run(command: list[str], cwd: Path, log: Path) -> None:
    """Run a nequip command, output to a log file; raise with its tail on failure."""
    with open(log, "a") as handle:
        handle.write(f"\n$ {' '.join(command)}\n")
        handle.flush()
        result = subprocess.run(
            command, cwd=cwd, stdout=handle, stderr=subprocess.STDOUT, env=_nequip_env()
        )
    if result.returncode != 0:
        tail = "\n".join(log.read_text().splitlines()[-25:])
        raise AllegroError(f"`{' '.join(command[:3])} ...` failed in {cwd} (log {log}):\n{tail}")


def _script(name: str) -> list[str]:
    """A nequip console script run with this interpreter."""
    return [sys.executable, "-m", f"nequip.scripts.{name}"]


def run_stage(stage_dir: Path, config: dict) -> dict:
    """Run nequip-train on a stage directory (resuming from last.ckpt); returns its record.

    The record (also written to ``done.json``) holds the epochs run, the best epoch and
    validation RMSE seen by nequip, and the wall time.
    """
    import yaml

    done = stage_dir / "done.json"
    if done.exists():
        return json.loads(done.read_text())
    (stage_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    command = [*_script("train"), "-cp", str(stage_dir), "-cn", "config",
               f"hydra.run.dir={stage_dir / 'hydra'}", "hydra.job.chdir=false"]  # fmt: skip
    last = stage_dir / "last.ckpt"
    if last.exists() and not (stage_dir / "best.ckpt").exists():
        last.unlink()  # killed before the first validation: start again
    if last.exists():
        command.append(f"+ckpt_path={last}")
        logged = stage_dir / "log" / "version_0" / "metrics.csv"
        if logged.exists():  # Lightning starts a new CSV on resuming: keep the earlier epochs
            parts = len(list(logged.parent.glob("metrics-part-*.csv")))
            logged.replace(logged.with_name(f"metrics-part-{parts:03d}.csv"))
    start = time.perf_counter()
    _run(command, stage_dir, stage_dir / "train.log")
    seconds = time.perf_counter() - start  # of this run (a resumed stage: after resuming)
    history = _read_history(stage_dir / "log" / "version_0")
    best = int(np.argmin(history)) + 1 if history else 0
    max_epochs = config["trainer"]["max_epochs"]
    patience = next(
        c["patience"] for c in config["trainer"]["callbacks"] if "EarlyStopping" in c["_target_"]
    )
    if len(history) < max_epochs and len(history) - best < patience:
        # Lightning exits cleanly on SIGTERM: an interrupted run is not a finished one
        raise AllegroError(
            f"{stage_dir}: training stopped at epoch {len(history)} of {max_epochs} before "
            "early stopping (interrupted?); run again to resume from last.ckpt"
        )
    record = {
        "data_statistics": _data_statistics(stage_dir / "train.log"),
        "epochs": len(history),
        "best_epoch": best,
        "best_validation_rmse": float(np.min(history)) if history else math.nan,
        "max_epochs": max_epochs,
        "seconds": round(seconds, 1),
    }
    done.write_text(json.dumps(record, indent=1))
    return record


def _data_statistics(log: Path) -> dict[str, float]:
    """The data statistics nequip computed for the model (e.g. num_neighbors_mean)."""
    stats: dict[str, float] = {}
    if log.exists():
        for match in re.finditer(
            r"\] - \[rank: 0\] (\w+): ([-+.\deE]+)\s*$", log.read_text(), re.M
        ):
            stats[match[1]] = float(match[2])
    return stats


def _read_history(log_dir: Path) -> list[float]:
    """Validation per-atom energy RMSE per epoch from Lightning's CSV logs (all parts)."""
    values: dict[int, float] = {}
    for path in [*sorted(log_dir.glob("metrics-part-*.csv")), log_dir / "metrics.csv"]:
        if not path.exists():
            continue
        with open(path) as handle:
            for row in csv.DictReader(handle):
                value = row.get(MONITOR, "")
                if value not in ("", None):
                    values[int(row["epoch"])] = float(value)
    return [values[k] for k in sorted(values)]


def train_and_package(
    workdir: Path,
    stages: Sequence[Stage],
    images: Callable[[np.ndarray], list[Atoms]],
    preset: Preset,
    type_names: Sequence[str],
    forces: bool,
    output: Path,
) -> tuple[Path, list[dict]]:
    """`run_stages`, then `package` the best checkpoint of the last stage into `output`
    in the work directory; returns it and the stages' records. A work directory packaged
    before is only read (a finished member published to another registry is neither
    trained nor packaged again)."""
    packaged = output.exists()  # written atomically, after every stage finished
    best, records = run_stages(workdir, stages, images, preset, type_names, forces, packaged)
    if not packaged:
        package(best, output, workdir / "package.log")
    return output, records


def package(checkpoint: Path, output: Path, log: Path) -> Path:
    """Package a checkpoint with nequip-package (build), then switch forces/stress on.

    Energy-only training runs with ``do_derivatives=False``; nequip's persistent model
    modifier ``enable_ForceStressOutput`` restores autograd forces and stress in the
    shipped file, so ASE gets them. The stages' datasets (about 90 kB per structure) are
    then removed from the work directory: packaging is their last reader (nequip-package
    takes an example structure from the checkpoint's training data).
    """
    output.parent.mkdir(parents=True, exist_ok=True)
    raw = output.with_name("raw-" + output.name)
    tmp = output.with_name("tmp-" + output.name)
    calls = [
        ["build", str(checkpoint), str(raw)],
        ["modify", str(raw), str(tmp), "--modifier", "enable_ForceStressOutput"],
    ]
    # one interpreter for both steps (nequip's import time dominates)
    code = "from nequip.scripts.package import main\n" + "".join(
        f"main({call!r})\n" for call in calls
    )
    _run([sys.executable, "-c", code], output.parent, log)
    raw.unlink(missing_ok=True)
    tmp.replace(output)
    for name in DATASETS.values():
        for path in checkpoint.parent.parent.glob(f"*/{name}"):
            path.unlink()
    return output
