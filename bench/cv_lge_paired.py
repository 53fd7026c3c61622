"""Two honest first stages compared case by case on the cases both never trained on.

Reads the per-case rows of two ``bench/cv_lge.py`` results (``--a FILE:SOURCE``, ``--b
FILE:SOURCE``; e.g. ``lge_cv_current.json:heldout15`` is the development model ``lge_split`` on
its 15 validation cases, ``lge_cv_current_s1-cineinit.json:cv_cineinit`` the per-fold first stages
on all 75), pairs them by case and reports each side's mean and the mean paired difference (b - a)
with its bootstrap 95 % interval, for the myocardium Dice (all cases) and the scar + MVO Dice
(infarct cases). Writes ``bench/results/lge_paired_<name>.json``.

    .venv/bin/python bench/cv_lge_paired.py --a lge_cv_current.json:heldout15 \\
        --b lge_cv_current_s1-cineinit.json:cv_cineinit --name cineinit_vs_split
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "CMRRiskExtension"))
RESULTS = ROOT / "bench" / "results"


def rows(spec: str) -> dict:
    name, _, source = spec.partition(":")
    r = json.loads((RESULTS / name).read_text())
    return {row["case"]: row for fold in r["rows"].values() for row in fold.get(source, [])}


def paired(a: dict, b: dict, key: str, seed: int = 0) -> dict:
    cases = sorted(c for c in set(a) & set(b) if key in a[c] and key in b[c])
    if not cases:
        return {"n": 0}
    x = np.array([a[c][key] for c in cases])
    y = np.array([b[c][key] for c in cases])
    d = y - x
    rng = np.random.default_rng(seed)
    boot = [float(d[rng.integers(0, len(d), len(d))].mean()) for _ in range(2000)]
    return {"n": len(cases), "mean_a": float(x.mean()), "mean_b": float(y.mean()), "mean_difference": float(d.mean()),
            "difference_ci95": [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))],
            "b_better_cases": int((d > 0).sum()), "per_case": {c: [float(x[i]), float(y[i])] for i, c in enumerate(cases)}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", required=True)
    ap.add_argument("--b", required=True)
    ap.add_argument("--name", required=True)
    args = ap.parse_args()
    from cmrrisk import modeldir

    a, b = rows(args.a), rows(args.b)
    out = {"a": args.a, "b": args.b, "command": f"python bench/cv_lge_paired.py --a {args.a} --b {args.b} "
           f"--name {args.name}", "dice_myocardium": paired(a, b, "dice_myocardium"),
           "dice_scar": paired(a, b, "dice_scar")}
    for k in ("dice_myocardium", "dice_scar"):
        v = out[k]
        if v["n"]:
            print(f"{k}: n {v['n']}, a {v['mean_a']:.3f}, b {v['mean_b']:.3f}, b - a {v['mean_difference']:+.3f} "
                  f"(95 % CI {v['difference_ci95'][0]:+.3f} to {v['difference_ci95'][1]:+.3f}), b better in "
                  f"{v['b_better_cases']}")
    modeldir.write_json(str(RESULTS / f"lge_paired_{args.name}.json"), out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
