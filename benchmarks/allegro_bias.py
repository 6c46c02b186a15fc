"""The Allegro families' bias on the A4-only test set, per limit, by preset.

The 63 test structures of the study's design have defects on A4 only (A5 pristine). The
mean signed error (prediction - label, meV/atom, `qcapprox.analysis.mean_signed_error`)
of every member on them is read from its card: the shipped members (bundled registry,
`fast` preset) beside members trained with another preset into a registry of their own
(`--preset balanced`: the A5-pristine training rows repeated to a fifth of each stage's
rows, `Preset.pristine_share`). Missing members of that registry are trained first
(finished ones are kept: the run resumes), two at a time with one thread each.

    python benchmarks/allegro_bias.py --dopant Pt --variant ordinary --preset balanced \
        --registry ~/.local/share/qcapprox/balanced

Writes benchmarks/results/allegro-bias-<dopant>-<variant>.json and prints the markdown
table of docs/configurations.md from every such file of the variant: bias / test RMSE /
validation RMSE (meV/atom) per limit and preset (``--summary`` prints it alone).
Labels: CHGNet relaxations, a stand-in for DFT.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

from qcapprox.analysis import mean_signed_error
from qcapprox.models.allegro.inference import registry_dir
from qcapprox.models.allegro.training import train_allegro_family
from qcapprox.models.base import read_card
from qcapprox.paths import REGISTRY_DIR
from qcapprox.settings import THREADS_ENV
from qcapprox.words import LIMITS

RESULTS = Path(__file__).parent / "results"


def figures(variant: str, dopant: str, registry: Path) -> dict[int, dict]:
    """Per limit with a card: bias, test and validation RMSE (meV/atom), preset, epochs."""
    out = {}
    for limit in LIMITS:
        card = read_card(registry_dir(variant, dopant, limit, registry))
        if card is None:
            continue
        pred, target = np.array(card["test_predictions"]), np.array(card["test_target"])
        out[limit] = {
            "bias": 1e3 * float(mean_signed_error(pred, target)),
            "test_rmse": 1e3 * card["test_rmse"],
            "validation_rmse": 1e3 * card["validation_rmse"],
            "preset": card["preset"],
            "epochs": card["epochs"],
            "minutes": card["fit_seconds"] / 60,
        }
    return out


def summary(variant: str) -> str:
    """Markdown: per limit, every measured dopant's bias / test RMSE / validation RMSE
    of the shipped members and of the other preset's."""
    files = sorted(RESULTS.glob(f"allegro-bias-*-{variant}.json"))
    runs = [json.loads(path.read_text()) for path in files]
    head, cols = ["limit"], []
    for run in runs:
        for name, fig in run["rows"].items():
            head.append(f"{run['dopant']} {'fast' if name == 'shipped' else name}")
            cols.append(fig)
    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join(["---"] * len(head)) + " |"]
    for limit in LIMITS:
        cells = [str(limit)]
        for fig in cols:
            f = fig.get(str(limit))
            cells.append("-" if f is None else
                         f"{f['bias']:+.1f} / {f['test_rmse']:.1f} / {f['validation_rmse']:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dopant", default="Pt")
    parser.add_argument("--variant", default="ordinary")
    parser.add_argument("--preset", default="balanced")
    parser.add_argument("--registry", type=Path)
    parser.add_argument("--limits", default=",".join(map(str, LIMITS)))
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--no-train", action="store_true", help="only read the cards there")
    parser.add_argument("--summary", action="store_true", help="print the docs table only")
    args = parser.parse_args()
    if args.summary:
        print(summary(args.variant))
        return
    if args.registry is None:
        parser.error("--registry is required (where the other preset's members go)")
    limits = [int(x) for x in args.limits.split(",")]
    if not args.no_train:
        os.environ.setdefault(THREADS_ENV, "1")
        train_allegro_family(args.dopant, args.variant, limits, args.preset, jobs=args.jobs,
                             registry=args.registry)  # fmt: skip
    rows = {"shipped": figures(args.variant, args.dopant, REGISTRY_DIR),
            args.preset: figures(args.variant, args.dopant, args.registry)}  # fmt: skip
    out = RESULTS / f"allegro-bias-{args.dopant}-{args.variant}.json"
    out.write_text(json.dumps({"dopant": args.dopant, "variant": args.variant,
                               "labels": "relaxed (CHGNet, a stand-in for DFT)",
                               "rows": rows}, indent=1) + "\n")  # fmt: skip
    print(f"{args.variant}, meV/atom on the A4-only test set (CHGNet labels):")
    print(summary(args.variant))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
