"""Settings read in one place: the seed of the models and the threads of torch.

Locations (the bundled data and registry, the user data directory, the model cache) are
in `qcapprox.paths`; the limits and their names in `qcapprox.datasets`.
"""

from __future__ import annotations

import os

#: The seed of every model (forest folds and regressors, Allegro weights and data order,
#: the corpus model's validation rows) and of the corpus's strained and rattled copies.
SEED = 2024

THREADS_ENV = "QCAPPROX_TORCH_THREADS"


def torch_threads(default: int | None = None) -> int | None:
    """The threads of torch (and BLAS) per process: ``$QCAPPROX_TORCH_THREADS`` if set,
    else `default`: 1 in labeling workers (several share the cores), None (torch's and
    OpenMP's own choice) when training or predicting. On a machine shared with other
    CPU-bound jobs, 1 avoids the heavy slowdown of oversubscribed threads."""
    value = os.environ.get(THREADS_ENV, "")
    return int(value) if value else default
