"""Random symmetry-distinct realizations of a composition, deterministic from a seed.

Realizations are drawn uniformly over the *symmetry-distinct* configurations of a
composition, not over labelled decorations: a labelled decoration c is drawn uniformly
and accepted with probability 1/mult(c) = |Stab(c)|/|G|. An orbit O is then accepted with
probability sum_{c in O} (1/N) |Stab(c)|/|G| = 1/N (orbit-stabilizer: |O| |Stab| = |G|), the
same for every orbit. When few distinct configurations exist (at most 4 n), they are all
enumerated and n of them are chosen uniformly without replacement.

The random stream of a composition depends only on (seed, composition), so adding or
removing other compositions from a recipe does not change it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from qcapprox.enumeration.canonical import Block, Enumerator
from qcapprox.parent import DOPANT, VACANCY


def composition_rng(seed: int, composition: Sequence[int]) -> np.random.Generator:
    """The random generator of one composition: a function of (seed, composition) only."""
    return np.random.default_rng([int(seed), *(int(c) for c in composition)])


def random_decorations(
    enumerator: Enumerator, composition: Sequence[int], n: int, rng: np.random.Generator
) -> np.ndarray:
    """n labelled decorations drawn uniformly: every orbit's sites shuffled independently."""
    occ = np.zeros((n, enumerator.n_active), dtype=np.uint8)
    for k, sl in enumerate(enumerator.slices):
        base = np.zeros(sl.stop - sl.start, dtype=np.uint8)
        base[: composition[2 * k]] = VACANCY
        base[composition[2 * k] : composition[2 * k] + composition[2 * k + 1]] = DOPANT
        occ[:, sl] = rng.permuted(np.tile(base, (n, 1)), axis=1)
    return occ


def realizations(enumerator: Enumerator, composition: Sequence[int], n: int, seed: int) -> Block:
    """n distinct canonical configurations of a composition, uniform over distinct ones.

    Fewer than n when the composition has fewer distinct configurations (then all).
    """
    rng = composition_rng(seed, composition)
    total = enumerator.count(composition)
    if total <= 4 * n:
        blocks = list(enumerator.enumerate(composition))
        occ = np.concatenate([b.occupancy for b in blocks])
        mult = np.concatenate([b.multiplicity for b in blocks])
        order = np.argsort(enumerator.ids(occ))
        chosen = np.sort(rng.choice(total, size=min(n, total), replace=False))
        return Block(occ[order][chosen], mult[order][chosen])
    found: dict[int, tuple[np.ndarray, int]] = {}
    batch = max(64, 4 * n)
    while len(found) < n:
        canonical, mult = enumerator.canonicalize(
            random_decorations(enumerator, composition, batch, rng)
        )
        accepted = rng.random(batch) < 1.0 / mult
        for occ, m, key in zip(
            canonical[accepted], mult[accepted], enumerator.ids(canonical[accepted]), strict=True
        ):
            if len(found) < n:
                found.setdefault(int(key), (occ, int(m)))
    occs, mults = zip(*found.values(), strict=True)
    return Block(np.array(occs, dtype=np.uint8), np.array(mults, dtype=np.int64))
