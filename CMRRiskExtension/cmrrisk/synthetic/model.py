"""The generator's known hazard and the draw of one subject's parameters."""

from __future__ import annotations

import numpy as np



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


