"""Where along the stack the lge development model (bench/devmodels.py) loses myocardium: real held-out EMIDEC cases
against synthetic LGE stacks.

Each stack is cut into thirds by slice index (apex / mid / base; both EMIDEC and the synthetic
LGE are stored apex first). Per third, over all stacks: predicted / true myocardial voxel count
(whole myocardium: healthy + scar + MVO) and the pooled Dice. Inference as the model's default
(test-time flips). Writes bench/results/lge_by_level.json.

    .venv/bin/python bench/eval_lge_by_level.py [--n 12] [--seed 0]
"""

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "CMRRiskExtension"))
DATA = Path(os.environ.get("CMRRISK_DATA", ROOT.parent / "shared" / "data"))
LEVELS = ("apex", "mid", "base")


def _accumulate(acc, pred, ref, myocardial):
    nz = ref.shape[0]
    for k in range(nz):
        level = LEVELS[min(3 * k // nz, 2)]
        p, r = np.isin(pred[k], myocardial), np.isin(ref[k], myocardial)
        a = acc[level]
        a["pred"] += int(p.sum())
        a["ref"] += int(r.sum())
        a["overlap"] += int((p & r).sum())


def _summary(acc):
    total = sum(a["ref"] for a in acc.values())
    return {lv: {"pred_over_true": a["pred"] / a["ref"] if a["ref"] else None,
                 "dice": 2 * a["overlap"] / (a["pred"] + a["ref"]) if a["pred"] + a["ref"] else None,
                 "share_of_true_myocardium": a["ref"] / total if total else None}
            for lv, a in acc.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=12, help="synthetic subjects")
    ap.add_argument("--seed", type=int, default=0, help="synthetic cohort seed")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "lge_by_level.json"))
    args = ap.parse_args()
    from devmodels import use_development_models

    use_development_models()  # held-out figures: the models trained with the validation split (bench/devmodels.py)
    from cmrrisk import labels as L
    from cmrrisk import modeldir
    from cmrrisk.datasets import list_emidec, read_emidec_case
    from cmrrisk.image import read_image
    from cmrrisk.manifest import read_manifest
    from cmrrisk.segmentation.infer import Segmenter
    from cmrrisk.synthetic import VERSION, generate_cohort

    if not (DATA / "emidec").is_dir():
        print(f"no EMIDEC data under {DATA}", file=sys.stderr)
        return 2
    seg = Segmenter.load("lge")
    model_dir = modeldir.resolve("lge")
    val = set(modeldir.read_json(os.path.join(model_dir, "config.json"))["training"]["val_subjects"])
    real = {lv: {"pred": 0, "ref": 0, "overlap": 0} for lv in LEVELS}
    n_real = 0
    for c in list_emidec(str(DATA / "emidec")):
        if c.case not in val:
            continue
        img, ref = read_emidec_case(c)
        _accumulate(real, seg.predict_frame(img, (1.0, 1.0)), ref, L.MYOCARDIAL)
        n_real += 1
    syn = {lv: {"pred": 0, "ref": 0, "overlap": 0} for lv in LEVELS}
    with tempfile.TemporaryDirectory() as tmp:
        man = read_manifest(generate_cohort(tmp, n=args.n, seed=args.seed, progress=False), require_images=True)
        for r in man.rows:
            v, g = read_image(r["lge"]), read_image(r["lge_seg"]).array
            _accumulate(syn, seg.predict_frame(v.array.astype(np.float32), v.spacing[:2]), g, L.MYOCARDIAL)
    out = {"model_sha256": modeldir.read_json(os.path.join(model_dir, modeldir.CHECKSUMS))[modeldir.WEIGHTS],
           "emidec_held_out": {"n": n_real, "by_level": _summary(real)},
           "synthetic": {"n": args.n, "seed": args.seed, "generator_version": VERSION, "by_level": _summary(syn)},
           "definition": "thirds of each stack by slice index, apex first; pooled over stacks; "
                         "whole myocardium (healthy + scar + MVO); model default inference"}
    modeldir.write_json(args.out, out)
    for name in ("emidec_held_out", "synthetic"):
        for lv, s in out[name]["by_level"].items():
            print(f"{name:16s} {lv:5s} pred/true {s['pred_over_true']:.2f}  Dice {s['dice']:.3f}  "
                  f"share {s['share_of_true_myocardium']:.2f}")
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
