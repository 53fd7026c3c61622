"""Does storing the bundled segmentation weights in float16 change the segmentations?

For the bundled ``cine`` and ``lge`` models, a copy of the model folder is written with every
floating-point tensor of ``model.safetensors`` stored as float16 (checksums rewritten), loaded
through the normal loader (which casts float16 back to float32) and run beside the float32
weights on real cases: ACDC subjects (ED and ES frames) for ``cine``, EMIDEC cases for ``lge``.
Reported per model: Dice per structure of each variant against the reference segmentation, and
the fraction of voxels on which the two variants give the same label. The bundled models were
trained on all subjects of their data set, so the Dice values are not held-out figures; they
only show whether float16 storage moves them. The "float32" variant is the given weights as
float32, the "float16" variant their rounding to float16; the JSON records the dtype the given
files held (``weights_dtype``). The recorded results were measured on the float32 weights before
the bundled files were converted (``cmrrisk.modeldir.store_half``). The bundled files now hold
float16, so both variants are then the same weights; to repeat the comparison, give folders of
float32 weights with ``--cine`` / ``--lge`` (the float32 files are in the repository's history).

Writes bench/results/half_precision.json. One intra-op thread by default.

    .venv/bin/python bench/eval_half_precision.py [--acdc 10] [--emidec 10] [--threads 1] [--cine DIR] [--lge DIR]
"""

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "CMRRiskExtension"))
DATA = Path(os.environ.get("CMRRISK_DATA", ROOT.parent / "shared" / "data"))


def precision_copy(model: str, dtype, folder: str, name: str) -> str:
    """A copy of a model folder (bundled name or path) whose floating-point weights are stored
    as ``dtype``."""
    from safetensors.torch import load_file, save_file

    from cmrrisk import modeldir

    src = modeldir.resolve(model)
    dst = os.path.join(folder, f"{name}_{str(dtype).split('.')[-1]}")
    shutil.copytree(src, dst)
    state = load_file(os.path.join(src, modeldir.WEIGHTS))
    save_file({k: (v.float().to(dtype) if v.is_floating_point() else v).contiguous() for k, v in state.items()},
              os.path.join(dst, modeldir.WEIGHTS))
    modeldir.write_checksums(dst)
    return dst


def structures(task: str) -> dict:
    from cmrrisk import labels as L

    if task == "cine":
        return {"lv_blood_pool": [L.LV_BLOOD_POOL], "myocardium": list(L.MYOCARDIAL), "rv_blood_pool": [L.RV_BLOOD_POOL]}
    return {"myocardium": list(L.MYOCARDIAL), "lv_blood_pool": [L.LV_BLOOD_POOL], "scar_with_mvo": list(L.SCAR_WITH_MVO),
            "mvo": [L.MVO]}


def cases(task: str, n: int):
    """(name, Volume, reference label array) of the first ``n`` subjects by name (ACDC: ED and ES
    each; EMIDEC: half infarct, half normal cases)."""
    from cmrrisk import labels as L
    from cmrrisk.datasets import list_acdc, list_emidec, read_emidec_case
    from cmrrisk.image import Volume, read_image

    if task == "cine":
        for s in sorted(list_acdc(str(DATA / "acdc" / "training")), key=lambda s: s.subject)[:n]:
            for phase in ("ed", "es"):
                ref = L.map_labels(read_image(s.frame_path(phase, gt=True)).array, L.ACDC_TO_PROJECT)
                yield f"{s.subject}_{phase}", read_image(s.frame_path(phase)), ref
    else:
        all_cases = list_emidec(str(DATA / "emidec"))
        infarct = sorted((c for c in all_cases if c.group == "infarct"), key=lambda c: c.case)[:n - n // 2]
        normal = sorted((c for c in all_cases if c.group != "infarct"), key=lambda c: c.case)[:n // 2]
        for c in infarct + normal:
            img, ref = read_emidec_case(c)
            yield c.case, Volume(img, np.eye(4), c.case), ref


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--acdc", type=int, default=10, help="ACDC subjects for the cine model (ED and ES each)")
    ap.add_argument("--emidec", type=int, default=10, help="EMIDEC cases for the lge model")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cine", default="cine", help="cine model: bundled name or folder (default: bundled)")
    ap.add_argument("--lge", default="lge", help="lge model: bundled name or folder (default: bundled)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "half_precision.json"))
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    from cmrrisk import modeldir
    from cmrrisk.metrics import dice
    from cmrrisk.segmentation.infer import Segmenter

    out = {"threads": args.threads, "torch": torch.__version__, "models": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for task, n in (("cine", args.acdc), ("lge", args.emidec)):
            if n <= 0:
                continue
            source = getattr(args, task)
            path = modeldir.resolve(source)
            from safetensors import safe_open

            with safe_open(os.path.join(path, modeldir.WEIGHTS), "pt") as f:
                stored = {str(f.get_slice(k).get_dtype()) for k in f.keys()}
            seg = {p: Segmenter.load(precision_copy(source, getattr(torch, p), tmp, task))
                   for p in ("float32", "float16")}
            sizes = {p: os.path.getsize(os.path.join(s.model_dir, modeldir.WEIGHTS)) for p, s in seg.items()}
            struct = structures(task)
            rows = []
            t0 = time.perf_counter()
            for name, vol, ref in cases(task, n):
                pred = {p: s.segment(vol).array for p, s in seg.items()}
                row = {"case": name, "voxel_agreement": float((pred["float32"] == pred["float16"]).mean()),
                       "voxels_differing": int((pred["float32"] != pred["float16"]).sum())}
                for p in pred:
                    for k, labs in struct.items():
                        if k == "mvo" and not np.isin(ref, labs).any():
                            continue  # Dice of MVO only where the reference has MVO
                        row[f"dice_{k}_{p}"] = dice(np.isin(pred[p], labs), np.isin(ref, labs))
                rows.append(row)
                print(task, name, f"agreement {row['voxel_agreement']:.6f}", flush=True)
            summary = {"n_cases": len(rows),
                       "voxel_agreement_min": min(r["voxel_agreement"] for r in rows),
                       "voxel_agreement_mean": float(np.mean([r["voxel_agreement"] for r in rows])),
                       "voxels_differing_total": sum(r["voxels_differing"] for r in rows)}
            for k in struct:
                for p in ("float32", "float16"):
                    v = [r[f"dice_{k}_{p}"] for r in rows if f"dice_{k}_{p}" in r]
                    summary[f"dice_{k}_{p}_mean"] = float(np.mean(v)) if v else None
            dice_keys = [f"dice_{k}" for k in struct]
            summary["dice_max_abs_difference"] = max(
                abs(r[f"{k}_float32"] - r[f"{k}_float16"]) for r in rows for k in dice_keys if f"{k}_float32" in r)
            out["models"][task] = {"weights_sha256": modeldir.sha256(os.path.join(path, modeldir.WEIGHTS)),
                                   "weights_dtype": sorted(stored), "weights_bytes": sizes,
                                   "data": "ACDC training, first subjects by name, ED and ES" if task == "cine"
                                   else "EMIDEC, first infarct and normal cases by name",
                                   "summary": summary, "cases": rows,
                                   "seconds": time.perf_counter() - t0}
            print(task, summary, flush=True)
    modeldir.write_json(args.out, out)
    print("wrote", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
