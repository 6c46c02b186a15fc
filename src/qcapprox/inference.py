"""The bundled dopants' inference sets screened with the shipped families: the pipeline of
`qcapprox demo`.

For every bundled dopant M (Pt, Pd, Ir, Rh), each step resumable:

1. inference set: the inference recipe (all A4 decorations by default) enumerated for the
   bundled parent of M into `out_dir/sc60<m>13-inference-a4.h5`;
2. predictions: the shipped RF family on relaxed labels (the target) where M's training
   set has them, else the single-point family (the cheap screen); a dopant whose training
   set has no labels yet is skipped;
3. results: the predicted stores bundled into `out_dir/sc60m13-inference.h5`, which
   ``qcapprox tui`` opens.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from qcapprox.enumeration.recipe import Recipe
from qcapprox.enumeration.run import run_recipe
from qcapprox.models.base import training_store
from qcapprox.parent import Parent
from qcapprox.paths import RECIPES_DIR
from qcapprox.prediction import predict_store
from qcapprox.results import bundle
from qcapprox.store import Store
from qcapprox.words import BUNDLED_DOPANTS, RELAXED, SINGLE_POINT, Progress, family_key

#: The inference recipe of the bundled dopants: every A4 decoration.
INFERENCE_RECIPE = RECIPES_DIR / "inference-a4.toml"
#: The results file of the bundled inference sets, in the output directory.
RESULTS_NAME = "sc60m13-inference.h5"


@dataclass(frozen=True)
class BundledScreen:
    """What `screen_bundled` wrote: the results file (None when no dopant had labels to
    predict with), the family predicted per dopant (`family_key`: `rf` on relaxed labels,
    `rf-single-point` standing in) and the dopants skipped (training set not labelled)."""

    results: Path | None
    families: dict[str, str]
    skipped: tuple[str, ...]


def inference_store(out_dir: Path, dopant: str) -> Path:
    """The inference store of a dopant in the output directory."""
    return Path(out_dir) / f"sc60{dopant.lower()}13-inference-a4.h5"


def _counts(progress: Progress | None) -> Callable[[int, int, int], None] | None:
    """`run_recipe`'s progress (tasks done, total, rows written) as a `Progress`."""
    return None if progress is None else lambda done, total, _rows: progress(done, total)


def screen_bundled(
    out_dir: Path,
    step: Callable[[str], Progress] | None = None,
    dopants: Sequence[str] = BUNDLED_DOPANTS,
    recipe: Path = INFERENCE_RECIPE,
) -> BundledScreen:
    """Run (or resume) the pipeline above in `out_dir` (made if missing); `step(name)`
    returns the progress callback of a step."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stores, families, skipped = {}, {}, []
    for dopant in dopants:
        store = inference_store(out_dir, dopant)
        progress = step(f"enumerate {store.name}") if step else None
        run_recipe(Recipe.load(recipe), Parent.for_dopant(dopant), store, _counts(progress))
        labelled = Store(training_store(dopant)).labels
        if not labelled:
            skipped.append(dopant)
            continue
        labels = RELAXED if RELAXED in labelled else SINGLE_POINT
        families[dopant] = family_key("rf", labels)
        name = f"predict {families[dopant]} Sc60{dopant}13 (first use trains)"
        predict_store(store, "rf", labels=labels, progress=step(name) if step else None)
        stores[dopant] = store
    results = None
    if stores:
        results = out_dir / RESULTS_NAME
        bundle(stores, results, training={m: training_store(m) for m in stores})
    return BundledScreen(results, families, tuple(skipped))
