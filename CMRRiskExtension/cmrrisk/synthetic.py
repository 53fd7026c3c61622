"""Synthetic CMR cohort with a known hazard: the embedded default cohort.

:func:`generate_cohort` writes, for each of ``n`` subjects, short-axis cine end-diastole
(``cine_ed``), end-systole (``cine_es``) and LGE (``lge``) volumes with their ground-truth label
maps (``*_seg``, project labels: 0 background, 1 LV blood pool, 2 LV myocardium, 3 RV blood pool,
4 scar, 5 MVO; the LGE label map holds 1, 2, 4, 5 and no RV, like the LGE model's output), a
cohort manifest ``manifest.csv`` and ``synthetic.json`` describing the generative model.

Generative model (every number is in ``synthetic.json``):

* **Geometry**: RAS affine ``diag(-s, -s, dz)`` (the orientation of ACDC), in-plane spacing
  ``s`` ~ U(1.35, 1.65) mm, slices ``dz`` in {8, 10} mm, 8-10 slices, matrix 208-240 rows x
  240-256 columns (field of view ~370 mm; ACDC 380 [352, 400]); slice 0 is the base in the cine
  and the apex in the LGE (version 4, see below).
* **Anatomy**: the LV cavity and epicardium are truncated ellipsoids (equator at the base) with
  elliptical cross-sections, a slightly tilted long axis, ED wall 6-12 mm and a myocardial apex
  cap; papillary muscles inside the cavity (labelled blood pool, as in ACDC); the RV blood pool is
  an ellipse abutting the septum (outside the LV epicardium) with a thin free wall, shorter
  than the LV; body (fat layer, chest-wall muscle), lungs (dark), liver, descending aorta and
  spine surround the heart.
  **Version 3** (every number measured on ACDC by ``bench/measure_real_appearance.py``): LV
  size from ACDC's mid-ventricular ED cavity diameter against LVEF (51 mm at 55 %, -0.36 mm per
  point, residual SD 6.3 mm; version 2 was 11 mm smaller); RV rebuilt as a compact
  (triangular) chamber: solidity 0.77, angular extent around the LV ~108 deg, depth 0.53 x LV
  diameter, RV / LV cavity area 1.45 / 0.78 / 0.45 base / mid / apex, RV / LV volume 0.99, and
  at ES the free wall moves towards the septum (constants :data:`RV_SHAPE`); the body fills the
  field of view (ACDC: 75 % of the image above air; version 2 40 %); the lungs keep 6-18 mm of
  soft tissue from the heart (ACDC: 20 % of the 15 mm band around the heart is lung-dark,
  version 2 46 %), a lateral fat pad 1.5-7.5 mm outside the LV and atrial blood beside basal
  slices (ACDC: 16-21 % of that band brighter than 0.35, version 2 6 %); cine blur
  U(1.1, 1.6) mm (ACDC endocardial edge width 3.7 mm, version 2 3.4 mm).
* **Systole**: the ES cavity is the ED cavity scaled in-plane by a factor found by bisection so
  that the label maps' LVEF equals the subject's target EF (20-70 %), with 10 % long-axis
  shortening at EF 60 %; the myocardial area of each slice is conserved (the wall thickens);
  the RV contracts with its own EF. ``true_lvef`` is measured on the written label maps
  (:func:`cmrrisk.metrics.clinical_indices`), so it is exact for them.
* **Cine contrast** (bSSFP-like, version 2): blood 2.2-3.5 x myocardium, fat 1.2-1.45 x blood
  (so that, after the models' 0.5/99.5-percentile normalisation, blood sits at ~0.65 and
  myocardium at ~0.24 as in ACDC: 0.70 and 0.23), RV blood 0.74-0.86 x LV blood (ACDC 0.75),
  dark lungs reaching the heart, papillary muscles of constant size (0.22 x ED cavity radius
  + 1.5 mm) and endocardial trabeculation (radial spikes; version 4: see below), all labelled blood
  pool as in ACDC (dark fraction of the labelled cavity: ACDC 0.21 ED / 0.31 ES), smooth
  myocardial texture (ACDC heterogeneity 0.11 x blood-myocardium contrast).
  **RV**: RVEF target lowered by RVEF_SHIFT (ACDC RV ES / ED volume 0.54).
  **LGE** (phase-sensitive inversion recovery, as exported by EMIDEC, version 2): 8-bit grey
  levels with zero signal (air, nulled remote myocardium) at a mid-grey offset U(130, 143)
  (EMIDEC air 135), remote myocardium offset + U(0, 10) (EMIDEC +5), blood remote + U(12, 21)
  (EMIDEC +15), scar = blood + U(-3, 6) (EMIDEC scar - blood +2), MVO between remote and scar
  (EMIDEC MVO - remote +12), lungs below the offset (EMIDEC darkest 1 %: -37), fat offset +
  U(65, 90) (EMIDEC 99.5th percentile +83), an epicardial band (versions 1-5: a thin bright fat
  rim; version 6: see below), myocardial texture
  (versions 2-4: SD 0.4 x (blood - remote) in ~1 mm blotches, matching EMIDEC's eroded-myocardium
  SD 6.6 grey; version 5: see below), Gaussian noise SD 1.1-1.6 grey
  (EMIDEC 1.4), zero fill along one or two edges over 5-19 % of the image (EMIDEC 11 %, IQR
  6-19 %). Scar is ~2 robust SD of remote above it, as measured on EMIDEC.
  The reference values (:data:`REFERENCE`) come from ``bench/measure_real_appearance.py``
  (``bench/results/real_vs_synthetic_appearance.json``), which measures the same properties
  on a synthetic cohort.
* **Scar**: in 65 % of subjects, a wedge in one coronary territory (LAD anteroseptal, RCA
  inferior, LCx lateral) over a range of slices, transmural or subendocardial
  (transmurality 0.3-1 of the wall from the endocardium); MVO core in ~40 % of scars of
  transmurality > 0.6. ``true_scar_burden`` (% of LV myocardium) is measured on the LGE labels.
* **Image formation**: 2x in-plane supersampling (partial volume), Gaussian blur, smooth
  multiplicative coil shading; cine: Rician noise, int16; LGE: Gaussian noise on the signed
  signal, offset, 8-bit quantisation (values 0-255 stored as int16), edge zero fill.
* **Version 4** (the bundled models' Dice on these images; every change grounded in a
  property that ``bench/measure_real_appearance.py`` measures on ACDC / EMIDEC and on this
  generator, ``bench/results/real_vs_synthetic_appearance.json``):

  - *LGE slice order*: EMIDEC stacks are stored apex first (``first_slice_apical`` 1.0: 75 of 75
    stacks; ACDC cine 0 of 34, base first). The LGE image and its labels are now written apex
    first (:data:`APEX_FIRST`) with an index-to-RAS matrix that keeps every voxel's world
    position (the cine stays base first). The 2.5D LGE model reads neighbouring slices as
    channels and was trained on apex-first stacks: on 4 version-3 subjects, reversing the stack
    alone raised its LV Dice 0.81 -> 0.94 and myocardium 0.69 -> 0.83 (it missed whole
    mid-apical slices of base-first stacks).
  - *Endocardial trabeculation* (:data:`TRABECULAE`): a layer of radial muscle spikes whose
    density falls with depth inside the labelled cavity, replacing version 3's sparse 1.5-3 mm
    band (which existed only near the long axis of the elliptical cavity). Intensity profile
    across the annotated endocardium, (I - myocardium) / (blood - myocardium) at 3-4.5 / 1.5-3 /
    0-1.5 mm inside and 0-1.5 mm outside: ACDC ED 0.77 / 0.64 / 0.37 / 0.07, version 3 0.94 /
    0.84 / 0.52 / 0.15, version 4 0.86 / 0.63 / 0.32 / 0.08 (EMIDEC 0.91 / 0.77 / 0.50 inside,
    version 3 0.95 / 0.88 / 0.70, version 4 0.88 / 0.69 / 0.50); dark fraction of the cavity
    ACDC 0.21 ED / 0.31 ES, version 4 0.23 / 0.31.
  - *Apical coverage*: the ED endocardial apex lies 0.2-3 mm beyond the last slice's centre, so
    that every slice holds LV labels and the apical slice cuts the cavity as in ACDC (ED: 34 of
    34 frames, apical LV area 0.19 [0.13, 0.28] of the largest slice) and EMIDEC (75 of 75
    stacks); version 3 had empty slices (5 %) and myocardium-only apical caps in ~75 % of
    frames, which the models did not segment. Long-axis shortening now applies at ES only (not
    at the LGE's mid-diastole).
  - Tried and *not* kept (they matched a measured property better but lowered the models' Dice
    on the synthetic images): an LGE epicardial band as dim / wide as EMIDEC's (0.46 / 0.64 /
    0.57 / 0.48 x (blood - remote) at 0-1.5 / 1.5-3 / 3-4.5 / 4.5-7.5 mm outside the LV; the kept
    fat rim gives ~1.3 / 1.0 / 0.5 / 0.25; myocardium Dice -0.01 to -0.11, scar +0.06 to +0.16),
    and a cine lateral fat pad on the epicardium with lung reaching the lateral wall (ACDC's
    0-1.5 mm band: 64 % within 0.2 x (blood - myocardium) of the myocardium, 13 % darker, 15 %
    brighter; version 3 84 / 3 / 12 %): ED myocardium Dice about unchanged, ES -0.05 (version 8
    replaces the pad by a band matched to ACDC, see below).
* **Version 5**: the LGE myocardial texture is smoother and weaker
  (:data:`LGE_TEXTURE`): version 4's ~1 mm blotches of SD 0.4 x (blood - remote) matched EMIDEC's
  overall myocardial SD but not its spatial scale: the local-mean variation of healthy
  myocardium (mid slices, / (blood - myocardium)) was 0.268 against EMIDEC's 0.231 and the
  pixel-scale residual 0.106 against 0.050 (now 0.236 / 0.086). The lge model called much of
  that blotchy myocardium background (volume 0.79 of the truth on the synthetic stacks, 0.99 on
  held-out EMIDEC).
* **Version 6**: the LGE epicardial band (:data:`LGE_EPI_RIM`). Versions 1-5 drew a
  1.5 mm rim (+1 mm laterally) at 0.6 x fat, 2-3 x as bright as blood; just outside the
  epicardium EMIDEC is only 0.46 / 0.64 / 0.57 / 0.48 x (blood - remote) above remote at 0-1.5 /
  1.5-3 / 3-4.5 / 4.5-7.5 mm (bench/measure_real_appearance.py, 6 subjects: version 5 1.32 / 1.00 /
  0.54 / 0.23, version 6 0.53 / 0.65 / 0.63 / 0.44). With the bright rim, transmural scar (as bright as blood, as in EMIDEC) next to
  a brighter rim was often called healthy myocardium or background by the lge model: on 12
  synthetic subjects (seed 0, test-time flips) the scar Dice of two transmural LAD / LCx scars
  was 0.22 and 0.37 and the mean absolute scar-burden error 9.3 pp (one run); with the
  version-6 band LV / myocardium / scar Dice 0.946 / 0.845 / 0.660 -> 0.934 / 0.869 / 0.699 and
  burden error 6.0 pp (bench/eval_synthetic_segmentation.py; seed 1: Dice 0.945 / 0.856 / 0.611
  -> 0.934 / 0.873 / 0.611, burden error 7.9 pp, every scar subject measured low) (the exploration that chose the band measured realism first and Dice second; the version-4 test
  of a dim band, with version 4's blotchy texture, had lowered myocardium Dice, see above).
* **Version 7**: the LGE epicardial band's level varies around the LV
  (:data:`LGE_EPI_RIM`: ``level`` + ``spread`` x a smooth random function of the angle).
  Version 6's band was uniform: of the 0-3 mm band outside the epicardium 0 % was darker than
  remote by more than 0.25 x (blood - remote), 5 % within 0.25 of remote and 95 % brighter;
  EMIDEC 14 / 20 / 64 %, version 7 16 / 21 / 69 % (bench/measure_real_appearance.py,
  ``epi_out_frac_*``, 6 subjects; profile 0.46 / 0.69 / 0.61 / 0.28 against EMIDEC's 0.46 / 0.64
  / 0.57 / 0.48). The setting was the first one tried, chosen from these figures alone. Where the
  band is myocardium-like or dark the epicardial edge is harder to see, and the lge model's
  synthetic myocardium Dice fell (bench/eval_synthetic_segmentation.py, 12 subjects, seeds 0 / 1:
  0.869 / 0.873 -> 0.843 / 0.859; scar 0.699 / 0.611 -> 0.698 / 0.573; held-out EMIDEC 0.823),
  while the mean absolute scar-burden error moved 6.0 / 7.9 -> 5.2 / 7.4 pp.
* **Version 8**: the cine band just outside the LV epicardium (:data:`CINE_EPI_BAND`)
  replaces the lateral fat pad of versions 3-7. ACDC's 0-3 mm band is mostly myocardium-like
  with dark (11 %) and bright (17 %) parts around the LV (the dark line of bSSFP at fat-water
  borders, pericardium, fat); version 7 had almost no dark pixels (1 %) and a bright pad (31 %),
  so the epicardial edge was easier to see than on real images. With the band the cine model's
  synthetic myocardium Dice fell (docs/validation.md); LGE images differ from version 7's only
  because the random stream moved (same generative model).
* **Outcome**: ``log h = b_ef (50 - LVEF)/10 + b_scar scar/10 + b_age (age - 60)/10
  + b_dm diabetes + b_sex sex``; Weibull baseline ``h0(t) = lambda k t^(k-1)``; independent
  censoring (administrative U(3, 10) years and exponential drop-out); time in years.

Columns whose names start with ``true_`` (``true_lvef``, ``true_scar_burden``,
``true_log_hazard``) are the generator's truth: exclude them from any model's inputs (they would
leak the outcome). :func:`oracle_c_index` is Harrell's C of ``true_log_hazard``: the ceiling that
any model's C-index on the cohort should be reported beside.
"""

from __future__ import annotations

import csv
import json
import os
import sys

import numpy as np
from scipy import ndimage

from . import labels as L

#: columns of the manifest that hold the generator's truth; never use them as model inputs
TRUE_COLUMNS = ("true_lvef", "true_scar_burden", "true_log_hazard")
COLUMNS = ("subject", "cine_ed", "cine_es", "lge", "cine_ed_seg", "cine_es_seg", "lge_seg",
           "age", "sex", "diabetes", "time", "event") + TRUE_COLUMNS

#: hazard coefficients (per 10 % LVEF below 50, per 10 % scar burden, per decade over 60,
#: diabetes, male sex) and Weibull baseline
HAZARD = {"b_ef": 0.9, "b_scar": 0.7, "b_age": 0.4, "b_diabetes": 0.6, "b_sex": 0.2,
          "weibull_shape": 1.3, "weibull_scale_per_year": 0.08,
          "admin_censoring_years": [3.0, 10.0], "dropout_rate_per_year": 0.03}

VERSION = 8


def hazard_formula() -> str:
    h = HAZARD
    return (f"log h = {h['b_ef']}*(50 - LVEF)/10 + {h['b_scar']}*scar_burden/10 + "
            f"{h['b_age']}*(age - 60)/10 + {h['b_diabetes']}*diabetes + {h['b_sex']}*sex; "
            f"h(t) = {h['weibull_scale_per_year']}*{h['weibull_shape']}*t^({h['weibull_shape']}-1)"
            "*exp(log h), t in years")


def log_hazard(lvef, scar_burden, age, diabetes, sex) -> float:
    h = HAZARD
    return float(h["b_ef"] * (50.0 - lvef) / 10.0 + h["b_scar"] * scar_burden / 10.0
                 + h["b_age"] * (age - 60.0) / 10.0 + h["b_diabetes"] * diabetes + h["b_sex"] * sex)


# ----------------------------------------------------------------------------- subject parameters

def draw_subject(rng: np.random.Generator) -> dict:
    """Clinical covariates, target EF / scar and anatomy of one subject."""
    p = {}
    p["age"] = round(float(np.clip(rng.normal(62, 11), 30, 90)), 1)
    p["sex"] = int(rng.random() < 0.7)
    p["diabetes"] = int(rng.random() < 0.25 + 0.004 * (p["age"] - 60))
    has_scar = rng.random() < 0.65
    p["scar_target"] = float(rng.uniform(3, 40)) if has_scar else 0.0
    p["territory"] = str(rng.choice(["LAD", "RCA", "LCx"]))
    p["transmurality"] = float(rng.uniform(0.3, 1.0))
    p["mvo"] = bool(has_scar and p["transmurality"] > 0.6 and rng.random() < 0.4)
    p["ef_target"] = float(np.clip(63 - 0.7 * p["scar_target"] + rng.normal(0, 9), 20, 70))
    p["rvef_target"] = float(np.clip(rng.normal(52, 8), 30, 70))
    # grid
    # grid (version 3): ACDC spacing 1.48 mm [1.41, 1.56], field of view 380 mm [352, 400]
    p["spacing"] = float(rng.uniform(1.35, 1.65))
    p["dz"] = float(rng.choice([8.0, 10.0]))
    p["nz"] = int(rng.integers(8, 11))
    # rectangular field of view, shorter antero-posteriorly (rows) as in ACDC's 216-256 x 256
    p["ny"] = int(rng.choice([208, 224, 240]))
    p["nx"] = int(rng.choice([240, 256]))
    # LV (mm); dilated when the EF is low. Version 3: ACDC mid-ventricular ED cavity diameter
    # 51.0 mm at LVEF 55 %, -0.36 mm per LVEF point, residual SD 6.3 mm (the measured mid
    # diameter is ~1.8 x this equatorial radius)
    p["r_endo"] = float(np.clip(28.3 + 0.2 * (55 - p["ef_target"]) + rng.normal(0, 3.0), 21, 40))
    p["wall"] = float(rng.uniform(7, 11))
    p["ellipticity"] = float(rng.uniform(0.85, 1.0))
    p["ellipse_angle"] = float(rng.uniform(0, np.pi))
    # apex position as a fraction of the stack. Version 4: the ED endocardial apex lies 0.5-6 mm
    # beyond the centre of the last slice, so that the stack ends at the apex as in ACDC (ED: every
    # slice holds LV labels, the apical slice holds LV cavity in 34 of 34 frames and its LV
    # epicardial area is 0.19 [0.13, 0.28] of the largest slice's); version 3 drew U(0.82, 0.97) of
    # the stack: 5 % of the slices were empty, the apical slice was a myocardial cap without
    # cavity in 75 % of ED frames (area 0.11), and the cine model missed those slices
    beyond = float(rng.uniform(0.2, 3.0))
    p["length_frac"] = ((p["nz"] - 0.5) * p["dz"] + beyond + 0.8 * p["wall"]) / (p["nz"] * p["dz"])
    p["tilt"] = [float(v) for v in rng.normal(0, 1.0, 2)]  # mm of centre shift per slice
    p["centre"] = [float(v) for v in rng.normal(0, 8, 2)]  # mm from the image centre (x, y)
    p["rv_angle"] = float(np.deg2rad(rng.uniform(150, 170)))  # direction LV -> RV (0 = +x, 90 = +y)
    p["rv_size"] = float(rng.uniform(0.85, 1.15))
    # contrast
    p["myo"] = float(rng.uniform(60, 110))
    p["blood_ratio"] = float(rng.uniform(2.2, 3.5))
    p["snr"] = float(rng.uniform(18, 35))
    p["lge_k"] = float(rng.uniform(5.0, 10.0))
    # body semi-axes (mm): the chest (and arms) fill ACDC's field of view (fraction of the image
    # above air: 0.75 [0.67, 0.79])
    p["body"] = [float(rng.uniform(200, 250)), float(rng.uniform(125, 145))]
    p["blur_mm"] = float(rng.uniform(1.1, 1.6))  # ACDC endocardial edge width 3.7 mm [3.4, 4.0]
    p["lung_gap"] = float(rng.uniform(6, 18))  # soft tissue between heart and lungs (mm)
    p["atrium_mm"] = float(rng.uniform(15, 24))  # radius of the atrial blood beside basal slices
    return p


# ----------------------------------------------------------------------------- shapes

def _grid(p: dict, sub: int = 1):
    """Pixel-centre coordinates (mm) relative to the image centre: x (columns), y (rows),
    each (ny*sub, nx*sub)."""
    s = p["spacing"] / sub
    xs = (np.arange(p["nx"] * sub) + 0.5) * s - p["nx"] * p["spacing"] / 2
    ys = (np.arange(p["ny"] * sub) + 0.5) * s - p["ny"] * p["spacing"] / 2
    return np.meshgrid(xs, ys)


def _ellipse(x, y, cx, cy, a, b, ang):
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
    d_endo = _ellipse(x, y, cx, cy, r_endo, r_endo * ex, ang)
    d_epi = _ellipse(x, y, cx, cy, r_epi, r_epi * ex, ang)
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
            d_rv = _ellipse(x, y, rcx, rcy, b, a, th)
            d_epi_out = _ellipse(x, y, cx, cy, r_epi + 0.5, (r_epi + 0.5) * ex, ang)
            rv = (d_rv <= 1) & (d_epi_out > 1)
            lab[rv & (lab == 0)] = L.RV_BLOOD_POOL
            d_rv_out = _ellipse(x, y, rcx, rcy, b + 3.0, a + 3.0, th)
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
    x, y = _grid(p, 1)
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
    xs, ys = _grid(p, sub)
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


# ----------------------------------------------------------------------------- image formation

#: RV shape (version 3), relative to the LV equatorial epicardial radius x rv_size: ellipse
#: depth and width, centre offset beyond the epicardium (x depth), linear taper from base to
#: apex. Chosen so that the measured RV solidity, angular extent, depth, per-level RV / LV area
#: and RV / LV volume sit in ACDC's ranges (bench/measure_real_appearance.py; version 2's
#: crescent had solidity 0.63 vs ACDC 0.77 and depth 0.30 vs 0.53 x LV diameter)
RV_SHAPE = {"depth": 0.9, "width": 0.8, "offset": 0.05, "taper": 0.8}

#: RV ejection fraction target = the drawn N(52, 8) minus this: ACDC's RV ES / ED blood volume
#: is 0.54 (IQR 0.42-0.62), i.e. RVEF ~46 %; version 1 gave 0.46
RVEF_SHIFT = 6.0

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
    body = _ellipse(x, y, 0, 8, bx, by, 0) <= 1
    fat = body & (_ellipse(x, y, 0, 8, bx - 12, by - 10, 0) > 1)
    hx, hy = heart_centre
    # lungs: two ellipses beside / behind the heart (image +y is posterior here); they reach the
    # heart, so that the tissue next to it is mostly dark lung as in ACDC (near-heart median 0.18)
    lung_l = _ellipse(x, y, hx + 60, hy + 12, 44, 68, 0.3) <= 1
    lung_r = _ellipse(x, y, hx - 72, hy + 8, 48, 70, -0.3) <= 1
    # liver appears towards the apex, on the patient's right (image -x)
    liver = np.zeros(x.shape, bool)
    frac = z / (p["nz"] * p["dz"])
    if frac > 0.4:
        g = min(1.0, (frac - 0.3) / 0.5)
        liver = _ellipse(x, y, -bx * 0.55, 8 + by * 0.25, bx * 0.6 * g, by * 0.7 * g, 0.3) <= 1
    aorta = _ellipse(x, y, hx + 20, hy + 62, 11, 11, 0) <= 1
    spine = _ellipse(x, y, hx + 2, by - 10, 16, 14, 0) <= 1
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
    depth = (1.0 - np.sqrt(_ellipse(x, y, cx, cy, a["r_endo"], a["r_endo"] * ex, ang))) * a["r_endo"] * 0.5 * (1 + ex)
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
    x, y = _grid(p, 1)
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


def _affine(p) -> np.ndarray:
    m = np.diag([-p["spacing"], -p["spacing"], p["dz"], 1.0])
    m[:3, 3] = [p["nx"] * p["spacing"] / 2, p["ny"] * p["spacing"] / 2, -p["nz"] * p["dz"] / 2]
    return m


def _affine_apex_first(p) -> np.ndarray:
    """Index-to-RAS matrix of a volume stored with its slices in reverse order (slice 0 = apex):
    every voxel keeps the world position it has in the cine (base-first, :func:`_affine`)."""
    m = _affine(p)
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
    xs, ys = _grid(p, sub)
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


# ----------------------------------------------------------------------------- cohort

def _event_time(rng, lh):
    h = HAZARD
    u = rng.random()
    t = (-np.log(u) / (h["weibull_scale_per_year"] * np.exp(lh))) ** (1.0 / h["weibull_shape"])
    admin = rng.uniform(*h["admin_censoring_years"])
    drop = rng.exponential(1.0 / h["dropout_rate_per_year"])
    c = min(admin, drop)
    return (float(t), 1) if t <= c else (float(c), 0)


def _subject(i: int, ss: np.random.SeedSequence, out_dir: str | None) -> dict:
    """One subject's manifest row; images and label maps are written only with ``out_dir``."""
    from .metrics import clinical_indices, scar_burden_pct

    sid = f"SYN{i + 1:03d}"
    r_par, r_img, r_out = (np.random.default_rng(s) for s in ss.spawn(3))
    p = draw_subject(r_par)
    res = render_subject(p, r_img) if out_dir else subject_labels(p, 1)
    sp = (p["spacing"], p["spacing"], p["dz"])
    ef = clinical_indices(res["ed"], res["es"], sp)["lv_ef_pct"]
    scar = scar_burden_pct(res["lge"])
    lh = log_hazard(ef, scar, p["age"], p["diabetes"], p["sex"])
    t, ev = _event_time(r_out, lh)
    row = {"subject": sid}
    if out_dir:
        from .image import Volume, write_image

        for role, key in (("cine_ed", "ed"), ("cine_es", "es"), ("lge", "lge")):
            rel_img, rel_seg = f"{sid}/{role}.nii.gz", f"{sid}/{role}_seg.nii.gz"
            img, lab = res[key + "_img"], res[key].astype(np.uint8)
            aff = _affine(p)
            if APEX_FIRST[role]:
                img, lab, aff = img[::-1].copy(), lab[::-1].copy(), _affine_apex_first(p)
            write_image(Volume(img, aff), os.path.join(out_dir, rel_img))
            write_image(Volume(lab, aff), os.path.join(out_dir, rel_seg))
            row[role], row[role + "_seg"] = rel_img, rel_seg
    row.update({"age": f"{p['age']:.1f}", "sex": p["sex"], "diabetes": p["diabetes"],
                "time": f"{t:.4f}", "event": ev, "true_lvef": f"{ef:.4f}",
                "true_scar_burden": f"{scar:.4f}", "true_log_hazard": f"{lh:.6f}"})
    return row


def cohort_truth(n: int = 60, seed: int = 0) -> list:
    """The manifest rows of :func:`generate_cohort` (same ``n``, ``seed``) without writing images:
    covariates, outcome and true_* values (label maps are built in memory to measure LVEF and
    scar burden)."""
    return [_subject(i, ss, None) for i, ss in enumerate(np.random.SeedSequence(seed).spawn(n))]


def _progress_line(i, n, row) -> str:
    return (f"synth {i}/{n}: {row['subject']} LVEF {float(row['true_lvef']):.1f} % scar "
            f"{float(row['true_scar_burden']):.1f} % "
            f"{'event' if row['event'] else 'censored'} at {float(row['time']):.2f} y")


def generate_cohort(out_dir: str, n: int = 60, seed: int = 0, progress=True,
                    workers: int | None = None) -> str:
    """Write ``n`` synthetic subjects, ``manifest.csv`` and ``synthetic.json`` under ``out_dir``;
    return the manifest's path. The same ``seed`` gives the same arrays and tables.
    ``progress``: True prints a line per subject on stderr (a progress bar with several
    workers), a callable gets (done, total).
    ``workers``: None or 1 generates the subjects in this process; more generates them in that
    many ``spawn``-started processes (:func:`cmrrisk.parallel.run_subjects`). Every subject draws
    from its own child of ``SeedSequence(seed)``, so the output is identical either way."""
    import shutil
    import tempfile

    from .errors import CMRRiskError

    if n < 1:
        raise ValueError("n must be at least 1")
    if seed < 0:
        raise ValueError("seed must be 0 or more")
    final = os.path.abspath(out_dir)
    if os.path.exists(final) and not os.path.isdir(final):
        raise CMRRiskError(f"{out_dir}: is a file; give a folder for the cohort.")
    if os.path.isdir(final):
        from .modeldir import refuse_other_files

        refuse_other_files(out_dir, set(os.listdir(final)) - _cohort_files(final), "a synthetic cohort",
                           "a previous synthetic cohort with nothing added to it")
    parent = os.path.dirname(final)
    os.makedirs(parent, exist_ok=True)
    # built under a temporary name beside the target, renamed when complete: a failure leaves
    # nothing half-written (the manifest's paths are relative, so they hold after the rename)
    work = tempfile.mkdtemp(prefix=f".{os.path.basename(final)}.partial-", dir=parent)
    try:
        man = _generate(work, n, seed, progress, workers)
        if os.path.isdir(final) and os.listdir(final):  # a previous cohort: replaced whole
            old = tempfile.mkdtemp(prefix=f".{os.path.basename(final)}.old-", dir=parent)
            os.rmdir(old)
            os.replace(final, old)
            os.replace(work, final)
            shutil.rmtree(old)
        else:
            if os.path.isdir(final):
                os.rmdir(final)
            os.replace(work, final)
        os.chmod(final, 0o755)  # mkdtemp makes 0700
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return os.path.join(final, os.path.basename(man))


def _cohort_files(folder: str) -> set:
    """What a cohort written by :func:`generate_cohort` holds at its top level: ``manifest.csv``,
    ``synthetic.json`` and one folder per subject of its manifest (empty when ``folder`` is not
    such a cohort)."""
    man = os.path.join(folder, "manifest.csv")
    if not (os.path.isfile(man) and os.path.isfile(os.path.join(folder, "synthetic.json"))):
        return set()
    with open(man, newline="") as fh:
        subjects = {r.get("subject", "") for r in csv.DictReader(fh)}
    return {"manifest.csv", "synthetic.json"} | {s for s in subjects if s and os.path.isdir(os.path.join(folder, s))}


def _generate(out_dir: str, n: int, seed: int, progress, workers) -> str:
    """:func:`generate_cohort` into ``out_dir`` (an empty folder)."""
    from .manifest import write_csv

    seqs = np.random.SeedSequence(seed).spawn(n)
    if workers is not None and workers > 1 and n > 1:
        from .parallel import run_subjects

        jobs = [(i, (i, ss, out_dir)) for i, ss in enumerate(seqs)]
        done = run_subjects(_subject, jobs, workers=workers, desc="synth", progress=progress is True)
        rows = [done[i] for i in range(n)]
        if callable(progress):
            progress(n, n)
    else:
        rows = []
        for i, ss in enumerate(seqs):
            row = _subject(i, ss, out_dir)
            rows.append(row)
            if callable(progress):
                progress(i + 1, n)
            elif progress:
                print(_progress_line(i + 1, n, row), file=sys.stderr, flush=True)
    man = os.path.join(out_dir, "manifest.csv")
    write_csv(man, list(COLUMNS), rows)
    desc = {
        "generator": "cmrrisk.synthetic", "version": VERSION, "seed": seed, "n": n,
        "labels": {"0": "background", "1": "LV blood pool", "2": "LV myocardium",
                   "3": "RV blood pool (cine only)", "4": "scar (LGE)", "5": "MVO (LGE)"},
        "hazard": dict(HAZARD), "hazard_formula": hazard_formula(),
        "time_unit": "years",
        "true_columns": list(TRUE_COLUMNS),
        "true_columns_note": "generator truth: exclude true_* columns from model inputs",
        "covariates": {"age": "N(62, 11) clipped 30-90", "sex": "1 male (p 0.7)",
                       "diabetes": "p 0.25 + 0.004 (age - 60)"},
        "scar": {"prevalence": 0.65, "target_burden_pct": "U(3, 40)", "territories": TERRITORIES,
                 "transmurality": "U(0.3, 1)", "mvo": "p 0.4 when transmurality > 0.6",
                 "lge_enhancement": "scar = blood + U(-3, 6) grey; blood = remote + U(12, 21) grey "
                                    "(EMIDEC: scar - blood +2, blood - remote +15)"},
        "lvef_target": "clip(63 - 0.7 scar + N(0, 9), 20, 70); measured on the label maps",
        "geometry": {"in_plane_mm": [1.35, 1.65], "slice_mm": [8, 10], "slices": [8, 10],
                     "matrix_rows": [208, 240], "matrix_columns": [240, 256],
                     "lv_r_endo_mm": "clip(28.3 + 0.2 (55 - LVEF target) + N(0, 3), 21, 40)", "affine": "diag(-s, -s, dz) (ACDC orientation)",
                     "slice_0": "base (cine); apex (LGE, stored apex first as EMIDEC)",
                     "ed_endocardial_apex_beyond_last_slice_mm": [0.2, 3.0],
                     "long_axis_shortening": "ES only: 1 - 0.25 (1 - in-plane factor)"},
        "image": {"supersampling": 2, "blur_mm": {"cine": [1.1, 1.6], "lge": 1.0}, "cine_noise": "Rician",
                  "lung_gap_mm": [6, 18], "atrial_blood_radius_mm": [15, 24],
                  "cine_epicardial_band": {"mm_outside_lv": f"0 to {CINE_EPI_BAND['width_mm']}",
                                           "level_times_blood_minus_myocardium": CINE_EPI_BAND["level"],
                                           "level_spread_around_the_lv": CINE_EPI_BAND["spread"],
                                           "share_redrawn_per_slice": CINE_EPI_BAND["slice_share"]},
                  "body_semi_axes_mm": [[200, 250], [125, 145]],
                  "cine_snr": [18 * CINE_NOISE_FACTOR, 35 * CINE_NOISE_FACTOR],
                  "blood_to_myocardium": [2.2, 3.5], "cine_fat_to_blood": [1.2, 1.45],
                  "cine_rv_to_lv_blood": [0.74, 0.86], "coil_shading": "smooth multiplicative",
                  "papillary_radius": "0.22 x ED cavity radius + 1.5 mm (constant between phases)",
                  "trabeculation": {"kind": "radial spikes inside the labelled cavity (blood pool), "
                                            "density falling with depth", **TRABECULAE},
                  "lge": {"kind": "phase-sensitive, 8-bit grey levels as exported by EMIDEC",
                          "offset_grey": [130, 143], "remote_minus_offset": [0, 10],
                          "blood_minus_remote": [12, 21], "scar_minus_blood": [-3, 6],
                          "mvo": "remote + U(0.4, 0.8) (scar - remote)", "fat_minus_offset": [65, 90],
                          "lung_minus_offset": [-42, -20], "noise_sd_grey": [1.1, 1.6],
                          "myocardial_texture": {"sd_times_blood_minus_remote": LGE_TEXTURE["sd"],
                                                 "smoothing_px_of_2x_grid": LGE_TEXTURE["smooth_px"]},
                          "epicardial_band": {"mm_outside_lv": f"0 to {LGE_EPI_RIM['width_mm']} "
                                                                f"(+{LGE_EPI_RIM['lateral_mm']} laterally)",
                                              "level_times_blood_minus_remote": LGE_EPI_RIM["level"],
                                              "level_spread_around_the_lv": LGE_EPI_RIM["spread"],
                                              "share_redrawn_per_slice": LGE_EPI_RIM["slice_share"]},
                          "zero_fill_fraction": [0.05, 0.19]}},
        "rv": {"shape": dict(RV_SHAPE), "rvef_target": f"N(52, 8) clipped 30-70, minus {RVEF_SHIFT}"},
        "slice_order": {"stored_apex_first": dict(APEX_FIRST),
                        "note": "cine slice 0 is the base (as ACDC, 34 of 34 measured frames); the LGE "
                                "(image and labels) is stored apex first (as EMIDEC, 75 of 75 stacks) "
                                "with an index-to-RAS matrix that keeps every voxel's world position"},
        "reference_measurements": REFERENCE,
        "reference_script": "bench/measure_real_appearance.py -> bench/results/real_vs_synthetic_appearance.json",
        "oracle_c_index": oracle_c_index(rows_time_event(rows)),
    }
    with open(os.path.join(out_dir, "synthetic.json"), "w") as fh:
        json.dump(desc, fh, indent=2, sort_keys=True)
    return man


def rows_time_event(rows):
    return (np.array([float(r["time"]) for r in rows]), np.array([int(r["event"]) for r in rows]),
            np.array([float(r["true_log_hazard"]) for r in rows]))


def oracle_c_index(manifest) -> float:
    """Harrell's C of the true log hazard: a manifest path, or a (time, event, log_hazard) tuple."""
    from .predict.evaluation import harrell_or_nan

    if isinstance(manifest, (str, os.PathLike)):
        with open(manifest, newline="") as fh:
            rows = list(csv.DictReader(fh))
        t, e, lh = rows_time_event(rows)
    else:
        t, e, lh = manifest
    return harrell_or_nan(t, e, lh)


# ----------------------------------------------------------------------------- CLI

def cmd_synth(args) -> int:
    man = generate_cohort(args.out, n=args.n, seed=args.seed, progress=not args.quiet,
                          workers=args.workers)
    print(f"{man}: {args.n} subjects (seed {args.seed}); oracle C-index {oracle_c_index(man):.3f}")
    return 0


def add_commands(subparsers) -> None:
    """Register ``synth`` on the ``cmrrisk`` subparsers."""
    s = subparsers.add_parser("synth", help="write a synthetic CMR cohort (cine ED/ES, LGE, labels, "
                              "covariates, event times from a known hazard) and its manifest")
    s.add_argument("--out", required=True, help="output folder")
    s.add_argument("--n", type=int, default=60, help="number of subjects (default 60)")
    s.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    s.add_argument("--workers", type=int, default=None,
                   help="parallel worker processes (default: 1, in this process); the output does not "
                        "depend on it")
    s.add_argument("--quiet", action="store_true", help="no per-subject progress lines")
    s.set_defaults(func=cmd_synth)
