"""The Allegro families: ordinary, sequential (self-pretrained) and pretrained.

Everything a network needs is nequip's own machinery (nequip 0.19, nequip-allegro 0.8):
a Hydra config per training stage is written next to its data and run with
``nequip-train`` (the Lightning trainer, nequip's data module, loss and metrics); the
best checkpoint (validation per-atom energy RMSE) is packaged with ``nequip-package
build`` into a ``.nequip.zip`` archive, and that file is the model of the registry. No
network and no training loop is written here.

Inputs (section 3 of the study): the decorated ideal configurations of a labelled
training store (vacancies removed, dopants substituted, atoms at the parent positions)
with the store's split (`qcapprox.datasets.write_split`): the train rows of the limit-x
subset are fitted, its validation rows stop training early, the 63 test rows (no A5
defects) are used for reporting only. The target is the labeler's total energy (eV),
fitted per atom (energy-only loss, as in the study); ``forces=True`` adds the labeler's
forces to the loss. Since E_above_hull = E / N - (terms fixed by the composition), the
per-atom energy error of a configuration *is* its E_above_hull error.

Variants (section 4 of the study):

* ``ordinary``   one stage, from scratch, on the limit-x subset.
* ``sequential`` stage 1 on the part of the limit-x subset with A5 defects, stage 2
  fine-tunes (nequip ``ModelFromCheckpoint``) on its A5-pristine part (section 4.2).
  Validation rows follow the same partition. At limit 0 there is no A5-defect part:
  stage 1 is empty and skipped, so the limit-0 member is trained exactly like the
  ordinary one (its card says ``"stages": ["pristine"]``).
* ``pretrained`` stage 1 is a model of the binary Sc-{Pt,Pd,Ir,Rh} crystal corpus
  (`qcapprox.pretraining`, shared by every dopant and limit, trained once per preset
  and corpus); stage 2 fine-tunes it (nequip ``ModelFromPackage``) on the limit-x subset.

Energy shifts and scales of the per-type output (PerTypeScaleShift, fixed): a model
trained from scratch on a store gets, for every type t, shift_t = e_t + <E_f> where e_t
is the elemental reference energy per atom of the hull (`qcapprox.hull.Hull`) and <E_f>
the mean formation energy per atom of the training rows, and scale = the standard
deviation of the per-atom formation energy (at least 0.01 eV); the network then learns
the deviation from the mean formation energy. The corpus model gets least-squares shifts
of its energies on its species counts and the RMS residual per atom as scale.
``avg_num_neighbors`` comes from nequip's own data statistics.

Registry: ``calculators/<backbone>/<dopant>/limit-XX/`` holds ``card.json`` and
``model.nequip.zip`` (backbone ``allegro``, ``allegro-sequential`` or
``allegro-pretrained``); the corpus model lives in
``calculators/allegro-pretrained/corpus/<preset>/``. Training runs (configs, data,
checkpoints, Lightning CSV logs) go to a work directory, by default
``$QCAPPROX_CACHE/allegro-runs/...``. A member whose card matches the training data,
variant and preset is never retrained; an interrupted stage resumes from its
``last.ckpt``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path

import h5py
import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.data import atomic_numbers

from qcapprox.datasets import LIMITS, TEST, TRAIN, VALIDATION, a5_defects, in_limit, write_split
from qcapprox.hull import Hull
from qcapprox.models.forest import ModelError, training_store
from qcapprox.parent import VACANCY, Parent
from qcapprox.paths import REGISTRY_DIR
from qcapprox.pretraining import file_sha256
from qcapprox.store import RELAXED, Labels, Store, package_versions

VARIANTS = ("ordinary", "sequential", "pretrained")
BACKBONES = {
    "ordinary": "allegro",
    "sequential": "allegro-sequential",
    "pretrained": "allegro-pretrained",
}
MODEL_FILE = "model.nequip.zip"
SEED = 2024
MONITOR = "val0_epoch/per_atom_energy_rmse"
CARD_VERSIONS = (
    "qcapprox", "nequip", "nequip-allegro", "torch", "lightning", "e3nn", "numpy", "ase",
)  # fmt: skip


class AllegroError(ModelError):
    """An Allegro member cannot be trained, found or loaded."""


# ----------------------------------------------------------------------------- presets
@dataclass(frozen=True)
class Preset:
    """Hyper-parameters of one family member (Allegro model, data loaders, trainer).

    Epochs: a stage runs ``clamp(ceil(budget / n_train), min_epochs, max_epochs)``
    epochs at most, so a small subset gets more passes and every limit costs about the
    same; early stopping on the validation per-atom energy RMSE (``patience`` epochs)
    and ReduceLROnPlateau (``lr_patience``) act within that.
    """

    name: str
    r_max: float
    l_max: int
    num_layers: int
    num_scalar_features: int
    num_tensor_features: int
    mlp_width: int
    mlp_depth: int
    readout_width: int
    num_bessels: int
    batch_size: int
    lr: float
    budget: int
    min_epochs: int
    max_epochs: int
    patience: int
    lr_patience: int
    fine_tune_lr: float
    ema_decay: float | None = None
    accelerator: str = "cpu"
    model_dtype: str = "float32"
    corpus_budget: int = 40_000
    extra: dict = field(default_factory=dict)

    def model_kwargs(self) -> dict:
        """AllegroModel arguments (without types, shifts, scales, neighbour count)."""
        return {
            "_target_": "allegro.model.AllegroModel",
            "seed": SEED,
            "model_dtype": self.model_dtype,
            "r_max": self.r_max,
            "l_max": self.l_max,
            "parity": True,
            "radial_chemical_embed": {
                "_target_": "allegro.nn.TwoBodyBesselScalarEmbed",
                "num_bessels": self.num_bessels,
                "bessel_trainable": False,
                "polynomial_cutoff_p": 6,
            },
            "radial_chemical_embed_dim": self.num_scalar_features,
            "scalar_embed_mlp_hidden_layers_depth": 1,
            "scalar_embed_mlp_hidden_layers_width": self.mlp_width,
            "scalar_embed_mlp_nonlinearity": "silu",
            "num_layers": self.num_layers,
            "num_scalar_features": self.num_scalar_features,
            "num_tensor_features": self.num_tensor_features,
            "allegro_mlp_hidden_layers_depth": self.mlp_depth,
            "allegro_mlp_hidden_layers_width": self.mlp_width,
            "allegro_mlp_nonlinearity": "silu",
            "tp_path_channel_coupling": True,
            "readout_mlp_hidden_layers_depth": 1,
            "readout_mlp_hidden_layers_width": self.readout_width,
            "readout_mlp_nonlinearity": "silu",
            "per_type_energy_scales_trainable": False,
            "per_type_energy_shifts_trainable": False,
            **self.extra,
        }

    def digest(self) -> str:
        """SHA-256 of the hyper-parameters: a changed preset is another model."""
        text = json.dumps(asdict(self), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    def epochs(self, n_train: int, budget: int | None = None) -> int:
        """The epoch cap of a stage with n_train training structures."""
        n = math.ceil((budget or self.budget) / max(n_train, 1))
        return int(min(max(n, self.min_epochs), self.max_epochs))


PRESETS: dict[str, Preset] = {
    # one limit in about 10 minutes or less on 2 CPU cores (see docs/allegro.md)
    "small": Preset(
        name="small",
        r_max=5.0,
        l_max=1,
        num_layers=1,
        num_scalar_features=32,
        num_tensor_features=4,
        mlp_width=32,
        mlp_depth=1,
        readout_width=16,
        num_bessels=8,
        batch_size=8,
        lr=5e-3,
        budget=40_000,
        min_epochs=20,
        max_epochs=400,
        patience=15,
        lr_patience=5,
        fine_tune_lr=2e-3,
        corpus_budget=40_000,
    ),
    # the study's scale, for a GPU
    "paper": Preset(
        name="paper",
        r_max=6.0,
        l_max=2,
        num_layers=2,
        num_scalar_features=64,
        num_tensor_features=32,
        mlp_width=128,
        mlp_depth=2,
        readout_width=32,
        num_bessels=8,
        batch_size=4,
        lr=1e-3,
        budget=2_000_000,
        min_epochs=100,
        max_epochs=2000,
        patience=100,
        lr_patience=25,
        fine_tune_lr=5e-4,
        ema_decay=0.999,
        accelerator="auto",
        corpus_budget=2_000_000,
    ),
    # seconds, for tests and smoke runs only
    "tiny": Preset(
        name="tiny",
        r_max=4.0,
        l_max=1,
        num_layers=1,
        num_scalar_features=8,
        num_tensor_features=2,
        mlp_width=8,
        mlp_depth=1,
        readout_width=8,
        num_bessels=4,
        batch_size=4,
        lr=5e-3,
        budget=8,
        min_epochs=1,
        max_epochs=2,
        patience=5,
        lr_patience=5,
        fine_tune_lr=5e-3,
        corpus_budget=8,
    ),
}


def get_preset(preset: str | Preset) -> Preset:
    """A preset by name (small, paper, tiny) or as given."""
    if isinstance(preset, Preset):
        return preset
    if preset not in PRESETS:
        raise AllegroError(f"unknown preset {preset!r}: use one of {', '.join(PRESETS)}")
    return PRESETS[preset]


# ----------------------------------------------------------------------------- places
def backbone_of(variant: str) -> str:
    """The backbone name of a variant: allegro, allegro-sequential, allegro-pretrained."""
    if variant not in BACKBONES:
        raise AllegroError(f"unknown variant {variant!r}: use one of {', '.join(VARIANTS)}")
    return BACKBONES[variant]


def variant_of(backbone: str) -> str:
    """The variant of a backbone name (inverse of `backbone_of`)."""
    for variant, name in BACKBONES.items():
        if name == backbone:
            return variant
    raise AllegroError(
        f"unknown Allegro backbone {backbone!r}: use {', '.join(BACKBONES.values())}"
    )


def registry_dir(variant: str, dopant: str, limit: int, registry: Path | None = None) -> Path:
    """Where card.json and model.nequip.zip of one member live."""
    return Path(registry or REGISTRY_DIR) / backbone_of(variant) / dopant / f"limit-{limit:02d}"


def cache_root() -> Path:
    """Root of the work directories ($QCAPPROX_CACHE, default ~/.cache/qcapprox)."""
    return Path(os.environ.get("QCAPPROX_CACHE", Path.home() / ".cache" / "qcapprox"))


def default_workdir(variant: str, dopant: str, limit: int, preset: str) -> Path:
    """Scratch directory of one member's training runs."""
    return (
        cache_root()
        / "allegro-runs"
        / backbone_of(variant)
        / dopant
        / preset
        / f"limit-{limit:02d}"
    )


# ----------------------------------------------------------------------------- data
@dataclass
class AllegroData:
    """A labelled training store (one label set): parent, occupancies, total energies,
    split, forces."""

    store: Store
    hull: Hull
    split: np.ndarray
    labels: Labels

    @classmethod
    def load(cls, path: str | Path, hull: Hull | None = None, labels: str = RELAXED) -> AllegroData:
        """Read a labelled store (its split is made and stored on first use)."""
        path = Path(path)
        if not path.exists():
            raise AllegroError(f"no training set {path}: enumerate and label it first")
        split = write_split(path)
        store = Store(path)
        return cls(store, hull or Hull.load(store.parent.dopant), split, store.label_set(labels))

    @property
    def parent(self) -> Parent:
        return self.store.parent

    @property
    def energy(self) -> np.ndarray:
        """Total energies, eV."""
        return self.labels.energy

    @property
    def target(self) -> np.ndarray:
        """Energies above the hull of the labels, eV/atom."""
        return self.labels.e_above_hull

    @cached_property
    def forces(self) -> list[np.ndarray] | None:
        """Labelled forces per configuration (decorated atom order; single points only)."""
        key = f"labels/{self.labels.kind}"
        with h5py.File(self.store.path, "r") as handle:
            if f"{key}/forces" not in handle:
                return None
            forces = handle[f"{key}/forces"][:]
            offset = handle[f"{key}/atoms_offset"][:]
        return [forces[offset[i] : offset[i + 1]] for i in range(len(offset) - 1)]

    def rows(self, limit: int, code: int, a5: str = "all") -> np.ndarray:
        """Rows of one split code in the limit-x subset; a5 = all, defects or pristine."""
        mask = in_limit(self.store.composition, limit) & (self.split == code)
        mask &= self.labels.usable
        defects = a5_defects(self.store.composition)
        if a5 == "defects":
            mask &= defects > 0
        elif a5 == "pristine":
            mask &= defects == 0
        elif a5 != "all":
            raise ValueError(f"a5 must be all, defects or pristine, not {a5!r}")
        return np.flatnonzero(mask)

    def test_rows(self) -> np.ndarray:
        """The usable test rows (reporting only)."""
        return np.flatnonzero((self.split == TEST) & self.labels.usable)

    def digest(self, limit: int) -> str:
        """SHA-256 of what a member is trained and tested on: ids, energies, split."""
        rows = np.concatenate(
            [self.rows(limit, TRAIN), self.rows(limit, VALIDATION), self.test_rows()]
        )
        h = hashlib.sha256()
        for array in (self.store.ids[rows], self.energy[rows], self.split[rows]):
            h.update(np.ascontiguousarray(array).tobytes())
        return h.hexdigest()

    def atoms(self, row: int, with_forces: bool = False) -> Atoms:
        """The decorated configuration of a row with its energy (and forces) attached."""
        atoms = self.parent.decorate(self.store.occupancy[row])
        results = {"energy": float(self.energy[row])}
        if with_forces:
            forces = self.forces
            if forces is None or not np.isfinite(forces[row]).all():
                raise AllegroError(
                    f"{self.store.path}: configuration {self.store.ids[row]} has no forces "
                    "in its labels; train with forces=False"
                )
            results["forces"] = forces[row]
        atoms.calc = SinglePointCalculator(atoms, **results)
        atoms.info["config_id"] = int(self.store.ids[row])
        return atoms

    def energy_statistics(self, rows: np.ndarray) -> tuple[dict[str, float], float]:
        """Per-type shifts (elemental energy + mean E_f per atom) and the E_f spread."""
        n_host, n_dop = self.parent.formula_counts(self.store.occupancy[rows])
        e_form = self.hull.formation_energy(self.energy[rows], n_host, n_dop)
        mean = float(np.mean(e_form))
        shifts = {
            self.parent.host: self.hull.e_host + mean,
            self.parent.dopant: self.hull.e_dopant + mean,
        }
        return shifts, max(float(np.std(e_form)), 0.01)


def write_extxyz(path: Path, images: Sequence[Atoms]) -> None:
    """Write structures with their single-point energies (and forces) as extxyz, atomically."""
    from ase.io import write

    tmp = path.with_name(path.name + ".tmp")
    write(tmp, list(images), format="extxyz")
    tmp.replace(path)


# ----------------------------------------------------------------------------- configs
def stage_config(
    preset: Preset,
    stage_dir: Path,
    type_names: Sequence[str],
    model: dict,
    n_train: int,
    forces: bool,
    lr: float,
    budget: int | None = None,
) -> dict:
    """The nequip-train config of one stage (a plain dict, written as YAML)."""
    r_max = float(model.get("r_max", preset.r_max))
    stats = (
        "nequip.data.CommonDataStatisticsManager"
        if forces
        else "nequip.data.EnergyOnlyDataStatisticsManager"
    )
    per_atom = {"_target_": "nequip.data.PerAtomModifier", "field": "total_energy"}
    metrics = [
        {
            "name": "per_atom_energy_rmse",
            "field": per_atom,
            "coeff": 1.0,
            "metric": {"_target_": "nequip.train.RootMeanSquaredError"},
        },
        {
            "name": "per_atom_energy_mae",
            "field": per_atom,
            "metric": {"_target_": "nequip.train.MeanAbsoluteError"},
        },
    ]
    if forces:
        metrics.append(
            {
                "name": "forces_rmse",
                "field": "forces",
                "metric": {"_target_": "nequip.train.RootMeanSquaredError"},
            }
        )
        loss = {
            "_target_": "nequip.train.EnergyForceLoss",
            "per_atom_energy": True,
            "coeffs": {"total_energy": 1.0, "forces": 1.0},
        }
    else:
        loss = {"_target_": "nequip.train.EnergyOnlyLoss", "per_atom_energy": True}
    epochs = preset.epochs(n_train, budget)
    training_module = {
        "_target_": "nequip.train.NequIPLightningModule",
        "loss": loss,
        "val_metrics": {"_target_": "nequip.train.MetricsManager", "metrics": metrics},
        "test_metrics": {"_target_": "nequip.train.MetricsManager", "metrics": metrics},
        "optimizer": {"_target_": "torch.optim.Adam", "lr": lr},
        "lr_scheduler": {
            "scheduler": {
                "_target_": "torch.optim.lr_scheduler.ReduceLROnPlateau",
                "factor": 0.5,
                "patience": preset.lr_patience,
            },
            "monitor": MONITOR,
            "interval": "epoch",
            "frequency": 1,
        },
        "model": model,
    }
    if preset.ema_decay is not None:
        training_module["_target_"] = "nequip.train.EMALightningModule"
        training_module["ema_decay"] = preset.ema_decay
    loader = {"_target_": "torch.utils.data.DataLoader", "num_workers": 0}
    return {
        "run": ["train"],
        "data": {
            "_target_": "nequip.data.datamodule.ASEDataModule",
            "seed": SEED,
            "train_file_path": str(stage_dir / "train.xyz"),
            "val_file_path": str(stage_dir / "val.xyz"),
            "ase_args": {"format": "extxyz"},
            "transforms": [
                {"_target_": "nequip.data.transforms.NeighborListTransform", "r_max": r_max},
                {
                    "_target_": "nequip.data.transforms.ChemicalSpeciesToAtomTypeMapper",
                    "model_type_names": list(type_names),
                    "chemical_species_to_atom_type_map": {t: t for t in type_names},
                },
            ],
            "train_dataloader": {**loader, "batch_size": preset.batch_size, "shuffle": True},
            "val_dataloader": {**loader, "batch_size": 4 * preset.batch_size},
            "stats_manager": {"_target_": stats, "type_names": list(type_names)},
        },
        "trainer": {
            "_target_": "lightning.Trainer",
            "accelerator": preset.accelerator,
            "devices": 1,
            "max_epochs": epochs,
            "check_val_every_n_epoch": 1,
            "log_every_n_steps": 10,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "logger": {
                "_target_": "lightning.pytorch.loggers.CSVLogger",
                "save_dir": str(stage_dir),
                "name": "log",
                "version": 0,
            },
            "callbacks": [
                {
                    "_target_": "lightning.pytorch.callbacks.ModelCheckpoint",
                    "dirpath": str(stage_dir),
                    "filename": "best",
                    "monitor": MONITOR,
                    "mode": "min",
                    "save_top_k": 1,
                    "save_last": True,
                    "enable_version_counter": False,
                },
                {
                    "_target_": "lightning.pytorch.callbacks.EarlyStopping",
                    "monitor": MONITOR,
                    "mode": "min",
                    "patience": preset.patience,
                },
            ],
        },
        "training_module": training_module,
        "global_options": {"allow_tf32": False},
    }


def scratch_model(
    preset: Preset,
    type_names: Sequence[str],
    shifts: dict[str, float],
    scale: float,
    forces: bool,
) -> dict:
    """The AllegroModel section of a stage trained from scratch."""
    return {
        **preset.model_kwargs(),
        "type_names": list(type_names),
        "avg_num_neighbors": "${training_data_stats:num_neighbors_mean}",
        "per_type_energy_shifts": {t: float(shifts[t]) for t in type_names},
        "per_type_energy_scales": float(scale),
        "do_derivatives": bool(forces),
    }


def fine_tune_model(source: dict, forces: bool) -> dict:
    """The model section of a fine-tuning stage: a saved model, forces switched on or off.

    nequip's ``modify`` with the persistent modifiers ``enable_ForceStressOutput`` /
    ``disable_ForceStressOutput``: an energy-only stage skips the autograd forces.
    """
    modifier = "enable_ForceStressOutput" if forces else "disable_ForceStressOutput"
    return {
        "_target_": "nequip.model.modify",
        "model": source,
        "modifiers": [{"modifier": modifier}],
    }


# ----------------------------------------------------------------------------- running
def _nequip_env() -> dict[str, str]:
    """Environment of the nequip subprocesses.

    ``QCAPPROX_TORCH_THREADS`` sets torch's intra-op threads (OMP_NUM_THREADS): on a
    machine shared with other CPU-bound jobs, 1 avoids the heavy slowdown of
    oversubscribed OpenMP threads.
    """
    env = dict(os.environ)
    env.setdefault("HYDRA_FULL_ERROR", "1")
    env.setdefault("PYTHONWARNINGS", "ignore")
    threads = os.environ.get("QCAPPROX_TORCH_THREADS")
    if threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = threads
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


def package(checkpoint: Path, output: Path, log: Path) -> Path:
    """Package a checkpoint with nequip-package (build), then switch forces/stress on.

    Energy-only training runs with ``do_derivatives=False``; nequip's persistent model
    modifier ``enable_ForceStressOutput`` restores autograd forces and stress in the
    shipped file, so ASE gets them.
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
    return output


# ----------------------------------------------------------------------------- batch evaluation
class ParentGraph:
    """The neighbour list of a parent, built once and masked per configuration.

    Every configuration is the parent with some active sites emptied and some given the
    dopant, at the parent positions, so its neighbour list is the parent's with the edges
    of absent atoms removed: exactly what nequip's NeighborListTransform would give the
    decorated Atoms, up to the order of edges.
    """

    def __init__(self, parent: Parent, r_max: float) -> None:
        import torch
        from nequip.data import AtomicDataDict, compute_neighborlist_, from_ase

        self.parent = parent
        self.r_max = float(r_max)
        data = compute_neighborlist_(from_ase(parent.atoms), r_max=self.r_max)
        self.edge_index = data[AtomicDataDict.EDGE_INDEX_KEY].numpy()
        self.edge_cell_shift = data[AtomicDataDict.EDGE_CELL_SHIFT_KEY].numpy()
        self.positions = data[AtomicDataDict.POSITIONS_KEY].numpy()
        self.cell = data[AtomicDataDict.CELL_KEY].reshape(3, 3).numpy()
        self.pos_dtype = data[AtomicDataDict.POSITIONS_KEY].dtype
        self.torch = torch
        self.keys = AtomicDataDict

    def batch(self, occupancy: np.ndarray, type_index: dict[str, int]) -> dict:
        """One batched AtomicDataDict of configurations (vacancies removed)."""
        torch, K = self.torch, self.keys
        occ = np.atleast_2d(occupancy)
        n_conf, n_atoms = len(occ), len(self.parent.atoms)
        numbers = np.broadcast_to(self.parent.atoms.numbers, (n_conf, n_atoms)).copy()
        numbers[:, self.parent.active] = np.where(
            occ == 1, atomic_numbers[self.parent.dopant], atomic_numbers[self.parent.host]
        )
        present = np.ones((n_conf, n_atoms), dtype=bool)
        present[:, self.parent.active] = occ != VACANCY
        counts = present.sum(axis=1)
        offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
        new_index = np.cumsum(present, axis=1) - 1 + offsets[:, None]
        src, dst = self.edge_index
        keep = present[:, src] & present[:, dst]  # (n_conf, n_edges)
        conf, edge = np.nonzero(keep)
        edge_index = np.stack([new_index[conf, src[edge]], new_index[conf, dst[edge]]])
        lookup = np.full(119, -1)
        for symbol, i in type_index.items():
            lookup[atomic_numbers[symbol]] = i
        types = lookup[numbers[present]]
        if (types < 0).any():
            raise AllegroError(
                f"the model knows the types {sorted(type_index)}, not every element of "
                f"Sc60{self.parent.dopant}13: it belongs to another dopant"
            )
        return {
            K.POSITIONS_KEY: torch.as_tensor(
                np.broadcast_to(self.positions, (n_conf, n_atoms, 3))[present], dtype=self.pos_dtype
            ),
            K.ATOM_TYPE_KEY: torch.as_tensor(types, dtype=torch.long),
            K.EDGE_INDEX_KEY: torch.as_tensor(edge_index, dtype=torch.long),
            K.EDGE_CELL_SHIFT_KEY: torch.as_tensor(
                self.edge_cell_shift[edge], dtype=self.pos_dtype
            ),
            K.CELL_KEY: torch.as_tensor(
                np.broadcast_to(self.cell, (n_conf, 3, 3)).copy(), dtype=self.pos_dtype
            ),
            K.BATCH_KEY: torch.as_tensor(np.repeat(np.arange(n_conf), counts), dtype=torch.long),
            K.NUM_NODES_KEY: torch.as_tensor(counts, dtype=torch.long),
            K.PBC_KEY: torch.ones((n_conf, 3), dtype=torch.bool),
        }


class EnergyModel:
    """A packaged model loaded for batch energies (forces switched off).

    nequip's `load_saved_model` (eager mode) and its persistent model modifier
    ``disable_ForceStressOutput``; `threads` (or ``QCAPPROX_TORCH_THREADS``) sets torch's
    threads of this process.
    """

    def __init__(self, path: Path, threads: int | None = None) -> None:
        import torch
        from nequip.model.modify_utils import modify
        from nequip.model.saved_models.load_utils import load_saved_model
        from nequip.nn import graph_model

        threads = threads or int(os.environ.get("QCAPPROX_TORCH_THREADS", "0") or 0)
        if threads:  # torch's intra-op threads of this process
            torch.set_num_threads(threads)
        model = load_saved_model(str(path), compile_mode="eager")
        self.model = modify(model, [{"modifier": "disable_ForceStressOutput"}]).eval()
        metadata = self.model.metadata
        self.r_max = float(metadata[graph_model.R_MAX_KEY])
        self.type_names = metadata[graph_model.TYPE_NAMES_KEY].split(" ")
        self.path = Path(path)
        self._graphs: dict[int, ParentGraph] = {}

    def graph(self, parent: Parent) -> ParentGraph:
        """The masked-neighbour-list builder of a parent (the last one is kept)."""
        cached = self._graphs.get(id(parent))
        if cached is None or cached.parent is not parent:
            cached = ParentGraph(parent, self.r_max)
            self._graphs = {id(parent): cached}
        return cached

    def energies(self, parent: Parent, occupancy: np.ndarray, batch_size: int = 32) -> np.ndarray:
        """Total energies (eV) of configurations of a parent, in batches."""
        import torch
        from nequip.data import AtomicDataDict

        occ = np.atleast_2d(occupancy)
        graph = self.graph(parent)
        types = {t: i for i, t in enumerate(self.type_names)}
        out = np.empty(len(occ))
        with torch.inference_mode():
            for start in range(0, len(occ), batch_size):
                data = graph.batch(occ[start : start + batch_size], types)
                result = self.model(data)[AtomicDataDict.TOTAL_ENERGY_KEY]
                out[start : start + batch_size] = result.detach().double().reshape(-1).numpy()
        return out


# ----------------------------------------------------------------------------- members
@dataclass
class AllegroMember:
    """One limit of an Allegro family: the packaged model and its card."""

    card: dict
    path: Path
    dopant: str
    hull: Hull
    parent: Parent | None = None

    @cached_property
    def energy_model(self) -> EnergyModel:
        return EnergyModel(self.path)

    def predict_energy(self, occupancy: np.ndarray, parent: Parent | None = None) -> np.ndarray:
        """Total energies (eV) of (n, 36) occupancies of the parent."""
        parent = parent or self.parent or Parent.load(self.dopant)
        return self.energy_model.energies(parent, occupancy)

    def predict(self, occupancy: np.ndarray, parent: Parent | None = None) -> np.ndarray:
        """Energies above the hull (eV/atom) of (n, 36) occupancies of the parent."""
        parent = parent or self.parent or Parent.load(self.dopant)
        energy = self.predict_energy(occupancy, parent)
        n_host, n_dop = parent.formula_counts(np.atleast_2d(occupancy))
        return np.asarray(self.hull.e_above_hull(energy, n_host, n_dop), dtype=float)


def load_allegro_member(
    dopant: str, limit: int = 24, variant: str = "sequential", registry: Path | None = None
) -> AllegroMember:
    """A trained member from the registry (nothing is trained here), its model file checked
    against the card's `model_sha256` before anything loads it (nequip's loader unpickles:
    a packaged model is code)."""
    if limit not in LIMITS:
        raise AllegroError(f"limit {limit} is not one of {LIMITS}")
    where = registry_dir(variant, dopant, limit, registry)
    card_path, model_path = where / "card.json", where / MODEL_FILE
    if not (card_path.exists() and model_path.exists()):
        raise AllegroError(
            f"no trained {backbone_of(variant)} model for {dopant} at limit {limit} ({where}); "
            f"train it with `qcapprox train allegro --dopant {dopant} --variant {variant} "
            f"--limits {limit}`"
        )
    card = json.loads(card_path.read_text())
    found = file_sha256(model_path)
    if found != card.get("model_sha256"):
        raise AllegroError(
            f"{model_path}: sha256 {found[:16]}... is not the model_sha256 "
            f"{str(card.get('model_sha256'))[:16]}... of its card {card_path}; refused (a "
            "packaged model is code: restore it from a trusted source, e.g. `git checkout`)"
        )
    return AllegroMember(card, model_path, dopant, Hull.load(dopant))


def _finished(
    card_path: Path, model_path: Path, digest: str, preset: str, extra: dict
) -> dict | None:
    """The card of a finished member trained on the same data and settings, or None."""
    if not (card_path.exists() and model_path.exists()):
        return None
    card = json.loads(card_path.read_text())
    same = card.get("training_set_sha256") == digest and card.get("preset") == preset
    same &= all(card.get(k) == v for k, v in extra.items())
    return card if same else None


def _stage(
    name: str,
    workdir: Path,
    data: AllegroData,
    train_rows: np.ndarray,
    val_rows: np.ndarray,
    preset: Preset,
    model: dict,
    type_names: Sequence[str],
    forces: bool,
    lr: float,
) -> tuple[Path, dict]:
    """Write a stage's data and config, run it; returns its best checkpoint and record."""
    if len(train_rows) == 0 or len(val_rows) == 0:
        raise AllegroError(
            f"stage {name}: {len(train_rows)} training and {len(val_rows)} validation rows; "
            "both must be non-empty"
        )
    stage_dir = workdir / name
    stage_dir.mkdir(parents=True, exist_ok=True)
    for fname, rows in (("train.xyz", train_rows), ("val.xyz", val_rows)):
        if not (stage_dir / fname).exists():
            write_extxyz(stage_dir / fname, [data.atoms(r, forces) for r in rows])
    config = stage_config(preset, stage_dir, type_names, model, len(train_rows), forces, lr)
    record = run_stage(stage_dir, config)
    record.update(name=name, train=len(train_rows), validation=len(val_rows))
    return stage_dir / "best.ckpt", record


def train_allegro_member(
    dopant: str,
    limit: int,
    variant: str = "ordinary",
    preset: str | Preset = "small",
    workdir: str | Path | None = None,
    *,
    store: str | Path | None = None,
    registry: str | Path | None = None,
    forces: bool = False,
    corpus: str | Path | None = None,
    keep_workdir: bool = True,
    labels: str = RELAXED,
) -> dict:
    """Train (or find finished) one member; returns its card.

    `store` defaults to the bundled training set of the dopant, `registry` to
    ``calculators/``; `corpus` (pretrained variant) to data/pretraining/sc-m-corpus.extxyz;
    `labels` names the label set of the store (relaxed: the target; or single-point).
    """
    preset_obj = get_preset(preset)
    backbone_of(variant)  # validates the variant
    if limit not in LIMITS:
        raise AllegroError(f"limit {limit} is not one of {LIMITS}")
    data = AllegroData.load(store or training_store(dopant), labels=labels)
    if data.parent.dopant != dopant:
        raise AllegroError(f"{data.store.path} holds Sc-{data.parent.dopant}, not Sc-{dopant}")
    registry = Path(registry or REGISTRY_DIR)
    where = registry_dir(variant, dopant, limit, registry)
    card_path, model_path = where / "card.json", where / MODEL_FILE
    digest = data.digest(limit)
    settings = {"forces": forces, "preset_sha256": preset_obj.digest()}
    base_card = None
    if variant == "pretrained":
        from qcapprox.pretraining import pretrain_corpus_model

        base_card = pretrain_corpus_model(preset_obj, corpus=corpus, registry=registry)
        settings["corpus_sha256"] = base_card["corpus_sha256"]
    finished = _finished(card_path, model_path, digest, preset_obj.name, settings)
    if finished is not None:
        return finished

    workdir = Path(workdir or default_workdir(variant, dopant, limit, preset_obj.name))
    marker = workdir / "digest.json"
    if workdir.exists() and (
        not marker.exists() or json.loads(marker.read_text()) != {"digest": digest, **settings}
    ):
        shutil.rmtree(workdir)  # another data set or settings: start afresh
    workdir.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"digest": digest, **settings}))

    start = time.perf_counter()
    host_dop = [data.parent.host, dopant]
    train_all, val_all = data.rows(limit, TRAIN), data.rows(limit, VALIDATION)
    stages: list[dict] = []
    if variant == "ordinary" or (variant == "sequential" and limit == 0):
        shifts, scale = data.energy_statistics(train_all)
        model = scratch_model(preset_obj, host_dop, shifts, scale, forces)
        best, record = _stage("limit", workdir, data, train_all, val_all, preset_obj, model,
                              host_dop, forces, preset_obj.lr)  # fmt: skip
        stages.append({**record, "name": "pristine" if variant == "sequential" else "limit"})
        hyper = model
    elif variant == "sequential":
        train_d, val_d = data.rows(limit, TRAIN, "defects"), data.rows(limit, VALIDATION, "defects")
        train_p, val_p = (
            data.rows(limit, TRAIN, "pristine"),
            data.rows(limit, VALIDATION, "pristine"),
        )
        # a part without validation rows (small user stores) validates on the whole subset
        checked_d = "A5-defect rows" if len(val_d) else "all rows of the limit (no A5-defect ones)"
        checked_p = "A5-pristine rows" if len(val_p) else "all rows of the limit (no A5-pristine)"
        val_d = val_d if len(val_d) else val_all
        val_p = val_p if len(val_p) else val_all
        shifts, scale = data.energy_statistics(train_d)
        model = scratch_model(preset_obj, host_dop, shifts, scale, forces)
        best, record = _stage("stage1-a5-defects", workdir, data, train_d, val_d, preset_obj,
                              model, host_dop, forces, preset_obj.lr)  # fmt: skip
        stages.append({**record, "validated_on": checked_d})
        hyper = model
        tuned = fine_tune_model(
            {"_target_": "nequip.model.ModelFromCheckpoint", "checkpoint_path": str(best)}, forces
        )
        best, record = _stage("stage2-a5-pristine", workdir, data, train_p, val_p, preset_obj,
                              tuned, host_dop, forces, preset_obj.fine_tune_lr)  # fmt: skip
        stages.append({**record, "validated_on": checked_p})
    else:  # pretrained
        base = Path(base_card["model_path"])
        tuned = fine_tune_model(
            {"_target_": "nequip.model.ModelFromPackage", "package_path": str(base)}, forces
        )
        type_names = base_card["type_names"]
        if dopant not in type_names:
            raise AllegroError(f"the corpus model knows {type_names}, not {dopant}")
        best, record = _stage("finetune", workdir, data, train_all, val_all, preset_obj, tuned,
                              type_names, forces, preset_obj.fine_tune_lr)  # fmt: skip
        stages.append({**record, "name": "finetune"})
        hyper = base_card["hyperparameters"]

    packaged = package(best, workdir / MODEL_FILE, workdir / "package.log")
    card = _card(data, limit, variant, preset_obj, digest, stages, hyper, packaged, forces,
                 time.perf_counter() - start, base_card)  # fmt: skip
    where.mkdir(parents=True, exist_ok=True)
    tmp = where / (MODEL_FILE + ".tmp")
    shutil.copyfile(packaged, tmp)
    tmp.replace(model_path)
    card_path.with_suffix(".json.tmp").write_text(json.dumps(card, indent=1) + "\n")
    card_path.with_suffix(".json.tmp").replace(card_path)
    if not keep_workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    return card


def _resolved(model: dict, stats: dict[str, float]) -> dict:
    """The model section with nequip's ${training_data_stats:...} values filled in."""
    out = dict(model)
    for key, value in model.items():
        if isinstance(value, str) and value.startswith("${training_data_stats:"):
            name = value[len("${training_data_stats:") : -1]
            out[key] = stats.get(name, value)
    return out


def _rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2))) if len(a) else math.nan


def _card(
    data: AllegroData,
    limit: int,
    variant: str,
    preset: Preset,
    digest: str,
    stages: list[dict],
    hyper: dict,
    model_path: Path,
    forces: bool,
    seconds: float,
    base_card: dict | None,
) -> dict:
    """The model card; validation and test RMSE of E_above_hull from the packaged model."""
    member = AllegroMember({}, model_path, data.parent.dopant, data.hull, data.parent)
    test = data.test_rows()
    val = data.rows(limit, VALIDATION)
    occ = data.store.occupancy
    pred_test = member.predict(occ[test])
    pred_val = member.predict(occ[val])
    model_bytes = model_path.read_bytes()
    card = {
        "backbone": backbone_of(variant),
        "dopant": data.parent.dopant,
        "limit": limit,
        "variant": variant,
        "preset": preset.name,
        "preset_sha256": preset.digest(),
        "forces": forces,
        "target": "total energy (eV), fitted per atom" + (" and forces" if forces else ""),
        "stages": stages,
        "epochs": int(sum(s["epochs"] for s in stages)),
        "hyperparameters": {
            "model": _resolved(hyper, stages[0].get("data_statistics", {})),
            "preset": {k: v for k, v in asdict(preset).items() if k != "extra"},
        },
        "training_set": data.store.path.name,
        "training_set_sha256": digest,
        "sizes": {
            "train": len(data.rows(limit, TRAIN)),
            "validation": len(val),
            "test": len(test),
        },
        "labels": data.labels.kind,
        "labeler": f"{data.labels.describe}, {data.labels.attrs.get('calculator_version')}",
        "validation_rmse": _rmse(pred_val, data.target[val]),
        "test_rmse": _rmse(pred_test, data.target[test]),
        "test_mean": float(data.target[test].mean()),
        "test_ids": [int(i) for i in data.store.ids[test]],
        "test_target": [float(v) for v in data.target[test]],
        "test_predictions": [float(v) for v in pred_test],
        "fit_seconds": round(seconds, 1),
        "model_file": MODEL_FILE,
        "model_bytes": len(model_bytes),
        "model_sha256": hashlib.sha256(model_bytes).hexdigest(),
        "r_max": member.energy_model.r_max,
        "type_names": member.energy_model.type_names,
        "versions": package_versions(CARD_VERSIONS),
    }
    if base_card is not None:
        card["corpus"] = base_card["corpus"]
        card["corpus_sha256"] = base_card["corpus_sha256"]
        card["corpus_model"] = base_card["model_path"]
    return card


def train_allegro_family(
    dopant: str,
    variant: str = "ordinary",
    limits: Sequence[int] = LIMITS,
    preset: str | Preset = "small",
    progress: Callable[[int, int], None] | None = None,
    **kwargs,
) -> list[dict]:
    """Train every requested limit (finished limits are skipped); returns the cards.

    Limits run in the given order; `progress(done, total)` is called after each.
    Keyword arguments go to `train_allegro_member` (store, registry, forces, corpus, labels).
    """
    cards = []
    for k, limit in enumerate(limits):
        cards.append(train_allegro_member(dopant, limit, variant, preset, **kwargs))
        if progress:
            progress(k + 1, len(limits))
    return cards


__all__ = [
    "BACKBONES",
    "PRESETS",
    "VARIANTS",
    "AllegroData",
    "AllegroError",
    "AllegroMember",
    "EnergyModel",
    "ParentGraph",
    "Preset",
    "load_allegro_member",
    "registry_dir",
    "train_allegro_family",
    "train_allegro_member",
]
