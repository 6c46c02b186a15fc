"""The shared words of qcapprox (../shared/DESIGN.md), in a module that imports nothing
heavy, so the command line's help and the UI's first frame can use them without loading
h5py, ASE, spglib, pymatgen or torch.

- limit: the largest number of A5 defects (vacancies + M) in a training subset; the study's
  13 nested limits are 0, 2, ..., 24 (`LIMITS`), named `limit-00` ... `limit-24`;
- label set: `relaxed` (positions and cell relaxed: the target) or `single-point` (the
  parent geometry: the cheap screen);
- mapping policy: what a relaxed label belongs to (`qcapprox.mapping`);
- the bundled dopants, the identification tolerance and the size guards of the commands.
"""

from __future__ import annotations

LIMITS = tuple(range(0, 25, 2))
RELAXED, SINGLE_POINT = "relaxed", "single-point"
LABEL_KINDS = (RELAXED, SINGLE_POINT)
#: start: the configuration it started from (the study's convention); kept: only rows that
#: kept their identity; relaxed-into: the configuration it relaxed into.
POLICIES = ("start", "kept", "relaxed-into")
DEFAULT_POLICY = "start"
BUNDLED_DOPANTS = ("Pt", "Pd", "Ir", "Rh")
#: Largest distance (A) from an atom to the parent site it is assigned to in `match`.
MAX_DISPLACEMENT = 2.5
#: A larger enumeration needs `force` (qcapprox enumerate --force).
MAX_CONFIGURATIONS = 10_000_000
#: A larger store needs `max_rows=None` (qcapprox predict --force).
MAX_ROWS = 5_000_000


def limit_key(limit: int) -> str:
    """The name of a limit, in stores, results and the registry: 8 -> 'limit-08'."""
    return f"limit-{int(limit):02d}"
