"""Cohort and study quality control (data selection): ``cmrrisk qc MANIFEST``.

A cohort report in three parts:

* **volume** - subjects, subjects with each image role, events, follow-up (``time``), labels;
* **variety** - counts per vendor, field strength and sequence (from DICOM headers, else from
  the manifest's ``manufacturer`` / ``field_strength_t`` / ``sequence`` columns when present),
  and min / median / max of in-plane resolution, slice spacing, slice thickness and matrix;
* **veracity** - checks per subject, each with a machine-readable ``code``, a ``severity``
  and a human ``message``:

  ``exclude``  the subject is unusable for the pipeline (it would fail, or its indices would be
               wrong): e.g. unreadable file, NaN voxels, constant image, ED/ES shape mismatch;
  ``flag``     usable with care (an unusual but possible acquisition or anatomy): e.g. few
               slices, slice gaps, intensity outlier, index outside its plausible range.

  A subject's status is ``exclude`` if any check excludes, else ``flag`` if any check flags,
  else ``ok``.

The same checks run on one study in Slicer (``CMRRiskSegmentLogic.qcVolume``) through
:func:`volume_qc`, which takes a :class:`cmrrisk.image.Volume` and an optional label array.

Thresholds (all project defaults, chosen to catch broken data rather than to grade image
quality; none is taken from a guideline):

``MIN_SLICES`` = 6
    A short-axis stack covering the LV from base to apex at 8-10 mm spacing has about 8-12
    slices; fewer than 6 usually means a partial stack (flag). One slice is a 2D image (exclude).
``IN_PLANE_MM`` = (0.4, 3.0)
    Cine/LGE in-plane pixel sizes are typically 0.6-2.0 mm; outside this range the header is
    probably wrong or the image is not a CMR short-axis stack (flag).
``SLICE_SPACING_MM`` = (2.0, 20.0)
    Short-axis slices are usually 5-10 mm apart; outside this range a header is suspicious (flag).
``MAX_IN_PLANE_ANISOTROPY`` = 0.05
    Relative difference of the two in-plane pixel sizes; CMR pixels are square (flag).
``MAX_GAP_RATIO`` = 1.5
    Slice spacing / slice thickness (when the thickness is known): above it the gap between
    slices exceeds half a slice and volumes by summation of discs lose accuracy (flag).
``GEOMETRY_TOLERANCE`` = 1e-3
    Relative tolerance when comparing spacings, directions (cosines) and origins (mm, scaled by
    the voxel size) of ED and ES frames, and orthogonality of axes.
``MIN_PHASES`` = 10
    A cine with fewer phases samples the cardiac cycle too coarsely to find end systole (flag).
``SATURATED_SHARE`` = 0.05
    Share of voxels at the image's maximum value above which the image counts as saturated
    (clipped) (flag). Label-like images with only a few grey values are not tested.
``ROBUST_Z`` = 3.5, ``MAD_FLOOR`` = 0.02
    Intensity outlier: the modified z-score 0.6745 (x - median) / MAD, against the cohort's
    images of the same role, above 3.5 in absolute value (the cut-off proposed by Iglewicz and
    Hoaglin, 1993), of the scale-free histogram position of the median,
    x = (p50 - p0.5) / (p99.5 - p0.5). MR intensities have no absolute unit (scanners and
    exports scale them differently; ACDC's 0.5-99.5 % ranges span 10^2.1 to 10^3.1), so the
    absolute range is reported (``log10_range``) but not tested; x catches inverted, noise-only,
    mostly-bright or wrongly windowed images. The MAD is floored at 0.02 (ACDC's 100 ED frames:
    0.028) so that a small, homogeneous cohort does not flag trivial differences. Computed only when the cohort has at
    least ``MIN_COHORT_FOR_OUTLIERS`` = 5 such images; only flags.
Segmentation (reference segmentations, or the bundled model with ``segment=True``):
    ``no_heart_found``, ``lv_empty``, ``myocardium_empty`` exclude; ``rv_empty`` (cine),
    ``lv_volume_implausible`` (outside 5-600 mL) and ``lv_not_enclosed_by_myocardium`` (more
    than 35 % of the LV border touches background) flag; see
    :mod:`cmrrisk.segmentation.quality`.
Scar plausibility (LGE label maps, :func:`scar_plausibility_checks`; all flag):
    ``scar_outside_myocardium`` when more than 10 % of the scar + MVO voxels lie in connected
    pieces (3D, face-connected) that touch no healthy myocardium (label 2): scar floating in the
    blood pool or beside the heart, away from the LV wall; ``mvo_without_scar`` when more than
    10 % of the MVO voxels lie in pieces that no scar voxel (label 4) borders (MVO is the dark
    core of an infarct and sits inside it); ``scar_burden_implausible`` when scar + MVO make up
    more than 80 % of the LV myocardium.
``PLAUSIBLE`` ranges of indices (flag when outside); wide enough to hold the pathologies of
    public cohorts (dilated and hypertrophic hearts), narrow enough to catch label swaps,
    empty frames and wrong spacings:
    LVEDV 20-600 mL, LVESV 3-550 mL, LVEF 5-90 %, LV mass 20-500 g, RVEDV 20-600 mL, and
    maximal LV wall thickness (10-degree sectors, :mod:`cmrrisk.features.indices`) 2-40 mm in
    every checked frame (ED and ES): beyond 40 mm a segmentation error is far more likely than
    anatomy.

Follow-up is summarised as median, quartiles and maximum of ``time`` over all subjects and
over censored subjects (``event`` 0); the latter approximates the reverse Kaplan-Meier median
follow-up when censoring is administrative.
"""

from __future__ import annotations

import math
import os
import sys
import time

import numpy as np

from . import labels as L
from .errors import CMRRiskError
from .qcchecks import (EXCLUDE, FLAG, MAX_MVO_WITHOUT_SCAR_SHARE, MAX_SCAR_BURDEN_PCT,  # noqa: F401
                       MAX_SCAR_OUTSIDE_SHARE, OK, check, scar_plausibility_checks, status_of)
from .qcsummary import (markdown, reasons, variety_summary, veracity_summary,  # noqa: F401
                        volume_summary)

MIN_SLICES = 6
IN_PLANE_MM = (0.4, 3.0)
SLICE_SPACING_MM = (2.0, 20.0)
MAX_IN_PLANE_ANISOTROPY = 0.05
MAX_GAP_RATIO = 1.5
GEOMETRY_TOLERANCE = 1e-3
MIN_PHASES = 10
SATURATED_SHARE = 0.05
ROBUST_Z = 3.5
MAD_FLOOR = 0.02
MIN_COHORT_FOR_OUTLIERS = 5
PLAUSIBLE = {
    "lv_edv_ml": (20.0, 600.0, "mL"),
    "lv_esv_ml": (3.0, 550.0, "mL"),
    "lv_ef_pct": (5.0, 90.0, "%"),
    "lv_mass_g": (20.0, 500.0, "g"),
    "lv_max_wall_thickness_mm": (2.0, 40.0, "mm"),
    "rv_edv_ml": (20.0, 600.0, "mL"),
}
#: scar plausibility: tolerated share of scar / MVO voxels in implausible pieces, highest burden (%)
#: frame_flags codes that make a segmentation unusable
SEG_EXCLUDE = ("no_heart_found", "lv_empty", "myocardium_empty")


QC_JSON, QC_CSV, QC_MD = "qc.json", "qc_subjects.csv", "qc.md"
#: what ``qc --shard I/N`` writes: its subjects' results, joined by ``merge-shards``
QC_SHARD = "qc_shard.json"


# ------------------------------------------------------------------------------ one volume

def _direction(m: np.ndarray) -> np.ndarray:
    sp = np.linalg.norm(m[:3, :3], axis=0)
    return m[:3, :3] / np.where(sp > 0, sp, 1.0)


def _orientation_code(m: np.ndarray) -> str:
    """Closest anatomical axis letters (RAS) of the i, j, k axes, e.g. 'LPS' (oblique axes get
    their dominant direction)."""
    d = _direction(m)
    letters = (("L", "R"), ("P", "A"), ("I", "S"))
    out = ""
    for c in range(3):
        a = int(np.argmax(np.abs(d[:, c])))
        out += letters[a][1] if d[a, c] > 0 else letters[a][0]
    return out


def _clean(v):
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return None
    return v


def describe_volume(vol) -> dict:
    """Geometry and acquisition metadata of a :class:`~cmrrisk.image.Volume` (JSON-ready)."""
    a = vol.array
    sx, sy, sz = vol.spacing
    meta = vol.meta or {}
    return {
        "shape": list(a.shape),
        "n_phases": int(a.shape[0]) if a.ndim == 4 else 1,
        "n_slices": int(a.shape[-3]),
        "matrix": [int(a.shape[-2]), int(a.shape[-1])],  # rows x columns
        "spacing_mm": [round(sx, 4), round(sy, 4), round(sz, 4)],
        "in_plane_mm": round(float(np.sqrt(sx * sy)), 4),
        "slice_spacing_mm": round(sz, 4),
        "slice_thickness_mm": _clean(meta.get("slice_thickness_mm")),
        "orientation": _orientation_code(vol.ijk_to_ras),
        "manufacturer": meta.get("manufacturer") or None,
        "model": meta.get("model") or None,
        "field_strength_t": _clean(meta.get("field_strength_t")),
        "sequence": (meta.get("sequence_name") or meta.get("series_description") or meta.get("protocol_name")
                     or None),
    }


def volume_checks(vol, role: str = "image") -> tuple[dict, list]:
    """(description, checks) of one image volume: dimensions, NaN, geometry, slices, phases and
    intensities. Does not raise on bad data: problems are returned as checks."""
    checks = []
    a = np.asarray(vol.array)
    if a.ndim not in (3, 4) or a.size == 0:
        return {"shape": list(a.shape)}, [check("image_not_3d", EXCLUDE, f"image has shape {a.shape}; a 3D "
                                                "short-axis stack or a 4D cine is needed.", role)]
    info = describe_volume(vol)
    af = a.astype(np.float32, copy=False)
    finite = np.isfinite(af)
    if not finite.all():
        n = int(af.size - finite.sum())
        checks.append(check("nan_voxels", EXCLUDE, f"{n} NaN or infinite voxels.", role))
        af = np.where(finite, af, np.nan)
    if info["n_slices"] < 2:
        checks.append(check("single_slice", EXCLUDE, "one slice only: a 2D image, not a short-axis stack.", role))
    elif info["n_slices"] < MIN_SLICES:
        checks.append(check("few_slices", FLAG, f"{info['n_slices']} slices (fewer than {MIN_SLICES}): "
                            "the stack may not cover the ventricles.", role))
    if min(info["matrix"]) < 16:
        checks.append(check("matrix_too_small", EXCLUDE, f"matrix {info['matrix'][0]}x{info['matrix'][1]} "
                            "is too small for a short-axis image.", role))
    m = np.asarray(vol.ijk_to_ras, float)
    if not np.all(np.isfinite(m)) or abs(np.linalg.det(m[:3, :3])) < 1e-12:
        checks.append(check("degenerate_geometry", EXCLUDE, "zero spacing or invalid direction in the header.", role))
        return info, checks
    sx, sy, sz = vol.spacing
    d = _direction(m)
    off = np.abs(d.T @ d - np.eye(3)).max()
    if off > GEOMETRY_TOLERANCE * 10:
        checks.append(check("sheared_geometry", FLAG, f"voxel axes are not orthogonal (max |cos| {off:.3f}); "
                            "the image may be resampled wrongly.", role))
    ip = math.sqrt(sx * sy)
    if not IN_PLANE_MM[0] <= ip <= IN_PLANE_MM[1]:
        checks.append(check("in_plane_spacing_unusual", FLAG, f"in-plane pixel size {ip:.2f} mm is outside "
                            f"{IN_PLANE_MM[0]}-{IN_PLANE_MM[1]} mm; check the header.", role))
    if abs(sx - sy) / max(sx, sy) > MAX_IN_PLANE_ANISOTROPY:
        checks.append(check("anisotropic_pixels", FLAG, f"pixels are {sx:.3f} x {sy:.3f} mm (not square).", role))
    if info["n_slices"] > 1 and not SLICE_SPACING_MM[0] <= sz <= SLICE_SPACING_MM[1]:
        checks.append(check("slice_spacing_unusual", FLAG, f"slice spacing {sz:.2f} mm is outside "
                            f"{SLICE_SPACING_MM[0]}-{SLICE_SPACING_MM[1]} mm; check the header.", role))
    th = info["slice_thickness_mm"]
    if th and info["n_slices"] > 1 and sz > MAX_GAP_RATIO * th:
        checks.append(check("slice_gap", FLAG, f"slice spacing {sz:.2f} mm is more than {MAX_GAP_RATIO}x the "
                            f"slice thickness {th:.2f} mm: gaps between slices.", role))
    if a.ndim == 4:
        if a.shape[0] < MIN_PHASES:
            checks.append(check("few_phases", FLAG, f"{a.shape[0]} cine phases (fewer than {MIN_PHASES}): "
                                "end systole may be missed.", role))
        flat = af.reshape(af.shape[0], -1)
        blank = [int(t) for t in range(flat.shape[0]) if np.nanmax(flat[t]) == np.nanmin(flat[t])]
        if blank:
            checks.append(check("blank_phase", EXCLUDE, f"phase(s) {blank} hold a constant image (missing "
                                "data); ED/ES selection would be wrong.", role))
    checks += _intensity_checks(af, role)
    info["intensity"] = _intensity_stats(af)
    return info, checks


def _intensity_stats(af: np.ndarray) -> dict:
    v = af[np.isfinite(af)]
    if v.size == 0:
        return {}
    p = np.percentile(v, [0.5, 50, 99.5])
    rng = float(p[2] - p[0])
    return {"p0_5": float(p[0]), "median": float(p[1]), "p99_5": float(p[2]),
            "log10_range": float(np.log10(rng)) if rng > 0 else None,
            "relative_median": float((p[1] - p[0]) / rng) if rng > 0 else None}


def _intensity_checks(af: np.ndarray, role: str) -> list:
    out = []
    v = af[np.isfinite(af)]
    if v.size == 0:
        return [check("constant_image", EXCLUDE, "no finite voxel.", role)]
    lo, hi = float(v.min()), float(v.max())
    if lo == hi:
        return [check("constant_image", EXCLUDE, f"every voxel has the value {lo:g}: no image content.", role)]
    # blank slices: a constant slice inside the stack is a missing slice; at an end, a padding slice
    stack = af if af.ndim == 3 else af[0]
    flat = stack.reshape(stack.shape[0], -1)
    blank = [z for z in range(flat.shape[0]) if np.nanmax(flat[z]) == np.nanmin(flat[z])]
    inner = [z for z in blank if 0 < z < flat.shape[0] - 1 and
             any(b < z for b in range(flat.shape[0]) if b not in blank) and
             any(b > z for b in range(flat.shape[0]) if b not in blank)]
    if inner:
        out.append(check("missing_slice", EXCLUDE, f"slice(s) {inner} inside the stack are constant (missing "
                         "data); volumes would be wrong.", role))
    elif blank:
        out.append(check("blank_end_slice", FLAG, f"slice(s) {blank} at the end of the stack are constant.", role))
    sample = v if v.size <= 2_000_000 else v[:: v.size // 2_000_000 + 1]
    if np.unique(sample[: 200_000]).size > 16:
        share = float(np.count_nonzero(v == hi)) / v.size
        if share > SATURATED_SHARE:
            out.append(check("saturated", FLAG, f"{100 * share:.1f} % of voxels are at the maximum {hi:g} "
                             "(clipped intensities).", role))
    return out


def _seg_text(flag: str, seg: np.ndarray, spacing_xyz) -> str:
    from .metrics import volumes_ml
    from .segmentation import quality as Q

    if flag == "lv_volume_implausible":
        lo, hi = Q.LV_VOLUME_RANGE_ML
        return f"LV blood-pool volume {volumes_ml(seg, spacing_xyz)['lv_ml']:.1f} mL is outside {lo:g}-{hi:g} mL"
    if flag == "lv_not_enclosed_by_myocardium":
        return (f"{100 * Q.lv_border_on_background(seg):.0f} % of the LV blood-pool border touches background "
                f"(more than {100 * Q.MAX_LV_BORDER_ON_BACKGROUND:.0f} %): LV not enclosed by myocardium")
    return {"no_heart_found": "no heart structure labelled", "lv_empty": "no LV blood pool",
            "myocardium_empty": "no LV myocardium", "rv_empty": "no RV blood pool"}.get(flag, flag.replace("_", " "))


def segmentation_checks(seg: np.ndarray, spacing_xyz, role: str = "image", structures=L.CINE_LABELS,
                        source: str = "reference") -> list:
    """Checks of one label map (project labels): :func:`cmrrisk.segmentation.quality.frame_flags`
    and, for a single frame, the LV volume and maximal wall thickness ranges."""
    from .features.indices import max_wall_thickness_mm
    from .segmentation.quality import frame_flags

    out = []
    seg = np.asarray(seg)
    if seg.min() < 0 or seg.max() > 5:
        return [check("seg_labels_invalid", EXCLUDE, f"{source} segmentation labels {int(seg.min())}.."
                      f"{int(seg.max())} are outside the project's 0-5.", role)]
    for f in frame_flags(seg, spacing_xyz, structures):
        sev = EXCLUDE if f in SEG_EXCLUDE else FLAG
        out.append(check(f"seg_{f}", sev, f"{source} segmentation: {_seg_text(f, seg, spacing_xyz)}.", role))
    if (seg == L.LV_BLOOD_POOL).any() and np.isin(seg, L.MYOCARDIAL).any():
        t = max_wall_thickness_mm(seg, spacing_xyz)
        lo, hi, unit = PLAUSIBLE["lv_max_wall_thickness_mm"]
        if math.isfinite(t) and not lo <= t <= hi:
            out.append(check("implausible_lv_max_wall_thickness_mm", FLAG, f"{source} segmentation: maximal "
                             f"wall thickness {t:.2f} {unit} outside {lo:g}-{hi:g} {unit}.", role))
    if L.SCAR in structures and seg.ndim == 3:
        out += scar_plausibility_checks(seg, role, source)
    return out


def index_checks(indices: dict, source: str = "reference") -> list:
    """Flags for cine indices outside :data:`PLAUSIBLE`."""
    out = []
    for k, (lo, hi, unit) in PLAUSIBLE.items():
        v = indices.get(k)
        if v is None or not isinstance(v, (int, float)) or not math.isfinite(v):
            continue
        if not lo <= v <= hi:
            out.append(check(f"implausible_{k}", FLAG, f"{k} = {v:.1f} {unit} from the {source} segmentation "
                             f"is outside {lo:g}-{hi:g} {unit}.", "cine"))
    return out


def pair_checks(ed, es) -> list:
    """ED and ES frames must share a grid: shape and spacing (exclude), direction and origin (flag)."""
    out = []
    if ed.array.shape != es.array.shape:
        out.append(check("ed_es_shape_mismatch", EXCLUDE, f"ED shape {tuple(ed.array.shape)} differs from ES "
                         f"shape {tuple(es.array.shape)}.", "cine"))
    s1, s2 = np.asarray(ed.spacing), np.asarray(es.spacing)
    if np.any(np.abs(s1 - s2) > GEOMETRY_TOLERANCE * np.maximum(s1, s2)):
        out.append(check("ed_es_spacing_mismatch", EXCLUDE, f"ED spacing {np.round(s1, 3).tolist()} mm differs "
                         f"from ES spacing {np.round(s2, 3).tolist()} mm.", "cine"))
    d = np.abs(_direction(ed.ijk_to_ras) - _direction(es.ijk_to_ras)).max()
    if d > GEOMETRY_TOLERANCE:
        out.append(check("ed_es_orientation_mismatch", FLAG, f"ED and ES orientations differ (max direction "
                         f"cosine difference {d:.3f}).", "cine"))
    o = np.linalg.norm(np.asarray(ed.ijk_to_ras)[:3, 3] - np.asarray(es.ijk_to_ras)[:3, 3])
    if o > max(GEOMETRY_TOLERANCE * float(s1.max()), 0.01) * 10:
        out.append(check("ed_es_origin_mismatch", FLAG, f"ED and ES origins are {o:.2f} mm apart.", "cine"))
    return out


def volume_qc(vol, seg: np.ndarray | None = None, role: str = "image", structures=None) -> dict:
    """QC of one volume (and optionally its label map) - the function behind the Slicer Logic.
    ``structures`` expected in the label map: by default LGE labels for ``role="lge"``, else cine.

    Returns ``{"status", "info", "checks"}``."""
    if structures is None:
        structures = L.LGE_LABELS if role == "lge" else L.CINE_LABELS
    info, checks = volume_checks(vol, role)
    if seg is not None:
        seg = np.asarray(seg)
        if seg.shape != tuple(vol.array.shape[-3:]) and seg.shape != tuple(vol.array.shape):
            checks.append(check("seg_shape_mismatch", EXCLUDE, f"segmentation shape {seg.shape} differs from "
                                f"the image's {tuple(vol.array.shape)}.", role))
        elif seg.ndim == 3:
            checks += segmentation_checks(seg, vol.spacing, role, structures)
    return {"status": status_of(checks), "info": info, "checks": checks}


# ------------------------------------------------------------------------------ one subject

def _read_error_code(exc: CMRRiskError) -> str:
    """The QC finding of an image that could not be read: the error's own code."""
    return "unreadable" if exc.code == "error" else exc.code


def _read(path: str, role: str, checks: list):
    from .image import read_image

    try:
        return read_image(path)
    except CMRRiskError as exc:
        checks.append(check(_read_error_code(exc), EXCLUDE, str(exc), role))
    except Exception as exc:  # any reader failure is a finding, not a crash
        checks.append(check("unreadable", EXCLUDE, f"{path}: {type(exc).__name__}: {exc}", role))
    return None


def _meta_from_row(info: dict, row: dict) -> None:
    """Fill vendor / field strength / sequence from manifest columns when the image has none."""
    for key, col in (("manufacturer", "manufacturer"), ("field_strength_t", "field_strength_t"),
                     ("sequence", "sequence")):
        if info.get(key) in (None, "") and row.get(col):
            v = row[col]
            if key == "field_strength_t":
                try:
                    v = float(v)
                except ValueError:
                    continue
            info[key] = v


def _seg_for(row: dict, role: str, vol, checks: list):
    """Reference segmentation of ``role`` as a project-label array (None when absent or bad)."""
    from .labelmap import read_labelmap

    path = row.get(f"{role}_seg")
    if not path:
        return None
    try:
        return read_labelmap(path, vol, row.get("seg_labels", ""))
    except CMRRiskError as exc:
        code = "seg_shape_mismatch" if exc.code == "seg_shape_mismatch" else "seg_unreadable"
        checks.append(check(code, EXCLUDE, str(exc), role))
    except Exception as exc:
        checks.append(check("seg_unreadable", EXCLUDE, f"{path}: {type(exc).__name__}: {exc}", role))
    return False  # present but unusable


def _model_seg(model: str, vol, prior=None):
    from .segmentation.service import segment_frame

    return segment_frame(vol, model, prior=prior).labels


def subject_qc(row: dict, segment: bool = True) -> dict:
    """QC of one manifest row (absolute paths, as :func:`cmrrisk.manifest.read_manifest` gives).

    ``segment``: check segmentations - the reference ones of the manifest, else the bundled
    model's. Never raises for bad data: every problem becomes a check."""
    from .features.indices import cine_indices
    from .metrics import ed_es_phases

    t0 = time.perf_counter()
    checks: list = []
    images: dict = {}
    vols: dict = {}
    for role in ("cine_ed", "cine_es", "cine", "lge"):
        path = row.get(role)
        if not path:
            continue
        vol = _read(path, role, checks)
        if vol is None:
            images[role] = {"path": path, "readable": False}
            continue
        if role in ("cine_ed", "cine_es", "lge") and vol.is_cine:
            checks.append(check("unexpected_4d", EXCLUDE, f"{path}: column {role} needs a 3D stack, found a 4D "
                                f"image {vol.array.shape}.", role))
        if role == "cine" and not vol.is_cine:
            checks.append(check("cine_not_4d", EXCLUDE, f"{path}: column cine needs a 4D cine (several phases); "
                                "use cine_ed / cine_es for single frames.", role))
        info, c = volume_checks(vol, role)
        _meta_from_row(info, row)
        info["path"] = path
        info["readable"] = True
        images[role] = info
        checks += c
        vols[role] = vol
    if not images:
        checks.append(check("no_image", EXCLUDE, "no image column filled (cine_ed + cine_es, cine or lge).", ""))
    ed, es = vols.get("cine_ed"), vols.get("cine_es")
    usable = {r for r in vols if not any(c["severity"] == EXCLUDE and c["role"] == r for c in checks)}
    if ed is not None and es is not None:
        checks += pair_checks(ed, es)
    out = {"subject": row.get("subject", ""), "images": images, "segmentation": {}, "indices": {}}
    if segment:
        try:
            segs: dict = {}
            if {"cine_ed", "cine_es"} <= usable and not any(c["code"].startswith("ed_es_") and c["severity"] == EXCLUDE
                                                           for c in checks):
                for role in ("cine_ed", "cine_es"):
                    s = _seg_for(row, role, vols[role], checks)
                    if s is None:  # ES anchored to the ED labels, as in cmrrisk features
                        prior = segs.get("cine_ed") if role == "cine_es" else None
                        s = _model_seg("cine", vols[role], prior)
                        src = "model cine"
                    else:
                        src = "reference"
                    if s is not False:
                        segs[role] = s
                        out["segmentation"][role] = src
                        checks += segmentation_checks(s, vols[role].spacing, role, L.CINE_LABELS, src)
                if len(segs) == 2:
                    idx = cine_indices(segs["cine_ed"], segs["cine_es"], ed.spacing)
                    out["indices"] = {k: _clean(float(idx[k])) for k in PLAUSIBLE if k in idx}
                    checks += index_checks(idx, out["segmentation"]["cine_ed"])
            elif "cine" in usable and vols["cine"].is_cine:
                cine = vols["cine"]
                s = _seg_for(row, "cine", cine, checks)
                if s is None:
                    from .segmentation.service import segment_cine

                    r = segment_cine(cine)
                    s, ed_t, es_t = r.labels, r.ed_phase, r.es_phase
                    src = "model cine"
                else:
                    src = "reference"
                if s is not False:
                    if src == "reference":
                        ed_t, es_t = ed_es_phases(s, cine.spacing)
                    out["segmentation"]["cine"] = f"{src} (ED phase {ed_t}, ES phase {es_t})"
                    for t, name in ((ed_t, "ED"), (es_t, "ES")):
                        checks += segmentation_checks(s[t], cine.spacing, "cine", L.CINE_LABELS, f"{src} {name}")
                    idx = cine_indices(s[ed_t], s[es_t], cine.spacing)
                    out["indices"] = {k: _clean(float(idx[k])) for k in PLAUSIBLE if k in idx}
                    checks += index_checks(idx, src)
            if "lge" in usable and not vols["lge"].is_cine:
                lge = vols["lge"]
                s = _seg_for(row, "lge", lge, checks)
                src = "reference"
                if s is None:
                    s, src = _model_seg("lge", lge), "model lge"
                if s is not False:
                    out["segmentation"]["lge"] = src
                    checks += segmentation_checks(s, lge.spacing, "lge", L.LGE_LABELS, src)
        except CMRRiskError as exc:
            checks.append(check("segmentation_failed", EXCLUDE, str(exc), ""))
        except Exception as exc:  # a model failure on one subject is a finding
            checks.append(check("segmentation_failed", EXCLUDE, f"{type(exc).__name__}: {exc}", ""))
    out["checks"] = checks
    out["status"] = status_of(checks)
    out["seconds"] = round(time.perf_counter() - t0, 3)
    return out


def _run_one(row: dict, segment: bool) -> dict:
    try:
        return subject_qc(row, segment)
    except Exception as exc:  # one subject's unexpected failure must not stop the cohort
        c = [check("qc_failed", EXCLUDE, f"{type(exc).__name__}: {exc}", "")]
        return {"subject": row.get("subject", ""), "images": {}, "segmentation": {}, "indices": {},
                "checks": c, "status": EXCLUDE}


# ------------------------------------------------------------------------------ cohort

def _robust_outliers(results: list) -> None:
    """Add ``intensity_outlier`` flags (modified z-score of the relative median per role)."""
    by_role: dict = {}
    for r in results:
        for role, info in r["images"].items():
            x = (info.get("intensity") or {}).get("relative_median")
            if x is not None:
                by_role.setdefault(role, []).append((r, x))
    for role, items in by_role.items():
        if len(items) < MIN_COHORT_FOR_OUTLIERS:
            continue
        xs = np.array([x for _, x in items])
        med = float(np.median(xs))
        mad = max(float(np.median(np.abs(xs - med))), MAD_FLOOR)
        for r, x in items:
            z = 0.6745 * (x - med) / mad
            r["images"][role]["intensity"]["robust_z"] = round(float(z), 3)
            if abs(z) > ROBUST_Z:
                r["checks"].append(check("intensity_outlier", FLAG, f"intensity histogram is an outlier in the "
                                         f"cohort's {role} images: median at {x:.2f} of the 0.5-99.5 % range "
                                         f"(cohort median {med:.2f}; modified z-score {z:.1f}).", role))
                r["status"] = status_of(r["checks"])


def cohort_qc(manifest, out_dir: str, segment: bool = True, workers: int | None = None,
              progress=True, engine=None, shard=None) -> dict:
    """QC of every subject of a manifest (path or :class:`~cmrrisk.manifest.Manifest`); writes
    ``qc.json``, ``qc_subjects.csv`` and ``qc.md`` into ``out_dir`` (atomically) and returns the
    report. Raises :class:`CMRRiskError` only for a bad manifest (missing columns, bad values);
    a missing or unreadable image excludes its subject (``missing_file``, ``unreadable``).
    ``engine``: a :class:`cmrrisk.parallel.Engine` (default: ``workers`` local workers);
    ``progress``: True (a bar), False, or a :class:`cmrrisk.progress.Progress` updated per subject
    (a cancel stops before the next subject; nothing is written then). ``shard`` (I, N): only
    the I-th block of subjects, written as ``qc_shard.json`` for :func:`merge_qc_shards` (the
    cohort-wide checks need every subject, so a shard writes no report)."""
    from .manifest import Manifest, read_manifest
    from .modeldir import write_json
    from .parallel import run_subjects, shard_slice

    man = manifest if isinstance(manifest, Manifest) else read_manifest(manifest, require_images=True,
                                                                       check_paths=False)
    rows = man.rows[shard_slice(len(man.rows), shard)]

    def crashed(subject, exc):
        return {"subject": subject, "images": {}, "segmentation": {}, "indices": {},
                "checks": [check("qc_failed", EXCLUDE, f"{type(exc).__name__}: {exc}", "")], "status": EXCLUDE}

    t0 = time.perf_counter()
    if engine is not None and engine.client is not None:  # workers must see the images
        from .manifest import IMAGE_ROLES

        engine.check_visible([r[c] for r in rows for c in r if (c in IMAGE_ROLES or c.endswith("_seg"))
                              and r[c] and os.path.exists(r[c])], "image files of the manifest")
    results = run_subjects(_run_one, [(r["subject"], (r, segment)) for r in rows], workers, "qc",
                           progress, on_crash=crashed, engine=engine)
    ordered = [results[r["subject"]] for r in rows]
    seconds = round(time.perf_counter() - t0, 2)
    if shard is not None:
        part = {"manifest": os.path.abspath(man.path), "segment": bool(segment), "wall_seconds": seconds,
                "shard": {"index": shard[0], "count": shard[1], "n_manifest_rows": len(man.rows),
                          "subjects": [r["subject"] for r in rows]},
                "results": ordered}
        os.makedirs(out_dir, exist_ok=True)
        write_json(os.path.join(out_dir, QC_SHARD), part)
        return part
    return write_qc_report(man, ordered, out_dir, segment, seconds)


def merge_qc_shards(folders: list, out_dir: str) -> dict:
    """Join the ``qc --shard I/N`` outputs (folders holding ``qc_shard.json``, all N shards of one
    manifest) into the report a single run writes (the cohort-wide intensity outliers computed
    over all subjects)."""
    import json

    from .manifest import read_manifest

    parts = []
    for folder in folders:
        path = os.path.join(folder, QC_SHARD)
        try:
            with open(path, encoding="utf-8") as fh:
                parts.append((path, json.load(fh)))
        except (OSError, ValueError) as exc:
            raise CMRRiskError(f"{path}: not a qc shard output ({exc}); give the --out folders of "
                               "`cmrrisk qc --shard I/N` runs.") from None
    first_path, first = parts[0]
    for path, p in parts[1:]:
        for key in ("manifest", "segment"):
            if p[key] != first[key]:
                raise CMRRiskError(f"{path}: {key} {p[key]!r} differs from {first_path} ({first[key]!r}); merge "
                                   "the shards of one qc run.")
        if p["shard"]["count"] != first["shard"]["count"]:
            raise CMRRiskError(f"{path}: shard of {p['shard']['count']}, {first_path} of {first['shard']['count']}.")
    n = first["shard"]["count"]
    have = sorted(p["shard"]["index"] for _, p in parts)
    if have != list(range(1, n + 1)):
        missing = sorted(set(range(1, n + 1)) - set(have))
        twice = sorted({i for i in have if have.count(i) > 1})
        raise CMRRiskError(f"qc shards: {n} expected; " + (f"missing {', '.join(map(str, missing))}" if missing else "")
                           + ("; " if missing and twice else "") + (f"given twice {', '.join(map(str, twice))}"
                                                                   if twice else "") + ".")
    man = read_manifest(first["manifest"], require_images=True, check_paths=False)
    ordered = [r for _, p in sorted(parts, key=lambda ip: ip[1]["shard"]["index"]) for r in p["results"]]
    if [r["subject"] for r in ordered] != man.subjects:
        raise CMRRiskError(f"{first['manifest']}: its subjects are not those the shards hold (the manifest changed "
                           "since the qc runs); run them again.")
    return write_qc_report(man, ordered, out_dir, first["segment"], round(sum(p["wall_seconds"] for _, p in parts), 2))


def write_qc_report(man, ordered: list, out_dir: str, segment: bool, wall_seconds: float) -> dict:
    """The cohort checks over the per-subject results ``ordered`` (manifest order), then
    ``qc.json``, ``qc_subjects.csv`` and ``qc.md`` in ``out_dir``; returns the report."""
    from . import __version__
    from .manifest import write_csv
    from .modeldir import write_json, write_text_atomic

    _robust_outliers(ordered)
    report = {
        "manifest": os.path.abspath(man.path),
        "cmrrisk_version": __version__,
        "segment": bool(segment),
        "wall_seconds": wall_seconds,
        "thresholds": {"MIN_SLICES": MIN_SLICES, "IN_PLANE_MM": IN_PLANE_MM, "SLICE_SPACING_MM": SLICE_SPACING_MM,
                       "MAX_IN_PLANE_ANISOTROPY": MAX_IN_PLANE_ANISOTROPY, "MAX_GAP_RATIO": MAX_GAP_RATIO,
                       "MIN_PHASES": MIN_PHASES, "SATURATED_SHARE": SATURATED_SHARE, "ROBUST_Z": ROBUST_Z,
                       "MAD_FLOOR": MAD_FLOOR,
                       "PLAUSIBLE": {k: list(v) for k, v in PLAUSIBLE.items()}},
        "volume": volume_summary(man, ordered),
        "variety": variety_summary(ordered),
        "veracity": veracity_summary(ordered),
        "images": {r["subject"]: r["images"] for r in ordered},
    }
    os.makedirs(out_dir, exist_ok=True)
    write_json(os.path.join(out_dir, QC_JSON), report)
    csv_rows = []
    for r in ordered:
        info = next(iter(r["images"].values()), {}) if r["images"] else {}
        csv_rows.append({"subject": r["subject"], "status": r["status"],
                         "exclude_reasons": reasons(r, EXCLUDE), "flag_reasons": reasons(r, FLAG),
                         "manufacturer": info.get("manufacturer") or "",
                         "field_strength_t": "" if info.get("field_strength_t") is None else info["field_strength_t"],
                         "in_plane_mm": info.get("in_plane_mm", ""), "slice_spacing_mm": info.get("slice_spacing_mm", ""),
                         "n_slices": info.get("n_slices", ""),
                         "messages": " | ".join(c["message"] for c in r["checks"])})
    write_csv(os.path.join(out_dir, QC_CSV), ["subject", "status", "exclude_reasons", "flag_reasons", "manufacturer",
                                              "field_strength_t", "in_plane_mm", "slice_spacing_mm", "n_slices",
                                              "messages"], csv_rows)
    write_text_atomic(os.path.join(out_dir, QC_MD), markdown(report))
    return report


# ------------------------------------------------------------------------------ command line

def cmd_qc(args) -> int:
    from .parallel import engine_from_args, parse_shard

    with engine_from_args(args) as engine:
        rep = cohort_qc(args.manifest, args.out, segment=not args.no_segment, progress=not args.quiet,
                        engine=engine, shard=parse_shard(args.shard))
    if "shard" in rep:
        sh = rep["shard"]
        print(f"shard {sh['index']}/{sh['count']}: {len(sh['subjects'])} of {sh['n_manifest_rows']} subjects -> "
              f"{os.path.join(args.out, QC_SHARD)}; join the {sh['count']} shards with `cmrrisk merge-shards "
              f"DIR... --out DIR`")
        return 0
    v = rep["volume"]
    st = v["status"]
    print(f"{v['n_subjects']} subjects: {st['ok']} ok, {st['flag']} flagged, {st['exclude']} excluded")
    print("vendors: " + ", ".join(f"{k} {n}" for k, n in rep["variety"]["manufacturer"].items()))
    print("field strengths: " + ", ".join(f"{k} {n}" for k, n in rep["variety"]["field_strength"].items()))
    for s in rep["veracity"]["subjects"]:
        if s["status"] != OK:
            print(f"{s['status']}: {s['subject']}: " + "; ".join(f"{c['code']}" for c in s["checks"]))
    print(f"report: {os.path.join(args.out, QC_JSON)}, {os.path.join(args.out, QC_CSV)}, "
          f"{os.path.join(args.out, QC_MD)}")
    return 0


def cmd_merge_qc_shards(args) -> int:
    rep = merge_qc_shards(args.shards, args.out)
    st = rep["volume"]["status"]
    print(f"{rep['volume']['n_subjects']} subjects from {len(args.shards)} shards: {st['ok']} ok, {st['flag']} flagged, "
          f"{st['exclude']} excluded")
    print(f"report: {os.path.join(args.out, QC_JSON)}, {os.path.join(args.out, QC_CSV)}, "
          f"{os.path.join(args.out, QC_MD)}")
    return 0


def add_commands(subparsers) -> None:
    """Register ``qc`` and ``merge-qc-shards`` on the ``cmrrisk`` subparsers."""
    p = subparsers.add_parser("qc", help="cohort quality report: volume, variety and veracity checks; "
                              "subjects flagged or excluded with reasons")
    p.add_argument("manifest", metavar="MANIFEST", help="cohort manifest CSV")
    p.add_argument("--out", required=True, help="output folder for qc.json, qc_subjects.csv, qc.md")
    p.add_argument("--no-segment", action="store_true",
                   help="skip segmentation checks (otherwise reference segmentations, or the bundled model)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    from .parallel import add_engine_arguments

    add_engine_arguments(p, shard=True)
    p.set_defaults(func=cmd_qc)
    m = subparsers.add_parser("merge-qc-shards", help="join the outputs of `qc --shard I/N` runs into the "
                              "report of a single run")
    m.add_argument("shards", nargs="+", metavar="SHARD_DIR", help="the N shards' --out folders (qc_shard.json in each)")
    m.add_argument("--out", required=True, help="output folder for qc.json, qc_subjects.csv, qc.md")
    m.set_defaults(func=cmd_merge_qc_shards)


if __name__ == "__main__":  # pragma: no cover - ``python -m cmrrisk.qc qc ...`` is ``cmrrisk qc ...``
    from .cli import main

    sys.exit(main())
