"""Model families: one backbone trained for one dopant at all 13 limits."""

from qcapprox.store import RELAXED


def family_key(backbone: str, labels: str = RELAXED) -> str:
    """Name of a family in stores, results and reports: the backbone (e.g. `rf`) for the
    family trained on relaxed labels (the target), `<backbone>-<labels>` otherwise (e.g.
    `rf-single-point`, the cheap screen)."""
    return backbone if labels == RELAXED else f"{backbone}-{labels}"
