"""The `qcapprox` command line: a thin layer over the package's functions."""

from __future__ import annotations

import math
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from qcapprox.errors import ParentError, QcapproxError
from qcapprox.paths import BUNDLED_RESULTS, RECIPES_DIR
from qcapprox.settings import (
    DEFAULT_CALCULATOR,
    DEFAULT_PRESET,
    FMAX,
    LABEL_CHUNK,
    LABEL_WORKERS,
    MAX_STEPS,
    OPTIMIZER,
    SEED,
)
from qcapprox.words import (
    BUNDLED_DOPANTS,
    LABEL_KINDS,
    MAX_CONFIGURATIONS,
    MAX_DISPLACEMENT,
    MAX_ROWS,
    POLICIES,
)
from rich import box
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from typer.core import TyperCommand, TyperGroup, TyperOption

if TYPE_CHECKING:
    from qcapprox.parent import Parent
    from qcapprox.prediction import Plan as PredictPlan
    from qcapprox.store import Labels, Store


class _NoFlagType:
    """Help without a `<bool>` type beside flags: they take no value (typer's rich help
    shows the type of every option, flags and --help included, unless a metavar is set)."""

    def get_params(self, ctx: typer.Context) -> list[Any]:
        params = super().get_params(ctx)
        for param in params:
            if isinstance(param, TyperOption) and param.is_flag and param.metavar is None:
                param.metavar = ""
        return params


class _Command(_NoFlagType, TyperCommand):
    """A sub-command (help without flag types)."""


class _Group(_NoFlagType, TyperGroup):
    """A group of sub-commands (help without flag types)."""


class _App(typer.Typer):
    """A typer app whose commands are `_Command`s and whose groups are `_Group`s."""

    def __init__(self, **options: Any) -> None:
        super().__init__(cls=_Group, **options)

    def command(self, name: str | None = None, **options: Any) -> Callable:
        """Register a sub-command (see typer.Typer.command) of class `_Command`."""
        return super().command(name, cls=_Command, **options)


app = _App(
    help="Screen Sc-rich quasicrystal approximants Sc60M13: enumerate, label, predict, compare.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
console = Console()
errors = Console(stderr=True)


class Session:
    """Options of the whole command line, set before a sub-command runs."""

    debug = False


def _version(show: bool) -> None:
    if show:
        from qcapprox import __version__

        console.print(f"qcapprox {__version__}")
        raise typer.Exit


@app.callback()
def options(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the traceback of an error, not one line.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Screen Sc-rich quasicrystal approximants Sc60M13: enumerate, label, predict, compare."""
    Session.debug = debug


DopantOpt = Annotated[str, typer.Option("--dopant", "-d", help="Dopant metal M (any metal).")]
FmaxOpt = Annotated[float, typer.Option(help="Relaxation: force threshold, eV/A.")]
MaxStepsOpt = Annotated[int, typer.Option(help="Relaxation: step cap.")]
OptimizerOpt = Annotated[str, typer.Option(help="Relaxation: an ASE optimizer.")]
SchedulerOpt = Annotated[
    str | None, typer.Option(help="dask scheduler address (default: local workers).")
]
WorkersOpt = Annotated[int, typer.Option(help="Local dask worker processes.")]
CifOpt = Annotated[
    Path | None, typer.Option("--cif", help="A parent CIF of your own instead of the bundled one.")
]
OrbitOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--orbit",
        help="With --cif: NAME=WYCKOFF or NAME=i,j,k,... (0-based atom indices); give A4 and A5.",
    ),
]


def _parent(dopant: str, cif: Path | None, orbit: list[str] | None) -> Parent:
    """The parent of the options: the bundled one of the dopant, or a CIF of the user's."""
    from qcapprox.parent import Parent

    if cif is None:
        if orbit:
            raise QcapproxError("--orbit describes the sites of a --cif parent: give --cif too")
        try:
            return Parent.for_dopant(dopant)
        except ParentError as err:
            raise ParentError(f"--dopant {dopant}: {err}") from err
    orbits: dict[str, str | list[int]] = {}
    for item in orbit or []:
        name, _, spec = item.partition("=")
        indices = spec.split(",")
        if not name or not spec or ("," in spec and not all(i.isdigit() for i in indices)):
            raise QcapproxError(
                f"--orbit {item!r}: use NAME=WYCKOFF (e.g. A4=12e) or NAME=i,j,k,... "
                "(0-based atom indices)"
            )
        orbits[name] = [int(i) for i in indices] if "," in spec else spec
    parent = Parent.from_cif(cif, orbits)
    if parent.dopant != dopant:
        raise QcapproxError(f"{cif} holds {parent.dopant}, not the requested dopant {dopant}")
    return parent


def _hdf5_format(path: Path) -> str | None:
    """The `format` attribute of an HDF5 file ("" if it has none; None if not HDF5)."""
    import h5py

    if not (path.is_file() and h5py.is_hdf5(path)):
        return None
    with h5py.File(path, "r") as handle:
        return str(handle.attrs.get("format", ""))


def _check_directory(out: Path) -> None:
    """Refuse an output path in a directory that does not exist."""
    if not out.parent.is_dir():
        raise QcapproxError(f"--out {out}: the directory {out.parent} does not exist")


def _check_out_dir(path: Path, option: str) -> None:
    """Refuse an output directory that is a file, or that would be made under a file,
    before any work."""
    for where in (path, *path.parents):
        if where.exists():
            if not where.is_dir():
                at = "is a file" if where == path else f"lies under the file {where}"
                raise QcapproxError(f"{option} {path} {at}: give a directory (nothing was done)")
            return


def _check_output(
    out: Path, inputs: Sequence[Path], force: bool, kind: str, is_kind: Callable[[Path], bool]
) -> None:
    """Refuse an output path that is one of the inputs or an existing file of another kind
    than the `kind` about to be written (unless `force`), or in a missing directory."""
    if out.exists() and not force:
        same = next((p for p in inputs if p.exists() and out.samefile(p)), None)
        problem = f"is the input {same}" if same is not None else f"exists and is not {kind}"
        if same is not None or not is_kind(out):
            raise QcapproxError(
                f"--out {out} {problem}: choose another output or pass --force to replace "
                "it; nothing was written"
            )
    _check_directory(out)


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rows]:>10,} configurations"),
        TimeRemainingColumn(),
        console=console,
    )


@app.command("enumerate")
def enumerate_cmd(
    recipe: Annotated[Path, typer.Argument(help="Recipe TOML, e.g. enumeration/training.toml")],
    dopant: DopantOpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output store (.h5); resumes it.")],
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

    parent = _parent(dopant, cif, orbit)
    rec = Recipe.load(recipe)
    _check_directory(out)
    plan = Plan.of(rec, parent)
    console.print(plan.describe(), markup=False, highlight=False, soft_wrap=True)
    with _progress() as bar:
        job = bar.add_task(f"{rec.name} Sc60{dopant}13", total=len(plan.tasks), rows=0)
        rows = run_recipe(
            rec, parent, out,
            progress=lambda d, t, r: bar.update(job, completed=d, rows=r),
            plan=plan, max_configurations=None if force else MAX_CONFIGURATIONS,
        )  # fmt: skip
    console.print(f"{out}: {rows:,} configurations ({parent.spacegroup}, {len(parent.group)} ops)")


@app.command()
def count(
    recipe: Annotated[Path, typer.Argument(help="Recipe TOML.")],
    dopant: DopantOpt,
    cif: CifOpt = None,
    orbit: OrbitOpt = None,
    show: Annotated[int, typer.Option(min=0, help="Compositions to list (largest first).")] = 10,
) -> None:
    """Size a recipe before running it: Burnside counts per composition, no enumeration."""
    from qcapprox.enumeration import Enumerator
    from qcapprox.enumeration.recipe import Recipe
    from qcapprox.enumeration.run import Plan

    parent = _parent(dopant, cif, orbit)
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


@app.command()
def info(store: Annotated[Path, typer.Argument(help="A qcapprox store (.h5).")]) -> None:
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
    """What the relaxed rows of a store relaxed into, in shares (all and A4-only rows)."""
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
    return f"  relaxed into (tolerance {labels.mapping.tolerance:g} A): " + "; ".join(parts)


@app.command("map")
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

    with _progress() as bar:
        job = bar.add_task("relaxed into", total=None, rows=0)
        remap(store, tolerance, lambda n, total: bar.update(job, completed=n, total=total, rows=n))
    mapped = Store(store)
    console.print(_mapping_line(mapped, mapped.label_set("relaxed")))


@app.command()
def export(
    store: Annotated[Path, typer.Argument(help="A qcapprox store (.h5).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="File: .cif, POSCAR, .vasp, .extxyz")],
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
    _check_output(out, [store], force, "a structure file", lambda p: _hdf5_format(p) is None)
    s = Store(store)
    if row is not None:
        if not 0 <= row < len(s):
            raise QcapproxError(f"{store}: row {row} out of range 0..{len(s) - 1}")
        config_id = int(s.ids[row])
    atoms = s.atoms(config_id)
    write(out, atoms, format=fmt)
    console.print(f"wrote {out} ({atoms.get_chemical_formula()}, id {config_id})")


@app.command()
def label(
    store: Annotated[Path, typer.Argument(help="A qcapprox store (.h5) to label.")],
    relax: Annotated[
        bool,
        typer.Option(
            "--relax/--single-point",
            help="Relax positions and cell (the target, default) or single points at the "
            "parent geometry (the cheap screen).",
        ),
    ] = True,
    calculator: Annotated[
        str, typer.Option(help="'chgnet' (bundled stand-in for DFT) or 'module:factory'.")
    ] = DEFAULT_CALCULATOR,
    fmax: FmaxOpt = FMAX,
    max_steps: MaxStepsOpt = MAX_STEPS,
    optimizer: OptimizerOpt = OPTIMIZER,
    scheduler: SchedulerOpt = None,
    workers: WorkersOpt = LABEL_WORKERS,
    chunk: Annotated[int, typer.Option(help="Configurations per dask task.")] = LABEL_CHUNK,
    start_from: Annotated[
        Path | None,
        typer.Option(
            help="A store of another dopant with relaxed labels: configurations it relaxed "
            "start from its relaxed geometry (rescaled to this parent), not the parent's."
        ),
    ] = None,
) -> None:
    """Label every configuration with an ASE calculator (resumable, on dask)."""
    import numpy as np
    from qcapprox.labeling import Relaxation, label_store
    from qcapprox.store import Store

    relaxation = Relaxation(fmax, max_steps, optimizer) if relax else None
    with Progress(
        TextColumn("[bold]labeling"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        console=console,
    ) as bar:
        job = bar.add_task("label", total=None, rate="")
        start: list[float] = []
        logged = [0.0]  # when a line was last printed (output that is not a terminal)

        def update(done: int, total: int) -> None:
            start.append(done)
            elapsed = bar.tasks[0].elapsed or 1e-9
            per_hour = (done - start[0]) / elapsed * 3600
            rate = f"{per_hour:.0f} structures/h"
            bar.update(job, completed=done, total=total, rate=rate)
            if not console.is_terminal and (elapsed - logged[0] > 60 or done == total):
                logged[0] = elapsed  # a log line a minute for background runs
                eta = f"{(total - done) / per_hour:.1f} h left" if per_hour else "rate unknown"
                console.print(f"labeling {done:,}/{total:,}: {rate}, {eta}")

        failed = label_store(
            store, calculator, relaxation, scheduler, workers, chunk, progress=update,
            start_from=start_from,
        )  # fmt: skip
    labels = Store(store).label_set("relaxed" if relax else "single-point")
    unconverged = int((~labels.converged & np.isfinite(labels.energy)).sum())
    console.print(
        f"{store}: {len(labels.energy):,} configurations, {labels.describe}; {failed} failed, "
        f"{unconverged} unconverged (left out of training)"
    )


@app.command()
def references(
    dopant: DopantOpt,
    calculator: Annotated[
        str, typer.Option(help="'chgnet' (bundled stand-in for DFT) or 'module:factory'.")
    ] = DEFAULT_CALCULATOR,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out-dir", help="Directory of Sc-<M>.json (default: <user data dir>/references)."
        ),
    ] = None,
) -> None:
    """Relax the Sc-M competing phases that define the convex hull, for any metal
    (resumable: phases already in the file are kept)."""
    from qcapprox.hull import Hull
    from qcapprox.paths import user_references_dir
    from qcapprox.references import build_references

    out_dir = out_dir or user_references_dir()
    _check_out_dir(out_dir, "--out-dir")
    with Progress(
        TextColumn(f"[bold]references Sc-{dopant}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[phase]}"), TimeRemainingColumn(), console=console,
    ) as bar:  # fmt: skip
        job = bar.add_task("relax", total=None, phase="")
        path = build_references(
            dopant, out_dir, calculator,
            progress=lambda d, t, name: bar.update(job, completed=d, total=t, phase=name),
        )  # fmt: skip
    hull = Hull.load(dopant, path)
    console.print(f"{path}: {len(hull.phase_names)} phases; hull: {', '.join(hull.stable_names)}")


@app.command()
def screen(
    dopant: DopantOpt,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out-dir",
            help="Inference store and results file (default: <user data dir>/results).",
        ),
    ] = None,
    relax: Annotated[
        bool,
        typer.Option(
            "--relax/--single-point",
            help="Train on relaxed labels (the target, default) or single points (cheap).",
        ),
    ] = True,
    calculator: Annotated[
        str, typer.Option(help="'chgnet' (bundled stand-in for DFT) or 'module:factory'.")
    ] = DEFAULT_CALCULATOR,
    fmax: FmaxOpt = FMAX,
    max_steps: MaxStepsOpt = MAX_STEPS,
    optimizer: OptimizerOpt = OPTIMIZER,
    design: Annotated[
        Path, typer.Option(help="Training design recipe (needs a \\[test] table).")
    ] = RECIPES_DIR / "training.toml",
    inference: Annotated[Path, typer.Option(help="Inference recipe.")] = RECIPES_DIR
    / "inference-a4.toml",
    limits: LimitsOpt = "all",
    scheduler: SchedulerOpt = None,
    workers: WorkersOpt = LABEL_WORKERS,
    training: Annotated[
        Path | None,
        typer.Option(
            help="Training store, built here unless bundled (default: the user's, else the "
            "bundled one)."
        ),
    ] = None,
    registry: RegistryOpt = None,
    start_from: Annotated[
        str,
        typer.Option(
            help="Where relaxations start: 'auto' (the bundled Pt set's relaxed geometries "
            "once it has them), 'parent' (the parent geometry) or a store with relaxed labels."
        ),
    ] = "auto",
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Start without asking.")] = False,
) -> None:
    """A new dopant end to end: references, training design, labels, RF family, inference
    set, predictions and a results file for `qcapprox tui` (every step resumable)."""
    from qcapprox.hull import dopant_symbol
    from qcapprox.labeling import Relaxation
    from qcapprox.paths import user_data_dir
    from qcapprox.screen import Screen, default_start

    relaxation = Relaxation(fmax, max_steps, optimizer) if relax else None  # checked first
    if start_from == "auto":  # reads the bundled Pt set only when asked to
        source = default_start(dopant_symbol(dopant))
    else:
        source = None if start_from == "parent" else Path(start_from)
    if out_dir is None:
        out_dir = user_data_dir() / "results"
        out_dir.mkdir(parents=True, exist_ok=True)
    _check_out_dir(out_dir, "--out-dir")
    run = Screen(
        dopant, out_dir, calculator, relaxation, design, inference, _limits(limits), workers,
        training_set=training, registry=registry, start_from=source, scheduler=scheduler,
    )  # fmt: skip
    run.check()
    for line in run.cost(run.parent()):
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    if not yes and not typer.confirm("start?", default=True):
        raise typer.Exit(1)
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TimeRemainingColumn(), console=console,
    ) as bar:  # fmt: skip

        def step(name: str) -> Callable[[int, int], None]:
            job = bar.add_task(name, total=None)
            return lambda done, total: bar.update(job, completed=done, total=total)

        results = run.run(step)
    console.print(_known_phase_line(results, run.symbol, run.labels), highlight=False,
                  markup=False, soft_wrap=True)  # fmt: skip
    console.print(f"results: {results}  (open with `qcapprox tui {results}`)")


def _known_phase_line(results: Path, dopant: str, labels: str) -> str:
    """Where the highest trained limit puts the known phase's arrangement (the Pm-3 6f half
    of A4 vacant), and how many configurations lie below 0 and below the slightly positive
    threshold of the label set."""
    from qcapprox.analysis import SLIGHTLY_POSITIVE, ranks
    from qcapprox.results import Results
    from qcapprox.words import LIMITS, family_key

    near = SLIGHTLY_POSITIVE[labels]
    family = family_key("rf", labels)
    with Results(results) as res:
        pred = res.predictions(dopant, family)
        row = res.known_phase_row(dopant)
        source = res.energy_label(dopant)
        limit = res.limits(dopant, family)[-1]
    k = LIMITS.index(limit)
    e = pred[k]
    line = (
        f"limit {limit}: {int((e < 0).sum()):,} configurations below the hull, "
        f"{int((e < near).sum()):,} below +{near:g} eV/atom"
    )
    if row is not None:
        line += (
            f"; Sc57{dopant}13 (the known phase's arrangement) at {e[row]:+.3f} eV/atom, "
            f"rank {int(ranks(pred, row)[k]):,} of {len(e):,}"
        )
    return f"{line} (RF; {source})"


@app.command("import-energies")
def import_energies_cmd(
    store: Annotated[Path, typer.Argument(help="A qcapprox store (.h5) to label.")],
    structures: Annotated[
        Path, typer.Argument(help="extxyz, OUTCAR, vasprun.xml, ... with energies")
    ],
    labels: Annotated[
        LabelKind, typer.Option(help="Which label set the energies are: relaxed or single-point.")
    ] = "relaxed",
    duplicates: Annotated[
        Literal["refuse", "lowest", "last"],
        typer.Option(
            help="Two structures of one configuration with different energies: refuse the "
            "import, or keep the lowest or the last energy."
        ),
    ] = "refuse",
    replace: Annotated[
        bool, typer.Option("--replace", help="Replace the store's label set of this kind.")
    ] = False,
) -> None:
    """Label a store with energies you computed elsewhere (e.g. DFT): every structure is
    checked first (periodic, a finite energy, a configuration of the store); any fault
    writes nothing."""
    from qcapprox.labeling import import_energies
    from qcapprox.store import writer_lock

    with writer_lock(store):
        matched = import_energies(store, structures, labels, duplicates=duplicates, replace=replace)
    console.print(f"{store}: {matched:,} configurations labelled ({labels}) from {structures}")


labels_app = _App(
    help="Manage the label sets of a store.", no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)  # fmt: skip
app.add_typer(labels_app, name="labels")


@labels_app.command("drop")
def labels_drop(
    store: Annotated[Path, typer.Argument(help="A qcapprox store (.h5).")],
    labels: Annotated[LabelKind, typer.Option(help="The label set to remove.")],
) -> None:
    """Remove a label set from a store on purpose (a copy without it replaces the store)."""
    from qcapprox.labeling import drop_labels

    drop_labels(store, labels)
    console.print(f"{store}: {labels} labels removed")


@app.command()
def rehull(
    stores: Annotated[list[Path], typer.Argument(help="Labelled qcapprox stores (.h5).")],
) -> None:
    """Recompute the formation energies and energies above the hull of labelled stores from
    the dopant's references as they are now (after `qcapprox references` added a phase)."""
    from qcapprox.hull import Hull
    from qcapprox.labeling import rehull as rehull_store
    from qcapprox.store import Store

    for path in stores:
        hull = Hull.load(Store(path).parent.dopant)
        counts = rehull_store(path, hull)
        below = ", ".join(f"{kind} {a:,} -> {b:,}" for kind, (a, b) in counts.items())
        console.print(f"{path}: hull {', '.join(hull.stable_names)}; rows below it: {below}")


def _limits(text: str) -> tuple[int, ...]:
    """The limits of a --limits value: 'all' or a comma list of distinct limits."""
    from qcapprox.words import LIMITS

    if text == "all":
        return LIMITS
    items = [x.strip() for x in text.split(",")]
    bad = [x for x in items if not (x.isdigit() and int(x) in LIMITS)]
    repeated = sorted({x for x in items if items.count(x) > 1})
    if bad or repeated:
        problem = f"{bad[0]!r} is not a limit" if bad else f"limit {repeated[0]} is repeated"
        raise typer.BadParameter(
            f"{problem}; give 'all' or distinct limits from "
            f"{', '.join(map(str, LIMITS))} separated by commas",
            param_hint="'--limits'",
        )
    return tuple(int(x) for x in items)


LimitsOpt = Annotated[str, typer.Option(help="'all' or a comma list such as 0,12,24.")]
TrainingOpt = Annotated[
    Path | None,
    typer.Option(help="Labelled training store (default: the user's, else the bundled one)."),
]
RegistryOpt = Annotated[
    Path | None,
    typer.Option(help="Model registry directory (default: the user's, then calculators/)."),
]
LabelKind = Literal[LABEL_KINDS]
LabelsOpt = Annotated[
    LabelKind,
    typer.Option(
        "--labels",
        help="Label set: relaxed (the target) or single-point (the cheap screen, parent geometry).",
    ),
]

MappingOpt = Annotated[
    Literal[POLICIES],
    typer.Option(
        "--mapping",
        help="Relaxed labels: start (the study's: a label belongs to the configuration it "
        "started from), kept (only rows that kept their identity) or relaxed-into (a label "
        "belongs to the configuration it relaxed into, the lowest when several land on it).",
    ),
]
DepthOpt = Annotated[
    bool,
    typer.Option(
        "--depth/--no-depth",
        help="Add the depth design (sc60<m>13-depth.h5 beside the training store: up to 20 "
        "realizations of the lowest compositions) to Table 1's training rows.",
    ),
]


def _setup(labels: str, mapping: str, depth: bool) -> str:
    """The training set-up's name (`qcapprox.models.base.Setup`) of the options."""
    from qcapprox.models.base import Setup

    return Setup(labels, mapping, depth).name


@app.command()
def limits(store: Annotated[Path, typer.Argument(help="A labelled training store.")]) -> None:
    """Subset sizes per limit and the fixed split (the study's Table 1 / Figure 1)."""
    from qcapprox.datasets import subset_sizes, write_split
    from qcapprox.store import Store

    split = write_split(store)
    table = Table(title=f"{store}: limit subsets (split stored in the file)")
    for col in ("limit", "train", "validation", "test", "total"):
        table.add_column(col, justify="right")
    for row in subset_sizes(Store(store).composition, split):
        table.add_row(*(str(row[c]) for c in ("limit", "train", "validation", "test", "total")))
    console.print(table)


@app.command()
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
            help="allegro: fast (the default: small's model, a faster schedule), small "
            "(CPU) or paper (GPU)."
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
    labels: LabelsOpt = "relaxed",
    mapping: MappingOpt = "start",
    depth: DepthOpt = False,
    training: TrainingOpt = None,
    registry: RegistryOpt = None,
) -> None:
    """Train a family (one model per limit; finished limits are kept) and its model cards,
    into --registry or the user data directory."""
    from qcapprox.models import backbone as get_backbone

    todo = _limits(limits)
    labels = _setup(labels, mapping, depth)
    kind = get_backbone(backbone, variant)
    given = {"preset": preset, "forces": forces, "corpus": corpus, "jobs": jobs}
    if corpus is not None and "corpus" not in kind.options:
        raise QcapproxError("--corpus is for `train allegro --variant pretrained` only")
    if jobs != 1 and "jobs" not in kind.options:
        raise QcapproxError("--jobs is for `train allegro` only")
    table = Table(title=f"{kind.name} family, Sc60{dopant}13, {labels} labels (CHGNet stand-in)")
    for col in ("limit", "train", "validation", "test RMSE eV/atom", "fit s"):
        table.add_column(col, justify="right")
    with Progress(
        TextColumn(f"[bold]{kind.name} Sc60{dopant}13"), BarColumn(), MofNCompleteColumn(),
        TextColumn("limits"), TimeElapsedColumn(), console=console,
    ) as bar:  # fmt: skip
        job = bar.add_task("train", total=len(todo))
        cards = kind.train(
            dopant, todo, labels, training, registry,
            progress=lambda d, t: bar.update(job, completed=d),
            **{name: value for name, value in given.items() if name in kind.options},
        )  # fmt: skip
    for card in cards:
        sizes = card["sizes"]
        table.add_row(
            str(card["limit"]), str(sizes["train"]), str(sizes["validation"]),
            f"{card['test_rmse']:.4f}", f"{card['fit_seconds']:.1f}",
        )  # fmt: skip
    console.print(table)
    if cards:
        console.print(f"labels: {cards[0]['labeler']}; {cards[0].get('left_out', 0)} rows left out")


@app.command()
def corpus(
    out: Annotated[Path, typer.Option("--out", "-o", help="The corpus to write (.extxyz).")],
    dopants: Annotated[
        str,
        typer.Option(help="Comma list of metals with reference phases (the user's, else bundled)."),
    ] = ",".join(BUNDLED_DOPANTS),
    calculator: Annotated[
        str, typer.Option(help="Labeler: chgnet or module:factory returning an ASE calculator.")
    ] = DEFAULT_CALCULATOR,
    seed: Annotated[int, typer.Option(help="Seed of the strained and rattled copies.")] = SEED,
) -> None:
    """Build and label a pre-training corpus of binary Sc-M crystals (strained, rattled copies)."""
    from qcapprox.models.allegro.corpus import build_corpus

    if out.exists():
        raise QcapproxError(f"{out} exists: choose another --out (nothing was overwritten)")
    metals = tuple(m.strip() for m in dopants.split(","))
    with Progress(
        TextColumn(f"[bold]corpus Sc-{'/'.join(metals)}"), BarColumn(), MofNCompleteColumn(),
        TimeRemainingColumn(), console=console,
    ) as bar:  # fmt: skip
        job = bar.add_task("label", total=None)
        build_corpus(
            out, calculator, seed, metals, lambda d, t: bar.update(job, completed=d, total=t)
        )
        n = bar.tasks[0].completed
    console.print(f"{out}: {n:.0f} structures labelled with {calculator}")


@app.command()
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
    labels: LabelsOpt = "relaxed",
    mapping: MappingOpt = "start",
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
    from qcapprox.prediction import Plan as PredictPlan
    from qcapprox.store import scan_store

    todo = _limits(limits)
    labels = _setup(labels, mapping, depth)
    scan = scan_store(store)
    if backbone == "all":
        names = trained_backbones(scan.parent.dopant, labels, registry)
        if not names:
            console.print(f"{store}: no family is trained on {labels} labels for its dopant")
    else:
        names = [backbone]
    for name in names:
        plan = PredictPlan.of(store, name, todo, labels, scan)
        console.print(plan.describe(), markup=False, highlight=False, soft_wrap=True)
        done = _predict_family(
            store, name, labels, training, registry, reuse, plan, None if force else MAX_ROWS
        )
        console.print(
            f"{store}: predictions/{plan.family} for limits {done or 'none new'} (energies "
            f"above hull, eV/atom, models trained on {labels} labels; "
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


def _predict_family(
    store: Path,
    backbone: str,
    labels: str,
    training: Path | None,
    registry: Path | None,
    reuse: Path | None,
    plan: PredictPlan,
    max_rows: int | None,
) -> list[int]:
    """`predict_store` under a progress bar; the limits predicted."""
    from qcapprox.prediction import predict_store

    with Progress(
        TextColumn(f"[bold]{backbone}"), BarColumn(), MofNCompleteColumn(), console=console
    ) as bar:
        job = bar.add_task("predict", total=None)
        return predict_store(
            store,
            backbone,
            plan.limits,
            progress=lambda d, t: bar.update(job, completed=d, total=t),
            labels=labels,
            training=training,
            registry=registry,
            reuse=reuse,
            plan=plan,
            max_rows=max_rows,
        )


@app.command()
def bundle(
    out: Annotated[Path, typer.Option("--out", "-o", help="Results file to write (.h5).")],
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

    _check_output(out, stores, force, "a results file", lambda p: _hdf5_format(p) == FORMAT)
    by_dopant = {}
    for path in stores:
        dopant = Store(path).parent.dopant
        if dopant in by_dopant:
            raise QcapproxError(f"{by_dopant[dopant]} and {path} both hold Sc60{dopant}13")
        by_dopant[dopant] = path
    training = {m: training_store(m) for m in by_dopant if training_store(m).exists()}
    bundle_results(by_dopant, out, training=training)
    console.print(f"{out}: {', '.join(by_dopant)}")


def _finite(value: float) -> float:
    """Refuse a threshold that is NaN or infinite (every set would be empty or full)."""
    if not math.isfinite(value):
        raise typer.BadParameter(
            f"{value} is not a finite energy; give eV/atom, such as 0.01",
            param_hint="'--threshold'",
        )
    return value


ThresholdOpt = Annotated[
    float, typer.Option(help="Below-hull threshold, eV/atom.", callback=_finite)
]


@app.command()
def tui(
    results: Annotated[Path, typer.Argument(help="A results file (qcapprox bundle).")],
    threshold: ThresholdOpt = 0.0,
    export_dir: Annotated[Path, typer.Option(help="Where exported structures go.")] = Path("."),
) -> None:
    """Compare below-hull candidate sets across limits and backbones in the terminal (a
    missing or foreign results file is refused before the UI starts)."""
    from qcapprox.tui import run

    run(results, threshold=threshold, export_dir=export_dir)


@app.command()
def report(
    results: Annotated[Path, typer.Argument(help="A results file (qcapprox bundle).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for the figures.")],
    threshold: ThresholdOpt = 0.0,
) -> None:
    """Write the study's figures for these results (PNG and SVG)."""
    from qcapprox.report import write_report

    _check_out_dir(out, "--out")

    files = write_report(results, out, threshold=threshold, log=console.print)
    console.print(f"{out}: {len(files)} files (energies: CHGNet stand-in labels)")


@app.command()
def demo(
    out_dir: Annotated[
        Path | None,
        typer.Option("--out-dir", help="Where the stores go (default: <user data dir>/runs)."),
    ] = None,
    ui: Annotated[bool, typer.Option(help="Open the UI at the end when in a terminal.")] = True,
    near: Annotated[
        float | None,
        typer.Option(
            help="A 'slightly positive' threshold, eV/atom, shown beside 0 (default: "
            "analysis.SLIGHTLY_POSITIVE of the families' labels).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """The main job on bundled defaults: enumerate the A4 inference sets of the four
    dopants, predict them with the shipped RF families (on relaxed labels where the training
    set has them, else on single points), bundle the results, summarize."""
    from qcapprox.analysis import SLIGHTLY_POSITIVE
    from qcapprox.models.base import training_store
    from qcapprox.paths import user_data_dir
    from qcapprox.prediction import predict_store
    from qcapprox.results import bundle as bundle_results
    from qcapprox.store import Store
    from qcapprox.words import RELAXED, SINGLE_POINT, family_key, split_family_key

    out_dir = out_dir or user_data_dir() / "runs"
    _check_out_dir(out_dir, "--out-dir")
    out_dir.mkdir(parents=True, exist_ok=True)
    recipe = RECIPES_DIR / "inference-a4.toml"
    stores, families = {}, {}
    for dopant in BUNDLED_DOPANTS:
        out = out_dir / f"sc60{dopant.lower()}13-inference-a4.h5"
        enumerate_cmd(recipe, dopant, out)
        labelled = Store(training_store(dopant)).labels
        if not labelled:
            console.print(f"[yellow]{dopant}: training set not labelled yet, no predictions")
            continue
        labels = RELAXED if RELAXED in labelled else SINGLE_POINT
        if labels != RELAXED:
            console.print(
                f"[yellow]{dopant}: no relaxed labels yet (relabeling in progress): the "
                "single-point family stands in, the cheap screen"
            )
        families[dopant] = family_key("rf", labels)
        console.print(f"{dopant}: predicting with {families[dopant]} (13 limits; first use trains)")
        predict_store(out, "rf", labels=labels)
        stores[dopant] = out
    if not stores:
        return
    results = out_dir / "sc60m13-inference.h5"
    bundle_results(stores, results, training={m: training_store(m) for m in stores})
    table, any_below = demo_table(results, families, near)
    console.print(table)
    kinds = {split_family_key(f)[1] for f in families.values()}  # label sets shown
    if any_below:
        ui_threshold = 0.0
    else:
        labels = RELAXED if RELAXED in kinds else SINGLE_POINT
        ui_threshold = near if near is not None else SLIGHTLY_POSITIVE[labels]
        console.print(
            "No configuration is predicted below the hull at limit 24; t is the slightly "
            f"positive threshold of each family's labels ({SLIGHTLY_POSITIVE[RELAXED]:g} eV/atom "
            f"relaxed, {SLIGHTLY_POSITIVE[SINGLE_POINT]:g} single points); the UI opens at "
            f"{ui_threshold:g} (key `t`)."
        )
    if kinds != {RELAXED}:
        console.print(
            "Single-point labels (the ideal parent geometry, no relaxation) sit tens of "
            "meV/atom above the relaxed ones; the relaxed families (the study's target) "
            "come with the relabeling in progress (`qcapprox info` on a training set)."
        )
    console.print(f"results: {results}  (open with `qcapprox tui {results}`)")
    console.print(
        f"every shipped family, rf and Allegro (precomputed): `qcapprox tui {BUNDLED_RESULTS}`"
    )
    if ui and sys.stdout.isatty() and sys.stdin.isatty():
        from qcapprox.tui import run

        run(results, threshold=ui_threshold)


def demo_table(
    results: Path, families: dict[str, str], near: float | None = None
) -> tuple[Table, bool]:
    """The demo's summary of a results file at limit 24, one row per dopant and its family:
    lowest predicted energy above the hull, set sizes below 0 and below t (`near`, else
    `analysis.SLIGHTLY_POSITIVE` of the family's labels), the known Sc57M13 phase's
    prediction and rank, test RMSE. Also whether anything is below 0 at any limit."""
    import numpy as np
    from qcapprox.analysis import SLIGHTLY_POSITIVE, below_hull, ranks
    from qcapprox.results import Results
    from qcapprox.words import split_family_key

    any_below = False
    with Results(results) as res:
        sizes = sorted({res.n_configs(d) for d in res.dopants})
        table = Table(
            title=f"A4 inference sets ({' or '.join(f'{n:,}' for n in sizes)} configurations) "
            "at limit 24, eV/atom; models trained on CHGNet labels, a stand-in for DFT",
            box=box.SIMPLE,
            collapse_padding=True,
            pad_edge=False,
        )
        for col in ("dopant", "family", "min", "< 0", "t", "< t", "Sc57M13", "rank", "RMSE"):
            table.add_column(col, justify="left" if col in ("dopant", "family") else "right")
        for dopant in res.dopants:
            family = families[dopant]
            t = near if near is not None else SLIGHTLY_POSITIVE[split_family_key(family)[1]]
            pred = res.predictions(dopant, family)
            any_below |= bool(below_hull(pred, 0.0).any())
            e = pred[-1]
            row = res.known_phase_row(dopant)
            known = (
                ("-", "-") if row is None else (f"{e[row]:+.3f}", f"{ranks(pred, row)[-1]:,.0f}")
            )
            metrics = res.metrics(dopant, family)
            table.add_row(
                dopant, family, f"{np.nanmin(e):+.3f}", f"{(e < 0).sum():,}",
                f"{t:g}", f"{(e < t).sum():,}", *known,
                "-" if metrics is None else f"{metrics.test_rmse[-1]:.4f}",
            )  # fmt: skip
    return table, any_below


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point. Input a user can get wrong (options, paths, recipes, stores, models)
    ends in one line `error: ...` on stderr and exit code 2; `--debug` shows the
    traceback instead."""
    warnings.simplefilter("default")
    args = list(sys.argv[1:] if argv is None else argv) or ["--help"]
    Session.debug = False  # until the root options are parsed
    try:
        code = app(args=args, prog_name="qcapprox", standalone_mode=False)
    except (QcapproxError, typer.TyperException, OSError) as err:
        if Session.debug:
            raise
        errors.print(
            f"error: {_one_line(err)}", style="red", markup=False, highlight=False, soft_wrap=True
        )
        raise SystemExit(2) from err
    raise SystemExit(code if isinstance(code, int) else 0)


def _one_line(err: Exception) -> str:
    """The message of an error on one line: click's usage errors with their --help hint,
    OS errors with the file."""
    if isinstance(err, typer.TyperException):
        ctx = getattr(err, "ctx", None)
        hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        text = err.format_message() + hint
    elif isinstance(err, OSError) and err.filename is not None:
        text = f"{err.filename}: {err.strerror}"
    else:
        text = str(err)
    return " ".join(text.split())
