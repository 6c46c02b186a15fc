"""Settings read in one place: the seed of the models, the default Allegro preset and the
threads of torch.

Locations (the bundled data and registry, the user data directory, the model cache) are
in `qcapprox.paths`; the limits and their names in `qcapprox.datasets`.
"""

from __future__ import annotations

import os

#: The seed of every model (forest folds and regressors, Allegro weights and data order,
#: the corpus model's validation rows) and of the corpus's strained and rattled copies.
SEED = 2024

#: The Allegro preset families are trained with unless told (`models/allegro/presets.py`):
#: `fast`, which on relaxed labels (Pt, limits 8 and 14, three variants) fit the validation
#: sets better than `small` in all six members and the test set better on average, in
#: 0.54-0.73x the minutes for members trained from scratch (README "Faster Allegro training")
DEFAULT_PRESET = "fast"

THREADS_ENV = "QCAPPROX_TORCH_THREADS"


def torch_threads(default: int | None = None) -> int | None:
    """The threads of torch (and BLAS) per process: ``$QCAPPROX_TORCH_THREADS`` if set,
    else `default`: 1 in labeling workers (several share the cores), None (torch's and
    OpenMP's own choice) when training or predicting. On a machine shared with other
    CPU-bound jobs, 1 avoids the heavy slowdown of oversubscribed threads."""
    value = os.environ.get(THREADS_ENV, "")
    return int(value) if value else default
