"""Base of the hull calculators: a model of E_above_hull wrapped as an ASE Calculator.

A subclass predicts the energy above the hull e_hull (eV/atom) of occupancies. The atoms
given to the calculator are matched to the parent (`Parent.identify`, any atom order,
relaxed or not), and the other properties follow from the hull of the references
(`qcapprox.hull.Hull`) with n_Sc and n_M the atom counts and x_M = n_M / (n_Sc + n_M):

    formation_energy = e_hull + H(x_M)                                     [eV/atom]
    energy           = (n_Sc + n_M) formation_energy + n_Sc e_Sc + n_M e_M   [eV]

Energies are those of the model's labeler: for the bundled models, CHGNet single points,
a stand-in for DFT.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.data import atomic_numbers

from qcapprox.hull import Hull
from qcapprox.parent import Parent


class HullCalculator(Calculator):
    """Energy, formation energy and energy above hull from a model of e_above_hull."""

    implemented_properties = ("energy", "free_energy", "e_above_hull", "formation_energy")

    def __init__(
        self,
        parent: Parent,
        hull: Hull | None = None,
        max_displacement: float = 2.5,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.parent = parent
        self.hull = hull or Hull.load(parent.dopant)
        self.max_displacement = max_displacement

    def predict_e_above_hull(self, occupancy: np.ndarray) -> np.ndarray:
        """Energy above hull (eV/atom) of (n, 36) occupancies; subclasses implement it."""
        raise NotImplementedError

    def calculate(
        self,
        atoms: Atoms | None = None,
        properties: Sequence[str] = ("energy",),
        system_changes: Sequence[str] = all_changes,
    ) -> None:
        """Identify the configuration, predict e_above_hull and derive the rest."""
        super().calculate(atoms, properties, system_changes)
        occupancy = self.parent.identify(self.atoms, self.max_displacement)
        e_hull = float(self.predict_e_above_hull(occupancy[None, :])[0])
        n_host = int((self.atoms.numbers == atomic_numbers[self.parent.host]).sum())
        n_dop = len(self.atoms) - n_host
        energy = float(self.hull.energy_from_e_above_hull(e_hull, n_host, n_dop))
        self.results = {
            "energy": energy,
            "free_energy": energy,
            "e_above_hull": e_hull,
            "formation_energy": float(self.hull.formation_energy(energy, n_host, n_dop)),
        }
