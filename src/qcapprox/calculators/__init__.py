"""ASE calculators that give the energy above the hull of decorations of the parent."""

from qcapprox.calculators.base import HullCalculator
from qcapprox.calculators.forest import ForestHullCalculator

__all__ = ["ForestHullCalculator", "HullCalculator"]
