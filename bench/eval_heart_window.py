"""Heart window for the later frames of a cine against whole-image inference.

When a frame is segmented after another frame of the same cine (the ES frame anchored to ED;
every phase of a 4D cine after the first), `Segmenter` runs the network only on the first
frame's heart (bounding box of its labels) widened by ``Segmenter.HEART_WINDOW_MARGIN_MM``
(:meth:`Segmenter.heart_window`); outside it the frame is background. This bench measures what
that changes and what it saves, each frame segmented both ways in turn (same machine state):

- ACDC: the 20 validation subjects of the cine development model (bench/devmodels.py), ED
  segmented over the whole image, ES anchored to it, whole image vs window: ES Dice per
  structure against the reference, LVEF error, share of ES voxels whose label differs;
- synthetic: ``--n`` subjects of the synthetic cohort (``--seed``), the same with the bundled model;
- Sunnybrook: the two GE cine series (20 phases) through ``Segmenter.segment_phases`` (the 4D
  path of ``cmrrisk segment`` and CMRRisk Segment, slice order from the DICOM geometry) with
  the bundled model, whole vs window:
  Dice against the expert contours (as bench/eval_sunnybrook.py), voxels that differ, seconds
  per series.

Also the window's share of the network grid and the median seconds per frame.
Writes bench/results/heart_window.json.

    .venv/bin/python bench/eval_heart_window.py [--n 30] [--seed 2] [--threads 2] [--margin MM] [--parts ...]
"""

import argparse
import csv
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "CMRRiskExtension"))
sys.path.insert(0, str(ROOT / "bench"))
DATA = Path(os.environ.get("CMRRISK_DATA", ROOT.parent / "shared" / "data"))
VARIANTS = ("whole", "window")


def _variants(model: str):
    """Two segmenters sharing one network: heart window off / on. Records window areas."""
    from cmrrisk.segmentation.infer import Segmenter

    base = Segmenter.load(model, tta=False)
    whole = Segmenter(base.net, base.config, base.model_dir, base.device, tta=False)
    whole.HEART_WINDOW_MARGIN_MM = None
    window = Segmenter(base.net, base.config, base.model_dir, base.device, tta=False)
    areas = []
    inner = window.heart_window

    def record(labels, valid, grid, inner=inner):
        w = inner(labels, valid, grid)
        areas.append(1.0 if w is None else (w[1] - w[0]) * (w[3] - w[2]) / (grid[0] * grid[1]))
        return w
    window.heart_window = record
    return {"whole": whole, "window": window}, areas


def _ed_es_pairs(pairs, model: str) -> dict:
    """pairs: (subject, ed image, es image, ed ref, es ref, spacing) -> per-variant ES scores."""
    from cmrrisk import labels as L
    from cmrrisk.metrics import clinical_indices, dice

    segs, areas = _variants(model)
    rows, times = [], {v: [] for v in VARIANTS}
    for subject, ed_img, es_img, ed_ref, es_ref, spacing in pairs:
        ed = segs["whole"].predict_frame(ed_img, spacing[:2])
        ref_ef = clinical_indices(ed_ref, es_ref, spacing)["lv_ef_pct"]
        row, es = {"subject": subject}, {}
        for v in VARIANTS:
            t0 = time.perf_counter()
            es[v] = segs[v].predict_frame(es_img, spacing[:2], prior=ed)
            times[v].append(time.perf_counter() - t0)
            for lab, name in ((L.LV_BLOOD_POOL, "lv"), (L.LV_MYOCARDIUM, "myo"), (L.RV_BLOOD_POOL, "rv")):
                row[f"{v}_dice_es_{name}"] = dice(es[v] == lab, es_ref == lab)
            row[f"{v}_lvef_error_pp"] = clinical_indices(ed, es[v], spacing)["lv_ef_pct"] - ref_ef
        row["voxels_differing_pct"] = 100.0 * float((es["whole"] != es["window"]).mean())
        heart = (es["whole"] > 0) | (es["window"] > 0)
        row["heart_voxels_differing_pct"] = 100.0 * float((es["whole"] != es["window"])[heart].mean()) if heart.any() else 0.0
        rows.append(row)
    keys = [k for k in rows[0] if k != "subject"]
    summary = {k: float(np.mean([r[k] for r in rows])) for k in keys if "error" not in k}
    for v in VARIANTS:
        e = np.abs([r[f"{v}_lvef_error_pp"] for r in rows])
        summary[f"{v}_lvef_mae_pp"] = float(e.mean())
        summary[f"{v}_seconds_per_es_frame_median"] = statistics.median(times[v])
    summary["window_share_of_grid_mean"] = float(np.mean(areas)) if areas else None
    summary["n"] = len(rows)
    return {"summary": summary, "subjects": rows}


def _acdc() -> dict | None:
    from devmodels import held_out

    from cmrrisk import labels as L
    from cmrrisk.datasets import list_acdc
    from cmrrisk.image import read_image

    acdc = DATA / "acdc" / "training"
    if not acdc.is_dir():
        print(f"{acdc} not found: ACDC part skipped", file=sys.stderr)
        return None
    model_dir, val = held_out("cine")
    pairs = []
    for s in list_acdc(str(acdc)):
        if s.subject not in val:
            continue
        im = {ph: read_image(s.frame_path(ph)) for ph in ("ed", "es")}
        rf = {ph: L.map_labels(read_image(s.frame_path(ph, gt=True)).array, L.ACDC_TO_PROJECT) for ph in ("ed", "es")}
        pairs.append((s.subject, im["ed"].array, im["es"].array, rf["ed"], rf["es"], im["ed"].spacing))
    out = _ed_es_pairs(pairs, model_dir)
    out["model"] = os.path.relpath(model_dir, ROOT)
    return out


def _synthetic(n: int, seed: int) -> dict:
    from cmrrisk.image import read_image
    from cmrrisk.manifest import read_manifest
    from cmrrisk.synthetic import VERSION, generate_cohort

    with tempfile.TemporaryDirectory() as tmp:
        man = read_manifest(generate_cohort(tmp, n=n, seed=seed, progress=False), require_images=True)
        pairs = []
        for r in man.rows:
            im = {ph: read_image(r[f"cine_{ph}"]) for ph in ("ed", "es")}
            rf = {ph: read_image(r[f"cine_{ph}_seg"]).array for ph in ("ed", "es")}
            pairs.append((r["subject"], im["ed"].array.astype(np.float32), im["es"].array.astype(np.float32),
                          rf["ed"], rf["es"], im["ed"].spacing))
        out = _ed_es_pairs(pairs, "cine")
    out.update(model="cine (bundled)", generator_version=VERSION, seed=seed)
    return out


def _sunnybrook() -> dict | None:
    import re

    from eval_sunnybrook import contour_mask, dice

    from cmrrisk.image import read_image

    root = DATA / "sunnybrook"
    if not root.is_dir():
        print(f"{root} not found: Sunnybrook part skipped", file=sys.stderr)
        return None
    segs, areas = _variants("cine")
    series_rows, image_rows = [], []
    with open(root / "link.csv") as f:
        links = list(csv.DictReader(f))
    for link in links:
        vol = read_image(str(root / "dicoms" / link["patient_id"]))
        labels, secs, got = {}, {}, {}
        for v in VARIANTS:
            t0 = time.perf_counter()
            got[v] = segs[v].segment_detailed(vol)
            labels[v] = got[v].volume.array
            secs[v] = time.perf_counter() - t0
        diff = labels["whole"] != labels["window"]
        series_rows.append({"series": link["patient_id"], "phases": int(vol.array.shape[0]),
                            "reversed": got["window"].reversed,
                            "order_source": got["window"].order_source,
                            "seconds_whole": round(secs["whole"], 2), "seconds_window": round(secs["window"], 2),
                            "voxels_differing_pct": 100.0 * float(diff.mean()),
                            "phases_with_any_difference": int(diff.reshape(diff.shape[0], -1).any(1).sum())})
        inst = np.array(vol.meta["instance_numbers"])
        contour_dir = root / "contourfiles" / link["original_id"]
        for fpath in sorted(contour_dir.glob("*-contours/*.txt")):
            m = re.match(r"IM-0001-(\d+)-([io])contour-manual\.txt", fpath.name)
            if not m:
                continue
            hit = np.argwhere(inst == int(m.group(1)))
            if len(hit) != 1:
                continue
            z, t = (int(a) for a in hit[0])
            ref = contour_mask(fpath, labels["whole"].shape[-2:])
            row = {"series": link["patient_id"], "image": int(m.group(1)), "contour": m.group(2), "phase": t}
            for v in VARIANTS:
                pred = labels[v][t, z]
                row[f"{v}_dice"] = dice(pred == 1, ref) if m.group(2) == "i" else dice((pred == 1) | (pred == 2), ref)
            image_rows.append(row)
    summary = {}
    for kind, name in (("i", "lv_blood_pool"), ("o", "lv_epicardium")):
        for v in VARIANTS:
            vals = [r[f"{v}_dice"] for r in image_rows if r["contour"] == kind]
            summary[f"{v}_dice_{name}_mean"] = float(np.mean(vals)) if vals else None
        summary[f"n_images_{name}"] = sum(r["contour"] == kind for r in image_rows)
    for v in VARIANTS:
        summary[f"{v}_seconds_per_series"] = float(np.mean([r[f"seconds_{v}"] for r in series_rows]))
    summary["window_share_of_grid_mean"] = float(np.mean(areas)) if areas else None
    return {"model": "cine (bundled)", "summary": summary, "series": series_rows, "images": image_rows}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=30, help="synthetic subjects")
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--margin", type=float, default=None, help="override HEART_WINDOW_MARGIN_MM")
    ap.add_argument("--parts", default="acdc_validation,sunnybrook_4d,synthetic")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "heart_window.json"))
    args = ap.parse_args()
    import torch

    from cmrrisk.modeldir import write_json
    from cmrrisk.segmentation.infer import Segmenter

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.margin is not None:
        Segmenter.HEART_WINDOW_MARGIN_MM = args.margin
    t0 = time.time()
    res = {"command": "python bench/eval_heart_window.py " + " ".join(sys.argv[1:]),
           "margin_mm": Segmenter.HEART_WINDOW_MARGIN_MM, "torch_threads": torch.get_num_threads(),
           "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    for name, fn in (("acdc_validation", _acdc), ("sunnybrook_4d", _sunnybrook),
                     ("synthetic", lambda: _synthetic(args.n, args.seed))):
        if name not in args.parts.split(","):
            continue
        part = fn()
        if part is not None:
            res[name] = part
            print(name, {k: (round(v, 4) if isinstance(v, float) else v) for k, v in part["summary"].items()},
                  flush=True)
    res["seconds"] = round(time.time() - t0, 1)
    write_json(args.out, res)
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
