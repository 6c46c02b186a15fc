"""Commands of the models: limits, train, corpus, predict, bundle."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qcapprox.cli.core import console
from qcapprox.cli.options import (
    CalculatorOpt,
    DepthOpt,
    DopantOpt,
    LabelsOpt,
    LimitsOpt,
    MappingOpt,
    RegistryOpt,
    TrainingOpt,
    check_output,
    hdf5_format,
    limits_of,
    out_option,
    setup_of,
)
from qcapprox.cli.progress import Board
from qcapprox.errors import QcapproxError
from qcapprox.settings import DEFAULT_CALCULATOR, DEFAULT_PRESET, SEED
from qcapprox.words import BUNDLED_DOPANTS, DEFAULT_POLICY, MAX_ROWS, RELAXED


def limits(store: Annotated[Path, typer.Argument(help="A labelled training store.")]) -> None:
    """Subset sizes per limit and the fixed split (the study's Table 1 / Figure 1)."""
    from rich.table import Table

    from qcapprox.datasets import subset_sizes, write_split
    from qcapprox.store import Store

    split = write_split(store)
    table = Table(title=f"{store}: limit subsets (split stored in the file)")
    for col in ("limit", "train", "validation", "test", "total"):
        table.add_column(col, justify="right")
    for row in subset_sizes(Store(store).composition, split):
        table.add_row(*(str(row[c]) for c in ("limit", "train", "validation", "test", "total")))
    console.print(table)


def train(
    backbone: Annotated[
        str,
        typer.Argument(
            help="rf (or a regressor name: hgb, xgboost...), allegro, allegro-sequential, ..."
        ),
    ],
    dopant: DopantOpt,
    limits: LimitsOpt = "all",
    variant: Annotated[
        str | None,
        typer.Option(help="allegro: ordinary (default), sequential or pretrained."),
    ] = None,
    preset: Annotated[
        str,
        typer.Option(
            help="allegro: fast (the default: small's model, a faster schedule), balanced "
            "(fast, A4-only rows weighted up), small (CPU) or paper (GPU)."
        ),
    ] = DEFAULT_PRESET,
    forces: Annotated[bool, typer.Option(help="allegro: fit forces too.")] = False,
    corpus: Annotated[
        Path | None,
        typer.Option(help="allegro pretrained: your own extxyz corpus (see `qcapprox corpus`)."),
    ] = None,
    jobs: Annotated[
        int,
        typer.Option(
            min=1,
            help="allegro: limits trained at once, the cores shared between them "
            "(2 on 2 cores: 1.6x the members per hour).",
        ),
    ] = 1,
    labels: LabelsOpt = RELAXED,
    mapping: MappingOpt = DEFAULT_POLICY,
    depth: DepthOpt = False,
    training: TrainingOpt = None,
    registry: RegistryOpt = None,
) -> None:
    """Train a family (one model per limit; finished limits are kept) and its model cards,
    into --registry or the user data directory."""
    from rich.table import Table

    from qcapprox.models import backbone as get_backbone

    todo = limits_of(limits)
    setup = setup_of(labels, mapping, depth)
    kind = get_backbone(backbone, variant)
    given = {"preset": preset, "forces": forces, "corpus": corpus, "jobs": jobs}
    if corpus is not None and "corpus" not in kind.options:
        raise QcapproxError("--corpus is for `train allegro --variant pretrained` only")
    if jobs != 1 and "jobs" not in kind.options:
        raise QcapproxError("--jobs is for `train allegro` only")
    with Board() as board:
        cards = kind.train(
            dopant, todo, setup, training, registry,
            progress=board.step(f"train {kind.name} Sc60{dopant}13", "limits"),
            **{name: value for name, value in given.items() if name in kind.options},
        )  # fmt: skip
    table = Table(title=f"{kind.name} family, Sc60{dopant}13, {setup} labels (CHGNet stand-in)")
    for col in ("limit", "train", "validation", "test RMSE eV/atom", "fit s"):
        table.add_column(col, justify="right")
    for card in cards:
        sizes = card["sizes"]
        table.add_row(
            str(card["limit"]), str(sizes["train"]), str(sizes["validation"]),
            f"{card['test_rmse']:.4f}", f"{card['fit_seconds']:.1f}",
        )  # fmt: skip
    console.print(table)
    if cards:
        console.print(f"labels: {cards[0]['labeler']}; {cards[0].get('left_out', 0)} rows left out")


def corpus(
    out: Annotated[Path, out_option("The corpus to write (.extxyz).")],
    dopants: Annotated[
        str,
        typer.Option(help="Comma list of metals with reference phases (the user's, else bundled)."),
    ] = ",".join(BUNDLED_DOPANTS),
    calculator: CalculatorOpt = DEFAULT_CALCULATOR,
    seed: Annotated[int, typer.Option(help="Seed of the strained and rattled copies.")] = SEED,
) -> None:
    """Build and label a pre-training corpus of binary Sc-M crystals (strained, rattled copies)."""
    from qcapprox.models.allegro.corpus import build_corpus

    if out.exists():
        raise QcapproxError(f"{out} exists: choose another --out (nothing was overwritten)")
    metals = tuple(m.strip() for m in dopants.split(","))
    counted = [0]

    with Board() as board:
        step = board.step(f"corpus Sc-{'/'.join(metals)}", "structures")

        def progress(done: int, total: int) -> None:
            counted[0] = done
            step(done, total)

        build_corpus(out, calculator, seed, metals, progress)
    console.print(f"{out}: {counted[0]} structures labelled with {calculator}")


def predict(
    store: Annotated[Path, typer.Argument(help="A qcapprox store (.h5).")],
    backbone: Annotated[
        str,
        typer.Option(
            help="rf (or a regressor name), allegro, allegro-sequential, ...; all: every "
            "family trained at all 13 limits for the store's dopant on --labels"
        ),
    ] = "rf",
    limits: LimitsOpt = "all",
    labels: LabelsOpt = RELAXED,
    mapping: MappingOpt = DEFAULT_POLICY,
    depth: DepthOpt = False,
    training: TrainingOpt = None,
    registry: RegistryOpt = None,
    reuse: Annotated[
        Path | None,
        typer.Option(
            help="A results file predicted before: a limit whose member reproduces its "
            "stored values of the same rows (checked on 64 of them) is copied, not predicted."
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help=f"Predict a store of more than {MAX_ROWS:,} configurations."),
    ] = False,
) -> None:
    """Predict the energy above hull of every configuration with a family, per limit
    (in bounded memory; the size and the estimated time, memory and disk are stated first)."""
    from qcapprox.models import trained_backbones
    from qcapprox.prediction import Plan, predict_store
    from qcapprox.store import scan_store

    todo = limits_of(limits)
    setup = setup_of(labels, mapping, depth)
    scan = scan_store(store)
    if backbone == "all":
        names = trained_backbones(scan.parent.dopant, setup, registry)
        if not names:
            console.print(f"{store}: no family is trained on {setup} labels for its dopant")
    else:
        names = [backbone]
    for name in names:
        plan = Plan.of(store, name, todo, setup, scan)
        console.print(plan.describe(), markup=False, highlight=False, soft_wrap=True)
        with Board() as board:
            done = predict_store(
                store, name, plan.limits, progress=board.step(f"predict {name}", "limits"),
                labels=setup, training=training, registry=registry, reuse=reuse, plan=plan,
                max_rows=None if force else MAX_ROWS,
            )  # fmt: skip
        console.print(
            f"{store}: predictions/{plan.family} for limits {done or 'none new'} (energies "
            f"above hull, eV/atom, models trained on {setup} labels; "
            f"{_predicted_with(store, plan.family)})",
            markup=False, highlight=False,
        )  # fmt: skip


def _predicted_with(store: Path, family: str) -> str:
    """How the energies a family predicted in a store are labelled (its members' labeler:
    CHGNet stand-in labels or the labeler named)."""
    import h5py

    from qcapprox.results import energy_label

    with h5py.File(store, "r") as handle:
        group = handle.get(f"predictions/{family}", {})
        labeler = next((str(d.attrs.get("labeler", "")) for d in group.values()), None)
    return energy_label(labeler)


def bundle(
    out: Annotated[Path, out_option("Results file to write (.h5).")],
    stores: Annotated[list[Path], typer.Argument(help="Predicted stores, one per dopant.")],
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing file that is not a results file.")
    ] = False,
) -> None:
    """Bundle predicted stores of several dopants into one results file for the UI."""
    from qcapprox.models.base import training_store
    from qcapprox.results import FORMAT
    from qcapprox.results import bundle as bundle_results
    from qcapprox.store import Store

    check_output(out, stores, force, "a results file", lambda p: hdf5_format(p) == FORMAT)
    by_dopant = {}
    for path in stores:
        dopant = Store(path).parent.dopant
        if dopant in by_dopant:
            raise QcapproxError(f"{by_dopant[dopant]} and {path} both hold Sc60{dopant}13")
        by_dopant[dopant] = path
    training = {m: training_store(m) for m in by_dopant if training_store(m).exists()}
    bundle_results(by_dopant, out, training=training)
    console.print(f"{out}: {', '.join(by_dopant)}")
