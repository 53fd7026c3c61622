"""Gap between the oracle and the demo's best model, split into measurement and estimation parts.

Reads finished demo outputs (``cmrrisk demo --seed N --out DIR``) and applies
:func:`cmrrisk.demo.gap_decomposition` (what a new demo run writes into ``metrics.json`` as
``gap_decomposition``) to their test split: the C-index of the generator's own hazard formula
with the *measured* LVEF and scar burden shows how much of the oracle is lost to segmentation
error alone; the rest of the best model's gap is estimation from the training split.
Writes bench/results/demo_gap.json.

    .venv/bin/python bench/demo_gap.py DEMO_DIR [DEMO_DIR ...]
"""

import argparse
import csv
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "CMRRiskExtension"))


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("demo_dirs", nargs="+")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "demo_gap.json"))
    args = ap.parse_args()
    from cmrrisk.demo import gap_decomposition
    from cmrrisk.modeldir import write_json

    out = {"command": "python bench/demo_gap.py " + " ".join(args.demo_dirs), "runs": []}
    for d in map(Path, args.demo_dirs):
        m = json.loads((d / "metrics.json").read_text())
        truth = _rows(d / "cohort" / "manifest.csv")
        feats = {r["subject"]: r for r in _rows(d / "tables" / "features.csv")}
        test = [r["subject"] for r in _rows(d / "work" / "test_images.csv")]
        g = gap_decomposition(truth, feats, test)
        run = {"seed": m["seed"], "c_index_oracle": m["c_index_oracle"], "best_model": m["best_model"],
               "c_index_best": m["c_index_best"], "gap_best_to_oracle": m["gap_best_to_oracle"],
               "segmentation_dice_mean": m["segmentation_dice_mean"], **g,
               "estimation_part": g["c_index_formula_on_measured"] - m["c_index_best"]}
        out["runs"].append(run)
        print(f"seed {run['seed']}: oracle {run['c_index_oracle']:.3f}, formula on measured "
              f"{run['c_index_formula_on_measured']:.3f}, best {run['best_model']} {run['c_index_best']:.3f}; "
              f"measurement part {run['measurement_part']:+.3f}, estimation part {run['estimation_part']:+.3f}; "
              f"LVEF MAE {g['lvef_error']['mae_pp']:.2f} pp, scar burden MAE {g['scar_burden_error']['mae_pp']:.2f} pp "
              f"(r {g['scar_burden_error']['r']:.2f})")
    write_json(args.out, out)
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
