"""How close to the oracle can a Cox model get at the demo's sample size?

The demo's goal is "best model's test C-index within 0.03 of the oracle" on one train / test
split of one synthetic cohort (100 subjects, 30 % test). This benchmark asks how often a
*correctly specified* model meets it, without images: for each of ``--cohorts`` synthetic
cohorts (seeds ``--seed-base`` + i, ``--n`` subjects) it builds the generator's label maps in
memory (no images), measures the clinical indices the demo's ``cox`` uses on those label maps
(the truth), optionally adds measurement error like the demo's segmentations (Gaussian LVEF
error, Gaussian scar-burden error with a bias, clipped at 0), splits train / test as the demo
does (:func:`cmrrisk.demo.split_subjects`, stratified by event), fits the project's ridge Cox
(:class:`cmrrisk.predict.survival.CoxPH`, alpha 0.1, standardised inputs) and reports the test
C-index gap to the oracle (Harrell's C of the true log-hazard on the same test subjects) for

* ``cox_demo_inputs``: the demo's 10 inputs (age, sex, diabetes, LVEF, LVEDV, LVESV, LV mass,
  RVEF, scar burden, MVO volume);
* ``cox_formula_inputs``: only the 5 inputs of the hazard formula (a model that knew which
  inputs matter);
* ``formula``: the hazard formula itself on the (measured) inputs (no estimation at all).

The default measurement errors are near the demo's (generator version 6, seeds 0-2: LVEF mean
absolute error 1.05-1.50 pp; scar burden 3.2-5.1 pp, mean error -1.3 to -3.7 pp): a Gaussian
error of SD 1.5 pp on LVEF has a mean absolute value of 1.2 pp, one of mean -2.5 and SD 5 pp on
scar burden about 4.6 pp.

No model choice between several models is simulated (the demo's choice adds to the gap).

    .venv/bin/python bench/sim_demo_gap.py [--cohorts 25] [--n 100] [--seed-base 1000]
        [--lvef-sd 1.5] [--scar-bias -2.5] [--scar-sd 5.0]

Writes bench/results/sim_demo_gap.json (per cohort and summary: mean, median, SD of the gap and
the fraction of cohorts within 0.03), for truth inputs and for measured (noisy) inputs.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "CMRRiskExtension"))

DEMO_INPUTS = ("age", "sex", "diabetes", "lv_ef_pct", "lv_edv_ml", "lv_esv_ml", "lv_mass_g",
               "rv_ef_pct", "scar_burden_pct", "mvo_ml")
FORMULA_INPUTS = ("age", "sex", "diabetes", "lv_ef_pct", "scar_burden_pct")


def cohort_rows(n: int, seed: int) -> list:
    """Covariates, clinical indices measured on the generator's label maps, outcome and true
    log-hazard of a synthetic cohort (the same subjects as ``generate_cohort(n=n, seed=seed)``)."""
    from cmrrisk import synthetic as S
    from cmrrisk.metrics import clinical_indices, lge_measures

    rows = []
    for i, ss in enumerate(np.random.SeedSequence(seed).spawn(n)):
        r_par, _r_img, r_out = (np.random.default_rng(s) for s in ss.spawn(3))
        p = S.draw_subject(r_par)
        lab = S.subject_labels(p, 1)
        sp = (p["spacing"], p["spacing"], p["dz"])
        ci = clinical_indices(lab["ed"], lab["es"], sp)
        lm = lge_measures(lab["lge"], sp)
        lh = S.log_hazard(ci["lv_ef_pct"], lm["scar_burden_pct"], p["age"], p["diabetes"], p["sex"])
        t, ev = S._event_time(r_out, lh)
        rows.append({"subject": f"SYN{i + 1:03d}", "age": p["age"], "sex": p["sex"],
                     "diabetes": p["diabetes"], **{k: ci[k] for k in DEMO_INPUTS[3:8]},
                     "scar_burden_pct": lm["scar_burden_pct"], "mvo_ml": lm["mvo_ml"],
                     "time": t, "event": str(ev), "true_log_hazard": lh})
    return rows


def gaps(rows: list, seed: int, noise: dict | None) -> dict:
    from cmrrisk import synthetic as S
    from cmrrisk.demo import split_subjects
    from cmrrisk.predict.base import SurvivalTarget
    from cmrrisk.predict.evaluation import harrell as harrell_c
    from cmrrisk.predict.survival import CoxPH

    rng = np.random.default_rng(seed + 7)
    x = {c: np.array([float(r[c]) for r in rows]) for c in DEMO_INPUTS}
    if noise:
        x["lv_ef_pct"] = x["lv_ef_pct"] + rng.normal(0.0, noise["lvef_sd"], len(rows))
        x["scar_burden_pct"] = np.clip(x["scar_burden_pct"] + rng.normal(noise["scar_bias"], noise["scar_sd"], len(rows)), 0, None)
    t = np.array([r["time"] for r in rows])
    e = np.array([int(r["event"]) for r in rows])
    lh = np.array([r["true_log_hazard"] for r in rows])
    train_ids, test_ids = split_subjects(rows, 0.3, seed)
    pos = {r["subject"]: i for i, r in enumerate(rows)}
    tr, te = np.array([pos[s] for s in train_ids]), np.array([pos[s] for s in test_ids])
    oracle = harrell_c(t[te], e[te], lh[te])
    out = {"oracle": oracle}
    for name, cols in (("cox_demo_inputs", DEMO_INPUTS), ("cox_formula_inputs", FORMULA_INPUTS)):
        m = np.column_stack([x[c] for c in cols])
        mu, sd = m[tr].mean(0), m[tr].std(0)
        z = (m - mu) / np.where(sd > 0, sd, 1.0)
        model = CoxPH(seed=seed).fit(z[tr], SurvivalTarget(t[tr], e[tr]))
        out[name] = oracle - harrell_c(t[te], e[te], model.predict_risk(z[te]))
    f = np.array([S.log_hazard(x["lv_ef_pct"][i], x["scar_burden_pct"][i], x["age"][i],
                               int(x["diabetes"][i]), int(x["sex"][i])) for i in te])
    out["formula"] = oracle - harrell_c(t[te], e[te], f)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cohorts", type=int, default=25)
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--seed-base", type=int, default=1000)
    ap.add_argument("--lvef-sd", type=float, default=1.5, help="SD of the added LVEF error (pp)")
    ap.add_argument("--scar-bias", type=float, default=-2.5, help="mean of the added scar-burden error (pp)")
    ap.add_argument("--scar-sd", type=float, default=5.0, help="SD of the added scar-burden error (pp)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "sim_demo_gap.json"))
    args = ap.parse_args()
    from cmrrisk.modeldir import write_json
    from cmrrisk.synthetic import VERSION

    noise = {"lvef_sd": args.lvef_sd, "scar_bias": args.scar_bias, "scar_sd": args.scar_sd}
    per = {"truth": [], "measured": []}
    t0 = time.time()
    for i in range(args.cohorts):
        seed = args.seed_base + i
        rows = cohort_rows(args.n, seed)
        per["truth"].append({"seed": seed, **gaps(rows, seed, None)})
        per["measured"].append({"seed": seed, **gaps(rows, seed, noise)})
        print(f"cohort {i + 1}/{args.cohorts} (seed {seed}): gap of cox on the demo's inputs "
              f"{per['truth'][-1]['cox_demo_inputs']:.3f} (truth), "
              f"{per['measured'][-1]['cox_demo_inputs']:.3f} (measured) [{time.time() - t0:.0f} s]",
              file=sys.stderr, flush=True)
    summary = {}
    for kind, runs in per.items():
        summary[kind] = {}
        for k in ("cox_demo_inputs", "cox_formula_inputs", "formula"):
            g = np.array([r[k] for r in runs])
            summary[kind][k] = {"mean": float(g.mean()), "median": float(np.median(g)), "sd": float(g.std()),
                                "fraction_within_0.03": float((g <= 0.03).mean())}
    out = {"command": "python bench/sim_demo_gap.py " + " ".join(sys.argv[1:]), "generator_version": VERSION,
           "n": args.n, "test_fraction": 0.3, "cohorts": args.cohorts, "measurement_noise": noise,
           "summary": summary, "per_cohort": per, "seconds": round(time.time() - t0, 1)}
    write_json(args.out, out)
    for kind in per:
        for k, v in summary[kind].items():
            print(f"{kind:8s} {k:18s} gap mean {v['mean']:.3f} median {v['median']:.3f} SD {v['sd']:.3f} "
                  f"within 0.03: {v['fraction_within_0.03']:.2f}")
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
