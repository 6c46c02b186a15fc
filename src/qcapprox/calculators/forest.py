"""ForestHullCalculator: the Random Forest family member of one dopant and limit."""

from __future__ import annotations

import numpy as np

from qcapprox.calculators.base import HullCalculator
from qcapprox.models.forest import load_member
from qcapprox.store import RELAXED


class ForestHullCalculator(HullCalculator):
    """`atoms.calc = ForestHullCalculator(dopant="Pt", limit=24)`.

    Predicts the energy above hull with the 5-fold random forests trained on the limit-x
    subset of the bundled training set (any scikit-learn regressor by `regressor` name), on
    its relaxed labels (the target) or, with `labels="single-point"`, on the cheap screen.
    """

    def __init__(
        self,
        dopant: str,
        limit: int = 24,
        regressor: str = "rf",
        labels: str = RELAXED,
        **kwargs,
    ) -> None:
        self.member = load_member(dopant, limit, regressor, labels)
        self.limit = limit
        super().__init__(self.member.parent, **kwargs)

    def predict_e_above_hull(self, occupancy: np.ndarray) -> np.ndarray:
        """Mean of the fold forests, eV/atom."""
        return self.member.predict(occupancy)
