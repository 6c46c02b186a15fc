"""qcapprox: screen Sc-rich quasicrystal approximants Sc60M13 for stable compositions."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from qcapprox.enumeration import Enumerator
    from qcapprox.parent import Parent
    from qcapprox.store import Store

__all__ = ["Enumerator", "Parent", "Store", "__version__"]
_HOMES = {
    "Enumerator": "qcapprox.enumeration",
    "Parent": "qcapprox.parent",
    "Store": "qcapprox.store",
}


def _version() -> str:
    """The installed version ("unknown" in a source tree that is not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("qcapprox")
    except PackageNotFoundError:
        return "unknown"


def __getattr__(name: str) -> object:
    """Import the top-level names on first use (PEP 562), and read `__version__` from the
    package metadata (importlib.metadata: 50 ms) only when asked: `import qcapprox.cli`
    and `import qcapprox.tui` stay light."""
    if name == "__version__":
        globals()[name] = _version()
        return globals()[name]
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'qcapprox' has no attribute {name!r}")
