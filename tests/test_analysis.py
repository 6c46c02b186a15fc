"""Analysis of below-hull sets and the results file: every number checked independently
(hand-computed tiny cases, Python sets over a real 15,327-row inference set).
"""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from resultsdata import LABELER, build_store

from qcapprox import analysis
from qcapprox.errors import StoreError
from qcapprox.results import Results, bundle, energy_label
from qcapprox.words import LIMITS, limit_key


def as_sets(pred: np.ndarray, threshold: float = 0.0) -> list[set[int]]:
    return [{c for c in range(pred.shape[1]) if pred[k, c] < threshold} for k in range(len(pred))]


# ---------------------------------------------------------------- tiny, by hand
MASKS = np.array(
    [
        [1, 1, 0, 0, 0],  # B_0 = {0, 1}
        [0, 1, 1, 0, 0],  # B_1 = {1, 2}
        [0, 0, 0, 0, 0],  # B_2 = {}
        [1, 1, 1, 0, 1],  # B_ref = {0, 1, 2, 4}
    ],
    dtype=bool,
)


def test_recall_by_hand() -> None:
    np.testing.assert_allclose(analysis.recall(MASKS), [2 / 4, 2 / 4, 0.0, 1.0])
    np.testing.assert_allclose(analysis.recall(MASKS, reference=0), [1.0, 0.5, 0.0, 1.0])
    # empty reference: nothing to miss, the study's convention gives 1 (or the value asked for)
    np.testing.assert_array_equal(analysis.recall(MASKS, reference=2), [1.0] * 4)
    assert np.isnan(analysis.recall(MASKS, reference=2, empty=np.nan)).all()
    # unavailable limits are NaN; an unavailable reference makes everything NaN
    valid = np.array([True, False, True, True])
    np.testing.assert_allclose(analysis.recall(MASKS, valid=valid), [0.5, np.nan, 0.0, 1.0])
    assert np.isnan(analysis.recall(MASKS, valid=~np.eye(4, dtype=bool)[3])).all()


def test_overlap_by_hand() -> None:
    ov = analysis.overlap(MASKS)
    assert ov.both[0, 1] == 1 and ov.both[0, 3] == 2 and ov.both[1, 1] == 2
    np.testing.assert_array_equal(ov.size_i, [2, 2, 0, 4])
    assert ov.pct_i[0, 3] == 100.0 and ov.pct_j[0, 3] == 50.0
    assert ov.jaccard[0, 1] == pytest.approx(1 / 3)  # {1} / {0, 1, 2}
    assert ov.jaccard[0, 3] == pytest.approx(2 / 4)
    assert np.isnan(ov.pct_i[2, 0]) and ov.pct_j[2, 0] == 0.0  # empty row set
    assert np.isnan(ov.jaccard[2, 2])  # empty union
    assert ov.only_i[0, 1] == 1 and ov.only_j[0, 1] == 1
    both, only_i, only_j = analysis.cell_members(MASKS[0], MASKS[3])
    assert both.tolist() == [0, 1] and only_i.tolist() == [] and only_j.tolist() == [2, 4]
    np.testing.assert_array_equal(ov.matrix("count"), ov.both.astype(float))
    with pytest.raises(ValueError, match="unknown metric"):
        ov.matrix("dice")


def test_below_hull_threshold_and_missing() -> None:
    pred = np.array([[-0.01, 0.0, 0.01, np.nan], [np.nan] * 4])
    np.testing.assert_array_equal(analysis.below_hull(pred), [[1, 0, 0, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(analysis.below_hull(pred, 0.02)[0], [1, 1, 1, 0])
    np.testing.assert_array_equal(analysis.available(pred), [True, False])
    ov = analysis.overlap(analysis.below_hull(pred), valid_i=analysis.available(pred))
    assert np.isnan(ov.matrix("count")[1]).all() and np.isnan(ov.jaccard[:, 1]).all()
    assert ov.matrix("count")[0, 0] == 1


def test_rmse_and_similarity_by_hand() -> None:
    target = np.array([0.0, 0.02, 0.04])
    pred = np.array([[0.0, 0.02, 0.04], [0.03, 0.02, 0.04], [np.nan, 0.0, 0.0]])
    rmse = analysis.rmse(pred, target)
    np.testing.assert_allclose(rmse[:2], [0.0, np.sqrt(0.03**2 / 3)])
    assert np.isnan(rmse[2])
    sim = analysis.similarity_score(rmse, target.mean())  # ȳ = 0.02
    assert sim[0, 0] == 1.0
    assert sim[0, 1] == pytest.approx(1 - np.sqrt(0.03**2 / 3) / 0.02)
    assert sim[0, 1] == sim[1, 0] and np.isnan(sim[0, 2])
    diff = analysis.rmse_difference(rmse)
    assert diff[0, 1] == pytest.approx(np.sqrt(0.03**2 / 3)) and diff[1, 1] == 0.0
    # a negative mean target (relaxed labels below the hull) flips eq. 4 above 1
    assert analysis.similarity_score(rmse, -0.02)[0, 1] > 1.0


def test_robust_candidates_against_loops() -> None:
    rng = np.random.default_rng(5)
    a = rng.normal(0.01, 0.02, (13, 300))
    b = rng.normal(0.01, 0.02, (13, 300))
    a[4] = np.nan
    mult = rng.integers(1, 25, 300)
    for k, require in itertools.product((1, 6, 10), ("all", "any")):
        found = analysis.robust_candidates({"a": a, "b": b}, mult, 0.0, k, require)
        na = [(a[:, c] < 0).sum() for c in range(300)]
        nb = [(b[:, c] < 0).sum() for c in range(300)]
        pick = {c for c in range(300) if (min if require == "all" else max)(na[c], nb[c]) >= k}
        assert set(found.rows.tolist()) == pick
        expected = sorted(
            pick,
            key=lambda c: (-(na[c] + nb[c]), np.nanmean(np.r_[a[:, c], b[:, c]]), c),
        )
        assert found.rows.tolist() == expected
        np.testing.assert_array_equal(found.multiplicity, mult[found.rows])
        np.testing.assert_array_equal(found.n_limits[:, 0], [na[c] for c in expected])
        np.testing.assert_array_equal(found.total_limits, [na[c] + nb[c] for c in expected])
    single = analysis.robust_candidates({"a": a}, mult, 0.01, 13)
    assert all(np.nansum(a[:, c] < 0.01) >= 13 for c in single.rows) or len(single) == 0
    with pytest.raises(ValueError, match="require"):
        analysis.robust_candidates({"a": a}, mult, require="most")


# ---------------------------------------------------------------- real inference sets
def test_overlaps_equal_python_sets(res: Results) -> None:
    pred = res.predictions("Pt", "rf")
    sets = as_sets(pred)
    masks = analysis.below_hull(pred)
    ov = analysis.overlap(masks)
    for i, j in itertools.product(range(13), repeat=2):
        both = len(sets[i] & sets[j])
        assert ov.both[i, j] == both
        assert ov.pct_i[i, j] == pytest.approx(100 * both / len(sets[i]))
        assert ov.pct_j[i, j] == pytest.approx(100 * both / len(sets[j]))
        assert ov.jaccard[i, j] == pytest.approx(both / len(sets[i] | sets[j]))
    rec = analysis.recall(masks)
    for i in range(13):
        assert rec[i] == pytest.approx(len(sets[i] & sets[12]) / len(sets[12]))
    mult = res.multiplicity("Pt")
    np.testing.assert_array_equal(
        analysis.weighted_sizes(masks, mult), [sum(int(mult[c]) for c in s) for s in sets]
    )


def test_two_backbones_and_missing_limit(res: Results) -> None:
    rf, al = res.predictions("Pt", "rf"), res.predictions("Pt", "allegro")
    assert res.limits("Pt", "allegro") == tuple(x for x in LIMITS if x != 10)
    assert np.isnan(al[5]).all() and np.isfinite(al[np.arange(13) != 5]).all()
    valid = analysis.available(al)
    assert valid.tolist() == [k != 5 for k in range(13)]
    cross = analysis.overlap(
        analysis.below_hull(rf), analysis.below_hull(al), analysis.available(rf), valid
    )
    per_limit = cross.diagonal()
    s_rf, s_al = as_sets(rf, 0.01), as_sets(al, 0.01)
    cross01 = analysis.overlap(analysis.below_hull(rf, 0.01), analysis.below_hull(al, 0.01))
    for k in range(13):
        assert cross01.both[k, k] == len(s_rf[k] & s_al[k])
    assert np.isnan(per_limit.jaccard[5, 0]) and np.isnan(cross.matrix("count")[:, 5]).all()
    rec = analysis.recall(analysis.below_hull(al), valid=valid)
    assert np.isnan(rec[5]) and rec[12] == 1.0


def test_rmse_matches_stored_metrics(res: Results) -> None:
    for backbone in ("rf", "allegro"):
        m = res.metrics("Pt", backbone)
        rmse = analysis.rmse(m.test_predictions, m.test_target)
        np.testing.assert_allclose(rmse, m.test_rmse, equal_nan=True)
        manual = [np.sqrt(np.mean((p - m.test_target) ** 2)) for p in m.test_predictions]
        np.testing.assert_allclose(rmse, manual, equal_nan=True)
        assert m.test_mean == pytest.approx(m.test_target.mean())
        sim = analysis.similarity_score(rmse, m.test_mean)
        assert sim[3, 7] == pytest.approx(1 - abs(manual[3] - manual[7]) / m.test_target.mean())


# ---------------------------------------------------------------- results file
def test_families_in_the_registrys_order() -> None:
    """rf first, each backbone's relaxed-label family before its single-point one, then
    backbones the registry does not know, by name."""
    from qcapprox.results import _ordered_backbones

    names = ["zz", "allegro-single-point", "rf-single-point", "allegro", "rf"]
    assert _ordered_backbones(names) == (
        "rf", "rf-single-point", "allegro", "allegro-single-point", "zz",
    )  # fmt: skip


def test_results_listing_and_arrays(res: Results, results_path: Path) -> None:
    assert res.dopants == ("Pt", "Pd")
    assert res.backbones("Pt") == ("rf", "allegro")
    assert res.n_configs("Pt") == 15327 and res.occupancy("Pt").shape == (15327, 36)
    assert res.predictions("Pd", "rf").shape == (13, 15327)
    assert res.labeler("Pt") == LABELER
    assert res.energy_label("Pt") == "CHGNet stand-in labels"
    assert energy_label("vasp 6.4") == "labels: vasp 6.4"
    attrs = res.prediction_attrs("Pt", "rf")
    assert attrs[24]["model"] == "calculators/rf/Pt/limit-24"
    with h5py.File(results_path) as handle:
        assert handle.attrs["format"] == "qcapprox-results"
        assert set(json.loads(handle.attrs["sources"])) == {"Pt", "Pd"}
        assert handle["Pt"].attrs["dopant"] == "Pt"
    # the parent and export: decorate the stored occupancy
    row = int(np.flatnonzero(res.composition("Pt")[:, 1] == 2)[0])
    config_id = int(res.ids("Pt")[row])
    atoms = res.atoms("Pt", config_id)
    assert atoms.get_chemical_symbols().count("Pt") == 26 + 2  # Z = 2: Sc120Pt26 parent
    assert len(atoms) == 146
    assert atoms.info["multiplicity"] == res.multiplicity("Pt")[row]
    assert res.parent("Pt").dopant == "Pt" and res.parent("Pt").n_active == 36
    with pytest.raises(StoreError, match="no dopant 'Os'"):
        res.backbones("Os")
    with pytest.raises(StoreError, match="no predictions of backbone 'allegro-pretrained'"):
        res.predictions("Pt", "allegro-pretrained")
    with pytest.raises(StoreError, match="no configuration with id 7"):
        res.row("Pt", 7)


def test_results_refuses_bad_files(tmp_path: Path, results_path: Path) -> None:
    store = results_path.parent / "sc60pt13.h5"
    with pytest.raises(StoreError, match=r"sc60pt13\.h5: not a qcapprox results file.*bundle"):
        Results(store)
    with pytest.raises(StoreError, match="no such file"):
        Results(tmp_path / "missing.h5")
    corrupt = tmp_path / "corrupt.h5"
    corrupt.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(200))
    with pytest.raises(StoreError, match=r"corrupt\.h5: not a readable HDF5 file"):
        Results(corrupt)
    other = tmp_path / "v2.h5"
    shutil.copyfile(results_path, other)
    with h5py.File(other, "r+") as handle:
        handle.attrs["schema_version"] = 2
    before = other.read_bytes()
    with pytest.raises(
        StoreError, match=r"v2\.h5: results file schema version 2, this qcapprox reads version 1"
    ):
        Results(other)
    assert other.read_bytes() == before  # left untouched
    with h5py.File(other, "r+") as handle:
        handle.attrs["schema_version"] = 1
        del handle["Pd/configs/multiplicity"]
    with pytest.raises(StoreError, match=r"Pd/configs/multiplicity is missing"):
        Results(other)


def test_bundle_checks_and_is_atomic(tmp_path: Path, results_path: Path) -> None:
    store = results_path.parent / "sc60pt13.h5"
    out = tmp_path / "r.h5"
    with pytest.raises(StoreError, match="holds dopant Pt, not Pd"):
        bundle({"Pd": store}, out)
    assert not out.exists() and not list(tmp_path.iterdir())
    bad = tmp_path / "bad.h5"
    shutil.copyfile(store, bad)
    with h5py.File(bad, "r+") as handle:
        handle["predictions/rf/limit-26"] = np.zeros(3)
    with pytest.raises(StoreError, match="predictions/rf/limit-26 has shape"):
        bundle({"Pt": bad}, out)
    bundle({"Pt": store}, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.h5", "r.h5"]
    with Results(out) as res:
        assert res.dopants == ("Pt",) and res.backbones("Pt") == ("rf", "allegro")


def test_four_dopants_and_families_of_every_kind(tmp_path_factory) -> None:
    """4 dopants x 5 families (one on single-point labels, one trained under another
    set-up) x 13 limits x 15,327 configurations: the families come in the registry's order
    (a backbone's study family, then its other set-ups, then its other label sets) and each
    is analysed with the threshold of its label set. (Opening speed: benchmarks/tui.py.)"""
    directory = tmp_path_factory.getbasetemp() / "four"
    directory.mkdir(exist_ok=True)
    families = {"hgb-cf-relaxed+relaxed-into": (), "rf-single-point": (),
                "allegro-sequential": (), "allegro": (), "rf": ()}  # fmt: skip
    stores = {d: build_store(directory, d, families) for d in ("Pt", "Pd", "Ir", "Rh")}
    path = bundle(stores, directory / "results4.h5")
    with Results(path) as res:
        expected = ("rf", "rf-single-point", "allegro", "allegro-sequential",
                    "hgb-cf-relaxed+relaxed-into")  # fmt: skip
        assert all(res.backbones(d) == expected for d in res.dopants)
        assert all(res.limits(d, b) == LIMITS for d in res.dopants for b in res.backbones(d))
        assert analysis.label_kind("hgb-cf-relaxed+relaxed-into") == "relaxed"
        family = analysis.analyse_family(res, "Ir", "hgb-cf-relaxed+relaxed-into", 0.0)
        pred = res.predictions("Ir", "hgb-cf-relaxed+relaxed-into")
        assert family.sizes.tolist() == (pred < 0.0).sum(axis=1).tolist()


def test_limit_key() -> None:
    assert limit_key(0) == "limit-00" and limit_key(24) == "limit-24"


def test_ranks_by_hand() -> None:
    pred = np.array([[0.3, -0.1, 0.2, 0.2], [np.nan] * 4, [0.0, 0.1, -0.2, 0.05]])
    np.testing.assert_array_equal(analysis.ranks(pred, 2), [2, np.nan, 1])
    np.testing.assert_array_equal(analysis.ranks(pred, 0), [4, np.nan, 2])


def test_study_comparison_by_hand() -> None:
    """Each row's figures and verdict, from arrays whose answers are known."""
    nan = np.nan
    ordinary = np.full(13, 0.012)
    sequential = ordinary - 0.001
    sequential[3] = 0.013  # above ordinary at one limit: 12 of 13
    pretrained = ordinary + 0.002
    pretrained[[0, 1, 2, 4, 5, 6, 7]] = 0.011  # below ordinary at 7 limits: above at 6 of 13
    rmse = {
        "Pt": {"rf": np.full(13, 0.012), "allegro": ordinary,
               "allegro-sequential": sequential, "allegro-pretrained": pretrained},
        "Rh": {"rf": np.r_[np.full(12, 0.004), nan], "hgb": np.full(13, 0.02)},
    }  # fmt: skip
    forest_recall = np.ones(13)
    forest_recall[2] = 0.5
    recall = {
        "Pt": {"rf": np.ones(13), "allegro": np.r_[0.0, np.ones(12)],
               "allegro-sequential": np.r_[0.5, np.ones(12)],
               "allegro-pretrained": np.r_[0.0, 0.0, np.ones(11)]},
        "Rh": {"rf": forest_recall, "allegro": np.r_[0.8, np.ones(12)]},
    }  # fmt: skip
    rows = {f.claim: f for f in analysis.study_comparison(rmse, recall)}
    forest = rows["Random Forest test RMSE (eV/atom)"]
    # Pt 0.012 is within a factor 1.5 of 0.01, Rh 0.004 (mean of the 12 limits) is not:
    # 1 of 2 is not more than half
    assert forest.ours == "Pt rf 0.0120; Rh rf 0.0040" and forest.verdict == "does not"
    assert rows["gradient boosting test RMSE (eV/atom)"].verdict == "reproduces"
    assert rows["Allegro test RMSE, every variant (eV/atom)"].verdict == "reproduces"
    seq = rows["self-pretrained (sequential) Allegro below ordinary"]
    assert seq.ours == "Pt 12/13 limits" and seq.verdict == "partly"
    pre = rows["AFLOW-pretrained Allegro above ordinary"]
    assert pre.ours == "Pt 6/13 limits" and pre.verdict == "does not"
    rf_recall = rows["Random Forest recall vs limit 24"]
    assert rf_recall.ours == "Pt 12/12 limits (min 1.00); Rh 11/12 limits (min 0.50)"
    assert rf_recall.verdict == "partly"
    falls = rows["ordinary Allegro recall vs limit 24 falls further than RF's"]
    assert falls.ours == "Pt Allegro min 0.00, RF min 1.00; Rh Allegro min 0.80, RF min 0.50"
    assert falls.verdict == "does not"  # 1 of 2
    steadies = rows["pre-training steadies Allegro's below-hull sets (mean recall)"]
    # means over limits 0-22: ordinary 11/12, sequential 11.5/12, pretrained 10/12
    assert steadies.ours == "Pt sequential 0.96 vs 0.92; Pt pretrained 0.83 vs 0.92"
    assert steadies.verdict == "does not"  # 1 of 2 is not more than half
    # where a B_24 is empty its recalls are 1 by the study's convention, and the row says so
    vacuous = {"Pt": {"rf": True, "allegro": False}, "Rh": {"rf": False}}
    rows = {f.claim: f for f in analysis.study_comparison(rmse, recall, vacuous)}
    rf_recall = rows["Random Forest recall vs limit 24"]
    assert rf_recall.ours == (
        "Pt 12/12 limits (min 1.00; rf B24 empty: recall 1 by the study's convention); "
        "Rh 11/12 limits (min 0.50)"
    )
    falls = rows["ordinary Allegro recall vs limit 24 falls further than RF's"]
    assert falls.ours.startswith(
        "Pt Allegro min 0.00, RF min 1.00; rf B24 empty: recall 1 by the study's convention; Rh"
    )
    empty = analysis.study_comparison({}, {})
    assert {f.verdict for f in empty} == {"no data"} and {f.ours for f in empty} == {"-"}


def test_within_composition_rank_scores() -> None:
    """Spearman and Kendall against scipy's; the truly lowest in the top 5; bias and RMSE."""
    from scipy.stats import kendalltau, spearmanr

    from qcapprox.analysis import configuration_scores, kendall, spearman

    rng = np.random.default_rng(7)
    truth = rng.normal(size=30)
    pred = truth + rng.normal(scale=0.8, size=30)
    pred[3] = pred[4]  # a tie
    assert spearman(pred, truth) == pytest.approx(spearmanr(pred, truth).statistic)
    assert kendall(pred, truth) == pytest.approx(kendalltau(pred, truth).statistic)
    groups = np.repeat([3, 5], 15)
    scores = configuration_scores(pred, truth, groups)
    for g in (3, 5):
        rows = groups == g
        lowest = np.argmin(truth[rows])
        assert scores["groups"][str(g)]["lowest_in_top"] == (
            lowest in np.argsort(pred[rows], kind="stable")[:5]
        )
    assert scores["mean_signed_error"] == pytest.approx(np.mean(pred - truth))
    constant = configuration_scores(np.zeros(30), truth, groups)
    assert np.isnan(constant["spearman"]) and constant["groups"]["3"]["distinct_predictions"] == 1


# ------------------------------------------------------------------ one family analysis
class _Results:
    """A results reader over plain arrays: the methods `analyse_family` calls."""

    def __init__(self, pred: np.ndarray, known: int | None, metrics=None) -> None:
        self.pred, self.known, self._metrics = pred, known, metrics

    def predictions(self, dopant: str, backbone: str) -> np.ndarray:
        return self.pred

    def metrics(self, dopant: str, backbone: str):
        return self._metrics

    def multiplicity(self, dopant: str) -> np.ndarray:
        return np.arange(1, self.pred.shape[1] + 1)

    def known_phase_row(self, dopant: str) -> int | None:
        return self.known


def test_family_analysis_known_phase_and_vacuous_recall() -> None:
    rng = np.random.default_rng(7)
    pred = rng.normal(0.01, 0.02, size=(len(LIMITS), 40))
    fam = analysis.analyse_family(_Results(pred, known=5), "Pt", "rf", 0.0)
    # the known phase's rank by counting, limit by limit
    for k in range(len(LIMITS)):
        assert fam.known_ranks[k] == 1 + sum(p < pred[k, 5] for p in pred[k])
        assert fam.known_values[k] == pred[k, 5]
    assert fam.sizes.tolist() == [len(s) for s in as_sets(pred)]
    assert not fam.reference_empty
    # B_24 empty: every recall is 1 and the analysis says it is vacuous
    pred[-1] = 0.5
    empty = analysis.analyse_family(_Results(pred, known=None), "Pt", "rf", 0.0)
    assert empty.reference_empty and np.all(empty.recall == 1.0)
    assert empty.known_ranks is None
    summaries = analysis.robustness([empty, fam])
    assert [s.backbone for s in summaries] == ["rf", "rf"]
    assert not summaries[0].vacuous and summaries[1].vacuous


def test_robustness_ranks_by_mean_recall() -> None:
    base = np.full((len(LIMITS), 6), 0.1)
    base[-1, :3] = -0.01  # B_24 = {0, 1, 2}
    stable, shaky = base.copy(), base.copy()
    stable[:, :3] = -0.01  # every limit finds B_24: recall 1
    shaky[:-1, 0] = -0.01  # the other limits find one of three: recall 1/3
    fams = [
        analysis.analyse_family(_Results(p, None), "Pt", name, 0.0)
        for name, p in (("shaky", shaky), ("stable", stable))
    ]
    summaries = analysis.robustness(fams)
    assert [s.backbone for s in summaries] == ["stable", "shaky"]
    assert summaries[0].mean_recall == 1.0
    assert summaries[1].mean_recall == pytest.approx(1 / 3)
    assert summaries[1].min_recall == pytest.approx(1 / 3)
    assert summaries[0].reference_size == 3


def test_opening_threshold() -> None:
    above = np.full((len(LIMITS), 4), 0.01)
    assert analysis.opening_threshold(above, "rf") == analysis.SLIGHTLY_POSITIVE["relaxed"]
    assert analysis.opening_threshold(above, "rf-single-point") == (
        analysis.SLIGHTLY_POSITIVE["single-point"]
    )
    assert analysis.opening_threshold(above, "ce-relaxed+depth") == (
        analysis.SLIGHTLY_POSITIVE["relaxed"]
    )
    above[3, 2] = -1e-4
    assert analysis.opening_threshold(above, "rf") == 0.0


def test_analysis_imports_only_numpy() -> None:
    import subprocess
    import sys

    heavy = ("h5py", "ase", "spglib", "pymatgen", "torch", "matplotlib", "sklearn", "textual")
    code = (
        "import sys; import qcapprox.analysis; "
        f"print([m for m in {heavy!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
