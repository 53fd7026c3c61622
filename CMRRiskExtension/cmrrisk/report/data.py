"""What the report reads and computes: cohort descriptions of the manifests, QC reports,
explanation folders, the models (loaded and evaluated, with per-subject predictions), and
performance in subgroups."""

from __future__ import annotations

import base64
import csv
import glob
import json
import math
import os

import numpy as np

from ..errors import CMRRiskError
from ..qcsummary import finite_float
from .figures import km_curves
from .format import MAX_EXPLANATIONS, MAX_SUBGROUP_LEVELS, MIN_SUBGROUP_N, MISSING_TEXT, gnum, pct


# ------------------------------------------------------------------------------ cohorts

def is_missing(v) -> bool:
    return v is None or str(v).strip().lower() in MISSING_TEXT


def describe_manifest(path: str) -> dict:
    """Participants and outcomes of a manifest: counts, follow-up, and a summary of every
    covariate column (numeric: mean, SD, median, quartiles, range; text: counts), with missing
    values per column. ``true_*`` columns (simulation truth) are counted, never summarised."""
    from ..manifest import IMAGE_ROLES, SEG_COLUMNS, read_manifest

    man = read_manifest(path, check_paths=False)
    rows = man.rows
    n = len(rows)
    out = {"path": path, "n": n, "subjects": man.subjects, "columns": list(man.columns),
           "image_roles": {r: sum(1 for x in rows if x.get(r)) for r in IMAGE_ROLES if r in man.columns},
           "reference_segmentations": {c: sum(1 for x in rows if x.get(c)) for c in SEG_COLUMNS
                                       if c in man.columns},
           "truth_columns": [c for c in man.columns if c.startswith("true_")]}
    if "time" in man.columns and "event" in man.columns:
        t = np.array([finite_float(r.get("time")) if not is_missing(r.get("time")) else np.nan for r in rows], float)
        e = np.array([1 if str(r.get("event")).strip() in ("1", "1.0", "True", "true") else 0 for r in rows])
        ok = np.isfinite(t)
        t, e = t[ok], e[ok]
        fu = {"n_with_time": int(ok.sum()), "n_events": int(e.sum()), "n_censored": int((e == 0).sum())}
        if len(t):
            q = np.percentile(t, [0, 25, 50, 75, 100])
            fu.update({"time_min": float(q[0]), "time_q1": float(q[1]), "time_median": float(q[2]),
                       "time_q3": float(q[3]), "time_max": float(q[4])})
            if (e == 0).any():
                from lifelines import KaplanMeierFitter

                rk = KaplanMeierFitter().fit(t, 1 - e).median_survival_time_
                fu["reverse_km_median_follow_up"] = float(rk) if np.isfinite(rk) else None
        out["survival"] = fu
    if "label" in man.columns:
        counts: dict = {}
        for r in rows:
            v = r.get("label", "")
            counts[v or "(missing)"] = counts.get(v or "(missing)", 0) + 1
        out["labels"] = dict(sorted(counts.items()))
    cov = {}
    for c in man.covariate_columns():
        vals = [r.get(c, "") for r in rows]
        miss = sum(1 for v in vals if is_missing(v))
        filled = [v for v in vals if not is_missing(v)]
        nums = [finite_float(v) for v in filled]
        d = {"n": len(filled), "missing": miss}
        if filled and all(x is not None for x in nums):
            a = np.asarray(nums, float)
            q = np.percentile(a, [0, 25, 50, 75, 100])
            d.update({"kind": "numeric", "mean": float(a.mean()), "sd": float(a.std(ddof=1)) if len(a) > 1 else 0.0,
                      "min": float(q[0]), "q1": float(q[1]), "median": float(q[2]), "q3": float(q[3]),
                      "max": float(q[4]), "distinct": int(len(np.unique(a)))})
        elif filled:
            lev: dict = {}
            for v in filled:
                lev[v] = lev.get(v, 0) + 1
            d.update({"kind": "categorical", "levels": dict(sorted(lev.items(), key=lambda kv: (-kv[1], kv[0])))})
        else:
            d["kind"] = "empty"
        cov[c] = d
    out["covariates"] = cov
    out["values"] = {c: [r.get(c, "") for r in rows] for c in man.covariate_columns()}
    return out


def std_mean_diff(a: dict, b: dict):
    """Standardised mean difference of a numeric column between two cohorts."""
    if a.get("kind") != "numeric" or b.get("kind") != "numeric":
        return None
    s = math.sqrt((a["sd"] ** 2 + b["sd"] ** 2) / 2)
    return None if s < 1e-12 else (b["mean"] - a["mean"]) / s


def cov_cell(d: dict | None) -> str:
    if not d:
        return "-"
    if d["kind"] == "numeric":
        return (f"{gnum(d['mean'])} ({gnum(d['sd'])}); median {gnum(d['median'])} [{gnum(d['q1'])}, {gnum(d['q3'])}]; "
                f"range {gnum(d['min'])}-{gnum(d['max'])}")
    if d["kind"] == "categorical":
        levels = list(d["levels"].items())
        shown = ", ".join(f"{k} {pct(v, d['n'])}" for k, v in levels[:8])
        return shown + (f", ... ({len(levels) - 8} more levels)" if len(levels) > 8 else "")
    return "all missing"


def read_qc(path: str) -> dict:
    p = os.path.join(path, "qc.json") if os.path.isdir(path) else path
    if not os.path.isfile(p):
        raise CMRRiskError(f"{path}: no qc.json found; run 'cmrrisk qc MANIFEST --out DIR' and give "
                           "DIR or DIR/qc.json.")
    try:
        with open(p) as f:
            rep = json.load(f)
    except (OSError, ValueError) as exc:
        raise CMRRiskError(f"{p}: not a readable QC report ({exc}); rerun 'cmrrisk qc'.") from exc
    if not isinstance(rep, dict) or "volume" not in rep or "veracity" not in rep:
        raise CMRRiskError(f"{p}: not a CMRRisk QC report (no 'volume' / 'veracity'); rerun 'cmrrisk qc'.")
    rep["_path"] = p
    return rep


def read_explanations(folders: list, max_subjects: int = MAX_EXPLANATIONS) -> dict:
    """Explanation JSON files and their PNG overlays (base64) from ``cmrrisk explain`` folders."""
    items, total = [], 0
    for d in folders:
        if not os.path.isdir(d):
            raise CMRRiskError(f"{d}: explanation folder not found; run 'cmrrisk explain MODEL_DIR "
                               "MANIFEST --subject ID --out DIR' and give DIR.")
        files = sorted(glob.glob(os.path.join(d, "*_explanation.json")))
        if not files:
            raise CMRRiskError(f"{d}: no *_explanation.json files; is this the --out folder of "
                               "'cmrrisk explain'?")
        for fp in files:
            total += 1
            if len(items) >= max_subjects:
                continue
            try:
                with open(fp) as f:
                    js = json.load(f)
            except (OSError, ValueError) as exc:
                raise CMRRiskError(f"{fp}: not a readable explanation ({exc}).") from exc
            pngs = {}
            names = (js.get("files") or {}).get("png") or {}
            if not names:
                subj = str(js.get("subject", ""))
                names = {os.path.basename(p)[len(subj) + 1:-4]: os.path.basename(p)
                         for p in sorted(glob.glob(os.path.join(d, f"{glob.escape(subj)}_*.png")))}
            for col, name in names.items():
                p = os.path.join(d, os.path.basename(name))
                if os.path.isfile(p):
                    with open(p, "rb") as f:
                        pngs[col] = base64.b64encode(f.read()).decode("ascii")
            items.append({"folder": d, "file": fp, "json": js, "png": pngs,
                          "heatmaps": list(((js.get("files") or {}).get("heatmaps") or {}).values())})
    return {"items": items, "total": total}


# ------------------------------------------------------------------------------ models

def read_json(path):
    with open(path) as f:
        return json.load(f)


def load_model_info(model_dir: str) -> dict:
    """The fitted pipeline and what its directory says about it."""
    from ..predict.store import CARD, FEATURES, METRICS, load_pipeline

    if not os.path.isdir(model_dir):
        raise CMRRiskError(f"{model_dir}: model directory not found; train one with 'cmrrisk train "
                           "MANIFEST --endpoint ... --out MODEL_DIR' and pass that folder to --model.")
    pipe = load_pipeline(model_dir)  # verifies checksums and the format
    config = read_json(os.path.join(model_dir, "config.json"))
    metrics_p = os.path.join(model_dir, METRICS)
    metrics = read_json(metrics_p) if os.path.isfile(metrics_p) else None
    feats_p = os.path.join(model_dir, FEATURES)
    sums = read_json(os.path.join(model_dir, "checksums.json"))
    return {"model_dir": model_dir, "pipe": pipe, "config": config, "cv": metrics,
            "feature_names": read_json(feats_p) if os.path.isfile(feats_p) else [],
            "has_card": os.path.isfile(os.path.join(model_dir, CARD)), "checksums": sums,
            "endpoint": pipe.endpoint, "model_name": pipe.model_name,
            "chosen": getattr(pipe.model, "chosen", None), "cv_scores": getattr(pipe.model, "cv_scores", None),
            "uses_inputs": bool(getattr(pipe.model, "uses_inputs", False)),
            "uses_lge": bool(getattr(pipe.model, "uses_lge", False))}


def set_labels(infos: list) -> None:
    base = [os.path.basename(os.path.normpath(i["model_dir"])) or i["model_dir"] for i in infos]
    for i, b in zip(infos, base):
        i["label"] = b if base.count(b) == 1 else os.path.normpath(i["model_dir"])


def check_outcome_columns(manifest: str, endpoint: str, role: str) -> list:
    """The outcome columns ``manifest`` lacks (a test manifest must have them all)."""
    if not os.path.isfile(manifest):
        raise CMRRiskError(f"{manifest}: {role} manifest not found.")
    with open(manifest, newline="", encoding="utf-8-sig") as f:
        header = [c.strip() for c in (next(csv.reader(f), None) or [])]
    need = ("time", "event") if endpoint == "survival" else ("label",)
    missing = [c for c in need if c not in header]
    if missing and role == "test":
        raise CMRRiskError(f"{manifest}: the test manifest lacks the column(s) {', '.join(missing)} "
                           f"that evaluating a {endpoint} model needs; add them, or leave out --test "
                           "(the report then shows the cross-validation results of the model directories).")
    return missing


def evaluate_model(info: dict, manifest: str, n_boot: int, seed: int, cache_dir=None, tables=None) -> dict:
    """Evaluate one model on a manifest with outcomes, exactly as
    :func:`cmrrisk.predict.validation.external_validation`, with the per-subject predictions the
    evaluation returns (for Kaplan-Meier curves, ROC curves and subgroups): the model is used
    as it is, never wrapped or replaced."""
    from ..predict.evaluation import evaluate_pipeline
    from ..predict.tabular import load_table
    from ..predict.validation import needs_image_features

    pipe = info["pipe"]
    imf = needs_image_features(pipe)
    key = (manifest, pipe.endpoint, imf)
    tables = {} if tables is None else tables
    if key not in tables:
        tables[key] = load_table(manifest, pipe.endpoint, need_outcome=True, cache_dir=cache_dir,
                                 image_features=imf)
    table = tables[key]
    try:
        res = evaluate_pipeline(pipe, table, n_boot=n_boot, seed=seed, predictions=True)
    except CMRRiskError as exc:
        raise CMRRiskError(f"{manifest}: cannot evaluate model {info['model_dir']}: {exc}") from exc
    pred = res.pop("predictions")
    res["model_dir"] = info["model_dir"]
    res["manifest"] = manifest
    res["model"] = pipe.model_name
    if pipe.endpoint == "survival":
        from ..predict.validation import oracle_c_index_on

        oracle = oracle_c_index_on(table, manifest)
        if oracle is not None:
            res["c_index_oracle"] = oracle
        res["km_curves"] = km_curves(table.time, table.event, np.asarray(pred["risk"], float),
                                     res["risk_groups"]["cutpoints"])
    res["predictions"] = pred
    return res


def linear_terms(pipe) -> list | None:
    """Coefficients of a linear model (Cox or logistic, or the logistic member of ``auto``) per
    standardised input: [(feature, [coefficients])]; None for other models."""
    m = pipe.model
    names = list(pipe.preprocessor.feature_names)
    if pipe.endpoint == "survival" and m.name == "cox" and hasattr(m, "coef"):
        return [(n, [float(c)]) for n, c in zip(names, np.asarray(m.coef).ravel())]
    if pipe.endpoint == "diagnosis":
        cols = None
        if m.name == "auto" and hasattr(m, "member") and getattr(m.member, "name", "") == "logistic":
            cols = [int(c) for c in np.asarray(m.columns)]
            m = m.member
        if m.name == "logistic" and hasattr(m, "coef"):
            coef = np.asarray(m.coef)
            use = cols if cols is not None else list(range(coef.shape[1]))
            return [(names[j], [float(v) for v in coef[:, i]]) for i, j in enumerate(use)]
    return None


def feature_family(name: str, image_feature: bool) -> str:
    if not image_feature:
        return "manifest covariate"
    if name.startswith("deep_"):
        return "deep image feature"
    if "_original_" in name:
        return "radiomic feature"
    return "clinical index from images"


# ------------------------------------------------------------------------------ subgroups

def subgroup_performance(endpoint, results: dict, desc: dict, qc_rep, n_boot: int, seed: int) -> dict:
    """Per subgroup (levels of categorical manifest columns with 2-6 levels, and the vendor and
    field strength of the QC report): n, events and Harrell's C (survival) or accuracy
    (diagnosis), with percentile bootstrap intervals."""
    from ..predict.evaluation import harrell

    groups = {}
    for c, d in desc["covariates"].items():
        if d["kind"] == "categorical" and 2 <= len(d["levels"]) <= MAX_SUBGROUP_LEVELS:
            groups[c] = list(desc["values"][c])
        elif d["kind"] == "numeric" and 2 <= d.get("distinct", 0) <= 3:
            groups[c] = list(desc["values"][c])
    if qc_rep is not None and qc_rep.get("images"):
        for key, name in (("manufacturer", "vendor (QC)"), ("field_strength_t", "field strength (QC)")):
            vals = []
            for s in desc["subjects"]:
                v = None
                for info in (qc_rep["images"].get(s) or {}).values():
                    if info.get(key) not in (None, ""):
                        v = info[key]
                        break
                vals.append("" if v is None else (f"{v:g} T" if isinstance(v, float) else str(v)))
            lv = {v for v in vals if v}
            if 2 <= len(lv) <= MAX_SUBGROUP_LEVELS:
                groups[name] = vals
    out = {}
    rng_seed = seed
    for label, res in results.items():
        pred = res["predictions"]
        index = {s: k for k, s in enumerate(pred["subjects"])}
        rows = []
        for var, vals in groups.items():
            by_subject = dict(zip(desc["subjects"], vals))
            levels = sorted({v for v in vals if not is_missing(v)})
            for lev in levels:
                idx = np.array([index[s] for s, v in by_subject.items() if v == lev and s in index], int)
                if len(idx) < MIN_SUBGROUP_N:
                    rows.append({"variable": var, "level": lev, "n": int(len(idx)), "note": "too few subjects"})
                    continue
                rng = np.random.default_rng(rng_seed)
                if endpoint == "survival":
                    t = np.asarray(pred["time"])[idx]
                    e = np.asarray(pred["event"])[idx]
                    r = np.asarray(pred["risk"])[idx]
                    row = {"variable": var, "level": lev, "n": int(len(idx)), "n_events": int(e.sum())}
                    if e.sum() < 2:
                        row["note"] = "fewer than 2 events"
                        rows.append(row)
                        continue
                    try:
                        row["c_index_harrell"] = harrell(t, e, r)
                    except (ValueError, ZeroDivisionError):
                        row["note"] = "no comparable pairs"
                        rows.append(row)
                        continue
                    bs = []
                    for _ in range(n_boot):
                        b = rng.integers(0, len(idx), len(idx))
                        if e[b].sum() >= 1 and len(np.unique(t[b])) > 1:
                            try:
                                bs.append(harrell(t[b], e[b], r[b]))
                            except (ValueError, ZeroDivisionError):
                                pass
                else:
                    y = np.asarray(pred["y"])[idx]
                    pr = np.asarray(pred["proba"])[idx].argmax(1)
                    row = {"variable": var, "level": lev, "n": int(len(idx)), "accuracy": float((pr == y).mean())}
                    bs = [float((pr[b] == y[b]).mean()) for b in
                          (rng.integers(0, len(idx), len(idx)) for _ in range(n_boot))]
                key = "c_index_harrell" if endpoint == "survival" else "accuracy"
                row[f"{key}_ci"] = ([float(np.percentile(bs, 2.5)), float(np.percentile(bs, 97.5))]
                                    if len(bs) >= 10 else [None, None])
                rows.append(row)
        out[label] = rows
    return out
