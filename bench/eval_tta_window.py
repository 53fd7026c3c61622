"""Test-time flips on a window around the heart against flips of the whole image.

`Segmenter` averages the unflipped pass with its two in-plane flips; the flipped passes are run
only on the heart's bounding box widened by ``Segmenter.TTA_WINDOW_MARGIN_MM``
(:meth:`Segmenter.tta_window`). This bench checks that the window costs nothing in accuracy and
measures what it saves: the development models (bench/devmodels.py) on their held-out subjects
(cine: 20 ACDC subjects, ED and ES; lge: 15 EMIDEC cases), each frame segmented plain, with
whole-image flips and with windowed flips (interleaved, so that the timings share the machine's
state). Reports Dice per variant, the agreement of windowed with whole-image labels (share of
voxels that differ, per structure Dice between the two), the window's share of the grid and the
median seconds per frame. Writes bench/results/tta_window.json.

    .venv/bin/python bench/eval_tta_window.py [--threads 2] [--limit N]
"""

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "CMRRiskExtension"))
DATA = Path(os.environ.get("CMRRISK_DATA", ROOT.parent / "shared" / "data"))
VARIANTS = ("plain", "flips_whole", "flips_window")


def run(task: str, subjects, threads: int) -> dict:
    import torch

    from cmrrisk import labels as L
    from cmrrisk.metrics import dice
    from cmrrisk.segmentation.evaluate import evaluate_acdc, evaluate_emidec
    from cmrrisk.segmentation.infer import Segmenter

    torch.set_num_threads(threads)
    base = Segmenter.load(task, tta=False)
    segs, store = {}, {v: [] for v in VARIANTS}
    area = []
    for v in VARIANTS:
        s = Segmenter(base.net, base.config, base.model_dir, base.device, tta=v != "plain")
        s.TTA_WINDOW_MARGIN_MM = None if v == "flips_whole" else Segmenter.TTA_WINDOW_MARGIN_MM
        if v == "flips_window":
            inner = s.tta_window

            def window(labels, valid, inner=inner):
                w = inner(labels, valid)
                if w is not None:
                    area.append((w[1] - w[0]) * (w[3] - w[2]) / (labels.shape[1] * labels.shape[2]))
                return w
            s.tta_window = window
        segs[v] = s

    class Interleaved:
        """Segments each frame with every variant in turn; evaluate_* sees the windowed one."""
        def segment(self, vol):
            out = {}
            for v in VARIANTS:
                t0 = time.perf_counter()
                out[v] = segs[v].segment(vol)
                store[v].append((time.perf_counter() - t0, out[v].array))
            return out["flips_window"]

    evaluate = evaluate_acdc if task == "cine" else evaluate_emidec
    res = {"flips_window": evaluate(Interleaved(), subjects)}
    # the other variants' Dice from their stored labels, through the same evaluation code
    for v in ("plain", "flips_whole"):
        it = iter(store[v])

        class Replay:
            def segment(self, vol, it=it):
                return vol.with_array(next(it)[1]) if hasattr(vol, "with_array") else next(it)[1]
        res[v] = evaluate(Replay(), subjects)
    structures = [int(x) for x in base.config["labels"].values()]
    if task == "lge":
        structures = [L.LV_BLOOD_POOL, "myocardium", "scar"]

    def mask(a, s):
        if s == "myocardium":
            return np.isin(a, L.MYOCARDIAL)
        if s == "scar":
            return np.isin(a, L.SCAR_WITH_MVO)
        return a == s
    agree = {str(s): [] for s in structures}
    differ = []
    for (_, a), (_, b) in zip(store["flips_whole"], store["flips_window"]):
        differ.append(float((a != b).mean()))
        for s in structures:
            ma, mb = mask(a, s), mask(b, s)
            if ma.any() or mb.any():
                agree[str(s)].append(dice(ma, mb))
    return {
        "n_frames": len(differ),
        "summary": {v: res[v]["summary"] for v in VARIANTS},
        "seconds_per_frame_median": {v: float(np.median([t for t, _ in store[v]])) for v in VARIANTS},
        "window_vs_whole": {"voxels_differing_mean": float(np.mean(differ)),
                            "voxels_differing_max": float(np.max(differ)),
                            "dice_between_labels_min": {k: float(np.min(x)) for k, x in agree.items() if x},
                            "dice_between_labels_mean": {k: float(np.mean(x)) for k, x in agree.items() if x}},
        "window_share_of_grid_median": float(np.median(area)) if area else None,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=None, help="first N subjects only (a quick look)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "tta_window.json"))
    args = ap.parse_args()
    from devmodels import held_out, use_development_models

    use_development_models()
    from cmrrisk.datasets import list_acdc, list_emidec
    from cmrrisk.modeldir import write_json
    from cmrrisk.segmentation.infer import Segmenter

    out = {"margin_mm": Segmenter.TTA_WINDOW_MARGIN_MM, "threads": args.threads,
           "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    for task, lister, folder in (("cine", list_acdc, DATA / "acdc" / "training"),
                                 ("lge", list_emidec, DATA / "emidec")):
        _, val = held_out(task)
        subjects = [s for s in lister(str(folder)) if s.subject in val][:args.limit]
        t0 = time.perf_counter()
        out[task] = run(task, subjects, args.threads)
        out[task]["subjects"] = [s.subject for s in subjects]
        print(task, f"{time.perf_counter() - t0:.0f} s", out[task]["summary"]["flips_window"],
              out[task]["window_vs_whole"], out[task]["seconds_per_frame_median"], flush=True)
    write_json(args.out, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
