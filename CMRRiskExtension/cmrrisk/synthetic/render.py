"""Image formation: cine (bSSFP) and LGE intensities, texture, noise and geometry of one subject."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .. import labels as L
from .shapes import ellipse, grid, subject_labels


# ----------------------------------------------------------------------------- image formation

#: reference appearance measured on the real data by bench/measure_real_appearance.py
#: (bench/results/real_vs_synthetic_appearance.json): medians [quartiles] after the models'
#: normalisation (clip to volume percentiles 0.5 / 99.5, scale to [0, 1]), and EMIDEC grey
#: levels (8-bit) relative to the air outside the body
REFERENCE = {
    "acdc_cine": {"source": "ACDC training set, every 3rd subject (34), ED and ES frames",
                  "lv_blood_norm_ed": [0.70, 0.58, 0.84], "myo_norm_ed": [0.23, 0.18, 0.29],
                  "rv_over_lv_blood": [0.75, 0.71, 0.80], "near_heart_median_norm": [0.18, 0.12, 0.20],
                  "noise_over_contrast_ed": [0.064, 0.054, 0.079],
                  "noise_over_contrast_es": [0.075, 0.061, 0.091],
                  "myo_sd_over_contrast_ed": [0.11, 0.08, 0.17],
                  "cavity_dark_fraction_ed": [0.21, 0.18, 0.24], "cavity_dark_fraction_es": [0.31, 0.23, 0.36],
                  "rv_over_lv_volume_ed": [0.99, 0.76, 1.32], "rv_es_over_ed_volume": [0.54, 0.42, 0.62],
                  "wall_mm_ed": [8.3, 7.7, 9.0], "fov_mm": [380, 352, 400],
                  # version 4: (I - myocardium) / (blood - myocardium) at 3-4.5 / 1.5-3 / 0-1.5 mm
                  # inside and 0-1.5 mm outside the annotated endocardium (ED)
                  "endo_profile_ed": [0.77, 0.64, 0.37, 0.07], "endo_profile_es": [0.78, 0.60, 0.29, 0.06],
                  "first_slice_apical": 0.0, "slices_with_lv_frac_ed": 1.0,
                  "apical_slice_with_cavity_ed": "34 of 34", "apical_lv_area_over_max_ed": [0.19, 0.13, 0.28],
                  # 0-3 mm outside the LV epicardium (not near the RV): fraction darker / brighter
                  # than the myocardium by > 0.25 x (blood - myocardium)
                  "epi_out_frac_dark_ed": [0.11, 0.01, 0.47], "epi_out_frac_bright_ed": [0.17, 0.11, 0.25]},
    "emidec_lge": {"source": "EMIDEC PNG slices, 75 cases (8-bit, zero-filled outside the FOV, "
                               "declared 1 mm)",
                   "air_grey": [135, 130, 143], "myo_minus_air": [5, -2, 10], "blood_minus_myo": [15, 12, 20],
                   "scar_minus_blood": [2, -3, 6], "mvo_minus_myo": [12, 6, 15],
                   "p99_5_minus_air": [83, 72, 102], "darkest_1pct_minus_air": [-37, -46, -31],
                   "near_heart_p10_p50_p90_minus_air": [-8, 11, 36], "noise_sd_grey": [1.4, 1.1, 1.6],
                   "myo_sd_grey_eroded": [6.6, 5.3, 8.2],
                   # version 5: spatial scale of healthy-myocardium heterogeneity / (blood - myo)
                   "myo_var_coarse": [0.231, 0.171, 0.274], "myo_var_fine": [0.050, 0.038, 0.064], "zero_fraction": [0.11, 0.06, 0.19],
                   "lv_epi_diameter_px": [52.6, 47.3, 57.2], "cavity_dark_fraction": [0.17, 0.14, 0.26],
                   # version 4: slice order and coverage, border profiles ((I - remote) / (blood -
                   # remote); endocardium 3-4.5 / 1.5-3 / 0-1.5 mm inside, 0-1.5 outside;
                   # epicardium 0-1.5 / 1.5-3 / 3-4.5 / 4.5-7.5 mm outside)
                   "first_slice_apical": 1.0, "slices_with_lv_frac": 1.0, "apical_slice_with_cavity": "75 of 75",
                   "endo_profile": [0.91, 0.77, 0.50, 0.18], "epi_profile_outside": [0.46, 0.64, 0.57, 0.48]},
}


def _surroundings(p, x, y, z, heart_centre):
    """Tissue class maps of the surroundings at depth z: dict name -> bool mask."""
    bx, by = p["body"]
    body = ellipse(x, y, 0, 8, bx, by, 0) <= 1
    fat = body & (ellipse(x, y, 0, 8, bx - 12, by - 10, 0) > 1)
    hx, hy = heart_centre
    # lungs: two ellipses beside / behind the heart (image +y is posterior here); they reach the
    # heart, so that the tissue next to it is mostly dark lung as in ACDC (near-heart median 0.18)
    lung_l = ellipse(x, y, hx + 60, hy + 12, 44, 68, 0.3) <= 1
    lung_r = ellipse(x, y, hx - 72, hy + 8, 48, 70, -0.3) <= 1
    # liver appears towards the apex, on the patient's right (image -x)
    liver = np.zeros(x.shape, bool)
    frac = z / (p["nz"] * p["dz"])
    if frac > 0.4:
        g = min(1.0, (frac - 0.3) / 0.5)
        liver = ellipse(x, y, -bx * 0.55, 8 + by * 0.25, bx * 0.6 * g, by * 0.7 * g, 0.3) <= 1
    aorta = ellipse(x, y, hx + 20, hy + 62, 11, 11, 0) <= 1
    spine = ellipse(x, y, hx + 2, by - 10, 16, 14, 0) <= 1
    return {"body": body, "fat": fat, "lung": (lung_l | lung_r) & body & ~fat, "liver": liver & body,
            "aorta": aorta & body, "spine": spine & body}


def _trabeculae(p, a, x, y, lab_slice, rng_phase):
    """Papillary muscles and endocardial trabeculation: mask of cavity pixels (labelled blood
    pool, as in ACDC and EMIDEC) that hold muscle. Papillary muscles keep their ED size (so they
    fill more of the ES cavity); trabeculae are radial spikes whose density falls with depth
    inside the endocardium (:data:`TRABECULAE`)."""
    cav = lab_slice == L.LV_BLOOD_POOL
    out = np.zeros(x.shape, bool)
    if a["r_endo"] <= 4 or not cav.any():
        return out
    # the result lies inside the cavity: compute on its bounding box only (elementwise, so the
    # same values there as on the whole grid)
    rows, cols = np.flatnonzero(cav.any(1)), np.flatnonzero(cav.any(0))
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    out[box] = _trabeculae_box(p, a, x[box], y[box], rng_phase) & cav[box]
    return out


def _trabeculae_box(p, a, x, y, rng_phase):
    out = np.zeros(x.shape, bool)
    cx, cy = a["centre"]
    r_pap = 0.22 * a["r_endo_ed"] + 1.5
    for ang in (np.deg2rad(-60.0) + p["rv_angle"] + np.pi, np.deg2rad(70.0) + p["rv_angle"] + np.pi):
        rr = max(a["r_endo"] - 0.8 * r_pap, 0.0)
        px, py = cx + rr * np.cos(ang), cy + rr * np.sin(ang)
        out |= np.hypot(x - px, y - py) < r_pap
    th = np.arctan2(y - cy, x - cx)
    t = TRABECULAE
    # depth (mm) inside the elliptical endocardium; the spikes' muscle fraction falls with depth
    ex, ang = p["ellipticity"], p["ellipse_angle"]
    depth = (1.0 - np.sqrt(ellipse(x, y, cx, cy, a["r_endo"], a["r_endo"] * ex, ang))) * a["r_endo"] * 0.5 * (1 + ex)
    scale = 0.7 + 0.6 * (0.5 + 0.5 * np.cos(7 * th + rng_phase[0]))
    g = np.cos(16 * th + rng_phase[1]) + 0.6 * np.cos(27 * th + rng_phase[2])
    spikes = (g > t["g0"] + t["g_per_mm"] * depth / scale) & (depth < t["max_mm"] * scale)
    out |= spikes
    return out


#: endocardial trabeculation (version 4): radial spikes whose muscle fraction falls with depth
#: inside the labelled cavity: muscle where g(angle) > g0 + g_per_mm x depth / s, up to max_mm x
#: s deep (g = cos 16a + 0.6 cos 27a, s = 0.7-1.3 around the wall). ACDC's intensity profile
#: across the annotated endocardium, (I - myocardium) / (blood - myocardium), is 0.77 / 0.64 /
#: 0.37 at 3-4.5 / 1.5-3 / 0-1.5 mm inside and 0.07 at 0-1.5 mm outside (ED; ES 0.78 / 0.60 /
#: 0.29 / 0.06); version 3's 1.5-3 mm band of sparse spikes gave 0.94 / 0.84 / 0.52 / 0.15 (an
#: intensity edge ~1 mm further out than where ACDC's annotators draw the border), version 4
#: 0.86 / 0.63 / 0.32 / 0.08 (ES 0.82 / 0.63 / 0.33 / 0.08). Note: the cine model's endocardium
#: still lies ~0.9 mm (ED) outside the synthetic label on mid slices (on ACDC validation +0.1 mm):
#: bench/eval_border_bias.py (myocardium called LV blood pool, ED: ACDC 0.035, synthetic ~0.11;
#: one-property ablations of this generator leave it)
TRABECULAE = {"g0": -0.6, "g_per_mm": 0.45, "max_mm": 5.0}


def _render(p, lab, aux, x, y, contrast: dict, rng: np.random.Generator):
    """Intensity of a (nz, Y, X) fine label volume with its surroundings (no noise)."""
    img = np.zeros(lab.shape, np.float32)
    phase = rng.uniform(0, 2 * np.pi, 3)
    # the epicardial band's level varies around the LV (LGE version 7, cine version 8): one
    # smooth function per subject plus one per slice (:data:`LGE_EPI_RIM`, :data:`CINE_EPI_BAND`)
    rim = contrast["epi_band"]
    rim_subject = _angular_coefficients(rng)
    for kz in range(lab.shape[0]):
        z = (kz + 0.5) * p["dz"]
        a = aux[kz]
        s = _surroundings(p, x, y, z, a["centre"])
        sl = np.full(x.shape, contrast["air"], np.float32)
        sl[s["body"]] = contrast["muscle"]
        sl[s["fat"]] = contrast["fat"]
        sl[s["lung"]] = contrast["lung"]
        sl[s["liver"]] = contrast["liver"]
        sl[s["spine"]] = contrast["spine"]
        sl[s["aorta"]] = contrast["blood"]
        heart = (lab[kz] > 0) | a["rvfw"]
        if heart.any():
            # version 3: the lungs do not touch the heart (ACDC: 20 % of the 15 mm band around the
            # heart is darker than 0.1, version 2 had 46 %): soft tissue (mediastinum, chest
            # wall) within lung_gap mm of the heart
            dist = _distance_outside(heart, x, p["lung_gap"] + 2)
            near = (dist <= p["lung_gap"]) & s["lung"]
            sl[near] = contrast["muscle"]
            # basal slices: unlabelled atrial / great-vessel blood beside the LV (ACDC: 16 % of
            # the band brighter than 0.35, version 2 had 6 %)
            u = z / max(p["length_frac"] * p["nz"] * p["dz"], 1e-6)
            if u < 0.45 and a["r_epi"] > 0:
                cx, cy = a["centre"]
                r_la = p["atrium_mm"] * (1.0 - u / 0.45) ** 0.5
                th = p["rv_angle"] - np.deg2rad(110.0)
                dla = a["r_epi"] + 2.0 + r_la  # the AV groove between LV and atrium
                lx, ly = cx + dla * np.cos(th), cy + dla * np.sin(th)
                la = (np.hypot(x - lx, y - ly) < r_la) & ~heart
                sl[la] = contrast["blood"]
        # epicardial fat / pericardial band all round the LV (LGE version 6, cine version 8), at
        # myocardium + level x (blood - myocardium), from the epicardium out to width_mm
        # (+ lateral_mm where the wall faces away from the RV)
        lvm = np.isin(lab[kz], (L.LV_BLOOD_POOL, L.LV_MYOCARDIUM, L.SCAR, L.MVO))
        if a["r_epi"] > 0 and lvm.any():
            cx, cy = a["centre"]
            lateral = np.zeros(x.shape, bool)
            box = a["box"]  # holds everything within 9 mm of the LV (AUX_MARGIN_MM)
            lateral[box] = np.cos(a["phi"][box] - np.pi) > 0.3
            dl = _distance_outside(lvm, x, rim["width_mm"] + rim["lateral_mm"] + 2)
            band = ((dl > 0) & (dl <= rim["width_mm"] + rim["lateral_mm"] * lateral)
                    & (lab[kz] == 0) & ~a["rvfw"])
            th = np.arctan2(y[band] - cy, x[band] - cx)
            g = (np.sqrt(1.0 - rim["slice_share"]) * _angular_field(rim_subject, th)
                 + np.sqrt(rim["slice_share"]) * _angular_field(_angular_coefficients(rng), th))
            level = rim["level"] + rim["spread"] * g
            sl[band] = contrast["myo"] + level * (contrast["blood"] - contrast["myo"])
        sl[a["rvfw"]] = contrast["myo"]
        sl[lab[kz] == L.LV_MYOCARDIUM] = contrast["myo"]
        sl[lab[kz] == L.LV_BLOOD_POOL] = contrast["blood"]
        sl[lab[kz] == L.RV_BLOOD_POOL] = contrast["blood"] * contrast.get("rv_factor", 0.95)
        sl[lab[kz] == L.SCAR] = contrast.get("scar", contrast["myo"])
        sl[lab[kz] == L.MVO] = contrast.get("mvo", contrast["myo"])
        sl[_trabeculae(p, a, x, y, lab[kz], phase)] = contrast.get("papillary", contrast["myo"])
        img[kz] = sl
    return img


def _angular_coefficients(rng, harmonics: int = 4) -> np.ndarray:
    """Random Fourier coefficients (harmonics x 2) of a smooth function of the angle around the
    LV, amplitude 1 / k for harmonic k, scaled so that the function's expected variance is 1."""
    w = 1.0 / np.arange(1, harmonics + 1)
    return rng.normal(0.0, 1.0, (harmonics, 2)) * (w / np.sqrt(np.sum(w ** 2) / 2.0))[:, None] / np.sqrt(2.0)


def _angular_field(coef: np.ndarray, theta: np.ndarray) -> np.ndarray:
    k = np.arange(1, coef.shape[0] + 1)[:, None]
    return (coef[:, :1] * np.cos(k * theta[None]) + coef[:, 1:] * np.sin(k * theta[None])).sum(0)


def _distance_outside(mask, x, reach_mm):
    """Distance (mm) of every pixel of grid ``x`` to the 2D ``mask``, computed within ``reach_mm``
    of the mask's bounding box (inf beyond it)."""
    step = float(x[0, 1] - x[0, 0])
    mpx = int(np.ceil(reach_mm / step))
    ys_, xs_ = np.nonzero(mask)
    r0, r1 = max(ys_.min() - mpx, 0), min(ys_.max() + mpx + 1, x.shape[0])
    c0, c1 = max(xs_.min() - mpx, 0), min(xs_.max() + mpx + 1, x.shape[1])
    dist = np.full(x.shape, np.inf, np.float32)
    dist[r0:r1, c0:c1] = ndimage.distance_transform_edt(~mask[r0:r1, c0:c1]) * step
    return dist


def _shading(p, rng):
    x, y = grid(p, 1)
    c = rng.normal(0, 1, 4)
    fov = max(p["nx"], p["ny"]) * p["spacing"]
    ax, ay = rng.uniform(-60, 60, 2)
    field = np.exp(0.25 * c[0] * x / fov + 0.25 * c[1] * y / fov) * (
        0.75 + 0.45 * np.exp(-((x - ax) ** 2 + (y + 90 + ay) ** 2) / (2 * 110.0 ** 2)))
    return field[None].astype(np.float32)


def _downsample(p, fine, sub, blur_mm):
    nz, fy, fx = fine.shape
    img = fine.reshape(nz, fy // sub, sub, fx // sub, sub).mean(axis=(2, 4))
    return ndimage.gaussian_filter(img, (0, blur_mm / p["spacing"], blur_mm / p["spacing"]))


def _finish(p, fine, sub, rng, sigma_noise, blur_mm=1.0):
    """Magnitude image: downsample (partial volume), blur, coil shading, Rician noise ->
    int16 (nz, ny, nx)."""
    img = _downsample(p, fine, sub, blur_mm) * _shading(p, rng)
    n1 = rng.normal(0, sigma_noise, img.shape)
    n2 = rng.normal(0, sigma_noise, img.shape)
    img = np.sqrt((img + n1) ** 2 + n2 ** 2)
    return np.clip(np.round(img), 0, 32767).astype(np.int16)


def _finish_lge(p, fine, sub, rng, sigma_noise, offset, blur_mm=1.0):
    """Phase-sensitive (signed) LGE as exported by EMIDEC: downsample, blur, coil shading,
    Gaussian noise, + grey offset (zero signal = mid grey), 8-bit quantisation, and zero fill
    along one or two image edges outside the reconstructed field of view."""
    img = _downsample(p, fine, sub, blur_mm) * _shading(p, rng)
    img = img + rng.normal(0, sigma_noise, img.shape) + offset
    img = np.clip(np.round(img), 0, 255)
    ny, nx = img.shape[1:]
    frac = rng.uniform(0.05, 0.19)
    yy, xx = np.mgrid[0:ny, 0:nx]
    edges = rng.permutation(4)[: int(rng.integers(1, 3))]
    keep = np.ones((ny, nx), bool)
    for e in edges:
        w = frac / len(edges) * (ny if e < 2 else nx)
        slope = rng.uniform(-0.15, 0.15)
        if e == 0:
            keep &= yy >= w + slope * (xx - nx / 2)
        elif e == 1:
            keep &= ny - 1 - yy >= w + slope * (xx - nx / 2)
        elif e == 2:
            keep &= xx >= w + slope * (yy - ny / 2)
        else:
            keep &= nx - 1 - xx >= w + slope * (yy - ny / 2)
    img[:, ~keep] = 0
    return img.astype(np.int16)


def affine(p) -> np.ndarray:
    m = np.diag([-p["spacing"], -p["spacing"], p["dz"], 1.0])
    m[:3, 3] = [p["nx"] * p["spacing"] / 2, p["ny"] * p["spacing"] / 2, -p["nz"] * p["dz"] / 2]
    return m


def affine_apex_first(p) -> np.ndarray:
    """Index-to-RAS matrix of a volume stored with its slices in reverse order (slice 0 = apex):
    every voxel keeps the world position it has in the cine (base-first, :func:`affine`)."""
    m = affine(p)
    m[:3, 3] = m[:3, 3] + m[:3, 2] * (p["nz"] - 1)
    m[:3, 2] = -m[:3, 2]
    return m


#: stored slice order of each written role: the cine follows ACDC (slice 0 basal in all 34
#: measured ACDC frames), the LGE follows EMIDEC (slice 0 apical in 75 of 75 EMIDEC stacks,
#: ``first_slice_apical`` in bench/results/real_vs_synthetic_appearance.json). Version 4: the LGE
#: model was trained on EMIDEC's apex-first stacks with 2.5D neighbour context, and reading a
#: base-first stack costs it 0.1-0.35 of Dice on the synthetic LGE (LV 0.73 -> 0.94 on 4 subjects)
APEX_FIRST = {"cine_ed": False, "cine_es": False, "lge": True}


def _texture(rng, shape, sd_px):
    t = ndimage.gaussian_filter(rng.normal(0, 1, shape), (0, sd_px, sd_px))
    return (t / max(float(t.std()), 1e-6)).astype(np.float32)


def render_subject(p: dict, rng: np.random.Generator, sub: int = 2) -> dict:
    """Label maps and images (int16) of one subject: keys ed, es, lge (labels) and
    ed_img, es_img, lge_img, plus the measured truth."""
    labs = subject_labels(p, sub)
    xs, ys = grid(p, sub)
    blood = p["myo"] * p["blood_ratio"]
    # bSSFP: fat brighter than blood (ACDC blood sits at 0.70 of the normalised range, so a
    # brighter tissue fills the top 0.5 %)
    sigma = blood / (p["snr"] * CINE_NOISE_FACTOR)
    cine = {"air": 4.0, "muscle": p["myo"] * 0.8, "fat": blood * float(rng.uniform(1.2, 1.45)),
            "lung": 12.0, "liver": p["myo"] * 1.1, "spine": p["myo"] * 0.8, "blood": blood,
            "myo": p["myo"], "rv_factor": float(rng.uniform(0.74, 0.86)), "papillary": p["myo"] * 1.05,
            "epi_band": CINE_EPI_BAND}
    out = dict(labs)
    for ph in ("ed", "es"):
        fine = _render(p, labs[ph + "_fine"], labs[ph + "_fine_aux"], xs, ys, cine, rng)
        myo_fine = labs[ph + "_fine"] == L.LV_MYOCARDIUM
        tex = _texture(rng, fine.shape, 1.5)
        fine = np.where(myo_fine, fine + 0.07 * (blood - p["myo"]) * tex, fine).astype(np.float32)
        out[ph + "_img"] = _finish(p, fine, sub, rng, sigma, p["blur_mm"])
    # LGE (phase-sensitive, EMIDEC grey levels): zero signal (air, nulled remote myocardium) at
    # a mid-grey offset; blood and scar bright, MVO between, lungs below the offset, fat brightest
    off = float(rng.uniform(130, 143))
    remote = float(rng.uniform(0, 10))
    lb = remote + float(rng.uniform(12, 21))
    scar = lb + float(rng.uniform(-3, 6))
    lge_c = {"air": 0.0, "muscle": float(rng.uniform(2, 12)), "fat": float(rng.uniform(65, 90)),
             "lung": float(rng.uniform(-42, -20)), "liver": float(rng.uniform(8, 20)),
             "spine": float(rng.uniform(0, 10)), "blood": lb, "myo": remote, "rv_factor": 1.0,
             "scar": scar, "mvo": remote + float(rng.uniform(0.4, 0.8)) * (scar - remote),
             "papillary": remote + 0.2 * (lb - remote), "epi_band": LGE_EPI_RIM}
    fine = _render(p, labs["lge_fine"], labs["lge_fine_aux"], xs, ys, lge_c, rng)
    # heterogeneity of myocardium and scar (smooth texture, :data:`LGE_TEXTURE`)
    myo_fine = np.isin(labs["lge_fine"], L.MYOCARDIAL)
    t = LGE_TEXTURE
    fine = np.where(myo_fine, fine + t["sd"] * (lb - remote) * _texture(rng, fine.shape, t["smooth_px"]),
                    fine).astype(np.float32)
    out["lge_img"] = _finish_lge(p, fine, sub, rng, float(rng.uniform(1.1, 1.6)), off)
    out["lge_contrast"] = {k: float(v) for k, v in lge_c.items() if not isinstance(v, dict)}
    out["lge_contrast"]["offset"] = off
    return out


#: LGE myocardial texture (version 5): amplitude ``sd`` x (blood - remote) and Gaussian smoothing
#: ``smooth_px`` pixels of the 2x supersampled grid. bench/measure_real_appearance.py measures, on
#: healthy myocardium of mid-ventricular slices and / (blood - myocardium), the variation of the
#: local mean over a 1-pixel-radius disc (``myo_var_coarse``) and the pixel minus that mean
#: (``myo_var_fine``): EMIDEC 0.231 / 0.050; version 4 (0.4, 1.5 px: ~1 mm blotches) 0.268 /
#: 0.106; this setting 0.236 / 0.086 (6 subjects, seed 0). The remaining fine-scale excess may be
#: the synthetic white noise (EMIDEC's crops were resampled, which smooths noise; not tested).
#: With version 4's texture the lge model called much of the myocardium background: on 8
#: synthetic subjects, plain inference, myocardium Dice 0.788 and volume 0.78 of the truth; with
#: this one 0.843 and 0.85
LGE_TEXTURE = {"sd": 0.25, "smooth_px": 4.0}

#: LGE epicardial band (version 6): outside the LV epicardium out to ``width_mm`` (+
#: ``lateral_mm`` where the wall faces away from the RV), at remote + ``level`` x (blood -
#: remote). bench/measure_real_appearance.py measures (I - remote) / (blood - remote) at 0-1.5 /
#: 1.5-3 / 3-4.5 / 4.5-7.5 mm outside the annotated LV epicardium (pixels near the RV left out):
#: EMIDEC 0.46 / 0.64 / 0.57 / 0.48; versions 1-5 drew a thin rim at 0.6 x fat (about 2-3 x the
#: blood contrast), 1.5 mm (+1 mm laterally) wide: 1.32 / 1.00 / 0.54 / 0.23; this band 0.53 /
#: 0.65 / 0.63 / 0.44 (6 subjects, seed 0). Of the two bands tried with level 0.6, this one is
#: the closer to EMIDEC (a one-off 12-subject run: 0.53 / 0.65 / 0.63 / 0.47, width 3 + 3 mm
#: 0.51 / 0.63 / 0.59 / 0.29). Version 7: the level varies around the LV, ``level`` + ``spread``
#: x g(angle), g a smooth random function of unit variance (harmonics 1-4, amplitude 1 / k), a
#: share ``slice_share`` of its variance redrawn per slice. Version 6's uniform band was bright
#: all round: of the 0-3 mm band outside the epicardium, 0 % was darker than remote by more than
#: 0.25 x (blood - remote), 5 % within 0.25 of remote, 95 % brighter; EMIDEC 14 / 20 / 64 %
#: (``epi_out_frac_*``)
LGE_EPI_RIM = {"width_mm": 5.0, "lateral_mm": 2.0, "level": 0.6, "spread": 0.8, "slice_share": 0.25}

#: cine epicardial band (version 8), drawn like :data:`LGE_EPI_RIM` (level + spread x a smooth
#: random function of the angle, relative to the cine myocardium and blood) from the LV
#: epicardium out to ``width_mm``; it replaces versions 3-7's lateral fat pad 1.5-7.5 mm outside
#: the LV at 0.6 x fat. bench/measure_real_appearance.py, 0-3 mm band outside the epicardium,
#: share darker / within / brighter than myocardium +- 0.25 x (blood - myocardium), ED: ACDC
#: 0.11 / 0.56 / 0.17, version 7 0.01 / 0.68 / 0.31, this band 0.15 / 0.65 / 0.19 (ES: ACDC 0.16 /
#: 0.57 / 0.21, version 7 0.03 / 0.64 / 0.33, this band 0.22 / 0.59 / 0.19); profile at 0-1.5 /
#: 1.5-3 / 3-4.5 / 4.5-7.5 mm outside, ED: ACDC -0.07 / -0.07 / -0.11 / -0.19, version 7 0.04 /
#: 0.33 / 0.42 / 0.10, this band 0.02 / 0.02 / -0.04 / -0.10 (6 subjects, seed 0). Second of three
#: settings tried, all chosen on these figures before any segmentation was run (level 0 /
#: spread 0.25: ED 0.12 / 0.80 / 0.07, too few bright pixels; 0.05 / 0.45: 0.24 / 0.58 / 0.21, too
#: many dark ones)
CINE_EPI_BAND = {"width_mm": 4.5, "lateral_mm": 0.0, "level": 0.08, "spread": 0.35, "slice_share": 0.25}

#: factor on version 1's SNR range (18-35, blood / noise). Left at 1: with the trabeculation of
#: version 2 the measured noise / (blood - myocardium) is 0.081 ED, 0.10 ES versus ACDC's 0.064,
#: 0.075 (bench/measure_real_appearance.py; that estimator also picks up trabeculae), so lower
#: SNR would move away from ACDC
CINE_NOISE_FACTOR = 1.0


