"""LGE scar per AHA segment, transmurality, and the classic intensity methods (n-SD, FWHM).

Pure numpy / scipy. Inputs are a short-axis label volume in the project's label convention
(array order (slice k, row j, column i)), its 4x4 index-to-RAS matrix (as
:attr:`cmrrisk.image.Volume.ijk_to_ras`) and, for the intensity methods, the LGE image on the same
grid. Every result is a plain, JSON-serialisable dict.

Slice-based AHA segmentation (what this module does, and what it approximates)
-----------------------------------------------------------------------------
* **Levels.** The slices that contain LV myocardium (labels 2, 4, 5) are ordered from base to
  apex and cut into thirds by position: slice number ``p`` of ``n`` (0 = most basal) is basal
  when ``3 (p + 0.5) / n < 1``, mid when ``< 2``, apical otherwise. Basal slices carry AHA
  segments 1-6, mid 7-12, apical 13-16. A short-axis stack has no slice through the apical cap,
  so segment 17 (apex) is never computed.
* **Which end is the base.** ``base="first"`` / ``"last"`` says it (the first / last slice
  index). ``base="auto"`` uses the geometry when it is known: the slice normal (direction of
  increasing slice index, from ``ijk_to_ras``) is compared with a typical LV long axis pointing
  from base to apex in RAS (left, anterior, inferior: (-1, 1, -1)/sqrt(3)); when the geometry is
  unknown (axis-aligned, e.g. EMIDEC's declared 1 mm identity) or the normal is nearly
  perpendicular to that axis, the end with the larger LV blood pool is taken as the base, and the
  result is flagged approximate. The output says which rule was used (``base_rule``).
* **Angles.** Around the LV centre of each slice (centroid of the LV: blood pool and myocardium,
  holes filled) the angle ``theta`` runs from the anterior RV insertion point towards the septum.
  Basal / mid: 2 = [0, 60) deg, 3 = [60, 120), 4 = [120, 180), 5 = [180, 240), 6 = [240, 300),
  1 = [300, 360) (plus 6 for mid). Apical: 14 = [15, 105), 15 = [105, 195), 16 = [195, 285),
  13 = [285, 375). The anchor is, in this order of preference:

  1. ``reference_angle_deg`` given by the caller: the in-plane angle of the anterior RV insertion
     point measured from the +i (column) axis towards the +j (row) axis, in mm, and
     ``septum_direction`` (+1 when the septum lies at increasing angle from it, -1 otherwise);
  2. the RV blood pool (label 3, cine) of the slice (or of the nearest slice that has one): the
     direction from the LV centre to the RV centroid is the septum; the two angular ends of the
     RV (1st / 99th percentiles of its voxels' angles) are the insertion points, and the anterior
     one is the end closer to the patient's anterior direction (from the geometry; with unknown
     geometry the top of the image, -j, is taken as anterior and the result is flagged
     approximate);
  3. patient geometry: the RAS anterior (0, 1, 0) and right (1, 0, 0) directions projected onto
     the slice plane (right made orthogonal to anterior) stand for "anterior" and "septal"; the
     anterior insertion point is taken 30 deg from anterior towards the septum (so the anterior
     segment is centred on the patient's anterior direction). This is an approximation: the real
     insertion point varies between hearts by tens of degrees;
  4. unknown geometry and no RV: the image is assumed to be displayed in the usual short-axis
     view with anterior at the top (-j) and the septum on the left (-i): reference angle -120 deg,
     septum direction -1; flagged approximate.

Transmurality
-------------
On each slice, ``rays_per_slice`` rays leave the LV centre at evenly spaced angles and are
sampled (nearest voxel) every quarter of the smallest in-plane voxel size. On each ray the first
contiguous run of myocardium (labels 2, 4, 5) is the chord from endocardium to epicardium; its
transmurality is the fraction of the chord's samples that are scar (labels 4, 5). Rays that do
not meet myocardium are ignored. A segment's (or slice's) transmurality is the mean over its
chords (chords without scar count as 0). Segments are counted with mean transmurality > 25 %,
> 50 % and > 75 %.

Intensity methods on the DL myocardium
--------------------------------------
* **Remote myocardium**: among the AHA segments with at least ``min_remote_voxels`` myocardial
  voxels and no scar/MVO label, the one with the lowest mean intensity. When every segment holds
  some scar, the healthy (label 2) voxels of the segment with the smallest scar fraction are used
  instead, and the result says so.
* **n-SD**: scar = myocardial voxels brighter than mean + n SD of the remote voxels.
* **FWHM**: the hyperenhanced region is the DL scar (label 4; MVO, which is dark, excluded);
  threshold = half of its maximum intensity; scar = myocardial voxels at or above it. Without DL
  scar there is no hyperenhanced region and the FWHM scar is empty (reported as such). The classic
  rule assumes nulled myocardium near zero intensity; on images with an offset (windowed 8-bit
  exports such as EMIDEC's, some PSIR reconstructions) half the maximum falls below healthy
  myocardium. ``fwhm_above_remote`` is therefore also reported: threshold = remote mean +
  half of (maximum - remote mean).
* With ``include_mvo=True`` (default, as in manual practice where the dark no-reflow core is
  added to the infarct) the DL MVO voxels are added to both methods' scar.
Each method gives scar mL, scar burden (% of LV myocardium, labels 2 + 4 + 5) and the Dice
overlap with the DL scar (labels 4 + 5; 1.0 when both are empty).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from . import labels as L
from .errors import CMRRiskError

#: typical LV long axis, base -> apex, in RAS (towards patient left, anterior, inferior)
APEX_DIRECTION_RAS = np.array([-1.0, 1.0, -1.0]) / math.sqrt(3.0)
ANTERIOR_RAS = np.array([0.0, 1.0, 0.0])
RIGHT_RAS = np.array([1.0, 0.0, 0.0])
#: |cos| between slice normal and the typical long axis below which the geometry cannot tell
MIN_AXIS_COSINE = 0.3

AHA_NAMES = {
    1: "basal anterior", 2: "basal anteroseptal", 3: "basal inferoseptal", 4: "basal inferior",
    5: "basal inferolateral", 6: "basal anterolateral",
    7: "mid anterior", 8: "mid anteroseptal", 9: "mid inferoseptal", 10: "mid inferior",
    11: "mid inferolateral", 12: "mid anterolateral",
    13: "apical anterior", 14: "apical septal", 15: "apical inferior", 16: "apical lateral",
}
LEVELS = ("basal", "mid", "apical")
TRANSMURALITY_CUTS = (0.25, 0.50, 0.75)
DEFAULT_N_SD = (2, 3, 5, 6)

#: ring segment by 60-degree sector of theta (0 = anterior RV insertion, towards the septum)
_RING = (2, 3, 4, 5, 6, 1)
#: apical segment by 90-degree sector of (theta - 15)
_APEX = (14, 15, 16, 13)

_MYO = np.array(L.MYOCARDIAL)
_SCAR = np.array(L.SCAR_WITH_MVO)


# ----------------------------------------------------------------------------- geometry helpers


def _wrap(deg):
    """Angle(s) in (-180, 180]."""
    return -((-np.asarray(deg, float) + 180.0) % 360.0 - 180.0)


def _matrix(ijk_to_ras, spacing) -> np.ndarray:
    if ijk_to_ras is None:
        if spacing is None:
            raise CMRRiskError("give the label volume's ijk_to_ras matrix or its spacing (i, j, k) mm.")
        return np.diag([float(s) for s in spacing] + [1.0])
    m = np.asarray(ijk_to_ras, float)
    if m.shape != (4, 4) or not np.all(np.isfinite(m)) or abs(np.linalg.det(m[:3, :3])) < 1e-12:
        raise CMRRiskError(f"ijk_to_ras must be a finite, invertible 4x4 matrix; got shape {m.shape}.")
    return m


def _axes(m: np.ndarray):
    sp = np.linalg.norm(m[:3, :3], axis=0)
    return m[:3, :3] / sp, sp


def geometry_is_known(ijk_to_ras) -> bool:
    """False for axis-aligned directions (identity or flips, e.g. a declared 1 mm identity such as
    EMIDEC's): real short-axis stacks are oblique, so such a matrix does not describe the heart."""
    d, _ = _axes(_matrix(ijk_to_ras, None))
    return not bool(np.all(np.max(np.abs(d), axis=0) > 1 - 1e-3))


def _check_labels(labels) -> np.ndarray:
    a = np.asarray(labels)
    if a.ndim != 3:
        raise CMRRiskError(f"label volume has shape {a.shape}; a 3D short-axis label map "
                           "(slice, row, column) is needed.")
    if not np.issubdtype(a.dtype, np.integer):
        if not np.all(np.isfinite(a)) or np.any(a != np.round(a)):
            raise CMRRiskError("label volume holds non-integer values; give a label map.")
        a = a.astype(np.int16)
    return a


def _myo_slices(lab: np.ndarray) -> list:
    return [int(k) for k in np.flatnonzero(np.isin(lab, _MYO).any(axis=(1, 2)))]


def _base_order(lab, m, slices, base, geometry_known):
    """(slice indices ordered base -> apex, rule text, approximate?)"""
    if base == "first":
        return slices, "argument base='first': the first slice (lowest k) is basal", False
    if base == "last":
        return slices[::-1], "argument base='last': the last slice (highest k) is basal", False
    if base != "auto":
        raise CMRRiskError(f"base={base!r}: use 'auto', 'first' or 'last'.")
    if geometry_known:
        d, _ = _axes(m)
        c = float(np.dot(d[:, 2], APEX_DIRECTION_RAS))
        if abs(c) >= MIN_AXIS_COSINE:
            order = slices if c > 0 else slices[::-1]
            return order, (f"geometry: slice normal (increasing k) has cosine {c:+.2f} with the typical "
                           "base-to-apex axis (-1, 1, -1)/sqrt(3) in RAS, so the "
                           f"{'first' if c > 0 else 'last'} slice is basal"), False
        why = f"slice normal nearly perpendicular to the typical long axis (cosine {c:+.2f})"
    else:
        why = "geometry unknown (axis-aligned matrix)"
    pool = [int((lab[k] == L.LV_BLOOD_POOL).sum()) for k in slices]
    h = max(1, len(slices) // 3)
    first, last = sum(pool[:h]), sum(pool[-h:])
    order = slices if first >= last else slices[::-1]
    return order, (f"{why}: the end with the larger LV blood pool is taken as basal "
                   f"({'first' if first >= last else 'last'} slice; approximate)"), True


def _levels(order) -> dict:
    n = len(order)
    return {k: LEVELS[min(2, int(3 * (p + 0.5) / n))] for p, k in enumerate(order)}


def _centre(sl: np.ndarray):
    lv = ndimage.binary_fill_holes(np.isin(sl, (L.LV_BLOOD_POOL,) + L.MYOCARDIAL))
    j, i = np.nonzero(lv)
    return float(i.mean()), float(j.mean())


def _angles(shape2, ci, cj, sx, sy):
    """In-plane angle (deg) of every voxel around (ci, cj), from +i towards +j, in mm."""
    j, i = np.indices(shape2)
    return np.degrees(np.arctan2((j - cj) * sy, (i - ci) * sx))


def _project(vec_ras, d):
    """2D in-plane coordinates (along i, along j) of a RAS direction."""
    return np.array([np.dot(vec_ras, d[:, 0]), np.dot(vec_ras, d[:, 1])])


def _rv_reference(sl, ci, cj, sx, sy, anterior2d):
    """(reference angle, septum direction) from the RV of one slice, or None."""
    rv = sl == L.RV_BLOOD_POOL
    if rv.sum() < 10:
        return None
    j, i = np.nonzero(rv)
    vx, vy = (i - ci) * sx, (j - cj) * sy
    a_s = math.degrees(math.atan2(vy.mean(), vx.mean()))
    phi = _wrap(np.degrees(np.arctan2(vy, vx)) - a_s)
    ends = [a_s + float(np.percentile(phi, 1)), a_s + float(np.percentile(phi, 99))]
    score = [np.dot([math.cos(math.radians(e)), math.sin(math.radians(e))], anterior2d) for e in ends]
    ref = ends[int(np.argmax(score))]
    sign = 1 if _wrap(a_s - ref) > 0 else -1
    return float(_wrap(ref)), sign


def _segment_of(theta, level):
    """AHA segment numbers (int array) for angles theta (deg, 0..360) at a level."""
    t = np.mod(theta, 360.0)
    if level == "apical":
        return np.asarray(_APEX)[(np.mod(t - 15.0, 360.0) // 90).astype(int) % 4]
    ring = np.asarray(_RING)[(t // 60).astype(int) % 6]
    return ring + (6 if level == "mid" else 0)


# ----------------------------------------------------------------------------- segment map


def segment_map(labels, ijk_to_ras=None, spacing=None, *, reference_angle_deg=None,
                septum_direction=None, base="auto", geometry_known=None):
    """AHA segment (1-16) of every LV myocardial voxel (0 elsewhere) and how it was assigned.

    Returns ``(segments, info)``: ``segments`` has the labels' shape (uint8); ``info`` is a dict
    with the base rule, orientation rule, approximate flag and reasons, and one entry per
    myocardial slice (level, centre, reference angle and its source). See the module docstring
    for the rules. Raises :class:`CMRRiskError` when there is no LV myocardium.
    """
    lab = _check_labels(labels)
    m = _matrix(ijk_to_ras, spacing)
    known = geometry_is_known(m) if geometry_known is None else bool(geometry_known)
    d, sp = _axes(m)
    sx, sy = float(sp[0]), float(sp[1])
    slices = _myo_slices(lab)
    if not slices:
        raise CMRRiskError("no LV myocardium (labels 2, 4, 5) in the label volume; nothing to divide "
                           "into AHA segments. Segment the LGE image first (--model lge).")
    order, base_rule, approx_base = _base_order(lab, m, slices, base, known)
    level = _levels(order)
    reasons = []
    if approx_base:
        reasons.append("base/apex order not from the geometry")
    if len(slices) < 3:
        reasons.append(f"only {len(slices)} myocardial slice(s): levels cannot be split in thirds")

    if reference_angle_deg is not None:
        if septum_direction not in (None, 1, -1):
            raise CMRRiskError(f"septum_direction={septum_direction!r}: use +1 or -1.")
        mode = "argument"
        rule = (f"argument reference_angle_deg={float(reference_angle_deg):g} (anterior RV insertion, "
                f"from +i towards +j), septum_direction={septum_direction or -1:+d}")
    elif any((lab[k] == L.RV_BLOOD_POOL).sum() >= 10 for k in slices):
        mode = "rv"
        rule = ("RV insertion points: septum towards the RV centroid, anterior insertion = the RV's "
                "angular end nearer the " + ("patient's anterior direction" if known
                                             else "image top (-j; geometry unknown, approximate)"))
        if not known:
            reasons.append("which RV insertion is anterior assumed from the image orientation")
    elif known:
        mode = "geometry"
        rule = ("patient geometry: RAS anterior and right directions projected onto the slice; "
                "anterior RV insertion taken 30 deg from anterior towards the septum (approximate)")
        reasons.append("RV insertion point estimated from the patient axes, not from the image")
    else:
        mode = "default"
        rule = ("no RV label and unknown geometry: standard display assumed (anterior = image top, "
                "septum = image left): reference angle -120 deg, septum direction -1; pass "
                "reference_angle_deg to fix it")
        reasons.append("segment orientation assumed (no RV, no geometry, no reference_angle_deg)")

    anterior2d = _project(ANTERIOR_RAS, d) if known else np.array([0.0, -1.0])
    if np.linalg.norm(anterior2d) < 1e-6:
        anterior2d = np.array([0.0, -1.0])
    anterior2d = anterior2d / np.linalg.norm(anterior2d)

    seg = np.zeros(lab.shape, np.uint8)
    per_slice = {}
    rv_refs = {}
    for k in slices:
        ci, cj = _centre(lab[k])
        per_slice[k] = {"ci": ci, "cj": cj}
        if mode == "rv":
            r = _rv_reference(lab[k], ci, cj, sx, sy, anterior2d)
            if r is not None:
                rv_refs[k] = r
    for k in slices:
        ci, cj = per_slice[k]["ci"], per_slice[k]["cj"]
        if mode == "argument":
            ref, sign, src = float(reference_angle_deg), int(septum_direction or -1), "argument"
        elif mode == "rv":
            if k in rv_refs:
                (ref, sign), src = rv_refs[k], "rv_insertion"
            else:
                near = min(rv_refs, key=lambda kk: abs(kk - k))
                (ref, sign), src = rv_refs[near], f"rv_insertion of slice {near}"
        elif mode == "geometry":
            a = anterior2d
            s = _project(RIGHT_RAS, d)
            s = s - np.dot(s, a) * a
            if np.linalg.norm(s) < 1e-6:  # right direction along the slice normal
                s = np.array([-a[1], a[0]])
            s = s / np.linalg.norm(s)
            r2 = math.cos(math.radians(30)) * a + math.sin(math.radians(30)) * s
            ref = math.degrees(math.atan2(r2[1], r2[0]))
            sign = 1 if _wrap(math.degrees(math.atan2(s[1], s[0])) - ref) > 0 else -1
            src = "geometry"
        else:
            ref, sign, src = -120.0, -1, "default"
        theta = np.mod(sign * (_angles(lab[k].shape, ci, cj, sx, sy) - ref), 360.0)
        myo = np.isin(lab[k], _MYO)
        seg[k][myo] = _segment_of(theta[myo], level[k])
        per_slice[k].update({"reference_angle_deg": float(_wrap(ref)),
                             "septum_direction": int(sign), "reference": src})

    info = {
        "base_rule": base_rule,
        "orientation_rule": rule,
        "geometry_known": known,
        "approximate": bool(reasons),
        "approximate_reasons": reasons,
        "base_slice": int(order[0]),
        "apex_slice": int(order[-1]),
        "order": [int(k) for k in order],
        "levels": {int(k): level[k] for k in order},
        "slices": {int(k): v for k, v in per_slice.items()},
        "spacing_mm": [float(x) for x in sp],
        "note": "slice-based analysis: AHA segment 17 (apical cap) is not computed",
    }
    return seg, info


# ----------------------------------------------------------------------------- transmurality


def _chords(sl, ci, cj, sx, sy, n_rays):
    """(angle deg of each ray with myocardium, transmurality of its chord)."""
    myo = np.isin(sl, _MYO)
    j, i = np.nonzero(myo)
    rmax = float(np.max(np.hypot((i - ci) * sx, (j - cj) * sy))) + 2 * max(sx, sy)
    step = 0.25 * min(sx, sy)
    r = np.arange(0.0, rmax + step, step)
    alpha = np.arange(n_rays) * (360.0 / n_rays) - 180.0
    ca, sa = np.cos(np.radians(alpha))[:, None], np.sin(np.radians(alpha))[:, None]
    ii = np.rint(ci + r[None, :] * ca / sx).astype(int)
    jj = np.rint(cj + r[None, :] * sa / sy).astype(int)
    inside = (ii >= 0) & (ii < sl.shape[1]) & (jj >= 0) & (jj < sl.shape[0])
    vals = np.where(inside, sl[np.clip(jj, 0, sl.shape[0] - 1), np.clip(ii, 0, sl.shape[1] - 1)], 0)
    on = np.isin(vals, _MYO)
    has = on.any(axis=1)
    first = np.argmax(on, axis=1)
    idx = np.arange(r.size)[None, :]
    after = on | (idx < first[:, None])
    ended = ~after
    end = np.where(ended.any(axis=1), np.argmax(ended, axis=1), r.size)
    run = (idx >= first[:, None]) & (idx < end[:, None])
    n = run.sum(axis=1)
    s = (run & np.isin(vals, _SCAR)).sum(axis=1)
    keep = has & (n > 0)
    return alpha[keep], s[keep] / n[keep]


def aha_analysis(labels, ijk_to_ras=None, spacing=None, *, reference_angle_deg=None,
                 septum_direction=None, base="auto", geometry_known=None, rays_per_slice=180,
                 segments=None):
    """Scar per AHA segment (1-16) and per slice, with transmurality.

    ``segments``: a ``(map, info)`` pair from :func:`segment_map` to reuse (else computed).
    Returns a dict: ``segments`` (16 rows: segment, name, level, myocardium_ml, scar_ml,
    scar_pct, transmurality_mean, n_chords), ``slices`` (one row per myocardial slice),
    ``summary`` (segment counts by transmurality, whole-LV figures) and the assignment rules
    (``base_rule``, ``orientation_rule``, ``approximate``...). Segments without myocardium in
    the stack have None for their percentages.
    """
    lab = _check_labels(labels)
    if segments is None:
        segments = segment_map(lab, ijk_to_ras, spacing, reference_angle_deg=reference_angle_deg,
                               septum_direction=septum_direction, base=base,
                               geometry_known=geometry_known)
    smap, info = segments
    if smap.shape != lab.shape:
        raise CMRRiskError(f"segment map {smap.shape} does not match the labels {lab.shape}.")
    sx, sy, sz = info["spacing_mm"]
    vml = sx * sy * sz / 1000.0
    scar = np.isin(lab, _SCAR)

    chord_seg, chord_t = [], []
    slice_rows = []
    for pos, k in enumerate(info["order"]):
        s_info = info["slices"][k]
        ci, cj = s_info["ci"], s_info["cj"]
        alpha, t = _chords(lab[k], ci, cj, sx, sy, int(rays_per_slice))
        theta = np.mod(s_info["septum_direction"] * (alpha - s_info["reference_angle_deg"]), 360.0)
        chord_seg.append(_segment_of(theta, info["levels"][k]))
        chord_t.append(t)
        myo_n = int(np.isin(lab[k], _MYO).sum())
        scar_n = int(scar[k].sum())
        slice_rows.append({
            "slice": int(k),
            "position_from_base": pos,
            "level": info["levels"][k],
            "myocardium_ml": round(myo_n * vml, 4),
            "scar_ml": round(scar_n * vml, 4),
            "scar_pct": round(100.0 * scar_n / myo_n, 3),
            "transmurality_mean": round(float(t.mean()), 4) if t.size else None,
            "centre_ij": [round(ci, 2), round(cj, 2)],
            "reference": s_info["reference"],
            "reference_angle_deg": round(s_info["reference_angle_deg"], 2),
            "septum_direction": s_info["septum_direction"],
        })
    chord_seg = np.concatenate(chord_seg) if chord_seg else np.zeros(0, int)
    chord_t = np.concatenate(chord_t) if chord_t else np.zeros(0)

    myo_counts = np.bincount(smap.ravel(), minlength=17)
    scar_counts = np.bincount(smap[scar].ravel(), minlength=17)
    rows = []
    for n in range(1, 17):
        t = chord_t[chord_seg == n]
        my = int(myo_counts[n])
        rows.append({
            "segment": n,
            "name": AHA_NAMES[n],
            "level": LEVELS[0 if n <= 6 else 1 if n <= 12 else 2],
            "myocardium_ml": round(my * vml, 4),
            "scar_ml": round(int(scar_counts[n]) * vml, 4),
            "scar_pct": round(100.0 * int(scar_counts[n]) / my, 3) if my else None,
            "transmurality_mean": round(float(t.mean()), 4) if t.size else None,
            "n_chords": int(t.size),
        })
    with_data = [r for r in rows if r["transmurality_mean"] is not None]
    summary = {
        "n_segments_with_myocardium": sum(r["myocardium_ml"] > 0 for r in rows),
        "n_segments_with_scar": sum(r["scar_ml"] > 0 for r in rows),
        **{f"n_segments_transmurality_gt{int(c * 100)}": sum(r["transmurality_mean"] > c for r in with_data)
           for c in TRANSMURALITY_CUTS},
        "transmurality_mean_lv": round(float(chord_t.mean()), 4) if chord_t.size else None,
        "transmurality_mean_scarred_chords": (round(float(chord_t[chord_t > 0].mean()), 4)
                                              if (chord_t > 0).any() else None),
    }
    return {
        "segments": rows,
        "slices": slice_rows,
        "summary": summary,
        **{k: info[k] for k in ("base_rule", "orientation_rule", "geometry_known", "approximate",
                                "approximate_reasons", "base_slice", "apex_slice", "note")},
        "transmurality_rule": (f"{int(rays_per_slice)} rays per slice from the LV centre; chord = first "
                               "run of myocardium (labels 2, 4, 5); transmurality = scar (4, 5) "
                               "fraction of the chord; segment value = mean over its chords"),
    }


# ----------------------------------------------------------------------------- intensity methods


def _remote(img, lab, smap, min_voxels):
    myo = np.isin(lab, _MYO)
    scar = np.isin(lab, _SCAR)
    cand = []
    for n in range(1, 17):
        sel = smap == n
        cnt = int(sel.sum())
        if cnt < min_voxels:
            continue
        cand.append((n, cnt, int((sel & scar).sum()), float(img[sel & myo].mean())))
    if not cand:
        raise CMRRiskError(f"no AHA segment has {min_voxels} or more myocardial voxels; the myocardium "
                           "is too small for the intensity methods (lower min_remote_voxels).")
    clean = [c for c in cand if c[2] == 0]
    if clean:
        n, cnt, _, _ = min(clean, key=lambda c: c[3])
        vals = img[(smap == n) & myo]
        rule = "scar-free AHA segment with the lowest mean intensity"
    else:
        n = min(cand, key=lambda c: c[2] / c[1])[0]
        vals = img[(smap == n) & (lab == L.LV_MYOCARDIUM)]
        rule = ("no scar-free segment: healthy (label 2) voxels of the segment with the smallest scar "
                "fraction")
        if vals.size < 2:
            raise CMRRiskError("no healthy myocardium to serve as remote myocardium for the n-SD method.")
    return n, vals.astype(float), rule


def _method_result(mask, dl_scar, myo_n, vml):
    return {
        "scar_ml": round(int(mask.sum()) * vml, 4),
        "scar_burden_pct": round(100.0 * int(mask.sum()) / myo_n, 3),
        "dice_vs_dl": round(_dice(mask, dl_scar), 4),
    }


def _dice(a, b):
    s = int(a.sum()) + int(b.sum())
    return 1.0 if s == 0 else 2.0 * int(np.logical_and(a, b).sum()) / s


def intensity_methods(image, labels, ijk_to_ras=None, spacing=None, *, n_sd=DEFAULT_N_SD,
                      include_mvo=True, min_remote_voxels=20, segments=None, **segment_kw):
    """n-SD and FWHM scar on the (DL) myocardium of ``labels``, compared with its scar labels.

    ``image``: the LGE intensities on the labels' grid. ``n_sd``: the n values to report.
    ``segments``: a ``(map, info)`` pair from :func:`segment_map` (else computed with
    ``segment_kw``). Returns a dict with ``remote`` (segment, mean, sd, n voxels, rule),
    ``nsd`` (one entry per n: threshold, scar_ml, scar_burden_pct, dice_vs_dl), ``fwhm``
    (region, maximum, threshold, scar_ml, scar_burden_pct, dice_vs_dl), ``fwhm_above_remote``
    (the same with the remote mean as baseline) and ``dl`` (the labels' own scar burden and mL)
    for comparison.
    """
    lab = _check_labels(labels)
    img = np.asarray(image)
    if img.shape != lab.shape:
        raise CMRRiskError(f"image {img.shape} and label volume {lab.shape} differ in shape; they "
                           "must be on the same grid.")
    img = img.astype(np.float64)
    if not np.all(np.isfinite(img)):
        raise CMRRiskError("image holds NaN or infinite values; fix them before the intensity methods.")
    if segments is None:
        segments = segment_map(lab, ijk_to_ras, spacing, **segment_kw)
    smap, info = segments
    sx, sy, sz = info["spacing_mm"]
    vml = sx * sy * sz / 1000.0
    myo = np.isin(lab, _MYO)
    myo_n = int(myo.sum())
    dl_scar = np.isin(lab, _SCAR)
    mvo = lab == L.MVO
    extra = mvo if include_mvo else np.zeros_like(mvo)

    seg_n, vals, rule = _remote(img, lab, smap, int(min_remote_voxels))
    mean, sd = float(vals.mean()), float(vals.std(ddof=1)) if vals.size > 1 else 0.0
    nsd = []
    for n in n_sd:
        thr = mean + float(n) * sd
        mask = (myo & (img > thr)) | extra
        nsd.append({"n": float(n), "threshold": round(thr, 4), **_method_result(mask, dl_scar, myo_n, vml)})

    region = lab == L.SCAR
    fwhm, fwhm_remote = {}, {}
    for out, base_value, label in ((fwhm, 0.0, "zero"), (fwhm_remote, mean, "remote mean")):
        if region.any():
            vmax = float(img[region].max())
            thr = base_value + 0.5 * (vmax - base_value)
            mask = (myo & (img >= thr)) | extra
            out.update({"region": "DL scar (label 4)", "baseline": label, "maximum": round(vmax, 4),
                        "threshold": round(thr, 4), **_method_result(mask, dl_scar, myo_n, vml)})
        else:
            out.update({"region": "none: no DL scar (label 4), so no hyperenhanced region",
                        "baseline": label, "maximum": None, "threshold": None,
                        **_method_result(extra.copy(), dl_scar, myo_n, vml)})
    return {
        "remote": {"segment": int(seg_n), "name": AHA_NAMES[int(seg_n)], "mean": round(mean, 4),
                   "sd": round(sd, 4), "n_voxels": int(vals.size), "rule": rule},
        "nsd": nsd,
        "fwhm": fwhm,
        "fwhm_above_remote": fwhm_remote,
        "dl": {"scar_ml": round(int(dl_scar.sum()) * vml, 4),
               "scar_burden_pct": round(100.0 * int(dl_scar.sum()) / myo_n, 3)},
        "include_mvo": bool(include_mvo),
        "segment_assignment_approximate": info["approximate"],
    }


def scar_report(image, labels, ijk_to_ras=None, spacing=None, *, n_sd=DEFAULT_N_SD, **segment_kw):
    """AHA analysis and (when ``image`` is given) intensity methods, sharing one segment map.

    ``{"aha": ..., "intensity_methods": ...}``; raises :class:`CMRRiskError` without myocardium.
    """
    lab = _check_labels(labels)
    segs = segment_map(lab, ijk_to_ras, spacing, **segment_kw)
    out = {"aha": aha_analysis(lab, segments=segs)}
    if image is not None:
        out["intensity_methods"] = intensity_methods(image, lab, n_sd=n_sd, segments=segs)
    return out


def aha_table_columns(aha: dict) -> dict:
    """Column name -> values of the per-segment table (for a table node or a CSV)."""
    rows = aha["segments"]
    cols = {}
    for key in ("segment", "name", "level", "myocardium_ml", "scar_ml", "scar_pct",
                "transmurality_mean", "n_chords"):
        cols[key] = [float("nan") if r[key] is None else r[key] for r in rows]
    return cols


def summary_rows(report: dict) -> list:
    """(index, value, unit) rows summarising :func:`scar_report` for a table."""
    out = []
    s = report["aha"]["summary"]
    for c in TRANSMURALITY_CUTS:
        key = f"n_segments_transmurality_gt{int(c * 100)}"
        out.append((key, s[key], "segments"))
    out.append(("n_segments_with_scar", s["n_segments_with_scar"], "segments"))
    tm = s["transmurality_mean_scarred_chords"]
    out.append(("transmurality_mean_scarred_chords", float("nan") if tm is None else tm, "fraction"))
    im = report.get("intensity_methods")
    if im:
        for e in im["nsd"]:
            out.append((f"nsd{e['n']:g}_scar_burden_pct", e["scar_burden_pct"], "%"))
            out.append((f"nsd{e['n']:g}_scar_ml", e["scar_ml"], "mL"))
            out.append((f"nsd{e['n']:g}_dice_vs_dl", e["dice_vs_dl"], ""))
        for key in ("fwhm", "fwhm_above_remote"):
            f = im[key]
            out.append((f"{key}_scar_burden_pct", f["scar_burden_pct"], "%"))
            out.append((f"{key}_scar_ml", f["scar_ml"], "mL"))
            out.append((f"{key}_dice_vs_dl", f["dice_vs_dl"], ""))
    out.append(("aha_segments_approximate", float(report["aha"]["approximate"]), "flag"))
    return out
