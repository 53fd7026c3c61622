"""Slice-order check of the 2.5D segmentation models: how often a stack given in the other
order than the training data's is detected (and a stack in the training order left alone),
and what that does to the Dice of held-out subjects.

The cine model was trained on base-first ACDC stacks, the lge model on apex-first EMIDEC
stacks. ``Segmenter.predict_frame`` judges the order from the LV area along the stack
(``slice_order_score``; from the ED labels for an ES frame segmented with its ED prior) and
segments a reversed stack in the training order. Here every ACDC frame (100 subjects, ED and
ES, each alone and the ES also with its ED prior) and every EMIDEC case (75) is given in its
own order and reversed; plain inference (no test-time flips). The held-out subjects of each
model (20 ACDC, 15 EMIDEC) are also scored: Dice in the given order, reversed with the check
(the default) and reversed without it (``reverse=False``: what happened before the check).
Both parts use the development models (bench/devmodels.py: the models trained with the
validation split), so that the held-out Dice stays held out.
Writes bench/results/slice_order.json.

    .venv/bin/python bench/eval_slice_order.py
"""

import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "CMRRiskExtension"))
DATA = Path(os.environ.get("CMRRISK_DATA", ROOT.parent / "shared" / "data"))


def main() -> int:
    import torch

    from devmodels import use_development_models

    use_development_models()  # held-out figures: the models trained with the validation split (bench/devmodels.py)
    from cmrrisk import labels as L
    from cmrrisk import modeldir
    from cmrrisk.datasets import list_acdc, list_emidec, read_emidec_case
    from cmrrisk.image import read_image
    from cmrrisk.metrics import dice
    from cmrrisk.segmentation.infer import SLICE_ORDER_MARGIN, Segmenter

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    t0 = time.time()
    out = {"command": "python bench/eval_slice_order.py", "margin": SLICE_ORDER_MARGIN,
           "date": time.strftime("%Y-%m-%d %H:%M")}

    def run(seg, arr, sp, prior=None, reverse=None):
        got = seg.predict_frame_detailed(arr, sp, prior=prior, reverse=reverse)
        return got.labels, got.reversed

    def rev(a):
        return np.ascontiguousarray(a[::-1])

    # cine / ACDC
    cine = Segmenter.load("cine", tta=False)
    val = set(cine.config["training"]["val_subjects"])
    counts = {k: [0, 0] for k in ("ed_given", "ed_reversed", "es_given", "es_reversed",
                                  "es_with_prior_given", "es_with_prior_reversed")}
    held = {k: {lab: [] for lab in ("lv", "myo", "rv")} for k in ("given", "reversed_checked", "reversed_unchecked")}
    names = {"lv": L.LV_BLOOD_POOL, "myo": L.LV_MYOCARDIUM, "rv": L.RV_BLOOD_POOL}
    wrong = []
    for s in list_acdc(str(DATA / "acdc" / "training")):
        im = {ph: read_image(s.frame_path(ph)) for ph in ("ed", "es")}
        sp = im["ed"].spacing[:2]
        lab = {}
        for ph in ("ed", "es"):
            a = im[ph].array
            lab[ph], r_given = run(cine, a, sp)
            lab[ph + "_rev"], r_rev = run(cine, rev(a), sp)
            counts[f"{ph}_given"][0] += int(r_given)      # [wrongly reversed / not detected, n]
            counts[f"{ph}_reversed"][0] += int(not r_rev)
            counts[f"{ph}_given"][1] += 1
            counts[f"{ph}_reversed"][1] += 1
            if r_given or not r_rev:
                wrong.append(f"{s.subject} {ph} " + ("given: reversed" if r_given else "reversed: kept"))
        _, r_given = run(cine, im["es"].array, sp, prior=lab["ed"])
        _, r_rev = run(cine, rev(im["es"].array), sp, prior=lab["ed_rev"])
        counts["es_with_prior_given"][0] += int(r_given)
        counts["es_with_prior_reversed"][0] += int(not r_rev)
        counts["es_with_prior_given"][1] += 1
        counts["es_with_prior_reversed"][1] += 1
        if s.subject in val:
            for ph in ("ed", "es"):
                ref = L.map_labels(read_image(s.frame_path(ph, gt=True)).array, L.ACDC_TO_PROJECT)
                unchecked = run(cine, rev(im[ph].array), sp, reverse=False)[0][::-1]
                for key, pred in (("given", lab[ph]), ("reversed_checked", lab[ph + "_rev"][::-1]),
                                  ("reversed_unchecked", unchecked)):
                    for n, v in names.items():
                        held[key][n].append(dice(pred == v, ref == v))
    out["cine"] = {"model_sha256": modeldir.read_json(os.path.join(cine.model_dir, modeldir.CHECKSUMS))[modeldir.WEIGHTS],
                   "trained": cine.slice_order,
                   "errors": {k: {"wrong": v[0], "n": v[1]} for k, v in counts.items()},
                   "error_cases": wrong,
                   "held_out_dice": {k: {n: float(np.mean(v)) for n, v in d.items()} for k, d in held.items()},
                   "n_held_out_subjects": len(held["given"]["lv"]) // 2}
    print("cine", out["cine"]["errors"], out["cine"]["held_out_dice"], flush=True)

    # lge / EMIDEC
    lge = Segmenter.load("lge", tta=False)
    val = set(lge.config["training"]["val_subjects"])
    counts = {"given": [0, 0], "reversed": [0, 0]}
    wrong = []
    held = {k: {"myo": [], "scar": []} for k in ("given", "reversed_checked", "reversed_unchecked")}
    for c in list_emidec(str(DATA / "emidec")):
        img, ref = read_emidec_case(c)
        sp = (1.0, 1.0)
        g, r_given = run(lge, img, sp)
        rv, r_rev = run(lge, rev(img), sp)
        counts["given"][0] += int(r_given)
        counts["reversed"][0] += int(not r_rev)
        counts["given"][1] += 1
        counts["reversed"][1] += 1
        if r_given or not r_rev:
            wrong.append(f"{c.case} " + ("given: reversed" if r_given else "reversed: kept"))
        if c.case in val:
            unchecked = run(lge, rev(img), sp, reverse=False)[0][::-1]
            for key, pred in (("given", g), ("reversed_checked", rv[::-1]), ("reversed_unchecked", unchecked)):
                held[key]["myo"].append(dice(np.isin(pred, L.MYOCARDIAL), np.isin(ref, L.MYOCARDIAL)))
                if c.group == "infarct":
                    held[key]["scar"].append(dice(np.isin(pred, L.SCAR_WITH_MVO), np.isin(ref, L.SCAR_WITH_MVO)))
    out["lge"] = {"model_sha256": modeldir.read_json(os.path.join(lge.model_dir, modeldir.CHECKSUMS))[modeldir.WEIGHTS],
                  "trained": lge.slice_order,
                  "errors": {k: {"wrong": v[0], "n": v[1]} for k, v in counts.items()},
                  "error_cases": wrong,
                  "held_out_dice": {k: {n: float(np.mean(v)) for n, v in d.items()} for k, d in held.items()},
                  "n_held_out_subjects": len(held["given"]["myo"])}
    print("lge", out["lge"]["errors"], out["lge"]["held_out_dice"], flush=True)
    out["seconds"] = round(time.time() - t0, 1)
    dst = ROOT / "bench" / "results" / "slice_order.json"
    modeldir.write_json(str(dst), out)
    print(f"written: {dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
