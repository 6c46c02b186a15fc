"""Settings read in one place: the seed of the models, the default labeler, relaxation and
dask layout of labeling, the default Allegro preset and the threads of torch.

Locations (the bundled data and registry, the user data directory, the model cache) are
in `qcapprox.paths`; the limits and their names in `qcapprox.datasets`.
"""

from __future__ import annotations

import os

#: The seed of every model (forest folds and regressors, Allegro weights and data order,
#: the corpus model's validation rows) and of the corpus's strained and rattled copies.
SEED = 2024

#: The labeler unless told: CHGNet (bundled weights), a stand-in for DFT.
DEFAULT_CALCULATOR = "chgnet"
#: The relabeling's relaxation (`labeling.Relaxation`): FIRE on FrechetCellFilter until
#: every force is below FMAX eV/A, at most MAX_STEPS steps (README "Relaxation throughput").
FMAX, MAX_STEPS, OPTIMIZER = 0.02, 600, "FIRE"
#: Local dask workers of a labeling run (one per core, one thread each) and structures per
#: task (the journal commits a task at a time).
LABEL_WORKERS, LABEL_CHUNK = 2, 4

#: The Allegro preset families are trained with unless told (`models/allegro/presets.py`):
#: `fast`, which on relaxed labels (Pt, limits 8 and 14, three variants) fit the validation
#: sets better than `small` in all six members and the test set better on average, in
#: 0.54-0.60x the minutes for ordinary members and 0.58-0.73x for sequential ones (README,
#: "Benchmarks": the `fast` preset).
DEFAULT_PRESET = "fast"

THREADS_ENV = "QCAPPROX_TORCH_THREADS"


def torch_threads(default: int | None = None) -> int | None:
    """The threads of torch (and BLAS) per process: ``$QCAPPROX_TORCH_THREADS`` if set,
    else `default`: 1 in labeling workers (several share the cores), None (torch's and
    OpenMP's own choice) when training or predicting. On a machine shared with other
    CPU-bound jobs, 1 avoids the heavy slowdown of oversubscribed threads."""
    value = os.environ.get(THREADS_ENV, "")
    return int(value) if value else default
