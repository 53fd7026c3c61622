"""Sections on the results: performance, subgroups, explanations, extra facts, software, and
the items left to the investigators."""

from __future__ import annotations

import os

import numpy as np

from ..predict.models.targets import group_names
from .figures import at_risk_table
from .context import ReportContext
from .format import ci_text, fnum, gnum, p_text, with_ci


def section_performance(H, ctx: ReportContext):
    endpoint = ctx.endpoint
    infos = ctx.infos
    test_res = ctx.test_res
    app_res = ctx.app_res
    figs = ctx.figs
    has_test = ctx.has_test
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
                td = ", ".join(f"t={k}: {fnum(v)}" for k, v in (r.get("td_auc") or {}).items()) or "n/a"
                rows.append((lab, r["n"], r["n_events"], with_ci(r, "c_index_harrell"), with_ci(r, "c_index_uno"),
                             with_ci(r, "td_auc_mean"), td, with_ci(r, "integrated_brier")))
            # simulated data: the true log-hazard's C on the same subjects, the ceiling for every model
            oracle = {(r["n"], r["n_events"], round(r["c_index_oracle"], 6)) for r in results.values()
                      if r.get("c_index_oracle") is not None}
            for n_, ev_, c_ in sorted(oracle):
                rows.append(("oracle (simulation's true log-hazard)", n_, ev_, fnum(c_), "-", "-", "-", "-"))
            H.table(["model", "subjects", "events", "Harrell's C (95% CI)", "Uno's C (95% CI)",
                     "mean time-dependent AUC (95% CI)", "time-dependent AUC per horizon",
                     "integrated Brier score (95% CI)"], rows)
            crow = []
            for lab, r in results.items():
                c = r.get("calibration") or {}
                if c:
                    crow.append((lab, gnum(c["horizon"]), fnum(c.get("observed_overall")), fnum(c.get("predicted_overall")),
                                 fnum(c.get("slope"), 2),
                                 ", ".join(f"t={k}: {fnum(v)}" for k, v in (r.get("brier") or {}).items())))
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
                    gr.append((nm, g.get("n"), g.get("n_events", 0), gnum(g.get("median_survival"))
                               if g.get("median_survival") is not None else "not reached"))
                H.table(["risk group", "subjects", "events", "median event-free time"], gr,
                        f"{lab}: risk groups (cut-points {', '.join(gnum(c) for c in rg.get('cutpoints', []))}); "
                        f"log-rank p {p_text(rg.get('logrank_p'))}")
                pred = r.get("predictions") or {}
                if pred.get("time"):
                    t = np.asarray(pred["time"])
                    at = [0.0] + [float(np.quantile(t, q)) for q in (0.25, 0.5, 0.75)]
                    H.table(["number at risk"] + [f"t = {a:.3g}" for a in at],
                            at_risk_table(t, pred["risk"], rg.get("cutpoints", []), at))
        else:
            rows = []
            for lab, r in results.items():
                rows.append((lab, r["n"], with_ci(r, "accuracy"), with_ci(r, "balanced_accuracy"),
                             with_ci(r, "auc_macro"),
                             ", ".join(f"{k}: {fnum(v)}" for k, v in (r.get("auc_per_class") or {}).items())))
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


def section_subgroups(H, ctx: ReportContext):
    endpoint, subgroups, on_test = ctx.endpoint, ctx.subgroups, ctx.on_test
    H.h2("fairness")
    H.p("Performance within subgroups defined by categorical covariates of the manifest and, when a QC report was "
        f"given, by vendor and field strength ({'test' if on_test else 'development data, apparent'}). "
        "Subgroups with fewer than 10 subjects are not evaluated. Whether these are the groups that matter for "
        "fairness (sex, age, ethnicity, socioeconomic status) depends on the columns the manifest has.")
    key = "c_index_harrell" if endpoint == "survival" else "accuracy"
    for lab, rows in subgroups.items():
        tr = []
        for r in rows:
            val = (f"{fnum(r[key])} ({ci_text(r.get(f'{key}_ci'))})" if key in r else r.get("note", "n/a"))
            tr.append((r["variable"], r["level"], r["n"], r.get("n_events", "-"), val))
        H.table(["variable", "level", "subjects", "events", ("Harrell's C" if endpoint == "survival" else "accuracy")
                 + " (95% CI)"], tr, lab)


def section_explanations(H, ctx: ReportContext):
    expl = ctx.expl
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
                [(a.get("feature"), gnum(a.get("value")) if a.get("value") is not None else "-",
                  fnum(a["attribution"], 4))
                 for a in attr[:8]], "Largest attributions (positive: raises the predicted risk / probability)")
        sim = js.get("similar_cases") or []
        if sim:
            H.table(["rank", "subject", "distance", "outcome"],
                    [(s.get("rank"), s.get("subject"), fnum(s.get("distance"), 2),
                      s.get("label") if "label" in s
                      else f"{'event' if s.get('event') else 'censored'} at {gnum(s.get('time'))}")
                     for s in sim[:5]], "Most similar reference subjects")
        for col, b64 in it["png"].items():
            H.img(b64, f"saliency overlay {js.get('subject')} {col}",
                  f"{col}: positive attribution on the image (slices with the most attribution).")
        if it["heatmaps"]:
            H.p("Heatmap volumes (open in Slicer): " + ", ".join(it["heatmaps"]))
        for n in js.get("notes") or []:
            H.p(n, cls="note")


def flatten(d, prefix=""):
    out = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out += flatten(v, key + ".")
        elif isinstance(v, (list, tuple)):
            out.append((key, ", ".join(gnum(x) if isinstance(x, float) else str(x) for x in v)))
        elif isinstance(v, float):
            out.append((key, gnum(v)))
        else:
            out.append((key, str(v)))
    return out


def section_extra(H, ctx: ReportContext):
    extra = ctx.extra
    H.h2("extra")
    rest = {k: v for k, v in extra.items() if k not in ("data_source", "notes", "metrics")}
    if extra.get("metrics"):
        H.kv(flatten(extra["metrics"]) if isinstance(extra["metrics"], dict) else [("metrics", extra["metrics"])],
             "Metrics supplied by the caller")
    if rest:
        H.kv(flatten(rest), "Other facts")
    notes = extra.get("notes")
    if notes:
        H.ul([notes] if isinstance(notes, str) else list(notes))


def section_limitations(H, ctx: ReportContext):
    H.h2("limitations")
    H.ul(ctx.lims, cls="lim")


def section_software(H, ctx: ReportContext):
    infos, version = ctx.infos, ctx.version
    from ..predict.store import versions

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


def section_todo(H, ctx: ReportContext):
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
