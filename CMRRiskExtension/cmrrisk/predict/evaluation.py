"""Honest evaluation of prognostic and diagnostic predictions, with bootstrap 95 % intervals.

Survival (:func:`survival_report`): Harrell's C-index, Uno's C-index (IPCW, truncated at the
largest horizon), cumulative/dynamic AUC and Brier score at chosen horizons, integrated Brier
score, calibration at a horizon (observed Kaplan-Meier event probability vs mean predicted, by
risk decile; calibration slope from a Cox regression on the complementary log-log of the
predicted survival), Kaplan-Meier curves by predicted risk group with a log-rank test.
The censoring distribution for the IPCW metrics is estimated from the evaluated cohort itself,
so a model can be validated on an external cohort without its training data.

Diagnosis (:func:`diagnosis_report`): accuracy, balanced accuracy, one-vs-rest AUC per class and
macro-averaged, confusion matrix.

Intervals: percentile bootstrap over subjects (``n_boot`` resamples, seeded).
"""

from __future__ import annotations

import warnings

import numpy as np

from ..errors import CMRRiskError


def _surv_array(time, event):
    from sksurv.util import Surv

    return Surv.from_arrays(np.asarray(event).astype(bool), np.asarray(time, float))


def harrell(time, event, risk) -> float:
    from sksurv.metrics import concordance_index_censored

    return float(concordance_index_censored(np.asarray(event).astype(bool), np.asarray(time, float),
                                            np.asarray(risk, float))[0])


def harrell_or_nan(time, event, score) -> float:
    """Harrell's C of a known score (e.g. a simulation's true log-hazard), NaN when it is not
    defined (no event, fewer than two subjects, or no comparable pair)."""
    if not np.any(event) or len(time) < 2:
        return float("nan")
    try:
        return harrell(time, event, score)
    except Exception:  # no comparable pair (sksurv raises NoComparablePairException)
        return float("nan")


def uno(time, event, risk, tau) -> float:
    from sksurv.metrics import concordance_index_ipcw

    y = _surv_array(time, event)
    return float(concordance_index_ipcw(y, y, np.asarray(risk, float), tau=tau)[0])


def _ci(values):
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)])
    if len(v) < 10:
        return [None, None]  # too few successful resamples for an interval
    return [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))]


def _safe(fn, *a, **k):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn(*a, **k)
    except (ValueError, ZeroDivisionError, FloatingPointError, np.linalg.LinAlgError):
        return None


def _valid_horizons(time, horizons):
    t = np.asarray(time, float)
    lo, hi = t.min(), t.max()
    return [float(h) for h in horizons if lo <= h < hi]


def survival_report(time, event, risk, surv_fn=None, horizons=None, n_boot: int = 200,
                    seed: int = 0, risk_cutpoints=None, n_groups: int = 3) -> dict:
    """Metrics of a prognostic model on one cohort.

    ``risk``: one score per subject (higher = worse); ``surv_fn(times)`` -> survival
    probabilities (n, len(times)) or None; ``horizons``: times for AUC, Brier and calibration
    (default: quartiles of this cohort's event times); ``risk_cutpoints``: risk group boundaries
    (default: quantiles of ``risk`` into ``n_groups`` groups).
    """
    time, event, risk = np.asarray(time, float), np.asarray(event, int), np.asarray(risk, float)
    n = len(time)
    if n < 5 or event.sum() < 2:
        raise CMRRiskError(f"{n} subjects with {int(event.sum())} events: too few to evaluate a "
                           "survival model (need at least 5 subjects and 2 events).")
    if not np.all(np.isfinite(risk)):
        raise CMRRiskError("the model produced non-finite risk scores; check the inputs.")
    et = time[event > 0]
    if horizons is None or not len(horizons):
        horizons = [float(np.quantile(et, q)) for q in (0.25, 0.5, 0.75)]
    horizons = _valid_horizons(time, horizons)
    tau = max(horizons) if horizons else float(np.quantile(time, 0.8))
    out = {"n": n, "n_events": int(event.sum()), "horizons": horizons, "uno_tau": tau}
    out["c_index_harrell"] = harrell(time, event, risk)
    out["c_index_uno"] = _safe(uno, time, event, risk, tau)

    # time-dependent AUC and Brier at the horizons; integrated Brier over a grid
    y = _surv_array(time, event)
    grid = np.unique(np.quantile(time, np.linspace(0.1, 0.9, 50)))
    grid = grid[(grid >= time.min()) & (grid < time.max())]
    surv_grid = surv_h = None
    if horizons:
        from sksurv.metrics import cumulative_dynamic_auc

        auc = _safe(cumulative_dynamic_auc, y, y, risk, horizons)
        out["td_auc"] = {f"{h:g}": float(a) for h, a in zip(horizons, auc[0])} if auc else None
        out["td_auc_mean"] = float(auc[1]) if auc else None
    if surv_fn is not None:
        from sksurv.metrics import brier_score, integrated_brier_score

        surv_grid = np.clip(surv_fn(grid), 0, 1)
        out["integrated_brier"] = _safe(integrated_brier_score, y, y, surv_grid, grid)
        out["integrated_brier_range"] = [float(grid[0]), float(grid[-1])]
        if horizons:
            surv_h = np.clip(surv_fn(np.asarray(horizons)), 0, 1)
            bs = _safe(brier_score, y, y, surv_h, horizons)
            out["brier"] = {f"{h:g}": float(b) for h, b in zip(horizons, bs[1])} if bs else None
            mid = len(horizons) // 2
            out["calibration"] = calibration(time, event, surv_h[:, mid], horizons[mid])
    else:
        out["integrated_brier"] = None

    out["risk_groups"] = risk_groups(time, event, risk, risk_cutpoints, n_groups)

    # bootstrap
    rng = np.random.default_rng(seed)
    boots = {"c_index_harrell": [], "c_index_uno": [], "integrated_brier": [], "td_auc_mean": []}
    for _ in range(int(n_boot)):
        i = rng.integers(0, n, n)
        if event[i].sum() < 2:
            continue
        boots["c_index_harrell"].append(_safe(harrell, time[i], event[i], risk[i]))
        boots["c_index_uno"].append(_safe(uno, time[i], event[i], risk[i], tau))
        yi = _surv_array(time[i], event[i])
        if surv_grid is not None:
            from sksurv.metrics import integrated_brier_score

            g = (grid >= time[i].min()) & (grid < time[i].max())
            if g.sum() >= 2:
                boots["integrated_brier"].append(
                    _safe(integrated_brier_score, yi, yi, surv_grid[i][:, g], grid[g]))
        if horizons:
            from sksurv.metrics import cumulative_dynamic_auc

            hs = [h for h in horizons if time[i].min() <= h < time[i].max()]
            a = _safe(cumulative_dynamic_auc, yi, yi, risk[i], hs) if hs else None
            boots["td_auc_mean"].append(None if a is None else float(a[1]))
    for k, v in boots.items():
        out[f"{k}_ci"] = _ci(v)
    out["n_boot"] = int(n_boot)
    return out


def km_at(time, event, t):
    """Kaplan-Meier survival at time ``t``."""
    order = np.argsort(time, kind="stable")
    tt, ee = np.asarray(time)[order], np.asarray(event)[order]
    s = 1.0
    for u in np.unique(tt[(ee > 0) & (tt <= t)]):
        at_risk = np.sum(tt >= u)
        d = np.sum((tt == u) & (ee > 0))
        s *= 1 - d / at_risk
    return float(s)


def calibration(time, event, surv_at_h, horizon, n_bins: int = 10) -> dict:
    """Observed (1 - Kaplan-Meier) vs mean predicted event probability at ``horizon`` by
    predicted-risk bins, and the calibration slope (Cox regression of the outcome on
    log(-log S(horizon)); 1 = well calibrated, < 1 = predictions too extreme)."""
    time, event = np.asarray(time, float), np.asarray(event, int)
    p = 1 - np.asarray(surv_at_h, float)
    n_bins = int(max(2, min(n_bins, len(time) // 20)))
    edges = np.quantile(p, np.linspace(0, 1, n_bins + 1))
    b = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, n_bins - 1)
    bins = []
    for k in range(n_bins):
        m = b == k
        if m.sum() == 0:
            continue
        bins.append({"n": int(m.sum()), "predicted": float(p[m].mean()),
                     "observed": 1 - km_at(time[m], event[m], horizon)})
    lp = np.log(-np.log(np.clip(surv_at_h, 1e-10, 1 - 1e-10)))
    slope = _safe(_cox_slope, lp, time, event)
    return {"horizon": float(horizon), "bins": bins, "slope": slope,
            "observed_overall": 1 - km_at(time, event, horizon), "predicted_overall": float(p.mean())}


def _cox_slope(lp, time, event):
    from sksurv.linear_model import CoxPHSurvivalAnalysis

    if np.std(lp) < 1e-12:
        return None
    m = CoxPHSurvivalAnalysis(alpha=0.0, ties="breslow").fit(lp[:, None], _surv_array(time, event))
    return float(m.coef_[0])


def risk_groups(time, event, risk, cutpoints=None, n_groups: int = 3) -> dict:
    """Kaplan-Meier curves by predicted risk group (low to high) and a log-rank test."""
    from lifelines import KaplanMeierFitter
    from lifelines.statistics import multivariate_logrank_test

    if cutpoints is None:
        cutpoints = list(np.quantile(risk, np.linspace(0, 1, n_groups + 1)[1:-1]))
    g = np.searchsorted(np.asarray(cutpoints, float), risk, side="right")
    grid = np.quantile(time, np.linspace(0, 1, 21))
    groups = []
    for k in range(len(cutpoints) + 1):
        m = g == k
        if m.sum() == 0:
            groups.append({"group": k, "n": 0})
            continue
        km = KaplanMeierFitter().fit(time[m], event[m])
        med = km.median_survival_time_
        groups.append({"group": k, "n": int(m.sum()), "n_events": int(event[m].sum()),
                       "median_survival": None if not np.isfinite(med) else float(med),
                       "times": [float(t) for t in grid],
                       "survival": [float(s) for s in km.survival_function_at_times(grid).values]})
    p = None
    stat = None
    if len({k for k in g}) > 1:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = multivariate_logrank_test(time, g, event)
        p, stat = float(r.p_value), float(r.test_statistic)
    return {"cutpoints": [float(c) for c in cutpoints], "groups": groups,
            "logrank_p": p, "logrank_statistic": stat}


# ------------------------------------------------------------------------------ diagnosis

def diagnosis_report(y, proba, classes, n_boot: int = 200, seed: int = 0) -> dict:
    """``y``: true class indices; ``proba``: (n, n_classes) predicted probabilities."""
    from sklearn.metrics import balanced_accuracy_score, confusion_matrix, roc_auc_score

    y = np.asarray(y, int)
    proba = np.asarray(proba, float)
    k = len(classes)
    if len(y) < 2:
        raise CMRRiskError("too few subjects to evaluate a diagnostic model.")
    pred = proba.argmax(1)

    def aucs(yy, pp):
        out = {}
        for j, c in enumerate(classes):
            pos = yy == j
            out[str(c)] = float(roc_auc_score(pos, pp[:, j])) if 0 < pos.sum() < len(yy) else None
        return out

    def macro(a):
        v = [x for x in a.values() if x is not None]
        return float(np.mean(v)) if v else None

    def bacc(yy, pr):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return float(balanced_accuracy_score(yy, pr))

    per = aucs(y, proba)
    out = {"n": int(len(y)), "classes": [str(c) for c in classes],
           "class_counts": {str(c): int((y == j).sum()) for j, c in enumerate(classes)},
           "accuracy": float((pred == y).mean()), "balanced_accuracy": bacc(y, pred),
           "auc_per_class": per, "auc_macro": macro(per),
           "confusion_matrix": confusion_matrix(y, pred, labels=list(range(k))).tolist(),
           "confusion_matrix_axes": "rows: true class, columns: predicted class (order of 'classes')"}
    rng = np.random.default_rng(seed)
    acc, ba, am = [], [], []
    for _ in range(int(n_boot)):
        i = rng.integers(0, len(y), len(y))
        acc.append(float((pred[i] == y[i]).mean()))
        ba.append(bacc(y[i], pred[i]))
        am.append(macro(aucs(y[i], proba[i])))
    out.update({"accuracy_ci": _ci(acc), "balanced_accuracy_ci": _ci(ba), "auc_macro_ci": _ci(am),
                "n_boot": int(n_boot)})
    return out


def evaluate_pipeline(pipe, table, n_boot: int = 200, seed: int = 0, horizons=None,
                      predictions: bool = False) -> dict:
    """Evaluate a fitted :class:`~.pipeline.Pipeline` on a table with outcomes.

    ``predictions``: also return the per-subject predictions the metrics were computed from,
    as ``res["predictions"]``: survival {subjects, risk, time, event}; diagnosis {subjects,
    proba, y, classes} (lists), so that a caller (the report) never predicts twice."""
    table.require(pipe.endpoint)
    if pipe.endpoint == "survival":
        risk = pipe.predict_risk(table)
        x = pipe.features(table)
        inp = pipe.model_inputs(table)
        res = survival_report(table.time, table.event, risk,
                              lambda ts: pipe.model.predict_survival(x, np.asarray(ts, float), inp),
                              horizons if horizons is not None else (pipe.horizons() or None),
                              n_boot=n_boot, seed=seed,
                              risk_cutpoints=pipe.training.get("risk_cutpoints"))
        if predictions:
            res["predictions"] = {"subjects": list(table.subjects), "risk": np.asarray(risk).tolist(),
                                  "time": np.asarray(table.time, float).tolist(),
                                  "event": np.asarray(table.event, int).tolist()}
        return res
    y = pipe.target(table)
    proba = pipe.predict_proba(table)
    res = diagnosis_report(y.y, proba, pipe.classes, n_boot=n_boot, seed=seed)
    if predictions:
        res["predictions"] = {"subjects": list(table.subjects), "proba": np.asarray(proba).tolist(),
                              "y": np.asarray(y.y).tolist(), "classes": list(pipe.classes)}
    return res
