"""ASE calculators that give the energy above the hull of configurations of the parent.

`AllegroHullCalculator` is imported on first use (PEP 562), so the Random Forest's
calculator needs no torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qcapprox.calculators.base import HullCalculator
from qcapprox.calculators.forest import ForestHullCalculator

if TYPE_CHECKING:
    from qcapprox.calculators.allegro import AllegroHullCalculator

__all__ = ["AllegroHullCalculator", "ForestHullCalculator", "HullCalculator"]


def __getattr__(name: str) -> object:
    """The Allegro calculator, imported when first asked for."""
    if name == "AllegroHullCalculator":
        from qcapprox.calculators.allegro import AllegroHullCalculator

        return AllegroHullCalculator
    raise AttributeError(f"module 'qcapprox.calculators' has no attribute {name!r}")
