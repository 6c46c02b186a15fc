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
    """One Allegro family member as an ASE calculator: the energy above the convex hull of a
    configuration of the Sc60M13 parent.

    The calculator identifies the configuration of the Atoms it is given (any atom order,
    relaxed, rattled or strained; `Parent.identify`) and evaluates the packaged network on
    that configuration decorated on the parent geometry, the input the member was trained
    on: it predicts the energy of the *relaxed* configuration from the unrelaxed one, so a
    relaxed, rattled or shuffled copy gets the same answer. Energies are predictions of
    the member's labeler: CHGNet stand-in labels for the bundled members, never DFT.

    Parameters
    ----------
    dopant : str
        The metal M of Sc60M13, e.g. "Pt" (bundled: Pt, Pd, Ir, Rh).
    limit : int
        The member's training subset: the largest number of A5 defects (vacancies + M)
        among its training configurations, one of 0, 2, ..., 24 (default 24).
    variant : str
        "ordinary" (one training stage), "sequential" (A5-defect rows, then fine-tuned on
        A5-pristine rows; the default) or "pretrained" (the Sc-M corpus model fine-tuned).

    Other Parameters
    ----------------
    labels : str
        The label set the member was trained on: "relaxed" (the target; default) or
        "single-point" (energies at the parent geometry, the cheaper screen).
    registry : path or None
        Where the member is read: this registry, else the user's, else the bundled
        ``calculators/`` (``<registry>/<backbone>/<dopant>/limit-XX/``).
    device : str
        Torch device of nequip's calculator for the forces of forces-trained members.
    max_displacement : float
        Largest distance (A) of an atom from the parent site it is assigned to (2.5).
    hull : Hull or None
        The references defining the hull (default: the bundled ones of the dopant).

    Properties
    ----------
    energy, free_energy : float
        Total energy, eV (from e_above_hull and the hull of the references).
    formation_energy : float
        (E - n_Sc e_Sc - n_M e_M) / (n_Sc + n_M), eV/atom (vacancies are absent atoms).
    e_above_hull : float
        Formation energy minus the hull energy at that composition, eV/atom; negative
        means below the hull (a candidate stable phase).
    forces, stress
        Only from members trained with forces (card ``"forces": true``); the shipped
        members have none (PropertyNotImplementedError says why).

    `predict_e_above_hull(occupancy)` is the batch path for many configurations. The
    calculator pickles and deep-copies (e.g. to worker processes): the loaded network is
    left out and loaded again on first use.

    Example
    -------
    >>> from qcapprox.calculators import AllegroHullCalculator
    >>> from qcapprox.parent import Parent
    >>> parent = Parent.load("Pt")
    >>> atoms = parent.decorate(parent.known_phase())  # Sc57Pt13: six A4 vacancies
    >>> atoms.calc = AllegroHullCalculator(dopant="Pt", limit=24, variant="sequential")
    >>> energy = atoms.get_potential_energy()  # eV
    >>> e_hull = atoms.calc.get_property("e_above_hull")  # eV/atom; < 0: below the hull
    """

    default_parameters: ClassVar[dict[str, Any]] = {
        **HullCalculator.default_parameters,
        "variant": "sequential",
        "device": "cpu",
        "registry": None,
    }

    def __init__(
        self, dopant: str | None = None, limit: int = 24, variant: str = "sequential", **kwargs
    ) -> None:
        """The `variant` member of `dopant` at `limit`; other settings by keyword (see the
        class)."""
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

    def __getstate__(self) -> dict:
        """The state without the loaded member and nequip's calculator: torch modules of a
        packaged model neither pickle nor deep-copy, so both are loaded again on first use
        (the settings and the last results are kept)."""
        state = self.__dict__.copy()
        state["_member"] = None
        state.pop("nequip", None)
        return state

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
            self.results["stress"] = self.nequip.results["stress"]  # periodic: base checks
