"""Labelers for the labeling tests: real ASE calculators, built by `module:factory` specs."""

from __future__ import annotations

from ase.calculators.lj import LennardJones


def lennard_jones() -> LennardJones:
    """A Lennard-Jones potential with a Sc-like length scale (fast, deterministic)."""
    return LennardJones(sigma=2.7, epsilon=0.05, rc=6.0, smooth=True)


class Fragile(LennardJones):
    """Lennard-Jones that fails on structures with vacancies: tests failure recording."""

    def calculate(self, atoms=None, properties=None, system_changes=None):
        if len(atoms) < 146:
            raise RuntimeError("vacancies not supported")
        super().calculate(atoms, properties or ["energy"], system_changes or [])


def fragile() -> Fragile:
    return Fragile(sigma=2.7, epsilon=0.05, rc=6.0, smooth=True)


class MallocChecked(LennardJones):
    """Lennard-Jones that fails unless its process runs with the malloc thresholds that
    `label_store` gives its local dask workers (dask's own made CHGNet 3x slower)."""

    def calculate(self, atoms=None, properties=None, system_changes=None):
        import os

        from qcapprox.labeling import WORKER_MALLOC

        for key, value in WORKER_MALLOC.items():
            name = key.rpartition(".")[2]
            if os.environ.get(name) != value:
                raise RuntimeError(f"{name}={os.environ.get(name)!r} in this worker")
        super().calculate(atoms, properties or ["energy"], system_changes or [])


def malloc_checked() -> MallocChecked:
    return MallocChecked(sigma=2.7, epsilon=0.05, rc=6.0, smooth=True)
