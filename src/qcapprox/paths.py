"""Locations of the bundled data (parents, references, training sets, results, registry)."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = REPO_ROOT / "data"
PARENTS_DIR = DATA_DIR / "parents"
RECIPES_DIR = REPO_ROOT / "enumeration"
REGISTRY_DIR = REPO_ROOT / "calculators"
BUNDLED_RESULTS = DATA_DIR / "results" / "sc60m13-inference.h5"
