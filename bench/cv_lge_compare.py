"""Side-by-side table of the LGE cross-validation results (bench/results/lge_cv_<method>.json,
written by bench/cv_lge.py), each method scored on the folds that every listed method has
finished, so that the figures compare like with like. Writes bench/results/lge_cv_comparison.json.

    .venv/bin/python bench/cv_lge_compare.py
"""

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "CMRRiskExtension"))
sys.path.insert(0, str(ROOT / "bench"))
RESULTS = ROOT / "bench" / "results"


def main() -> int:
    from cv_lge import summarise

    from cmrrisk import modeldir

    runs = {}
    for p in sorted(RESULTS.glob("lge_cv_*.json")):
        if p.name == "lge_cv_comparison.json":
            continue
        r = json.loads(p.read_text())
        runs[r["method"]] = r
    if not runs:
        print("no bench/results/lge_cv_*.json yet: run bench/cv_lge.py first", file=sys.stderr)
        return 2
    common = sorted(set.intersection(*(set(r["rows"]) for r in runs.values())), key=int)
    out = {"folds_compared": [int(k) for k in common], "methods": {}}
    print(f"folds compared: {', '.join(common)} (every method finished these)")
    print(f"{'method':26s} {'source':10s} {'myo':>6s} {'scar':>6s} {'sd':>6s} {'MVO':>6s} {'burden':>7s} {'<0.30':>6s} {'failed':>6s} {'n':>4s}")
    for name, r in runs.items():
        fold_of = r["fold_of_case"]
        out["methods"][name] = {"json": f"bench/results/lge_cv_{name}.json", "command": r["command"]}
        for src in ("reference", "bundled", "heldout15"):
            rows = [row for k in common for row in r["rows"][k].get(src, [])]
            if not rows:
                continue
            s = summarise(rows, {c: f for c, f in fold_of.items()})
            s["n_failed"] = len(s.pop("failures"))
            out["methods"][name][src] = s
            print(f"{name:26s} {src:10s} {s['dice_myocardium']['mean']:6.3f} {s['dice_scar']['mean']:6.3f} "
                  f"{s['dice_scar']['fold_mean_sd']:6.3f} {s['dice_mvo']['mean']:6.3f} "
                  f"{s['scar_burden_abs_error_median_pp']:7.2f} {s['n_infarct_cases_scar_dice_below_0.30']:6d} "
                  f"{s['n_failed']:6d} {len(rows):4d}")
    dst = RESULTS / "lge_cv_comparison.json"
    modeldir.write_json(str(dst), out)
    print(f"written: {dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
