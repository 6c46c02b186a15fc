"""Training Allegro members and families: each variant is a list of stages, run by one loop.

Inputs (section 3 of the study): the decorated ideal configurations of a labelled training
store (vacancies removed, dopants substituted, atoms at the parent positions) with the
store's split (`qcapprox.datasets.write_split`): the train rows of the limit-x subset are
fitted, its validation rows stop training early, the 63 test rows are used for reporting
only. The target is the labeler's total energy (eV), fitted per atom (energy-only loss, as
in the study); ``forces=True`` adds the labeler's forces to the loss. Since E_above_hull =
E / N - (terms fixed by the composition), the per-atom energy error of a configuration *is*
its E_above_hull error.

Variants (section 4 of the study), each a plan of stages (`PLANS`):

* ``ordinary``   one stage, from scratch, on the limit-x subset.
* ``sequential`` stage 1 on the part of the limit-x subset with A5 defects, stage 2
  fine-tunes (nequip ``ModelFromCheckpoint``) on its A5-pristine part (section 4.2).
  Validation rows follow the same partition. At limit 0 there is no A5-defect part:
  stage 1 is empty and skipped, so the limit-0 member is trained exactly like the
  ordinary one (its card says ``"stages": ["pristine"]``).
* ``pretrained`` the corpus model (`qcapprox.models.allegro.corpus`, shared by every dopant
  and limit, trained once per preset and corpus) is fine-tuned (nequip
  ``ModelFromPackage``) on the limit-x subset.

Energy shifts and scales of the per-type output (PerTypeScaleShift, fixed): a model
trained from scratch on a store gets, for every type t, shift_t = e_t + <E_f> where e_t
is the elemental reference energy per atom of the hull (`qcapprox.hull.Hull`) and <E_f>
the mean formation energy per atom of the training rows (with their repeats, see
`Preset.pristine_share`), and scale = the standard
deviation of the per-atom formation energy (at least 0.01 eV); the network then learns
the deviation from the mean formation energy. ``avg_num_neighbors`` comes from nequip's own
data statistics.

A member whose card matches the training data, variant, preset and settings is never
retrained. Training runs (configs, data, checkpoints, Lightning CSV logs) go to a work
directory, by default ``$QCAPPROX_CACHE/allegro-runs/...``; an interrupted stage resumes
from its ``last.ckpt``. The packaged model and its card are written into the registry
given, else the user's (``<user data>/calculators/``), never into the bundled one.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path

import h5py
import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from qcapprox.datasets import TRAIN, VALIDATION, a5_defects
from qcapprox.errors import AllegroError
from qcapprox.hull import Hull
from qcapprox.models.allegro.config import fine_tune_model, scratch_model
from qcapprox.models.allegro.corpus import pretrain_corpus_model
from qcapprox.models.allegro.inference import (
    MODEL_FILE,
    AllegroMember,
    finished,
    model_fields,
    registry_dir,
)
from qcapprox.models.allegro.presets import Preset, backbone_of, get_preset
from qcapprox.models.allegro.runner import Stage, prepare_workdir, train_and_package
from qcapprox.models.base import (
    Setup,
    TrainingSet,
    check_limit,
    member_card,
    member_path,
    output_dir,
    publish,
    rmse,
    training_path,
)
from qcapprox.paths import cache_root
from qcapprox.settings import DEFAULT_PRESET, THREADS_ENV
from qcapprox.words import LIMITS, RELAXED

CARD_VERSIONS = (
    "qcapprox", "nequip", "nequip-allegro", "torch", "lightning", "e3nn", "numpy", "ase",
)  # fmt: skip


def default_workdir(
    variant: str, dopant: str, limit: int, preset: str, labels: str = RELAXED
) -> Path:
    """Scratch directory of one member's training runs, laid out as the registry
    (`member_path`: single-point members under single-point/), then by preset:
    allegro-runs/[<labels>/]<backbone>/<M>/<preset>/limit-XX."""
    member = member_path(backbone_of(variant), dopant, limit, labels)
    return cache_root() / "allegro-runs" / member.parent / preset / member.name


# ----------------------------------------------------------------------------- data
def _label_forces(data: TrainingSet) -> list[np.ndarray] | None:
    """Labelled forces per configuration (decorated atom order; single points only)."""
    key = f"labels/{data.labels.kind}"
    with h5py.File(data.store.path, "r") as handle:
        if f"{key}/forces" not in handle:
            return None
        forces = handle[f"{key}/forces"][:]
        offset = handle[f"{key}/atoms_offset"][:]
    return [forces[offset[i] : offset[i + 1]] for i in range(len(offset) - 1)]


def _images(data: TrainingSet, forces: bool) -> Callable[[np.ndarray], list[Atoms]]:
    """The decorated configurations of rows with their labelled energy (and forces)."""
    labelled = _label_forces(data) if forces else None

    def images(rows: np.ndarray) -> list[Atoms]:
        out = []
        for row in rows:
            atoms = data.parent.decorate(data.occupancy[row])
            results = {"energy": float(data.energy[row])}
            if forces:
                if labelled is None or not np.isfinite(labelled[row]).all():
                    raise AllegroError(
                        f"{data.store.path}: configuration {data.ids[row]} has no "
                        "forces in its labels; train with forces=False"
                    )
                results["forces"] = labelled[row]
            atoms.calc = SinglePointCalculator(atoms, **results)
            atoms.info["config_id"] = int(data.ids[row])
            out.append(atoms)
        return out

    return images


# ----------------------------------------------------------------------------- plans
@dataclass(frozen=True)
class Job:
    """What a variant plans its stages from."""

    data: TrainingSet
    hull: Hull
    limit: int
    preset: Preset
    forces: bool
    workdir: Path
    corpus: dict | None = None  # the corpus model's card (pretrained variant)

    @property
    def types(self) -> list[str]:
        return [self.data.parent.host, self.data.parent.dopant]

    def rows(self, code: int, a5: str = "all") -> np.ndarray:
        return self.data.rows(self.limit, code, a5)

    def train_rows(self, a5: str = "all") -> np.ndarray:
        """The training rows a stage is fitted on: A5-pristine ones repeated as the
        preset says (`Preset.oversampled`)."""
        rows = self.rows(TRAIN, a5)
        return self.preset.oversampled(rows, a5_defects(self.data.composition[rows]) == 0)

    def scratch(self, rows: np.ndarray) -> dict:
        """An AllegroModel from scratch, shifted and scaled by the formation energies of
        `rows`: per type, the elemental energy + the mean E_f per atom; the E_f spread."""
        parent = self.data.parent
        n_host, n_dop = parent.formula_counts(self.data.occupancy[rows])
        e_form = self.hull.formation_energy(self.data.energy[rows], n_host, n_dop)
        mean = float(np.mean(e_form))
        shifts = {parent.host: self.hull.e_host + mean, parent.dopant: self.hull.e_dopant + mean}
        scale = max(float(np.std(e_form)), 0.01)
        return scratch_model(self.preset, self.types, shifts, scale, self.forces)


@dataclass(frozen=True)
class Plan:
    """The stages of a member, its model's types, the hyper-parameters its card records
    and the card fields its variant adds."""

    stages: list[Stage]
    types: list[str]
    hyperparameters: dict
    card: dict = field(default_factory=dict)


def _ordinary(job: Job) -> Plan:
    train = job.train_rows()
    model = job.scratch(train)
    stage = Stage("limit", train, job.rows(VALIDATION), model, job.preset.lr)
    return Plan([stage], job.types, model)


def _sequential(job: Job) -> Plan:
    if job.limit == 0:  # no A5-defect part: the pristine stage alone, from scratch
        plan = _ordinary(job)
        return replace(plan, stages=[replace(plan.stages[0], name="pristine", directory="limit")])
    val_all = job.rows(VALIDATION)
    # a part without validation rows (small user stores) validates on the whole subset
    val_d, val_p = job.rows(VALIDATION, "defects"), job.rows(VALIDATION, "pristine")
    checked_d = "A5-defect rows" if len(val_d) else "all rows of the limit (no A5-defect ones)"
    checked_p = "A5-pristine rows" if len(val_p) else "all rows of the limit (no A5-pristine)"
    model = job.scratch(job.train_rows("defects"))
    first = Stage("stage1-a5-defects", job.train_rows("defects"), val_d if len(val_d) else val_all,
                  model, job.preset.lr, notes={"validated_on": checked_d})  # fmt: skip
    best = job.workdir / first.dirname / "best.ckpt"
    tuned = fine_tune_model(
        {"_target_": "nequip.model.ModelFromCheckpoint", "checkpoint_path": str(best)}, job.forces
    )
    second = Stage("stage2-a5-pristine", job.train_rows("pristine"),
                   val_p if len(val_p) else val_all, tuned, job.preset.fine_tune_lr,
                   fine_tune=True, notes={"validated_on": checked_p})  # fmt: skip
    return Plan([first, second], job.types, model)


def _pretrained(job: Job) -> Plan:
    base = job.corpus
    if job.data.parent.dopant not in base["type_names"]:
        raise AllegroError(
            f"the corpus model knows {base['type_names']}, not {job.data.parent.dopant}"
        )
    tuned = fine_tune_model(
        {"_target_": "nequip.model.ModelFromPackage", "package_path": base["model_path"]},
        job.forces,
    )
    train, val, lr = job.train_rows(), job.rows(VALIDATION), job.preset.fine_tune_lr
    stage = Stage("finetune", train, val, tuned, lr, fine_tune=True)
    card = {"corpus": base["corpus"], "corpus_sha256": base["corpus_sha256"],
            "corpus_model": base["model_path"]}  # fmt: skip
    return Plan([stage], base["type_names"], base["hyperparameters"], card)


PLANS: dict[str, Callable[[Job], Plan]] = {
    "ordinary": _ordinary,
    "sequential": _sequential,
    "pretrained": _pretrained,
}


# ----------------------------------------------------------------------------- members
def train_allegro_member(
    dopant: str,
    limit: int,
    variant: str = "ordinary",
    preset: str | Preset = DEFAULT_PRESET,
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

    `store` defaults to the dopant's training set (the user's, else the bundled one);
    `registry` (where the member is read and written) to the user's registry, read after
    it the bundled one; `corpus` (pretrained variant) to data/pretraining/sc-m-corpus.extxyz;
    `labels` names the label set of the store (relaxed: the target; or single-point).
    """
    preset_obj = get_preset(preset)
    backbone = backbone_of(variant)  # validates the variant
    check_limit(limit)
    data = TrainingSet.load(training_path(dopant, store), labels)
    if data.parent.dopant != dopant:
        raise AllegroError(f"{data.store.path} holds Sc-{data.parent.dopant}, not Sc-{dopant}")
    if data.setup != Setup(data.setup.labels):
        raise AllegroError(
            f"Allegro families train on the Table 1 design with the start policy; "
            f"{data.setup.name} is for the tabular backbones (rf, hgb, ce, ...)"
        )
    registry = Path(registry) if registry else None
    digest = data.digest(limit)
    settings = {"forces": forces, "preset_sha256": preset_obj.digest()}
    corpus_card = None
    if variant == "pretrained":  # its first stage: the shared corpus model
        corpus_card = pretrain_corpus_model(preset_obj, corpus=corpus, registry=registry)
        settings["corpus_sha256"] = corpus_card["corpus_sha256"]
    where = registry_dir(variant, dopant, limit, registry, labels)
    done = finished(where, {"training_set_sha256": digest, "preset": preset_obj.name, **settings})
    if done is not None:
        return done

    workdir = Path(workdir or default_workdir(variant, dopant, limit, preset_obj.name, labels))
    prepare_workdir(workdir, {"digest": digest, **settings})
    start = time.perf_counter()
    job = Job(data, Hull.load(dopant), limit, preset_obj, forces, workdir, corpus_card)
    plan = PLANS[variant](job)
    packaged, records = train_and_package(
        workdir,
        plan.stages,
        _images(data, forces),
        preset_obj,
        plan.types,
        forces,
        workdir / MODEL_FILE,
    )
    card = _card(job, backbone, variant, records, plan, packaged, time.perf_counter() - start)
    publish(
        output_dir(member_path(backbone, dopant, limit, labels), registry),
        card,
        {MODEL_FILE: packaged},
    )
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


def _card(
    job: Job,
    backbone: str,
    variant: str,
    records: list[dict],
    plan: Plan,
    model_path: Path,
    seconds: float,
) -> dict:
    """The model card; validation and test RMSE of E_above_hull from the packaged model."""
    data, preset = job.data, job.preset
    member = AllegroMember({}, model_path, job.hull, data.parent)
    val = data.rows(job.limit, VALIDATION)
    pred_val = member.predict(data.occupancy[val])
    return member_card(
        data, job.limit, backbone, member.predict(data.occupancy[data.test_rows()]),
        seconds, CARD_VERSIONS,
        variant=variant,
        preset=preset.name,
        preset_sha256=preset.digest(),
        forces=job.forces,
        target="total energy (eV), fitted per atom" + (" and forces" if job.forces else ""),
        stages=records,
        epochs=int(sum(s["epochs"] for s in records)),
        hyperparameters={
            "model": _resolved(plan.hyperparameters, records[0].get("data_statistics", {})),
            "preset": {k: v for k, v in asdict(preset).items() if k != "extra"},
        },
        validation_rmse=rmse(pred_val, data.target[val]),
        **model_fields(model_path),
        r_max=member.energy_model.r_max,
        type_names=member.energy_model.type_names,
        **plan.card,
    )  # fmt: skip


def train_allegro_family(
    dopant: str,
    variant: str = "ordinary",
    limits: Sequence[int] = LIMITS,
    preset: str | Preset = DEFAULT_PRESET,
    progress: Callable[[int, int], None] | None = None,
    jobs: int = 1,
    **kwargs,
) -> list[dict]:
    """Train every requested limit (finished limits are skipped); returns the cards in the
    order of `limits`.

    The limits of every variant are independent members. `jobs` > 1 trains that many at
    once, each in its own process with cores // jobs torch threads (unless
    $QCAPPROX_TORCH_THREADS says otherwise): on 2 cores, two members at once with one
    thread each give 1.6x the members per hour of one at a time with two threads, with
    the same models (benchmarks/allegro_training.py). `progress(done, total)` is called
    as members finish. Keyword arguments go to `train_allegro_member` (store, registry,
    forces, corpus, labels).
    """
    if jobs < 1:
        raise AllegroError(f"jobs {jobs}: train at least one member at a time")
    if jobs == 1 or len(limits) < 2:
        cards = []
        for k, limit in enumerate(limits):
            cards.append(train_allegro_member(dopant, limit, variant, preset, **kwargs))
            if progress:
                progress(k + 1, len(limits))
        return cards
    if variant == "pretrained":  # the shared corpus model, once, before the limits use it
        pretrain_corpus_model(preset, corpus=kwargs.get("corpus"), registry=kwargs.get("registry"))
    threads = max(1, len(os.sched_getaffinity(0)) // jobs)
    done: dict[int, dict] = {}
    with ProcessPoolExecutor(
        jobs, mp_context=get_context("spawn"), initializer=_share_cores, initargs=(threads,)
    ) as pool:
        futures = {
            pool.submit(train_allegro_member, dopant, limit, variant, preset, **kwargs): limit
            for limit in limits
        }
        try:
            for future in as_completed(futures):
                done[futures[future]] = future.result()
                if progress:
                    progress(len(done), len(limits))
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)  # members not started stay so
            raise
    return [done[limit] for limit in limits]


def _share_cores(threads: int) -> None:
    """Worker initializer: torch's threads of one of several members trained at once."""
    os.environ.setdefault(THREADS_ENV, str(threads))
