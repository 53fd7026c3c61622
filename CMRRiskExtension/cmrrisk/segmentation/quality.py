"""Plausibility checks of a cine segmentation, reported as flags (never silently passed on)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .. import labels as L
from ..metrics import volumes_ml

#: LV blood-pool volume range (mL) outside which a frame is flagged
LV_VOLUME_RANGE_ML = (5.0, 600.0)
#: share of LV blood-pool border pixels that may touch background before it counts as not enclosed
#: (basal slices legitimately open towards the outflow tract and atrium)
MAX_LV_BORDER_ON_BACKGROUND = 0.35


def lv_border_on_background(seg: np.ndarray) -> float:
    """Share of in-plane LV blood-pool border pixels whose 4-neighbours include background."""
    lv = seg == L.LV_BLOOD_POOL
    if not lv.any():
        return float("nan")
    st = np.zeros((3, 3, 3), bool)
    st[1] = ndimage.generate_binary_structure(2, 1)
    border = lv & ~ndimage.binary_erosion(lv, structure=st)
    bg_near = ndimage.binary_dilation(seg == L.BACKGROUND, structure=st)
    return float((border & bg_near).sum() / max(1, border.sum()))


def frame_flags(seg: np.ndarray, spacing_xyz, structures=L.CINE_LABELS) -> list[str]:
    flags = []
    if not (seg > 0).any():
        return ["no_heart_found"]
    if not (seg == L.LV_BLOOD_POOL).any():
        flags.append("lv_empty")
    if not np.isin(seg, L.MYOCARDIAL).any():
        flags.append("myocardium_empty")
    if L.RV_BLOOD_POOL in structures and not (seg == L.RV_BLOOD_POOL).any():
        flags.append("rv_empty")
    v = volumes_ml(seg, spacing_xyz)["lv_ml"]
    if (seg == L.LV_BLOOD_POOL).any() and not (LV_VOLUME_RANGE_ML[0] <= v <= LV_VOLUME_RANGE_ML[1]):
        flags.append("lv_volume_implausible")
    share = lv_border_on_background(seg)
    if np.isfinite(share) and share > MAX_LV_BORDER_ON_BACKGROUND:
        flags.append("lv_not_enclosed_by_myocardium")
    return flags
