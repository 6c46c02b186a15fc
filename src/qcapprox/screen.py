"""One command for a new dopant: the whole screen of Sc60M13 for any metal M.

The chain, each step resumable (a rerun skips what is done and continues what is not):

1. references: the Sc-M competing phases relaxed with the labeler (qcapprox.references),
   unless a set exists (bundled or built before);
2. training design: the recipe's realizations (the study's Table 1 by default) enumerated
   for the parent of M (``Parent.for_dopant``: bundled, or substituted and rescaled);
3. labels: relaxed (the target) or single points (the cheap screen) with the labeler; the
   relaxations start from the bundled Pt set's relaxed geometries of the same
   configurations when it has them (`default_start`; 3-4x fewer FIRE steps), else from
   the parent geometry;
4. RF family: one Random Forest per limit on those labels (qcapprox.models.forest);
5. inference set: the inference recipe (all A4 decorations by default) enumerated;
6. predictions: the family's energy above the hull of every inference configuration;
7. results: one results file (qcapprox.results.bundle) that ``qcapprox tui`` opens.

The training set and the model cards of a new dopant go to the user data directory
(qcapprox.paths), where ``Hull.load``, ``qcapprox train`` and ``qcapprox predict`` find them,
or to the training store and registry given (`training_set`, `registry`); the inference
store and the results file go to `out_dir`. Nothing bundled is written: a bundled dopant
reuses its bundled references and labelled training set.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from qcapprox.enumeration.recipe import Recipe
from qcapprox.enumeration.run import Plan, run_recipe
from qcapprox.errors import QcapproxError
from qcapprox.hull import dopant_symbol, reference_path
from qcapprox.labeling import Relaxation, label_store
from qcapprox.models import backbone
from qcapprox.models.base import training_store
from qcapprox.parent import Parent
from qcapprox.paths import DATA_DIR, RECIPES_DIR, is_bundled
from qcapprox.prediction import predict_store
from qcapprox.references import build_references, missing_phases
from qcapprox.results import bundle
from qcapprox.settings import DEFAULT_CALCULATOR, LABEL_CHUNK, LABEL_WORKERS
from qcapprox.store import Store
from qcapprox.words import LIMITS, RELAXED, SINGLE_POINT

#: Rough CHGNet costs on this machine (2 cores), seconds: per structure and worker, a
#: relaxation from the parent geometry (0.17-0.23 s per FIRE step measured on the Pt
#: relabeling, about 200 steps on average) or from a source's relaxed geometry (Rh from
#: Pt: 10.5 s against 34.8 s from the parent, `benchmarks/relaxation.py --start-from`), and
#: a single point with forces and stress (0.11-0.15 s, the bundled labeler); per reference
#: phase (13 Sc-Os phases in 60-83 s).
CHGNET_SECONDS = {RELAXED: 46.0, "relaxed from a source": 14.0, SINGLE_POINT: 0.15,
                  "reference": 5.0}  # fmt: skip
#: The bundled set whose relaxed geometries a new dopant's relaxations start from.
START_SOURCE = DATA_DIR / "training" / "sc60pt13.h5"


def default_start(symbol: str) -> Path | None:
    """Where a dopant's relaxations start by default: the bundled Pt training set's relaxed
    geometries (the Table 1 configurations, which every dopant's design shares or is a part
    of) once it has relaxed labels, except for Pt itself; else None, the parent geometry."""
    if symbol == "Pt" or not START_SOURCE.exists():
        return None
    return START_SOURCE if RELAXED in Store(START_SOURCE).labels else None


Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Screen:
    """The screen of one dopant: where each step reads and writes, and how it labels."""

    dopant: str
    out_dir: Path
    calculator: str = DEFAULT_CALCULATOR
    relaxation: Relaxation | None = field(default_factory=Relaxation)
    design: Path = RECIPES_DIR / "training.toml"
    inference: Path = RECIPES_DIR / "inference-a4.toml"
    limits: tuple[int, ...] = LIMITS
    n_workers: int = LABEL_WORKERS
    chunk_size: int = LABEL_CHUNK
    training_set: Path | None = None
    registry: Path | None = None
    start_from: Path | None = None
    scheduler: str | None = None

    @property
    def symbol(self) -> str:
        return dopant_symbol(self.dopant)

    @property
    def labels(self) -> str:
        """The label set trained on: relaxed (the target) or single-point."""
        return SINGLE_POINT if self.relaxation is None else RELAXED

    @property
    def training(self) -> Path:
        """The training store: the one given, else the dopant's (the user's or bundled)."""
        return Path(self.training_set) if self.training_set else training_store(self.symbol)

    @property
    def inference_store(self) -> Path:
        return Path(self.out_dir) / f"sc60{self.symbol.lower()}13-inference.h5"

    @property
    def results(self) -> Path:
        return Path(self.out_dir) / f"sc60{self.symbol.lower()}13-results.h5"

    def parent(self) -> Parent:
        return Parent.for_dopant(self.symbol)

    def check(self) -> None:
        """Refuse what would fail late: a design without a test set, a bundled training
        set without the labels asked for, a missing output directory, a start store
        without relaxed labels."""
        if Recipe.load(self.design).test_orbit is None:
            raise QcapproxError(
                f"{self.design}: the training design needs a [test] table (the test set), "
                "as in enumeration/training.toml"
            )
        Recipe.load(self.inference)
        if is_bundled(self.training) and self.labels not in Store(self.training).labels:
            raise QcapproxError(
                f"the bundled training set {self.training} has no {self.labels} labels yet; "
                "screen with the other label set or label it first"
            )
        if not Path(self.out_dir).is_dir():
            raise QcapproxError(f"--out {self.out_dir}: no such directory")
        if self.start_from is not None and self.relaxation is not None:
            Store(self.start_from).label_set(RELAXED)  # a store with relaxed geometries

    def cost(self, parent: Parent) -> list[str]:
        """What the run will compute, and roughly how long it takes with CHGNet here."""
        path = reference_path(self.symbol)
        refs = 0 if is_bundled(path) else len(missing_phases(self.symbol, path))
        todo = 0
        if not is_bundled(self.training):
            done = self.training.exists() and self.labels in Store(self.training).labels
            todo = 0 if done else Plan.of(Recipe.load(self.design), parent).configurations
        inference = Plan.of(Recipe.load(self.inference), parent)
        lines = [
            f"references: {refs} Sc-{self.symbol} phases to relax"
            + (" (present)" if refs == 0 else ""),
            f"training: {todo:,} structures to label ({self.labels}) in {self.training}",
            f"RF family: {len(self.limits)} limits; inference: {inference.describe()}",
        ]
        warm = self.start_from is not None and self.relaxation is not None
        if warm:
            lines.append(
                f"relaxations start from the relaxed geometries in {self.start_from} where it "
                "has the configuration, else from the parent geometry"
            )
        if self.scheduler is not None:
            lines.append(f"labels computed on the workers of the dask scheduler {self.scheduler}")
        if self.calculator == DEFAULT_CALCULATOR:
            per_structure = CHGNET_SECONDS["relaxed from a source" if warm else self.labels]
            workers = 1 if self.scheduler else self.n_workers  # a scheduler's: unknown here
            seconds = refs * CHGNET_SECONDS["reference"] + todo * per_structure / workers
            lines.append(
                f"estimate with CHGNet on {workers} worker{'s' * (workers > 1)}: "
                f"{seconds / 3600:.1f} h of labeling (a rough upper bound: light structures "
                "relax in fewer steps)"
            )
        else:
            lines.append(f"labeler {self.calculator}: its time per structure is unknown here")
        return lines

    def run(self, step: Callable[[str], Progress]) -> Path:
        """Run (or resume) every step; `step(name)` returns the progress callback of a
        step. Returns the results file."""
        self.check()
        symbol, parent = self.symbol, self.parent()
        if not is_bundled(reference_path(symbol)):
            progress = step(f"references Sc-{symbol}")
            build_references(
                symbol, reference_path(symbol).parent, self.calculator,
                progress=lambda d, t, _: progress(d, t),
            )  # fmt: skip
        if not is_bundled(self.training):
            self.training.parent.mkdir(parents=True, exist_ok=True)
            progress = step(f"training design Sc60{symbol}13")
            run_recipe(Recipe.load(self.design), parent, self.training,
                       progress=lambda d, t, _: progress(d, t))  # fmt: skip
            if self.labels not in Store(self.training).labels:
                label_store(
                    self.training, self.calculator, self.relaxation, self.scheduler, self.n_workers,
                    self.chunk_size, progress=step(f"labels ({self.labels})"),
                    start_from=self.start_from if self.relaxation is not None else None,
                )  # fmt: skip
        backbone("rf").train(symbol, self.limits, self.labels, self.training, self.registry,
                             step(f"RF family ({self.labels})"))  # fmt: skip
        progress = step(f"inference set Sc60{symbol}13")
        run_recipe(Recipe.load(self.inference), parent, self.inference_store,
                   progress=lambda d, t, _: progress(d, t))  # fmt: skip
        predict_store(self.inference_store, "rf", self.limits, step("predictions"), self.labels,
                      self.training, self.registry)  # fmt: skip
        bundle({symbol: self.inference_store}, self.results, training={symbol: self.training})
        return self.results
