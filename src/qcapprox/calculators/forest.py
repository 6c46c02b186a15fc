"""ForestHullCalculator: the Random Forest family member of one dopant and limit."""

from __future__ import annotations

from typing import Any, ClassVar

from qcapprox.calculators.base import HullCalculator
from qcapprox.errors import ModelError
from qcapprox.models.base import training_store
from qcapprox.models.forest import ForestMember, load_member


class ForestHullCalculator(HullCalculator):
    """`atoms.calc = ForestHullCalculator(dopant="Pt", limit=24)`.

    Predicts the energy above hull with the 5-fold random forests (any scikit-learn
    regressor by `regressor` name) trained on the limit-x subset of the dopant's training
    set (the user's, else the bundled one), on its relaxed labels (the target) or, with
    `labels="single-point"`, on the cheap screen.
    """

    default_parameters: ClassVar[dict[str, Any]] = {
        **HullCalculator.default_parameters,
        "regressor": "rf",
    }

    def __init__(self, dopant: str | None = None, limit: int = 24, **kwargs: Any) -> None:
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
