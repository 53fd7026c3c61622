"""Scar burden by the DL model and by the classic intensity methods (n-SD, FWHM) on EMIDEC.

Part 1, expert myocardium (all cases): `cmrrisk.scar.scar_report` on each case's image and
expert labels; every method's burden is compared with the expert scar burden (mean, MAE, Pearson
r on infarct cases, Dice against the expert scar).
Part 2, the LGE development model (bench/devmodels.py; its held-out validation cases only): the same methods on the model's
myocardium, and the model's own scar, against the expert scar.
Writes bench/results/scar_methods_emidec.json.

    .venv/bin/python bench/eval_scar_methods.py
"""

import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("CMRRISK_DATA", ROOT.parent / "shared" / "data")) / "emidec"
AFFINE = np.diag([-1.0, -1.0, 1.0, 1.0])  # EMIDEC crops carry no geometry (1 mm declared)


def method_burdens(img, labels, ref_scar):
    from cmrrisk.metrics import dice
    from cmrrisk.scar import scar_report

    im = scar_report(img, labels, AFFINE)["intensity_methods"]
    myo = np.isin(labels, (2, 4, 5))
    out = {}

    def entry(name, burden, thr):
        mask = (myo & (img >= thr)) if thr is not None else np.zeros_like(myo)
        out[name] = {"burden_pct": burden, "dice_vs_expert": dice(mask | (labels == 5), ref_scar)}

    for e in im["nsd"]:
        entry(f"nsd{e['n']:g}", e["scar_burden_pct"], e["threshold"])
    for k in ("fwhm", "fwhm_above_remote"):
        entry(k, im[k]["scar_burden_pct"], im[k]["threshold"])
    return out


def summarise(rows):
    out = {}
    for g in ("infarct", "normal"):
        sub = [r for r in rows if r["group"] == g]
        if not sub:
            continue
        ref = np.array([r["expert_burden_pct"] for r in sub])
        s = {"n": len(sub), "expert_burden_mean": float(ref.mean()), "methods": {}}
        for m in sub[0]["methods"]:
            v = np.array([r["methods"][m]["burden_pct"] for r in sub], float)
            d = np.array([r["methods"][m]["dice_vs_expert"] for r in sub], float)
            e = {"burden_mean": float(np.nanmean(v)), "mae": float(np.nanmean(np.abs(v - ref))),
                 "bias": float(np.nanmean(v - ref))}
            if g == "infarct" and len(sub) > 2:
                e["pearson_r"] = float(np.corrcoef(v, ref)[0, 1])
                e["dice_mean"] = float(np.nanmean(d))
            s["methods"][m] = e
        out[g] = s
    return out


def main() -> int:
    if not DATA.is_dir():
        print(f"EMIDEC not found at {DATA}", file=sys.stderr)
        return 1
    from devmodels import use_development_models

    use_development_models()  # held-out figures: the models trained with the validation split (bench/devmodels.py)
    from cmrrisk import modeldir
    from cmrrisk.datasets import list_emidec, read_emidec_case
    from cmrrisk.image import Volume
    from cmrrisk.metrics import dice, scar_burden_pct
    from cmrrisk.segmentation.infer import Segmenter

    t0 = time.perf_counter()
    cases = list_emidec(str(DATA))
    expert_rows = []
    for c in cases:
        img, lab = read_emidec_case(c)
        ref_scar = np.isin(lab, (4, 5))
        expert_rows.append({"case": c.case, "group": c.group, "expert_burden_pct": scar_burden_pct(lab),
                            "methods": method_burdens(img, lab, ref_scar)})
    cfg = modeldir.read_json(os.path.join(modeldir.resolve("lge"), "config.json"))
    val = set(cfg["training"]["val_subjects"])
    seg = Segmenter.load("lge")
    dl_rows = []
    for c in cases:
        if c.case not in val:
            continue
        img, lab = read_emidec_case(c)
        ref_scar = np.isin(lab, (4, 5))
        pred = seg.segment(Volume(img, AFFINE)).array
        methods = method_burdens(img, pred, ref_scar)
        methods["dl_model"] = {"burden_pct": scar_burden_pct(pred), "dice_vs_expert": dice(np.isin(pred, (4, 5)), ref_scar)}
        dl_rows.append({"case": c.case, "group": c.group, "expert_burden_pct": scar_burden_pct(lab), "methods": methods})
    res = {"what": "scar burden (% of LV myocardium, scar + MVO) by intensity methods and the DL model vs EMIDEC experts",
           "expert_myocardium": {"summary": summarise(expert_rows), "cases": expert_rows},
           "model_myocardium_validation_cases": {"summary": summarise(dl_rows), "cases": dl_rows},
           "lge_model_weights_sha256": modeldir.read_json(os.path.join(modeldir.resolve("lge"), modeldir.CHECKSUMS))[modeldir.WEIGHTS],
           "seconds": round(time.perf_counter() - t0, 1)}
    out = ROOT / "bench" / "results" / "scar_methods_emidec.json"
    modeldir.write_json(str(out), res)
    for part in ("expert_myocardium", "model_myocardium_validation_cases"):
        print(part)
        for g, s in res[part]["summary"].items():
            print(f"  {g}: n={s['n']} expert burden mean {s['expert_burden_mean']:.2f} %")
            for m, e in s["methods"].items():
                extra = f"  r {e['pearson_r']:.3f}  Dice {e['dice_mean']:.3f}" if "pearson_r" in e else ""
                print(f"    {m:18s} mean {e['burden_mean']:6.2f} %  MAE {e['mae']:6.2f}{extra}")
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
