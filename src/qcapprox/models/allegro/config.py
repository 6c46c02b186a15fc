"""The nequip-train configuration of one training stage (Hydra config, a plain dict written
as YAML) and its model section: AllegroModel from scratch, or a saved model fine-tuned.

The config is nequip's own machinery: ``NequIPDataModule`` over the stage's structures
with their neighbour lists (`qcapprox.models.allegro.data`) and
``ChemicalSpeciesToAtomTypeMapper``, nequip's data statistics, ``EnergyOnlyLoss``
(per-atom energy; ``EnergyForceLoss`` with forces), a ``MetricsManager``, Adam with
``ReduceLROnPlateau`` or ``CosineAnnealingLR`` (the preset's ``lr_schedule``), and
Lightning's ``ModelCheckpoint``, ``EarlyStopping`` and ``CSVLogger``. Model selection, early
stopping and the plateau schedule follow the validation per-atom energy RMSE (`MONITOR`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from qcapprox.models.allegro.presets import COSINE_FLOOR, Preset
from qcapprox.settings import SEED

MONITOR = "val0_epoch/per_atom_energy_rmse"
#: The data files of a stage, per split: structures with neighbour lists (`data.py`).
DATASETS = {"train": "train.pt", "val": "val.pt"}


def stage_r_max(preset: Preset, model: dict) -> float:
    """The cutoff of a stage's model (its own, or the preset's): its neighbour lists'."""
    return float(model.get("r_max", preset.r_max))


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
    """The nequip-train config of one stage (a plain dict, written as YAML); its data are
    `DATASETS` in `stage_dir`."""
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
        "lr_scheduler": _lr_scheduler(preset, lr, epochs),
        "model": model,
    }
    if preset.ema_decay is not None:
        training_module["_target_"] = "nequip.train.EMALightningModule"
        training_module["ema_decay"] = preset.ema_decay
    loader = {"_target_": "torch.utils.data.DataLoader", "num_workers": 0}
    types = {
        "_target_": "nequip.data.transforms.ChemicalSpeciesToAtomTypeMapper",
        "model_type_names": list(type_names),
        "chemical_species_to_atom_type_map": {t: t for t in type_names},
    }
    return {
        "run": ["train"],
        "data": {
            "_target_": "nequip.data.datamodule.NequIPDataModule",
            "seed": SEED,
            **{
                f"{split}_dataset": {
                    "_target_": "qcapprox.models.allegro.data.StoredDataset",
                    "file_path": str(stage_dir / DATASETS[split]),
                    "transforms": [types],
                }
                for split in DATASETS
            },
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


def _lr_scheduler(preset: Preset, lr: float, epochs: int) -> dict:
    """Lightning's scheduler entry for the preset's schedule (stepped once an epoch)."""
    if preset.lr_schedule == "cosine":
        scheduler = {
            "_target_": "torch.optim.lr_scheduler.CosineAnnealingLR",
            "T_max": epochs,
            "eta_min": lr / COSINE_FLOOR,
        }
        return {"scheduler": scheduler, "interval": "epoch", "frequency": 1}
    scheduler = {
        "_target_": "torch.optim.lr_scheduler.ReduceLROnPlateau",
        "factor": 0.5,
        "patience": preset.lr_patience,
    }
    return {"scheduler": scheduler, "monitor": MONITOR, "interval": "epoch", "frequency": 1}


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
