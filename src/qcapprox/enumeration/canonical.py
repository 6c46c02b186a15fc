"""Exact enumeration of symmetry-distinct configurations, one canonical form per orbit.

A composition fixes, for every active orbit O, the number of vacancies v_O and dopants m_O.
A configuration is then a sequence of *layers*: for each active orbit in order, the set of
its vacant sites, then the set of its dopant sites. A layer is written as a bit mask over
the orbit's sites (site j of an orbit of n sites is bit n-1-j, so a mask read as a binary
number is the indicator vector of the layer).

Canonical form: the representative of an orbit of G is the configuration whose tuple of
layer masks is lexicographically largest among its images. It is built layer by layer
with the stabilizer chain (Read-Faradzev / orderly generation):
with H the stabilizer of the layers chosen so far, a mask S is kept iff S >= h(S) for all
h in H, and the next layer is enumerated under H_S = {h in H : h(S) = S}. Since
H-orbits of masks partition the candidates, every G-orbit is produced exactly once, and
its multiplicity is |G| / |H_final|. Once H is trivial every remaining choice is distinct,
so those branches are produced as vectorized Cartesian products.

The stable configuration id is the base-3 code of the canonical occupancy,
id = sum_i occ[i] 3^(n-1-i) (n = 36 fits in int64).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache, cached_property
from itertools import combinations

import numpy as np

from qcapprox.errors import EnumerationError
from qcapprox.parent import DOPANT, VACANCY, Parent
from qcapprox.symmetry import CycleIndex, burnside_count, cycle_index, labelled_count

BLOCK = 1 << 20  # rows produced per vectorized step


@cache
def _combinations(n: int, k: int) -> np.ndarray:
    """All k-subsets of range(n) as a (C(n, k), k) array in lexicographic order."""
    if k == 0:
        return np.zeros((1, 0), dtype=np.intp)
    flat = np.fromiter((i for combo in combinations(range(n), k) for i in combo), dtype=np.intp)
    return flat.reshape(-1, k)


@dataclass(frozen=True)
class Layer:
    """One layer: the sites of active orbit `index` (positions `sl`) that carry `code`."""

    index: int
    sl: slice
    code: int


@dataclass(frozen=True)
class Block:
    """A block of canonical configurations with their multiplicities."""

    occupancy: np.ndarray
    multiplicity: np.ndarray


class Enumerator:
    """Symmetry-distinct configurations of the active sites under a permutation group.

    group: (n_ops, n_active) permutations of occupancy positions (identity included);
    orbit_slices: the positions of each active orbit in the occupancy vector.
    """

    def __init__(self, group: np.ndarray, orbit_slices: Sequence[slice]) -> None:
        self.group = np.asarray(group)
        self.slices = list(orbit_slices)
        self.n_active = self.group.shape[1]
        self.layers = [
            Layer(k, sl, code) for k, sl in enumerate(self.slices) for code in (VACANCY, DOPANT)
        ]
        self._inverse = np.argsort(self.group, axis=1)
        self._tables = [self._byte_tables(sl) for sl in self.slices]
        self._bits = [
            1 << np.arange(sl.stop - sl.start - 1, -1, -1, dtype=np.int64) for sl in self.slices
        ]

    @classmethod
    def from_parent(cls, parent: Parent) -> Enumerator:
        """The enumerator of a parent's active sites under its full space group."""
        return cls(parent.group, list(parent.orbit_slices.values()))

    @property
    def order(self) -> int:
        """|G|, the number of symmetry operations."""
        return len(self.group)

    # ------------------------------------------------------------------ counting
    def _pairs(self, composition: Sequence[int]) -> list[tuple[int, int]]:
        comp = [int(c) for c in composition]
        if len(comp) != 2 * len(self.slices):
            raise EnumerationError(
                f"composition {tuple(comp)} needs {2 * len(self.slices)} counts "
                "(vacancies, dopants) per active orbit"
            )
        pairs = list(zip(comp[::2], comp[1::2], strict=True))
        for sl, (v, m) in zip(self.slices, pairs, strict=True):
            if v < 0 or m < 0 or v + m > sl.stop - sl.start:
                raise EnumerationError(
                    f"composition {tuple(comp)}: {v} vacancies + {m} dopants do not fit on "
                    f"an orbit of {sl.stop - sl.start} sites"
                )
        return pairs

    def count(self, composition: Sequence[int]) -> int:
        """Number of symmetry-distinct configurations (Burnside), without enumerating."""
        return burnside_count(self.cycle_index, self._pairs(composition))

    @cached_property
    def cycle_index(self) -> CycleIndex:
        """The group's cycle index on the active orbits (`qcapprox.symmetry.cycle_index`)."""
        return cycle_index(self.group, self.slices)

    def labelled(self, composition: Sequence[int]) -> int:
        """Number of labelled decorations of a composition (sum of the multiplicities)."""
        sizes = [sl.stop - sl.start for sl in self.slices]
        return labelled_count(sizes, self._pairs(composition))

    # ------------------------------------------------------------------ masks
    def _byte_tables(self, sl: slice) -> np.ndarray:
        """T[g, b, v]: image under g of the mask whose byte b is v (other bytes zero)."""
        n = sl.stop - sl.start
        local = self.group[:, sl] - sl.start
        n_bytes = (n + 7) // 8
        values = np.arange(256)
        tables = np.zeros((self.order, n_bytes, 256), dtype=np.int64)
        for b in range(n_bytes):
            for bit in range(8):
                j = n - 1 - (8 * b + bit)  # site carried by this bit
                if j < 0:
                    break
                image_bit = (1 << (n - 1 - local[:, j])).astype(np.int64)
                has = ((values >> bit) & 1).astype(bool)
                tables[:, b, has] |= image_bit[:, None]
        return tables

    def _images(self, k: int, masks: np.ndarray, ops: np.ndarray) -> np.ndarray:
        """(len(ops), len(masks)) images of masks of orbit k under the operations."""
        tables = self._tables[k][ops]
        out = np.zeros((len(ops), len(masks)), dtype=np.int64)
        for b in range(tables.shape[1]):
            out |= tables[:, b, (masks >> (8 * b)) & 255]
        return out

    # ------------------------------------------------------------------ enumeration
    def enumerate(self, composition: Sequence[int]) -> Iterator[Block]:
        """Yield blocks of canonical configurations of a composition with multiplicities."""
        counts = [c for pair in self._pairs(composition) for c in pair]
        root = np.zeros((1, self.n_active), dtype=np.uint8)
        ops = np.arange(self.order)
        for occ, stab in self._walk(root, ops, counts, 0):
            yield Block(occ, (self.order // stab).astype(np.int64))

    def _last(self, counts: Sequence[int], i: int) -> bool:
        return not any(counts[i + 1 :])

    def _free(self, batch: np.ndarray, layer: Layer) -> np.ndarray:
        """Local positions of the host sites of the layer's orbit, one row per config."""
        free = batch[:, layer.sl] == 0
        n_free = int(free[0].sum())
        return np.argsort(~free, axis=1, kind="stable")[:, :n_free]

    def _walk(
        self, occ: np.ndarray, ops: np.ndarray, counts: Sequence[int], i: int
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Canonical completions of one partial configuration `occ` (1, n) with stabilizer ops."""
        while i < len(self.layers) and counts[i] == 0:
            i += 1
        if i == len(self.layers):
            yield occ, np.array([len(ops)])
            return
        if len(ops) == 1:
            yield from self._product(occ, counts, i)
            return
        layer = self.layers[i]
        free = self._free(occ, layer)[0]
        combos = _combinations(len(free), counts[i])
        bits = self._bits[layer.index]
        step = max(1, BLOCK // len(ops))
        for start in range(0, len(combos), step):
            chunk = free[combos[start : start + step]]
            masks = bits[chunk].sum(axis=1)
            images = self._images(layer.index, masks, ops)
            keep = (images <= masks).all(axis=0)
            chunk, masks, images = chunk[keep], masks[keep], images[:, keep]
            fixed = images == masks
            stab = fixed.sum(axis=0)
            batch = np.repeat(occ, len(chunk), axis=0)
            batch[np.arange(len(chunk))[:, None], chunk + layer.sl.start] = layer.code
            if self._last(counts, i):
                yield batch, stab
                continue
            trivial = stab == 1
            if trivial.any():
                yield from self._product(batch[trivial], counts, i + 1)
            for r in np.flatnonzero(~trivial):
                yield from self._walk(batch[r : r + 1], ops[fixed[:, r]], counts, i + 1)

    def _product(
        self, batch: np.ndarray, counts: Sequence[int], i: int
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """All completions of partial configurations whose stabilizer is trivial."""
        while i < len(self.layers) and counts[i] == 0:
            i += 1
        if i == len(self.layers):
            yield batch, np.ones(len(batch), dtype=np.int64)
            return
        layer = self.layers[i]
        free = self._free(batch, layer)
        combos = _combinations(free.shape[1], counts[i])
        rows_per = max(1, BLOCK // len(combos))
        for c0 in range(0, len(combos), BLOCK):
            part = combos[c0 : c0 + BLOCK]
            for b0 in range(0, len(batch), rows_per):
                sub, sub_free = batch[b0 : b0 + rows_per], free[b0 : b0 + rows_per]
                new = np.repeat(sub, len(part), axis=0)
                cols = sub_free[:, part].reshape(len(new), -1) + layer.sl.start
                new[np.arange(len(new))[:, None], cols] = layer.code
                yield from self._product(new, counts, i + 1)

    # ------------------------------------------------------------------ canonical forms
    def ids(self, occupancy: np.ndarray) -> np.ndarray:
        """Base-3 codes sum_i occ[i] 3^(n-1-i) of occupancies (the stable ids).

        Computed as two float64 products of at most 18 digits each (exact below 2^53).
        """
        occ = np.atleast_2d(occupancy).astype(np.float64)
        split = max(0, self.n_active - 18)
        low_digits = self.n_active - split
        high_weights = 3.0 ** np.arange(split - 1, -1, -1)
        low_weights = 3.0 ** np.arange(low_digits - 1, -1, -1)
        high = (occ[:, :split] @ high_weights).astype(np.int64) * 3**low_digits
        low = (occ[:, split:] @ low_weights).astype(np.int64)
        return high + low

    def config_ids(self, occupancy: np.ndarray) -> np.ndarray:
        """The stable ids of any occupancies: the ids of their canonical representatives
        (what a store holds for their configurations)."""
        return self.ids(self.canonicalize(occupancy)[0])

    def canonicalize(self, occupancy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Canonical representatives and multiplicities of any occupancies (n, n_active).

        Independent of `enumerate`: the layer masks of all |G| images are formed and the
        image with the lexicographically largest masks is taken; the multiplicity is
        |G| / #{g : g.c = c}.
        """
        occ = np.atleast_2d(np.asarray(occupancy, dtype=np.uint8))
        canonical = np.empty_like(occ)
        multiplicity = np.empty(len(occ), dtype=np.int64)
        step = max(1, BLOCK // (4 * self.order))
        for start in range(0, len(occ), step):
            part = occ[start : start + step]
            canonical[start : start + step], multiplicity[start : start + step] = (
                self._canonical_part(part)
            )
        return canonical, multiplicity

    def _canonical_part(self, occ: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ops = np.arange(self.order)
        own = np.stack([self._masks(occ, layer) for layer in self.layers], axis=-1)
        keys = np.stack(
            [self._images(layer.index, own[:, j], ops) for j, layer in enumerate(self.layers)],
            axis=-1,
        )  # (G, n, n_layers)
        alive = np.ones(keys.shape[:2], dtype=bool)
        for col in range(keys.shape[-1]):
            vals = np.where(alive, keys[..., col], -1)
            alive &= vals == vals.max(axis=0, keepdims=True)
        best = alive.argmax(axis=0)
        canonical = occ[np.arange(len(occ))[:, None], self._inverse[best]]
        stabilizer = (keys == own[None]).all(axis=-1).sum(axis=0)
        return canonical, self.order // stabilizer

    def _masks(self, occ: np.ndarray, layer: Layer) -> np.ndarray:
        """Layer masks of occupancies (float64 product, exact for orbits below 53 sites)."""
        indicator = (occ[:, layer.sl] == layer.code).astype(np.float64)
        return (indicator @ self._bits[layer.index].astype(np.float64)).astype(np.int64)
