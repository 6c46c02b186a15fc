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
