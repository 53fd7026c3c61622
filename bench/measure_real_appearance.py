"""Appearance and anatomy of real CMR (ACDC cine, EMIDEC LGE) versus the synthetic generator.

Every property is measured the same way on the real data and on a synthetic cohort, so that the
generator's realism figures (``cmrrisk.synthetic``, ``synthetic.json``) are reproducible:

* intensity, after the segmentation models' own normalisation (clip to the volume's 0.5 / 99.5
  percentiles, scale to [0, 1]): medians of LV blood pool, myocardium, RV blood pool, scar, MVO,
  of the tissue within 15 mm around the heart, and percentiles of the whole volume;
* noise: robust SD of horizontal pixel differences inside the eroded LV blood pool / sqrt(2),
  relative to the blood-myocardium contrast; myocardial heterogeneity: robust SD (IQR / 1.349)
  of the eroded remote myocardium relative to the same contrast, and its spatial scale
  (``myo_var_coarse``: variation of the 1-pixel-disc local mean; ``myo_var_fine``: the pixel
  minus that mean; see ``_myo_scales``);
* papillary muscles / trabeculation: fraction of labelled LV cavity darker than the midpoint
  of blood and myocardium;
* geometry on mid-ventricular slices (LV cavity area >= 50 % of its maximum): equivalent
  diameters of the LV epicardium and cavity, wall thickness (difference of equivalent radii),
  in mm and in pixels of the model grid (cine: 1.5 mm, LGE: 1.0 mm declared spacing);
  cavity solidity (area / convex-hull area);
* RV (cine): RV / LV cavity area ratio at basal, mid and apical thirds of the LV, RV / LV
  volume, RV ES / ED volume, RV solidity (crescent shape), slices with RV / slices with LV;
* field of view, matrix, spacing;
* border profiles: median (I - myocardium) / (blood - myocardium) in bins of signed
  distance (mm) across the annotated LV endocardium and epicardium (``endo_prof_*``,
  ``epi_prof_*``; pixels within 4 mm of the RV left out of the epicardial profile), and the
  fractions of the 0-3 mm band outside the epicardium darker / brighter than the myocardium by
  more than 0.25 x (blood - myocardium) (``epi_out_frac_*``);
* stack order and coverage: ``first_slice_apical`` (1 when the first slice with LV labels is the
  smaller end), ``slices``, ``slices_with_lv_frac``.

    .venv/bin/python bench/measure_real_appearance.py [--acdc-step 3] [--n-synth 6] [--seed 0]

Writes bench/results/real_vs_synthetic_appearance.json (median and quartiles per property).
"""

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from scipy import ndimage
from scipy.spatial import ConvexHull

ROOT = Path(__file__).resolve().parents[1]
ACDC = "/work/shared/data/acdc/training"
EMIDEC = "/work/shared/data/emidec"

LV, MYO, RV, SCAR, MVO = 1, 2, 3, 4, 5


def _robust_sd(v):
    v = np.asarray(v, float)
    if v.size < 8:
        return float("nan")
    q1, q3 = np.percentile(v, [25, 75])
    return float((q3 - q1) / 1.349)


def _solidity(mask2d):
    yy, xx = np.nonzero(mask2d)
    if len(yy) < 10:
        return float("nan")
    pts = np.concatenate([np.stack([yy + dy, xx + dx], 1) for dy in (-0.5, 0.5) for dx in (-0.5, 0.5)])
    try:
        return float(len(yy) / ConvexHull(pts).volume)
    except Exception:
        return float("nan")


def _eq_d(area_px, s):
    return 2.0 * np.sqrt(area_px / np.pi) * s


#: signed-distance bins (mm) of the border profiles: (lower, upper], negative inside the structure
PROFILE_BINS = ((-4.5, -3.0), (-3.0, -1.5), (-1.5, 0.0), (0.0, 1.5), (1.5, 3.0), (3.0, 4.5), (4.5, 7.5))


def _bin_name(lo, hi):
    return f"{lo:+.1f}_{hi:+.1f}".replace(".", "p")


def _signed_distance(mask, spacing):
    """Signed distance (mm) of pixel centres to the border of ``mask``: + outside, - inside; the
    pixels on either side of the border are at +-0.5 pixel."""
    out = ndimage.distance_transform_edt(~mask) - 0.5
    inside = ndimage.distance_transform_edt(mask) - 0.5
    return np.where(mask, -inside, out) * spacing


def _border_profiles(n, lab, zs, spacing, blood, myo):
    """Intensity profiles across the LV endocardium and epicardium on mid-ventricular slices:
    median of (normalised intensity - myocardium) / (blood - myocardium) in bins of signed distance
    (mm, pixel centre to the label border; negative inside the cavity / inside the epicardium).
    They show where the annotated border sits on the intensity edge (endocardium) and what lies
    just outside the epicardium (fat, lung, pericardium); pixels within 4 mm of the RV blood pool
    are left out of the epicardial profile (the septum borders the RV, not fat)."""
    contrast = max(blood - myo, 1e-3)
    vals = {}
    for z in zs:
        cav = lab[z] == LV
        epi = np.isin(lab[z], (LV, MYO, SCAR, MVO))
        if cav.sum() < 20:
            continue
        sd_endo, sd_epi = _signed_distance(cav, spacing), _signed_distance(epi, spacing)
        near_rv = ndimage.distance_transform_edt(lab[z] != RV) * spacing < 4.0
        rel = (n[z] - myo) / contrast
        endo_ok = np.isin(lab[z], (LV, MYO, SCAR, MVO))
        epi_ok = ~cav & ~near_rv & (lab[z] != RV)
        band = epi_ok & (sd_epi > 0) & (sd_epi <= 3.0)
        vals.setdefault("epi_out_rel", []).append(rel[band])
        for kind, sd, ok in (("endo", sd_endo, endo_ok), ("epi", sd_epi, epi_ok)):
            for lo, hi in PROFILE_BINS:
                if kind == "endo" and hi > 4.5:
                    continue
                m = ok & (sd > lo) & (sd <= hi)
                vals.setdefault(f"{kind}_prof_{_bin_name(lo, hi)}", []).append(rel[m])
    out = {k: float(np.median(np.concatenate(v))) for k, v in vals.items()
           if sum(len(x) for x in v) > 10 and k != "epi_out_rel"}
    # contrast of the epicardial border: fraction of the 0-3 mm band outside the LV (not near
    # the RV) darker / brighter than the myocardium by more than 0.25 x (blood - myocardium)
    band = np.concatenate(vals.get("epi_out_rel", [np.zeros(0)]))
    if band.size > 10:
        out["epi_out_frac_dark"] = float((band < -0.25).mean())
        out["epi_out_frac_bright"] = float((band > 0.25).mean())
        out["epi_out_frac_myo_like"] = float((np.abs(band) <= 0.25).mean())
    return out


def _myo_scales(n, lab, zs):
    """Spatial scale of the healthy-myocardium heterogeneity (version 5 of the generator): per
    mid slice, the local mean over a disc of 1 pixel radius within the myocardium label, then
    robust SDs over the eroded myocardium of that local mean (``myo_var_coarse``) and of the
    pixel minus it (``myo_var_fine``), both / (blood - myocardium) of the slice; medians over
    the slices."""
    disc = (np.hypot(*np.mgrid[-1:2, -1:2]) <= 1).astype(float)
    fine, coarse = [], []
    for k in zs:
        myo = lab[k] == MYO
        ero = ndimage.binary_erosion(myo, iterations=1)
        cav = ndimage.binary_erosion(lab[k] == LV, iterations=2)
        if ero.sum() < 30 or cav.sum() < 10:
            continue
        c = max(float(np.median(n[k][cav]) - np.median(n[k][ero])), 1e-3)
        loc = (ndimage.convolve(np.where(myo, n[k], 0.0), disc, mode="constant")
               / np.maximum(ndimage.convolve(myo.astype(float), disc, mode="constant"), 1))
        fine.append(_robust_sd((n[k] - loc)[ero]) / c)
        coarse.append(_robust_sd(loc[ero]) / c)
    if not fine:
        return {}
    return {"myo_var_fine": float(np.nanmedian(fine)), "myo_var_coarse": float(np.nanmedian(coarse))}


def measure_frame(img, lab, spacing, model_spacing, rv=True):
    """Properties of one (Z, H, W) frame with project labels; ``spacing`` in-plane mm."""
    a = np.asarray(img, np.float32)
    lo, hi = np.percentile(a, [0.5, 99.5])
    n = np.clip((a - lo) / max(hi - lo, 1e-6), 0, 1)
    out = {"matrix": int(max(a.shape[1:])), "spacing_mm": float(spacing),
           "fov_mm": float(max(a.shape[1:]) * spacing), "frac_at_low_clip": float((a <= lo).mean())}
    for q in (5, 25, 50, 75, 95):
        out[f"vol_p{q}"] = float(np.percentile(n, q))
    myo_all = np.isin(lab, (MYO, SCAR, MVO))
    lv_area = (lab == LV).sum((1, 2))
    zs = np.nonzero(lv_area >= 0.5 * lv_area.max())[0]
    mid = np.zeros(lab.shape, bool)
    mid[zs] = True
    st = np.ones((1, 3, 3), bool)
    ero_lv = ndimage.binary_erosion(lab == LV, st, iterations=2) & mid
    ero_myo = ndimage.binary_erosion(lab == MYO, st, iterations=1) & mid
    if ero_myo.sum() < 20:
        ero_myo = (lab == MYO) & mid
    heart = lab > 0
    r_px = int(round(15.0 / spacing))
    near = ndimage.binary_dilation(heart, np.ones((1, 2 * r_px + 1, 2 * r_px + 1), bool)) & ~heart & mid
    blood = float(np.median(n[ero_lv]))
    myo = float(np.median(n[ero_myo]))
    out.update({"lv_blood": blood, "myo": myo, "near_heart_p50": float(np.median(n[near])),
                "near_heart_p10": float(np.percentile(n[near], 10)),
                "near_heart_p90": float(np.percentile(n[near], 90))})
    contrast = max(blood - myo, 1e-3)
    for name, m in (("rv_blood", (lab == RV) & mid), ("scar", lab == SCAR), ("mvo", lab == MVO)):
        if m.sum() > 10:
            out[name] = float(np.median(n[m]))
    d = np.diff(n, axis=2)
    inside = ero_lv[:, :, 1:] & ero_lv[:, :, :-1]
    if inside.sum() > 20:
        dv = d[inside]
        sd = 1.4826 * np.median(np.abs(dv - np.median(dv))) / np.sqrt(2)
        out["noise_sd"] = float(sd)
        out["noise_over_contrast"] = float(sd / contrast)
    out["myo_sd_over_contrast"] = _robust_sd(n[ero_myo]) / contrast
    out.update(_myo_scales(n, lab, zs))
    # what surrounds the heart (15 mm band): fraction dark (lung / air, < 0.1), intermediate
    # (muscle, liver, myocardium-like, 0.1-0.35) and bright (blood, fat, > 0.35); and the 0-3 mm
    # band just outside the LV epicardium where not RV (epicardial fat)
    nv = n[near]
    out.update({"near_heart_frac_dark": float((nv < 0.1).mean()),
                "near_heart_frac_bright": float((nv > 0.35).mean())})
    lvepi = np.isin(lab, (LV, MYO, SCAR, MVO))
    r3 = max(1, int(round(3.0 / spacing)))
    band = ndimage.binary_dilation(lvepi, np.ones((1, 2 * r3 + 1, 2 * r3 + 1), bool)) & ~heart & mid
    if band.sum() > 20:
        out["epi_band_p50"] = float(np.median(n[band]))
        out["epi_band_p90"] = float(np.percentile(n[band], 90))
    # body: fraction of the image above 0.05 after a 5 x 5 median (air below)
    sm = ndimage.median_filter(n, size=(1, 5, 5))
    out["body_frac"] = float((sm > 0.05).mean())
    # endocardial border sharpness: 90th percentile of the gradient magnitude (per mm) on the
    # blood / myocardium border, times the blood-myocardium contrast's inverse -> 1 / edge width
    gr = []
    for z in zs:
        gy, gx = np.gradient(n[z], spacing)
        g = np.hypot(gx, gy)
        edge = (lab[z] == MYO) & ndimage.binary_dilation(lab[z] == LV)
        edge |= (lab[z] == LV) & ndimage.binary_dilation(lab[z] == MYO)
        if edge.sum() > 10:
            gr.append(np.percentile(g[edge], 90) / contrast)
    if gr:
        out["endo_edge_width_mm"] = float(1.0 / np.median(gr))
    cav = (lab == LV) & mid
    out["cavity_dark_frac"] = float((n[cav] < 0.5 * (blood + myo)).mean())
    out.update(_border_profiles(n, lab, zs, spacing, blood, myo))
    # stack coverage and slice order: is the first slice with LV labels the apical end (smaller
    # LV) or the basal end? fraction of slices that hold LV labels
    lvz_all = np.nonzero(np.isin(lab, (LV, MYO, SCAR, MVO)).sum((1, 2)) > 0)[0]
    if len(lvz_all) >= 2:
        a_first = np.isin(lab[lvz_all[0]], (LV, MYO, SCAR, MVO)).sum()
        a_last = np.isin(lab[lvz_all[-1]], (LV, MYO, SCAR, MVO)).sum()
        out["first_slice_apical"] = float(a_first < a_last)
    out["slices"] = float(lab.shape[0])
    out["slices_with_lv_frac"] = float(len(lvz_all) / max(lab.shape[0], 1))
    epi_d, cav_d, wall, sol = [], [], [], []
    for z in zs:
        ae = (np.isin(lab[z], (LV, MYO, SCAR, MVO))).sum()
        ac = (lab[z] == LV).sum()
        epi_d.append(_eq_d(ae, spacing))
        cav_d.append(_eq_d(ac, spacing))
        wall.append((epi_d[-1] - cav_d[-1]) / 2)
        sol.append(_solidity(lab[z] == LV))
    out.update({"lv_epi_diam_mm": float(np.median(epi_d)), "lv_cavity_diam_mm": float(np.median(cav_d)),
                "wall_mm": float(np.median(wall)), "cavity_solidity": float(np.nanmedian(sol)),
                "lv_epi_diam_px_model": float(np.median(epi_d) / model_spacing),
                "wall_px_model": float(np.median(wall) / model_spacing),
                "heart_diam_over_fov": float(np.median(epi_d) / out["fov_mm"])})
    if rv and (lab == RV).any():
        lvz = np.nonzero(myo_all.sum((1, 2)) + lv_area > 0)[0]
        order = lvz if (lab[lvz[0]] > 0).sum() >= (lab[lvz[-1]] > 0).sum() else lvz[::-1]  # base first
        thirds = np.array_split(order, 3)
        for name, part in zip(("base", "mid", "apex"), thirds):
            r = [(lab[z] == RV).sum() / max((lab[z] == LV).sum(), 1) for z in part if (lab[z] == LV).sum() > 20]
            if r:
                out[f"rv_lv_area_{name}"] = float(np.median(r))
        out["rv_lv_volume"] = float((lab == RV).sum() / max((lab == LV).sum(), 1))
        out["rv_solidity"] = float(np.nanmedian([_solidity(lab[z] == RV) for z in zs if (lab[z] == RV).sum() > 30]
                                                or [np.nan]))
        # angular extent of the RV around the LV centre (mid slices), and its thickness (largest
        # distance of an RV pixel from the LV epicardium) relative to the LV epicardial diameter
        ext, thick = [], []
        for z in zs:
            m = lab[z] == RV
            if m.sum() < 30:
                continue
            cy, cx = ndimage.center_of_mass(lvepi[z])
            yy, xx = np.nonzero(m)
            ang = np.sort(np.arctan2(yy - cy, xx - cx))
            gaps = np.diff(np.concatenate([ang, ang[:1] + 2 * np.pi]))
            ext.append(np.rad2deg(2 * np.pi - gaps.max()))
            dist = ndimage.distance_transform_edt(~lvepi[z]) * spacing
            thick.append(dist[m].max() / max(_eq_d(lvepi[z].sum(), spacing), 1e-3))
        if ext:
            out["rv_angular_extent_deg"] = float(np.median(ext))
            out["rv_thickness_over_lv_diam"] = float(np.median(thick))
        out["rv_slices_over_lv_slices"] = float(((lab == RV).sum((1, 2)) > 0).sum() / max(len(lvz), 1))
        out["rv_blood_over_lv_blood"] = float(out.get("rv_blood", np.nan) / max(blood, 1e-3))
    return out


def _summary(rows):
    keys = sorted({k for r in rows for k in r})
    s = {}
    for k in keys:
        v = np.array([r[k] for r in rows if k in r and np.isfinite(r[k])], float)
        if v.size:
            s[k] = {"median": round(float(np.median(v)), 4), "q25": round(float(np.percentile(v, 25)), 4),
                    "q75": round(float(np.percentile(v, 75)), 4), "n": int(v.size)}
    return s


def measure_acdc(step):
    from cmrrisk.datasets import list_acdc
    from cmrrisk.image import read_image
    from cmrrisk.labels import ACDC_TO_PROJECT, map_labels

    res = {"ed": [], "es": []}
    rv_ratio, size = [], []
    for s in list_acdc(ACDC)[::step]:
        vols = {}
        for ph in ("ed", "es"):
            v = read_image(s.frame_path(ph))
            lab = map_labels(read_image(s.frame_path(ph, gt=True)).array, ACDC_TO_PROJECT)
            res[ph].append(measure_frame(v.array, lab, v.spacing[0], 1.5))
            vols[ph] = (lab == RV).sum() * np.prod(v.spacing)
            vols[ph + "_lv"] = (lab == LV).sum() * np.prod(v.spacing)
        rv_ratio.append(vols["es"] / max(vols["ed"], 1e-6))
        size.append({"group": s.group, "lvef": 100 * (1 - vols["es_lv"] / max(vols["ed_lv"], 1e-6)),
                     "epi_d": res["ed"][-1]["lv_epi_diam_mm"], "cav_d": res["ed"][-1]["lv_cavity_diam_mm"],
                     "wall": res["ed"][-1]["wall_mm"]})
    out = {ph: _summary(r) for ph, r in res.items()}
    # heart size by diagnostic group, and the ED cavity diameter against LVEF (linear fit)
    out["size_by_group"] = {g: _summary([{k: r[k] for k in ("lvef", "epi_d", "cav_d", "wall")}
                                         for r in size if r["group"] == g]) for g in sorted({r["group"] for r in size})}
    ef, cd = np.array([r["lvef"] for r in size]), np.array([r["cav_d"] for r in size])
    slope, icpt = np.polyfit(ef, cd, 1)
    out["cavity_diam_vs_lvef"] = {"slope_mm_per_pct": round(float(slope), 4),
                                  "at_lvef_55_mm": round(float(icpt + 55 * slope), 2),
                                  "residual_sd_mm": round(float(np.std(cd - (icpt + slope * ef))), 2)}
    out["rv_es_over_ed_volume"] = _summary([{"v": x} for x in rv_ratio])["v"]
    out["subjects"] = len(rv_ratio)
    return out


def measure_emidec():
    from cmrrisk.datasets import list_emidec, read_emidec_case

    rows = []
    for c in list_emidec(EMIDEC):
        img, lab = read_emidec_case(c)
        if lab is None or not (lab == LV).any():
            continue
        rows.append(measure_frame(img, lab, 1.0, 1.0, rv=False))
    return {"lge": _summary(rows), "cases": len(rows),
            "note": "EMIDEC PNG crops carry no spacing: declared 1 mm, as the lge model was trained"}


def measure_synthetic(n, seed):
    from cmrrisk.image import read_image
    from cmrrisk.manifest import read_manifest
    from cmrrisk.synthetic import generate_cohort

    res = {"ed": [], "es": [], "lge": []}
    rv_ratio = []
    with tempfile.TemporaryDirectory() as tmp:
        man = read_manifest(generate_cohort(tmp, n=n, seed=seed, progress=False), require_images=True)
        for r in man.rows:
            vols = {}
            for ph, role in (("ed", "cine_ed"), ("es", "cine_es"), ("lge", "lge")):
                v, lab = read_image(r[role]), read_image(r[role + "_seg"]).array
                res[ph].append(measure_frame(v.array, lab, v.spacing[0], 1.0 if ph == "lge" else 1.5,
                                             rv=ph != "lge"))
                vols[ph] = (lab == RV).sum()
            rv_ratio.append(vols["es"] / max(vols["ed"], 1))
    out = {ph: _summary(r) for ph, r in res.items()}
    out["rv_es_over_ed_volume"] = _summary([{"v": x} for x in rv_ratio])["v"]
    out["subjects"] = n
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--acdc-step", type=int, default=3, help="every k-th ACDC training subject")
    ap.add_argument("--n-synth", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-real", action="store_true", help="reuse the real figures of --out")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "real_vs_synthetic_appearance.json"))
    args = ap.parse_args()
    from cmrrisk import modeldir
    from cmrrisk.synthetic import VERSION

    out = {}
    if args.skip_real and os.path.isfile(args.out):
        old = modeldir.read_json(args.out)
        out["acdc"], out["emidec"] = old["acdc"], old["emidec"]
    else:
        out["acdc"] = measure_acdc(args.acdc_step)
        out["emidec"] = measure_emidec()
    out["synthetic"] = measure_synthetic(args.n_synth, args.seed)
    out["synthetic"]["generator_version"] = VERSION
    out["synthetic"]["seed"] = args.seed
    out["method"] = ("intensities after clip to volume percentiles 0.5/99.5 and scale to [0, 1] (the "
                     "models' preprocessing); mid-ventricular slices: LV cavity area >= 50 % of max; "
                     "per-frame values, then median and quartiles over frames")
    modeldir.write_json(args.out, out)
    keys = ["vol_p5", "vol_p25", "vol_p50", "vol_p75", "vol_p95", "frac_at_low_clip", "lv_blood", "myo",
            "rv_blood", "scar", "mvo", "near_heart_p10", "near_heart_p50", "near_heart_p90", "noise_sd",
            "noise_over_contrast", "myo_sd_over_contrast", "myo_var_coarse", "myo_var_fine", "cavity_dark_frac", "lv_epi_diam_mm",
            "lv_cavity_diam_mm", "wall_mm", "lv_epi_diam_px_model", "wall_px_model", "cavity_solidity",
            "heart_diam_over_fov", "rv_lv_area_base", "rv_lv_area_mid", "rv_lv_area_apex", "rv_lv_volume",
            "rv_solidity", "rv_angular_extent_deg", "rv_thickness_over_lv_diam", "rv_slices_over_lv_slices",
            "near_heart_frac_dark", "near_heart_frac_bright", "epi_band_p50", "epi_band_p90", "body_frac",
            "endo_edge_width_mm", "rv_blood_over_lv_blood", "fov_mm", "spacing_mm", "slices",
            "slices_with_lv_frac", "first_slice_apical", "epi_out_frac_dark", "epi_out_frac_bright",
            "epi_out_frac_myo_like"]
    keys += [f"{kind}_prof_{_bin_name(lo, hi)}" for kind in ("endo", "epi") for lo, hi in PROFILE_BINS]
    pairs = (("cine ED", out["acdc"]["ed"], out["synthetic"]["ed"]),
             ("cine ES", out["acdc"]["es"], out["synthetic"]["es"]),
             ("LGE", out["emidec"]["lge"], out["synthetic"]["lge"]))
    for title, real, syn in pairs:
        print(f"== {title}: real median [q25, q75] | synthetic median [q25, q75]")
        for k in keys:
            if k in real or k in syn:
                f = lambda d: (f"{d[k]['median']:8.3f} [{d[k]['q25']:.3f}, {d[k]['q75']:.3f}]"
                               if k in d else " " * 8 + " -")
                print(f"  {k:26s} {f(real)} | {f(syn)}")
    r, s = out["acdc"]["rv_es_over_ed_volume"], out["synthetic"]["rv_es_over_ed_volume"]
    print(f"  RV ES/ED volume            {r['median']:.3f} [{r['q25']:.3f}, {r['q75']:.3f}] | "
          f"{s['median']:.3f} [{s['q25']:.3f}, {s['q75']:.3f}]")
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
