"""The options the commands share, each defined once as an `Annotated` type, and what
their values mean (limits, the training set-up, the relaxation, the parent, the outputs).

Every label set is chosen with `--labels relaxed|single-point`, every output with
`-o/--out` (`out_option`), the dopant with `-d/--dopant`; the relaxation and the dask
workers are one help panel each. Nothing heavy is imported here: the help pages and
`--version` stay fast.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from qcapprox.errors import ParentError, QcapproxError
from qcapprox.words import LABEL_KINDS, LIMITS, POLICIES, RELAXED

if TYPE_CHECKING:
    from qcapprox.labeling import Relaxation
    from qcapprox.parent import Parent

RELAXATION_PANEL = "Relaxation"
WORKERS_PANEL = "Workers (dask)"


def out_option(help: str, **options: Any) -> Any:
    """The `-o/--out` option of a command, for every output it writes (a file or a
    directory); `help` says what is written there."""
    return typer.Option("--out", "-o", help=help, **options)


DopantOpt = Annotated[str, typer.Option("--dopant", "-d", help="Dopant metal M (any metal).")]

LabelKind = Literal[LABEL_KINDS]
LabelsOpt = Annotated[
    LabelKind,
    typer.Option(
        "--labels",
        help="Label set: relaxed (positions and cell relaxed: the target) or single-point "
        "(the parent geometry: the cheap screen).",
    ),
]
LimitsOpt = Annotated[str, typer.Option(help="'all' or a comma list such as 0,12,24.")]


def limits_of(text: str) -> tuple[int, ...]:
    """The limits of a --limits value: 'all' or a comma list of distinct limits."""
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


def setup_of(labels: str, mapping: str, depth: bool) -> str:
    """The training set-up's name (`qcapprox.models.base.Setup`) of the options."""
    from qcapprox.models.base import Setup

    return Setup(labels, mapping, depth).name


TrainingOpt = Annotated[
    Path | None,
    typer.Option(help="Labelled training store (default: the user's, else the bundled one)."),
]
RegistryOpt = Annotated[
    Path | None,
    typer.Option(help="Model registry directory (default: the user's, then calculators/)."),
]
CalculatorOpt = Annotated[
    str, typer.Option(help="Labeler: 'chgnet' (bundled stand-in for DFT) or 'module:factory'.")
]

FmaxOpt = Annotated[
    float, typer.Option(help="Force threshold, eV/A.", rich_help_panel=RELAXATION_PANEL)
]
MaxStepsOpt = Annotated[
    int, typer.Option(help="Optimizer step cap.", rich_help_panel=RELAXATION_PANEL)
]
OptimizerOpt = Annotated[
    str, typer.Option(help="An ASE optimizer.", rich_help_panel=RELAXATION_PANEL)
]


def relaxation_of(labels: str, fmax: float, max_steps: int, optimizer: str) -> Relaxation | None:
    """The relaxation of the options (checked now), or None for single points."""
    from qcapprox.labeling import Relaxation

    return Relaxation(fmax, max_steps, optimizer) if labels == RELAXED else None


SchedulerOpt = Annotated[
    str | None,
    typer.Option(help="Scheduler address (default: local workers).", rich_help_panel=WORKERS_PANEL),
]
WorkersOpt = Annotated[
    int, typer.Option(help="Local worker processes.", rich_help_panel=WORKERS_PANEL)
]
ChunkOpt = Annotated[
    int, typer.Option(help="Configurations per task.", rich_help_panel=WORKERS_PANEL)
]


def _finite(value: float | None) -> float | None:
    """Refuse a threshold that is NaN or infinite (every set would be empty or full)."""
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(
            f"{value} is not a finite energy; give eV/atom, such as 0.01",
            param_hint="'--threshold'",
        )
    return value


ThresholdOpt = Annotated[
    float, typer.Option(help="Below-hull threshold, eV/atom.", callback=_finite)
]
#: The threshold a view opens at; None: each family's `analysis.opening_threshold`.
OpeningThresholdOpt = Annotated[
    float | None,
    typer.Option(
        "--threshold",
        help="Below-hull threshold, eV/atom (default: each family's opening threshold: 0, "
        "or slightly positive when nothing is below the hull).",
        callback=_finite,
        show_default=False,
    ),
]

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


def parent_of(dopant: str, cif: Path | None, orbit: list[str] | None) -> Parent:
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


# ----------------------------------------------------------------------- outputs (-o)
def hdf5_format(path: Path) -> str | None:
    """The `format` attribute of an HDF5 file ("" if it has none; None if not HDF5)."""
    import h5py

    if not (path.is_file() and h5py.is_hdf5(path)):
        return None
    with h5py.File(path, "r") as handle:
        return str(handle.attrs.get("format", ""))


def check_directory(out: Path) -> None:
    """Refuse an output file in a directory that does not exist."""
    if not out.parent.is_dir():
        raise QcapproxError(f"--out {out}: the directory {out.parent} does not exist")


def check_out_dir(path: Path) -> None:
    """Refuse an output directory that is a file, or that would be made under a file,
    before any work."""
    for where in (path, *path.parents):
        if where.exists():
            if not where.is_dir():
                at = "is a file" if where == path else f"lies under the file {where}"
                raise QcapproxError(f"--out {path} {at}: give a directory (nothing was done)")
            return


def check_output(
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
    check_directory(out)
