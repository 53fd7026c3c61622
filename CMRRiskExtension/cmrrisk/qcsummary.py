"""The cohort-level summaries of quality control (:mod:`cmrrisk.qc`): volume (subjects, images,
events, follow-up), variety (vendors, field strengths, sequences, resolutions), veracity (the
checks per subject), and the Markdown report ``qc.md``. Pure functions of the per-subject
results, so that a whole run and the merge of ``qc --shard`` runs summarise alike."""

from __future__ import annotations

import math
import os

import numpy as np

from .qcchecks import EXCLUDE, FLAG, OK


def dist(values) -> dict | None:
    v = np.asarray([x for x in values if x is not None and math.isfinite(float(x))], float)
    if v.size == 0:
        return None
    return {"n": int(v.size), "min": float(v.min()), "median": float(np.median(v)), "max": float(v.max())}


def counts(values) -> dict:
    out: dict = {}
    for v in values:
        key = "unknown" if v in (None, "") else (f"{v:g} T" if isinstance(v, float) else str(v))
        out[key] = out.get(key, 0) + 1
    return dict(sorted(out.items(), key=lambda kv: (-kv[1], kv[0])))


def finite_float(v):
    """``float(v)`` when it is a finite number, else None."""
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def volume_summary(man, results: list) -> dict:
    rows = man.rows
    out = {"n_subjects": len(rows),
           "n_with_image": {role: sum(1 for r in rows if r.get(role)) for role in man.image_roles},
           "n_with_reference_segmentation": {f"{role}_seg": sum(1 for r in rows if r.get(f"{role}_seg"))
                                             for role in man.image_roles if f"{role}_seg" in man.columns}}
    if "event" in man.columns:
        ev = [r.get("event", "") for r in rows]
        out["n_events"] = sum(1 for e in ev if e in ("1", "1.0", "True", "true"))
        out["n_censored"] = sum(1 for e in ev if e in ("0", "0.0", "False", "false"))
    if "time" in man.columns:
        t = [finite_float(r.get("time")) for r in rows]
        tc = [finite_float(r.get("time")) for r in rows if r.get("event") in ("0", "0.0", "False", "false")]

        def fu(vals):
            v = np.asarray([x for x in vals if x is not None], float)
            if v.size == 0:
                return None
            q = np.percentile(v, [25, 50, 75])
            return {"n": int(v.size), "median": float(q[1]), "q1": float(q[0]), "q3": float(q[2]),
                    "max": float(v.max())}

        out["follow_up"] = {"all": fu(t), "censored": fu(tc)}
    if "label" in man.columns:
        out["labels"] = counts(r.get("label", "") for r in rows)
    out["status"] = {s: sum(1 for r in results if r["status"] == s) for s in (OK, FLAG, EXCLUDE)}
    return out


def variety_summary(results: list) -> dict:
    infos = [(role, info) for r in results for role, info in r["images"].items() if info.get("readable")]
    out = {"per_role": {}}
    for role in sorted({role for role, _ in infos}):
        ii = [i for rl, i in infos if rl == role]
        out["per_role"][role] = {
            "n_images": len(ii),
            "manufacturer": counts(i.get("manufacturer") for i in ii),
            "field_strength": counts(i.get("field_strength_t") for i in ii),
            "sequence": counts(i.get("sequence") for i in ii),
            "orientation": counts(i.get("orientation") for i in ii),
            "in_plane_mm": dist(i.get("in_plane_mm") for i in ii),
            "slice_spacing_mm": dist(i.get("slice_spacing_mm") for i in ii),
            "slice_thickness_mm": dist(i.get("slice_thickness_mm") for i in ii),
            "n_slices": dist(i.get("n_slices") for i in ii),
            "n_phases": dist(i.get("n_phases") for i in ii),
            "matrix_rows": dist(i["matrix"][0] for i in ii if i.get("matrix")),
            "matrix_columns": dist(i["matrix"][1] for i in ii if i.get("matrix")),
            "matrices": counts(f"{i['matrix'][0]}x{i['matrix'][1]}" for i in ii if i.get("matrix")),
        }
    # per subject (one vendor per subject: its first image that names one)
    def first(r, key):
        for info in r["images"].values():
            if info.get(key) not in (None, ""):
                return info[key]
        return None

    out["manufacturer"] = counts(first(r, "manufacturer") for r in results)
    out["field_strength"] = counts(first(r, "field_strength_t") for r in results)
    out["sequence"] = counts(first(r, "sequence") for r in results)
    return out


def veracity_summary(results: list) -> dict:
    codes: dict = {}
    for r in results:
        for c in r["checks"]:
            key = f"{c['severity']}:{c['code']}"
            codes[key] = codes.get(key, 0) + 1
    return {"check_counts": dict(sorted(codes.items())),
            "subjects": [{"subject": r["subject"], "status": r["status"], "checks": r["checks"],
                          "segmentation": r.get("segmentation", {}), "indices": r.get("indices", {})}
                         for r in results]}


def reasons(r: dict, severity: str) -> str:
    return "; ".join(f"{c['role'] + ': ' if c['role'] else ''}{c['code']}" for c in r["checks"]
                     if c["severity"] == severity)


def markdown(report: dict) -> str:
    v, var = report["volume"], report["variety"]
    lines = [f"# Cohort QC: {os.path.basename(report['manifest'])}", "",
             f"- subjects: {v['n_subjects']} (ok {v['status']['ok']}, flagged {v['status']['flag']}, "
             f"excluded {v['status']['exclude']})",
             "- images: " + ", ".join(f"{k} {n}" for k, n in v["n_with_image"].items())]
    if "n_events" in v:
        lines.append(f"- events: {v['n_events']} (censored {v['n_censored']})")
    fu = (v.get("follow_up") or {}).get("all")
    if fu:
        lines.append(f"- follow-up (time, all subjects): median {fu['median']:g} (IQR {fu['q1']:g}-{fu['q3']:g}), "
                     f"max {fu['max']:g}")
    if v.get("labels"):
        lines.append("- labels: " + ", ".join(f"{k} {n}" for k, n in v["labels"].items()))
    lines += ["", "## Variety", "",
              "- vendor: " + ", ".join(f"{k} {n}" for k, n in var["manufacturer"].items()),
              "- field strength: " + ", ".join(f"{k} {n}" for k, n in var["field_strength"].items()),
              "- sequence: " + ", ".join(f"{k} {n}" for k, n in var["sequence"].items())]
    for role, d in var["per_role"].items():
        def rng(x, unit=""):
            return "n/a" if not x else f"{x['min']:.3g}/{x['median']:.3g}/{x['max']:.3g}{unit}"
        lines.append(f"- {role} (min/median/max): in-plane {rng(d['in_plane_mm'], ' mm')}, slice spacing "
                     f"{rng(d['slice_spacing_mm'], ' mm')}, slice thickness {rng(d['slice_thickness_mm'], ' mm')}, "
                     f"slices {rng(d['n_slices'])}, matrix rows {rng(d['matrix_rows'])} x columns "
                     f"{rng(d['matrix_columns'])}")
    lines += ["", "## Flagged and excluded subjects", ""]
    bad = [s for s in report["veracity"]["subjects"] if s["status"] != OK]
    if not bad:
        lines.append("none")
    for s in bad:
        lines.append(f"- **{s['subject']}** ({s['status']}): " + "; ".join(
            f"[{c['severity']}] {c['role'] + ': ' if c['role'] else ''}{c['code']}: {c['message']}"
            for c in s["checks"]))
    return "\n".join(lines) + "\n"
