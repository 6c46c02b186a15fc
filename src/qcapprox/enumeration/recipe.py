"""Enumeration recipes (TOML): which compositions, and all or random configurations of each.

A recipe names, per active orbit, the allowed species ("Sc", "M", "vacancy") and the step
of the defect counts; compositions are all (vacancies, dopants) counts per orbit that are
multiples of the step and fit on the orbit, filtered by the minimum Sc fraction
x_Sc = n_Sc / (n_Sc + n_M) of the decorated cell (vacancies are absent atoms). Example:

    name = "training"
    mode = "random"            # "all": every distinct configuration; "random": realizations
    seed = 2024
    realizations = 1           # per composition
    pristine_realizations = 4  # per composition without defects on `pristine_orbit`
    pristine_orbit = "A5"
    [orbits.A4]
    species = ["Sc", "M", "vacancy"]
    step = 2
    max_defects = 12           # optional: at most this many vacancies + dopants
    [min_sc_fraction]
    default = "2/3"
    Ir = "11/15"
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
    """One unit of work: a composition and how many configurations (None = all)."""

    composition: tuple[int, ...]
    count: int | None


@dataclass(frozen=True)
class Recipe:
    """A parsed recipe; `text` is the TOML source kept as provenance."""

    name: str
    text: str
    mode: str
    orbits: dict[str, OrbitRule]
    seed: int = 0
    realizations: int = 1
    pristine_realizations: int = 1
    pristine_orbit: str | None = None
    min_sc_fraction: dict[str, Fraction] = field(default_factory=dict)
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
        try:
            fractions = {k: Fraction(str(v)) for k, v in raw.get("min_sc_fraction", {}).items()}
        except ValueError as err:
            raise RecipeError(f"{source}: min_sc_fraction: {err}") from err
        return cls(
            name=raw.get("name", Path(source).stem),
            text=text,
            mode=mode,
            orbits=orbits,
            seed=int(raw.get("seed", 0)),
            realizations=int(raw.get("realizations", 1)),
            pristine_realizations=int(raw.get("pristine_realizations", 1)),
            pristine_orbit=raw.get("pristine_orbit"),
            min_sc_fraction=fractions,
            description=raw.get("description", ""),
        )

    def min_fraction(self, dopant: str) -> Fraction:
        """The minimum Sc fraction for a dopant (its own entry, else `default`, else 0)."""
        return self.min_sc_fraction.get(dopant, self.min_sc_fraction.get("default", Fraction(0)))

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
        limit = self.min_fraction(parent.dopant)
        out = []
        for pairs in product(*per_orbit):
            comp = tuple(c for pair in pairs for c in pair)
            n_vac, n_dop = sum(comp[::2]), sum(comp[1::2])
            n_host = n_host0 - n_vac - n_dop
            if n_host > 0 and Fraction(n_host, n_host + n_dop0 + n_dop) >= limit:
                out.append(comp)
        return sorted(out)

    def tasks(self, parent: Parent) -> list[Task]:
        """The recipe's work list, in a fixed order."""
        if self.mode == "all":
            return [Task(c, None) for c in self.compositions(parent)]
        names = list(parent.active_orbits)
        pristine = names.index(self.pristine_orbit) if self.pristine_orbit else None
        tasks = []
        for comp in self.compositions(parent):
            is_pristine = pristine is not None and comp[2 * pristine] + comp[2 * pristine + 1] == 0
            n = self.pristine_realizations if is_pristine else self.realizations
            tasks.append(Task(comp, max(n, self.realizations)))
        return tasks
