"""Messages the panes post upward to the app, which holds the shared selection."""

from __future__ import annotations

import numpy as np
from textual.message import Message


class ConfigurationChosen(Message):
    """A configuration (a store row of the current dopant) was chosen: show its detail."""

    def __init__(self, row: int) -> None:
        self.row = row
        super().__init__()


class FamilyChosen(Message):
    """A family was chosen (Robustness): make it the primary backbone."""

    def __init__(self, backbone: str) -> None:
        self.backbone = backbone
        super().__init__()


class ExportRequested(Message):
    """Write the structures of store rows `rows` as `kind` (cif, poscar, extxyz); `stem`
    names a many-structure export (None: one configuration, named by its id)."""

    def __init__(self, rows: np.ndarray, kind: str, stem: str | None) -> None:
        self.rows = rows
        self.kind = kind
        self.stem = stem
        super().__init__()


class Notice(Message):
    """Say something on the notice line above the footer."""

    def __init__(self, text: str) -> None:
        self.text = text
        super().__init__()
