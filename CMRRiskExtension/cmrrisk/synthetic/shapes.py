"""Label maps of one synthetic subject: LV, RV, scar territories, at ED, ES and on LGE."""

from __future__ import annotations

import numpy as np

from .. import labels as L


# ----------------------------------------------------------------------------- shapes

#: RV shape (version 3), relative to the LV equatorial epicardial radius x rv_size: ellipse
#: depth and width, centre offset beyond the epicardium (x depth), linear taper from base to
#: apex. Chosen so that the measured RV solidity, angular extent, depth, per-level RV / LV area
#: and RV / LV volume sit in ACDC's ranges (bench/measure_real_appearance.py; version 2's
#: crescent had solidity 0.63 vs ACDC 0.77 and depth 0.30 vs 0.53 x LV diameter)
RV_SHAPE = {"depth": 0.9, "width": 0.8, "offset": 0.05, "taper": 0.8}

#: RV ejection fraction target = the drawn N(52, 8) minus this: ACDC's RV ES / ED blood volume
#: is 0.54 (IQR 0.42-0.62), i.e. RVEF ~46 %; version 1 gave 0.46
RVEF_SHIFT = 6.0

def grid(p: dict, sub: int = 1):
    """Pixel-centre coordinates (mm) relative to the image centre: x (columns), y (rows),
    each (ny*sub, nx*sub)."""
    s = p["spacing"] / sub
    xs = (np.arange(p["nx"] * sub) + 0.5) * s - p["nx"] * p["spacing"] / 2
    ys = (np.arange(p["ny"] * sub) + 0.5) * s - p["ny"] * p["spacing"] / 2
    return np.meshgrid(xs, ys)


def ellipse(x, y, cx, cy, a, b, ang):
    """((u / a)^2 + (v / b)^2) of the grid in the ellipse's frame (u along ``ang``): < 1 inside.
    Written with in-place steps (fewer temporaries; bit for bit the same values as
    u = (x - cx) cos + (y - cy) sin, v = -(x - cx) sin + (y - cy) cos)."""
    c, s = np.cos(ang), np.sin(ang)
    dx = x - cx
    dy = y - cy
    u = dx * c
    u += dy * s
    v = dy * c
    dx *= s
    v -= dx
    u /= max(a, 1e-6)
    u *= u
    v /= max(b, 1e-6)
    v *= v
    u += v
    return u


def _profile(z, length, power=2.2):
    """Radius factor of a truncated ellipsoid at depth z (0 at the base) of long axis ``length``."""
    u = np.clip(z / length, 0, 1)
    return np.where(z < length, (1 - u ** power) ** (1 / power), 0.0)


def _phase_shape(p: dict, phase: str, k: float = 1.0, rv_k: float = 1.0) -> dict:
    """Dimensions of one phase; ``k`` scales the ED cavity in-plane (1 at ED)."""
    L_stack = p["nz"] * p["dz"]
    L_epi = p["length_frac"] * L_stack
    L_endo_ed = L_epi - 0.8 * p["wall"]
    # long-axis shortening at ES only; version 4: not at the LGE's mid-diastole either, so that
    # the LGE's apical slice cuts the cavity as in EMIDEC (75 of 75 stacks; version 3: ~25 %)
    shorten = 1.0 - 0.25 * (1.0 - k) if phase == "es" else 1.0
    return {"k": k, "rv_k": rv_k, "L_endo": L_endo_ed * shorten, "L_epi": L_epi * shorten,
            "L_epi_ed": L_epi, "L_endo_ed": L_endo_ed}


def labels_slice(p: dict, sh: dict, z: float, x, y, with_rv: bool = True, full_aux: bool = True):
    """Label map (and auxiliary fields) of one slice at depth z (mm from the base) on grid x, y."""
    ex = p["ellipticity"]
    cx = p["centre"][0] + p["tilt"][0] * z / p["dz"]
    cy = p["centre"][1] + p["tilt"][1] * z / p["dz"]
    r_endo_ed = p["r_endo"] * _profile(z, sh["L_endo_ed"])
    r_epi_ed = (p["r_endo"] + p["wall"]) * _profile(z, sh["L_epi_ed"])
    r_endo = p["r_endo"] * sh["k"] * _profile(z, sh["L_endo"])
    # myocardial area of the slice conserved between phases
    r_epi = np.sqrt(r_endo ** 2 + max(r_epi_ed ** 2 - r_endo_ed ** 2, 0.0))
    r_epi = max(r_epi, float((p["r_endo"] + p["wall"]) * sh["k"] ** 0.3 * _profile(z, sh["L_epi"])))
    ang = p["ellipse_angle"]
    d_endo = ellipse(x, y, cx, cy, r_endo, r_endo * ex, ang)
    d_epi = ellipse(x, y, cx, cy, r_epi, r_epi * ex, ang)
    lab = np.zeros(x.shape, np.uint8)
    myo = d_epi <= 1
    lab[myo] = L.LV_MYOCARDIUM
    cav = d_endo <= 1
    lab[cav] = L.LV_BLOOD_POOL
    rvfw = np.zeros(x.shape, bool)
    if with_rv and r_epi > 0:
        # RV (version 3): an ellipse abutting the septum, minus the LV epicardium (plus 0.5 mm):
        # depth (along LV -> RV) B x R, width A x R, centre D x depth beyond the epicardium, so
        # that mid-ventricular slices give ACDC's solidity (0.77), angular extent around the LV
        # (108 deg) and depth (0.53 x LV diameter); R shrinks from base to apex faster than the
        # LV (ACDC RV / LV cavity area 1.45 basal, 0.78 mid, 0.45 apical). At ES the free wall
        # moves towards the septum (depth x rv_k^0.8, width x rv_k^0.2; ACDC ES solidity 0.77,
        # extent 106 deg)
        L_rv = 0.9 * sh["L_epi"]
        prof = _profile(z, L_rv, 2.4)
        if prof > 0:
            u = min(z / max(sh["L_epi"], 1e-6), 1.0)
            R = (p["r_endo"] + p["wall"]) * p["rv_size"] * prof * max(1.0 + RV_SHAPE["taper"] * (0.5 - u), 0.3)
            srv = sh["rv_k"]
            b = RV_SHAPE["depth"] * R * srv ** 0.8
            a = RV_SHAPE["width"] * R * srv ** 0.2
            off = r_epi + RV_SHAPE["offset"] * b
            th = p["rv_angle"]
            rcx, rcy = cx + off * np.cos(th), cy + off * np.sin(th)
            d_rv = ellipse(x, y, rcx, rcy, b, a, th)
            d_epi_out = ellipse(x, y, cx, cy, r_epi + 0.5, (r_epi + 0.5) * ex, ang)
            rv = (d_rv <= 1) & (d_epi_out > 1)
            lab[rv & (lab == 0)] = L.RV_BLOOD_POOL
            d_rv_out = ellipse(x, y, rcx, rcy, b + 3.0, a + 3.0, th)
            rvfw = (d_rv_out <= 1) & (lab == 0)
    if not full_aux:
        return lab, {"rvfw": rvfw}
    # normalised wall depth (0 endocardium, 1 epicardium) and angle from the LV->RV direction,
    # on the LV's box only (:data:`AUX_MARGIN_MM`)
    box = _aux_box(d_epi <= 1, x)
    rr = np.sqrt(np.maximum(d_epi[box], 0))
    scale_ratio = r_endo / r_epi if r_epi > 0 else 0.0
    depth = np.ones(x.shape)
    depth[box] = np.clip((rr - scale_ratio) / max(1 - scale_ratio, 1e-6), 0, 1)
    phi = np.full(x.shape, np.nan)
    phi[box] = np.angle(np.exp(1j * (np.arctan2(y[box] - cy, x[box] - cx) - p["rv_angle"])))
    return lab, {"rvfw": rvfw, "depth": depth, "phi": phi, "box": box, "centre": (cx, cy),
                 "r_epi": r_epi, "r_endo": r_endo, "r_endo_ed": r_endo_ed}


#: a slice's wall depth and angle around the LV are used on the LV myocardium (scar
#: territories) and, by the renderer, on the epicardial band within 9 mm of the LV
#: (:data:`CINE_EPI_BAND`, :data:`LGE_EPI_RIM`): they are computed on the bounding box of the LV
#: epicardium widened by this margin (mm), NaN (angle) and 1 (depth) beyond it, where no caller
#: reads them. The images are the same bit for bit as with the whole grid
#: (Testing/test_synthetic.py), in less time.
AUX_MARGIN_MM = 20.0


def _aux_box(inside: np.ndarray, x) -> tuple:
    """Bounding box of ``inside`` widened by :data:`AUX_MARGIN_MM` (the whole grid when empty)."""
    if not inside.any():
        return slice(None), slice(None)
    m = int(np.ceil(AUX_MARGIN_MM / abs(float(x[0, 1] - x[0, 0]))))
    rows, cols = np.flatnonzero(inside.any(1)), np.flatnonzero(inside.any(0))
    return (slice(max(rows[0] - m, 0), rows[-1] + m + 1), slice(max(cols[0] - m, 0), cols[-1] + m + 1))


#: territory centre (degrees from the septum, i.e. the LV->RV direction; + towards anterior)
#: and slice range (fraction of the LV length from the base)
TERRITORIES = {"LAD": (55.0, (0.15, 1.0)), "RCA": (-75.0, (0.0, 0.65)), "LCx": (170.0, (0.0, 0.7))}


def _scar_masks(p, aux, z, L_epi, width_deg):
    c, (z0, z1) = TERRITORIES[p["territory"]]
    u = z / L_epi
    if p["scar_target"] <= 0 or not (z0 <= u <= z1):
        return None, None
    box = aux["box"]  # the myocardium lies inside it
    dphi = np.rad2deg(np.angle(np.exp(1j * (aux["phi"][box] - np.deg2rad(c)))))
    depth = aux["depth"][box]
    scar = np.zeros(aux["phi"].shape, bool)
    scar[box] = (np.abs(dphi) <= width_deg / 2) & (depth <= p["transmurality"])
    mvo = None
    if p["mvo"]:
        mvo = np.zeros(scar.shape, bool)
        mvo[box] = (np.abs(dphi) <= width_deg * 0.2) & (depth <= 0.45 * p["transmurality"])
    return scar, mvo


def _labels_volume(p, sh, x, y, with_rv=True, scar_width=None, full_aux=True):
    nz = p["nz"]
    out = np.zeros((nz,) + x.shape, np.uint8)
    aux = []
    for kz in range(nz):
        z = (kz + 0.5) * p["dz"]
        lab, a = labels_slice(p, sh, z, x, y, with_rv, full_aux or scar_width is not None)
        if scar_width is not None:
            scar, mvo = _scar_masks(p, a, z, sh["L_epi"], scar_width)
            if scar is not None:
                myo = lab == L.LV_MYOCARDIUM
                lab[scar & myo] = L.SCAR
                if mvo is not None:
                    lab[mvo & scar & myo] = L.MVO
        out[kz] = lab
        aux.append(a)
    return out, aux


def _lv_ml(lab, p):
    return float((lab == L.LV_BLOOD_POOL).sum()) * p["spacing"] ** 2 * p["dz"] / 1000.0


def _rv_ml(lab, p):
    return float((lab == L.RV_BLOOD_POOL).sum()) * p["spacing"] ** 2 * p["dz"] / 1000.0


def subject_labels(p: dict, sub: int = 1) -> dict:
    """ED, ES and LGE label maps of a subject (on a grid ``sub`` times finer in-plane) and the
    measured EF / scar burden."""
    x, y = grid(p, 1)
    # the LV alone lies inside this box (same pixel centres): the bisections run on it
    m = p["r_endo"] + p["wall"] + 15 + (abs(p["tilt"][0]) + abs(p["tilt"][1])) * p["nz"]
    rows = np.nonzero(np.abs(y[:, 0] - p["centre"][1]) <= m)[0]
    cols = np.nonzero(np.abs(x[0] - p["centre"][0]) <= m)[0]
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    xb, yb = x[box], y[box]
    mr = m + 2.3 * (p["r_endo"] + p["wall"]) * p["rv_size"]
    rows = np.nonzero(np.abs(y[:, 0] - p["centre"][1]) <= mr)[0]
    cols = np.nonzero(np.abs(x[0] - p["centre"][0]) <= mr)[0]
    xr, yr = x[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1], y[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    ed_sh = _phase_shape(p, "ed")
    ed, _ = _labels_volume(p, ed_sh, xr, yr, full_aux=False)
    edv, rvedv = _lv_ml(ed, p), _rv_ml(ed, p)
    # bisection on the in-plane factor for the target EF
    lo, hi = 0.2, 1.0
    for _ in range(16):
        k = 0.5 * (lo + hi)
        es, _ = _labels_volume(p, _phase_shape(p, "es", k), xb, yb, with_rv=False, full_aux=False)
        ef = 100 * (edv - _lv_ml(es, p)) / edv
        if ef > p["ef_target"]:
            lo = k
        else:
            hi = k
    k_es = 0.5 * (lo + hi)
    lo, hi = 0.2, 1.0
    for _ in range(12):
        rk = 0.5 * (lo + hi)
        es, _ = _labels_volume(p, _phase_shape(p, "es", k_es, rk), xr, yr, full_aux=False)
        rvef = 100 * (rvedv - _rv_ml(es, p)) / max(rvedv, 1e-6)
        if rvef > p["rvef_target"] - RVEF_SHIFT:
            lo = rk
        else:
            hi = rk
    rv_k = 0.5 * (lo + hi)
    # LGE at mid-diastole; scar width chosen for the target burden
    lge_sh = _phase_shape(p, "lge", 0.85 + 0.15 * k_es)
    width = None
    if p["scar_target"] > 0:
        lo, hi = 5.0, 240.0
        for _ in range(12):
            w = 0.5 * (lo + hi)
            lab, _ = _labels_volume(p, lge_sh, xb, yb, with_rv=False, scar_width=w)
            myo = np.isin(lab, L.MYOCARDIAL).sum()
            burden = 100 * np.isin(lab, L.SCAR_WITH_MVO).sum() / max(myo, 1)
            if burden < p["scar_target"]:
                lo = w
            else:
                hi = w
        width = 0.5 * (lo + hi)
    shapes = {"ed": ed_sh, "es": _phase_shape(p, "es", k_es, rv_k), "lge": lge_sh}
    xs, ys = grid(p, sub)
    out = {"k_es": k_es, "rv_k": rv_k, "scar_width_deg": width, "shapes": shapes}
    for ph in ("ed", "es"):
        # the renderer reads the fine grid's auxiliary fields; the coarse ones only when sub == 1
        out[ph], out[ph + "_aux"] = _labels_volume(p, shapes[ph], x, y, full_aux=sub == 1)
        if sub > 1:
            out[ph + "_fine"], out[ph + "_fine_aux"] = _labels_volume(p, shapes[ph], xs, ys)
    out["lge"], _ = _labels_volume(p, lge_sh, x, y, with_rv=False, scar_width=width)
    if sub > 1:
        out["lge_fine"], out["lge_fine_aux"] = _labels_volume(p, lge_sh, xs, ys, scar_width=width)
    return out


