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

Nothing read from a file chooses where to read: the dopant of a member or training store
must be a metal's element symbol and the backbone and set-up plain names (`member_path`),
and every path built from them must resolve inside its root (`inside`), so a store whose
`dopant` is `../../x` or a symbolic link out of a registry reads nothing outside it. A card
is checked against `CARD_SCHEMA` when it is read and before it is written (`check_card`).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qcapprox.datasets import (
    TEST,
    TRAIN,
    VALIDATION,
    a5_defects,
    in_limit,
    make_split,
    write_split,
)
from qcapprox.errors import ModelError
from qcapprox.mapping import apply_policy
from qcapprox.parent import Parent
from qcapprox.paths import (
    DATA_DIR,
    REGISTRY_DIR,
    user_or_bundled,
    user_registry_dir,
    user_training_dir,
)
from qcapprox.store import Labels, Store, is_metal_symbol, package_versions
from qcapprox.words import DEFAULT_POLICY, LABEL_KINDS, LIMITS, POLICIES, RELAXED, limit_key

CARD = "card.json"
PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_+-]*")  # a backbone or a set-up name
SHA256 = re.compile(r"[0-9a-f]{64}")
NUMBER = (int, float)
#: The fields every member card has (`member_card`) and their JSON types; `check_card`
#: checks their values too.
CARD_SCHEMA: dict[str, tuple[type, ...]] = {
    "backbone": (str,),
    "dopant": (str,),
    "limit": (int,),
    "training_set_sha256": (str,),
    "labels": (str,),
    "labeler": (str,),
    "sizes": (dict,),
    "test_rmse": NUMBER,
    "test_mean": NUMBER,
    "test_ids": (list,),
    "test_target": (list,),
    "test_predictions": (list,),
    "fit_seconds": NUMBER,
}


def check_limit(limit: int) -> None:
    """Refuse a limit that is not one of the study's 13."""
    if limit not in LIMITS:
        raise ModelError(f"limit {limit} is not one of {LIMITS}")


# ----------------------------------------------------------------------------- training sets
def training_store(dopant: str) -> Path:
    """The labelled training set of a dopant: the user's (``<user data>/training/``) if it
    exists, else the bundled one (``data/training/``); the user's path for a new dopant.
    The dopant must be a metal's symbol and the path resolve inside its directory."""
    name = f"sc60{check_dopant(dopant).lower()}13.h5"
    user, bundled = user_training_dir(), DATA_DIR / "training"
    path = user_or_bundled(user / name, bundled / name)
    return inside(user if path.parent == user else bundled, path, "training sets")


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


@dataclass(frozen=True)
class Setup:
    """What a family is trained on, besides the study's Table 1 design: a label set of the
    training store (`relaxed`, the target, or `single-point`), the mapping policy of the
    relaxed labels (`qcapprox.mapping.POLICIES`; `start` is the study's convention) and
    whether the depth design (`enumeration/depth.toml`, the store `sc60<m>13-depth.h5` beside
    the training store) joins the training rows. Its `name` ("relaxed", "relaxed+depth",
    "relaxed+kept", "relaxed+depth+relaxed-into", ...) is what the `labels` argument of the
    backbones, the registry path and the family key carry."""

    labels: str = RELAXED
    mapping: str = DEFAULT_POLICY
    depth: bool = False

    @property
    def name(self) -> str:
        parts = [self.labels, *(["depth"] if self.depth else [])]
        return "+".join(parts + ([] if self.mapping == DEFAULT_POLICY else [self.mapping]))

    @classmethod
    def parse(cls, name: str) -> Setup:
        """The set-up of a name (the inverse of `name`); ModelError if it is none."""
        labels, *rest = str(name).split("+")
        depth = "depth" in rest
        rest = [r for r in rest if r != "depth"]
        mapping = rest[0] if len(rest) == 1 else DEFAULT_POLICY
        setup = cls(labels, mapping, depth)
        if (
            labels not in LABEL_KINDS
            or len(rest) > 1
            or mapping not in POLICIES
            or (setup.name != name)
        ):
            raise ModelError(
                f"unknown training set-up {name!r}: a label set ({', '.join(LABEL_KINDS)}), "
                f"then optionally +depth and +<mapping policy> ({', '.join(POLICIES[1:])})"
            )
        if labels != RELAXED and mapping != DEFAULT_POLICY:
            raise ModelError(f"{name}: a mapping policy applies to relaxed labels only")
        return setup


def depth_store(training: Path) -> Path:
    """The depth design's store beside a training store: sc60pt13.h5 -> sc60pt13-depth.h5."""
    return Path(training).with_name(f"{Path(training).stem}-depth.h5")


@dataclass
class TrainingSet:
    """The training examples of a member: a labelled training store (one label set) and
    its split, under a set-up (`Setup`): the rows of each limit a member is fitted,
    validated and tested on.

    Every example has an id, an occupancy, its composition, a target (energy above the
    hull, eV/atom), its total energy (eV), a split code and whether it is usable. With the
    default set-up they are the store's rows. A mapping policy (`qcapprox.mapping`) changes
    the train and validation examples only; the test examples stay the study's (the
    relaxed label of each test configuration as it started), so test errors compare across
    policies. The depth design's rows join as train (90 %) and validation examples, except
    configurations Table 1 already holds.
    """

    store: Store
    labels: Labels
    setup: Setup
    ids: np.ndarray
    occupancy: np.ndarray
    target: np.ndarray
    energy: np.ndarray
    split: np.ndarray
    usable: np.ndarray

    @classmethod
    def load(cls, path: str | Path, labels: str = RELAXED) -> TrainingSet:
        """Read a labelled store (its split is made and stored on first use) under the
        set-up named `labels`."""
        from qcapprox.labeling import stale_hull

        setup = Setup.parse(labels)
        split = write_split(path)
        store = Store(path)
        label_set = store.label_set(setup.labels)
        if why := stale_hull(store, setup.labels):
            warnings.warn(why, stacklevel=2)
        parts = [_examples(store, label_set, split, setup.mapping)]
        if setup.depth:
            extra = Store(_existing(depth_store(path), path))
            if extra.parent.dopant != store.parent.dopant:
                raise ModelError(f"{extra.path} holds Sc-{extra.parent.dopant}, not its dopant")
            more = _examples(
                extra, extra.label_set(setup.labels), make_split(np.zeros(len(extra), bool)),
                setup.mapping,
            )  # fmt: skip
            fresh = ~np.isin(more[0], parts[0][0])
            parts.append(tuple(a[fresh] for a in more))
        columns = [np.concatenate(c) for c in zip(*parts, strict=True)]
        return cls(store, label_set, setup, *columns)

    @property
    def parent(self) -> Parent:
        return self.store.parent

    @property
    def composition(self) -> np.ndarray:
        """(n, 4) compositions of the examples."""
        return np.atleast_2d(self.parent.composition(self.occupancy))

    def rows(self, limit: int, code: int | None = None, a5: str = "all") -> np.ndarray:
        """Usable examples of the limit-x subset: train and validation (`code` None) or
        those of one split code; `a5` = all, defects (with A5 defects) or pristine (none)."""
        if code is None:
            mask = (self.split == TRAIN) | (self.split == VALIDATION)
        else:
            mask = self.split == code
        composition = self.composition
        mask &= self.usable & in_limit(composition, limit)
        defects = a5_defects(composition)
        if a5 == "defects":
            mask &= defects > 0
        elif a5 == "pristine":
            mask &= defects == 0
        elif a5 != "all":
            raise ValueError(f"a5 must be all, defects or pristine, not {a5!r}")
        return np.flatnonzero(mask)

    def test_rows(self) -> np.ndarray:
        """The usable test examples (reporting only)."""
        return np.flatnonzero((self.split == TEST) & self.usable)

    def digest(self, limit: int) -> str:
        """SHA-256 of what a member is trained and tested on: ids, targets, split."""
        rows = np.concatenate([self.rows(limit), self.test_rows()])
        h = hashlib.sha256()
        for array in (self.ids[rows], self.target[rows], self.split[rows]):
            h.update(np.ascontiguousarray(array).tobytes())
        return h.hexdigest()

    def sizes(self, limit: int) -> dict[str, int]:
        """Train, validation and test rows of a member of the limit."""
        return {
            "train": len(self.rows(limit, TRAIN)),
            "validation": len(self.rows(limit, VALIDATION)),
            "test": len(self.test_rows()),
        }


def _existing(path: Path, training: Path) -> Path:
    """A depth store that exists, or a ModelError saying how to make it."""
    if not path.exists():
        raise ModelError(
            f"no depth design beside {training} ({path}); make it with `make depth` or "
            f"`qcapprox enumerate enumeration/depth.toml -o {path}` and `qcapprox label {path}`"
        )
    return path


def _examples(
    store: Store, labels: Labels, split: np.ndarray, policy: str
) -> tuple[np.ndarray, ...]:
    """(ids, occupancy, target, energy, split, usable) of a store's rows under a mapping
    policy: train and validation rows follow the policy, test rows keep their start. Under
    `start` the examples are the store's rows, one for one."""
    if policy == DEFAULT_POLICY:
        return (store.ids, store.occupancy, labels.e_above_hull, labels.energy, split,
                labels.usable)  # fmt: skip
    test = split == TEST
    kept, occupancy, target = apply_policy(
        policy, store.ids, store.occupancy, labels.e_above_hull, labels.usable & ~test,
        labels.mapping, store.path,
    )  # fmt: skip
    ids = store.ids[kept] if policy != "relaxed-into" else labels.mapping.relaxed_into[kept]
    test_rows = np.flatnonzero(test)
    rows = np.concatenate([kept, test_rows])
    order = np.argsort(rows, kind="stable")
    return (
        np.concatenate([ids, store.ids[test_rows]])[order],
        np.concatenate([occupancy, store.occupancy[test_rows]])[order],
        np.concatenate([target, labels.e_above_hull[test_rows]])[order],
        labels.energy[rows][order],
        split[rows][order],
        np.concatenate([np.ones(len(kept), bool), labels.usable[test_rows]])[order],
    )


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
    from qcapprox.hull import DEFAULT_REFERENCES  # here: pymatgen's phase diagrams are heavy

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
        "setup": {"mapping": data.setup.mapping, "depth": data.setup.depth},
        "references": {
            "set": DEFAULT_REFERENCES,
            "stable": json.loads(data.labels.attrs.get("references", "{}")).get("stable"),
        },
        "sizes": data.sizes(limit),
        "left_out": int((~data.labels.usable).sum()),
        "labeler": f"{data.labels.describe}, {data.labels.attrs.get('calculator_version')}",
        "test_rmse": rmse(test_predictions, target),
        "test_mean": float(target.mean()),
        "test_ids": [int(i) for i in data.ids[test]],
        "test_target": [float(v) for v in target],
        "test_predictions": [float(v) for v in test_predictions],
        "fit_seconds": round(seconds, 2),
        "versions": package_versions(versions),
    }


# ----------------------------------------------------------------------------- registry
def check_dopant(dopant: object) -> str:
    """A dopant that may name files: the element symbol of a metal other than Sc, exactly
    as written (not 'pt', 'Xx', 'O' or '../x'); ModelError otherwise."""
    if not is_metal_symbol(dopant):
        raise ModelError(
            f"dopant {dopant!r} is not the element symbol of a metal other than Sc (e.g. Pt, "
            "Pd, Ir, Rh); no file is looked up for it"
        )
    return str(dopant)


def inside(root: Path, path: Path, what: str) -> Path:
    """`path` if it resolves (symbolic links followed) inside `root`; else ModelError:
    a path built from names must not lead out of its root."""
    if not Path(path).resolve().is_relative_to(Path(root).resolve()):
        raise ModelError(
            f"{path} resolves to {Path(path).resolve()}, outside the {what} {root}; refused "
            "(nothing was read from it)"
        )
    return Path(path)


def member_path(backbone: str, dopant: str, limit: int, labels: str = RELAXED) -> Path:
    """A member's directory relative to a registry: <backbone>/<dopant>/limit-XX, under
    <labels>/ for members not trained on relaxed labels (e.g. single-point/). The dopant
    must be a metal's symbol (`check_dopant`), the backbone and set-up plain names."""
    for kind, name in (("backbone", backbone), ("label set-up", labels)):
        if not (isinstance(name, str) and PLAIN_NAME.fullmatch(name)):
            raise ModelError(f"{kind} {name!r} is not a plain name: no file is looked up for it")
    check_limit(limit)
    path = Path(backbone) / check_dopant(dopant) / limit_key(limit)
    return path if labels == RELAXED else Path(labels) / path


def _registry(registry: Path) -> Path:
    """An explicit registry: a directory, or a path where one will be made."""
    registry = Path(registry)
    if registry.exists() and not registry.is_dir():
        raise ModelError(
            f"{registry} is a file, not a model registry (a directory of "
            "<backbone>/<dopant>/limit-XX/); give a directory"
        )
    return registry


def card_dir(member: Path, registry: Path | None = None) -> Path:
    """Where a member (a path relative to a registry) is read: under `registry` if given;
    else the user's registry if it has the card, else the bundled one if that has it, else
    the user's (a new member). The directory must resolve inside its registry."""
    if registry is not None:
        root = _registry(registry)
    else:
        user, bundled = user_registry_dir(), REGISTRY_DIR
        found = user_or_bundled(user / member / CARD, bundled / member / CARD)
        root = user if found.is_relative_to(user) else bundled
    return inside(root, root / member, "registry")


def output_dir(member: Path, registry: Path | None = None) -> Path:
    """Where a member is written: under `registry` if given, else the user's registry
    (inside it)."""
    root = _registry(registry) if registry is not None else user_registry_dir()
    return inside(root, root / member, "registry")


def _member_dir(directory: Path) -> bool:
    """Whether a registry directory holds a member (limit-XX), not e.g. a corpus model."""
    return re.fullmatch(r"limit-\d\d", Path(directory).name) is not None


def check_card(card: object, path: Path) -> dict:
    """A member card as read from (or about to be written to) `path`, checked against
    `CARD_SCHEMA`: a JSON object with every required field of its type (no null), a
    metal's symbol, one of the study's limits, a 64-hex training-set digest, train,
    validation and test sizes, and test ids, targets and predictions of one length.
    ModelError on one line naming the file and the first field at fault."""

    def fault(problem: str) -> ModelError:
        return ModelError(
            f"{path}: not a valid model card ({problem}); restore it or train the member "
            "again (`qcapprox train`)"
        )

    if not isinstance(card, dict):
        raise fault(f"a JSON {type(card).__name__}, expected an object")
    for key, types in CARD_SCHEMA.items():
        value = card.get(key)
        if isinstance(value, bool) or not isinstance(value, types):
            expected = " or ".join(t.__name__ for t in types)
            found = "missing" if key not in card else f"{value!r}"
            raise fault(f"{key} is {found:.60}, expected {expected}")
    if not is_metal_symbol(card["dopant"]):
        raise fault(f"dopant {card['dopant']!r} is not the element symbol of a metal")
    if card["limit"] not in LIMITS:
        raise fault(f"limit {card['limit']} is not one of {LIMITS}")
    if not SHA256.fullmatch(card["training_set_sha256"]):
        raise fault("training_set_sha256 is not 64 hexadecimal digits")
    if card["labels"] not in LABEL_KINDS:
        raise fault(f"labels {card['labels']!r} is not one of {', '.join(LABEL_KINDS)}")
    sizes = card["sizes"]
    if sorted(sizes) != ["test", "train", "validation"] or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in sizes.values()
    ):
        raise fault(f"sizes {sizes!r:.80} are not train, validation and test counts")
    tests = [card[key] for key in ("test_ids", "test_target", "test_predictions")]
    if len({len(values) for values in tests}) != 1:
        raise fault("test_ids, test_target and test_predictions differ in length")
    for key, values, types in zip(
        ("test_ids", "test_target", "test_predictions"),
        tests,
        ((int,), NUMBER, NUMBER),
        strict=True,
    ):
        if any(isinstance(v, bool) or not isinstance(v, types) for v in values):
            raise fault(f"{key} holds a value that is not a number")
    return card


def read_card(directory: Path) -> dict | None:
    """The card in a registry directory, or None: a member's checked (`check_card`), any
    other (a corpus model's) a JSON object; ModelError on one line naming the file when it
    is not JSON, not an object or not a valid member card."""
    path = Path(directory) / CARD
    if not path.exists():
        return None
    try:
        card = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError, OSError) as err:
        raise ModelError(
            f"{path}: not a readable JSON model card ({' '.join(str(err).split())}); restore "
            "it or train the member again (`qcapprox train`)"
        ) from err
    if _member_dir(directory):
        return check_card(card, path)
    if not isinstance(card, dict):
        raise ModelError(f"{path}: a JSON {type(card).__name__}, expected a model card (object)")
    return card


def write_card(path: Path, card: dict) -> None:
    """Write a card (JSON) under a temporary name and rename it into place; a member's card
    is checked first (`check_card`: never a card with a required field missing or null)."""
    if _member_dir(path.parent):
        check_card(card, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(json.dumps(card, indent=1) + "\n")
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


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
