"""Dice of the bundled segmentation models on the synthetic cohort (target: >= 0.90).

Generates `--n` subjects with `cmrrisk.synthetic.generate_cohort` (seed `--seed`) in a temporary
folder, segments every cine ED/ES frame with the bundled cine model (ES anchored to the ED
prediction, as in the pipeline) and every LGE stack with the bundled lge model (its default
test-time flips), and compares with the generator's labels. Writes
bench/results/synthetic_segmentation.json: mean Dice, and the median predicted / true voxel
count per structure (``volume_ratio``; a systematic under- or over-segmentation shows there) with,
for the LGE myocardium, where the missed myocardial voxels went (``lge_missed_myocardium_to``:
fraction labelled LV blood pool / background), and the scar-burden error (predicted minus true
scar + MVO as % of the myocardium, ``cmrrisk.metrics.scar_burden_pct``) on subjects with scar.

    .venv/bin/python bench/eval_synthetic_segmentation.py [--n 12] [--seed 0] [--out PATH]
        [--cine-model NAME_OR_DIR] [--cine-tta default|on|off]

Results: synthetic_segmentation.json (n 12, seed 0), synthetic_segmentation_seed1.json (seed 1).
Appearance of the synthetic images versus ACDC / EMIDEC: bench/measure_real_appearance.py.
"""

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "synthetic_segmentation.json"))
    ap.add_argument("--cine-model", default="cine", help="cine model name or folder (a candidate)")
    ap.add_argument("--cine-tta", choices=("default", "on", "off"), default="default",
                    help="cine test-time flips (default: the model's own setting)")
    args = ap.parse_args()
    from cmrrisk import labels as L
    from cmrrisk import modeldir
    from cmrrisk.image import read_image
    from cmrrisk.manifest import read_manifest
    from cmrrisk.metrics import dice, scar_burden_pct
    from cmrrisk.segmentation.evaluate import volume_ratio
    from cmrrisk.segmentation.infer import Segmenter
    from cmrrisk.synthetic import VERSION, generate_cohort

    cine = Segmenter.load(args.cine_model, tta={"default": None, "on": True, "off": False}[args.cine_tta])
    lge = Segmenter.load("lge")
    res = {"cine_ed": {}, "cine_es": {}, "lge": {}}
    vol = {"cine_ed": {}, "cine_es": {}, "lge": {}}
    missed_to = {"lv": [], "background": []}
    burden_err = []
    with tempfile.TemporaryDirectory() as tmp:
        man = read_manifest(generate_cohort(tmp, n=args.n, seed=args.seed, progress=False), require_images=True)
        for r in man.rows:
            ed_pred = None
            for role in ("cine_ed", "cine_es"):  # ES anchored to the ED prediction, as the pipeline does
                v, g = read_image(r[role]), read_image(r[role + "_seg"]).array
                p = cine.predict_frame(v.array.astype(np.float32), v.spacing[:2], prior=ed_pred)
                ed_pred = p if role == "cine_ed" else ed_pred
                for lab, name in ((L.LV_BLOOD_POOL, "lv"), (L.LV_MYOCARDIUM, "myo"), (L.RV_BLOOD_POOL, "rv")):
                    res[role].setdefault(name, []).append(dice(p == lab, g == lab))
                    vol[role].setdefault(name, []).append(volume_ratio(p == lab, g == lab))
            v, g = read_image(r["lge"]), read_image(r["lge_seg"]).array
            p = lge.predict_frame(v.array.astype(np.float32), v.spacing[:2])
            res["lge"].setdefault("lv", []).append(dice(p == L.LV_BLOOD_POOL, g == L.LV_BLOOD_POOL))
            res["lge"].setdefault("myo", []).append(dice(np.isin(p, L.MYOCARDIAL), np.isin(g, L.MYOCARDIAL)))
            vol["lge"].setdefault("lv", []).append(volume_ratio(p == L.LV_BLOOD_POOL, g == L.LV_BLOOD_POOL))
            vol["lge"].setdefault("myo", []).append(volume_ratio(np.isin(p, L.MYOCARDIAL), np.isin(g, L.MYOCARDIAL)))
            miss = np.isin(g, L.MYOCARDIAL) & ~np.isin(p, L.MYOCARDIAL)
            if miss.any():
                missed_to["lv"].append(float((p[miss] == L.LV_BLOOD_POOL).mean()))
                missed_to["background"].append(float((p[miss] == 0).mean()))
            if np.isin(g, L.SCAR_WITH_MVO).any():
                res["lge"].setdefault("scar", []).append(dice(np.isin(p, L.SCAR_WITH_MVO), np.isin(g, L.SCAR_WITH_MVO)))
                burden_err.append(scar_burden_pct(p) - scar_burden_pct(g))
    summary = {k: {s: float(np.mean(v)) for s, v in d.items()} for k, d in res.items()}
    out = {"n": args.n, "seed": args.seed, "generator_version": VERSION, "mean_dice": summary,
           "volume_ratio": {k: {s: float(np.nanmedian(v)) for s, v in d.items()} for k, d in vol.items()},
           "lge_missed_myocardium_to": {k: float(np.median(v)) if v else None for k, v in missed_to.items()},
           "lge_scar_burden_error_pp": {"mae": float(np.mean(np.abs(burden_err))) if burden_err else None,
                                        "median_abs": float(np.median(np.abs(burden_err))) if burden_err else None,
                                        "bias": float(np.mean(burden_err)) if burden_err else None,
                                        "per_subject": burden_err},
           "per_subject": res,
           "models": {m: modeldir.read_json(str(Path(modeldir.resolve(name)) / modeldir.CHECKSUMS))[modeldir.WEIGHTS]
                      for m, name in (("cine", args.cine_model), ("lge", "lge"))},
           "test_time_flips": {"cine": cine.tta, "lge": lge.tta}}
    modeldir.write_json(args.out, out)
    for k, d in summary.items():
        print(k, " ".join(f"{s} {v:.3f}" for s, v in d.items()),
              "| volume ratio", " ".join(f"{s} {v:.2f}" for s, v in out["volume_ratio"][k].items()))
    print("lge missed myocardium labelled", out["lge_missed_myocardium_to"])
    print("lge scar-burden error (pp)", {k: v for k, v in out["lge_scar_burden_error_pp"].items() if k != "per_subject"})
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
