"""The report's figures (matplotlib, embedded as base64 PNG): calibration, Kaplan-Meier curves by
predicted risk group with numbers at risk, ROC curves, confusion matrices."""

from __future__ import annotations

import base64
import io

import numpy as np

from ..predict.models.targets import group_names
from .format import fnum, p_text


# ------------------------------------------------------------------------------- figures

def png_data(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=96, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def new_figure(w: float, h: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h))
    FigureCanvasAgg(fig)
    return fig


def label_axes(ax, xlabel: str, ylabel: str, title: str, legend: str | None = None) -> None:
    """Axis labels, a small title and (at ``legend``) a small legend."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    if legend:
        ax.legend(fontsize=7, loc=legend)


def panel_figure(n: int, width: float, height: float):
    """A figure for ``n`` panels, three per row: (figure, rows, columns)."""
    cols = min(n, 3)
    rows = (n + cols - 1) // cols
    return new_figure(width * cols, height * rows), rows, cols


def calibration_figure(entries: list) -> str | None:
    """``entries``: [(label, calibration dict)]; observed vs predicted event probability by bin."""
    entries = [(lab, c) for lab, c in entries if c and c.get("bins")]
    if not entries:
        return None
    fig = new_figure(5.2, 5.0)
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
                   label=f"{lab}: slope {fnum(c.get('slope'), 2)}, t = {c['horizon']:g}")
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    label_axes(ax, "predicted event probability (mean per bin)", "observed event probability (1 - Kaplan-Meier)",
           "Calibration by predicted-risk bins", "upper left")
    return png_data(fig)


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
    fig, rows, cols = panel_figure(len(panels), 4.6, 3.8)
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
        label_axes(ax, "time (cohort's unit)", "event-free probability", f"{lab}: log-rank p {p_text(p)}",
               "lower left")
    fig.tight_layout()
    return png_data(fig)


def roc_figure(panels: list) -> str | None:
    """``panels``: [(label, y (class indices), proba (n, k), classes, {class: AUC})]: one-vs-rest
    ROC curves."""
    from sklearn.metrics import roc_curve

    if not panels:
        return None
    fig, rows, cols = panel_figure(len(panels), 4.4, 4.2)
    for i, (lab, y, proba, classes, aucs) in enumerate(panels):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.plot([0, 1], [0, 1], color="#999", lw=1, ls="--")
        for j, c in enumerate(classes):
            pos = np.asarray(y) == j
            if 0 < pos.sum() < len(pos):
                fpr, tpr, _ = roc_curve(pos, np.asarray(proba)[:, j])
                ax.plot(fpr, tpr, lw=1.5, label=f"{c} (AUC {fnum((aucs or {}).get(str(c)))})")
        label_axes(ax, "1 - specificity", "sensitivity", f"{lab}: ROC (one class vs rest)", "lower right")
    fig.tight_layout()
    return png_data(fig)


def confusion_figure(panels: list) -> str | None:
    """``panels``: [(label, confusion matrix (rows true), classes)]."""
    if not panels:
        return None
    fig, rows, cols = panel_figure(len(panels), 4.0, 3.8)
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
    return png_data(fig)
