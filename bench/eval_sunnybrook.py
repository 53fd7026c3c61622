"""External check of the bundled cine model on another vendor: the Sunnybrook GE cine DICOM
series with expert endocardial (i) and epicardial (o) contours.

For every contoured image: Dice of the predicted LV blood pool vs the endocardial contour,
of LV blood pool + myocardium vs the epicardial contour, and of the myocardium vs the ring
between them (images with both contours). Each phase is segmented on its own, twice: as the
segmenter does by default (slice order read from the DICOM geometry, ``summary``) and with the
slice order judged from the LV area along the stack only (``summary_order_from_labels``). Writes bench/results/sunnybrook_eval.json.

    .venv/bin/python bench/eval_sunnybrook.py [--model cine|MODEL_DIR] [--out PATH]
"""

import csv
import json
import os
import re
import sys
import time
from pathlib import Path

import numpy as np
from matplotlib.path import Path as Polygon

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("CMRRISK_DATA", ROOT.parent / "shared" / "data")) / "sunnybrook"


def contour_mask(txt: Path, shape) -> np.ndarray:
    pts = np.loadtxt(txt)
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    inside = Polygon(pts).contains_points(np.stack([xx.ravel(), yy.ravel()], 1))
    return inside.reshape(shape)


def dice(a, b):
    s = a.sum() + b.sum()
    return float(2 * (a & b).sum() / s) if s else 1.0


VARIANTS = {"": True, "order_from_labels_": False}  # key prefix -> geometry used


def evaluate(seg_model, series: str, contour_dir: Path) -> list:
    from cmrrisk.image import read_image

    vol = read_image(str(DATA / "dicoms" / series))
    inst = np.array(vol.meta["instance_numbers"])  # [slice][phase]
    contours = {}
    for f in sorted(contour_dir.glob("*-contours/*.txt")):
        m = re.match(r"IM-0001-(\d+)-([io])contour-manual\.txt", f.name)
        if m:
            contours.setdefault(int(m.group(1)), {})[m.group(2)] = f
    sx, sy, _ = vol.spacing
    cache = {}
    rows = []
    for number, kinds in sorted(contours.items()):
        hit = np.argwhere(inst == number)
        if len(hit) != 1:
            continue
        z, t = (int(v) for v in hit[0])
        row = {"series": series, "image": number, "phase": t, "slice": z}
        for prefix, use_geometry in VARIANTS.items():
            if (t, prefix) not in cache:
                got = seg_model.predict_frame_detailed(vol.array[t], (sx, sy),
                                                       geometry=vol.ijk_to_ras if use_geometry else None)
                cache[t, prefix] = got.labels, got.reversed, got.order_source
            lab, reversed_, source = cache[t, prefix]
            pred = lab[z]
            row[f"{prefix}reversed"], row[f"{prefix}order_source"] = reversed_, source
            endo = contour_mask(kinds["i"], pred.shape) if "i" in kinds else None
            epi = contour_mask(kinds["o"], pred.shape) if "o" in kinds else None
            if endo is not None:
                row[f"{prefix}dice_lv_blood_pool"] = dice(pred == 1, endo)
            if epi is not None:
                row[f"{prefix}dice_lv_epicardium"] = dice((pred == 1) | (pred == 2), epi)
            if endo is not None and epi is not None:
                row[f"{prefix}dice_myocardium"] = dice(pred == 2, epi & ~endo)
        rows.append(row)
    return rows


def main():
    import argparse

    from cmrrisk.modeldir import write_json

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="cine", help="cine model name or folder (a candidate)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "sunnybrook_eval.json"))
    args = ap.parse_args()

    from cmrrisk.segmentation.infer import Segmenter

    if not DATA.is_dir():
        print(f"Sunnybrook data not found at {DATA}", file=sys.stderr)
        return 1
    seg = Segmenter.load(args.model)
    rows = []
    t0 = time.perf_counter()
    with open(DATA / "link.csv") as f:
        for r in csv.DictReader(f):
            rows += evaluate(seg, r["patient_id"], DATA / "contourfiles" / r["original_id"])
    summaries = {}
    for prefix in VARIANTS:
        summary = summaries[f"summary_{prefix}".rstrip("_")] = {}
        for key in ("dice_lv_blood_pool", "dice_lv_epicardium", "dice_myocardium"):
            vals = [r[prefix + key] for r in rows if prefix + key in r]
            summary[key] = {"mean": float(np.mean(vals)), "median": float(np.median(vals)), "n_images": len(vals)}
        phases = {(r["series"], r["phase"]): r[f"{prefix}reversed"] for r in rows}
        summary["phases_reversed"] = f"{sum(phases.values())} of {len(phases)}"
    res = {"benchmark": "cine model vs Sunnybrook expert contours (GE 1.5 T, external)",
           "model": args.model,
           "model_sha256": json.load(open(os.path.join(seg.model_dir, "checksums.json")))["model.safetensors"],
           **summaries, "images": rows, "seconds": round(time.perf_counter() - t0, 1)}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(str(out), res)
    print(json.dumps(summaries, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
