"""ASE calculators that give the energy above the hull of decorations of the parent."""

from qcapprox.calculators.allegro import AllegroHullCalculator, predict_allegro
from qcapprox.calculators.base import HullCalculator
from qcapprox.calculators.forest import ForestHullCalculator

__all__ = ["AllegroHullCalculator", "ForestHullCalculator", "HullCalculator", "predict_allegro"]
