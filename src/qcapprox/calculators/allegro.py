"""AllegroHullCalculator and the batch predictor of whole stores.

`AllegroHullCalculator(dopant="Pt", limit=24, variant="sequential")` loads the packaged
model of one family member (``calculators/<backbone>/<dopant>/limit-XX/model.nequip.zip``)
into nequip's ASE integration (`nequip.integrations.ase.NequIPCalculator`) and adds the
hull properties:

    energy            model total energy of the given Atoms, eV
    forces, stress    -dE/dr and the cell derivative of that energy (autograd), eV/A, eV/A^3
    formation_energy  (E - n_Sc e_Sc - n_M e_M) / (n_Sc + n_M), eV/atom (`Hull`)
    e_above_hull      formation_energy - H(x_M), eV/atom

Unlike the Random Forest the network takes any geometry (relaxed or not, any atom order):
the atoms need not match the parent; only Sc and the dopant are allowed.

What the forces mean. By default the models are trained on total energies only, all at
the ideal parent positions (as in the study). The forces are the exact negative gradient
of the learned energy (energy-conserving, equivariant, consistent with the stress), but
no force or off-lattice geometry ever entered the loss: they are an extrapolation of an
energy model fitted on a lattice of identical geometries, not a fitted force field; use
them qualitatively (e.g. which atoms would move), not for relaxations or MD. Members
trained with ``forces=True`` (card ``"forces": true``) have fitted the labeler's forces at
those positions.

`predict_allegro(parent, occupancy, dopant, limit, variant)` gives the energies above the
hull of many configurations of one parent: the parent's neighbour list is built once and
masked per configuration, and configurations are evaluated in batches without forces.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.data import atomic_numbers

from qcapprox.calculators.base import HullCalculator
from qcapprox.errors import IdentifyError
from qcapprox.models.allegro import AllegroMember, load_allegro_member
from qcapprox.parent import Parent

_MEMBERS: dict[tuple, AllegroMember] = {}


def _member(dopant: str, limit: int, variant: str, registry: Path | None) -> AllegroMember:
    """A loaded member, cached per process (a store is predicted limit by limit)."""
    key = (dopant, limit, variant, str(registry))
    fresh = load_allegro_member(dopant, limit, variant, registry)  # reads the card only
    if key not in _MEMBERS or _MEMBERS[key].card != fresh.card:  # new or retrained
        _MEMBERS[key] = fresh
    return _MEMBERS[key]


def predict_allegro(
    parent: Parent,
    occupancy: np.ndarray,
    dopant: str | None = None,
    limit: int = 24,
    variant: str = "sequential",
    batch_size: int = 32,
    registry: Path | None = None,
) -> np.ndarray:
    """Energies above the hull (eV/atom) of (n, 36) occupancies of `parent`.

    The packaged model is loaded once per process and evaluated without forces on
    batches of `batch_size` configurations, with the parent's neighbour list masked per
    configuration (`qcapprox.models.allegro.ParentGraph`).
    """
    member = _member(dopant or parent.dopant, limit, variant, registry)
    occ = np.atleast_2d(occupancy)
    energy = member.energy_model.energies(parent, occ, batch_size=batch_size)
    n_host, n_dop = parent.formula_counts(occ)
    return np.asarray(member.hull.e_above_hull(energy, n_host, n_dop), dtype=float)


class AllegroHullCalculator(HullCalculator):
    """`atoms.calc = AllegroHullCalculator(dopant="Pt", limit=24, variant="sequential")`.

    Energy, forces and stress from the packaged Allegro member through nequip's
    NequIPCalculator; formation energy and energy above the hull from the references.
    """

    implemented_properties = (
        "energy", "free_energy", "forces", "stress", "e_above_hull", "formation_energy",
    )  # fmt: skip

    def __init__(
        self,
        dopant: str,
        limit: int = 24,
        variant: str = "sequential",
        device: str = "cpu",
        registry: Path | None = None,
        **kwargs,
    ) -> None:
        self.member = load_allegro_member(dopant, limit, variant, registry)
        self.limit = limit
        self.variant = variant
        self.device = device
        self.dopant = dopant
        # the parent serves `predict_e_above_hull`; `calculate` takes any Sc-M geometry
        super().__init__(Parent.load(dopant), hull=self.member.hull, **kwargs)

    @cached_property
    def nequip(self) -> Calculator:
        """nequip's ASE calculator of the packaged model."""
        from nequip.integrations.ase import NequIPCalculator
        from nequip.integrations.utils import basic_transforms
        from nequip.model.saved_models.load_utils import load_saved_model
        from nequip.nn import graph_model

        model = load_saved_model(str(self.member.path), compile_mode="eager").eval()
        metadata = model.metadata
        type_names = metadata[graph_model.TYPE_NAMES_KEY].split(" ")
        transforms = basic_transforms(
            metadata, float(metadata[graph_model.R_MAX_KEY]), type_names,
            {t: t for t in type_names},
        )  # fmt: skip
        return NequIPCalculator(model=model, device=self.device, transforms=transforms)

    @property
    def card(self) -> dict:
        """The member's model card."""
        return self.member.card

    def predict_e_above_hull(self, occupancy: np.ndarray) -> np.ndarray:
        """Energy above hull (eV/atom) of (n, 36) occupancies of the bundled parent."""
        return self.member.predict(occupancy, self.parent)

    def calculate(
        self,
        atoms: Atoms | None = None,
        properties: Sequence[str] = ("energy",),
        system_changes: Sequence[str] = all_changes,
    ) -> None:
        """Model energy, forces and stress of the atoms, and the hull properties."""
        Calculator.calculate(self, atoms, properties, system_changes)
        symbols = set(self.atoms.get_chemical_symbols())
        foreign = sorted(symbols - {"Sc", self.dopant})
        if foreign:
            raise IdentifyError(
                f"atoms hold {foreign}: the Sc-{self.dopant} model takes only Sc and {self.dopant}"
            )
        self.nequip.calculate(self.atoms, ["energy", "forces", "stress"], all_changes)
        out = self.nequip.results
        energy = float(out["energy"])
        n_host = int((self.atoms.numbers == atomic_numbers["Sc"]).sum())
        n_dop = len(self.atoms) - n_host
        self.results = {
            "energy": energy,
            "free_energy": energy,
            "formation_energy": float(self.hull.formation_energy(energy, n_host, n_dop)),
            "e_above_hull": float(self.hull.e_above_hull(energy, n_host, n_dop)),
        }
        if "forces" in out:
            self.results["forces"] = np.asarray(out["forces"], dtype=float)
        if "stress" in out and self.atoms.pbc.all():
            self.results["stress"] = np.asarray(out["stress"], dtype=float)
