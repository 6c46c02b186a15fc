"""AllegroHullCalculator: one Allegro family member as an ASE calculator.

`AllegroHullCalculator(dopant="Pt", limit=24, variant="sequential")` loads the packaged
model of one family member (``<registry>/<backbone>/<dopant>/limit-XX/model.nequip.zip``,
under ``<registry>/single-point/`` for `labels="single-point"`: the `registry` given, else
the user's, else the bundled ``calculators/``).
Like every hull calculator (`calculators/base.py`) it identifies the configuration of the
given atoms and returns the member's prediction for that configuration: the network is
evaluated on the decorated parent, the geometry the member was trained on (the study's
design), so a relaxed, rattled or shuffled copy gets the same answer as from the Random
Forest. Properties: energy (eV), formation_energy and e_above_hull (eV/atom).

Forces and stress: the shipped members are trained on total energies alone, so they offer
none (ASE's PropertyNotImplementedError, with the reason). A member trained with
``forces=True`` (card ``"forces": true``) adds the fitted force field's forces and stress at
the given geometry through nequip's ASE integration (`NequIPCalculator`).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import Any, ClassVar

from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

from qcapprox.calculators.base import HullCalculator
from qcapprox.errors import AllegroError
from qcapprox.models.allegro.inference import AllegroMember, load_allegro_member
from qcapprox.models.allegro.presets import VARIANTS


class AllegroHullCalculator(HullCalculator):
    """`atoms.calc = AllegroHullCalculator(dopant="Pt", limit=24, variant="sequential")`."""

    default_parameters: ClassVar[dict[str, Any]] = {
        **HullCalculator.default_parameters,
        "variant": "sequential",
        "device": "cpu",
        "registry": None,
    }

    def __init__(
        self, dopant: str | None = None, limit: int = 24, variant: str = "sequential", **kwargs
    ) -> None:
        super().__init__(dopant=dopant, limit=limit, variant=variant, **kwargs)

    def check(self, parameters: dict) -> None:
        """Known limit and variant."""
        super().check(parameters)
        if parameters.get("variant") not in VARIANTS:
            raise AllegroError(f"variant must be one of {VARIANTS}, not {parameters['variant']!r}")

    def load(self) -> AllegroMember:
        """The packaged member of the current settings (read from the registry)."""
        p = self.parameters
        member = load_allegro_member(p.dopant, p.limit, p.variant, p.registry, labels=p.labels)
        self.__dict__.pop("nequip", None)
        if member.card.get("forces"):
            self.implemented_properties = (*HullCalculator.implemented_properties, "forces",
                                           "stress")  # fmt: skip
        else:
            self.implemented_properties = HullCalculator.implemented_properties
        return member

    @cached_property
    def nequip(self) -> Calculator:
        """nequip's ASE calculator of the packaged model (forces-trained members)."""
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
        return NequIPCalculator(model=model, device=self.parameters.device, transforms=transforms)

    def calculate(
        self,
        atoms: Atoms | None = None,
        properties: Sequence[str] = ("energy",),
        system_changes: Sequence[str] = all_changes,
    ) -> None:
        """The configuration's energies; forces and stress of forces-trained members."""
        super().calculate(atoms, properties, system_changes)
        if {"forces", "stress"} & set(properties) and "forces" in self.implemented_properties:
            self.nequip.calculate(self.atoms, ["energy", "forces", "stress"], all_changes)
            self.results["forces"] = self.nequip.results["forces"]
            if self.atoms.pbc.all():
                self.results["stress"] = self.nequip.results["stress"]
