"""Export configurations with their predictions: CIF, POSCAR or extxyz.

Every structure is `parent.decorate(occupancy)` and carries the predicted energies above
the hull (eV/atom) of every backbone at every limit:

- extxyz: in the frame's info, keys `e_above_hull_<backbone>_limit-XX` (missing limits are
  left out), plus `config_id`, `multiplicity`, `dopant` and `energy_label`; one file holds
  every exported frame;
- CIF: comment lines (`#`) before the data block, one line per limit;
- POSCAR: the comment (first) line, `<backbone> <e at limit 0>,<e at 2>,...` per backbone.

One configuration goes to `<dopant>-<id>.<suffix>`; several go to one extxyz file
`<stem>.extxyz` or, for CIF and POSCAR, to a folder `<stem>/` of `<dopant>-<id>.<suffix>`.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from qcapprox.tui.format import LIMITS
from qcapprox.words import limit_key

if TYPE_CHECKING:
    from ase import Atoms

    from qcapprox.results import Results

FORMATS = {"cif": ("cif", "cif"), "poscar": ("vasp", "POSCAR"), "extxyz": ("extxyz", "extxyz")}


def formula(atoms: Atoms) -> str:
    """Chemical formula with Sc first, as the study writes it (e.g. Sc59Pt13)."""
    symbols, counts = np.unique(atoms.get_chemical_symbols(), return_counts=True)
    pairs = sorted(zip(symbols, counts, strict=True), key=lambda p: (p[0] != "Sc", p[0]))
    return "".join(f"{s}{n}" for s, n in pairs)


def predictions_of(results: Results, dopant: str, row: int) -> dict[str, np.ndarray]:
    """backbone -> (13,) predicted energies above hull of one row (NaN where missing)."""
    return {b: results.predictions(dopant, b)[:, row] for b in results.backbones(dopant)}


def _structure(results: Results, dopant: str, row: int) -> tuple[Atoms, dict[str, np.ndarray]]:
    config_id = int(results.ids(dopant)[row])
    atoms = results.atoms(dopant, config_id)
    atoms.info["dopant"] = dopant
    atoms.info["energy_label"] = results.energy_label(dopant)
    preds = predictions_of(results, dopant, row)
    for backbone, values in preds.items():
        for limit, value in zip(LIMITS, values, strict=True):
            if np.isfinite(value):
                atoms.info[f"e_above_hull_{backbone}_{limit_key(limit)}"] = float(value)
    return atoms, preds


def _cif_text(atoms: Atoms, preds: dict[str, np.ndarray], label: str) -> str:
    from ase.io import write

    buffer = io.BytesIO()
    write(buffer, atoms, format="cif")
    names = list(preds)
    lines = [
        f"# qcapprox: {atoms.info['dopant']} id {atoms.info['config_id']}, {formula(atoms)}, "
        f"multiplicity {atoms.info['multiplicity']}",
        f"# predicted energy above hull, eV/atom ({label}); '-' no model at that limit",
        "# limit " + " ".join(names),
    ]
    for k, limit in enumerate(LIMITS):
        cells = [f"{preds[b][k]:.5f}" if np.isfinite(preds[b][k]) else "-" for b in names]
        lines.append(f"# {limit:5d} " + " ".join(cells))
    return "\n".join(lines) + "\n" + buffer.getvalue().decode()


def _poscar_text(atoms: Atoms, preds: dict[str, np.ndarray], label: str) -> str:
    from ase.io import write

    buffer = io.StringIO()
    write(buffer, atoms, format="vasp")
    body = buffer.getvalue().split("\n", 1)[1]
    values = " ".join(
        f"{b} " + ",".join(f"{v:.5f}" if np.isfinite(v) else "-" for v in preds[b]) for b in preds
    )
    comment = (
        f"{formula(atoms)} {atoms.info['dopant']} id {atoms.info['config_id']} "
        f"mult {atoms.info['multiplicity']} | E above hull eV/atom ({label}) at limits "
        f"{','.join(map(str, LIMITS))}: {values}"
    )
    return comment + "\n" + body


def export_structures(
    results: Results,
    dopant: str,
    rows: Sequence[int],
    kind: str,
    out_dir: Path,
    stem: str | None = None,
    cancelled: Callable[[], bool] = lambda: False,
) -> Path:
    """Write the configurations of `rows` as `kind` (cif, poscar, extxyz) into `out_dir`;
    returns the file (one configuration, or extxyz) or folder written, as an absolute path.
    `stem` names the file or folder of several configurations; `cancelled` stops early.
    """
    from ase.io import write

    fmt, suffix = FORMATS[kind]
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    label = results.energy_label(dopant)
    ids = results.ids(dopant)
    single = len(rows) == 1 or stem is None
    if kind == "extxyz":
        path = out_dir / (f"{dopant}-{int(ids[rows[0]])}.extxyz" if single else f"{stem}.extxyz")
        frames = []
        for row in rows:
            if cancelled():
                break
            frames.append(_structure(results, dopant, int(row))[0])
        write(path, frames, format=fmt)
        return path
    folder = out_dir if single else out_dir / str(stem)
    folder.mkdir(parents=True, exist_ok=True)
    text = _cif_text if kind == "cif" else _poscar_text
    path = folder
    for row in rows:
        if cancelled():
            break
        atoms, preds = _structure(results, dopant, int(row))
        path = folder / f"{dopant}-{atoms.info['config_id']}.{suffix}"
        path.write_text(text(atoms, preds, label))
    return path if single else folder
