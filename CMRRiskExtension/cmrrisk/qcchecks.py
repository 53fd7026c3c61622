"""The building blocks of quality checks (one check record, a subject's status) and the scar
plausibility checks of one LGE label map; :mod:`cmrrisk.qc` runs them over subjects and cohorts
(its module docstring lists every check and threshold)."""

from __future__ import annotations

import math

import numpy as np

from . import labels as L

EXCLUDE, FLAG, OK = "exclude", "flag", "ok"

# scar plausibility thresholds (cmrrisk.qc's docstring)
MAX_SCAR_OUTSIDE_SHARE = 0.10
MAX_MVO_WITHOUT_SCAR_SHARE = 0.10
MAX_SCAR_BURDEN_PCT = 80.0


def check(code: str, severity: str, message: str, role: str = "") -> dict:
    return {"code": code, "severity": severity, "role": role, "message": message}


def status_of(checks) -> str:
    sev = {c["severity"] for c in checks}
    return EXCLUDE if EXCLUDE in sev else FLAG if FLAG in sev else OK


def _share_in_pieces_not_touching(mask: np.ndarray, other: np.ndarray) -> float:
    """Share of ``mask``'s voxels in face-connected pieces that do not touch ``other`` (0 when
    ``mask`` is empty)."""
    from scipy import ndimage

    n = int(mask.sum())
    if n == 0:
        return 0.0
    pieces, k = ndimage.label(mask)
    touching = np.unique(pieces[ndimage.binary_dilation(other) & mask])
    lonely = np.isin(pieces, touching[touching > 0], invert=True) & mask
    return float(lonely.sum()) / n


def scar_plausibility_checks(seg: np.ndarray, role: str = "lge", source: str = "reference") -> list:
    """Flags for an implausible scar in one LGE label map (project labels): scar away from the
    myocardium, MVO without surrounding scar, scar burden above 80 % (module docstring)."""
    seg = np.asarray(seg)
    out = []
    scar_all = np.isin(seg, L.SCAR_WITH_MVO)
    if not scar_all.any() or seg.ndim != 3:
        return out
    share = _share_in_pieces_not_touching(scar_all, seg == L.LV_MYOCARDIUM)
    if share > MAX_SCAR_OUTSIDE_SHARE:
        out.append(check("scar_outside_myocardium", FLAG, f"{source} segmentation: {100 * share:.0f} % of the scar "
                         f"+ MVO lies in pieces that touch no healthy myocardium (more than "
                         f"{100 * MAX_SCAR_OUTSIDE_SHARE:.0f} %): scar away from the LV wall.", role))
    mvo = seg == L.MVO
    share = _share_in_pieces_not_touching(mvo, seg == L.SCAR)
    if share > MAX_MVO_WITHOUT_SCAR_SHARE:
        out.append(check("mvo_without_scar", FLAG, f"{source} segmentation: {100 * share:.0f} % of the MVO lies in "
                         f"pieces without surrounding scar (more than {100 * MAX_MVO_WITHOUT_SCAR_SHARE:.0f} %).",
                         role))
    myo_n = int(np.isin(seg, L.MYOCARDIAL).sum())
    burden = 100.0 * int(scar_all.sum()) / myo_n if myo_n else float("nan")
    if math.isfinite(burden) and burden > MAX_SCAR_BURDEN_PCT:
        out.append(check("scar_burden_implausible", FLAG, f"{source} segmentation: scar + MVO is {burden:.0f} % of "
                         f"the LV myocardium (more than {MAX_SCAR_BURDEN_PCT:g} %).", role))
    return out
