"""Limitations derived from the data and the results (TRIPOD+AI item 26)."""

from __future__ import annotations

from .context import ReportContext
from .format import MIN_EPV, MIN_VALIDATION_EVENTS, ci_text, fnum, p_text


# -------------------------------------------------------------------------- limitations

def limitations(ctx: ReportContext) -> list:
    """Honest, automatically derived limitations (each one sentence)."""
    endpoint = ctx.endpoint
    infos = ctx.infos
    test_res = ctx.test_res
    apparent_res = ctx.app_res
    test_desc = ctx.test_desc
    train_desc = ctx.train_desc
    overlap = ctx.overlap
    qc = ctx.qc_rep
    extra = ctx.extra
    qc_in_manifests = ctx.qc_in
    has_test = ctx.has_test
    out = []
    extra = extra or {}
    synthetic = bool(extra.get("synthetic")) or "synthetic" in str(extra.get("data_source", "")).lower()
    truth = sorted({c for d in (train_desc, test_desc) if d for c in d["truth_columns"]})
    if synthetic or truth:
        out.append("The data are synthetic (simulated)"
                   + (f"; the manifests carry simulation truth columns ({', '.join(truth[:5])})" if truth else "")
                   + ". The performance shown says nothing about real patients.")
    if not has_test:
        out.append("No held-out or external data were given: performance comes only from cross-validation "
                   "inside the development data" + (" and from apparent performance on the development data, "
                                                    "which is optimistic" if apparent_res else "")
                   + ". The models are not externally validated.")
    else:
        out.append("Whether the test manifest is an external cohort (other centres, scanners or period) or a "
                   "split of the development cohort is not known to the software; a random split is internal "
                   "validation only.")
    if overlap:
        out.append(f"{overlap} subject identifier(s) appear both in the development and in the test manifest: "
                   "the test is not independent and its performance is optimistic.")
    for label, res in test_res.items():
        if endpoint == "survival":
            ev = res.get("n_events", 0)
            if ev < MIN_VALIDATION_EVENTS:
                out.append(f"{label}: the test data have {ev} events, fewer than the {MIN_VALIDATION_EVENTS} "
                           "commonly recommended for validating a prognostic model (Collins et al., Stat Med "
                           "2016); estimates are imprecise.")
            ci = res.get("c_index_harrell_ci") or [None, None]
            if ci[0] is not None and ci[1] - ci[0] > 0.15:
                out.append(f"{label}: the 95 % interval of Harrell's C is wide ({ci_text(ci)}).")
            if ci[0] is not None and ci[0] <= 0.5:
                out.append(f"{label}: the lower 95 % bound of Harrell's C is {fnum(ci[0])}; discrimination is not "
                           "distinguishable from chance.")
            cal = res.get("calibration") or {}
            slope = cal.get("slope")
            if cal and slope is None:
                out.append(f"{label}: the calibration slope could not be estimated.")
            elif slope is not None and not 0.8 <= slope <= 1.2:
                out.append(f"{label}: calibration slope {fnum(slope, 2)} at t = {cal['horizon']:g} "
                           + ("(< 1: predictions too extreme, a sign of overfitting)." if slope < 1
                              else "(> 1: predictions too moderate)."))
            if cal and cal.get("predicted_overall"):
                oe = cal["observed_overall"] / cal["predicted_overall"]
                if not 0.8 <= oe <= 1.25:
                    out.append(f"{label}: observed/expected event probability at t = {cal['horizon']:g} is "
                               f"{oe:.2f} (observed {fnum(cal['observed_overall'])}, predicted "
                               f"{fnum(cal['predicted_overall'])}): calibration-in-the-large is off.")
            p = (res.get("risk_groups") or {}).get("logrank_p")
            if p is not None and p >= 0.05:
                out.append(f"{label}: the Kaplan-Meier curves of the predicted risk groups do not differ "
                           f"significantly (log-rank p {p_text(p)}).")
        else:
            counts = [v for v in (res.get("class_counts") or {}).values()]
            if counts and min(counts) < 10:
                out.append(f"{label}: the smallest class of the test data has {min(counts)} subject(s); per-class "
                           "measures are unreliable.")
            ci = res.get("balanced_accuracy_ci") or [None, None]
            if ci[0] is not None and ci[1] - ci[0] > 0.15:
                out.append(f"{label}: the 95 % interval of the balanced accuracy is wide ({ci_text(ci)}).")
            missing_auc = [c for c, a in (res.get("auc_per_class") or {}).items() if a is None]
            if missing_auc:
                out.append(f"{label}: no AUC for class(es) {', '.join(missing_auc)} (absent or alone in the "
                           "test data).")
    for i in infos:
        epv = i.get("epv")
        if epv is not None and epv < MIN_EPV:
            out.append(f"{i['label']}: {fnum(epv, 1)} events per candidate predictor parameter in development "
                       f"(fewer than {MIN_EPV}, the traditional rule of thumb): a high risk of overfitting "
                       "(Riley et al., BMJ 2020, give a full sample-size calculation).")
        if i.get("dev_n") is not None and i["dev_n"] < 100:
            out.append(f"{i['label']}: developed on only {i['dev_n']} subjects.")
    if len(infos) > 1 and has_test:
        out.append("Models were compared on the same test data without a formal test of their differences; "
                   "overlapping intervals do not show that the models perform alike.")
    miss = [c for d in (train_desc, test_desc) if d for c, v in d["covariates"].items() if v["missing"]]
    if miss:
        out.append("Missing covariate values (" + ", ".join(sorted(set(miss))[:8]) + ") were filled with the "
                   "training median (single imputation), which ignores the uncertainty of the imputed values "
                   "and assumes they are missing at random.")
    if qc is not None:
        st = (qc.get("volume") or {}).get("status") or {}
        if st.get("exclude"):
            out.append(f"Quality control excluded {st['exclude']} subject(s) of {qc['volume'].get('n_subjects')}; "
                       "the population the models apply to is narrowed by these criteria.")
        for role, subs in qc_in_manifests.items():
            if subs:
                out.append(f"{len(subs)} subject(s) that quality control excluded are still in the {role} manifest "
                           f"({', '.join(subs[:5])}{', ...' if len(subs) > 5 else ''}).")
    else:
        out.append("No quality-control report was given: image quality and data veracity are not documented here.")
    if endpoint == "survival":
        out.append("Risk groups are tertiles of the predicted risk in the development data, not clinically "
                   "derived thresholds; Uno's C, time-dependent AUC and Brier scores weight by the censoring "
                   "distribution estimated from the evaluated cohort itself.")
        out.append("Clinical utility (decision curve analysis) was not assessed.")
    out.append("Explanations (attributions, saliency, similar cases) describe what the model uses, not causal "
               "effects; they have not been validated by clinicians.")
    out.append("Research software, not a medical device: not for clinical decisions.")
    return out
