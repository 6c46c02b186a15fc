"""Model families, one backbone trained for one dopant at all 13 limits: the registry of
backbones and what a member is.

A member (one backbone, one dopant, one limit) has a card and predicts the energy above the
hull of occupancies of its parent (`Member`). `BACKBONES` names every backbone and knows
which module implements it: scikit-learn regressors on defect descriptors (`rf`, `hgb`,
`xgboost`, `lightgbm`, `catboost`; `qcapprox.models.forest`) and the Allegro variants
(`allegro`, `allegro-sequential`, `allegro-pretrained`; `qcapprox.models.allegro`). The
command line, batch prediction and the results file name backbones through it
(`backbone(name)`): load a member, train a family, find a member's card. What every backbone
shares (training sets and their digest, the card, the registry layout) is in
`qcapprox.models.base`. The implementations never import this module, and are imported only
when a member is loaded or trained (scikit-learn, torch and nequip are heavy).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from qcapprox.errors import ModelError
from qcapprox.models.forest import REGRESSORS
from qcapprox.words import ALLEGRO_BACKBONES, LIMITS, RELAXED, Progress

if TYPE_CHECKING:
    import numpy as np

    from qcapprox.parent import Parent

class Member(Protocol):
    """One trained model: one backbone, one dopant, one limit."""

    card: dict
    parent: Parent

    def predict(self, occupancy: np.ndarray) -> np.ndarray:
        """Energies above the hull (eV/atom) of (n, 36) occupancies of the parent."""


@dataclass(frozen=True)
class Backbone(ABC):
    """A model kind: its name, its variant within its kind, and the options its training
    takes besides the dopant, limits, label set, training store and registry."""

    name: str
    variant: str | None = None
    options: tuple[str, ...] = ()

    @abstractmethod
    def load(
        self,
        dopant: str,
        limit: int,
        labels: str = RELAXED,
        training: Path | None = None,
        registry: Path | None = None,
        parent: Parent | None = None,
    ) -> Member:
        """The member of a dopant and limit, trained on `labels` and read from `registry`
        (default: the user's, then the bundled one). A forest is fitted on `training` (default:
        the dopant's training store) and predicts that store's parent; an Allegro member is
        only read (`training` unused) and predicts configurations of `parent` (default: its
        training store's)."""

    @abstractmethod
    def card_dir(
        self, dopant: str, limit: int, labels: str = RELAXED, registry: Path | None = None
    ) -> Path:
        """The registry directory a member's card is read from."""

    @abstractmethod
    def train(
        self,
        dopant: str,
        limits: Sequence[int] = LIMITS,
        labels: str = RELAXED,
        training: Path | None = None,
        registry: Path | None = None,
        progress: Progress | None = None,
        **options: object,
    ) -> list[dict]:
        """Train the family at `limits` (finished members are kept); returns the cards."""


class ForestBackbone(Backbone):
    """A scikit-learn regressor on defect descriptors, 5-fold (`qcapprox.models.forest`)."""

    def load(self, dopant, limit, labels=RELAXED, training=None, registry=None, parent=None):
        from qcapprox.models.forest import load_member

        return load_member(dopant, limit, self.name, labels, training, registry)

    def card_dir(self, dopant, limit, labels=RELAXED, registry=None):
        from qcapprox.models.forest import registry_dir

        return registry_dir(self.name, dopant, limit, labels, registry)

    def train(self, dopant, limits=LIMITS, labels=RELAXED, training=None, registry=None,
              progress=None, **options):  # fmt: skip
        from qcapprox.models.forest import train_family

        return train_family(dopant, self.name, limits, labels, training, registry, progress)


class AllegroBackbone(Backbone):
    """An Allegro variant (`qcapprox.models.allegro`), read from the registry only (never
    trained on load)."""

    def load(self, dopant, limit, labels=RELAXED, training=None, registry=None, parent=None):
        from qcapprox.models.allegro.inference import load_allegro_member

        return load_allegro_member(dopant, limit, self.variant, registry, parent, labels)

    def card_dir(self, dopant, limit, labels=RELAXED, registry=None):
        from qcapprox.models.allegro.inference import registry_dir

        return registry_dir(self.variant, dopant, limit, registry, labels)

    def train(self, dopant, limits=LIMITS, labels=RELAXED, training=None, registry=None,
              progress=None, **options):  # fmt: skip
        from qcapprox.models.allegro.training import train_allegro_family

        return train_allegro_family(dopant, self.variant, limits, progress=progress,
                                    store=training, registry=registry, labels=labels,
                                    **options)  # fmt: skip


def _allegro(variant: str, name: str) -> AllegroBackbone:
    corpus = ("corpus",) if variant == "pretrained" else ()
    return AllegroBackbone(name, variant, ("preset", "forces", "jobs", *corpus))


#: Every backbone, in the order results show them: rf, the Allegro variants, the other
#: regressors.
BACKBONES: dict[str, Backbone] = {
    b.name: b
    for b in (
        ForestBackbone("rf"),
        *(_allegro(variant, name) for variant, name in ALLEGRO_BACKBONES.items()),
        *(ForestBackbone(name) for name in sorted(REGRESSORS) if name != "rf"),
    )
}


def trained_backbones(
    dopant: str, labels: str = RELAXED, registry: Path | None = None
) -> list[str]:
    """The backbones with a card at every limit for a dopant and label set (in the registry,
    default the user's then the bundled one), in `BACKBONES` order."""
    from qcapprox.models.base import CARD

    return [
        name
        for name, kind in BACKBONES.items()
        if all((kind.card_dir(dopant, x, labels, registry) / CARD).exists() for x in LIMITS)
    ]


def backbone(name: str, variant: str | None = None) -> Backbone:
    """A backbone by name (rf, hgb, ..., allegro, allegro-sequential, ...), or the
    `variant` of the kind `name` belongs to (`backbone("allegro", "sequential")`)."""
    if name not in BACKBONES:
        raise ModelError(f"unknown regressor {name!r}: the backbones are {', '.join(BACKBONES)}")
    found = BACKBONES[name]
    if variant is None or variant == found.variant:
        return found
    kind = type(found)
    siblings = {b.variant: b for b in BACKBONES.values() if type(b) is kind and b.variant}
    if variant not in siblings:
        known = f"use one of {', '.join(siblings)}" if siblings else "it has no variants"
        raise ModelError(f"unknown variant {variant!r} of {name}: {known}")
    return siblings[variant]
