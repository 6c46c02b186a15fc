"""Label a store with any ASE calculator: resumable, parallel on dask.distributed.

Every configuration is decorated (vacancies removed, dopant substituted) at the parent
geometry and its single-point total energy E_total (eV) is computed, with forces and stress
when the calculator gives them. From E_total and the atom counts the formation energy
(eq. 1) and the energy above the hull (eq. 2) follow with `qcapprox.hull.Hull`.

The bundled labeler is CHGNet (weights in its wheel, offline): a stand-in for the DFT
(VASP) labels of the study. `--calculator module:factory` takes any ASE calculator, e.g. a
VASP factory on a SLURM cluster behind a dask-jobqueue scheduler (`--scheduler ADDRESS`).

Chunks of configurations run on dask workers (a LocalCluster of processes by default);
this process alone writes: finished chunks are committed to the journal
`<store>.labels.partial/`, and when all are done the labels are added to a copy of the store
which then replaces it. A killed run restarts where it stopped and recomputes nothing
committed. A structure whose calculation fails is recorded with its error and skipped.

Added to the store:

    labels/energy            (n,) float64, total energy, eV (NaN where failed)
    labels/formation_energy  (n,) float64, eV/atom (eq. 1)
    labels/e_above_hull      (n,) float64, eV/atom (eq. 2), negative = below the hull
    labels/error             (n,) str, "" or the error of a failed structure
    labels/forces            (sum of atoms, 3) float64, eV/A, rows in decorated atom order
    labels/forces_offset     (n + 1,) int64, configuration i owns rows offset[i]:offset[i+1]
    labels/stress            (n, 6) float64, eV/A^3, Voigt order (NaN if not given)
    labels attrs: calculator, calculator_version, settings, stand_in_for_dft, references
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Callable
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import h5py
import numpy as np
from ase.calculators.calculator import Calculator

from qcapprox.errors import QcapproxError, StoreError
from qcapprox.hull import Hull
from qcapprox.parent import Parent
from qcapprox.store import Journal, Store, write_atomically

DEFAULT_CALCULATOR = "chgnet"


class LabelingError(QcapproxError):
    """A labeling run cannot start (unknown calculator, store already labelled, ...)."""


def calculator_info(spec: str) -> dict[str, str]:
    """Name, version and settings of a calculator spec, for provenance."""
    if spec == DEFAULT_CALCULATOR:
        return {
            "calculator": "chgnet",
            "calculator_version": _version("chgnet"),
            "settings": "CHGNetCalculator(use_device='cpu'), pretrained weights 0.3.0, "
            "single point at the parent geometry",
        }
    module = spec.partition(":")[0]
    return {
        "calculator": spec,
        "calculator_version": _version(module.split(".")[0]),
        "settings": f"factory {spec}()",
    }


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"


@cache
def make_calculator(spec: str) -> Calculator:
    """The calculator of a spec: "chgnet" or "module:factory" (factory() -> Calculator).

    Cached per process, so every dask worker builds its calculator once.
    """
    if spec == DEFAULT_CALCULATOR:
        import torch
        from chgnet.model.dynamics import CHGNetCalculator

        torch.set_num_threads(int(os.environ.get("QCAPPROX_TORCH_THREADS", "1")))
        return CHGNetCalculator(use_device="cpu")
    module, _, name = spec.partition(":")
    if not name:
        raise LabelingError(f"calculator {spec!r}: use 'chgnet' or 'module:factory'")
    try:
        factory = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as err:
        raise LabelingError(f"calculator {spec!r}: cannot import {name} from {module}") from err
    calc = factory()
    if not isinstance(calc, Calculator) and not hasattr(calc, "get_potential_energy"):
        raise LabelingError(f"calculator {spec!r}: {name}() did not return an ASE calculator")
    return calc


def label_chunk(
    spec: str, parent: Parent, rows: np.ndarray, occupancy: np.ndarray
) -> dict[str, np.ndarray]:
    """Single points of a chunk of configurations (runs on a worker)."""
    calc = make_calculator(spec)
    energy = np.full(len(rows), np.nan)
    stress = np.full((len(rows), 6), np.nan)
    errors, forces, counts = [], [], []
    for k, occ in enumerate(occupancy):
        atoms = parent.decorate(occ)
        atoms.calc = calc
        try:
            energy[k] = atoms.get_potential_energy()
            forces.append(np.asarray(atoms.get_forces(), dtype=float))
            if "stress" in getattr(calc, "implemented_properties", ()):
                stress[k] = atoms.get_stress(voigt=True)
            errors.append("")
        except Exception as err:  # a failed structure is recorded, not fatal
            forces.append(np.full((len(atoms), 3), np.nan))
            errors.append(f"{type(err).__name__}: {err}")
        counts.append(len(atoms))
    return {
        "row": rows,
        "energy": energy,
        "stress": stress,
        "forces": np.concatenate(forces),
        "natoms": np.array(counts, dtype=np.int64),
        "error": np.array(errors, dtype=str),
    }


def label_journal(path: Path, store: Store, calculator: str) -> Journal:
    """The resumable journal of labeling `store` (at `path`) with a calculator spec."""
    identity = {
        "store_sha256": store.attrs["parent_sha256"],
        "recipe": str(store.attrs["recipe"]),
        "rows": len(store),
        **calculator_info(calculator),
    }
    return Journal(path.with_name(path.name + ".labels"), identity)


def label_store(
    path: str | Path,
    calculator: str = DEFAULT_CALCULATOR,
    scheduler: str | None = None,
    n_workers: int = 2,
    chunk_size: int = 16,
    hull: Hull | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Label every configuration of a store; returns the number of failed structures."""
    from dask.distributed import Client, LocalCluster, as_completed

    path = Path(path)
    store = Store(path)
    if store.labels is not None:
        raise LabelingError(f"{path} is already labelled ({store.labels_attrs['calculator']})")
    hull = hull or Hull.load(store.parent.dopant)
    info = calculator_info(calculator)
    journal = label_journal(path, store, calculator)
    done = np.zeros(len(store), dtype=bool)
    for segment in journal.load():
        done[segment["row"]] = True
    todo = np.flatnonzero(~done)
    if progress:
        progress(int(done.sum()), len(store))
    if len(todo):
        cluster = None
        if scheduler is None:
            cluster = LocalCluster(
                n_workers=n_workers, threads_per_worker=1, processes=True,
                dashboard_address=":0",
            )  # fmt: skip
        with Client(scheduler or cluster) as client:
            parent = client.scatter(store.parent, broadcast=True)
            chunks = [todo[i : i + chunk_size] for i in range(0, len(todo), chunk_size)]
            futures = [
                client.submit(label_chunk, calculator, parent, rows, store.occupancy[rows],
                              pure=False)
                for rows in chunks
            ]  # fmt: skip
            for future in as_completed(futures):
                result = future.result()
                journal.add(int(done.sum() + len(result["row"])), result)
                done[result["row"]] = True
                if progress:
                    progress(int(done.sum()), len(store))
                future.release()
        if cluster is not None:
            cluster.close()
    failed = _write_labels(path, store, journal, hull, info)
    journal.remove()
    return failed


def _write_labels(path: Path, store: Store, journal: Journal, hull: Hull, info: dict) -> int:
    """Add the labels group to the store (copy, extend, rename)."""
    n = len(store)
    energy = np.full(n, np.nan)
    stress = np.full((n, 6), np.nan)
    error = np.empty(n, dtype=object)
    natoms = np.zeros(n, dtype=np.int64)
    pieces: dict[int, np.ndarray] = {}
    for seg in journal.load():
        offsets = np.concatenate([[0], np.cumsum(seg["natoms"])])
        for k, row in enumerate(seg["row"]):
            energy[row], stress[row], error[row] = (
                seg["energy"][k],
                seg["stress"][k],
                seg["error"][k],
            )
            natoms[row] = seg["natoms"][k]
            pieces[int(row)] = seg["forces"][offsets[k] : offsets[k + 1]]
    if (natoms == 0).any():
        raise StoreError(f"{path}: the labels journal misses rows; run `qcapprox label` again")
    n_host, n_dop = store.parent.formula_counts(store.occupancy)
    e_form = hull.formation_energy(energy, n_host, n_dop)
    e_hull = hull.e_above_hull(energy, n_host, n_dop)

    def fill(handle: h5py.File) -> None:
        group = handle.create_group("labels")
        group["energy"] = energy
        group["formation_energy"] = e_form
        group["e_above_hull"] = e_hull
        group.create_dataset("error", data=error.astype(str).tolist(), dtype=h5py.string_dtype())
        group.create_dataset(
            "forces", data=np.concatenate([pieces[i] for i in range(n)]),
            chunks=True, compression="gzip", shuffle=True,
        )  # fmt: skip
        group["forces_offset"] = np.concatenate([[0], np.cumsum(natoms)])
        group["stress"] = stress
        for key, value in info.items():
            group.attrs[key] = value
        group.attrs["stand_in_for_dft"] = info["calculator"] == DEFAULT_CALCULATOR
        group.attrs["references"] = json.dumps(
            {"source": hull.source, "stable": list(hull.stable_names)}
        )

    write_atomically(path, fill, base=path)
    return int((error != "").sum())


def import_energies(
    store_path: str | Path, structures: str | Path, hull: Hull | None = None
) -> int:
    """Label a store from structures with energies (extxyz, VASP OUTCAR/vasprun, any ASE
    format), e.g. the DFT results of the study. Returns the number of structures matched.

    Each structure is matched to its configuration with `Parent.identify` (any atom order,
    relaxed or not) and its total energy becomes the label; forces and stress are not
    imported (they belong to another geometry). Configurations without a structure get
    NaN and the error "no structure".
    """
    from ase.io import read

    from qcapprox.enumeration import Enumerator

    store_path, structures = Path(store_path), Path(structures)
    store = Store(store_path)
    if store.labels is not None:
        raise LabelingError(f"{store_path} is already labelled")
    hull = hull or Hull.load(store.parent.dopant)
    enumerator = Enumerator.from_parent(store.parent)
    energy = np.full(len(store), np.nan)
    try:
        images = read(structures, index=":")
    except Exception as err:
        raise LabelingError(f"{structures}: cannot read structures ({err})") from err
    for k, atoms in enumerate(images):
        canonical, _ = enumerator.canonicalize(store.parent.identify(atoms))
        hits = np.flatnonzero(store.ids == enumerator.ids(canonical)[0])
        if len(hits) == 0:
            raise LabelingError(
                f"{structures}: structure {k} is not a configuration of {store_path}"
            )
        try:
            energy[hits[0]] = atoms.get_potential_energy()
        except Exception as err:
            raise LabelingError(f"{structures}: structure {k} carries no energy") from err
    natoms = len(store.parent.atoms) - (store.occupancy == 2).sum(axis=1)
    info = {
        "calculator": f"imported from {structures.name}",
        "calculator_version": "",
        "settings": "total energies of the given structures",
    }
    journal = Journal(store_path.with_name(store_path.name + ".labels"), info)
    journal.add(
        len(store),
        {
            "row": np.arange(len(store)),
            "energy": energy,
            "stress": np.full((len(store), 6), np.nan),
            "forces": np.full((int(natoms.sum()), 3), np.nan),
            "natoms": natoms,
            "error": np.where(np.isnan(energy), "no structure", ""),
        },
    )
    _write_labels(store_path, store, journal, hull, info)
    journal.remove()
    return int(np.isfinite(energy).sum())
