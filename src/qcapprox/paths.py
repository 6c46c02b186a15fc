"""Locations of the bundled data (parents, references, training sets, results, registry), of
the user's own (references, training sets, model cards built here for any dopant) and of the
model cache.

The bundled data is read-only; everything qcapprox builds by default goes under the user
data directory: ``$QCAPPROX_DATA`` if set, else the platform's per-user data directory
(platformdirs, e.g. ``~/.local/share/qcapprox`` on Linux).
"""

import os
from importlib.resources import files
from pathlib import Path

import platformdirs

REPO_ROOT = Path(__file__).resolve().parents[2]


def bundled(name: str) -> Path:
    """A top-level directory of the repository (data, calculators, enumeration): in a
    checkout the directory itself, in an installed wheel its copy qcapprox/_bundled/<name>."""
    if (REPO_ROOT / "pyproject.toml").is_file() and (REPO_ROOT / name).is_dir():
        return REPO_ROOT / name
    return Path(str(files("qcapprox") / "_bundled" / name))


DATA_DIR = bundled("data")
PARENTS_DIR = DATA_DIR / "parents"
RECIPES_DIR = bundled("enumeration")
REGISTRY_DIR = bundled("calculators")
BUNDLED_RESULTS = DATA_DIR / "results" / "sc60m13-inference.h5"
DATA_ENV = "QCAPPROX_DATA"
CACHE_ENV = "QCAPPROX_CACHE"


def user_data_dir() -> Path:
    """The user data directory: ``$QCAPPROX_DATA``, else platformdirs' user data dir."""
    return Path(os.environ.get(DATA_ENV) or platformdirs.user_data_dir("qcapprox"))


def cache_root() -> Path:
    """The model cache (fitted forests, Allegro training runs): ``$QCAPPROX_CACHE``, else
    ``~/.cache/qcapprox``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "qcapprox")


def user_references_dir() -> Path:
    """Reference sets built by `qcapprox references` (``Sc-<M>.json``)."""
    return user_data_dir() / "references"


def user_training_dir() -> Path:
    """Training stores built by the user (``sc60<m>13.h5``)."""
    return user_data_dir() / "training"


def user_registry_dir() -> Path:
    """Model cards of the families trained by the user (same layout as ``calculators/``)."""
    return user_data_dir() / "calculators"


def user_or_bundled(user: Path, bundled: Path) -> Path:
    """The file a dopant's data is read from: the user's if it exists, else the bundled
    one if that exists, else the user's (where a new one is built)."""
    return bundled if bundled.exists() and not user.exists() else user


def is_bundled(path: Path) -> bool:
    """Whether a path lies in the bundled data or registry (read-only unless a command is
    pointed at it explicitly, as `make relabel` and `make families` are)."""
    path = Path(path).resolve()
    return any(path.is_relative_to(root) for root in (DATA_DIR, REGISTRY_DIR, RECIPES_DIR))
