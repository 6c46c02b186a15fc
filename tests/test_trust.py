"""What a user may hand qcapprox and still trust the answer: hull calculators refuse atoms
that are not a periodic crystal and survive pickling and deep copies (worker processes,
ASE's own copies); results files with impossible contents are refused, naming the file and
the dataset, and left byte-identical."""

from __future__ import annotations

import copy
import pickle
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest

from qcapprox.calculators import ForestHullCalculator
from qcapprox.errors import IdentifyError, StoreError
from qcapprox.parent import VACANCY, Parent
from qcapprox.paths import BUNDLED_RESULTS, REGISTRY_DIR
from qcapprox.results import Results
from qcapprox.words import LIMITS, SINGLE_POINT


def configuration(parent: Parent) -> np.ndarray:
    """A configuration with defects on both active orbits (A4 and A5)."""
    occupancy = parent.known_phase()  # six A4 vacancies: Sc57M13
    occupancy[[14, 20]] = 1  # two A5 sites with the dopant
    occupancy[30] = VACANCY
    return occupancy


def shuffled_rattled(atoms, seed: int):
    """The same configuration, atoms in another order and moved off their sites."""
    copy_ = atoms[np.random.default_rng(seed).permutation(len(atoms))]
    copy_.rattle(0.05, seed=seed)
    return copy_


def allegro_calculator():
    """The shipped single-point `ordinary` Pt member at limit 0 (no training)."""
    from qcapprox.calculators import AllegroHullCalculator

    return AllegroHullCalculator("Pt", 0, "ordinary", labels=SINGLE_POINT, registry=REGISTRY_DIR)


CALCULATORS = {
    "forest": lambda: ForestHullCalculator("Pt", 0, labels=SINGLE_POINT),
    "allegro": allegro_calculator,
}


@pytest.mark.parametrize("pbc", [False, [True, True, False], [False, True, True]])
@pytest.mark.parametrize("kind", CALCULATORS)
def test_calculators_refuse_atoms_not_periodic_in_3d(kind: str, pbc, parent_pt: Parent) -> None:
    """A cluster or a slab cut from a configuration is not that configuration: its energy
    is not the bulk prediction, so no number is given."""
    atoms = parent_pt.decorate(configuration(parent_pt))
    atoms.pbc = pbc
    atoms.calc = CALCULATORS[kind]()
    shown = re.escape(f"pbc={np.broadcast_to(pbc, 3).tolist()}")
    with pytest.raises(IdentifyError, match=rf"{shown}.*set atoms\.pbc = True") as err:
        atoms.get_potential_energy()
    assert "\n" not in str(err.value)
    with pytest.raises(IdentifyError, match="periodic in all three directions"):
        atoms.calc.get_property("e_above_hull", atoms)


def test_calculator_without_atoms_says_how_to_give_them() -> None:
    with pytest.raises(IdentifyError, match=r"no atoms to calculate; pass them"):
        ForestHullCalculator("Pt", 0, labels=SINGLE_POINT).get_property("e_above_hull")


def test_forest_calculator_pickles_and_deep_copies_after_use(parent_pt: Parent) -> None:
    occupancy = configuration(parent_pt)
    atoms = parent_pt.decorate(occupancy)
    calc = CALCULATORS["forest"]()
    atoms.calc = calc
    energy = atoms.get_potential_energy()
    e_hull = calc.get_property("e_above_hull")
    for clone in (pickle.loads(pickle.dumps(calc)), copy.deepcopy(calc)):
        assert clone.todict() == calc.todict()
        assert clone.get_property("e_above_hull", atoms) == e_hull  # the kept results
        other = shuffled_rattled(atoms, seed=3)
        other.calc = clone
        assert other.get_potential_energy() == pytest.approx(energy, abs=1e-9)
        assert clone.get_property("e_above_hull") == pytest.approx(e_hull, abs=1e-12)
        np.testing.assert_allclose(
            clone.predict_e_above_hull(occupancy[None]), [e_hull], rtol=0, atol=1e-12
        )


def test_allegro_calculator_pickles_and_deep_copies_after_use(parent_pt: Parent) -> None:
    """The loaded network (torch modules of a packaged model) does not pickle: it is left
    out and loaded again by the copy; the original keeps its own."""
    occupancy = configuration(parent_pt)
    atoms = parent_pt.decorate(occupancy)
    calc = allegro_calculator()
    atoms.calc = calc
    energy = atoms.get_potential_energy()
    e_hull = calc.get_property("e_above_hull")
    payload = pickle.dumps(calc)
    clones = [pickle.loads(payload), copy.deepcopy(calc)]
    for seed, clone in enumerate(clones):
        assert clone.todict() == calc.todict()
        assert clone.get_property("e_above_hull", atoms) == e_hull  # the kept results
        other = shuffled_rattled(atoms, seed)
        other.calc = clone
        assert other.get_potential_energy() == pytest.approx(energy, abs=1e-6)
        assert clone.get_property("e_above_hull") == pytest.approx(e_hull, abs=1e-9)
    # the original still predicts with its member, and a used copy pickles again
    pristine = parent_pt.decorate(np.zeros(36, np.uint8))
    pristine.calc = calc
    assert np.isfinite(pristine.get_potential_energy())
    assert pickle.loads(pickle.dumps(clones[0])).todict() == calc.todict()


# ---------------------------------------------------------------------- results files
Edit = Callable[[h5py.File], None]
PRED = "Pd/predictions/rf/limit-08"


def replace(name: str, change: Callable[[np.ndarray], np.ndarray]) -> Edit:
    """An edit that rewrites dataset `name` of a results file with `change(values)`."""

    def edit(handle: h5py.File) -> None:
        values = change(handle[name][()])
        del handle[name]
        handle[name] = values

    return edit


def assign(name: str, where: tuple, value: float) -> Edit:
    """An edit that sets one element of dataset `name`."""

    def edit(handle: h5py.File) -> None:
        handle[name][where] = value

    return edit


def add(name: str, values: Callable[[h5py.File], np.ndarray]) -> Edit:
    """An edit that adds a dataset."""
    return lambda handle: handle.create_dataset(name, data=values(handle))


def predictions(res: Results) -> None:
    res.predictions("Pd", "rf")


def opened(res: Results) -> None:
    """Nothing more: the file is refused on opening."""


BROKEN = [
    ("nan", assign(PRED, (5,), np.nan), predictions,
     rf"{PRED} holds 1 non-finite value\(s\) \(first: nan at row 5, id \d+\)"),
    ("+inf", assign(PRED, (9,), np.inf), predictions,
     rf"{PRED} holds 1 non-finite value\(s\) \(first: inf at row 9, id \d+\)"),
    ("-inf", assign(PRED, (-1,), -np.inf), predictions,
     rf"{PRED} holds 1 non-finite value\(s\) \(first: -inf at row 15326, id \d+\)"),
    ("int64", replace(PRED, lambda v: (v * 1000).astype(np.int64)), opened,
     rf"{PRED} is int64 of shape \(15327,\), expected floating point energies \(eV/atom\)"),
    ("limit-13", add("Pd/predictions/rf/limit-13", lambda h: h[PRED][()]), opened,
     r"Pd/predictions/rf/limit-13 is not a limit: limit-00, limit-02, \.\.\., limit-24"),
    ("dopant-Xx", lambda h: h.move("Pd", "Xx"), opened,
     r"top-level 'Xx' is not a dopant group \(one per element symbol"),
    ("occupancy-3", assign("Pd/configs/occupancy", (7, 3), 3), lambda res: res.occupancy("Pd"),
     r"Pd/configs/occupancy row 7 \(id \d+\) has code 3 at active site 3"),
    ("subsets-12", add("Pd/subsets", lambda h: np.ones((12, 4), np.int64)), opened,
     r"Pd/subsets is int64 of shape \(12, 4\), expected integers \(limits x train, validation, "
     r"test, total\) of shape \(13, 4\)"),
    ("subsets-float", add("Pd/subsets", lambda h: np.ones((13, 4))), opened,
     r"Pd/subsets is float64 of shape \(13, 4\), expected integers"),
    ("test-predictions-62", replace("Pd/metrics/rf/test_predictions", lambda v: v[:, :62]), opened,
     r"Pd/metrics/rf/test_predictions is float64 of shape \(13, 62\), expected floating point "
     r"of shape \(13, 63\)"),
    ("test-predictions-1d", replace("Pd/metrics/rf/test_predictions", lambda v: v[0]), opened,
     r"Pd/metrics/rf/test_predictions is float64 of shape \(63,\), expected"),
]  # fmt: skip


@pytest.mark.parametrize(
    "edit, read, message", [pytest.param(*case[1:], id=case[0]) for case in BROKEN]
)
def test_results_with_impossible_contents_are_refused(
    edit: Edit, read: Callable[[Results], None], message: str, tmp_path, results_path: Path
) -> None:
    """A copy of a good results file with one thing altered: refused with one line naming
    the file and the dataset, and left byte-identical."""
    path = tmp_path / "broken.h5"
    shutil.copyfile(results_path, path)
    with h5py.File(path, "r+") as handle:
        edit(handle)
    before = path.read_bytes()
    with pytest.raises(StoreError, match=message) as err, Results(path) as res:
        read(res)
    text = str(err.value)
    assert text.startswith(f"{path}: ") and text.endswith("the file was left untouched")
    assert "\n" not in text
    assert path.read_bytes() == before


def test_good_results_files_pass_every_check(results_path: Path) -> None:
    """The checks refuse nothing a bundle writes: the test file and the bundled results
    (every dopant and family, with subsets and test metrics) read whole."""
    for path in (results_path, BUNDLED_RESULTS):
        with Results(path) as res:
            for dopant in res.dopants:
                assert res.occupancy(dopant).max() <= VACANCY
                for backbone in res.backbones(dopant):
                    values = res.predictions(dopant, backbone)
                    present = [k for k, x in enumerate(LIMITS) if x in res.limits(dopant, backbone)]
                    assert present and np.isfinite(values[present]).all()
                for backbone in res.metric_backbones(dopant):
                    assert res.metrics(dopant, backbone).test_predictions.shape[0] == len(LIMITS)
                sizes = res.subset_sizes(dopant)
                assert sizes is None or all(len(column) == len(LIMITS) for column in sizes.values())
