"""The configuration benchmark: does a family rank configurations *within* a composition?

Held out: every symmetry-distinct configuration of 3, 5 and 7 A4 vacancies (11 + 30 + 30;
enumeration/configurations.toml), relaxed with the labeler's settings (`make depth`:
data/benchmark/sc60<m>13-configurations.h5; Pt from the parent geometry, the others from
Pt's relaxed geometries). These are Table 1 test compositions, so no family has trained on
them. Per family (backbone x training set-up) and limit: the within-composition Spearman
and Kendall against the CHGNet relaxed labels (a stand-in for DFT), whether the truly
lowest configuration of each composition is in the family's 5 lowest, the RMSE and the
mean signed error (eV/atom). What a label is the truth of (`qcapprox.mapping`): `--truth
start` (the study's convention: the configuration the relaxation started from), `kept`
(only the held-out rows that kept their identity, whose label is unambiguously theirs) or
`relaxed-into` (each configuration some held-out relaxation ended in, with the lowest
energy that landed on it, grouped by that configuration's composition).

Usage: .venv/bin/python benchmarks/configurations.py [--dopants Pt,Rh,Pd,Ir]
    [--backbones rf,hgb,rf-cf,hgb-cf,ce,allegro,allegro-sequential,allegro-pretrained]
    [--setups relaxed,relaxed+kept,relaxed+relaxed-into,relaxed+depth] [--limits all]
    [--truth start|kept|relaxed-into] [-o benchmarks/results/configurations.json]
    .venv/bin/python benchmarks/configurations.py --summary   # the results as markdown
Families not trained yet are trained into the model cache (the tabular ones, seconds to a
minute per limit) or skipped (Allegro members are only read from the registry).
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np

from qcapprox.analysis import configuration_scores, finite_mean
from qcapprox.errors import QcapproxError
from qcapprox.mapping import apply_policy
from qcapprox.models import BACKBONES, backbone
from qcapprox.paths import DATA_DIR
from qcapprox.store import Store
from qcapprox.words import LIMITS, family_key

OUT = Path(__file__).parent / "results" / "configurations.json"
TABULAR = ("rf", "hgb", "rf-cf", "hgb-cf", "ce")
ALLEGRO = ("allegro", "allegro-sequential", "allegro-pretrained")


def held_out(dopant: str) -> Path:
    """The benchmark store of a dopant (`make depth`)."""
    return DATA_DIR / "benchmark" / f"sc60{dopant.lower()}13-configurations.h5"


def truth_of(store: Store, mode: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(occupancies, true energies above the hull, composition groups) of the held-out
    configurations under a truth mode (module docstring)."""
    labels = store.label_set("relaxed")
    usable = labels.usable & (labels.mapping.kept if mode == "kept" else True)
    policy = "relaxed-into" if mode == "relaxed-into" else "start"
    _, occupancy, truth = apply_policy(
        policy, store.ids, store.occupancy, labels.e_above_hull, usable, labels.mapping,
        store.path,
    )  # fmt: skip
    composition = np.atleast_2d(store.parent.composition(occupancy))
    groups = np.array(["-".join(map(str, c)) for c in composition])
    return occupancy, truth, groups


def score_family(
    store: Store,
    held: tuple[np.ndarray, np.ndarray, np.ndarray],
    name: str,
    setup: str,
    limits: list[int],
) -> dict | None:
    """Scores of one family at every limit; None if a member cannot be had."""
    scores, seconds = {}, 0.0
    for limit in limits:
        start = time.perf_counter()
        try:
            member = backbone(name).load(store.parent.dopant, limit, setup)
        except QcapproxError as err:
            print(f"  {family_key(name, setup)} limit {limit}: skipped ({err})")
            return None
        occupancy, truth, groups = held
        predicted = member.predict(occupancy)
        seconds += time.perf_counter() - start
        scores[limit] = configuration_scores(predicted, truth, groups)
        scores[limit]["test_rmse"] = member.card.get("test_rmse")
    return {"family": family_key(name, setup), "seconds": round(seconds, 1), "limits": scores}


def summary(results: dict) -> str:
    """The results as markdown: per dopant and truth, one row per family, with the mean
    over its limits and the limit-24 figures."""
    lines = []
    for key, entry in results.items():
        held = entry["held_out"]
        spread = np.array(held.get("end_spread", []))
        ends = (
            f"; {spread.size} configurations end two or more relaxations, labels up to "
            f"{1000 * spread.max():.1f} meV/atom apart"
            if spread.size
            else ""
        )
        lines += [
            f"**{key}** ({held['n']} held-out configurations; "
            f"{held['relaxation_map']['kept']:.0%} kept their identity{ends}):",
            "",
            "| family | limits | Spearman, mean over limits | Spearman at 24 | Kendall at 24 | "
            "truly lowest in top 5 at 24 | distinct values at 24 | RMSE at 24 | bias at 24 |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for family, found in entry.items():
            if family == "held_out":
                continue
            limits = found["limits"]
            last = limits[max(limits, key=int)]
            mean = finite_mean(np.array([v["spearman"] for v in limits.values()], dtype=float))
            lines.append(
                f"| {family} | {len(limits)} | {mean:+.2f} | {last['spearman']:+.2f} | "
                f"{last['kendall']:+.2f} | "
                f"{last['lowest_in_top']}/{len(last['groups'])} | "
                f"{sum(g['distinct_predictions'] for g in last['groups'].values())} | "
                f"{last['rmse']:.4f} | "
                f"{last['mean_signed_error']:+.4f} |"
            )
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--dopants", default="Pt,Rh,Pd,Ir")
    args.add_argument("--backbones", default=",".join(TABULAR + ALLEGRO))
    args.add_argument("--setups", default="relaxed,relaxed+kept,relaxed+relaxed-into")
    args.add_argument("--limits", default="all")
    args.add_argument("--truth", choices=("start", "kept", "relaxed-into"), default="start")
    args.add_argument("-o", "--out", type=Path, default=OUT)
    args.add_argument("--summary", action="store_true", help="print the results as markdown")
    opts = args.parse_args()
    if opts.summary:
        print(summary(json.loads(opts.out.read_text())))
        return
    limits = list(LIMITS) if opts.limits == "all" else [int(x) for x in opts.limits.split(",")]
    unknown = set(opts.backbones.split(",")) - set(BACKBONES)
    if unknown:
        raise SystemExit(f"unknown backbones {sorted(unknown)}")
    results = json.loads(opts.out.read_text()) if opts.out.exists() else {}
    for dopant in opts.dopants.split(","):
        path = held_out(dopant)
        if not path.exists() or "relaxed" not in Store(path).labels:
            print(f"{dopant}: {path} has no relaxed labels yet (`make depth`): skipped")
            continue
        store = Store(path)
        labels = store.label_set("relaxed")
        held = truth_of(store, opts.truth)
        truth = held[1]
        shares = labels.mapping.shares(labels.usable)
        kept = f"{shares['kept']:.0%} kept their identity in the relaxation"
        print(f"{dopant}: {len(truth)} held-out configurations ({opts.truth} truth; {kept})",
              flush=True)  # fmt: skip
        entry = results.setdefault(f"{dopant}/{opts.truth}", {})
        spread = labels.mapping.end_spread(labels.e_above_hull, labels.usable)
        entry["held_out"] = {"n": len(truth), "relaxation_map": shares,
                             "truth_range": [float(truth.min()), float(truth.max())],
                             "end_spread": [float(x) for x in spread]}  # fmt: skip
        for name in opts.backbones.split(","):
            for setup in opts.setups.split(","):
                if name in ALLEGRO and setup != "relaxed":
                    continue
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    found = score_family(store, held, name, setup, limits)
                if found is None:
                    continue
                entry[found["family"]] = found
                _write(opts.out, results)
                s24 = found["limits"][limits[-1]]
                mean_s = finite_mean(np.array([v["spearman"] for v in found["limits"].values()]))
                print(f"  {found['family']:28s} Spearman mean {mean_s:+.2f} "
                      f"(limit {limits[-1]}: {s24['spearman']:+.2f}), lowest in top 5: "
                      f"{s24['lowest_in_top']}/{len(s24['groups'])}, RMSE {s24['rmse']:.4f}, "
                      f"bias {s24['mean_signed_error']:+.4f} eV/atom", flush=True)  # fmt: skip


def _write(out: Path, results: dict) -> None:
    """The results so far, written atomically (a long run keeps every finished family)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(results, indent=1, default=float) + "\n")
    tmp.replace(out)


if __name__ == "__main__":
    main()
