"""qcapprox: screen Sc-rich quasicrystal approximants Sc60M13 for stable compositions."""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from qcapprox.enumeration import Enumerator
    from qcapprox.parent import Parent
    from qcapprox.store import Store

try:
    __version__ = version("qcapprox")
except PackageNotFoundError:  # a source tree that is not installed
    __version__ = "unknown"

__all__ = ["Enumerator", "Parent", "Store", "__version__"]
_HOMES = {
    "Enumerator": "qcapprox.enumeration",
    "Parent": "qcapprox.parent",
    "Store": "qcapprox.store",
}


def __getattr__(name: str) -> object:
    """Import the top-level names on first use (PEP 562): `import qcapprox.tui` stays light."""
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'qcapprox' has no attribute {name!r}")
