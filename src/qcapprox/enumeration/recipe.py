"""Enumeration recipes (TOML): which compositions, and all or random configurations of each.

A recipe names, per active orbit, the allowed species ("Sc", "M", "vacancy") and the step
of the defect counts; the grid compositions are all (vacancies, dopants) counts per orbit
that are multiples of the step and fit on the orbit, kept when the Sc fraction
x_Sc = n_Sc / (n_Sc + n_M) of the decorated cell (vacancies are absent atoms) is strictly
above the dopant's bound. An optional `[test]` table adds the study's test set: one
realization of every composition with defects on the test orbit only that is *off* the grid
(on A4 with step 2: an odd number of vacancies or of M, 63 compositions), with no Sc-fraction
bound. Example (the study's Table 1 design):

    name = "training"
    mode = "random"            # "all": every distinct configuration; "random": realizations
    seed = 2024
    realizations = 1           # per composition
    [orbits.A4]
    species = ["Sc", "M", "vacancy"]
    step = 2
    max_defects = 12           # optional: at most this many vacancies + dopants
    [sc_fraction_above]
    default = "2/3"
    Ir = "11/15"
    [test]
    orbit = "A4"
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from itertools import product
from pathlib import Path

import tomllib

from qcapprox.errors import RecipeError
from qcapprox.parent import Parent

SPECIES = ("Sc", "M", "vacancy")


@dataclass(frozen=True)
class OrbitRule:
    """Allowed species and count step on one active orbit."""

    species: tuple[str, ...]
    step: int = 1
    max_defects: int | None = None


@dataclass(frozen=True)
class Task:
    """One unit of work: a composition, how many configurations (None = all) and whether
    it belongs to the test set of the design."""

    composition: tuple[int, ...]
    count: int | None
    test: bool = False


@dataclass(frozen=True)
class Recipe:
    """A parsed recipe; `text` is the TOML source kept as provenance."""

    name: str
    text: str
    mode: str
    orbits: dict[str, OrbitRule]
    seed: int = 0
    realizations: int = 1
    sc_fraction_above: dict[str, Fraction] = field(default_factory=dict)
    test_orbit: str | None = None
    description: str = ""

    @classmethod
    def load(cls, path: str | Path) -> Recipe:
        """Read and check a recipe file."""
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as err:
            raise RecipeError(f"{path}: cannot read the recipe ({err.strerror})") from err
        return cls.parse(text, source=str(path))

    @classmethod
    def parse(cls, text: str, source: str = "recipe") -> Recipe:
        """Parse recipe TOML text."""
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise RecipeError(f"{source}: not valid TOML ({err})") from err
        mode = raw.get("mode", "all")
        if mode not in ("all", "random"):
            raise RecipeError(f"{source}: mode must be 'all' or 'random', not {mode!r}")
        if not isinstance(raw.get("orbits"), dict) or not raw["orbits"]:
            raise RecipeError(f"{source}: needs an [orbits.<name>] table per active orbit")
        orbits = {}
        for name, rule in raw["orbits"].items():
            species = tuple(rule.get("species", ["Sc"]))
            unknown = set(species) - set(SPECIES)
            if unknown or "Sc" not in species:
                raise RecipeError(
                    f"{source}: orbits.{name}.species must include 'Sc' and use only "
                    f"{SPECIES}; got {list(species)}"
                )
            step = int(rule.get("step", 1))
            if step < 1:
                raise RecipeError(f"{source}: orbits.{name}.step must be >= 1")
            max_defects = rule.get("max_defects")
            orbits[name] = OrbitRule(
                species, step, None if max_defects is None else int(max_defects)
            )
        if "min_sc_fraction" in raw:
            raise RecipeError(
                f"{source}: [min_sc_fraction] is now [sc_fraction_above] (a strict bound)"
            )
        try:
            fractions = {k: Fraction(str(v)) for k, v in raw.get("sc_fraction_above", {}).items()}
        except ValueError as err:
            raise RecipeError(f"{source}: sc_fraction_above: {err}") from err
        test = raw.get("test", {})
        test_orbit = test.get("orbit")
        if test and test_orbit not in orbits:
            raise RecipeError(
                f"{source}: test.orbit must name one of the recipe's orbits {sorted(orbits)}, "
                f"not {test_orbit!r}"
            )
        return cls(
            name=raw.get("name", Path(source).stem),
            text=text,
            mode=mode,
            orbits=orbits,
            seed=int(raw.get("seed", 0)),
            realizations=int(raw.get("realizations", 1)),
            sc_fraction_above=fractions,
            test_orbit=test_orbit,
            description=raw.get("description", ""),
        )

    def fraction_bound(self, dopant: str) -> Fraction:
        """The Sc fraction a grid composition must exceed, for a dopant (its own entry, else
        `default`, else none: -1)."""
        default = self.sc_fraction_above.get("default", Fraction(-1))
        return self.sc_fraction_above.get(dopant, default)

    def compositions(self, parent: Parent) -> list[tuple[int, ...]]:
        """All compositions (A4 vac, A4 M, A5 vac, A5 M) of the recipe, sorted."""
        unknown = set(self.orbits) - set(parent.active_orbits)
        if unknown:
            raise RecipeError(
                f"recipe {self.name}: orbits {sorted(unknown)} are not active orbits of the "
                f"parent ({list(parent.active_orbits)})"
            )
        per_orbit = []
        for name in parent.active_orbits:
            size = len(parent.orbits[name])
            rule = self.orbits.get(name, OrbitRule(("Sc",)))
            vacs = range(0, size + 1, rule.step) if "vacancy" in rule.species else [0]
            dops = range(0, size + 1, rule.step) if "M" in rule.species else [0]
            most = size if rule.max_defects is None else min(size, rule.max_defects)
            per_orbit.append([(v, m) for v in vacs for m in dops if v + m <= most])
        n_host0, n_dop0 = (int(c[0]) for c in parent.formula_counts([0] * parent.n_active))
        bound = self.fraction_bound(parent.dopant)
        out = []
        for pairs in product(*per_orbit):
            comp = tuple(c for pair in pairs for c in pair)
            n_vac, n_dop = sum(comp[::2]), sum(comp[1::2])
            n_host = n_host0 - n_vac - n_dop
            if n_host > 0 and Fraction(n_host, n_host + n_dop0 + n_dop) > bound:
                out.append(comp)
        return sorted(out)

    def test_compositions(self, parent: Parent) -> list[tuple[int, ...]]:
        """The test compositions: defects on the test orbit only, off the step grid, sorted."""
        if self.test_orbit is None:
            return []
        k = list(parent.active_orbits).index(self.test_orbit)
        size, rule = len(parent.orbits[self.test_orbit]), self.orbits[self.test_orbit]
        vacs = range(size + 1) if "vacancy" in rule.species else [0]
        dops = range(size + 1) if "M" in rule.species else [0]
        out = []
        for v, m in product(vacs, dops):
            if v + m <= size and (v % rule.step or m % rule.step):
                comp = [0] * (2 * len(parent.active_orbits))
                comp[2 * k : 2 * k + 2] = v, m
                out.append(tuple(comp))
        return sorted(out)

    def tasks(self, parent: Parent) -> list[Task]:
        """The recipe's work list, in a fixed order: grid compositions, then test ones."""
        count = None if self.mode == "all" else self.realizations
        return [Task(c, count) for c in self.compositions(parent)] + [
            Task(c, count, test=True) for c in self.test_compositions(parent)
        ]
