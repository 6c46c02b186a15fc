"""ForestHullCalculator: the Random Forest family member of one dopant and limit."""

from __future__ import annotations

from typing import Any, ClassVar

from qcapprox.calculators.base import HullCalculator
from qcapprox.errors import ModelError
from qcapprox.models.base import training_store
from qcapprox.models.forest import ForestMember, load_member


class ForestHullCalculator(HullCalculator):
    """The Random Forest family member of one dopant and limit as an ASE calculator: the
    energy above the convex hull of a configuration of the Sc60M13 parent.

    The member is the mean of 5 fold regressors (the study's protocol) on 20 defect
    descriptors, fitted on the limit's subset of the dopant's training set (the user's,
    else the bundled one). The calculator identifies the configuration of the Atoms it is
    given (any atom order, relaxed, rattled or strained; `Parent.identify`) and returns
    the member's prediction for that configuration: the energy of the *relaxed*
    configuration, predicted from the configuration alone, the same for every copy of
    it. Energies are predictions of the member's labeler: CHGNet stand-in labels for the
    bundled training sets, never DFT. The first use of a member trains it (seconds to a
    minute, deterministically) into the model cache and checks it against its model card.

    Parameters
    ----------
    dopant : str
        The metal M of Sc60M13, e.g. "Pt" (bundled training sets: Pt, Pd, Ir, Rh).
    limit : int
        The member's training subset: the largest number of A5 defects (vacancies + M)
        among its training configurations, one of 0, 2, ..., 24 (default 24).

    Other Parameters
    ----------------
    labels : str
        The label set the member is trained on: "relaxed" (the target; default) or
        "single-point" (energies at the parent geometry, the cheaper screen), or a
        training set-up of `qcapprox.models.base.Setup` such as "relaxed+depth" or
        "relaxed+relaxed-into".
    regressor : str
        The regressor by name: "rf" (Random Forest; default) or "hgb" (histogram gradient
        boosting), both shipped; "rf-cf", "hgb-cf" or "ce" (the cluster expansion) on
        cluster correlations; or another of `qcapprox.models.forest.REGRESSORS`.
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

    No forces or stress: the member predicts the energy of the configuration, not of the
    given positions (PropertyNotImplementedError says why).
    `predict_e_above_hull(occupancy)` is the batch path for many configurations. The
    calculator pickles and deep-copies with its member.

    Example
    -------
    >>> from qcapprox.calculators import ForestHullCalculator
    >>> from qcapprox.parent import Parent
    >>> parent = Parent.load("Pt")
    >>> atoms = parent.decorate(parent.known_phase())  # Sc57Pt13: six A4 vacancies
    >>> atoms.calc = ForestHullCalculator(dopant="Pt", limit=24)
    >>> energy = atoms.get_potential_energy()  # eV
    >>> e_hull = atoms.calc.get_property("e_above_hull")  # eV/atom; < 0: below the hull
    """

    default_parameters: ClassVar[dict[str, Any]] = {
        **HullCalculator.default_parameters,
        "regressor": "rf",
    }

    def __init__(self, dopant: str | None = None, limit: int = 24, **kwargs: Any) -> None:
        """The member of `dopant` at `limit`; other settings by keyword (see the class)."""
        super().__init__(dopant=dopant, limit=limit, **kwargs)

    def check(self, parameters: dict) -> None:
        """Known limit and label set; a training set for the dopant."""
        super().check(parameters)
        dopant = parameters.get("dopant")
        if dopant is not None and not training_store(dopant).exists():
            raise ModelError(
                f"no training set for {dopant} ({training_store(dopant)}); enumerate and "
                "label one first"
            )

    def load(self) -> ForestMember:
        """The member: from the cache, or trained now and checked against its card."""
        p = self.parameters
        return load_member(p.dopant, p.limit, p.regressor, p.labels)
