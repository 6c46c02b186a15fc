"""Commands on stores: enumerate, count, info, map, export, and `labels drop`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from qcapprox.cli.core import App, console
from qcapprox.cli.options import (
    CifOpt,
    DopantOpt,
    LabelsOpt,
    OrbitOpt,
    check_directory,
    check_output,
    hdf5_format,
    out_option,
    parent_of,
)
from qcapprox.cli.progress import Board
from qcapprox.errors import QcapproxError
from qcapprox.words import MAX_CONFIGURATIONS, MAX_DISPLACEMENT

if TYPE_CHECKING:
    from qcapprox.store import Labels, Store

StoreArg = Annotated[Path, typer.Argument(help="A qcapprox store (.h5).")]


def enumerate_cmd(
    recipe: Annotated[Path, typer.Argument(help="Recipe TOML, e.g. enumeration/training.toml")],
    dopant: DopantOpt,
    out: Annotated[Path, out_option("Output store (.h5); resumes it.")],
    cif: CifOpt = None,
    orbit: OrbitOpt = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help=f"Run a recipe of more than {MAX_CONFIGURATIONS:,} configurations."
        ),
    ] = False,
) -> None:
    """Enumerate the symmetry-distinct configurations of a recipe into an HDF5 store
    (resumable; its size and the estimated disk, memory and time are stated first)."""
    from qcapprox.enumeration.recipe import Recipe
    from qcapprox.enumeration.run import Plan, run_recipe

    parent = parent_of(dopant, cif, orbit)
    rec = Recipe.load(recipe)
    check_directory(out)
    plan = Plan.of(rec, parent)
    console.print(plan.describe(), markup=False, highlight=False, soft_wrap=True)
    with Board() as board:
        step = board.step(f"enumerate {out.name}", "compositions")
        rows = run_recipe(
            rec, parent, out, progress=lambda d, t, r: step(d, t, f"{r:,} configurations"),
            plan=plan, max_configurations=None if force else MAX_CONFIGURATIONS,
        )  # fmt: skip
    console.print(f"{out}: {rows:,} configurations ({parent.spacegroup}, {len(parent.group)} ops)")


def count(
    recipe: Annotated[Path, typer.Argument(help="Recipe TOML.")],
    dopant: DopantOpt,
    cif: CifOpt = None,
    orbit: OrbitOpt = None,
    show: Annotated[int, typer.Option(min=0, help="Compositions to list (largest first).")] = 10,
) -> None:
    """Size a recipe before running it: Burnside counts per composition, no enumeration."""
    from rich.table import Table

    from qcapprox.enumeration import Enumerator
    from qcapprox.enumeration.recipe import Recipe
    from qcapprox.enumeration.run import Plan

    parent = parent_of(dopant, cif, orbit)
    rec = Recipe.load(recipe)
    enumerator = Enumerator.from_parent(parent)
    plan = Plan.of(rec, parent, enumerator)
    rows = [
        (t.composition, n, enumerator.count(t.composition), enumerator.labelled(t.composition))
        for t, n in zip(plan.tasks, plan.rows, strict=True)
    ]
    table = Table(title=f"{rec.name}, Sc60{dopant}13 ({parent.spacegroup})")
    for col in ("composition (A4 vac, A4 M, A5 vac, A5 M)", "to write", "distinct", "labelled"):
        table.add_column(col, justify="right")
    for comp, n, distinct, labelled in sorted(rows, key=lambda r: -r[1])[:show]:
        table.add_row(str(comp), f"{n:,}", f"{distinct:,}", f"{labelled:,}")
    console.print(table)
    n_test = sum(task.test for task in plan.tasks)
    design = f" ({len(rows) - n_test} train/validation + {n_test} test)" if n_test else ""
    console.print(
        f"{len(rows)} compositions{design}, {plan.configurations:,} configurations to write"
    )
    console.print(plan.describe(), markup=False, highlight=False, soft_wrap=True)


def info(store: StoreArg) -> None:
    """Summarize a store: parent, recipe, counts per composition."""
    import numpy as np

    from qcapprox.labeling import labels_in_progress, stale_hull
    from qcapprox.store import Store

    s = Store(store)
    console.print(
        f"[bold]{store}[/bold]: Sc60{s.parent.dopant}13, {s.parent.spacegroup}, "
        f"recipe {s.attrs.get('recipe_name')}, {len(s):,} configurations, "
        f"{int(s.multiplicity.sum()):,} labelled decorations"
    )
    comps, counts = np.unique(s.composition, axis=0, return_counts=True)
    largest = np.argsort(-counts, kind="stable")[:5]
    console.print(
        f"{len(comps)} compositions (A4 vac, A4 M, A5 vac, A5 M); largest: "
        + ", ".join(f"{tuple(int(c) for c in comps[i])}: {counts[i]:,}" for i in largest)
    )
    for labels in s.labels.values():
        below = int((labels.e_above_hull[labels.usable] < 0).sum())
        console.print(
            f"{labels.describe}: {int(labels.usable.sum()):,} usable, "
            f"{int((~labels.converged & np.isfinite(labels.energy)).sum()):,} unconverged, "
            f"{int((labels.error != '').sum()):,} failed; {below:,} below the hull"
        )
        if why := stale_hull(s, labels.kind):
            console.print(f"[yellow]{why}", markup=True, highlight=False)
        if labels.kind == "relaxed":
            console.print(_mapping_line(s, labels))

    for kind, run in labels_in_progress(store).items():
        limits = ", ".join(map(str, run["limits"])) or "none yet"
        console.print(
            f"{kind} labels in progress: {run['done']:,}/{run['total']:,} rows "
            f"({run['converged']:,} converged, {run['failed']:,} failed); limits complete: "
            f"{limits} (journal {run['journal']})"
        )
        if "e_above_hull" in run:
            e = run["e_above_hull"]
            console.print(
                f"  their energies above the hull: lowest {e.min():+.3f}, median "
                f"{np.median(e):+.3f} eV/atom; {int((e < 0).sum()):,} below it"
            )


def _mapping_line(store: Store, labels: Labels) -> str:
    """What the relaxed rows of a store relaxed into, in shares (all and A4-only rows), and
    how far apart the labels of relaxations that end in one configuration are."""
    import numpy as np

    if labels.mapping is None:
        return f"  relaxation map: none yet (run `qcapprox map {store.path}`)"
    usable = labels.usable
    a4_only = store.composition[:, 2:].sum(axis=1) == 0
    parts = []
    for name, rows in (("usable rows", usable), ("A4-only", usable & a4_only)):
        share = labels.mapping.shares(rows)
        parts.append(
            f"{name} ({int(rows.sum()):,}): {share['kept']:.0%} kept their configuration, "
            f"{share['other']:.0%} relaxed into another, {share['unmappable']:.0%} unmappable"
        )
    line = f"  relaxed into (tolerance {labels.mapping.tolerance:g} A): " + "; ".join(parts)
    spread = labels.mapping.end_spread(labels.e_above_hull, usable)
    if spread.size:
        line += (
            f"\n  {spread.size:,} configurations are the end of two or more relaxations; their "
            f"labels differ by up to {1000 * spread.max():.1f} meV/atom (median "
            f"{1000 * np.median(spread):.1f})"
        )
    return line


def map_cmd(
    store: Annotated[Path, typer.Argument(help="A store with relaxed labels (.h5).")],
    tolerance: Annotated[
        float,
        typer.Option(min=0.0, help="Largest distance of an atom from its assigned site, A."),
    ] = MAX_DISPLACEMENT,
) -> None:
    """Identify every relaxed structure: the configuration it relaxed into (or unmappable)."""
    from qcapprox.labeling import remap
    from qcapprox.store import Store

    with Board() as board:
        remap(store, tolerance, board.step(f"map {store.name}", "structures"))
    mapped = Store(store)
    console.print(_mapping_line(mapped, mapped.label_set("relaxed")))


def export(
    store: StoreArg,
    out: Annotated[Path, out_option("File: .cif, POSCAR, .vasp, .extxyz")],
    config_id: Annotated[int | None, typer.Option("--id", help="Configuration id.")] = None,
    row: Annotated[int | None, typer.Option("--row", help="Row instead of --id.")] = None,
    fmt: Annotated[str | None, typer.Option("--format", help="ASE format, if not guessed.")] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing file that is not a structure.")
    ] = False,
) -> None:
    """Write one configuration as CIF, POSCAR or extxyz (any ASE format)."""
    from ase.io import write
    from ase.io.formats import UnknownFileTypeError, filetype, ioformats

    from qcapprox.store import Store

    if (config_id is None) == (row is None):
        raise QcapproxError("give exactly one of --id and --row")
    try:
        fmt = fmt or filetype(out, read=False)
    except UnknownFileTypeError:
        fmt = None
    if fmt not in ioformats or not ioformats[fmt].can_write:
        raise QcapproxError(
            f"--out {out}: no structure format that ASE writes is known by this name "
            f"({fmt or 'no extension'}); use .cif, POSCAR, .vasp or .extxyz, or --format"
        )
    check_output(out, [store], force, "a structure file", lambda p: hdf5_format(p) is None)
    s = Store(store)
    if row is not None:
        if not 0 <= row < len(s):
            raise QcapproxError(f"{store}: row {row} out of range 0..{len(s) - 1}")
        config_id = int(s.ids[row])
    atoms = s.atoms(config_id)
    write(out, atoms, format=fmt)
    console.print(f"wrote {out} ({atoms.get_chemical_formula()}, id {config_id})")


labels_app = App(help="Manage the label sets of a store.")


@labels_app.command("drop")
def labels_drop(store: StoreArg, labels: LabelsOpt) -> None:
    """Remove a label set from a store on purpose (a copy without it replaces the store)."""
    from qcapprox.labeling import drop_labels

    drop_labels(store, labels)
    console.print(f"{store}: {labels} labels removed")
