"""qcapprox: screen Sc-rich quasicrystal approximants Sc60M13 for stable compositions."""

from qcapprox.enumeration import Enumerator
from qcapprox.parent import Parent
from qcapprox.store import Store

__all__ = ["Enumerator", "Parent", "Store"]
