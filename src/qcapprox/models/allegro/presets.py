"""Hyper-parameter presets of Allegro members and the variants' backbone names.

`small` trains one limit in about 10 minutes or less on 2 CPU cores (docs/allegro.md),
`fast` is `small` in about half the time (cosine schedule from scratch), `balanced` is
`fast` with the A5-pristine rows weighted up (`Preset.pristine_share`), `paper` is the
study's scale (for a GPU), `tiny` runs in seconds (tests and smoke runs). A
preset's SHA-256 (`Preset.digest`) is recorded in every card: a changed preset is another
model.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import MISSING, asdict, dataclass, field, fields, replace

import numpy as np

from qcapprox.errors import AllegroError
from qcapprox.settings import SEED
from qcapprox.words import ALLEGRO_BACKBONES

#: The variants (`qcapprox.words.ALLEGRO_BACKBONES` names the backbone of each).
VARIANTS = tuple(ALLEGRO_BACKBONES)
#: Learning-rate schedules of a stage (`Preset.lr_schedule`).
LR_SCHEDULES = ("plateau", "cosine")
#: The cosine schedule anneals to lr / COSINE_FLOOR.
COSINE_FLOOR = 50
#: Fields added after the first cards were written: left out of `Preset.digest` while they
#: hold their defaults, so that the digests of earlier presets (and their cards) stay valid.
LATER_FIELDS = ("lr_schedule", "fine_tune", "pristine_share")
#: The fields a preset may set apart for its fine-tuning stages (`Preset.fine_tune`).
FINE_TUNE_FIELDS = ("lr_schedule", "budget", "min_epochs", "max_epochs", "patience",
                    "lr_patience")  # fmt: skip


@dataclass(frozen=True)
class Preset:
    """Hyper-parameters of one family member (Allegro model, data loaders, trainer).

    Epochs: a stage runs ``clamp(ceil(budget / n_train), min_epochs, max_epochs)``
    epochs at most, so a small subset gets more passes and every limit costs about the
    same; early stopping on the validation per-atom energy RMSE (``patience`` epochs) acts
    within that. Learning rate (``lr_schedule``): ``plateau`` halves it after
    ``lr_patience`` epochs without a better validation RMSE (ReduceLROnPlateau);
    ``cosine`` anneals it over the stage's epochs, lr_t = lr_min + (lr - lr_min)
    (1 + cos(pi t / T)) / 2 with lr_min = lr / 50 (CosineAnnealingLR).

    ``pristine_share`` s > 0 repeats the A5-pristine training rows of a stage that also has
    A5-defect rows (`oversampled`) so that they make up at least s of its rows: at limit 24
    they are 23-25 of 909-1,848 rows, and a model fitted to all rows alike leaves them
    +5 to +18 meV/atom high (docs/configurations.md). The epoch budget counts the repeats.

    A fine-tuning stage (a saved model trained further at ``fine_tune_lr``: the sequential
    variant's second stage, the pretrained variant's only one) runs with the fields of
    ``fine_tune`` in place of the preset's own (`FINE_TUNE_FIELDS`), e.g. a cosine
    schedule from scratch and the plateau schedule when fine-tuning.
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
    lr_schedule: str = "plateau"
    ema_decay: float | None = None
    accelerator: str = "cpu"
    model_dtype: str = "float32"
    corpus_budget: int = 40_000
    fine_tune: dict = field(default_factory=dict)
    pristine_share: float = 0.0
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
        values = asdict(self)
        for spec in fields(self):
            default = spec.default if spec.default_factory is MISSING else spec.default_factory()
            if spec.name in LATER_FIELDS and values[spec.name] == default:
                del values[spec.name]
        text = json.dumps(values, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    def __post_init__(self) -> None:
        if self.lr_schedule not in LR_SCHEDULES:
            raise AllegroError(
                f"preset {self.name}: lr_schedule {self.lr_schedule!r} is not one of "
                f"{', '.join(LR_SCHEDULES)}"
            )
        if not 0 <= self.pristine_share < 1:
            raise AllegroError(
                f"preset {self.name}: pristine_share {self.pristine_share} is not in [0, 1)"
            )
        unknown = sorted(set(self.fine_tune) - set(FINE_TUNE_FIELDS))
        if unknown:
            raise AllegroError(
                f"preset {self.name}: fine_tune sets {', '.join(unknown)}; it may set only "
                f"{', '.join(FINE_TUNE_FIELDS)}"
            )
        self.fine_tuning()  # its schedule is checked as well

    def fine_tuning(self) -> Preset:
        """The preset of a fine-tuning stage: this one with the fields of `fine_tune`."""
        return replace(self, **self.fine_tune, fine_tune={}) if self.fine_tune else self

    def epochs(self, n_train: int, budget: int | None = None) -> int:
        """The epoch cap of a stage with n_train training structures."""
        n = math.ceil((budget or self.budget) / max(n_train, 1))
        return int(min(max(n, self.min_epochs), self.max_epochs))

    def oversampled(self, rows: np.ndarray, pristine: np.ndarray) -> np.ndarray:
        """Training rows with the A5-pristine ones (mask `pristine`) repeated c times,
        c = max(1, ceil(s n_d / ((1 - s) n_p))) for n_p pristine and n_d other rows, so
        that they make up at least s = ``pristine_share`` of the result (rows unchanged
        when s = 0 or the rows are all of one kind)."""
        n_p = int(np.count_nonzero(pristine))
        n_d = len(rows) - n_p
        if not self.pristine_share or n_p == 0 or n_d == 0:
            return rows
        share = self.pristine_share
        copies = max(1, math.ceil(share * n_d / ((1 - share) * n_p) - 1e-9))  # 9.000...02 -> 9
        return np.concatenate([rows, *[rows[pristine]] * (copies - 1)])


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


# `small` in about half the time: a cosine schedule at 4x the rate over half the budget and
# epoch floor from scratch, `small`'s own schedule, budget and floor when fine-tuning
# (benchmarks/allegro_training.py, set-up `fast`; README "Benchmarks")
_SMALL = PRESETS["small"]
PRESETS["fast"] = replace(
    _SMALL,
    name="fast",
    lr=4 * _SMALL.lr,
    budget=_SMALL.budget // 2,
    min_epochs=_SMALL.min_epochs // 2,
    lr_schedule="cosine",
    fine_tune={key: getattr(_SMALL, key) for key in ("lr_schedule", "budget", "min_epochs")},
)


# `fast` with the A5-pristine rows repeated to a fifth of each stage's training rows: the
# ordinary family's mean signed error on the 63 A4-only test structures no longer grows
# with the limit (Pt at 24: +17.5 -> +5.6 meV/atom), at the same validation RMSE
# (benchmarks/allegro_bias.py, docs/configurations.md)
PRESETS["balanced"] = replace(PRESETS["fast"], name="balanced", pristine_share=0.2)


def get_preset(preset: str | Preset) -> Preset:
    """A preset by name (`PRESETS`: small, fast, balanced, paper, tiny) or as given."""
    if isinstance(preset, Preset):
        return preset
    if preset not in PRESETS:
        raise AllegroError(f"unknown preset {preset!r}: use one of {', '.join(PRESETS)}")
    return PRESETS[preset]


def backbone_of(variant: str) -> str:
    """The backbone name of a variant: allegro, allegro-sequential, allegro-pretrained."""
    if variant not in ALLEGRO_BACKBONES:
        raise AllegroError(f"unknown variant {variant!r}: use one of {', '.join(VARIANTS)}")
    return ALLEGRO_BACKBONES[variant]
