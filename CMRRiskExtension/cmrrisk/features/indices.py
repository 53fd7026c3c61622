"""Clinical indices with the names used in feature tables.

Volumes by voxel counting (summation of discs) in mL, EF in %, mass = ED myocardium x 1.05 g/mL,
indexed by body surface area (``..._ml_m2``, ``..._g_m2``) when BSA is known.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from .. import labels as L
from ..metrics import clinical_indices, lge_measures

#: angular sectors used for wall thickness (degrees each)
SECTOR_DEG = 10


def sector_wall_thickness_mm(seg: np.ndarray, spacing_xyz) -> np.ndarray:
    """Wall thickness (mm) per slice and 10-degree sector of a (Z, Y, X) label map: array of
    sector thicknesses over all slices that have both LV blood pool and myocardium (empty when
    none).

    For every myocardial pixel the sum of its distances to the blood pool and to the outside of
    the LV (in mm, in-plane, pixel centre to centre, minus one pixel) is the wall thickness
    through that pixel; the median of that sum in each sector around the blood-pool centre is
    the sector's thickness (medians make it robust to single pixels at the RV insertions).
    """
    sx, sy = float(spacing_xyz[0]), float(spacing_xyz[1])
    myo_all = np.isin(seg, L.MYOCARDIAL)
    out = []
    for z in range(seg.shape[0]):
        cav = seg[z] == L.LV_BLOOD_POOL
        myo = myo_all[z]
        if cav.sum() < 5 or myo.sum() < 5:
            continue
        lv = cav | myo
        d_endo = ndimage.distance_transform_edt(~cav, sampling=(sy, sx))
        d_epi = ndimage.distance_transform_edt(lv, sampling=(sy, sx))
        thick = d_endo + d_epi - 0.5 * (sx + sy)  # distances run pixel centre to centre: one pixel too many
        yy, xx = np.nonzero(myo)
        cy, cx = ndimage.center_of_mass(cav)
        ang = (np.degrees(np.arctan2((yy - cy) * sy, (xx - cx) * sx)) + 360.0) % 360.0
        sector = (ang // SECTOR_DEG).astype(int)
        t = thick[yy, xx]
        for sec in np.unique(sector):
            v = t[sector == sec]
            if v.size >= 3:
                out.append(float(np.median(v)))
    return np.asarray(out, dtype=float)


def max_wall_thickness_mm(seg: np.ndarray, spacing_xyz) -> float:
    """Maximal LV wall thickness (mm): the largest sector thickness of
    :func:`sector_wall_thickness_mm` over all slices (NaN when no slice qualifies)."""
    t = sector_wall_thickness_mm(seg, spacing_xyz)
    return float(t.max()) if t.size else float("nan")


def _ratio(a: float, b: float) -> float:
    return float(a / b) if b and b > 0 else float("nan")


def cine_indices(seg_ed: np.ndarray, seg_es: np.ndarray, spacing_xyz, bsa_m2: float | None = None) -> dict:
    """The cine indices of a subject: lv_edv_ml, lv_esv_ml, lv_sv_ml, lv_ef_pct, lv_mass_g,
    rv_edv_ml, rv_esv_ml, rv_ef_pct, lv_max_wall_thickness_mm (ED); wall-thickness statistics
    over the 10-degree sectors of all slices (lv_mean_wall_thickness_mm, lv_wall_thickness_sd_mm
    at ED, lv_max_wall_thickness_es_mm, lv_mean_wall_thickness_es_mm, lv_wall_thickening_pct =
    mean ES / mean ED thickness - 1), lv_myo_es_ml, ratios rv_lv_edv_ratio, rv_lv_esv_ratio,
    lv_mass_edv_ratio (g/mL); and with ``bsa_m2`` the indexed lv_edv_ml_m2, lv_esv_ml_m2,
    lv_sv_ml_m2, lv_mass_g_m2, rv_edv_ml_m2, rv_esv_ml_m2."""
    from ..metrics import volumes_ml

    out = clinical_indices(seg_ed, seg_es, spacing_xyz)
    t_ed = sector_wall_thickness_mm(seg_ed, spacing_xyz)
    t_es = sector_wall_thickness_mm(seg_es, spacing_xyz)
    nan = float("nan")
    out["lv_max_wall_thickness_mm"] = float(t_ed.max()) if t_ed.size else nan
    out["lv_mean_wall_thickness_mm"] = float(t_ed.mean()) if t_ed.size else nan
    out["lv_wall_thickness_sd_mm"] = float(t_ed.std()) if t_ed.size else nan
    out["lv_max_wall_thickness_es_mm"] = float(t_es.max()) if t_es.size else nan
    out["lv_mean_wall_thickness_es_mm"] = float(t_es.mean()) if t_es.size else nan
    out["lv_wall_thickening_pct"] = (100.0 * (_ratio(out["lv_mean_wall_thickness_es_mm"],
                                                     out["lv_mean_wall_thickness_mm"]) - 1.0))
    out["lv_myo_es_ml"] = volumes_ml(seg_es, spacing_xyz)["myo_ml"]
    out["rv_lv_edv_ratio"] = _ratio(out["rv_edv_ml"], out["lv_edv_ml"])
    out["rv_lv_esv_ratio"] = _ratio(out["rv_esv_ml"], out["lv_esv_ml"])
    out["lv_mass_edv_ratio"] = _ratio(out["lv_mass_g"], out["lv_edv_ml"])
    if bsa_m2 and bsa_m2 > 0 and math.isfinite(bsa_m2):
        for k in ("lv_edv_ml", "lv_esv_ml", "lv_sv_ml", "rv_edv_ml", "rv_esv_ml"):
            out[f"{k}_m2"] = out[k] / bsa_m2
        out["lv_mass_g_m2"] = out["lv_mass_g"] / bsa_m2
    return out


def lge_indices(seg: np.ndarray, spacing_xyz) -> dict:
    """scar_burden_pct (scar + MVO as % of LV myocardium), mvo_ml, scar_ml, lge_myocardium_ml."""
    m = lge_measures(seg, spacing_xyz)
    return {"scar_burden_pct": m["scar_burden_pct"], "scar_ml": m["scar_ml"], "mvo_ml": m["mvo_ml"],
            "lge_myocardium_ml": m["myocardium_ml"]}
