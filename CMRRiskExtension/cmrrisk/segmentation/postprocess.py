"""Post-processing of a label map: largest 3D connected component per structure, holes filled
per slice."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .. import labels as L


def largest_component(mask: np.ndarray) -> np.ndarray:
    lab, n = ndimage.label(mask)
    if n <= 1:
        return mask
    sizes = ndimage.sum_labels(mask, lab, index=np.arange(1, n + 1))
    return lab == (int(np.argmax(sizes)) + 1)


def postprocess(seg: np.ndarray, structures=L.CINE_LABELS) -> np.ndarray:
    """Keep the largest 3D component of each structure; fill holes slice by slice.

    Background enclosed by LV myocardium (with the LV blood pool) becomes LV blood pool;
    holes in the RV become RV.
    """
    out = seg.copy()
    for lab in structures:
        m = out == lab
        if m.any():
            keep = largest_component(m)
            out[m & ~keep] = L.BACKGROUND
    for z in range(out.shape[0]):
        sl = out[z]
        lv_union = (sl == L.LV_BLOOD_POOL) | (sl == L.LV_MYOCARDIUM)
        if L.LV_MYOCARDIUM in structures and lv_union.any():
            filled = ndimage.binary_fill_holes(lv_union)
            sl[filled & (sl == L.BACKGROUND)] = L.LV_BLOOD_POOL
        rv = sl == L.RV_BLOOD_POOL
        if rv.any():
            filled = ndimage.binary_fill_holes(rv)
            sl[filled & (sl == L.BACKGROUND)] = L.RV_BLOOD_POOL
    return out
