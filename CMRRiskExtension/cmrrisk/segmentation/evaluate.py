"""Evaluation of a segmenter against reference labels: Dice, HD95 and LVEF error at ED and ES."""

from __future__ import annotations

import math
import time

import numpy as np

from .. import labels as L
from ..datasets import AcdcSubject
from ..image import read_image, size_text
from ..metrics import clinical_indices, compare, dice, scar_burden_pct
from ..progress import as_progress


def _nanmean(vals):
    vals = [v for v in vals if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return float(np.mean(vals)) if vals else float("nan")


def volume_ratio(pred_mask, ref_mask) -> float:
    """Predicted / reference voxel count of two masks (NaN when the reference is empty)."""
    n_ref = int(np.count_nonzero(ref_mask))
    return np.count_nonzero(pred_mask) / n_ref if n_ref else float("nan")


def evaluate_acdc(segmenter, subjects: list[AcdcSubject], progress=None) -> dict:
    """Segment the ED and ES frames of each subject and compare with the reference
    (``progress``: a :class:`cmrrisk.progress.Progress`, updated per subject)."""
    progress = as_progress(progress)
    rows = []
    seconds = []
    for n, s in enumerate(subjects):
        row = {"subject": s.subject, "group": s.group}
        segs = {}
        for phase in ("ed", "es"):
            img = read_image(s.frame_path(phase))
            ref = L.map_labels(read_image(s.frame_path(phase, gt=True)).array, L.ACDC_TO_PROJECT)
            t0 = time.perf_counter()
            pred = segmenter.segment(img).array
            seconds.append(time.perf_counter() - t0)
            segs[phase] = (pred, ref, img.spacing)
            row[phase] = compare(pred, ref, img.spacing)
        sp = segs["ed"][2]
        ip = clinical_indices(segs["ed"][0], segs["es"][0], sp)
        ir = clinical_indices(segs["ed"][1], segs["es"][1], sp)
        row["indices_pred"] = ip
        row["indices_ref"] = ir
        rows.append(row)
        progress.update(n + 1, len(subjects), f"{s.subject} evaluated")
    return {"subjects": rows, "summary": summarize(rows), "seconds_per_frame_median": float(np.median(seconds))}


def summarize(rows: list[dict]) -> dict:
    out = {}
    for lab in L.CINE_LABELS:
        name = L.SEGMENTS[lab][0]
        d = {}
        for phase in ("ed", "es"):
            d[f"dice_{phase}"] = _nanmean([r[phase][name]["dice"] for r in rows])
            d[f"hd95_mm_{phase}"] = _nanmean([r[phase][name]["hd95_mm"] for r in rows])
        d["dice_mean"] = (d["dice_ed"] + d["dice_es"]) / 2
        out[name] = d
    for key in ("lv_ef_pct", "rv_ef_pct", "lv_edv_ml", "lv_esv_ml", "lv_mass_g"):
        err = np.array([r["indices_pred"][key] - r["indices_ref"][key] for r in rows], dtype=float)
        err = err[np.isfinite(err)]
        out[key + "_error"] = {
            "mae": float(np.mean(np.abs(err))) if len(err) else float("nan"),
            "bias": float(np.mean(err)) if len(err) else float("nan"),
            "sd": float(np.std(err, ddof=1)) if len(err) > 1 else float("nan"),
        }
    out["n_subjects"] = len(rows)
    return out


def _reference_index(ref_dir: str) -> dict:
    """{file name: path} of every file under ``ref_dir`` (first one found wins)."""
    import os

    index = {}
    for root, _dirs, files in sorted(os.walk(ref_dir)):
        for f in sorted(files):
            index.setdefault(f, os.path.join(root, f))
    return index


def _find_reference(index: dict, name: str) -> str | None:
    for c in (f"{name}_gt.nii.gz", f"{name}_seg.nii.gz", f"{name}.nii.gz", f"{name}_gt.nii",
              f"{name}.nrrd", f"{name}_seg.nrrd"):
        if c in index:
            return index[c]
    return None


#: structures of an LGE comparison: name -> labels counted together
LGE_STRUCTURES = {"LV blood pool": (L.LV_BLOOD_POOL,), "Myocardium (all)": tuple(L.MYOCARDIAL),
                  "Scar + MVO": tuple(L.SCAR_WITH_MVO), "Microvascular obstruction": (L.MVO,)}


def is_lge_pair(pred: np.ndarray, ref: np.ndarray) -> bool:
    """An LGE comparison when scar or MVO labels appear in the prediction or the reference."""
    return bool(np.isin(pred, L.SCAR_WITH_MVO).any() or np.isin(ref, L.SCAR_WITH_MVO).any())


#: per-case failure thresholds of an LGE evaluation: scar (scar + MVO) Dice below this on a case
#: whose reference has scar, or an absolute scar-burden error above this many percentage points
FAIL_SCAR_DICE = 0.30
FAIL_BURDEN_ERROR_PP = 5.0


def lge_failure(name: str, scar_dice, burden_pred, burden_ref) -> dict | None:
    """``{"name", "reasons", "scar_dice", "burden_pred_pct", "burden_ref_pct", "burden_error_pp"}``
    when a case fails (:data:`FAIL_SCAR_DICE`, :data:`FAIL_BURDEN_ERROR_PP`), else None.
    ``scar_dice`` is None where the reference has no scar (not scored)."""
    reasons = []
    if scar_dice is not None and math.isfinite(scar_dice) and scar_dice < FAIL_SCAR_DICE:
        reasons.append(f"scar Dice {scar_dice:.2f} < {FAIL_SCAR_DICE:.2f}")
    err = float(burden_pred) - float(burden_ref) if burden_pred is not None and burden_ref is not None else float("nan")
    if math.isfinite(err) and abs(err) > FAIL_BURDEN_ERROR_PP:
        reasons.append(f"scar burden {burden_pred:.1f} % vs reference {burden_ref:.1f} % "
                       f"(error {err:+.1f} points, more than {FAIL_BURDEN_ERROR_PP:g})")
    if not reasons:
        return None
    return {"name": name, "reasons": reasons, "scar_dice": scar_dice, "burden_pred_pct": burden_pred,
            "burden_ref_pct": burden_ref, "burden_error_pp": err}


def compare_lge(pred: np.ndarray, ref: np.ndarray, spacing_xyz) -> dict:
    """Dice, HD95 and volumes of LGE structures (:data:`LGE_STRUCTURES`) and the scar burden of
    both. Scar + MVO is scored only when the reference has scar, MVO only when it has MVO (an
    empty reference would give Dice 1.0 to an empty prediction and inflate the means)."""
    from ..metrics import mask_metrics

    out = {}
    for name, labs in LGE_STRUCTURES.items():
        p, r = np.isin(pred, labs), np.isin(ref, labs)
        if name in ("Scar + MVO", "Microvascular obstruction") and not r.any():
            continue
        out[name] = mask_metrics(p, r, spacing_xyz)
    out["scar_burden_pct"] = {"pred": scar_burden_pct(pred), "ref": scar_burden_pct(ref)}
    return out


def _frames_of(pred, ref, name: str) -> list:
    """(name, pred array, ref array, phase) per frame to compare: the frame itself, or each
    phase of a 4D cine that the reference labels (phases without reference labels are skipped)."""
    if pred.ndim == 3:
        return [(name, pred, ref, None)]
    return [(f"{name}_phase{t:02d}", pred[t], ref[t], t) for t in range(pred.shape[0]) if ref[t].any()]


def _check_label_map(arr, path: str, role: str) -> None:
    """Refuse an array that is not a project label map: non-integer values (an intensity image)
    or values outside 0-5; the message names the file and the values."""
    from ..errors import CMRRiskError

    values = np.unique(arr)
    if np.issubdtype(values.dtype, np.floating) and not np.all(values == np.round(values)):
        raise CMRRiskError(f"{path}: the {role} has non-integer values ({values.size} distinct, e.g. "
                           f"{values[values != np.round(values)][0]:g}); it looks like an image, not a label map.")
    allowed = {L.BACKGROUND, *L.SEGMENTS}
    unknown = sorted(int(v) for v in values if int(v) not in allowed)
    if unknown:
        raise CMRRiskError(f"{path}: the {role} has label values {unknown[:10]} outside the project's labels "
                           f"{sorted(allowed)} (1 LV blood pool, 2 LV myocardium, 3 RV, 4 scar, 5 MVO)"
                           + ("; ACDC references: add --ref-labels acdc." if role == "reference" else "."))


def evaluate_folders(pred_dir: str, ref_dir: str, ref_labels: str = "cmrrisk") -> dict:
    """Compare every ``<name>_seg.nii.gz`` in ``pred_dir`` with the reference ``<name>_gt``,
    ``<name>_seg`` or ``<name>`` found (recursively) in ``ref_dir``.

    Frames named ``<subject>_frameNN`` are grouped by subject; a subject with two frames gets
    clinical indices from both segmentations. ED and ES come from an ACDC ``Info.cfg`` beside the
    reference when there is one, else ED is the frame with the larger reference LV volume.
    A 4D prediction (a cine, as ``cmrrisk segment`` writes it) is compared phase by phase
    wherever its 4D reference has labels (frames ``<name>_phaseTT``); two such phases make an
    ED/ES pair. A frame with scar or MVO labels (prediction or reference) is an LGE frame:
    LV blood pool, all myocardial labels together, scar + MVO, MVO and the scar burden
    (:func:`compare_lge`).
    """
    import os
    import re

    from ..datasets import read_info_cfg
    from ..errors import CMRRiskError

    if not os.path.isdir(pred_dir):
        raise CMRRiskError(f"{pred_dir}: no such folder (--pred).")
    if not os.path.isdir(ref_dir):
        raise CMRRiskError(f"{ref_dir}: no such folder (--ref).")
    if ref_labels not in ("cmrrisk", "acdc"):
        raise CMRRiskError(f"--ref-labels {ref_labels!r}: use cmrrisk or acdc.")
    preds = sorted(f for f in os.listdir(pred_dir) if f.endswith("_seg.nii.gz"))
    if not preds:
        raise CMRRiskError(f"{pred_dir}: no *_seg.nii.gz files to evaluate.")
    frames = []
    missing = []
    index = _reference_index(ref_dir)
    for f in preds:
        name = f[: -len("_seg.nii.gz")]
        ref_path = _find_reference(index, name)
        if ref_path is None:
            missing.append(name)
            continue
        pred_path = os.path.join(pred_dir, f)
        if os.path.realpath(ref_path) == os.path.realpath(pred_path):
            raise CMRRiskError(f"{pred_path}: found as its own reference (--pred and --ref hold the same "
                               "files); give --ref the folder with the reference label maps.")
        pred = read_image(pred_path)
        ref = read_image(ref_path)
        if pred.array.shape != ref.array.shape:
            raise CMRRiskError(f"{pred_path}: size {size_text(pred.array.shape)} differs from reference "
                               f"{ref_path} {size_text(ref.array.shape)} (columns x rows x slices).")
        _check_label_map(pred.array, pred_path, "prediction")
        if ref_labels == "acdc":
            try:
                ref_arr = L.map_labels(ref.array, L.ACDC_TO_PROJECT)
            except ValueError as exc:
                raise CMRRiskError(f"{ref_path}: {exc} (ACDC labels are 0-3); check the file or drop "
                                   "--ref-labels acdc.") from None
        else:
            _check_label_map(ref.array, ref_path, "reference")
            ref_arr = ref.array
        if pred.array.ndim == 4 and not ref_arr.any():
            raise CMRRiskError(f"{ref_path}: the 4D reference has no labels in any phase.")
        for fname, p_arr, r_arr, phase in _frames_of(pred.array, ref_arr, name):
            lge = is_lge_pair(p_arr, r_arr)
            frames.append({"name": fname, "pred": p_arr, "ref": r_arr, "spacing": ref.spacing,
                           "ref_path": ref_path, "kind": "lge" if lge else "cine", "phase": phase,
                           "source": name,
                           "metrics": compare_lge(p_arr, r_arr, ref.spacing) if lge
                           else compare(p_arr, r_arr, ref.spacing)})
    if not frames:
        raise CMRRiskError(f"{ref_dir}: no reference found for any prediction (looked for "
                           f"<name>_gt.nii.gz, <name>_seg.nii.gz, <name>.nii.gz).")

    subjects = {}
    for fr in frames:
        if fr["kind"] != "cine":
            continue
        if fr["phase"] is not None:  # phases of one 4D cine
            subjects.setdefault(fr["source"], []).append((fr["phase"], fr))
            continue
        m = re.match(r"(.+)_frame(\d+)$", fr["name"])
        if m:
            subjects.setdefault(m.group(1), []).append((int(m.group(2)), fr))
    pairs = []
    for subj, items in sorted(subjects.items()):
        if len(items) != 2:
            continue
        items.sort(key=lambda it: it[0])
        cfg = os.path.join(os.path.dirname(items[0][1]["ref_path"]), "Info.cfg")
        ed_fr = es_fr = None
        if os.path.isfile(cfg) and items[0][1]["phase"] is None:
            info = read_info_cfg(cfg)
            by_num = {n: fr for n, fr in items}
            ed_fr, es_fr = by_num.get(int(info.get("ED", -1))), by_num.get(int(info.get("ES", -1)))
        if ed_fr is None or es_fr is None:
            a, b = items[0][1], items[1][1]
            va = (a["ref"] == L.LV_BLOOD_POOL).sum()
            vb = (b["ref"] == L.LV_BLOOD_POOL).sum()
            ed_fr, es_fr = (a, b) if va >= vb else (b, a)
        sp = ed_fr["spacing"]
        pairs.append({"subject": subj, "ed": ed_fr["name"], "es": es_fr["name"],
                      "indices_pred": clinical_indices(ed_fr["pred"], es_fr["pred"], sp),
                      "indices_ref": clinical_indices(ed_fr["ref"], es_fr["ref"], sp)})

    summary = {}
    cine = [f for f in frames if f["kind"] == "cine"]
    lge = [f for f in frames if f["kind"] == "lge"]
    for lab in L.CINE_LABELS if cine else ():
        name = L.SEGMENTS[lab][0]
        summary[name] = {"dice_mean": _nanmean([f["metrics"][name]["dice"] for f in cine]),
                         "hd95_mm_mean": _nanmean([f["metrics"][name]["hd95_mm"] for f in cine]),
                         "n_frames": len(cine)}
    for name in LGE_STRUCTURES if lge else ():
        scored = [f["metrics"][name] for f in lge if name in f["metrics"]]
        summary[f"LGE {name}"] = {"dice_mean": _nanmean([m["dice"] for m in scored]),
                                  "hd95_mm_mean": _nanmean([m["hd95_mm"] for m in scored]),
                                  "n_frames": len(scored)}
    if lge:
        err = np.array([f["metrics"]["scar_burden_pct"]["pred"] - f["metrics"]["scar_burden_pct"]["ref"]
                        for f in lge], float)
        err = err[np.isfinite(err)]
        summary["scar_burden_pct_error"] = {
            "median_abs": float(np.median(np.abs(err))) if len(err) else float("nan"),
            "bias": float(np.mean(err)) if len(err) else float("nan")}
    failures = []
    for f in lge:
        m = f["metrics"]
        fail = lge_failure(f["name"], m["Scar + MVO"]["dice"] if "Scar + MVO" in m else None,
                           m["scar_burden_pct"]["pred"], m["scar_burden_pct"]["ref"])
        if fail:
            failures.append(fail)
    if lge:
        summary["lge_failures"] = {"n_failed": len(failures), "n_lge_frames": len(lge),
                                   "scar_dice_below": FAIL_SCAR_DICE, "burden_error_above_pp": FAIL_BURDEN_ERROR_PP}
    if pairs:
        for key in ("lv_edv_ml", "lv_esv_ml", "lv_ef_pct", "lv_mass_g", "rv_edv_ml", "rv_esv_ml", "rv_ef_pct"):
            err = np.array([p["indices_pred"][key] - p["indices_ref"][key] for p in pairs], float)
            err = err[np.isfinite(err)]
            summary[key + "_error"] = {"mae": float(np.mean(np.abs(err))) if len(err) else float("nan"),
                                       "bias": float(np.mean(err)) if len(err) else float("nan")}
    return {
        "frames": [{"name": f["name"], "reference": f["ref_path"], "kind": f["kind"],
                    **({"phase": f["phase"]} if f["phase"] is not None else {}), "metrics": f["metrics"]}
                   for f in frames],
        "subjects": pairs,
        "lge_failures": failures,
        "missing_reference": missing,
        "summary": summary,
    }


def evaluate_emidec(segmenter, cases, progress=None) -> dict:
    """Per case: Dice of the whole myocardium, of scar (scar + MVO) on infarct cases, of MVO
    where the reference has MVO, scar-burden error (percentage points) and the predicted /
    reference whole-myocardium volume (a systematic under- or over-segmentation shows there)."""
    from ..datasets import read_emidec_case
    from ..image import Volume

    progress = as_progress(progress)
    rows, seconds = [], []
    for n, c in enumerate(cases):
        img, ref = read_emidec_case(c)
        t0 = time.perf_counter()
        pred = segmenter.segment(Volume(img, np.eye(4), c.case)).array
        seconds.append(time.perf_counter() - t0)
        row = {"case": c.case, "group": c.group,
               "dice_myocardium": dice(np.isin(pred, L.MYOCARDIAL), np.isin(ref, L.MYOCARDIAL)),
               "dice_lv_blood_pool": dice(pred == L.LV_BLOOD_POOL, ref == L.LV_BLOOD_POOL),
               "scar_burden_pred_pct": scar_burden_pct(pred),
               "scar_burden_ref_pct": scar_burden_pct(ref),
               "myocardium_volume_ratio": volume_ratio(np.isin(pred, L.MYOCARDIAL), np.isin(ref, L.MYOCARDIAL))}
        if c.group == "infarct":
            row["dice_scar"] = dice(np.isin(pred, L.SCAR_WITH_MVO), np.isin(ref, L.SCAR_WITH_MVO))
        if (ref == L.MVO).any():
            row["dice_mvo"] = dice(pred == L.MVO, ref == L.MVO)
        rows.append(row)
        progress.update(n + 1, len(cases), f"{c.case} evaluated")
    failures = [f for f in (lge_failure(r["case"], r.get("dice_scar"), r["scar_burden_pred_pct"],
                                        r["scar_burden_ref_pct"]) for r in rows) if f]
    err = np.array([r["scar_burden_pred_pct"] - r["scar_burden_ref_pct"] for r in rows], float)
    err = err[np.isfinite(err)]
    summary = {
        "dice_myocardium": _nanmean([r["dice_myocardium"] for r in rows]),
        "dice_lv_blood_pool": _nanmean([r["dice_lv_blood_pool"] for r in rows]),
        "dice_scar_infarct_cases": _nanmean([r.get("dice_scar") for r in rows]),
        "dice_mvo_cases_with_mvo": _nanmean([r.get("dice_mvo") for r in rows]),
        "scar_burden_abs_error_median_pp": float(np.median(np.abs(err))) if len(err) else float("nan"),
        "scar_burden_bias_pp": float(np.mean(err)) if len(err) else float("nan"),
        "myocardium_volume_ratio_median": float(np.nanmedian([r["myocardium_volume_ratio"] for r in rows])),
        "n_subjects": len(rows),
        "n_infarct": sum(r["group"] == "infarct" for r in rows),
        "n_failed": len(failures),
    }
    return {"subjects": rows, "summary": summary, "failures": failures, "seconds_per_frame_median": float(np.median(seconds))}
