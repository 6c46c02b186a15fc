"""Base of the hull calculators: a family member wrapped as an ASE Calculator.

A member maps a *configuration* to its energy above the hull e_hull (eV/atom): in the
study's design, the energy the configuration has once relaxed, predicted from the
unrelaxed configuration. The calculator therefore identifies the configuration of the atoms
it is given (`Parent.identify`: any atom order, relaxed, rattled or strained) and returns the
member's prediction for it, the same for every copy of one configuration. The other
properties follow from the hull of the references (`qcapprox.hull.Hull`) with n_Sc and n_M
the atom counts and x_M = n_M / (n_Sc + n_M):

    formation_energy = e_hull + H(x_M)                                     [eV/atom]
    energy           = (n_Sc + n_M) formation_energy + n_Sc e_Sc + n_M e_M   [eV]

Settings live in `parameters`, as in ASE's own calculators: `todict()` gives all of them,
`set()` validates a change and the member is (re)loaded on the next calculation. Forces and
stress are not offered by members trained on energies alone. Energies are those of the
member's labeler: for the bundled members, CHGNet, a stand-in for DFT, never DFT itself.

A configuration is a crystal: Atoms that are not periodic in all three directions are
refused (IdentifyError), since the prediction of the bulk configuration would be silently
given to a cluster or a slab.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes
from ase.data import atomic_numbers

from qcapprox.errors import IdentifyError, ModelError
from qcapprox.hull import Hull
from qcapprox.parent import Parent
from qcapprox.words import LABEL_KINDS, LIMITS, MAX_DISPLACEMENT, RELAXED


class HullCalculator(Calculator):
    """Energy, formation energy and energy above hull of a configuration from a member."""

    implemented_properties = ("energy", "free_energy", "e_above_hull", "formation_energy")
    discard_results_on_any_change = True  # another member: results are recomputed
    default_parameters: ClassVar[dict[str, Any]] = {
        "dopant": None,
        "limit": 24,
        "labels": RELAXED,
        "max_displacement": MAX_DISPLACEMENT,
    }

    def __init__(self, hull: Hull | None = None, **kwargs: Any) -> None:
        self._member: Any = None
        super().__init__(**kwargs)
        if self.parameters.dopant is None:
            raise ModelError(f"{type(self).__name__} needs a dopant, e.g. dopant='Pt'")
        self._hull = hull

    # ----------------------------------------------------------------- settings
    def set(self, **kwargs: Any) -> dict:
        """Change settings (validated first); a changed member is loaded on next use."""
        self.check({**self.parameters, **kwargs})
        changed = super().set(**kwargs)
        if changed:
            self._member = None
        return changed

    def check(self, parameters: dict) -> None:
        """Refuse settings no member can have (subclasses add theirs)."""
        if parameters.get("limit") not in LIMITS:
            raise ModelError(f"limit {parameters.get('limit')} is not one of {LIMITS}")
        from qcapprox.models.base import Setup

        if not isinstance(parameters.get("labels"), str):
            raise ModelError(f"labels must be one of {LABEL_KINDS} or a training set-up name")
        Setup.parse(parameters["labels"])  # ModelError names what a set-up is

    def todict(self, skip_default: bool = False) -> dict:
        """All settings (ASE's default would drop those equal to their defaults)."""
        return super().todict(skip_default=skip_default)

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.todict().items())
        return f"{type(self).__name__}({shown})"

    # ----------------------------------------------------------------- the member
    @property
    def member(self) -> Any:
        """The family member of the current settings, loaded on first use."""
        if self._member is None:
            self._member = self.load()
        return self._member

    def load(self) -> Any:
        """Load the member of the current settings; subclasses implement it."""
        raise NotImplementedError

    @property
    def parent(self) -> Parent:
        """The parent whose configurations the member knows."""
        return self.member.parent

    @property
    def hull(self) -> Hull:
        """The references of the member's dopant."""
        if self._hull is None:
            self._hull = Hull.load(self.parameters.dopant)
        return self._hull

    @property
    def card(self) -> dict:
        """The member's model card."""
        return self.member.card

    def predict_e_above_hull(self, occupancy: np.ndarray) -> np.ndarray:
        """The batch path: energies above the hull (eV/atom) of many configurations at once.

        `occupancy` is (n, 36) uint8 over the active sites, A4 then A5 (0 = Sc, 1 = M,
        2 = vacancy), e.g. a store's or results file's ``occupancy``, or rows of
        ``calc.parent.identify(atoms)``; returns (n,) float. One member call for all rows,
        no Atoms and no identification: the same numbers as `calculate` gives each
        decorated configuration, far faster. Like every energy here, a prediction of the
        member's labels (CHGNet stand-in labels for the bundled members, never DFT).
        """
        return self.member.predict(occupancy)

    # ----------------------------------------------------------------- ASE
    def get_property(
        self, name: str, atoms: Atoms | None = None, allow_calculation: bool = True
    ) -> Any:
        """ASE's get_property, with a reason when forces or stress are asked of a member
        trained on energies alone."""
        if name in ("forces", "stress") and name not in self.implemented_properties:
            raise PropertyNotImplementedError(
                f"{name}: {self!r} predicts the relaxed energy of a configuration and was "
                f"trained on energies alone, so it has no {name}; use the labeler (e.g. CHGNet) "
                "for forces and stress, or a member trained with forces"
            )
        return super().get_property(name, atoms, allow_calculation)

    def calculate(
        self,
        atoms: Atoms | None = None,
        properties: Sequence[str] = ("energy",),
        system_changes: Sequence[str] = all_changes,
    ) -> None:
        """Identify the configuration, predict e_above_hull and derive the rest."""
        super().calculate(atoms, properties, system_changes)
        if self.atoms is None:
            raise IdentifyError(
                f"{type(self).__name__}: no atoms to calculate; pass them "
                "(calc.get_property(name, atoms)) or attach the calculator (atoms.calc = calc)"
                " and ask the atoms (atoms.get_potential_energy())"
            )
        if not self.atoms.pbc.all():
            raise IdentifyError(
                f"{type(self).__name__}: the atoms have pbc={self.atoms.pbc.tolist()}, but a "
                "configuration of the parent is a crystal periodic in all three directions; "
                "set atoms.pbc = True (with the parent's 3-D cell)"
            )
        occupancy = self.parent.identify(self.atoms, self.parameters.max_displacement)
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
