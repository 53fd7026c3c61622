"""End-systole anchored to end-diastole: effect on the ES segmentation and on LVEF.

When the ED and ES frames of one cine are segmented together (``cmrrisk features``, QC, the
demo, CMRRisk Segment's ED/ES and sequence paths, ``cmrrisk segment`` on a 4D cine), the ES
frame's LV blood pool and myocardium are allowed only within the ED LV wall dilated by
``Segmenter.ES_PRIOR_MARGIN_MM``, and refused on the ED RV blood pool when more than
``Segmenter.ES_RV_CONFUSION_FRACTION`` of it lies there (see ``Segmenter._apply_es_prior``).
This script segments each
subject's ES frame with and without that prior and compares both with the reference:
- the 20 ACDC validation subjects of the cine development model (bench/devmodels.py; never trained on);
- a synthetic cohort (``cmrrisk.synthetic.generate_cohort``, ``--n`` subjects, ``--seed``).
Writes bench/results/es_anchor.json.

    .venv/bin/python bench/eval_es_anchor.py [--n 100] [--seed 2] [--margin 10]
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "CMRRiskExtension"))
DATA = Path(os.environ.get("CMRRISK_DATA", ROOT.parent / "shared" / "data"))


def _compare(seg, ed_img, es_img, ed_ref, es_ref, spacing):
    from cmrrisk import labels as L
    from cmrrisk.metrics import clinical_indices, dice

    ed = seg.predict_frame(ed_img, spacing[:2])
    ref_ef = clinical_indices(ed_ref, es_ref, spacing)["lv_ef_pct"]
    row = {}
    for tag, prior in (("independent", None), ("anchored", ed)):
        es = seg.predict_frame(es_img, spacing[:2], prior=prior)
        for lab, name in ((L.LV_BLOOD_POOL, "lv"), (L.LV_MYOCARDIUM, "myo"), (L.RV_BLOOD_POOL, "rv")):
            row[f"{tag}_dice_es_{name}"] = dice(es == lab, es_ref == lab)
        row[f"{tag}_lvef_error_pp"] = clinical_indices(ed, es, spacing)["lv_ef_pct"] - ref_ef
    return row


def _summary(rows):
    keys = [k for k in rows[0] if k != "subject"]
    out = {k: float(np.mean([r[k] for r in rows])) for k in keys if "dice" in k}
    for tag in ("independent", "anchored"):
        e = np.abs([r[f"{tag}_lvef_error_pp"] for r in rows])
        out[f"{tag}_lvef_mae_pp"] = float(e.mean())
        out[f"{tag}_lvef_errors_over_10pp"] = int((e > 10).sum())
    out["n"] = len(rows)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--margin", type=float, default=None, help="override ES_PRIOR_MARGIN_MM")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "es_anchor.json"))
    args = ap.parse_args()
    from devmodels import use_development_models

    use_development_models()  # held-out figures: the models trained with the validation split (bench/devmodels.py)
    import torch

    from cmrrisk import labels as L
    from cmrrisk import modeldir
    from cmrrisk.datasets import list_acdc
    from cmrrisk.image import read_image
    from cmrrisk.manifest import read_manifest
    from cmrrisk.segmentation.infer import Segmenter
    from cmrrisk.synthetic import VERSION, generate_cohort

    torch.set_num_threads(1)
    seg = Segmenter.load("cine", tta=False)
    if args.margin is not None:
        seg.ES_PRIOR_MARGIN_MM = args.margin
    t0 = time.time()
    result = {"margin_mm": seg.ES_PRIOR_MARGIN_MM, "command": "python bench/eval_es_anchor.py " + " ".join(sys.argv[1:]),
              "model": modeldir.read_json(str(Path(seg.model_dir) / modeldir.CHECKSUMS))[modeldir.WEIGHTS]}
    acdc = DATA / "acdc" / "training"
    if acdc.is_dir():
        val = set(seg.config["training"]["val_subjects"])
        rows = []
        for s in list_acdc(str(acdc)):
            if s.subject not in val:
                continue
            im = {ph: read_image(s.frame_path(ph)) for ph in ("ed", "es")}
            rf = {ph: L.map_labels(read_image(s.frame_path(ph, gt=True)).array, L.ACDC_TO_PROJECT)
                  for ph in ("ed", "es")}
            rows.append(dict(subject=s.subject, **_compare(seg, im["ed"].array, im["es"].array, rf["ed"],
                                                            rf["es"], im["ed"].spacing)))
        result["acdc_validation"] = {"summary": _summary(rows), "subjects": rows}
    else:
        print(f"{acdc} not found: ACDC part skipped", file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        man = read_manifest(generate_cohort(tmp, n=args.n, seed=args.seed, progress=False), require_images=True)
        rows = []
        for r in man.rows:
            im = {ph: read_image(r[f"cine_{ph}"]) for ph in ("ed", "es")}
            rf = {ph: read_image(r[f"cine_{ph}_seg"]).array for ph in ("ed", "es")}
            rows.append(dict(subject=r["subject"], **_compare(seg, im["ed"].array.astype(np.float32),
                                                               im["es"].array.astype(np.float32), rf["ed"],
                                                               rf["es"], im["ed"].spacing)))
        result["synthetic"] = {"generator_version": VERSION, "seed": args.seed,
                               "summary": _summary(rows), "subjects": rows}
    result["seconds"] = round(time.time() - t0, 1)
    modeldir.write_json(args.out, result)
    for part in ("acdc_validation", "synthetic"):
        if part in result:
            s = result[part]["summary"]
            print(part, s["n"], " ".join(f"{k} {v:.4f}" for k, v in s.items() if k != "n"))
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
