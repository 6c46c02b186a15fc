"""What every backbone shares: the labelled training set of a member (its split, rows and
digest), where members live in a registry, the model card and how it is written.

A member is one backbone trained for one dopant at one limit. Its card says what it is,
what it was trained and tested on (`training_set_sha256`: the SHA-256 of the ids, targets
and split of the rows used, `TrainingSet.digest`) and how it does on the test rows (the
energy above the hull, eV/atom, eq. 3 of the study), plus what its backbone adds.

Registry layout: ``<registry>/<backbone>/<dopant>/limit-XX/`` holds ``card.json`` (and the
model files of backbones that ship them), under ``<registry>/single-point/`` for members
trained on single points (`member_path`). A member is read from an explicit registry, else
from the user's (``<user data>/calculators/``) if it has the card, else from the bundled one
(``calculators/``) (`card_dir`); it is written into the explicit registry or the user's,
never into the bundled one (`output_dir`), files first and the card last, each renamed into
place (`publish`).
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qcapprox.datasets import (
    LIMITS,
    TEST,
    TRAIN,
    VALIDATION,
    a5_defects,
    in_limit,
    limit_key,
    write_split,
)
from qcapprox.errors import ModelError
from qcapprox.parent import Parent
from qcapprox.paths import (
    DATA_DIR,
    REGISTRY_DIR,
    user_or_bundled,
    user_registry_dir,
    user_training_dir,
)
from qcapprox.store import RELAXED, Labels, Store, package_versions

CARD = "card.json"


def check_limit(limit: int) -> None:
    """Refuse a limit that is not one of the study's 13."""
    if limit not in LIMITS:
        raise ModelError(f"limit {limit} is not one of {LIMITS}")


# ----------------------------------------------------------------------------- training sets
def training_store(dopant: str) -> Path:
    """The labelled training set of a dopant: the user's (``<user data>/training/``) if it
    exists, else the bundled one (``data/training/``); the user's path for a new dopant."""
    name = f"sc60{dopant.lower()}13.h5"
    return user_or_bundled(user_training_dir() / name, DATA_DIR / "training" / name)


def training_path(dopant: str, training: Path | None = None) -> Path:
    """The training store a member of a dopant is fitted on: `training` if given, else
    `training_store`; refused with what to run when it does not exist."""
    path = Path(training) if training is not None else training_store(dopant)
    if not path.exists():
        raise ModelError(
            f"no training set for {dopant} ({path}); enumerate and label one first "
            f"(`qcapprox enumerate enumeration/training.toml -d {dopant} -o {path}` and "
            f"`qcapprox label {path}`)"
        )
    return path


@dataclass
class TrainingSet:
    """A labelled training store (one label set) and its split: the rows a member of each
    limit is fitted, validated and tested on."""

    store: Store
    labels: Labels
    split: np.ndarray

    @classmethod
    def load(cls, path: str | Path, labels: str = RELAXED) -> TrainingSet:
        """Read a labelled store (its split is made and stored on first use)."""
        from qcapprox.labeling import stale_hull

        split = write_split(path)
        store = Store(path)
        data = cls(store, store.label_set(labels), split)
        if why := stale_hull(store, labels):
            warnings.warn(why, stacklevel=2)
        return data

    @property
    def parent(self) -> Parent:
        return self.store.parent

    @property
    def energy(self) -> np.ndarray:
        """Total energies of the labels, eV."""
        return self.labels.energy

    @property
    def target(self) -> np.ndarray:
        """Energies above the hull of the labels, eV/atom."""
        return self.labels.e_above_hull

    def rows(self, limit: int, code: int | None = None, a5: str = "all") -> np.ndarray:
        """Usable rows of the limit-x subset: train and validation (`code` None) or those of
        one split code; `a5` = all, defects (rows with A5 defects) or pristine (none)."""
        if code is None:
            mask = (self.split == TRAIN) | (self.split == VALIDATION)
        else:
            mask = self.split == code
        mask &= self.labels.usable & in_limit(self.store.composition, limit)
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
        """SHA-256 of what a member is trained and tested on: ids, targets, split."""
        rows = np.concatenate([self.rows(limit), self.test_rows()])
        h = hashlib.sha256()
        for array in (self.store.ids[rows], self.target[rows], self.split[rows]):
            h.update(np.ascontiguousarray(array).tobytes())
        return h.hexdigest()

    def sizes(self, limit: int) -> dict[str, int]:
        """Train, validation and test rows of a member of the limit."""
        return {
            "train": len(self.rows(limit, TRAIN)),
            "validation": len(self.rows(limit, VALIDATION)),
            "test": len(self.test_rows()),
        }


# ----------------------------------------------------------------------------- cards
def rmse(predicted: np.ndarray, target: np.ndarray) -> float:
    """Root-mean-square error (NaN of no rows)."""
    if not len(predicted):
        return math.nan
    return float(np.sqrt(np.mean((np.asarray(predicted) - np.asarray(target)) ** 2)))


def member_card(
    data: TrainingSet,
    limit: int,
    backbone: str,
    test_predictions: np.ndarray,
    seconds: float,
    versions: tuple[str, ...],
    **fields: object,
) -> dict:
    """The model card of a member: backbone, dopant, limit, the `fields` of its backbone,
    what it was trained and tested on, its test predictions and RMSE (eV/atom), its
    training time and the versions of the packages that shaped it."""
    test = data.test_rows()
    target = data.target[test]
    return {
        "backbone": backbone,
        "dopant": data.parent.dopant,
        "limit": limit,
        **fields,
        "training_set": data.store.path.name,
        "training_set_sha256": data.digest(limit),
        "labels": data.labels.kind,
        "sizes": data.sizes(limit),
        "left_out": int((~data.labels.usable).sum()),
        "labeler": f"{data.labels.describe}, {data.labels.attrs.get('calculator_version')}",
        "test_rmse": rmse(test_predictions, target),
        "test_mean": float(target.mean()),
        "test_ids": [int(i) for i in data.store.ids[test]],
        "test_target": [float(v) for v in target],
        "test_predictions": [float(v) for v in test_predictions],
        "fit_seconds": round(seconds, 2),
        "versions": package_versions(versions),
    }


# ----------------------------------------------------------------------------- registry
def member_path(backbone: str, dopant: str, limit: int, labels: str = RELAXED) -> Path:
    """A member's directory relative to a registry: <backbone>/<dopant>/limit-XX, under
    <labels>/ for members not trained on relaxed labels (e.g. single-point/)."""
    path = Path(backbone) / dopant / limit_key(limit)
    return path if labels == RELAXED else Path(labels) / path


def card_dir(member: Path, registry: Path | None = None) -> Path:
    """Where a member (a path relative to a registry) is read: under `registry` if given;
    else the user's registry if it has the card, else the bundled one if that has it, else
    the user's (a new member)."""
    if registry is not None:
        return Path(registry) / member
    user, bundled = user_registry_dir() / member / CARD, REGISTRY_DIR / member / CARD
    return user_or_bundled(user, bundled).parent


def output_dir(member: Path, registry: Path | None = None) -> Path:
    """Where a member is written: under `registry` if given, else the user's registry."""
    return Path(registry or user_registry_dir()) / member


def read_card(directory: Path) -> dict | None:
    """The card in a member's directory, or None."""
    path = Path(directory) / CARD
    return json.loads(path.read_text()) if path.exists() else None


def write_card(path: Path, card: dict) -> None:
    """Write a card (JSON) under a temporary name and rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(card, indent=1) + "\n")
    tmp.replace(path)


def publish(directory: Path, card: dict, files: Mapping[str, Path] | None = None) -> None:
    """Copy a member's files (name -> source) into its directory, then write its card, each
    under a temporary name renamed into place: a card is there only once its files are."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, source in (files or {}).items():
        tmp = directory / (name + ".tmp")
        shutil.copyfile(source, tmp)
        tmp.replace(directory / name)
    write_card(directory / CARD, card)


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
