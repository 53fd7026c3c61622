"""Agreement of clinical indices from the cine development model (bench/devmodels.py) with those from the ACDC reference
labels, on the validation subjects the model never saw in training (its config lists them).

For each index: mean absolute error, bias (model - reference), SD of the differences, 95 %
limits of agreement (bias +/- 1.96 SD, Bland-Altman) and Pearson r. Writes
bench/results/features_agreement_acdc.json.

    .venv/bin/python bench/eval_features_acdc.py [--subjects all]
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("CMRRISK_DATA", ROOT.parent / "shared" / "data")) / "acdc" / "training"
INDICES = ["lv_edv_ml", "lv_esv_ml", "lv_sv_ml", "lv_ef_pct", "lv_mass_g", "rv_edv_ml", "rv_esv_ml",
           "rv_ef_pct", "lv_max_wall_thickness_mm"]


def agreement(pred, ref) -> dict:
    p, r = np.asarray(pred, float), np.asarray(ref, float)
    d = p - r
    sd = float(np.std(d, ddof=1)) if len(d) > 1 else float("nan")
    return {"n": int(len(d)), "mae": float(np.mean(np.abs(d))), "bias": float(np.mean(d)), "sd": sd,
            "loa_low": float(np.mean(d) - 1.96 * sd), "loa_high": float(np.mean(d) + 1.96 * sd),
            "pearson_r": float(np.corrcoef(p, r)[0, 1]) if len(d) > 2 else float("nan"),
            "mean_reference": float(np.mean(r))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--subjects", default="validation", choices=["validation"],
                    help="only the held-out validation subjects are honest for the development model")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "features_agreement_acdc.json"))
    args = ap.parse_args()
    from devmodels import use_development_models

    use_development_models()  # held-out figures: the models trained with the validation split (bench/devmodels.py)
    if not DATA.is_dir():
        print(f"ACDC not found at {DATA}", file=sys.stderr)
        return 1
    from cmrrisk import modeldir
    from cmrrisk.features.cohort import subject_features
    from cmrrisk.manifest import acdc_manifest, read_manifest

    cfg = modeldir.read_json(os.path.join(modeldir.resolve("cine"), "config.json"))
    val = set(cfg["training"]["val_subjects"])
    with tempfile.TemporaryDirectory() as tmp:
        m = os.path.join(tmp, "acdc.csv")
        acdc_manifest(str(DATA), m)
        rows = [r for r in read_manifest(m).rows if r["subject"] in val]
    per = []
    t0 = time.perf_counter()
    opts = {"radiomics": False, "deep": False}
    for row in rows:
        ref, _ = subject_features(row, opts)
        auto, _ = subject_features(dict(row, cine_ed_seg="", cine_es_seg=""), opts)
        per.append({"subject": row["subject"], "group": row["label"],
                    "model": {k: auto[k] for k in INDICES}, "reference": {k: ref[k] for k in INDICES}})
        print(f"{row['subject']} {row['label']:4s} LVEF {auto['lv_ef_pct']:5.1f} / {ref['lv_ef_pct']:5.1f}  "
              f"LV mass {auto['lv_mass_g']:6.1f} / {ref['lv_mass_g']:6.1f}  "
              f"LVEDV {auto['lv_edv_ml']:6.1f} / {ref['lv_edv_ml']:6.1f}", flush=True)
    summary = {k: agreement([p["model"][k] for p in per], [p["reference"][k] for p in per]) for k in INDICES}
    res = {"what": "clinical indices from the cine development model vs from the ACDC reference labels",
           "subjects": "ACDC validation subjects held out from the development model's training",
           "model_weights_sha256": modeldir.read_json(os.path.join(modeldir.resolve("cine"), modeldir.CHECKSUMS))[modeldir.WEIGHTS],
           "n_subjects": len(per), "seconds": round(time.perf_counter() - t0, 1),
           "summary": summary, "per_subject": per}
    modeldir.write_json(args.out, res)
    print(f"\n{'index':28s} {'MAE':>7s} {'bias':>7s} {'LoA low':>8s} {'LoA high':>8s} {'r':>6s}")
    for k, s in summary.items():
        print(f"{k:28s} {s['mae']:7.2f} {s['bias']:7.2f} {s['loa_low']:8.2f} {s['loa_high']:8.2f} {s['pearson_r']:6.3f}")
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
