"""The shared words of qcapprox (../shared/DESIGN.md), in a module that imports nothing
heavy, so the command line's help and the UI's first frame can use them without loading
h5py, ASE, spglib, pymatgen or torch.

- limit: the largest number of A5 defects (vacancies + M) in a training subset; the study's
  13 nested limits are 0, 2, ..., 24 (`LIMITS`), named `limit-00` ... `limit-24`;
- label set: `relaxed` (positions and cell relaxed: the target) or `single-point` (the
  parent geometry: the cheap screen);
- mapping policy: what a relaxed label belongs to (`qcapprox.mapping`);
- backbone: a model kind (`FOREST_BACKBONES`, `ALLEGRO_BACKBONES`); family: one backbone
  trained for one dopant at all 13 limits, named by `family_key`;
- progress: the one callback protocol of long work (`Progress`);
- the bundled dopants, the identification tolerance and the size guards of the commands.
"""

from __future__ import annotations

from typing import Protocol

LIMITS = tuple(range(0, 25, 2))
RELAXED, SINGLE_POINT = "relaxed", "single-point"
LABEL_KINDS = (RELAXED, SINGLE_POINT)
#: start: the configuration it started from (the study's convention); kept: only rows that
#: kept their identity; relaxed-into: the configuration it relaxed into.
POLICIES = ("start", "kept", "relaxed-into")
DEFAULT_POLICY = "start"
BUNDLED_DOPANTS = ("Pt", "Pd", "Ir", "Rh")
#: Largest distance (A) from an atom to the parent site it is assigned to in `match`.
MAX_DISPLACEMENT = 2.5
#: A larger enumeration needs `force` (qcapprox enumerate --force).
MAX_CONFIGURATIONS = 10_000_000
#: A larger store needs `max_rows=None` (qcapprox predict --force).
MAX_ROWS = 5_000_000


def limit_key(limit: int) -> str:
    """The name of a limit, in stores, results and the registry: 8 -> 'limit-08'."""
    return f"limit-{int(limit):02d}"


#: Tabular backbones (`qcapprox.models.forest.REGRESSORS`): on defect descriptors, or on
#: cluster correlation functions (the `-cf` ones and the cluster expansion `ce`).
FOREST_BACKBONES = ("rf", "hgb", "xgboost", "lightgbm", "catboost", "rf-cf", "hgb-cf", "ce")
#: The gradient-boosting ones among them (the study's "boosting" row).
BOOSTING_BACKBONES = ("hgb", "xgboost", "lightgbm", "catboost", "hgb-cf")
#: Allegro variants and the backbone names of their families.
ALLEGRO_BACKBONES = {
    "ordinary": "allegro",
    "sequential": "allegro-sequential",
    "pretrained": "allegro-pretrained",
}
BACKBONE_NAMES = (*FOREST_BACKBONES, *ALLEGRO_BACKBONES.values())


def family_key(backbone: str, labels: str = RELAXED) -> str:
    """Name of a family in stores, results and reports: the backbone (e.g. `rf`) for the
    family trained on relaxed labels with the study's design (the target),
    `<backbone>-<set-up>` otherwise (e.g. `rf-single-point`, the cheap screen, or
    `ce-relaxed+depth`; `qcapprox.models.base.Setup`)."""
    return backbone if labels == RELAXED else f"{backbone}-{labels}"


def split_family_key(key: str) -> tuple[str, str]:
    """(backbone, set-up name) of a family name: the inverse of `family_key`."""
    for name in sorted(BACKBONE_NAMES, key=len, reverse=True):
        if key == name:
            return key, RELAXED
        rest = key.removeprefix(f"{name}-")
        if rest != key and rest.split("+")[0] in LABEL_KINDS:
            return name, rest
    return key, RELAXED


class Progress(Protocol):
    """The progress callback of long work: `progress(done, total)` after each step, `done`
    of `total` units (configurations, rows, members) finished. The command line shows it as
    a rich bar on a terminal and as log lines (counts and ETA) otherwise."""

    def __call__(self, done: int, total: int) -> None: ...
