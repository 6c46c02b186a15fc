"""Allegro families: a real (tiny) nequip training through qcapprox's code path.

One module fixture enumerates a 36-configuration store, labels it with Lennard-Jones
(tests/labelers.py), gives it a small split and trains two `tiny` members (1 epoch; limits 24
and 12, side by side in their own processes) with nequip-train, nequip-package and the
registry; the tests then use those members.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from qcapprox.datasets import TEST, TRAIN, VALIDATION, a5_defects, in_limit, make_split
from qcapprox.enumeration.recipe import Recipe
from qcapprox.enumeration.run import run_recipe
from qcapprox.hull import Hull
from qcapprox.labeling import label_store
from qcapprox.store import Store, write_atomically

TINY = """
name = "tiny-allegro"
mode = "random"
seed = 7
realizations = 1
[orbits.A4]
species = ["Sc", "M", "vacancy"]
step = 6
[orbits.A5]
species = ["Sc", "M", "vacancy"]
step = 6
max_defects = 12
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory, parent_pt, dask_scheduler: str):
    """A labelled tiny store and `tiny` ordinary members trained on it at limits 24 and 12,
    two at once (jobs=2), with the progress calls seen."""
    from qcapprox.models.allegro.training import train_allegro_family

    root = tmp_path_factory.mktemp("allegro")
    recipe = root / "tiny.toml"
    recipe.write_text(TINY)
    store = root / "tiny.h5"
    run_recipe(Recipe.load(recipe), parent_pt, store)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("QCAPPROX_CACHE", str(root / "cache"))
        assert (
            label_store(store, "labelers:lennard_jones", scheduler=dask_scheduler, chunk_size=16)
            == 0
        )
        pristine = np.flatnonzero(a5_defects(Store(store).composition) == 0)
        test = np.isin(np.arange(len(Store(store))), pristine[:4])
        split = make_split(test, seed=1)
        write_atomically(store, lambda h: h.create_dataset("split", data=split), base=store)
        registry, seen = root / "registry", []
        cards = train_allegro_family(
            "Pt", "ordinary", limits=(24, 12), preset="tiny", jobs=2, store=store,
            registry=registry, labels="single-point",
            progress=lambda done, total: seen.append((done, total)),
        )  # fmt: skip
    return {"store": store, "registry": registry, "card": cards[0], "cards": cards,
            "seen": seen, "root": root}  # fmt: skip


@pytest.fixture
def no_training(monkeypatch) -> None:
    """nequip-train and nequip-package refused: what runs must find its members finished."""
    from qcapprox.models.allegro import runner

    def refuse(*args, **kwargs):
        raise AssertionError("a finished member was trained or packaged again")

    monkeypatch.setattr(runner, "run_stage", refuse)
    monkeypatch.setattr(runner, "package", refuse)


def test_card_and_registry(trained) -> None:
    from qcapprox.models.allegro.inference import MODEL_FILE, registry_dir

    card = trained["card"]
    where = registry_dir("ordinary", "Pt", 24, trained["registry"], "single-point")
    assert where == trained["registry"] / "single-point" / "allegro" / "Pt" / "limit-24"
    assert card["labels"] == "single-point"
    assert (where / MODEL_FILE).stat().st_size == card["model_bytes"]
    assert json.loads((where / "card.json").read_text())["test_rmse"] == card["test_rmse"]
    assert card["backbone"] == "allegro" and card["variant"] == "ordinary"
    assert card["epochs"] >= 1 and card["fit_seconds"] > 0
    assert np.isfinite(card["test_rmse"]) and np.isfinite(card["validation_rmse"])
    store = Store(trained["store"])
    assert card["sizes"]["test"] == int((store.split == TEST).sum())
    assert card["sizes"]["train"] == int((store.split == TRAIN).sum())
    # the validation RMSE of the packaged model is the one nequip saw for the best epoch
    assert card["validation_rmse"] == pytest.approx(card["stages"][0]["best_validation_rmse"],
                                                    rel=1e-4)  # fmt: skip


def test_calculator_predicts_the_configuration(trained) -> None:
    """Energy and hull properties of the configuration: the same for a shuffled, rattled or
    strained copy; no forces from a member trained on energies alone."""
    from ase.calculators.calculator import PropertyNotImplementedError

    from qcapprox.calculators import AllegroHullCalculator
    from qcapprox.models.allegro.inference import load_allegro_member

    store = Store(trained["store"])
    calc = AllegroHullCalculator(
        "Pt", 24, "ordinary", registry=trained["registry"], labels="single-point"
    )
    assert calc.todict()["variant"] == "ordinary" and "limit=24" in repr(calc)
    hull = Hull.load("Pt")
    member = load_allegro_member("Pt", 24, "ordinary", trained["registry"], labels="single-point")
    rows = np.arange(0, len(store), 5)
    batch = member.predict(store.occupancy[rows], store.parent)
    for k, row in enumerate(rows):
        atoms = store.parent.decorate(store.occupancy[row])
        atoms.calc = calc
        energy = atoms.get_potential_energy()
        n_sc = int((atoms.numbers == 21).sum())
        n_pt = len(atoms) - n_sc
        e_hull = calc.get_property("e_above_hull", atoms)
        assert e_hull == pytest.approx(batch[k], abs=1e-6)
        assert e_hull == pytest.approx(hull.e_above_hull(energy, n_sc, n_pt), abs=1e-12)
        assert calc.get_property("formation_energy", atoms) == pytest.approx(
            hull.formation_energy(energy, n_sc, n_pt), abs=1e-12
        )
        copy = atoms[np.random.default_rng(int(row)).permutation(len(atoms))]
        copy.rattle(0.05, seed=int(row))
        copy.set_cell(copy.cell[:] * 1.01, scale_atoms=True)
        copy.calc = calc
        assert copy.get_potential_energy() == pytest.approx(energy, abs=1e-6)
    with pytest.raises(PropertyNotImplementedError, match="trained on energies alone"):
        atoms.get_forces()
    # the card's test predictions are the batch predictions of the test rows
    test = np.flatnonzero(store.split == TEST)
    again = calc.predict_e_above_hull(store.occupancy[test])
    np.testing.assert_allclose(again, trained["card"]["test_predictions"], atol=1e-9)


def test_finished_limit_is_not_retrained(trained, no_training) -> None:
    from qcapprox.models.allegro import presets, training

    cards = training.train_allegro_family(
        "Pt", "ordinary", limits=(24,), preset="tiny",
        store=trained["store"], registry=trained["registry"], labels="single-point",
    )  # fmt: skip
    assert cards == [trained["card"]]
    # another preset is another model: it would train
    with pytest.raises(AssertionError, match="trained or packaged again"):
        training.train_allegro_member(
            "Pt", 24, "ordinary", replace(presets.PRESETS["tiny"], name="tiny2"),
            trained["root"] / "work2", store=trained["store"], registry=trained["registry"],
            labels="single-point",
        )  # fmt: skip


def test_members_go_to_the_user_data_dir(trained, tmp_path, monkeypatch, no_training) -> None:
    """Without a registry a member is written into the user's, never into the bundled
    calculators/ (its finished work directory is reused: neither trained nor packaged
    again)."""
    from qcapprox.models.allegro.inference import MODEL_FILE, registry_dir
    from qcapprox.models.allegro.training import train_allegro_member
    from qcapprox.paths import REGISTRY_DIR

    monkeypatch.setenv("QCAPPROX_DATA", str(tmp_path / "user"))
    monkeypatch.setenv("QCAPPROX_CACHE", str(trained["root"] / "cache"))
    shipped = REGISTRY_DIR / "single-point" / "allegro" / "Pt" / "limit-24"
    before = {p.name: p.read_bytes() for p in shipped.iterdir()}
    card = train_allegro_member("Pt", 24, "ordinary", "tiny", store=trained["store"],
                                labels="single-point")  # fmt: skip
    where = tmp_path / "user" / "calculators" / "single-point" / "allegro" / "Pt" / "limit-24"
    assert registry_dir("ordinary", "Pt", 24, labels="single-point") == where
    assert json.loads((where / "card.json").read_text()) == card
    assert (where / MODEL_FILE).stat().st_size == card["model_bytes"]
    assert card["test_predictions"] == pytest.approx(trained["card"]["test_predictions"])
    assert {p.name: p.read_bytes() for p in shipped.iterdir()} == before


def test_sequential_partition(trained) -> None:
    """Stage 1 takes the A5-defect rows of the limit, stage 2 the A5-pristine ones."""
    from qcapprox.models.base import TrainingSet

    data = TrainingSet.load(trained["store"], labels="single-point")
    defects = a5_defects(data.store.composition)
    for limit in (0, 6, 24):
        for code in (TRAIN, VALIDATION):
            every = data.rows(limit, code)
            d, p = data.rows(limit, code, "defects"), data.rows(limit, code, "pristine")
            assert np.array_equal(np.sort(np.concatenate([d, p])), every)
            assert (defects[d] > 0).all() and (defects[p] == 0).all()
            assert in_limit(data.store.composition[every], limit).all()
    assert len(data.rows(0, TRAIN, "defects")) == 0  # limit 0: sequential = ordinary


def test_corpus_is_deterministic_and_readable() -> None:
    from qcapprox.models.allegro.corpus import DEFAULT_CORPUS, corpus_structures, read_corpus

    first, second = corpus_structures(), corpus_structures()
    assert len(first) == len(second) > 400
    for a, b in zip(first, second, strict=True):
        assert a.info == b.info and np.array_equal(a.positions, b.positions)
    assert {a.info["system"] for a in first} == {"Sc", "Sc-Pt", "Sc-Pd", "Sc-Ir", "Sc-Rh"}
    if DEFAULT_CORPUS.exists():
        images = read_corpus(DEFAULT_CORPUS)
        assert len(images) == len(first)
        assert all(np.isfinite(a.get_potential_energy()) for a in images)


def test_bad_corpus_is_refused(tmp_path) -> None:
    from ase.build import bulk
    from ase.io import write

    from qcapprox.errors import AllegroError
    from qcapprox.models.allegro.corpus import read_corpus

    path = tmp_path / "no-energy.extxyz"
    write(path, [bulk("Sc")])
    with pytest.raises(AllegroError, match="carries no energy"):
        read_corpus(path)
    with pytest.raises(AllegroError, match="no corpus"):
        read_corpus(tmp_path / "missing.extxyz")


def test_interrupted_stage_is_not_finished(tmp_path, monkeypatch) -> None:
    """Lightning exits cleanly on SIGTERM: the epoch count tells a stopped run from a done one."""
    from qcapprox.errors import AllegroError
    from qcapprox.models.allegro import config, presets, runner

    stage = tmp_path / "stage"
    logs = stage / "log" / "version_0"
    logs.mkdir(parents=True)
    monitor = config.MONITOR
    (logs / "metrics-part-000.csv").write_text(f"epoch,step,{monitor}\n0,1,0.5\n1,2,0.3\n")
    (logs / "metrics.csv").write_text(f"epoch,step,{monitor}\n1,2,0.3\n2,3,0.4\n")
    assert runner._read_history(logs) == [0.5, 0.3, 0.4]
    stage_config = config.stage_config(
        presets.PRESETS["small"], stage, ["Sc", "Pt"], {}, n_train=10_000, forces=False, lr=1e-3
    )
    monkeypatch.setattr(runner, "_run", lambda *args, **kwargs: None)
    with pytest.raises(AllegroError, match="interrupted"):
        runner.run_stage(stage, stage_config)  # 3 of 20 epochs, best at 2: not early-stopped
    assert not (stage / "done.json").exists()
    stage_config["trainer"]["max_epochs"] = 3
    record = runner.run_stage(stage, stage_config)
    assert record["epochs"] == 3 and record["best_epoch"] == 2
    assert (stage / "done.json").exists()


def test_limits_train_side_by_side(trained, no_training) -> None:
    """jobs=2 (the module fixture) trained two limits at once in their own processes and
    published the members a one-at-a-time run then finds finished; jobs=0 is refused."""
    from qcapprox.errors import AllegroError
    from qcapprox.models.allegro import training

    cards = trained["cards"]
    assert [card["limit"] for card in cards] == [24, 12]
    assert trained["seen"] == [(1, 2), (2, 2)]
    for card in cards:
        where = trained["registry"] / "single-point" / "allegro" / "Pt"
        assert json.loads((where / f"limit-{card['limit']:02d}" / "card.json").read_text()) == card

    given = {"store": trained["store"], "registry": trained["registry"], "labels": "single-point"}
    assert training.train_allegro_family("Pt", "ordinary", (24, 12), "tiny", **given) == cards
    with pytest.raises(AllegroError, match="jobs 0"):
        training.train_allegro_family("Pt", "ordinary", (24, 12), "tiny", jobs=0, **given)


def test_learning_rate_schedules(tmp_path) -> None:
    """A plateau preset halves the rate on the validation RMSE; a cosine preset anneals it
    over the stage's epoch cap to lr / 50; any other schedule is refused."""
    import torch
    from hydra.utils import instantiate

    from qcapprox.errors import AllegroError
    from qcapprox.models.allegro import config, presets

    small = presets.PRESETS["small"]
    for schedule in presets.LR_SCHEDULES:
        preset = replace(small, lr_schedule=schedule)
        stage = config.stage_config(preset, tmp_path, ["Sc", "Pt"], {}, n_train=1000,
                                    forces=False, lr=0.02)  # fmt: skip
        entry = stage["training_module"]["lr_scheduler"]
        optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=0.02)
        scheduler = instantiate(entry["scheduler"], optimizer=optimizer)
        epochs = stage["trainer"]["max_epochs"]
        assert epochs == preset.epochs(1000)
        if schedule == "cosine":
            assert "monitor" not in entry
            rates = []
            for _ in range(epochs):
                optimizer.step()
                scheduler.step()
                rates.append(optimizer.param_groups[0]["lr"])
            assert np.all(np.diff(rates) < 0)  # decreasing every epoch ...
            assert rates[-1] == pytest.approx(0.02 / presets.COSINE_FLOOR)  # ... to the floor
            half = 0.02 / 50 + (0.02 - 0.02 / 50) * (1 + np.cos(np.pi * 10 / epochs)) / 2
            assert rates[9] == pytest.approx(half)  # eq. of Preset's docstring at t = 10
        else:
            assert entry["monitor"] == config.MONITOR
            for _ in range(preset.lr_patience + 2):
                scheduler.step(1.0)  # no improvement
            assert optimizer.param_groups[0]["lr"] == pytest.approx(0.01)
    with pytest.raises(AllegroError, match="lr_schedule 'step' is not one of plateau, cosine"):
        replace(small, lr_schedule="step")


def configure_only(trained, tmp_path, monkeypatch, variant: str, preset, capture) -> None:
    """Train the limit-24 member of `variant` on the tiny store with nequip-train replaced
    by `capture(stage_dir, config)`, which raises KeyboardInterrupt once it has seen enough."""
    from qcapprox.models.allegro import runner, training

    monkeypatch.setenv("QCAPPROX_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(runner, "run_stage", capture)
    with pytest.raises(KeyboardInterrupt):
        training.train_allegro_member("Pt", 24, variant, preset, tmp_path / "work",
                                      store=trained["store"], registry=tmp_path / "registry",
                                      labels="single-point")  # fmt: skip


def test_fine_tuning_stages_take_the_presets_fine_tune_fields(trained, tmp_path, monkeypatch):
    """A preset with a cosine schedule from scratch and `fine_tune` = plateau, two epochs
    at least: the sequential variant's first stage anneals for one epoch (tiny's budget),
    its second (fine-tuning) stage halves on plateaus for two; fields other than
    FINE_TUNE_FIELDS are refused; presets without `fine_tune` keep the digest their
    shipped cards record."""
    from qcapprox.errors import AllegroError
    from qcapprox.models.allegro import presets
    from qcapprox.paths import REGISTRY_DIR

    preset = replace(presets.PRESETS["tiny"], name="tiny-fine-tune", lr_schedule="cosine",
                     fine_tune={"lr_schedule": "plateau", "min_epochs": 2})  # fmt: skip
    configs: list[dict] = []

    def capture(stage_dir: Path, config: dict) -> dict:
        configs.append(config)
        if len(configs) == 2:
            raise KeyboardInterrupt  # both stages configured: stop before packaging
        return {"epochs": 1, "seconds": 0.0}

    configure_only(trained, tmp_path, monkeypatch, "sequential", preset, capture)
    first, second = (c["training_module"]["lr_scheduler"]["scheduler"] for c in configs)
    assert first["_target_"].endswith("CosineAnnealingLR")
    assert second["_target_"].endswith("ReduceLROnPlateau")
    assert [c["trainer"]["max_epochs"] for c in configs] == [1, 2]
    with pytest.raises(AllegroError, match="fine_tune sets r_max"):
        replace(preset, fine_tune={"r_max": 4.0})
    with pytest.raises(AllegroError, match="lr_schedule 'step'"):
        replace(preset, fine_tune={"lr_schedule": "step"})
    corpus = json.loads((REGISTRY_DIR / "allegro-pretrained/corpus/small/card.json").read_text())
    assert presets.PRESETS["small"].digest() == corpus["preset_sha256"]
    assert preset.digest() != replace(preset, fine_tune={}).digest()


@pytest.mark.parametrize("n_p, n_d, share", [(23, 1825, 0.2), (25, 884, 0.2), (23, 47, 0.2),
                                             (5, 5, 0.9), (0, 40, 0.2), (30, 0, 0.2),
                                             (23, 1825, 0.0)])  # fmt: skip
def test_oversampled_rows_reach_the_pristine_share(n_p: int, n_d: int, share: float) -> None:
    """Every row stays; the A5-pristine rows are repeated the least whole number of times
    (found by counting up) that makes them at least `share` of the result; nothing
    changes without pristine rows, without other rows, or at share 0."""
    from qcapprox.models.allegro import presets

    preset = replace(presets.PRESETS["tiny"], pristine_share=share)
    rng = np.random.default_rng(n_p + n_d)
    rows = rng.permutation(10 * (n_p + n_d))[: n_p + n_d]
    pristine = np.zeros(len(rows), bool)
    pristine[rng.permutation(len(rows))[:n_p]] = True
    out = preset.oversampled(rows, pristine)
    copies = 1
    if share and n_p and n_d:
        while copies * n_p / (copies * n_p + n_d) < share:
            copies += 1
    assert len(out) == copies * n_p + n_d
    counts = dict(zip(*np.unique(out, return_counts=True), strict=True))
    assert set(counts) == set(rows.tolist())
    assert all(counts[r] == (copies if p else 1) for r, p in zip(rows, pristine, strict=True))


def test_balanced_preset_fits_the_pristine_rows_repeated(trained, tmp_path, monkeypatch) -> None:
    """A preset with a pristine share writes the ordinary stage's training structures with
    the A5-pristine rows repeated: its dataset holds as many structures as counted from the
    store's split; a share outside [0, 1) is refused."""
    import torch

    from qcapprox.errors import AllegroError
    from qcapprox.models.allegro import presets
    from qcapprox.models.allegro.config import DATASETS

    preset = replace(presets.PRESETS["tiny"], name="tiny-balanced", pristine_share=0.5)
    written: list[int] = []

    def capture(stage_dir: Path, config: dict) -> dict:
        written.append(len(torch.load(stage_dir / DATASETS["train"], weights_only=True)))
        raise KeyboardInterrupt  # configured: stop before training

    configure_only(trained, tmp_path, monkeypatch, "ordinary", preset, capture)
    store = Store(trained["store"])
    train = store.split == TRAIN
    n_p = int((train & (a5_defects(store.composition) == 0)).sum())
    n_d = int(train.sum()) - n_p
    assert n_p and n_d
    assert written == [n_d + n_p * int(np.ceil(n_d / n_p))]  # share 1/2: n_p c >= n_d
    assert presets.PRESETS["balanced"].digest() != presets.PRESETS["fast"].digest()
    with pytest.raises(AllegroError, match=r"pristine_share 1\.0 is not in"):
        replace(preset, pristine_share=1.0)
