"""Enumeration recipes (TOML): which compositions, and all or random configurations of each.

A recipe names, per active orbit, the allowed species ("Sc", "M", "vacancy") and the step
of the defect counts; the grid compositions are all (vacancies, dopants) counts per orbit
that are multiples of the step and fit on the orbit, kept when the Sc fraction
x_Sc = n_Sc / (n_Sc + n_M) of the decorated cell (vacancies are absent atoms) is strictly
above the dopant's bound. An optional `[test]` table adds the study's test set: one
realization of every composition with defects on the test orbit only that is *off* the grid
(on A4 with step 2: an odd number of vacancies or of M, 63 compositions), with no Sc-fraction
bound. A recipe is checked when it is read (known keys only, types, ranges, species,
element symbols) and against the parent when its tasks are made (known orbits, at least one
composition), so a bad one fails before any work. Example (the study's Table 1 design):

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

import tomllib
from dataclasses import dataclass, field
from fractions import Fraction
from itertools import product
from pathlib import Path

from ase.data import chemical_symbols

from qcapprox.errors import RecipeError
from qcapprox.parent import Parent

SPECIES = ("Sc", "M", "vacancy")
RECIPE_KEYS = (
    "name", "description", "mode", "seed", "realizations", "orbits", "sc_fraction_above", "test",
    "compositions",
)  # fmt: skip
ORBIT_KEYS = ("species", "step", "max_defects")
RETIRED = {
    "min_sc_fraction": "it is now [sc_fraction_above] (a strict bound)",
    "pristine_realizations": "the test set is now the [test] table (enumeration/training.toml)",
    "pristine_orbit": "the test set is now the [test] table (enumeration/training.toml)",
}


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
    listed: tuple[tuple[int, ...], ...] | None = None  # `compositions`, replacing the grid

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
        """Parse recipe TOML text and check it against the recipe schema (keys, types,
        ranges, species); RecipeError names the source and the key at fault."""
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise RecipeError(f"{source}: not valid TOML ({err})") from err
        _known_keys(source, "", raw, RECIPE_KEYS)
        mode = raw.get("mode", "all")
        if mode not in ("all", "random"):
            raise RecipeError(f"{source}: mode must be 'all' or 'random', not {mode!r}")
        orbit_tables = _table(source, "orbits", raw.get("orbits", {}))
        if not orbit_tables:
            raise RecipeError(f"{source}: needs an [orbits.<name>] table per active orbit")
        orbits = {name: _orbit_rule(source, name, rule) for name, rule in orbit_tables.items()}
        bounds = _table(source, "sc_fraction_above", raw.get("sc_fraction_above", {}))
        fractions = {}
        for key, value in bounds.items():
            if key != "default" and key not in chemical_symbols[1:]:
                raise RecipeError(
                    f"{source}: sc_fraction_above.{key}: a key is 'default' or an element "
                    f"symbol such as Pt, not {key!r}"
                )
            fractions[key] = _fraction(source, f"sc_fraction_above.{key}", value)
        test = _table(source, "test", raw.get("test", {}))
        _known_keys(source, "test.", test, ("orbit",))
        test_orbit = test.get("orbit")
        if test and test_orbit not in orbits:
            raise RecipeError(
                f"{source}: test.orbit must name one of the recipe's orbits {sorted(orbits)}, "
                f"not {test_orbit!r}"
            )
        listed = raw.get("compositions")
        if listed is not None:
            listed = _listed(source, listed)
            if test_orbit is not None:
                raise RecipeError(f"{source}: a recipe with `compositions` has no [test] table")
        return cls(
            name=_string(source, "name", raw.get("name", Path(source).stem)),
            text=text,
            mode=mode,
            orbits=orbits,
            seed=_integer(source, "seed", raw.get("seed", 0), 0),
            realizations=_integer(source, "realizations", raw.get("realizations", 1), 1),
            sc_fraction_above=fractions,
            test_orbit=test_orbit,
            description=_string(source, "description", raw.get("description", "")),
            listed=listed,
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
        if self.listed is not None:
            return sorted(self._check_listed(parent))
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

    def _check_listed(self, parent: Parent) -> list[tuple[int, ...]]:
        """The listed compositions, each checked to fit the parent's orbits and species."""
        for comp in self.listed or ():
            if len(comp) != 2 * len(parent.active_orbits):
                raise RecipeError(
                    f"recipe {self.name}: composition {list(comp)} needs "
                    f"{2 * len(parent.active_orbits)} counts (vacancies, M per active orbit)"
                )
            for k, name in enumerate(parent.active_orbits):
                v, m = comp[2 * k : 2 * k + 2]
                species = self.orbits.get(name, OrbitRule(("Sc",))).species
                if (v and "vacancy" not in species) or (m and "M" not in species):
                    raise RecipeError(
                        f"recipe {self.name}: composition {list(comp)} puts defects on {name}, "
                        f"whose species are {list(species)}"
                    )
                if v + m > len(parent.orbits[name]):
                    raise RecipeError(
                        f"recipe {self.name}: composition {list(comp)} puts {v + m} defects on "
                        f"{name}, which has {len(parent.orbits[name])} sites"
                    )
        return list(self.listed or ())

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
        tasks = [Task(c, count) for c in self.compositions(parent)] + [
            Task(c, count, test=True) for c in self.test_compositions(parent)
        ]
        if not tasks:
            n_host, n_dop = (int(c[0]) for c in parent.formula_counts([0] * parent.n_active))
            raise RecipeError(
                f"recipe {self.name}: no composition of the Sc60{parent.dopant}13 parent has "
                f"a Sc fraction above {self.fraction_bound(parent.dopant)} (the parent's is "
                f"{Fraction(n_host, n_host + n_dop)} and defects only lower it): nothing to "
                "enumerate; lower the bound in [sc_fraction_above]"
            )
        return tasks


def _known_keys(source: str, where: str, table: dict, known: tuple[str, ...]) -> None:
    """Refuse keys a recipe table does not define (retired keys say what replaced them)."""
    for key in table:
        if key in RETIRED:
            raise RecipeError(f"{source}: {where}{key} is no longer a recipe key: {RETIRED[key]}")
        if key not in known:
            raise RecipeError(f"{source}: unknown key {where}{key} (known: {', '.join(known)})")


def _table(source: str, key: str, value: object) -> dict:
    """A TOML table, or a RecipeError naming the key."""
    if not isinstance(value, dict):
        raise RecipeError(f"{source}: {key} must be a table ([{key}]), not {value!r}")
    return value


def _string(source: str, key: str, value: object) -> str:
    """A TOML string, or a RecipeError naming the key."""
    if not isinstance(value, str):
        raise RecipeError(f"{source}: {key} must be a string, not {value!r}")
    return value


def _integer(source: str, key: str, value: object, low: int) -> int:
    """A TOML integer of at least `low` (booleans are not integers here)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise RecipeError(f"{source}: {key} must be an integer >= {low}, not {value!r}")
    return value


def _fraction(source: str, key: str, value: object) -> Fraction:
    """A Sc-fraction bound in [0, 1): a string such as "2/3" or a number."""
    try:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ValueError
        fraction = Fraction(str(value))
    except (ValueError, ZeroDivisionError):
        fraction = None
    if fraction is None or not 0 <= fraction < 1:
        raise RecipeError(
            f'{source}: {key} must be a fraction in [0, 1) such as "2/3", not {value!r}'
        )
    return fraction


def _listed(source: str, value: object) -> tuple[tuple[int, ...], ...]:
    """The `compositions` list: distinct lists of non-negative integer counts."""
    ok = (
        isinstance(value, list)
        and value
        and all(
            isinstance(c, list)
            and c
            and all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in c)
            for c in value
        )
    )
    if not ok:
        raise RecipeError(
            f"{source}: compositions must be a list of count lists such as [[5, 0, 0, 0]], "
            f"not {value!r}"
        )
    listed = tuple(tuple(c) for c in value)
    if len(set(listed)) != len(listed):
        raise RecipeError(f"{source}: compositions lists a composition twice")
    return listed


def _orbit_rule(source: str, name: str, rule: object) -> OrbitRule:
    """The rule of one [orbits.<name>] table."""
    where = f"orbits.{name}"
    rule = _table(source, where, rule)
    _known_keys(source, f"{where}.", rule, ORBIT_KEYS)
    species = rule.get("species", ["Sc"])
    if (
        not isinstance(species, list)
        or not set(species) <= set(SPECIES)
        or "Sc" not in species
        or len(set(species)) != len(species)
    ):
        raise RecipeError(
            f"{source}: {where}.species must include 'Sc' and use only {list(SPECIES)}, each "
            f"once; got {species!r}"
        )
    max_defects = rule.get("max_defects")
    return OrbitRule(
        tuple(species),
        _integer(source, f"{where}.step", rule.get("step", 1), 1),
        None if max_defects is None else _integer(source, f"{where}.max_defects", max_defects, 0),
    )
