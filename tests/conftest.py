"""Shared fixtures: parents and enumerators are built once per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from resultsdata import results_file

from qcapprox.enumeration import Enumerator
from qcapprox.enumeration.recipe import Recipe
from qcapprox.enumeration.run import run_recipe
from qcapprox.models.base import training_store
from qcapprox.parent import Parent
from qcapprox.paths import RECIPES_DIR
from qcapprox.results import Results
from qcapprox.store import Store
from qcapprox.words import RELAXED, SINGLE_POINT

# The slowest files (a minute or more each on 2 cores) start first, so that the two xdist
# workers (`make test`: --dist loadfile --no-loadscope-reorder) end together; xdist's own
# order puts the files with the most tests first and left these to the end.
SLOW_FIRST = ("test_allegro.py", "test_screen.py", "test_tui.py", "test_labeling.py",
              "test_wheel.py")  # fmt: skip


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the files of SLOW_FIRST first, in that order; the others keep theirs."""
    rank = {name: k for k, name in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


@pytest.fixture(scope="session")
def parent_pt() -> Parent:
    return Parent.load("Pt")


@pytest.fixture(scope="session")
def enumerator_pt(parent_pt: Parent) -> Enumerator:
    return Enumerator.from_parent(parent_pt)


@pytest.fixture(scope="session")
def inference_pt(tmp_path_factory, parent_pt: Parent) -> Path:
    """The A4 inference store of Pt (15,327 rows), enumerated once per session: read it,
    or copy it before writing."""
    path = tmp_path_factory.mktemp("inference") / "sc60pt13-a4.h5"
    run_recipe(Recipe.load(RECIPES_DIR / "inference-a4.toml"), parent_pt, path)
    return path


@pytest.fixture(scope="session")
def pt_labels() -> str:
    """The label set the bundled Pt family is trained on: relaxed once the relabeling has
    landed, single-point until then (the tests cover whichever is shipped)."""
    return RELAXED if RELAXED in Store(training_store("Pt")).labels else SINGLE_POINT


@pytest.fixture(scope="session", autouse=True)
def model_cache(tmp_path_factory) -> None:
    """One fresh model cache and an empty user data directory per test session: members
    are trained once and checked against the committed model cards, and nothing the user
    built (references, training sets) is read."""
    mp = pytest.MonkeyPatch()
    mp.setenv("QCAPPROX_CACHE", str(tmp_path_factory.mktemp("model-cache")))
    mp.setenv("QCAPPROX_DATA", str(tmp_path_factory.mktemp("user-data")))
    yield
    mp.undo()


@pytest.fixture(scope="session")
def dask_scheduler() -> Iterator[str]:
    """The address of one local dask worker process (`labeling.local_cluster`) shared by
    the session's labeling tests: its start-up (3-6 s) is paid once per xdist worker. It
    imports the test labelers (tests/ on its PYTHONPATH)."""
    from qcapprox.labeling import local_cluster

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTHONPATH", str(Path(__file__).parent))
        cluster = local_cluster(1)
    with cluster:
        yield cluster.scheduler_address


@pytest.fixture(scope="module")
def results_path(tmp_path_factory) -> Path:
    return results_file(tmp_path_factory.getbasetemp() / "results")


@pytest.fixture(scope="module")
def res(results_path: Path):
    with Results(results_path) as handle:
        yield handle
