"""The pre-training corpus of binary Sc-{Pt,Pd,Ir,Rh} crystals and its Allegro model.

The study pre-trained Allegro on an AFLOW slice of Sc/Pt/Pd/Ir/Rh compounds (section
4.1), which is not reachable offline. This module builds the stand-in: every relaxed
phase of the hull references (``data/references/Sc-<M>.json``: hcp Sc, fcc M, B2, L1_0,
L1_2, C15, C16, C11b, D0_19, D0_3, D0_11, Re3B, D8_8, Ti2Ni types) and dilute substitutions of M in
hcp Sc, each with strained and rattled copies, labelled with the same labeler as the
training sets (CHGNet: energy, forces, stress). Copies of a prototype of ``n`` atoms:

* ``relaxed``    the reference structure;
* ``iso±2%``, ``iso±4%``  isotropic linear strains;
* ``strain-k``   two random symmetric strains, components uniform in [-3 %, 3 %];
* ``rattle-σ``   a supercell of at least 8 atoms with Gaussian displacements of
  σ = 0.05 and 0.10 Angstrom.

Dilute substitutions: a 2x2x2 hcp Sc supercell (16 atoms) with one M, and with two M on
second-neighbour sites, each relaxed-lattice and rattled (σ = 0.05 Angstrom), per M.
Random numbers come from ``numpy.random.default_rng([seed, k])`` for the k-th structure,
so the corpus is the same for the same references and seed.

`build_corpus()` writes ``data/pretraining/sc-m-corpus.extxyz`` (the bundled corpus);
`read_corpus(path)` reads it or a user's own extxyz (any binary or elemental crystals of
Sc, Pt, Pd, Ir, Rh or other elements, with energies, forces optional);
`pretrain_corpus_model(preset, corpus)` trains the corpus model once per preset and
corpus, as one stage of the stage runner (`qcapprox.models.allegro.runner`: energies, and
forces when every structure has them), and registers it, model then card, in
``<registry>/allegro-pretrained/corpus/<preset>[-<sha>]/`` (read from the registry given,
the user's or the bundled one; written into the registry given or the user's), where the
``pretrained`` variant (`qcapprox.models.allegro.training`) fine-tunes it for each limit.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.build import make_supercell
from ase.calculators.singlepoint import SinglePointCalculator
from ase.data import atomic_numbers

from qcapprox.errors import AllegroError
from qcapprox.hull import reference_path
from qcapprox.models.allegro.config import scratch_model
from qcapprox.models.allegro.inference import MODEL_FILE, finished, model_fields
from qcapprox.models.allegro.presets import Preset, get_preset
from qcapprox.models.allegro.runner import Stage, prepare_workdir, train_and_package
from qcapprox.models.base import card_dir, file_sha256, output_dir, publish
from qcapprox.paths import DATA_DIR, cache_root
from qcapprox.settings import DEFAULT_CALCULATOR, SEED
from qcapprox.store import package_versions
from qcapprox.words import ALLEGRO_BACKBONES, BUNDLED_DOPANTS

CORPUS_DIR = DATA_DIR / "pretraining"
DEFAULT_CORPUS = CORPUS_DIR / "sc-m-corpus.extxyz"
DOPANTS = BUNDLED_DOPANTS
ISO_STRAINS = (-0.04, -0.02, 0.02, 0.04)
RANDOM_STRAINS = 2
STRAIN_AMPLITUDE = 0.03
RATTLES = (0.05, 0.10)
MIN_RATTLE_ATOMS = 8
CARD_VERSIONS = ("qcapprox", "nequip", "nequip-allegro", "torch", "ase")


# ----------------------------------------------------------------------------- prototypes
def prototypes(dopants: Sequence[str] = DOPANTS) -> list[tuple[str, str, Atoms]]:
    """(name, system, Atoms) of every relaxed reference phase, hcp Sc once."""
    out: list[tuple[str, str, Atoms]] = []
    seen: set[str] = set()
    for dopant in dopants:
        path = reference_path(dopant)
        if not path.exists():
            raise AllegroError(
                f"no reference phases for Sc-{dopant} ({path}): relax them first with "
                f"`qcapprox references --dopant {dopant}`"
            )
        data = json.loads(path.read_text())
        for phase in data["phases"]:
            structure = phase.get("structure")
            if structure is None:
                continue
            atoms = Atoms(
                numbers=structure["numbers"],
                scaled_positions=structure["frac_positions"],
                cell=structure["cell"],
                pbc=True,
            )
            name = phase["name"]
            symbols = set(atoms.get_chemical_symbols())
            system = "Sc" if symbols == {"Sc"} else f"Sc-{dopant}"
            key = name if system == "Sc" else f"{system}:{name}"
            if key in seen:
                continue
            seen.add(key)
            out.append((name, system, atoms))
    return out


def _dilute(dopant: str, n_dopant: int) -> Atoms:
    """2x2x2 hcp Sc (16 atoms, relaxed reference lattice) with 1 or 2 M substituted."""
    sc = next(a for n, s, a in prototypes((dopant,)) if s == "Sc")
    atoms = sc.repeat((2, 2, 2))
    sites = [0]
    if n_dopant == 2:
        d = atoms.get_all_distances(mic=True)[0]
        shells = np.unique(np.round(d[1:], 2))
        sites.append(int(np.flatnonzero(np.isclose(np.round(d, 2), shells[1]))[0]))
    atoms.numbers[sites] = atomic_numbers[dopant]
    return atoms


def _supercell(atoms: Atoms, min_atoms: int) -> Atoms:
    """The smallest n x n x n repetition with at least `min_atoms` atoms."""
    n = 1
    while len(atoms) * n**3 < min_atoms:
        n += 1
    return atoms if n == 1 else make_supercell(atoms, np.eye(3, dtype=int) * n)


def corpus_structures(seed: int = SEED, dopants: Sequence[str] = DOPANTS) -> list[Atoms]:
    """The unlabelled corpus: prototypes with strained and rattled copies (deterministic)."""
    base: list[tuple[str, str, Atoms]] = list(prototypes(dopants))
    for dopant in dopants:
        for n in (1, 2):
            base.append((f"Sc15{dopant}" if n == 1 else f"Sc14{dopant}2", f"Sc-{dopant}",
                         _dilute(dopant, n)))  # fmt: skip
    images: list[Atoms] = []

    def add(atoms: Atoms, name: str, system: str, copy: str) -> None:
        atoms = atoms.copy()
        atoms.info = {"prototype": name, "system": system, "copy": copy}
        images.append(atoms)

    for name, system, atoms in base:
        dilute = name.startswith(("Sc15", "Sc14"))
        add(atoms, name, system, "relaxed")
        if dilute:
            rng = np.random.default_rng([seed, len(images)])
            rattled = atoms.copy()
            rattled.positions += rng.normal(0.0, RATTLES[0], rattled.positions.shape)
            add(rattled, name, system, f"rattle-{RATTLES[0]:.2f}")
            continue
        for eps in ISO_STRAINS:
            strained = atoms.copy()
            strained.set_cell(atoms.cell * (1 + eps), scale_atoms=True)
            add(strained, name, system, f"iso{eps:+.2f}")
        for k in range(RANDOM_STRAINS):
            rng = np.random.default_rng([seed, len(images)])
            e = rng.uniform(-STRAIN_AMPLITUDE, STRAIN_AMPLITUDE, (3, 3))
            e = (e + e.T) / 2
            strained = atoms.copy()
            strained.set_cell(atoms.cell[:] @ (np.eye(3) + e), scale_atoms=True)
            add(strained, name, system, f"strain-{k}")
        for sigma in RATTLES:
            rng = np.random.default_rng([seed, len(images)])
            rattled = _supercell(atoms, MIN_RATTLE_ATOMS)
            rattled.positions += rng.normal(0.0, sigma, rattled.positions.shape)
            add(rattled, name, system, f"rattle-{sigma:.2f}")
    return images


# ----------------------------------------------------------------------------- labels and files
def build_corpus(
    path: str | Path = DEFAULT_CORPUS,
    calculator: str = DEFAULT_CALCULATOR,
    seed: int = SEED,
    dopants: Sequence[str] = DOPANTS,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Label the corpus with a labeler spec ("chgnet" or "module:factory") and write it.

    Energies (eV), forces (eV/A) and stress (eV/A^3, when the labeler gives it) are stored
    as single-point results in extxyz; the labeler and seed go into every frame's info.
    """
    from ase.io import write

    from qcapprox.labeling import calculator_info, make_calculator

    path = Path(path)
    calc = make_calculator(calculator)
    info = calculator_info(calculator)
    labeler = f"{info['calculator']} {info['calculator_version']}"
    images = corpus_structures(seed, dopants)
    for k, atoms in enumerate(images):
        atoms.calc = calc
        results = {
            "energy": float(atoms.get_potential_energy()),
            "forces": np.asarray(atoms.get_forces(), dtype=float),
        }
        if "stress" in getattr(calc, "implemented_properties", ()):
            results["stress"] = np.asarray(atoms.get_stress(voigt=True), dtype=float)
        atoms.calc = SinglePointCalculator(atoms, **results)
        atoms.info.update(labeler=labeler, seed=seed)
        if progress:
            progress(k + 1, len(images))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    write(tmp, images, format="extxyz")
    tmp.replace(path)
    return path


def read_corpus(path: str | Path) -> list[Atoms]:
    """Read an extxyz corpus; every structure must carry a finite total energy."""
    from ase.io import read

    path = Path(path)
    if not path.exists():
        raise AllegroError(
            f"no corpus {path}: build one with `qcapprox corpus -o FILE` "
            "(qcapprox.models.allegro.corpus.build_corpus) or give an extxyz file of "
            "structures with energies"
        )
    try:
        images = read(path, index=":", format="extxyz")
    except Exception as err:
        raise AllegroError(f"{path}: not a readable extxyz file ({err})") from err
    if not images:
        raise AllegroError(f"{path}: holds no structures")
    for k, atoms in enumerate(images):
        try:
            energy = atoms.get_potential_energy()
        except Exception as err:
            raise AllegroError(f"{path}: structure {k} carries no energy") from err
        if not np.isfinite(energy):
            raise AllegroError(f"{path}: structure {k} has a non-finite energy")
        if not atoms.pbc.all():
            raise AllegroError(f"{path}: structure {k} is not periodic in 3 directions")
    return images


def _has_forces(images: Sequence[Atoms]) -> bool:
    for atoms in images:
        try:
            forces = atoms.get_forces()
        except Exception:
            return False
        if not np.isfinite(forces).all():
            return False
    return True


def _shifts(images: Sequence[Atoms], type_names: Sequence[str]) -> tuple[dict[str, float], float]:
    """Least-squares per-type energies and the RMS per-atom residual (>= 0.01 eV)."""
    counts = np.array(
        [[np.sum(a.numbers == atomic_numbers[t]) for t in type_names] for a in images]
    )
    energy = np.array([a.get_potential_energy() for a in images])
    mu, *_ = np.linalg.lstsq(counts.astype(float), energy, rcond=None)
    residual = (energy - counts @ mu) / counts.sum(axis=1)
    return {t: float(m) for t, m in zip(type_names, mu, strict=True)}, max(
        float(np.sqrt(np.mean(residual**2))), 0.01
    )


# ----------------------------------------------------------------------------- the corpus model
def corpus_model_path(preset: str, corpus: Path) -> Path:
    """The corpus model's directory relative to a registry (a user corpus gets its sha)."""
    root = Path(ALLEGRO_BACKBONES["pretrained"]) / "corpus"
    if corpus.resolve() == DEFAULT_CORPUS.resolve():
        return root / preset
    return root / f"{preset}-{file_sha256(corpus)[:12]}"


def pretrain_corpus_model(
    preset: str | Preset,
    corpus: str | Path | None = None,
    registry: str | Path | None = None,
    workdir: str | Path | None = None,
    val_fraction: float = 0.1,
) -> dict:
    """Train (once) the Allegro model of a corpus; returns its card (with ``model_path``).

    Read from `registry` if given, else from the user's registry or the bundled one; a new
    model is written into `registry` or the user's.
    """
    preset = get_preset(preset)
    corpus = Path(corpus or DEFAULT_CORPUS)
    images = read_corpus(corpus)
    digest = file_sha256(corpus)
    relative = corpus_model_path(preset.name, corpus)
    registry = Path(registry) if registry else None
    identity = {"corpus_sha256": digest, "preset_sha256": preset.digest()}
    where = card_dir(relative, registry)
    card = finished(where, identity)
    if card is not None:
        return {**card, "model_path": str((where / MODEL_FILE).resolve())}
    workdir = Path(workdir or cache_root() / "allegro-runs" / "corpus" / relative.name)
    prepare_workdir(workdir, identity)

    numbers = sorted({int(z) for a in images for z in a.numbers})
    type_names = [Atoms(numbers=[z]).get_chemical_symbols()[0] for z in numbers]
    forces = _has_forces(images)
    order = np.random.default_rng(SEED).permutation(len(images))
    n_val = max(1, round(val_fraction * len(images)))
    val, train = np.sort(order[:n_val]), np.sort(order[n_val:])
    if len(train) == 0:
        raise AllegroError(f"{corpus}: {len(images)} structures are too few to pre-train on")
    shifts, scale = _shifts([images[i] for i in train], type_names)
    model = scratch_model(preset, type_names, shifts, scale, forces)
    stage = Stage("corpus", train, val, model, preset.lr, budget=preset.corpus_budget)

    start = time.perf_counter()
    packaged, records = train_and_package(
        workdir,
        [stage],
        lambda rows: [images[i] for i in rows],
        preset,
        type_names,
        forces,
        workdir / MODEL_FILE,
    )
    card = {
        "backbone": ALLEGRO_BACKBONES["pretrained"],
        "role": "corpus model, fine-tuned by every allegro-pretrained member",
        "preset": preset.name,
        "preset_sha256": preset.digest(),
        "corpus": str(corpus.name) if corpus.resolve() == DEFAULT_CORPUS.resolve() else str(corpus),
        "corpus_sha256": digest,
        "structures": {"train": len(train), "validation": len(val)},
        "type_names": type_names,
        "forces": forces,
        "stages": records,
        "epochs": records[0]["epochs"],
        "validation_rmse_per_atom_energy": records[0]["best_validation_rmse"],
        "hyperparameters": model,
        "fit_seconds": round(time.perf_counter() - start, 2),
        **model_fields(packaged),
        "versions": package_versions(CARD_VERSIONS),
    }
    where = output_dir(relative, registry)
    publish(where, card, {MODEL_FILE: packaged})
    return {**card, "model_path": str((where / MODEL_FILE).resolve())}
