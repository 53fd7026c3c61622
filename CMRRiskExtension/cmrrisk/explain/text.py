"""A short generated sentence per prediction: what was predicted, the main contributors with
their values and the direction of their effect, where the image evidence lies, and the nearest
reference subjects."""

from __future__ import annotations

import math


def _fmt_value(v):
    if v is None:
        return "missing"
    if isinstance(v, str):
        return v
    if isinstance(v, float) and math.isnan(v):
        return "missing"
    a = abs(v)
    return f"{v:.3g}" if a < 1000 else f"{v:.0f}"


def prediction_phrase(pred: dict) -> str:
    if pred.get("endpoint") == "diagnosis":
        return f"Predicted {pred['predicted']} (probability {pred['probability']:.2f})"
    s = f"Predicted risk score {pred['risk']:.2f}"
    if pred.get("risk_group"):
        s += f" ({pred['risk_group']} risk group of the training cohort)"
    return s


def explanation_text(pred: dict, contributions: list, top: int = 3, image_regions: dict | None = None,
                     similar: list | None = None) -> str:
    """``contributions``: [{feature, value, attribution}] (an entry named ``images`` with value
    None stands for the whole image input); ``image_regions``: {region name: share of the positive
    heatmap}; ``similar``: output of :func:`.examples.similar_cases`."""
    parts = [prediction_phrase(pred) + "."]
    ranked = sorted([c for c in contributions if c.get("attribution") is not None
                     and not math.isnan(c["attribution"]) and c["attribution"] != 0],
                    key=lambda c: -abs(c["attribution"]))[:top]
    what = "probability" if pred.get("endpoint") == "diagnosis" else "risk"
    if ranked:
        items = []
        for c in ranked:
            direction = "raises" if c["attribution"] > 0 else "lowers"
            name = c["feature"] if c.get("value") is None and c["feature"] == "images" \
                else f"{c['feature']} = {_fmt_value(c.get('value'))}"
            items.append(f"{name} ({direction} the {what})")
        parts.append("Main contributors: " + "; ".join(items) + ".")
    else:
        parts.append("No input changed the prediction measurably from the average subject.")
    if image_regions:
        reg = sorted(image_regions.items(), key=lambda kv: -kv[1])
        reg = [(k, v) for k, v in reg if v > 0][:2]
        if reg:
            parts.append("The image evidence lies mostly in the "
                         + " and ".join(f"{k} ({100 * v:.0f} %)" for k, v in reg) + ".")
    if similar:
        def out(s):
            if "label" in s:
                return f"{s['subject']} ({s['label']})"
            ev = "event" if s.get("event") else "censored"
            return f"{s['subject']} ({ev} at {_fmt_value(s.get('time'))})"
        parts.append("Most similar reference subjects: " + ", ".join(out(s) for s in similar[:3]) + ".")
    return " ".join(parts)
