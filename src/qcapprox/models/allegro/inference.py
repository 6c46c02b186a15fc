"""Allegro members for prediction: a packaged model from the registry, checked against its
card, evaluated on batches of configurations of the parent.

All configurations of a store are decorations of one parent at the parent positions, so
the neighbour list of a configuration is the parent's with the edges of absent atoms
removed: `ParentGraph` builds the parent's list once and masks it per batch, `EnergyModel`
evaluates the packaged model (nequip's loader, forces switched off) on such batches, and
`AllegroMember` turns its total energies into energies above the hull. torch and nequip are
imported when a model is loaded, not with this module.

Registry: ``<registry>/<backbone>/<dopant>/limit-XX/{card.json, model.nequip.zip}`` for
backbone ``allegro``, ``allegro-sequential`` or ``allegro-pretrained`` trained on relaxed
labels, under ``single-point/`` first for members trained on single points
(`qcapprox.models.base.member_path`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from ase.data import atomic_numbers

from qcapprox.errors import AllegroError
from qcapprox.hull import Hull
from qcapprox.models.allegro.presets import backbone_of
from qcapprox.models.base import (
    CARD,
    card_dir,
    check_limit,
    file_sha256,
    member_path,
    read_card,
    training_store,
)
from qcapprox.parent import DOPANT, VACANCY, Parent
from qcapprox.settings import torch_threads
from qcapprox.store import Store
from qcapprox.words import RELAXED

MODEL_FILE = "model.nequip.zip"


def registry_dir(
    variant: str, dopant: str, limit: int, registry: Path | None = None, labels: str = RELAXED
) -> Path:
    """Where card.json and model.nequip.zip of one member (trained on `labels`) are read:
    under `registry` if given, else the user's registry if it has the member, else the
    bundled one."""
    return card_dir(member_path(backbone_of(variant), dopant, limit, labels), registry)


def finished(where: Path, identity: dict) -> dict | None:
    """The card in a registry directory, if its model file is there too and the card has
    every field of `identity` (training data and settings); else None (to be trained)."""
    card = read_card(where)
    if card is None or not (where / MODEL_FILE).exists():
        return None
    return card if all(card.get(key) == value for key, value in identity.items()) else None


def model_fields(path: Path) -> dict:
    """The card fields of a packaged model file: its name, size and SHA-256."""
    return {
        "model_file": MODEL_FILE,
        "model_bytes": Path(path).stat().st_size,
        "model_sha256": file_sha256(path),
    }


class ParentGraph:
    """The neighbour list of a parent, built once and masked per configuration.

    Every configuration is the parent with some active sites emptied and some given the
    dopant, at the parent positions, so its neighbour list is the parent's with the edges
    of absent atoms removed: exactly what nequip's NeighborListTransform would give the
    decorated Atoms, up to the order of edges.
    """

    def __init__(self, parent: Parent, r_max: float) -> None:
        import torch
        from nequip.data import AtomicDataDict, compute_neighborlist_, from_ase

        self.parent = parent
        self.r_max = float(r_max)
        data = compute_neighborlist_(from_ase(parent.atoms), r_max=self.r_max)
        self.edge_index = data[AtomicDataDict.EDGE_INDEX_KEY].numpy()
        self.edge_cell_shift = data[AtomicDataDict.EDGE_CELL_SHIFT_KEY].numpy()
        self.positions = data[AtomicDataDict.POSITIONS_KEY].numpy()
        self.cell = data[AtomicDataDict.CELL_KEY].reshape(3, 3).numpy()
        self.pos_dtype = data[AtomicDataDict.POSITIONS_KEY].dtype
        self.torch = torch
        self.keys = AtomicDataDict

    def batch(self, occupancy: np.ndarray, type_index: dict[str, int]) -> dict:
        """One batched AtomicDataDict of configurations (vacancies removed)."""
        torch, K = self.torch, self.keys
        occ = np.atleast_2d(occupancy)
        n_conf, n_atoms = len(occ), len(self.parent.atoms)
        numbers = np.broadcast_to(self.parent.atoms.numbers, (n_conf, n_atoms)).copy()
        numbers[:, self.parent.active] = np.where(
            occ == DOPANT, atomic_numbers[self.parent.dopant], atomic_numbers[self.parent.host]
        )
        present = np.ones((n_conf, n_atoms), dtype=bool)
        present[:, self.parent.active] = occ != VACANCY
        counts = present.sum(axis=1)
        offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
        new_index = np.cumsum(present, axis=1) - 1 + offsets[:, None]
        src, dst = self.edge_index
        keep = present[:, src] & present[:, dst]  # (n_conf, n_edges)
        conf, edge = np.nonzero(keep)
        edge_index = np.stack([new_index[conf, src[edge]], new_index[conf, dst[edge]]])
        lookup = np.full(119, -1)
        for symbol, i in type_index.items():
            lookup[atomic_numbers[symbol]] = i
        types = lookup[numbers[present]]
        if (types < 0).any():
            raise AllegroError(
                f"the model knows the types {sorted(type_index)}, not every element of "
                f"Sc60{self.parent.dopant}13: it belongs to another dopant"
            )
        return {
            K.POSITIONS_KEY: torch.as_tensor(
                np.broadcast_to(self.positions, (n_conf, n_atoms, 3))[present], dtype=self.pos_dtype
            ),
            K.ATOM_TYPE_KEY: torch.as_tensor(types, dtype=torch.long),
            K.EDGE_INDEX_KEY: torch.as_tensor(edge_index, dtype=torch.long),
            K.EDGE_CELL_SHIFT_KEY: torch.as_tensor(
                self.edge_cell_shift[edge], dtype=self.pos_dtype
            ),
            K.CELL_KEY: torch.as_tensor(
                np.broadcast_to(self.cell, (n_conf, 3, 3)).copy(), dtype=self.pos_dtype
            ),
            K.BATCH_KEY: torch.as_tensor(np.repeat(np.arange(n_conf), counts), dtype=torch.long),
            K.NUM_NODES_KEY: torch.as_tensor(counts, dtype=torch.long),
            K.PBC_KEY: torch.ones((n_conf, 3), dtype=torch.bool),
        }


class EnergyModel:
    """A packaged model loaded for batch energies (forces switched off).

    nequip's `load_saved_model` (eager mode) and its persistent model modifier
    ``disable_ForceStressOutput``; `threads` (or `qcapprox.settings.torch_threads`) sets
    torch's threads of this process.
    """

    def __init__(self, path: Path, threads: int | None = None) -> None:
        import torch
        from nequip.model.modify_utils import modify
        from nequip.model.saved_models.load_utils import load_saved_model
        from nequip.nn import graph_model

        threads = threads or torch_threads()
        if threads:  # torch's intra-op threads of this process
            torch.set_num_threads(threads)
        model = load_saved_model(str(path), compile_mode="eager")
        self.model = modify(model, [{"modifier": "disable_ForceStressOutput"}]).eval()
        metadata = self.model.metadata
        self.r_max = float(metadata[graph_model.R_MAX_KEY])
        self.type_names = metadata[graph_model.TYPE_NAMES_KEY].split(" ")
        self.path = Path(path)
        self._graphs: dict[int, ParentGraph] = {}

    def graph(self, parent: Parent) -> ParentGraph:
        """The masked-neighbour-list builder of a parent (the last one is kept)."""
        cached = self._graphs.get(id(parent))
        if cached is None or cached.parent is not parent:
            cached = ParentGraph(parent, self.r_max)
            self._graphs = {id(parent): cached}
        return cached

    def energies(self, parent: Parent, occupancy: np.ndarray, batch_size: int = 32) -> np.ndarray:
        """Total energies (eV) of configurations of a parent, in batches."""
        import torch
        from nequip.data import AtomicDataDict

        occ = np.atleast_2d(occupancy)
        graph = self.graph(parent)
        types = {t: i for i, t in enumerate(self.type_names)}
        out = np.empty(len(occ))
        with torch.inference_mode():
            for start in range(0, len(occ), batch_size):
                data = graph.batch(occ[start : start + batch_size], types)
                result = self.model(data)[AtomicDataDict.TOTAL_ENERGY_KEY]
                out[start : start + batch_size] = result.detach().double().reshape(-1).numpy()
        return out


@dataclass
class AllegroMember:
    """One limit of an Allegro family: the packaged model, its card and the parent whose
    configurations it predicts."""

    card: dict
    path: Path
    hull: Hull
    parent: Parent

    @cached_property
    def energy_model(self) -> EnergyModel:
        return EnergyModel(self.path)

    def predict_energy(self, occupancy: np.ndarray, parent: Parent | None = None) -> np.ndarray:
        """Total energies (eV) of (n, 36) occupancies of the parent (or of `parent`)."""
        return self.energy_model.energies(parent or self.parent, occupancy)

    def predict(self, occupancy: np.ndarray, parent: Parent | None = None) -> np.ndarray:
        """Energies above the hull (eV/atom) of (n, 36) occupancies of the parent (or of
        `parent`)."""
        parent = parent or self.parent
        energy = self.predict_energy(occupancy, parent)
        n_host, n_dop = parent.formula_counts(np.atleast_2d(occupancy))
        return np.asarray(self.hull.e_above_hull(energy, n_host, n_dop), dtype=float)


def load_allegro_member(
    dopant: str,
    limit: int = 24,
    variant: str = "sequential",
    registry: Path | None = None,
    parent: Parent | None = None,
    labels: str = RELAXED,
) -> AllegroMember:
    """A trained member from the registry (nothing is trained here), its model file checked
    against the card's `model_sha256` before anything loads it (nequip's loader unpickles:
    a packaged model is code). It predicts configurations of `parent` (default: the parent
    of the dopant's training store, the user's or the bundled one, as the forest's)."""
    check_limit(limit)
    where = registry_dir(variant, dopant, limit, registry, labels)
    card, model_path = read_card(where), where / MODEL_FILE
    if card is None or not model_path.exists():
        raise AllegroError(
            f"no trained {backbone_of(variant)} model for {dopant} at limit {limit} ({where}); "
            f"train it with `qcapprox train allegro --dopant {dopant} --variant {variant} "
            f"--limits {limit} --labels {labels}`"
        )
    found = file_sha256(model_path)
    if found != card.get("model_sha256"):
        raise AllegroError(
            f"{model_path}: sha256 {found[:16]}... is not the model_sha256 "
            f"{str(card.get('model_sha256'))[:16]}... of its card {where / CARD}; refused (a "
            "packaged model is code: restore it from a trusted source, e.g. `git checkout`)"
        )
    if parent is None:
        store = training_store(dopant)
        parent = Store(store).parent if store.exists() else Parent.load(dopant)
    return AllegroMember(card, model_path, Hull.load(dopant), parent)
