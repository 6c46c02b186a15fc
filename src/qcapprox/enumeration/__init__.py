"""Symmetry-distinct configurations: canonical enumeration, random realizations, recipes."""

from qcapprox.enumeration.canonical import Block, Enumerator

__all__ = ["Block", "Enumerator"]
