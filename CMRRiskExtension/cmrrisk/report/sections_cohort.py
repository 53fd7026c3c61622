"""Sections on the data: summary, source of data, data preparation and QC, outcome, predictors,
sample size, missing data."""

from __future__ import annotations

import json
import os


from .data import feature_family
from .context import ReportContext
from .format import MAX_QC_ROWS, MIN_VALIDATION_EVENTS, fnum, gnum, pct, with_ci


# ------------------------------------------------------------------------------ sections

def section_summary(H, ctx: ReportContext):
    endpoint = ctx.endpoint
    infos = ctx.infos
    test_res = ctx.test_res
    app_res = ctx.app_res
    train_desc = ctx.train_desc
    test_desc = ctx.test_desc
    lims = ctx.lims
    has_test = ctx.has_test
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
                items.append(f"{lab}: Harrell's C {with_ci(r, 'c_index_harrell')}, Uno's C "
                             f"{with_ci(r, 'c_index_uno')}, integrated Brier score {with_ci(r, 'integrated_brier')}"
                             f", calibration slope {fnum((r.get('calibration') or {}).get('slope'), 2)} (test data).")
            else:
                items.append(f"{lab}: accuracy {with_ci(r, 'accuracy')}, balanced accuracy "
                             f"{with_ci(r, 'balanced_accuracy')}, macro AUC {with_ci(r, 'auc_macro')} (test data).")
    else:
        H.p("No held-out or external test data were given: only the cross-validation results stored in the model "
            "directories are available" + (", and the apparent performance on the development data, which is "
                                           "optimistic." if app_res else "."), cls="warn")
        for i in infos:
            s = (i.get("cv") or {}).get("summary") or {}
            if s:
                items.append(f"{i['label']}: {i['cv'].get('k')}-fold cross-validation: " + ", ".join(
                    f"{k} {fnum(v['mean'])} (SD {fnum(v['sd'])})" for k, v in s.items()) + ".")
            else:
                items.append(f"{i['label']}: no cross-validation results in the model directory "
                             "(trained with --cv 0).")
        for lab, r in app_res.items():
            key, name = (("c_index_harrell", "Harrell's C") if endpoint == "survival"
                         else ("balanced_accuracy", "balanced accuracy"))
            items.append(f"{lab}: APPARENT {name} on the development data {with_ci(r, key)} (optimistic).")
    H.ul(items)
    if lims:
        H.p("Main limitations: " + " ".join(lims[:3]), cls="note")


def section_data(H, ctx: ReportContext):
    extra = ctx.extra
    train_manifest = ctx.train_manifest
    test_manifest = ctx.test_manifest
    train_desc = ctx.train_desc
    test_desc = ctx.test_desc
    qc_rep = ctx.qc_rep
    infos = ctx.infos
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
                return "n/a" if not x else f"{gnum(x['min'])} / {gnum(x['median'])} / {gnum(x['max'])}{unit}"
            prow.append((role, d.get("n_images"), rng(d.get("in_plane_mm"), " mm"),
                         rng(d.get("slice_spacing_mm"), " mm"),
                         rng(d.get("slice_thickness_mm"), " mm"), rng(d.get("n_slices")), rng(d.get("n_phases"))))
        H.table(["image role", "images", "in-plane (min/median/max)", "slice spacing", "slice thickness",
                 "slices", "phases"], prow, "Acquisition parameters per image role")
    H.p("Key dates (accrual, end of follow-up), setting and centres are not recorded in the manifests: "
        "give them in the text of the report (see the last section).")


def section_prep(H, ctx: ReportContext):
    qc_rep, infos, qc_in = ctx.qc_rep, ctx.infos, ctx.qc_in
    H.h2("prep")
    if qc_rep is None:
        H.p("No quality-control report was given (run 'cmrrisk qc MANIFEST --out DIR' and pass --qc DIR).",
            cls="note")
    else:
        v = qc_rep.get("volume") or {}
        st = v.get("status") or {}
        n = v.get("n_subjects", 0)
        H.p(f"Quality control (volume, variety, veracity checks) of {n} subjects: {pct(st.get('ok', 0), n)} ok, "
            f"{pct(st.get('flag', 0), n)} flagged (usable with care), {pct(st.get('exclude', 0), n)} excluded "
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


def section_outcome(H, ctx: ReportContext):
    endpoint, infos, train_desc, test_desc = ctx.endpoint, ctx.infos, ctx.train_desc, ctx.test_desc
    H.h2("outcome")
    if endpoint == "survival":
        H.p("Time to event: 'time' is the follow-up time in the cohort's unit, 'event' 1 when the event was "
            "observed and 0 when follow-up ended without it (censored). How and when the outcome was assessed, "
            "and whether assessors were blinded to the predictors, is not known to the software.")
        rows = []
        for role, d in (("development", train_desc), ("test", test_desc)):
            s = (d or {}).get("survival")
            if s:
                rows.append((role, d["n"], pct(s["n_events"], s["n_with_time"]), s["n_censored"],
                             f"{gnum(s.get('time_median'))} [{gnum(s.get('time_q1'))}, {gnum(s.get('time_q3'))}]",
                             f"{gnum(s.get('time_min'))}-{gnum(s.get('time_max'))}",
                             gnum(s.get("reverse_km_median_follow_up"))))
        if not rows:
            for i in infos:
                tr = i["config"].get("training") or {}
                rows.append((f"training of {i['label']}", tr.get("n"), tr.get("n_events"), "n/a",
                             gnum(tr.get("time_median")), f"{gnum(tr.get('time_min'))}-{gnum(tr.get('time_max'))}", "n/a"))
        H.table(["data", "subjects", "events", "censored", "time: median [IQR]", "time: range",
                 "median follow-up (reverse Kaplan-Meier)"], rows)
    else:
        H.p("Diagnostic label in the column 'label'. How the reference diagnosis was made is not known to the "
            "software.")
        rows = []
        for role, d in (("development", train_desc), ("test", test_desc)):
            if d and d.get("labels"):
                rows.append((role, d["n"], ", ".join(f"{k} {pct(v, d['n'])}" for k, v in d["labels"].items())))
        if not rows:
            for i in infos:
                tr = i["config"].get("training") or {}
                rows.append((f"training of {i['label']}", tr.get("n"),
                             ", ".join(f"{k} {v}" for k, v in (tr.get("class_counts") or {}).items())))
        H.table(["data", "subjects", "classes"], rows)


def section_predictors(H, ctx: ReportContext):
    infos = ctx.infos
    H.h2("predictors")
    for i in infos:
        p = i["pipe"].preprocessor.params
        feat_cols = set(p.get("feature_columns") or [])
        fam: dict = {}
        for c in p.get("columns", []):
            f = feature_family(c, c in feat_cols)
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


def section_sample(H, ctx: ReportContext):
    endpoint, infos, test_res, test_desc = ctx.endpoint, ctx.infos, ctx.test_res, ctx.test_desc
    H.h2("sample")
    H.p("The sample size was given by the available data; no sample-size calculation is known to the software. "
        "Events per candidate predictor parameter (EPV) of development:")
    rows = []
    for i in infos:
        what = "events" if endpoint == "survival" else "subjects in the smallest class"
        rows.append((i["label"], i.get("dev_n"), f"{i.get('dev_events')} {what}", i["n_candidates"],
                     fnum(i.get("epv"), 1) if i.get("epv") is not None else "n/a"))
    H.table(["model", "development subjects", "events", "candidate parameters", "EPV"], rows)
    if test_res:
        r = next(iter(test_res.values()))
        if endpoint == "survival":
            H.p(f"Test data: {r['n']} subjects, {r['n_events']} events (at least {MIN_VALIDATION_EVENTS} events are "
                "commonly recommended for validation).")
        else:
            H.p(f"Test data: {r['n']} subjects; classes "
                + ", ".join(f"{k} {v}" for k, v in r["class_counts"].items()) + ".")


def section_missing(H, ctx: ReportContext):
    train_desc, test_desc = ctx.train_desc, ctx.test_desc
    H.h2("missing")
    cols = sorted({c for d in (train_desc, test_desc) if d for c in d["covariates"]})
    rows = []
    for c in cols:
        cells = []
        for d in (train_desc, test_desc):
            v = (d or {}).get("covariates", {}).get(c) if d else None
            cells.append("-" if v is None else pct(v["missing"], d["n"]))
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
