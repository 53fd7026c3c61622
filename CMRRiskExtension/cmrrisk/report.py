"""A TRIPOD+AI-style report of one or several prediction models: ``cmrrisk report``.

:func:`write_report` evaluates every model directory on an optional held-out / external
manifest (the same evaluation as ``cmrrisk evaluate``: :func:`cmrrisk.predict.evaluation.
evaluate_pipeline`, bootstrap 95 % intervals), reads what the model directories, a QC report
(``cmrrisk qc``) and explanation folders (``cmrrisk explain``) already hold, and writes one
self-contained HTML file: every figure is an embedded PNG, nothing is loaded from elsewhere.

Sections follow the items of TRIPOD+AI (Collins et al., BMJ 2024;385:e078378) that software
can fill from the data and the models: data sources and quality control, outcome, predictors,
sample size, missing data, analytical methods (model specification and validation design),
class imbalance, model output, participants, model development, model specification,
performance (discrimination and calibration with intervals, Kaplan-Meier curves by predicted
risk group, ROC curves and confusion matrices), performance in subgroups, explanations,
limitations and software. Items that need the investigators' knowledge (context, objectives,
setting, eligibility, dates, ethics, funding, ...) are listed at the end as "to be completed".

Without a test manifest the report says that only the cross-validation results stored in the
model directories are available, and labels any performance measured on the development data
as *apparent* (optimistic).
"""

from __future__ import annotations

import base64
import csv
import datetime as _dt
import glob
import hashlib
import html
import io
import json
import math
import os

import numpy as np

from .errors import CMRRiskError
from .predict.models.targets import group_names
from .qc import finite_float as _num

#: TRIPOD+AI item labels used as section headings (numbers checked against the 27-item checklist of
#: Collins et al., BMJ 2024;385:e078378: 5 data, 7 data preparation, 8 outcome, 9 predictors, 10 sample
#: size, 11 missing data, 12a-g analytical methods, 13 class imbalance, 14 fairness, 15 model output,
#: 16 training versus evaluation, 18a-f open science, 20a-c participants, 21 model development,
#: 22 model specification, 23a-b performance, 26 limitations)
ITEMS = {
    "summary": "Items 1-2 - Title and abstract (summary)",
    "data": "Item 5 - Source of data",
    "prep": "Item 7 - Data preparation and quality control",
    "outcome": "Item 8 - Outcome",
    "predictors": "Item 9 - Predictors",
    "sample": "Item 10 - Sample size",
    "missing": "Item 11 - Missing data",
    "methods": "Item 12 - Analytical methods: model specification and validation design",
    "imbalance": "Item 13 - Class imbalance",
    "output": "Item 15 - Model output",
    "participants": "Item 20 - Participants",
    "development": "Items 21-22 - Model development and model specification",
    "performance": "Item 23 - Model performance",
    "fairness": "Items 14 and 23 - Performance in subgroups (fairness)",
    "explanations": "Explanations of individual predictions (supports items 15 and 25)",
    "extra": "Additional facts supplied with the report",
    "limitations": "Item 26 - Limitations",
    "software": "Item 18 - Open science: software, versions and model files",
    "todo": "Items the software cannot fill",
}

#: commonly recommended minimum number of events for a validation study
#: (Collins, Ogundimu and Altman, Stat Med 2016;35:214-226)
MIN_VALIDATION_EVENTS = 100
#: traditional rule of thumb of events per candidate predictor parameter for development
#: (a full sample-size calculation: Riley et al., BMJ 2020;368:m441)
MIN_EPV = 10
#: explanation subjects embedded at most (the rest are counted)
MAX_EXPLANATIONS = 12
#: flagged / excluded QC subjects listed at most
MAX_QC_ROWS = 60
#: a categorical column or QC attribute with 2..this many levels defines subgroups
MAX_SUBGROUP_LEVELS = 6
MIN_SUBGROUP_N = 10

_MISSING = ("", "na", "nan", "none", "null")


# ------------------------------------------------------------------------------ formatting

def _fmt(x, spec: str) -> str:
    """``x`` formatted with ``spec``; "n/a" for None or non-finite numbers, text as given."""
    if x is None:
        return "n/a"
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    return format(v, spec) if math.isfinite(v) else "n/a"


def _f(x, nd: int = 3) -> str:
    return _fmt(x, f".{nd}f")


def _g(x) -> str:
    return _fmt(x, ".4g")


def _ci(lo_hi, nd: int = 3) -> str:
    if not lo_hi or lo_hi[0] is None or lo_hi[1] is None:
        return "CI n/a"
    return f"{_f(lo_hi[0], nd)}-{_f(lo_hi[1], nd)}"


def _with_ci(res: dict, key: str, nd: int = 3) -> str:
    if res is None or res.get(key) is None:
        return "n/a"
    ci = res.get(f"{key}_ci")
    return f"{_f(res[key], nd)} ({_ci(ci, nd)})" if ci is not None else _f(res[key], nd)


def _p(p) -> str:
    if p is None:
        return "n/a"
    return "<0.0001" if p < 1e-4 else f"{p:.4f}"


def _pct(k, n) -> str:
    return f"{k} ({100.0 * k / n:.0f} %)" if n else str(k)


class _Html:
    """A small HTML builder; every piece of text goes through :func:`html.escape`."""

    def __init__(self):
        self.parts: list = []
        self.toc: list = []

    def h2(self, key: str, label: str | None = None):
        label = label or ITEMS[key]
        self.toc.append((key, label))
        self.parts.append(f'<h2 id="{html.escape(key)}">{html.escape(label)}</h2>')

    def h3(self, text):
        self.parts.append(f"<h3>{html.escape(str(text))}</h3>")

    def p(self, text, cls: str | None = None):
        c = f' class="{cls}"' if cls else ""
        self.parts.append(f"<p{c}>{html.escape(str(text))}</p>")

    def ul(self, items, cls: str | None = None):
        if not items:
            return
        c = f' class="{cls}"' if cls else ""
        self.parts.append(f"<ul{c}>" + "".join(f"<li>{html.escape(str(i))}</li>" for i in items) + "</ul>")

    def table(self, header, rows, caption: str | None = None):
        if not rows:
            return
        out = ["<table>"]
        if caption:
            out.append(f"<caption>{html.escape(caption)}</caption>")
        if header:
            out.append("<tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in header) + "</tr>")
        for r in rows:
            out.append("<tr>" + "".join(f"<td>{html.escape('' if v is None else str(v))}</td>" for v in r)
                       + "</tr>")
        out.append("</table>")
        self.parts.append("".join(out))

    def kv(self, pairs, caption: str | None = None):
        self.table(None, [(k, v) for k, v in pairs], caption)

    def img(self, b64: str, alt: str, caption: str | None = None):
        cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
        self.parts.append(f'<figure><img src="data:image/png;base64,{b64}" alt="{html.escape(alt)}">'
                          f"{cap}</figure>")

    def render(self, title: str, subtitle: str) -> str:
        toc = "".join(f'<li><a href="#{html.escape(k)}">{html.escape(v)}</a></li>' for k, v in self.toc)
        return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
                f"<h1>{html.escape(title)}</h1>\n<p class=\"sub\">{html.escape(subtitle)}</p>\n"
                f"<nav><ol>{toc}</ol></nav>\n" + "\n".join(self.parts) + "\n</body>\n</html>\n")


_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em;border-bottom:2px solid #345;padding-bottom:.3em}
h2{font-size:1.25em;margin-top:2em;border-bottom:1px solid #bbb;padding-bottom:.2em;color:#234}
h3{font-size:1.05em;margin-top:1.3em;color:#345}
.sub{color:#666;margin-top:-.5em}
nav ol{columns:2;font-size:.9em}
table{border-collapse:collapse;margin:.6em 0 1em;font-size:.9em}
caption{text-align:left;font-weight:600;padding:.2em 0;color:#345}
th,td{border:1px solid #ccc;padding:.25em .55em;text-align:left;vertical-align:top}
th{background:#eef2f6}
tr:nth-child(even) td{background:#fafbfc}
figure{margin:1em 0}
figure img{max-width:100%;border:1px solid #ddd}
figcaption{font-size:.85em;color:#555;max-width:900px}
.note{background:#fff8e1;border-left:4px solid #f0b400;padding:.5em .8em}
.warn{background:#fdecea;border-left:4px solid #d93025;padding:.5em .8em}
ul.lim li{margin-bottom:.3em}
"""


# ------------------------------------------------------------------------------- figures

def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=96, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _figure(w: float, h: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h))
    FigureCanvasAgg(fig)
    return fig


def _label(ax, xlabel: str, ylabel: str, title: str, legend: str | None = None) -> None:
    """Axis labels, a small title and (at ``legend``) a small legend."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    if legend:
        ax.legend(fontsize=7, loc=legend)


def _panel_figure(n: int, width: float, height: float):
    """A figure for ``n`` panels, three per row: (figure, rows, columns)."""
    cols = min(n, 3)
    rows = (n + cols - 1) // cols
    return _figure(width * cols, height * rows), rows, cols


def calibration_figure(entries: list) -> str | None:
    """``entries``: [(label, calibration dict)]; observed vs predicted event probability by bin."""
    entries = [(lab, c) for lab, c in entries if c and c.get("bins")]
    if not entries:
        return None
    fig = _figure(5.2, 5.0)
    ax = fig.add_subplot(1, 1, 1)
    top = max(max(max(b["predicted"], b["observed"]) for b in c["bins"]) for _, c in entries)
    top = min(1.0, max(0.05, top * 1.1))
    ax.plot([0, top], [0, top], color="#999", lw=1, ls="--", label="ideal")
    for lab, c in entries:
        x = [b["predicted"] for b in c["bins"]]
        y = [b["observed"] for b in c["bins"]]
        s = [20 + 3 * b["n"] for b in c["bins"]]
        line, = ax.plot(x, y, "-", lw=1)
        ax.scatter(x, y, s=s, color=line.get_color(), alpha=0.75,
                   label=f"{lab}: slope {_f(c.get('slope'), 2)}, t = {c['horizon']:g}")
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    _label(ax, "predicted event probability (mean per bin)", "observed event probability (1 - Kaplan-Meier)",
           "Calibration by predicted-risk bins", "upper left")
    return _png(fig)


def km_curves(time, event, risk, cutpoints) -> list:
    """Kaplan-Meier step curves (with 95 % pointwise intervals) of the subjects in each predicted
    risk group (``risk`` split at ``cutpoints``, low to high)."""
    from lifelines import KaplanMeierFitter

    time, event, risk = np.asarray(time, float), np.asarray(event, int), np.asarray(risk, float)
    g = np.searchsorted(np.asarray(cutpoints, float), risk, side="right")
    names = group_names(len(cutpoints) + 1)
    out = []
    for k, name in enumerate(names):
        m = g == k
        if not m.any():
            out.append({"group": k, "name": name, "n": 0, "n_events": 0})
            continue
        km = KaplanMeierFitter().fit(time[m], event[m])
        sf = km.survival_function_
        ci = km.confidence_interval_
        out.append({"group": k, "name": name, "n": int(m.sum()), "n_events": int(event[m].sum()),
                    "times": [float(t) for t in sf.index], "survival": [float(v) for v in sf.iloc[:, 0]],
                    "lower": [float(v) for v in ci.iloc[:, 0]], "upper": [float(v) for v in ci.iloc[:, 1]],
                    "censored": [float(t) for t in time[m][event[m] == 0]],
                    "subject_index": [int(i) for i in np.flatnonzero(m)]})
    return out


def at_risk_table(time, risk, cutpoints, at) -> list:
    time = np.asarray(time, float)
    g = np.searchsorted(np.asarray(cutpoints, float), np.asarray(risk, float), side="right")
    names = group_names(len(cutpoints) + 1)
    return [[name] + [int(np.sum((g == k) & (time >= t))) for t in at] for k, name in enumerate(names)]


def km_figure(panels: list) -> str | None:
    """``panels``: [(label, curves from :func:`km_curves`, log-rank p)]: one panel per model."""
    panels = [p for p in panels if p[1]]
    if not panels:
        return None
    fig, rows, cols = _panel_figure(len(panels), 4.6, 3.8)
    colours = ["#2b8a3e", "#e8a317", "#c92a2a", "#1864ab", "#862e9c"]
    for i, (lab, curves, p) in enumerate(panels):
        ax = fig.add_subplot(rows, cols, i + 1)
        for c in curves:
            if not c["n"]:
                continue
            col = colours[c["group"] % len(colours)] if len(curves) <= 3 else None
            t, s = c["times"], c["survival"]
            line, = ax.step(t, s, where="post", color=col, lw=1.6,
                            label=f"{c['name']} (n {c['n']}, {c['n_events']} events)")
            ax.fill_between(t, c["lower"], c["upper"], step="post", color=line.get_color(), alpha=0.12)
            if c["censored"]:
                cs = np.asarray(c["censored"])
                sv = np.asarray(s)[np.clip(np.searchsorted(t, cs, side="right") - 1, 0, len(s) - 1)]
                ax.plot(cs, sv, "|", color=line.get_color(), ms=6)
        ax.set_ylim(0, 1.02)
        _label(ax, "time (cohort's unit)", "event-free probability", f"{lab}: log-rank p {_p(p)}",
               "lower left")
    fig.tight_layout()
    return _png(fig)


def roc_figure(panels: list) -> str | None:
    """``panels``: [(label, y (class indices), proba (n, k), classes, {class: AUC})]: one-vs-rest
    ROC curves."""
    from sklearn.metrics import roc_curve

    if not panels:
        return None
    fig, rows, cols = _panel_figure(len(panels), 4.4, 4.2)
    for i, (lab, y, proba, classes, aucs) in enumerate(panels):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.plot([0, 1], [0, 1], color="#999", lw=1, ls="--")
        for j, c in enumerate(classes):
            pos = np.asarray(y) == j
            if 0 < pos.sum() < len(pos):
                fpr, tpr, _ = roc_curve(pos, np.asarray(proba)[:, j])
                ax.plot(fpr, tpr, lw=1.5, label=f"{c} (AUC {_f((aucs or {}).get(str(c)))})")
        _label(ax, "1 - specificity", "sensitivity", f"{lab}: ROC (one class vs rest)", "lower right")
    fig.tight_layout()
    return _png(fig)


def confusion_figure(panels: list) -> str | None:
    """``panels``: [(label, confusion matrix (rows true), classes)]."""
    if not panels:
        return None
    fig, rows, cols = _panel_figure(len(panels), 4.0, 3.8)
    for i, (lab, cm, classes) in enumerate(panels):
        ax = fig.add_subplot(rows, cols, i + 1)
        cm = np.asarray(cm)
        ax.imshow(cm, cmap="Blues")
        for a in range(cm.shape[0]):
            for b in range(cm.shape[1]):
                ax.text(b, a, str(cm[a, b]), ha="center", va="center",
                        color="white" if cm[a, b] > cm.max() / 2 else "black", fontsize=9)
        ax.set_xticks(range(len(classes)))
        ax.set_xticklabels(classes, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(classes)))
        ax.set_yticklabels(classes, fontsize=8)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(lab, fontsize=9)
    fig.tight_layout()
    return _png(fig)


# ------------------------------------------------------------------------------ cohorts

def _is_missing(v) -> bool:
    return v is None or str(v).strip().lower() in _MISSING


def describe_manifest(path: str) -> dict:
    """Participants and outcomes of a manifest: counts, follow-up, and a summary of every
    covariate column (numeric: mean, SD, median, quartiles, range; text: counts), with missing
    values per column. ``true_*`` columns (simulation truth) are counted, never summarised."""
    from .manifest import IMAGE_ROLES, SEG_COLUMNS, read_manifest

    man = read_manifest(path, check_paths=False)
    rows = man.rows
    n = len(rows)
    out = {"path": path, "n": n, "subjects": man.subjects, "columns": list(man.columns),
           "image_roles": {r: sum(1 for x in rows if x.get(r)) for r in IMAGE_ROLES if r in man.columns},
           "reference_segmentations": {c: sum(1 for x in rows if x.get(c)) for c in SEG_COLUMNS
                                       if c in man.columns},
           "truth_columns": [c for c in man.columns if c.startswith("true_")]}
    if "time" in man.columns and "event" in man.columns:
        t = np.array([_num(r.get("time")) if not _is_missing(r.get("time")) else np.nan for r in rows], float)
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
        miss = sum(1 for v in vals if _is_missing(v))
        filled = [v for v in vals if not _is_missing(v)]
        nums = [_num(v) for v in filled]
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


def _smd(a: dict, b: dict):
    """Standardised mean difference of a numeric column between two cohorts."""
    if a.get("kind") != "numeric" or b.get("kind") != "numeric":
        return None
    s = math.sqrt((a["sd"] ** 2 + b["sd"] ** 2) / 2)
    return None if s < 1e-12 else (b["mean"] - a["mean"]) / s


def _cov_cell(d: dict | None) -> str:
    if not d:
        return "-"
    if d["kind"] == "numeric":
        return (f"{_g(d['mean'])} ({_g(d['sd'])}); median {_g(d['median'])} [{_g(d['q1'])}, {_g(d['q3'])}]; "
                f"range {_g(d['min'])}-{_g(d['max'])}")
    if d["kind"] == "categorical":
        levels = list(d["levels"].items())
        shown = ", ".join(f"{k} {_pct(v, d['n'])}" for k, v in levels[:8])
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

class _Memo:
    """Wraps a fitted model so that repeated predictions on the same inputs are computed once
    (the evaluation and the report's own figures ask for the same predictions)."""

    def __init__(self, inner):
        self.inner = inner
        self._cache: dict = {}

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def _key(self, name, x, inputs, times=None):
        a = np.ascontiguousarray(np.asarray(x))
        h = hashlib.sha1(a.tobytes()).hexdigest() + str(a.shape)
        t = "" if times is None else hashlib.sha1(np.asarray(times, float).tobytes()).hexdigest()
        return name, h, id(inputs), t

    def _get(self, key, fn):
        if key not in self._cache:
            self._cache[key] = np.asarray(fn())
        return self._cache[key].copy()

    def predict_risk(self, x, inputs=None):
        return self._get(self._key("risk", x, inputs), lambda: self.inner.predict_risk(x, inputs))

    def predict_survival(self, x, times, inputs=None):
        return self._get(self._key("surv", x, inputs, times), lambda: self.inner.predict_survival(x, times, inputs))

    def predict_proba(self, x, inputs=None):
        return self._get(self._key("proba", x, inputs), lambda: self.inner.predict_proba(x, inputs))


def _read_json(path):
    with open(path) as f:
        return json.load(f)


def load_model_info(model_dir: str) -> dict:
    """The fitted pipeline and what its directory says about it."""
    from .predict.store import CARD, FEATURES, METRICS, load_pipeline

    if not os.path.isdir(model_dir):
        raise CMRRiskError(f"{model_dir}: model directory not found; train one with 'cmrrisk train "
                           "MANIFEST --endpoint ... --out MODEL_DIR' and pass that folder to --model.")
    pipe = load_pipeline(model_dir)  # verifies checksums and the format
    config = _read_json(os.path.join(model_dir, "config.json"))
    metrics_p = os.path.join(model_dir, METRICS)
    metrics = _read_json(metrics_p) if os.path.isfile(metrics_p) else None
    feats_p = os.path.join(model_dir, FEATURES)
    sums = _read_json(os.path.join(model_dir, "checksums.json"))
    return {"model_dir": model_dir, "pipe": pipe, "config": config, "cv": metrics,
            "feature_names": _read_json(feats_p) if os.path.isfile(feats_p) else [],
            "has_card": os.path.isfile(os.path.join(model_dir, CARD)), "checksums": sums,
            "endpoint": pipe.endpoint, "model_name": pipe.model_name,
            "chosen": getattr(pipe.model, "chosen", None), "cv_scores": getattr(pipe.model, "cv_scores", None),
            "uses_inputs": bool(getattr(pipe.model, "uses_inputs", False)),
            "uses_lge": bool(getattr(pipe.model, "uses_lge", False))}


def _labels(infos: list) -> None:
    base = [os.path.basename(os.path.normpath(i["model_dir"])) or i["model_dir"] for i in infos]
    for i, b in zip(infos, base):
        i["label"] = b if base.count(b) == 1 else os.path.normpath(i["model_dir"])


def _check_outcome_columns(manifest: str, endpoint: str, role: str) -> list:
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
    :func:`cmrrisk.predict.validation.external_validation`, and keep the per-subject predictions
    (for Kaplan-Meier curves, ROC curves and subgroups)."""
    from .predict.evaluation import evaluate_pipeline
    from .predict.tabular import load_table
    from .predict.validation import needs_image_features

    pipe = info["pipe"]
    imf = needs_image_features(pipe)
    key = (manifest, pipe.endpoint, imf)
    tables = {} if tables is None else tables
    if key not in tables:
        tables[key] = load_table(manifest, pipe.endpoint, need_outcome=True, cache_dir=cache_dir,
                                 image_features=imf)
    table = tables[key]
    memo = _Memo(pipe.model)
    pipe.model = memo
    try:
        try:
            res = evaluate_pipeline(pipe, table, n_boot=n_boot, seed=seed)
        except CMRRiskError as exc:
            raise CMRRiskError(f"{manifest}: cannot evaluate model {info['model_dir']}: {exc}") from exc
        res["model_dir"] = info["model_dir"]
        res["manifest"] = manifest
        res["model"] = pipe.model_name
        if pipe.endpoint == "survival":
            from .predict.validation import oracle_c_index_on

            oracle = oracle_c_index_on(table, manifest)
            if oracle is not None:
                res["c_index_oracle"] = oracle
        pred = {"subjects": list(table.subjects)}
        if pipe.endpoint == "survival":
            risk = pipe.predict_risk(table)
            pred.update({"risk": risk.tolist(), "time": np.asarray(table.time, float).tolist(),
                         "event": np.asarray(table.event, int).tolist()})
            cut = res["risk_groups"]["cutpoints"]
            res["km_curves"] = km_curves(table.time, table.event, risk, cut)
        else:
            proba = pipe.predict_proba(table)
            y = pipe.target(table).y
            pred.update({"proba": np.asarray(proba).tolist(), "y": np.asarray(y).tolist(),
                         "classes": list(pipe.classes)})
        res["predictions"] = pred
    finally:
        pipe.model = memo.inner
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


def _feature_family(name: str, image_feature: bool) -> str:
    if not image_feature:
        return "manifest covariate"
    if name.startswith("deep_"):
        return "deep image feature"
    if "_original_" in name:
        return "radiomic feature"
    return "clinical index from images"


# -------------------------------------------------------------------------- limitations

def limitations(endpoint, infos, test_res, apparent_res, test_desc, train_desc, overlap, qc, extra,
                qc_in_manifests, has_test) -> list:
    """Honest, automatically derived limitations (each one sentence)."""
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
                out.append(f"{label}: the 95 % interval of Harrell's C is wide ({_ci(ci)}).")
            if ci[0] is not None and ci[0] <= 0.5:
                out.append(f"{label}: the lower 95 % bound of Harrell's C is {_f(ci[0])}; discrimination is not "
                           "distinguishable from chance.")
            cal = res.get("calibration") or {}
            slope = cal.get("slope")
            if cal and slope is None:
                out.append(f"{label}: the calibration slope could not be estimated.")
            elif slope is not None and not 0.8 <= slope <= 1.2:
                out.append(f"{label}: calibration slope {_f(slope, 2)} at t = {cal['horizon']:g} "
                           + ("(< 1: predictions too extreme, a sign of overfitting)." if slope < 1
                              else "(> 1: predictions too moderate)."))
            if cal and cal.get("predicted_overall"):
                oe = cal["observed_overall"] / cal["predicted_overall"]
                if not 0.8 <= oe <= 1.25:
                    out.append(f"{label}: observed/expected event probability at t = {cal['horizon']:g} is "
                               f"{oe:.2f} (observed {_f(cal['observed_overall'])}, predicted "
                               f"{_f(cal['predicted_overall'])}): calibration-in-the-large is off.")
            p = (res.get("risk_groups") or {}).get("logrank_p")
            if p is not None and p >= 0.05:
                out.append(f"{label}: the Kaplan-Meier curves of the predicted risk groups do not differ "
                           f"significantly (log-rank p {_p(p)}).")
        else:
            counts = [v for v in (res.get("class_counts") or {}).values()]
            if counts and min(counts) < 10:
                out.append(f"{label}: the smallest class of the test data has {min(counts)} subject(s); per-class "
                           "measures are unreliable.")
            ci = res.get("balanced_accuracy_ci") or [None, None]
            if ci[0] is not None and ci[1] - ci[0] > 0.15:
                out.append(f"{label}: the 95 % interval of the balanced accuracy is wide ({_ci(ci)}).")
            missing_auc = [c for c, a in (res.get("auc_per_class") or {}).items() if a is None]
            if missing_auc:
                out.append(f"{label}: no AUC for class(es) {', '.join(missing_auc)} (absent or alone in the "
                           "test data).")
    for i in infos:
        epv = i.get("epv")
        if epv is not None and epv < MIN_EPV:
            out.append(f"{i['label']}: {_f(epv, 1)} events per candidate predictor parameter in development "
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


# ------------------------------------------------------------------------------ report

def write_report(out_html: str, models, train_manifest: str | None = None, test_manifest: str | None = None,
                 qc: str | None = None, explanations=None, extra: dict | None = None, title: str | None = None,
                 n_boot: int = 200, seed: int = 0, cache_dir: str | None = None, apparent: bool | None = None,
                 max_explanations: int = MAX_EXPLANATIONS, progress=print,
                 model_manifests: dict | None = None) -> dict:
    """Write a self-contained TRIPOD+AI-style HTML report of ``models`` and return what it computed.

    ``models``: one model directory or a list of them (same endpoint); ``train_manifest``: the
    development data (described; optional); ``test_manifest``: held-out or external data with
    outcomes on which every model is evaluated (optional); ``qc``: a ``qc.json`` or its folder;
    ``explanations``: ``cmrrisk explain`` output folders; ``extra``: facts to show, e.g.
    ``{"data_source": "...", "synthetic": True, "metrics": {...}, "notes": [...]}``;
    ``apparent``: also evaluate on ``train_manifest`` (labelled apparent / optimistic; default:
    only when there is no test manifest); ``model_manifests``: ``{model_dir: {"train": path,
    "test": path}}`` for a model that reads other columns of the same subjects (e.g. a
    features table) than ``train_manifest`` / ``test_manifest``; it is evaluated on those.

    Returns a dict: ``endpoint``, ``models`` (per model: label, directory, name, chosen sub-model,
    cross-validation metrics, ``test`` and ``apparent`` metrics with per-subject predictions and
    Kaplan-Meier curves), ``figures`` (name -> base64 PNG), ``limitations``, ``train`` / ``test``
    (cohort descriptions), ``qc`` (summary) and ``html`` (the path written).
    """
    from . import __version__
    from .modeldir import write_text_atomic

    say = progress or (lambda *a, **k: None)
    if isinstance(models, (str, os.PathLike)):
        models = [models]
    models = [os.fspath(m) for m in (models or [])]
    if not models:
        raise CMRRiskError("give at least one model directory (--model DIR).")
    if isinstance(explanations, (str, os.PathLike)):
        explanations = [explanations]
    explanations = [os.fspath(e) for e in (explanations or [])]
    extra = dict(extra or {})
    if n_boot < 0:
        raise CMRRiskError(f"--bootstrap {n_boot}: give 0 or more resamples.")

    infos = [load_model_info(m) for m in models]
    endpoints = {i["endpoint"] for i in infos}
    if len(endpoints) > 1:
        raise CMRRiskError("models of different endpoints cannot share one report: "
                           + ", ".join(f"{i['model_dir']} ({i['endpoint']})" for i in infos)
                           + "; make one report per endpoint.")
    endpoint = infos[0]["endpoint"]
    _labels(infos)
    if endpoint == "diagnosis":
        cls = {tuple(i["pipe"].classes or []) for i in infos}
        if len(cls) > 1:
            raise CMRRiskError("diagnosis models with different classes cannot share one report: "
                               + ", ".join(f"{i['model_dir']} ({', '.join(i['pipe'].classes)})" for i in infos) + ".")
    dev_missing = []
    if train_manifest:
        train_manifest = os.fspath(train_manifest)
        dev_missing = _check_outcome_columns(train_manifest, endpoint, "development")
    if test_manifest:
        test_manifest = os.fspath(test_manifest)
        _check_outcome_columns(test_manifest, endpoint, "test")
    qc_rep = read_qc(os.fspath(qc)) if qc else None
    expl = read_explanations(explanations, max_explanations) if explanations else {"items": [], "total": 0}
    has_test = bool(test_manifest)
    if apparent is None:
        apparent = not has_test
    apparent = bool(apparent and train_manifest)
    if dev_missing and apparent:
        raise CMRRiskError(f"{train_manifest}: the development manifest lacks the column(s) {', '.join(dev_missing)} "
                           f"that apparent performance of a {endpoint} model needs; add them, or give --test "
                           "(the development manifest is then only described).")

    train_desc = describe_manifest(train_manifest) if train_manifest else None
    test_desc = describe_manifest(test_manifest) if test_manifest else None
    overlap = len(set(train_desc["subjects"]) & set(test_desc["subjects"])) if train_desc and test_desc else 0

    # ---------------------------------------------------------------- evaluation
    tables: dict = {}
    test_res, app_res = {}, {}
    own = {os.path.normpath(os.fspath(k)): v for k, v in (model_manifests or {}).items()}
    for i in infos:
        mine = own.get(os.path.normpath(i["model_dir"]), {})
        test_i, train_i = mine.get("test") or test_manifest, mine.get("train") or train_manifest
        if has_test:
            if mine.get("test"):
                _check_outcome_columns(test_i, endpoint, "test")
            say(f"report: evaluating {i['label']} on {test_i} ({n_boot} bootstrap resamples)")
            test_res[i["label"]] = evaluate_model(i, test_i, n_boot, seed, cache_dir, tables)
        if apparent:
            say(f"report: apparent performance of {i['label']} on {train_i}")
            app_res[i["label"]] = evaluate_model(i, train_i, n_boot, seed, cache_dir, tables)
        tr = i["config"].get("training") or {}
        i["dev_n"] = tr.get("n")
        pre = i["pipe"].preprocessor.params
        i["n_candidates"] = len(pre.get("expanded") or pre.get("columns") or [])
        i["n_kept"] = len(pre.get("selected") or [])
        if endpoint == "survival":
            dev_events = tr.get("n_events")
        else:
            cc = tr.get("class_counts") or {}
            dev_events = min(cc.values()) if cc else None
        i["dev_events"] = dev_events
        i["epv"] = dev_events / i["n_candidates"] if dev_events is not None and i["n_candidates"] else None

    qc_in = {}
    if qc_rep is not None:
        excl = {s["subject"] for s in qc_rep["veracity"].get("subjects", []) if s.get("status") == "exclude"}
        for role, d in (("development", train_desc), ("test", test_desc)):
            if d:
                qc_in[role] = sorted(excl & set(d["subjects"]))

    lims = limitations(endpoint, infos, test_res, app_res, test_desc, train_desc, overlap, qc_rep, extra,
                       qc_in, has_test)
    if dev_missing:
        lims.append(f"The development manifest ({os.path.basename(train_manifest)}) has no "
                    f"{', '.join(dev_missing)} column(s): its outcomes are not described.")

    # ---------------------------------------------------------------- figures
    figs = {}
    for tag, results in (("test", test_res), ("apparent", app_res)):
        if not results:
            continue
        if endpoint == "survival":
            f = calibration_figure([(lab, r.get("calibration")) for lab, r in results.items()])
            if f:
                figs[f"calibration_{tag}"] = f
            f = km_figure([(lab, r.get("km_curves"), r["risk_groups"].get("logrank_p"))
                           for lab, r in results.items()])
            if f:
                figs[f"km_{tag}"] = f
        else:
            f = roc_figure([(lab, r["predictions"]["y"], r["predictions"]["proba"], r["classes"],
                             r.get("auc_per_class"))
                            for lab, r in results.items()])
            if f:
                figs[f"roc_{tag}"] = f
            f = confusion_figure([(lab, r["confusion_matrix"], r["classes"]) for lab, r in results.items()])
            if f:
                figs[f"confusion_{tag}"] = f

    subgroups = {}
    sub_src = test_res or app_res
    sub_desc = test_desc if test_res else train_desc
    if sub_src and sub_desc:
        subgroups = subgroup_performance(endpoint, sub_src, sub_desc, qc_rep, min(n_boot, 200), seed)

    # ---------------------------------------------------------------- html
    kind = "prognostic (time-to-event)" if endpoint == "survival" else "diagnostic"
    if not title:
        title = (f"{'Development and evaluation' if has_test else 'Development'} of {len(infos)} {kind} "
                 f"model{'s' if len(infos) > 1 else ''} ({', '.join(i['label'] for i in infos)}): TRIPOD+AI report")
    now = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    H = _Html()
    _section_summary(H, endpoint, infos, test_res, app_res, train_desc, test_desc, lims, has_test)
    _section_data(H, extra, train_manifest, test_manifest, train_desc, test_desc, qc_rep, infos)
    _section_prep(H, qc_rep, infos, qc_in)
    _section_outcome(H, endpoint, infos, train_desc, test_desc)
    _section_predictors(H, infos)
    _section_sample(H, endpoint, infos, test_res, test_desc)
    _section_missing(H, train_desc, test_desc)
    _section_methods(H, endpoint, infos, has_test, test_manifest, test_desc, train_desc, overlap, apparent,
                     n_boot, seed)
    if endpoint == "diagnosis":
        _section_imbalance(H, infos, train_desc, test_desc)
    _section_output(H, endpoint, infos)
    _section_participants(H, endpoint, train_desc, test_desc, qc_rep, qc_in)
    _section_development(H, endpoint, infos)
    _section_performance(H, endpoint, infos, test_res, app_res, figs, has_test)
    if subgroups:
        _section_subgroups(H, endpoint, subgroups, bool(test_res))
    _section_explanations(H, expl)
    if extra:
        _section_extra(H, extra)
    H.h2("limitations")
    H.ul(lims, cls="lim")
    _section_software(H, infos, __version__)
    _section_todo(H)
    text = H.render(title, f"Generated by CMRRisk {__version__} on {now} with 'cmrrisk report'. "
                           "Research software; not a medical device.")
    write_text_atomic(os.fspath(out_html), text)
    say(f"report written: {out_html}")

    def strip(info):
        return {k: v for k, v in info.items() if k not in ("pipe",)}

    return {"html": os.fspath(out_html), "endpoint": endpoint, "title": title,
            "models": [{**strip(i), "test": test_res.get(i["label"]), "apparent": app_res.get(i["label"])}
                       for i in infos],
            "figures": figs, "limitations": lims, "subgroups": subgroups,
            "train": _public_desc(train_desc), "test": _public_desc(test_desc),
            "qc": None if qc_rep is None else {"path": qc_rep["_path"], "volume": qc_rep.get("volume"),
                                               "check_counts": qc_rep["veracity"].get("check_counts")},
            "explanations": {"total": expl["total"], "shown": len(expl["items"])},
            "overlap_subjects": overlap}


def _public_desc(d):
    if d is None:
        return None
    return {k: v for k, v in d.items() if k not in ("values",)}


# ------------------------------------------------------------------------------ subgroups

def subgroup_performance(endpoint, results: dict, desc: dict, qc_rep, n_boot: int, seed: int) -> dict:
    """Per subgroup (levels of categorical manifest columns with 2-6 levels, and the vendor and
    field strength of the QC report): n, events and Harrell's C (survival) or accuracy
    (diagnosis), with percentile bootstrap intervals."""
    from .predict.evaluation import harrell

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
            levels = sorted({v for v in vals if not _is_missing(v)})
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


# ------------------------------------------------------------------------------ sections

def _section_summary(H, endpoint, infos, test_res, app_res, train_desc, test_desc, lims, has_test):
    H.h2("summary")
    items = []
    if endpoint == "survival":
        items.append("Endpoint: time to event (columns 'time' and 'event'); prognostic models.")
    else:
        items.append(f"Endpoint: diagnosis (column 'label'); classes {', '.join(infos[0]['pipe'].classes or [])}.")
    for i in infos:
        tr = i["config"].get("training") or {}
        ev = f", {tr['n_events']} events" if "n_events" in tr else ""
        ch = f" (chose {'+'.join(i['chosen'])})" if i.get("chosen") else ""
        items.append(f"Model {i['label']}: {i['model_name']}{ch}; developed on {tr.get('n', '?')} subjects"
                     f"{f' ({ev[2:]})' if ev else ''} from {tr.get('manifest', '?')}.")
    if has_test:
        d = test_desc
        ev = f", {d['survival']['n_events']} events" if d and d.get("survival") else ""
        items.append(f"Evaluation on held-out data {os.path.basename(test_desc['path'])} ({d['n']} subjects{ev}).")
        for lab, r in test_res.items():
            if endpoint == "survival":
                items.append(f"{lab}: Harrell's C {_with_ci(r, 'c_index_harrell')}, Uno's C "
                             f"{_with_ci(r, 'c_index_uno')}, integrated Brier score {_with_ci(r, 'integrated_brier')}"
                             f", calibration slope {_f((r.get('calibration') or {}).get('slope'), 2)} (test data).")
            else:
                items.append(f"{lab}: accuracy {_with_ci(r, 'accuracy')}, balanced accuracy "
                             f"{_with_ci(r, 'balanced_accuracy')}, macro AUC {_with_ci(r, 'auc_macro')} (test data).")
    else:
        H.p("No held-out or external test data were given: only the cross-validation results stored in the model "
            "directories are available" + (", and the apparent performance on the development data, which is "
                                           "optimistic." if app_res else "."), cls="warn")
        for i in infos:
            s = (i.get("cv") or {}).get("summary") or {}
            if s:
                items.append(f"{i['label']}: {i['cv'].get('k')}-fold cross-validation: " + ", ".join(
                    f"{k} {_f(v['mean'])} (SD {_f(v['sd'])})" for k, v in s.items()) + ".")
            else:
                items.append(f"{i['label']}: no cross-validation results in the model directory "
                             "(trained with --cv 0).")
        for lab, r in app_res.items():
            key, name = (("c_index_harrell", "Harrell's C") if endpoint == "survival"
                         else ("balanced_accuracy", "balanced accuracy"))
            items.append(f"{lab}: APPARENT {name} on the development data {_with_ci(r, key)} (optimistic).")
    H.ul(items)
    if lims:
        H.p("Main limitations: " + " ".join(lims[:3]), cls="note")


def _section_data(H, extra, train_manifest, test_manifest, train_desc, test_desc, qc_rep, infos):
    H.h2("data")
    if extra.get("data_source"):
        H.p(extra["data_source"])
    rows = []
    if train_desc:
        rows.append(("development manifest", f"{train_manifest} ({train_desc['n']} subjects)"))
    for i in infos:
        tr = i["config"].get("training") or {}
        rows.append((f"training data of {i['label']} (model config)",
                     f"{tr.get('manifest', '?')} ({tr.get('n', '?')} subjects)"))
    if test_desc:
        rows.append(("test manifest", f"{test_manifest} ({test_desc['n']} subjects)"))
    if qc_rep is not None:
        rows.append(("quality-control report", f"{qc_rep['_path']} (manifest {qc_rep.get('manifest', '?')})"))
    for d, role in ((train_desc, "development"), (test_desc, "test")):
        if d and d["image_roles"]:
            rows.append((f"images in the {role} manifest",
                         ", ".join(f"{k} {v}" for k, v in d["image_roles"].items())))
        if d and d["reference_segmentations"]:
            rows.append((f"reference segmentations ({role})",
                         ", ".join(f"{k} {v}" for k, v in d["reference_segmentations"].items())))
    H.kv(rows)
    if qc_rep is not None:
        var = qc_rep.get("variety") or {}
        vr = [(name, ", ".join(f"{k} {v}" for k, v in (var.get(key) or {}).items()) or "-")
              for key, name in (("manufacturer", "vendor (per subject)"), ("field_strength", "field strength"),
                                ("sequence", "sequence"))]
        H.table(["", "subjects"], vr, "Variety of the imaging data (from the QC report)")
        prow = []
        for role, d in (var.get("per_role") or {}).items():
            def rng(x, unit=""):
                return "n/a" if not x else f"{_g(x['min'])} / {_g(x['median'])} / {_g(x['max'])}{unit}"
            prow.append((role, d.get("n_images"), rng(d.get("in_plane_mm"), " mm"),
                         rng(d.get("slice_spacing_mm"), " mm"),
                         rng(d.get("slice_thickness_mm"), " mm"), rng(d.get("n_slices")), rng(d.get("n_phases"))))
        H.table(["image role", "images", "in-plane (min/median/max)", "slice spacing", "slice thickness",
                 "slices", "phases"], prow, "Acquisition parameters per image role")
    H.p("Key dates (accrual, end of follow-up), setting and centres are not recorded in the manifests: "
        "give them in the text of the report (see the last section).")


def _section_prep(H, qc_rep, infos, qc_in):
    H.h2("prep")
    if qc_rep is None:
        H.p("No quality-control report was given (run 'cmrrisk qc MANIFEST --out DIR' and pass --qc DIR).",
            cls="note")
    else:
        v = qc_rep.get("volume") or {}
        st = v.get("status") or {}
        n = v.get("n_subjects", 0)
        H.p(f"Quality control (volume, variety, veracity checks) of {n} subjects: {_pct(st.get('ok', 0), n)} ok, "
            f"{_pct(st.get('flag', 0), n)} flagged (usable with care), {_pct(st.get('exclude', 0), n)} excluded "
            "(unusable).")
        cc = (qc_rep["veracity"].get("check_counts") or {})
        H.table(["severity", "check", "occurrences"],
                [(k.split(":", 1)[0], k.split(":", 1)[-1], n_) for k, n_ in cc.items()],
                "Checks that fired (all subjects)")
        bad = [s for s in qc_rep["veracity"].get("subjects", []) if s.get("status") != "ok"]
        rows = []
        for s in bad[:MAX_QC_ROWS]:
            rows.append((s["subject"], s["status"], "; ".join(
                f"[{c.get('severity')}] {(c.get('role') + ': ') if c.get('role') else ''}{c.get('code')}: "
                f"{c.get('message')}"
                for c in s.get("checks", []))))
        H.table(["subject", "status", "reasons"], rows, "Flagged and excluded subjects")
        if len(bad) > MAX_QC_ROWS:
            H.p(f"... and {len(bad) - MAX_QC_ROWS} more (see {qc_rep['_path']}).")
        for role, subs in qc_in.items():
            if subs:
                H.p(f"{len(subs)} QC-excluded subject(s) are in the {role} manifest and were analysed: "
                    + ", ".join(subs[:20]), cls="warn")
        th = qc_rep.get("thresholds")
        if th:
            H.p("QC thresholds: " + "; ".join(f"{k} {v}" for k, v in th.items() if k != "PLAUSIBLE") + ".")
    H.h3("Preprocessing of the model inputs")
    H.ul(["Covariates: numeric columns as numbers, text columns as categories (one-hot, first level dropped).",
          "Median imputation of missing values, removal of constant columns, optional univariate selection and "
          "standardisation, all fitted on the training subjects only (inside every cross-validation fold).",
          "Image features (when the model uses them): clinical indices, radiomic and deep features computed by "
          "'cmrrisk features' from the segmentations; image networks read the cine frames directly."])


def _section_outcome(H, endpoint, infos, train_desc, test_desc):
    H.h2("outcome")
    if endpoint == "survival":
        H.p("Time to event: 'time' is the follow-up time in the cohort's unit, 'event' 1 when the event was "
            "observed and 0 when follow-up ended without it (censored). How and when the outcome was assessed, "
            "and whether assessors were blinded to the predictors, is not known to the software.")
        rows = []
        for role, d in (("development", train_desc), ("test", test_desc)):
            s = (d or {}).get("survival")
            if s:
                rows.append((role, d["n"], _pct(s["n_events"], s["n_with_time"]), s["n_censored"],
                             f"{_g(s.get('time_median'))} [{_g(s.get('time_q1'))}, {_g(s.get('time_q3'))}]",
                             f"{_g(s.get('time_min'))}-{_g(s.get('time_max'))}",
                             _g(s.get("reverse_km_median_follow_up"))))
        if not rows:
            for i in infos:
                tr = i["config"].get("training") or {}
                rows.append((f"training of {i['label']}", tr.get("n"), tr.get("n_events"), "n/a",
                             _g(tr.get("time_median")), f"{_g(tr.get('time_min'))}-{_g(tr.get('time_max'))}", "n/a"))
        H.table(["data", "subjects", "events", "censored", "time: median [IQR]", "time: range",
                 "median follow-up (reverse Kaplan-Meier)"], rows)
    else:
        H.p("Diagnostic label in the column 'label'. How the reference diagnosis was made is not known to the "
            "software.")
        rows = []
        for role, d in (("development", train_desc), ("test", test_desc)):
            if d and d.get("labels"):
                rows.append((role, d["n"], ", ".join(f"{k} {_pct(v, d['n'])}" for k, v in d["labels"].items())))
        if not rows:
            for i in infos:
                tr = i["config"].get("training") or {}
                rows.append((f"training of {i['label']}", tr.get("n"),
                             ", ".join(f"{k} {v}" for k, v in (tr.get("class_counts") or {}).items())))
        H.table(["data", "subjects", "classes"], rows)


def _section_predictors(H, infos):
    H.h2("predictors")
    for i in infos:
        p = i["pipe"].preprocessor.params
        feat_cols = set(p.get("feature_columns") or [])
        fam: dict = {}
        for c in p.get("columns", []):
            f = _feature_family(c, c in feat_cols)
            fam[f] = fam.get(f, 0) + 1
        H.h3(f"{i['label']} ({i['model_name']})")
        rows = [("input columns", len(p.get("columns", []))),
                ("by family", ", ".join(f"{k} {v}" for k, v in fam.items()) or "-"),
                ("candidate parameters after encoding", i["n_candidates"]),
                ("kept after preprocessing" + (f" (univariate selection of {p['max_features']})"
                                               if p.get("max_features") else ""), i["n_kept"])]
        if p.get("image_columns"):
            rows.append(("images used for features", ", ".join(p["image_columns"])))
        if i["uses_inputs"]:
            rows.append(("images read by the network", "cine ED and ES frames" + (" and LGE" if i["uses_lge"] else "")
                         + " with their segmentations (from the manifest)"))
        if p.get("feature_settings"):
            rows.append(("image feature settings", json.dumps(p["feature_settings"], sort_keys=True)[:400]))
        covs = [c for c in p.get("columns", []) if c not in feat_cols]
        if covs:
            rows.append(("manifest covariates", ", ".join(f"{c} ({p['kinds'].get(c, '?')})" for c in covs[:60])
                         + (f", ... ({len(covs) - 60} more)" if len(covs) > 60 else "")))
        H.kv(rows)


def _section_sample(H, endpoint, infos, test_res, test_desc):
    H.h2("sample")
    H.p("The sample size was given by the available data; no sample-size calculation is known to the software. "
        "Events per candidate predictor parameter (EPV) of development:")
    rows = []
    for i in infos:
        what = "events" if endpoint == "survival" else "subjects in the smallest class"
        rows.append((i["label"], i.get("dev_n"), f"{i.get('dev_events')} {what}", i["n_candidates"],
                     _f(i.get("epv"), 1) if i.get("epv") is not None else "n/a"))
    H.table(["model", "development subjects", "events", "candidate parameters", "EPV"], rows)
    if test_res:
        r = next(iter(test_res.values()))
        if endpoint == "survival":
            H.p(f"Test data: {r['n']} subjects, {r['n_events']} events (at least {MIN_VALIDATION_EVENTS} events are "
                "commonly recommended for validation).")
        else:
            H.p(f"Test data: {r['n']} subjects; classes "
                + ", ".join(f"{k} {v}" for k, v in r["class_counts"].items()) + ".")


def _section_missing(H, train_desc, test_desc):
    H.h2("missing")
    cols = sorted({c for d in (train_desc, test_desc) if d for c in d["covariates"]})
    rows = []
    for c in cols:
        cells = []
        for d in (train_desc, test_desc):
            v = (d or {}).get("covariates", {}).get(c) if d else None
            cells.append("-" if v is None else _pct(v["missing"], d["n"]))
        rows.append([c] + cells)
    if rows:
        H.table(["covariate", "missing (development)", "missing (test)"], rows)
        if not any(v["missing"] for d in (train_desc, test_desc) if d for v in d["covariates"].values()):
            H.p("No missing covariate values in the manifests.")
    else:
        H.p("No manifest was given: missing data cannot be summarised.")
    H.p("Handling: missing values are replaced by the training median (single imputation fitted on the training "
        "subjects). Missing image features (a failed extraction) stop the analysis with an error rather than being "
        "imputed; subjects without outcome are not allowed in evaluation.")


def _section_methods(H, endpoint, infos, has_test, test_manifest, test_desc, train_desc, overlap, apparent,
                     n_boot, seed):
    H.h2("methods")
    H.h3("Model specification")
    rows = []
    for i in infos:
        c = i["config"]
        m = c.get("model") or {}
        params = dict(m.get("params") or {})
        params.update(c.get("model_params") or {})
        chosen = "+".join(i["chosen"]) if i.get("chosen") else "-"
        scores = ", ".join(f"{k} {_f(v)}" for k, v in (i.get("cv_scores") or {}).items()) or "-"
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


def _section_imbalance(H, infos, train_desc, test_desc):
    H.h2("imbalance")
    H.p("Class counts are reported under Outcome; the CMRRisk diagnosis models use no resampling or class "
        "weights. Balanced accuracy and per-class AUC are reported alongside accuracy.")


def _section_output(H, endpoint, infos):
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
                  + ", ".join(_g(c) for c in (m['config'].get('training') or {}).get('risk_cutpoints', []))
                  for m in infos) + "."])
    else:
        H.ul(["A probability per class (summing to 1) and the predicted class (largest probability; no other "
              "threshold)."])


def _section_participants(H, endpoint, train_desc, test_desc, qc_rep, qc_in):
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
        smd = _smd(a or {}, b or {}) if a and b else None
        rows.append((c, _cov_cell(a) if train_desc else "-", _cov_cell(b) if test_desc else "-",
                     _f(smd, 2) if smd is not None else "-"))
    H.table(["covariate", "development: mean (SD); median [IQR]; range / counts",
             "test: mean (SD); median [IQR]; range / counts", "standardised difference"], rows,
            "Characteristics of the participants (item 20b) and development vs test (item 20c)")
    truth = sorted({c for d in (train_desc, test_desc) if d for c in d["truth_columns"]})
    if truth:
        H.p(f"Simulation truth columns present and never used as predictors: {', '.join(truth)}.")


def _section_development(H, endpoint, infos):
    H.h2("development")
    keys = ("c_index_harrell", "c_index_uno", "integrated_brier", "td_auc_mean") if endpoint == "survival" \
        else ("accuracy", "balanced_accuracy", "auc_macro")
    rows = []
    for i in infos:
        cv = i.get("cv")
        if cv:
            s = cv.get("summary") or {}
            rows.append([i["label"], cv.get("k"), cv.get("n")] +
                        [f"{_f(s[k]['mean'])} (SD {_f(s[k]['sd'])})" if k in s else "n/a" for k in keys])
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
                               _f(f.get("c_index_harrell")), _f(f.get("c_index_uno")), _f(f.get("integrated_brier"))))
                else:
                    fr.append((f.get("fold"), f.get("n_train"), f.get("n"), "-", _f(f.get("accuracy")),
                               _f(f.get("balanced_accuracy")), _f(f.get("auc_macro"))))
            hdr = ["fold", "training subjects", "test subjects", "events"] + (
                ["Harrell's C", "Uno's C", "integrated Brier"] if endpoint == "survival"
                else ["accuracy", "balanced accuracy", "macro AUC"])
            H.table(hdr, fr, f"{i['label']}: per fold (item 21: participants and events in each analysis)")
        pooled = cv.get("pooled_out_of_fold")
        if pooled:
            H.p(f"{i['label']}: pooled out-of-fold predictions: accuracy {_with_ci(pooled, 'accuracy')}, balanced "
                f"accuracy {_with_ci(pooled, 'balanced_accuracy')}, macro AUC {_with_ci(pooled, 'auc_macro')}.")
    for i in infos:
        terms = linear_terms(i["pipe"])
        p = i["pipe"].preprocessor.params
        if terms:
            std = dict(zip(p.get("selected", []), p.get("std", [])))
            if endpoint == "survival":
                rows = [(n, _f(c[0]), _f(math.exp(max(min(c[0], 50), -50))), _g(std.get(n))) for n, c in terms]
                H.table(["feature", "log hazard ratio per SD", "hazard ratio per SD", "SD in development"], rows,
                        f"{i['label']}: the full Cox model (inputs standardised with the development mean and SD; "
                        "baseline hazard in model.safetensors)")
            else:
                classes = i["pipe"].classes or []
                rows = [[n] + [_f(v) for v in c] for n, c in terms]
                H.table(["feature"] + [f"coefficient: {k}" for k in classes], rows,
                        f"{i['label']}: logistic coefficients per SD of the standardised inputs (intercepts in "
                        "model.safetensors)")
        else:
            H.p(f"{i['label']}: a {i['model_name']} model has no closed form; its full specification is the model "
                "directory (weights in model.safetensors, preprocessing.json, config.json), identified by the "
                "SHA-256 checksums listed under Software.")


def _section_performance(H, endpoint, infos, test_res, app_res, figs, has_test):
    H.h2("performance")
    if not has_test:
        H.p("No test data: the measures below are APPARENT (the models were evaluated on the data they were "
            "developed on) and optimistic; see the cross-validation table above for the internal validation."
            if app_res else "No test data and no development manifest: only the cross-validation results above "
            "are available; no calibration or Kaplan-Meier figures can be drawn.", cls="warn")
    for tag, results, name in (("test", test_res, "test data"),
                               ("apparent", app_res, "development data (APPARENT, optimistic)")):
        if not results:
            continue
        H.h3(f"Discrimination and overall performance on the {name}")
        if endpoint == "survival":
            rows = []
            for lab, r in results.items():
                td = ", ".join(f"t={k}: {_f(v)}" for k, v in (r.get("td_auc") or {}).items()) or "n/a"
                rows.append((lab, r["n"], r["n_events"], _with_ci(r, "c_index_harrell"), _with_ci(r, "c_index_uno"),
                             _with_ci(r, "td_auc_mean"), td, _with_ci(r, "integrated_brier")))
            # simulated data: the true log-hazard's C on the same subjects, the ceiling for every model
            oracle = {(r["n"], r["n_events"], round(r["c_index_oracle"], 6)) for r in results.values()
                      if r.get("c_index_oracle") is not None}
            for n_, ev_, c_ in sorted(oracle):
                rows.append(("oracle (simulation's true log-hazard)", n_, ev_, _f(c_), "-", "-", "-", "-"))
            H.table(["model", "subjects", "events", "Harrell's C (95% CI)", "Uno's C (95% CI)",
                     "mean time-dependent AUC (95% CI)", "time-dependent AUC per horizon",
                     "integrated Brier score (95% CI)"], rows)
            crow = []
            for lab, r in results.items():
                c = r.get("calibration") or {}
                if c:
                    crow.append((lab, _g(c["horizon"]), _f(c.get("observed_overall")), _f(c.get("predicted_overall")),
                                 _f(c.get("slope"), 2),
                                 ", ".join(f"t={k}: {_f(v)}" for k, v in (r.get("brier") or {}).items())))
            H.table(["model", "horizon", "observed event probability", "mean predicted", "calibration slope",
                     "Brier score per horizon"], crow, "Calibration")
            if figs.get(f"calibration_{tag}"):
                H.img(figs[f"calibration_{tag}"], f"calibration plot ({tag})",
                      "Observed (1 - Kaplan-Meier) vs mean predicted event probability at the horizon, per bin of "
                      "predicted risk (marker size: subjects per bin); the dashed line is perfect calibration.")
            H.h3(f"Kaplan-Meier curves by predicted risk group ({name})")
            if figs.get(f"km_{tag}"):
                H.img(figs[f"km_{tag}"], f"Kaplan-Meier curves by risk group ({tag})",
                      "Event-free probability of the subjects in each predicted risk group (cut-points: tertiles of "
                      "the development risk), with 95 % pointwise intervals and censoring ticks; log-rank test "
                      "across groups.")
            for lab, r in results.items():
                rg = r.get("risk_groups") or {}
                gr = []
                names = group_names(len(rg.get("groups", [])))
                for g, nm in zip(rg.get("groups", []), names):
                    gr.append((nm, g.get("n"), g.get("n_events", 0), _g(g.get("median_survival"))
                               if g.get("median_survival") is not None else "not reached"))
                H.table(["risk group", "subjects", "events", "median event-free time"], gr,
                        f"{lab}: risk groups (cut-points {', '.join(_g(c) for c in rg.get('cutpoints', []))}); "
                        f"log-rank p {_p(rg.get('logrank_p'))}")
                pred = r.get("predictions") or {}
                if pred.get("time"):
                    t = np.asarray(pred["time"])
                    at = [0.0] + [float(np.quantile(t, q)) for q in (0.25, 0.5, 0.75)]
                    H.table(["number at risk"] + [f"t = {a:.3g}" for a in at],
                            at_risk_table(t, pred["risk"], rg.get("cutpoints", []), at))
        else:
            rows = []
            for lab, r in results.items():
                rows.append((lab, r["n"], _with_ci(r, "accuracy"), _with_ci(r, "balanced_accuracy"),
                             _with_ci(r, "auc_macro"),
                             ", ".join(f"{k}: {_f(v)}" for k, v in (r.get("auc_per_class") or {}).items())))
            H.table(["model", "subjects", "accuracy (95% CI)", "balanced accuracy (95% CI)", "macro AUC (95% CI)",
                     "AUC per class (one vs rest)"], rows)
            for lab, r in results.items():
                cls = r["classes"]
                H.table(["true \\ predicted"] + cls, [[c] + row for c, row in zip(cls, r["confusion_matrix"])],
                        f"{lab}: confusion matrix (rows: true class)")
            if figs.get(f"roc_{tag}"):
                H.img(figs[f"roc_{tag}"], f"ROC curves ({tag})", "One-vs-rest ROC curve per class.")
            if figs.get(f"confusion_{tag}"):
                H.img(figs[f"confusion_{tag}"], f"confusion matrices ({tag})", "Confusion matrices (counts).")


def _section_subgroups(H, endpoint, subgroups, on_test):
    H.h2("fairness")
    H.p("Performance within subgroups defined by categorical covariates of the manifest and, when a QC report was "
        f"given, by vendor and field strength ({'test' if on_test else 'development data, apparent'}). "
        "Subgroups with fewer than 10 subjects are not evaluated. Whether these are the groups that matter for "
        "fairness (sex, age, ethnicity, socioeconomic status) depends on the columns the manifest has.")
    key = "c_index_harrell" if endpoint == "survival" else "accuracy"
    for lab, rows in subgroups.items():
        tr = []
        for r in rows:
            val = (f"{_f(r[key])} ({_ci(r.get(f'{key}_ci'))})" if key in r else r.get("note", "n/a"))
            tr.append((r["variable"], r["level"], r["n"], r.get("n_events", "-"), val))
        H.table(["variable", "level", "subjects", "events", ("Harrell's C" if endpoint == "survival" else "accuracy")
                 + " (95% CI)"], tr, lab)


def _section_explanations(H, expl):
    H.h2("explanations")
    items = expl["items"]
    if not items:
        H.p("No explanation folders were given (run 'cmrrisk explain MODEL_DIR MANIFEST --subject ID --out DIR' "
            "and pass --explanations DIR).")
        return
    H.p(f"{expl['total']} explained subject(s)" + (f"; the first {len(items)} are shown." if expl["total"] > len(items)
                                                   else "."))
    for it in items:
        js = it["json"]
        H.h3(f"Subject {js.get('subject')} ({js.get('endpoint')}, method {js.get('method')})")
        if js.get("text"):
            H.p(js["text"])
        attr = [a for a in js.get("attributions") or [] if a.get("attribution") is not None]
        attr.sort(key=lambda a: -abs(a["attribution"]))
        H.table(["input", "value", "attribution"],
                [(a.get("feature"), _g(a.get("value")) if a.get("value") is not None else "-",
                  _f(a["attribution"], 4))
                 for a in attr[:8]], "Largest attributions (positive: raises the predicted risk / probability)")
        sim = js.get("similar_cases") or []
        if sim:
            H.table(["rank", "subject", "distance", "outcome"],
                    [(s.get("rank"), s.get("subject"), _f(s.get("distance"), 2),
                      s.get("label") if "label" in s
                      else f"{'event' if s.get('event') else 'censored'} at {_g(s.get('time'))}")
                     for s in sim[:5]], "Most similar reference subjects")
        for col, b64 in it["png"].items():
            H.img(b64, f"saliency overlay {js.get('subject')} {col}",
                  f"{col}: positive attribution on the image (slices with the most attribution).")
        if it["heatmaps"]:
            H.p("Heatmap volumes (open in Slicer): " + ", ".join(it["heatmaps"]))
        for n in js.get("notes") or []:
            H.p(n, cls="note")


def _flatten(d, prefix=""):
    out = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out += _flatten(v, key + ".")
        elif isinstance(v, (list, tuple)):
            out.append((key, ", ".join(_g(x) if isinstance(x, float) else str(x) for x in v)))
        elif isinstance(v, float):
            out.append((key, _g(v)))
        else:
            out.append((key, str(v)))
    return out


def _section_extra(H, extra):
    H.h2("extra")
    rest = {k: v for k, v in extra.items() if k not in ("data_source", "notes", "metrics")}
    if extra.get("metrics"):
        H.kv(_flatten(extra["metrics"]) if isinstance(extra["metrics"], dict) else [("metrics", extra["metrics"])],
             "Metrics supplied by the caller")
    if rest:
        H.kv(_flatten(rest), "Other facts")
    notes = extra.get("notes")
    if notes:
        H.ul([notes] if isinstance(notes, str) else list(notes))


def _section_software(H, infos, version):
    from .predict.store import versions

    H.h2("software")
    now = versions()
    pkgs = sorted(set(now) | {k for i in infos for k in (i["config"].get("software") or {})})
    rows = [[p, now.get(p, "-")] + [(i["config"].get("software") or {}).get(p, "-") for i in infos] for p in pkgs]
    H.table(["package", "this report"] + [f"training of {i['label']}" for i in infos], rows)
    rows = []
    for i in infos:
        rows.append((i["label"], os.path.abspath(i["model_dir"]),
                     (i["checksums"].get("model.safetensors") or "")[:16] + "...",
                     "yes" if i["has_card"] else "no"))
    H.table(["model", "directory", "SHA-256 of model.safetensors", "model card"], rows)
    H.p(f"CMRRisk {version}: a 3D Slicer extension and Python package. Commands: 'cmrrisk train', 'cmrrisk "
        "evaluate', 'cmrrisk qc', 'cmrrisk explain', 'cmrrisk report'.")


def _section_todo(H):
    H.h2("todo")
    H.ul(["Items 3-4: health-care context, target population, known inequalities and objectives.",
          "Items 5b-6: key dates, setting and centres, eligibility criteria, treatments received.",
          "Item 8: how and when the outcome was assessed and by whom (blinding).",
          "Item 9a: how the initial set of candidate predictors was chosen.",
          "Item 16: differences between development and evaluation data in setting, eligibility, outcome and "
          "predictors (the participants table compares only the recorded columns).",
          "Items 17-19: ethics approval and consent, funding, conflicts of interest, protocol, registration, "
          "data availability, patient and public involvement.",
          "Items 24-27: model updating, interpretation against other evidence, usability and intended use."])


# ------------------------------------------------------------------------------ command line

def cmd_report(args) -> int:
    if args.threads:
        import torch

        torch.set_num_threads(int(args.threads))
    extra = None
    if args.extra:
        try:
            with open(args.extra) as f:
                extra = json.load(f)
        except (OSError, ValueError) as exc:
            raise CMRRiskError(f"{args.extra}: not a readable JSON file ({exc}).") from exc
        if not isinstance(extra, dict):
            raise CMRRiskError(f"{args.extra}: must hold a JSON object (keys: data_source, metrics, notes, ...).")
    expl = [e for group in (args.explanations or []) for e in (group if isinstance(group, list) else [group])]
    res = write_report(args.out, args.model, train_manifest=args.train, test_manifest=args.test, qc=args.qc,
                       explanations=expl, extra=extra, title=args.title, n_boot=args.bootstrap, seed=args.seed,
                       cache_dir=args.cache_dir)
    for m in res["models"]:
        r = m.get("test") or m.get("apparent")
        if r is None:
            continue
        what = "test" if m.get("test") else "apparent"
        if res["endpoint"] == "survival":
            print(f"{m['label']}: {what} Harrell's C {_with_ci(r, 'c_index_harrell')}")
        else:
            print(f"{m['label']}: {what} balanced accuracy {_with_ci(r, 'balanced_accuracy')}")
    print(f"limitations: {len(res['limitations'])}; figures: {len(res['figures'])}")
    return 0


def add_commands(subparsers) -> None:
    """Register ``report`` on the ``cmrrisk`` subparsers."""
    p = subparsers.add_parser("report", help="TRIPOD+AI-style HTML report of one or several models: data, QC, "
                              "participants, predictors, validation, discrimination, calibration, Kaplan-Meier, "
                              "explanations, limitations")
    p.add_argument("--model", action="append", required=True, metavar="MODEL_DIR",
                   help="model directory from 'cmrrisk train' (repeat for several models of one endpoint)")
    p.add_argument("--train", default=None, metavar="MANIFEST", help="development manifest (participants, outcomes)")
    p.add_argument("--test", default=None, metavar="MANIFEST",
                   help="held-out or external manifest with outcomes; every model is evaluated on it")
    p.add_argument("--qc", default=None, metavar="QC", help="qc.json of 'cmrrisk qc', or its folder")
    p.add_argument("--explanations", nargs="+", action="append", default=None, metavar="DIR",
                   help="output folder(s) of 'cmrrisk explain'")
    p.add_argument("--extra", default=None, metavar="JSON", help="JSON object with more facts to show "
                   "(data_source text, metrics, notes, synthetic: true)")
    p.add_argument("--out", required=True, metavar="REPORT.html", help="HTML file to write")
    p.add_argument("--title", default=None)
    p.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples for 95%% intervals (default 200)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache-dir", default=None, help="image feature cache (as for 'cmrrisk evaluate')")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for PyTorch")
    p.set_defaults(func=cmd_report)
