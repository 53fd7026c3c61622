"""Sections on the methods: model specification and validation design, class imbalance, model
output, participants, model development."""

from __future__ import annotations

import json
import math


from .data import cov_cell, linear_terms, std_mean_diff
from .context import ReportContext
from .format import fnum, gnum, with_ci


def section_methods(H, ctx: ReportContext):
    endpoint = ctx.endpoint
    infos = ctx.infos
    has_test = ctx.has_test
    test_manifest = ctx.test_manifest
    test_desc = ctx.test_desc
    train_desc = ctx.train_desc
    overlap = ctx.overlap
    apparent = ctx.apparent
    n_boot = ctx.n_boot
    seed = ctx.seed
    H.h2("methods")
    H.h3("Model specification")
    rows = []
    for i in infos:
        c = i["config"]
        m = c.get("model") or {}
        params = dict(m.get("params") or {})
        params.update(c.get("model_params") or {})
        chosen = "+".join(i["chosen"]) if i.get("chosen") else "-"
        scores = ", ".join(f"{k} {fnum(v)}" for k, v in (i.get("cv_scores") or {}).items()) or "-"
        rows.append((i["label"], i["model_name"], chosen, scores,
                     json.dumps(params, sort_keys=True, default=str)[:500], c.get("seed"),
                     c.get("max_features") or "all"))
    H.table(["model", "type", "chosen sub-model", "inner-CV scores of the candidates", "hyper-parameters", "seed",
             "features kept"], rows)
    user = [f"{i['label']}: " + ", ".join(f"{k}={v}" for k, v in sorted(i["config"]["hyperparameters"].items()))
            for i in infos if i["config"].get("hyperparameters")]
    if user:
        H.p("Hyper-parameters set at training (cmrrisk train --param / --params; the others at their "
            "defaults): " + "; ".join(user) + ".")
    H.p("Model types: cox (ridge-penalised Cox), coxboost (boosted Cox trees), deepsurv / logistic_hazard / deephit "
        "(neural networks), auto (inner cross-validation chooses among Cox, CoxBoost, DeepSurv and ensembles), "
        "multiinput (image network on the cine frames plus covariates); logistic, mlp and auto (column family "
        "chosen by inner cross-validation) for diagnosis.")
    H.h3("Validation design")
    items = []
    for i in infos:
        cv = i.get("cv")
        if cv:
            items.append(f"{i['label']}: {cv.get('k')}-fold cross-validation (stratified by "
                         f"{'event' if endpoint == 'survival' else 'class'}, seed {cv.get('seed')}) on the development "
                         f"data ({cv.get('n')} subjects); every fitted step (imputation, selection, scaling, model, "
                         "inner model choice) inside the training folds; then refitted on all development data.")
        else:
            items.append(f"{i['label']}: no cross-validation stored (trained with --cv 0).")
    if has_test:
        msg = f"Every model evaluated once on {test_manifest} ({test_desc['n']} subjects), not used in development"
        if train_desc:
            msg += (f"; {overlap} subject identifier(s) shared with the development manifest." if overlap
                    else "; no subject identifier shared with the development manifest.")
        items.append(msg)
    else:
        items.append("No held-out or external test data: only cross-validation"
                     + (" and apparent (development data) performance." if apparent else "."))
    if endpoint == "survival":
        items.append(f"Measures: Harrell's C; Uno's C (inverse probability of censoring weights, truncated at the "
                     f"largest horizon); cumulative/dynamic AUC and Brier score at horizons (quartiles of the "
                     f"development event times); integrated Brier score; calibration at the middle horizon "
                     f"(observed 1 - Kaplan-Meier vs mean predicted per risk bin, slope from a Cox regression on "
                     f"log(-log S)); Kaplan-Meier curves by predicted risk group with a log-rank test. 95 % intervals: "
                     f"percentile bootstrap over subjects ({n_boot} resamples, seed {seed}).")
    else:
        items.append(f"Measures: accuracy, balanced accuracy, one-vs-rest AUC per class and macro-averaged, confusion "
                     f"matrix. 95 % intervals: percentile bootstrap over subjects ({n_boot} resamples, seed {seed}).")
    H.ul(items)


def section_imbalance(H, ctx: ReportContext):
    infos, train_desc, test_desc = ctx.infos, ctx.train_desc, ctx.test_desc
    H.h2("imbalance")
    H.p("Class counts are reported under Outcome; the CMRRisk diagnosis models use no resampling or class "
        "weights. Balanced accuracy and per-class AUC are reported alongside accuracy.")


def section_output(H, ctx: ReportContext):
    endpoint, infos = ctx.endpoint, ctx.infos
    H.h2("output")
    if endpoint == "survival":
        i = infos[0]
        hz = (i["config"].get("training") or {}).get("horizons") or []
        H.ul(["A risk score per subject (higher = worse; for Cox-type models the linear predictor).",
              "Survival probabilities at any time; by default at the horizons "
              + (", ".join(f"{h:g}" for h in hz) if hz else "n/a") + " (quartiles of the development event times).",
              "A risk group (low / intermediate / high): tertiles of the predicted risk in the development data, "
              "cut-points stored in the model: " + "; ".join(
                  f"{m['label']}: "
                  + ", ".join(gnum(c) for c in (m['config'].get('training') or {}).get('risk_cutpoints', []))
                  for m in infos) + "."])
    else:
        H.ul(["A probability per class (summing to 1) and the predicted class (largest probability; no other "
              "threshold)."])


def section_participants(H, ctx: ReportContext):
    endpoint = ctx.endpoint
    train_desc = ctx.train_desc
    test_desc = ctx.test_desc
    qc_rep = ctx.qc_rep
    qc_in = ctx.qc_in
    H.h2("participants")
    flow = []
    if qc_rep is not None:
        v = qc_rep.get("volume") or {}
        st = v.get("status") or {}
        flow.append(f"QC cohort: {v.get('n_subjects')} subjects; {st.get('exclude', 0)} excluded, "
                    f"{st.get('flag', 0)} flagged.")
    for role, d in (("development", train_desc), ("test", test_desc)):
        if d:
            flow.append(f"{role} manifest: {d['n']} subjects analysed"
                        + (f" ({len(qc_in.get(role, []))} of them QC-excluded)" if qc_in.get(role) else "") + ".")
    if not flow:
        H.p("No manifest was given: participants are described only by the training summaries of the models "
            "(see Outcome and Sample size).")
        return
    H.ul(flow)
    cols = sorted({c for d in (train_desc, test_desc) if d for c in d["covariates"]},
                  key=lambda c: ((train_desc or test_desc)["columns"].index(c)
                                 if c in (train_desc or test_desc)["columns"] else 10 ** 6, c))
    rows = []
    for c in cols:
        a = (train_desc or {}).get("covariates", {}).get(c) if train_desc else None
        b = (test_desc or {}).get("covariates", {}).get(c) if test_desc else None
        smd = std_mean_diff(a or {}, b or {}) if a and b else None
        rows.append((c, cov_cell(a) if train_desc else "-", cov_cell(b) if test_desc else "-",
                     fnum(smd, 2) if smd is not None else "-"))
    H.table(["covariate", "development: mean (SD); median [IQR]; range / counts",
             "test: mean (SD); median [IQR]; range / counts", "standardised difference"], rows,
            "Characteristics of the participants (item 20b) and development vs test (item 20c)")
    truth = sorted({c for d in (train_desc, test_desc) if d for c in d["truth_columns"]})
    if truth:
        H.p(f"Simulation truth columns present and never used as predictors: {', '.join(truth)}.")


def section_development(H, ctx: ReportContext):
    endpoint, infos = ctx.endpoint, ctx.infos
    H.h2("development")
    keys = ("c_index_harrell", "c_index_uno", "integrated_brier", "td_auc_mean") if endpoint == "survival" \
        else ("accuracy", "balanced_accuracy", "auc_macro")
    rows = []
    for i in infos:
        cv = i.get("cv")
        if cv:
            s = cv.get("summary") or {}
            rows.append([i["label"], cv.get("k"), cv.get("n")] +
                        [f"{fnum(s[k]['mean'])} (SD {fnum(s[k]['sd'])})" if k in s else "n/a" for k in keys])
        else:
            rows.append([i["label"], "-", "-"] + ["not computed"] * len(keys))
    H.table(["model", "folds", "subjects"] + list(keys), rows,
            "Cross-validation inside the development data (mean and SD over folds)")
    for i in infos:
        cv = i.get("cv") or {}
        folds = cv.get("folds") or []
        if folds:
            fr = []
            for f in folds:
                if endpoint == "survival":
                    fr.append((f.get("fold"), f.get("n_train"), f.get("n"), f.get("n_events"),
                               fnum(f.get("c_index_harrell")), fnum(f.get("c_index_uno")), fnum(f.get("integrated_brier"))))
                else:
                    fr.append((f.get("fold"), f.get("n_train"), f.get("n"), "-", fnum(f.get("accuracy")),
                               fnum(f.get("balanced_accuracy")), fnum(f.get("auc_macro"))))
            hdr = ["fold", "training subjects", "test subjects", "events"] + (
                ["Harrell's C", "Uno's C", "integrated Brier"] if endpoint == "survival"
                else ["accuracy", "balanced accuracy", "macro AUC"])
            H.table(hdr, fr, f"{i['label']}: per fold (item 21: participants and events in each analysis)")
        pooled = cv.get("pooled_out_of_fold")
        if pooled:
            H.p(f"{i['label']}: pooled out-of-fold predictions: accuracy {with_ci(pooled, 'accuracy')}, balanced "
                f"accuracy {with_ci(pooled, 'balanced_accuracy')}, macro AUC {with_ci(pooled, 'auc_macro')}.")
    for i in infos:
        terms = linear_terms(i["pipe"])
        p = i["pipe"].preprocessor.params
        if terms:
            std = dict(zip(p.get("selected", []), p.get("std", [])))
            if endpoint == "survival":
                rows = [(n, fnum(c[0]), fnum(math.exp(max(min(c[0], 50), -50))), gnum(std.get(n))) for n, c in terms]
                H.table(["feature", "log hazard ratio per SD", "hazard ratio per SD", "SD in development"], rows,
                        f"{i['label']}: the full Cox model (inputs standardised with the development mean and SD; "
                        "baseline hazard in model.safetensors)")
            else:
                classes = i["pipe"].classes or []
                rows = [[n] + [fnum(v) for v in c] for n, c in terms]
                H.table(["feature"] + [f"coefficient: {k}" for k in classes], rows,
                        f"{i['label']}: logistic coefficients per SD of the standardised inputs (intercepts in "
                        "model.safetensors)")
        else:
            H.p(f"{i['label']}: a {i['model_name']} model has no closed form; its full specification is the model "
                "directory (weights in model.safetensors, preprocessing.json, config.json), identified by the "
                "SHA-256 checksums listed under Software.")
