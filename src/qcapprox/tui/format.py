"""Text forms of configurations and numbers for the terminal UI.

A4 occupancy string: one character per A4 site, in the store's site order:
`.` = Sc (host), `M` = the dopant, `V` = vacancy; e.g. `..M.V.......`.
Composition string: `v<A4 vacancies> M<A4 dopants>`, followed by `| v<A5 vac> M<A5 dopants>`
when a set has A5 defects, e.g. `v1 M2` or `v1 M2 | v0 M1`.
"""

from __future__ import annotations

import math

import numpy as np

# qcapprox.datasets.LIMITS, repeated so that the UI's first frame needs no heavy import
# (tests check that the two agree)
LIMITS: tuple[int, ...] = tuple(range(0, 25, 2))
OCC_CHARS = np.array([".", "M", "V"])
LIMIT_LABELS: tuple[str, ...] = tuple(str(x) for x in LIMITS)
OCC_LEGEND = ". Sc  M dopant  V vacancy"
KNOWN_MARK = "◆"  # marks the known Sc57M13 phase in every table
# family names shortened where columns are narrow (legend: FAMILY_LEGEND)
FAMILY_WORDS = (("allegro", "al"), ("sequential", "seq"), ("pretrained", "pre"),
                ("single-point", "sp"))  # fmt: skip
FAMILY_LEGEND = "al allegro, seq sequential, pre pretrained, sp single-point"


def occupancy_strings(occupancy: np.ndarray) -> np.ndarray:
    """(n,) strings of (n, k) occupancy codes (0 Sc, 1 M, 2 vacancy)."""
    occ = np.atleast_2d(np.asarray(occupancy, dtype=np.intp))
    chars = np.ascontiguousarray(OCC_CHARS[occ])
    if occ.shape[1] == 0:
        return np.full(len(occ), "", dtype="U1")
    return chars.view(f"<U{occ.shape[1]}")[:, 0]


def composition_strings(composition: np.ndarray, a5: bool | None = None) -> np.ndarray:
    """(n,) strings of (n, 4) compositions (A4 vac, A4 M, A5 vac, A5 M).

    The A5 part is shown if `a5`, or (None) if any row has an A5 defect.
    """
    comp = np.atleast_2d(np.asarray(composition, dtype=np.int64))
    if a5 is None:
        a5 = bool(comp[:, 2:].any()) if len(comp) else False
    out = [f"v{v} M{m}" for v, m in comp[:, :2]]
    if a5:
        out = [f"{s} | v{v} M{m}" for s, (v, m) in zip(out, comp[:, 2:4], strict=True)]
    return np.array(out, dtype=str)


def composition_filter(strings: np.ndarray, query: str) -> np.ndarray:
    """Mask of composition strings holding every whitespace-separated token of `query`
    (case-insensitive, e.g. 'M3' or 'v1 m2'); an empty query keeps everything.
    """
    tokens = query.lower().split()
    keep = np.ones(len(strings), dtype=bool)
    lowered = np.char.lower(np.asarray(strings, dtype=str))
    for token in tokens:
        # match whole tokens: 'M1' must not match 'M12'
        padded = np.char.add(np.char.add(" ", np.char.replace(lowered, "|", " ")), " ")
        keep &= np.char.find(padded, f" {token} ") >= 0
    return keep


def short_family(name: str) -> str:
    """A family name in at most about 10 characters: `allegro-sequential-single-point`
    becomes `al-seq-sp` (FAMILY_LEGEND says how)."""
    for word, short in FAMILY_WORDS:
        name = name.replace(word, short)
    return name


def known_name(dopant: str) -> str:
    """The known phase of a dopant, e.g. `Sc57Pt13`."""
    return f"Sc57{dopant}13"


def energy(value: float, digits: int = 4) -> str:
    """An energy in eV/atom, or '-' when missing."""
    return "-" if not math.isfinite(value) else f"{value:.{digits}f}"


def number(value: float, kind: str, width: int) -> str:
    """A value fitted into `width` characters.

    kind: 'count' (integers, compacted to 1.2k / 15k, never below two significant
    digits), 'percent' (0-100),
    'fraction' (0-1, e.g. recall, Jaccard) or 'score' (any float). NaN gives '-'.
    """
    if value is None or not math.isfinite(value):
        return "-"
    if kind == "count":
        options = [f"{int(value)}"]
        if value >= 1000:
            options += [f"{value / 1000:.1f}k"]
        if value >= 10_000:
            options += [f"{value / 1000:.0f}k"]
        if value >= 10_000_000:
            options += [f"{value / 1e6:.0f}M"]
    elif kind == "percent":
        options = [f"{value:.1f}", f"{value:.0f}"]
    else:  # fraction, score: most precise first, '0.' shortened to '.' when needed
        options = []
        for digits in (3, 2, 1):
            text = f"{value:.{digits}f}"
            options.append(text)
            if text.startswith(("0.", "-0.")):
                options.append(text.replace("0.", ".", 1))
    fitting = [o for o in options if len(o) <= width]
    if not fitting:
        return "#" * max(width, 1)
    return fitting[0]
