"""The data of a training stage: labelled structures with their neighbour lists.

qcapprox writes each stage's training and validation structures once (`write_dataset`):
nequip's ``AtomicDataDict`` of every structure (from its single-point calculator: energy,
and forces) with nequip's ``NeighborListTransform`` within the model's r_max already
applied, as a list saved with ``torch.save``. ``nequip-train`` reads it through
`StoredDataset`. Before, the neighbour list was rebuilt for every structure at every epoch:
1.7 ms per 146-atom cell, and 11.0 instead of 9.2 s per epoch at limit 24 with identical
models (benchmarks/allegro_training.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from ase import Atoms
from nequip.data import AtomicDataDict, from_ase
from nequip.data.dataset import AtomicDataset
from nequip.data.transforms import NeighborListTransform
from nequip.utils.dtype import torch_default_dtype

#: nequip's global float dtype in nequip-train (positions, cells, shifts)
NEQUIP_DTYPE = torch.float64


def write_dataset(path: Path, images: Sequence[Atoms], r_max: float) -> None:
    """Save labelled structures with their neighbour lists within `r_max`, atomically."""
    neighbours = NeighborListTransform(r_max=r_max)
    with torch_default_dtype(NEQUIP_DTYPE):
        data = [neighbours(from_ase(atoms)) for atoms in images]
    tmp = path.with_name(path.name + ".tmp")
    torch.save(data, tmp)
    tmp.replace(path)


class StoredDataset(AtomicDataset):
    """A nequip dataset of the structures saved by `write_dataset`, held in memory."""

    def __init__(self, file_path: str, transforms: Sequence[Callable] = ()) -> None:
        super().__init__(transforms=list(transforms))
        self.data_list: list[AtomicDataDict.Type] = torch.load(file_path, weights_only=True)

    def __len__(self) -> int:
        return len(self.data_list)

    def _get_data_list(self, indices) -> list[AtomicDataDict.Type]:
        if isinstance(indices, slice):
            return self.data_list[indices]
        return [self.data_list[int(k)] for k in indices]
