"""Inference variants of a development segmentation model (bench/devmodels.py) on its held-out validation subjects:
plain, with test-time in-plane flips (the image and its two flips, softmax averaged), with the
slice order reversed (a stack given base-first instead of the training data's order: a
robustness check), and with both slice orders averaged.

The lge model is evaluated on its 15 held-out EMIDEC cases (Dice myocardium, scar, MVO,
scar-burden error); ``--model cine`` on its 20 held-out ACDC subjects (Dice per structure, mean
over ED and ES). Writes bench/results/<model>_inference.json. ``--model`` also takes a model
folder (a candidate before it is installed; its task comes from its config) and then needs
``--out``.

    .venv/bin/python bench/eval_lge_inference.py [--model lge|cine|DIR] [--variants plain,flips,...]
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "CMRRiskExtension"))
DATA = Path(os.environ.get("CMRRISK_DATA", ROOT.parent / "shared" / "data"))

#: name -> (slice orders to average (False = as given, True = reversed), in-plane flips)
VARIANTS = {"plain": ([False], False), "flips": ([False], True), "reversed": ([True], False),
            "both_orders": ([False, True], False)}


def make_segmenter(model: str, orders, flips):
    import torch

    from cmrrisk.segmentation.infer import Segmenter
    from cmrrisk.segmentation.postprocess import postprocess
    from cmrrisk.segmentation.preprocess import pad_to_multiple, prepare_frame, resample_slices, stack_neighbours

    class Variant(Segmenter):
        @torch.inference_mode()
        def predict_frame(self, arr, spacing_xy, post=True):
            z, h, w = arr.shape
            t = prepare_frame(arr, spacing_xy, self.target_spacing)
            prob = 0
            for rev in orders:
                x = stack_neighbours(t.flip(0) if rev else t, self.context)
                x, (top, left, hh, ww) = pad_to_multiple(x, 16)
                x = x.to(self.device)
                for dim in ([None, 2, 3] if flips else [None]):
                    p = self._forward(x if dim is None else x.flip(dim)).softmax(1)
                    p = p if dim is None else p.flip(dim)
                    prob = prob + (p.flip(0) if rev else p)
            logits = resample_slices(prob[:, :, top:top + hh, left:left + ww], (h, w))
            seg = self.label_values[logits.argmax(1).cpu().numpy()]
            return postprocess(seg, self.structures) if post else seg

    base = Segmenter.load(model, tta=False)
    return Variant(base.net, base.config, base.model_dir, base.device, tta=False)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="lge", help="lge, cine or a model folder")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    from devmodels import use_development_models

    use_development_models()  # held-out figures: the models trained with the validation split (bench/devmodels.py)
    from cmrrisk import modeldir
    from cmrrisk.datasets import list_acdc, list_emidec
    from cmrrisk.segmentation.evaluate import evaluate_acdc, evaluate_emidec

    cfg = modeldir.read_json(os.path.join(modeldir.resolve(args.model), "config.json"))
    task = cfg.get("task", args.model)
    if args.model not in ("lge", "cine") and not args.out:
        ap.error("--out is needed with a model folder (bench/results holds the bundled models' figures)")
    val = set(cfg["training"]["val_subjects"])
    if not val:
        ap.error(f"--model {args.model}: trained on all subjects (no validation subjects in its "
                 "config); held-out figures need a model trained with the split")
    if task == "lge":
        subjects = [c for c in list_emidec(str(DATA / "emidec")) if c.case in val]
        run = evaluate_emidec
    else:
        subjects = [s for s in list_acdc(str(DATA / "acdc" / "training")) if s.subject in val]
        run = evaluate_acdc
    if not subjects:
        print(f"no validation data found under {DATA}", file=sys.stderr)
        return 2
    out = {"model": args.model, "n_subjects": len(subjects), "subjects": sorted(val),
           "model_sha256": modeldir.read_json(os.path.join(modeldir.resolve(args.model),
                                                           modeldir.CHECKSUMS))[modeldir.WEIGHTS],
           "date": time.strftime("%Y-%m-%d %H:%M"), "variants": {}}
    for name in args.variants.split(","):
        orders, flips = VARIANTS[name]
        res = run(make_segmenter(args.model, orders, flips), subjects)
        summ = res["summary"]
        if task == "cine":
            summ = {k: (v["dice_mean"] if isinstance(v, dict) and "dice_mean" in v else v) for k, v in summ.items()}
        out["variants"][name] = {"summary": summ, "seconds_per_volume_median": res["seconds_per_frame_median"]}
        print(name, json.dumps(summ), flush=True)
    dst = args.out or str(ROOT / "bench" / "results" / f"{args.model}_inference.json")
    modeldir.write_json(dst, out)
    print(f"written: {dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
