"""Segmentation metrics (Dice, HD95) and clinical indices from label maps."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from . import labels as L

MYOCARDIUM_DENSITY_G_PER_ML = 1.05


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two boolean masks; 1.0 when both are empty."""
    a = a.astype(bool)
    b = b.astype(bool)
    s = a.sum() + b.sum()
    if s == 0:
        return 1.0
    return float(2.0 * np.logical_and(a, b).sum() / s)


def _surface(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndimage.binary_erosion(mask, structure=ndimage.generate_binary_structure(3, 1))


def hd95(a: np.ndarray, b: np.ndarray, spacing_zyx) -> float:
    """95th percentile symmetric Hausdorff distance (mm) between mask surfaces; NaN if one is empty."""
    a = a.astype(bool)
    b = b.astype(bool)
    if not a.any() or not b.any():
        return float("nan")
    sa, sb = _surface(a), _surface(b)
    da = ndimage.distance_transform_edt(~sb, sampling=spacing_zyx)[sa]
    db = ndimage.distance_transform_edt(~sa, sampling=spacing_zyx)[sb]
    return float(np.percentile(np.concatenate([da, db]), 95))


def voxel_ml(spacing_xyz) -> float:
    return float(np.prod(spacing_xyz)) / 1000.0


def volumes_ml(seg: np.ndarray, spacing_xyz) -> dict:
    v = voxel_ml(spacing_xyz)
    return {
        "lv_ml": float((seg == L.LV_BLOOD_POOL).sum() * v),
        "myo_ml": float((seg == L.LV_MYOCARDIUM).sum() * v),
        "rv_ml": float((seg == L.RV_BLOOD_POOL).sum() * v),
    }


def scar_burden_pct(seg: np.ndarray) -> float:
    """Scar (scar + MVO) as a percentage of the LV myocardium (healthy + scar + MVO)."""
    myo = np.isin(seg, L.MYOCARDIAL).sum()
    scar = np.isin(seg, L.SCAR_WITH_MVO).sum()
    return float(100.0 * scar / myo) if myo else float("nan")


def lge_measures(seg: np.ndarray, spacing_xyz, image=None, ijk_to_ras=None, **scar_kw) -> dict:
    """Scar burden and myocardium / scar / MVO volumes (mL) of an LGE label map.

    With ``ijk_to_ras`` (the label map's geometry) the result also holds ``aha`` (scar and
    transmurality per AHA segment and per slice) and, with ``image`` (the LGE intensities),
    ``intensity_methods`` (n-SD and FWHM scar burdens and their Dice with the labels' scar):
    see :mod:`cmrrisk.scar`; ``scar_kw`` goes to :func:`cmrrisk.scar.scar_report`. When that
    analysis is impossible (no myocardium) ``scar_analysis_error`` says why instead.
    """
    v = voxel_ml(spacing_xyz)
    out = {
        "scar_burden_pct": scar_burden_pct(seg),
        "myocardium_ml": float(np.isin(seg, L.MYOCARDIAL).sum() * v),
        "scar_ml": float(np.isin(seg, L.SCAR_WITH_MVO).sum() * v),
        "mvo_ml": float((seg == L.MVO).sum() * v),
    }
    if ijk_to_ras is not None:
        from .errors import CMRRiskError
        from .scar import scar_report

        try:
            out.update(scar_report(image, seg, ijk_to_ras, **scar_kw))
        except CMRRiskError as exc:
            out["scar_analysis_error"] = str(exc)
    return out


def clinical_indices(seg_ed: np.ndarray, seg_es: np.ndarray, spacing_xyz) -> dict:
    """LVEDV, LVESV, LVSV, LVEF, LV mass (ED myocardium x 1.05 g/mL), RVEDV, RVESV, RVEF.

    Volumes by voxel counting (summation of discs), in mL; EF in percent.
    """
    ed = volumes_ml(seg_ed, spacing_xyz)
    es = volumes_ml(seg_es, spacing_xyz)

    def ef(edv, esv):
        return float(100.0 * (edv - esv) / edv) if edv > 0 else float("nan")

    return {
        "lv_edv_ml": ed["lv_ml"],
        "lv_esv_ml": es["lv_ml"],
        "lv_sv_ml": ed["lv_ml"] - es["lv_ml"],
        "lv_ef_pct": ef(ed["lv_ml"], es["lv_ml"]),
        "lv_mass_g": ed["myo_ml"] * MYOCARDIUM_DENSITY_G_PER_ML,
        "rv_edv_ml": ed["rv_ml"],
        "rv_esv_ml": es["rv_ml"],
        "rv_ef_pct": ef(ed["rv_ml"], es["rv_ml"]),
    }


def mask_metrics(p: np.ndarray, r: np.ndarray, spacing_xyz) -> dict:
    """Dice, HD95 (mm) and volumes (mL) of a predicted and a reference mask."""
    v = voxel_ml(spacing_xyz)
    return {
        "dice": dice(p, r),
        "hd95_mm": hd95(p, r, (spacing_xyz[2], spacing_xyz[1], spacing_xyz[0])),
        "volume_pred_ml": float(p.sum() * v),
        "volume_ref_ml": float(r.sum() * v),
    }


def compare(pred: np.ndarray, ref: np.ndarray, spacing_xyz, structures=L.CINE_LABELS) -> dict:
    """Per-structure Dice, HD95 (mm) and volumes (mL) of prediction and reference."""
    return {L.SEGMENTS[lab][0]: mask_metrics(pred == lab, ref == lab, spacing_xyz) for lab in structures}


def ed_es_phases(labels: np.ndarray, spacing_xyz) -> tuple[int, int]:
    """(ED, ES) phase indices of a cine's labels (T, Z, H, W): the phases of largest and of
    smallest LV blood-pool volume."""
    lv = [volumes_ml(labels[t], spacing_xyz)["lv_ml"] for t in range(labels.shape[0])]
    return int(np.argmax(lv)), int(np.argmin(lv))
