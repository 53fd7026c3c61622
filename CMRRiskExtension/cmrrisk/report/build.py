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

import datetime as _dt
import os


from ..errors import CMRRiskError
from .data import (check_outcome_columns, describe_manifest, evaluate_model, load_model_info, read_explanations,
                   read_qc, set_labels, subgroup_performance)
from .figures import calibration_figure, confusion_figure, km_figure, roc_figure
from .context import ReportContext
from .format import Html, MAX_EXPLANATIONS
from .limitations import limitations
from .sections_cohort import (section_data, section_missing, section_outcome, section_predictors, section_prep,
                              section_sample, section_summary)
from .sections_methods import (section_development, section_imbalance, section_methods, section_output,
                               section_participants)
from .sections_results import (section_explanations, section_extra, section_limitations, section_performance,
                               section_software, section_subgroups, section_todo)


# ------------------------------------------------------------------------------ report

def write_report(out_html: str, models, train_manifest: str | None = None, test_manifest: str | None = None,
                 qc: str | None = None, explanations=None, extra: dict | None = None, title: str | None = None,
                 n_boot: int = 200, seed: int = 0, cache_dir: str | None = None, apparent: bool | None = None,
                 max_explanations: int = MAX_EXPLANATIONS, progress=None,
                 model_manifests: dict | None = None) -> dict:
    """Write a self-contained TRIPOD+AI-style HTML report of ``models`` and return what it computed.

    ``models``: one model directory or a list of them (same endpoint); ``train_manifest``: the
    development data (described; optional); ``test_manifest``: held-out or external data with
    outcomes on which every model is evaluated (optional); ``qc``: a ``qc.json`` or its folder;
    ``explanations``: ``cmrrisk explain`` output folders; ``extra``: facts to show, e.g.
    ``{"data_source": "...", "synthetic": True, "metrics": {...}, "notes": [...]}``;
    ``progress``: a :class:`cmrrisk.progress.Progress` told each step (a cancel stops before the
    next; the HTML is written at the end only); ``apparent``: also evaluate on ``train_manifest`` (labelled apparent / optimistic; default:
    only when there is no test manifest); ``model_manifests``: ``{model_dir: {"train": path,
    "test": path}}`` for a model that reads other columns of the same subjects (e.g. a
    features table) than ``train_manifest`` / ``test_manifest``; it is evaluated on those.

    Returns a dict: ``endpoint``, ``models`` (per model: label, directory, name, chosen sub-model,
    cross-validation metrics, ``test`` and ``apparent`` metrics with per-subject predictions and
    Kaplan-Meier curves), ``figures`` (name -> base64 PNG), ``limitations``, ``train`` / ``test``
    (cohort descriptions), ``qc`` (summary) and ``html`` (the path written).
    """
    from .. import __version__
    from ..modeldir import write_text_atomic

    from ..progress import as_progress

    progress = as_progress(progress)
    say = progress.say
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
    set_labels(infos)
    if endpoint == "diagnosis":
        cls = {tuple(i["pipe"].classes or []) for i in infos}
        if len(cls) > 1:
            raise CMRRiskError("diagnosis models with different classes cannot share one report: "
                               + ", ".join(f"{i['model_dir']} ({', '.join(i['pipe'].classes)})" for i in infos) + ".")
    dev_missing = []
    if train_manifest:
        train_manifest = os.fspath(train_manifest)
        dev_missing = check_outcome_columns(train_manifest, endpoint, "development")
    if test_manifest:
        test_manifest = os.fspath(test_manifest)
        check_outcome_columns(test_manifest, endpoint, "test")
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
                check_outcome_columns(test_i, endpoint, "test")
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

    ctx = ReportContext(endpoint=endpoint, infos=infos, train_manifest=train_manifest, test_manifest=test_manifest,
                        train_desc=train_desc, test_desc=test_desc, overlap=overlap, has_test=has_test,
                        apparent=apparent, n_boot=n_boot, seed=seed, extra=extra, qc_rep=qc_rep, qc_in=qc_in,
                        expl=expl, test_res=test_res, app_res=app_res, version=__version__)
    ctx.lims = limitations(ctx)
    if dev_missing:
        ctx.lims.append(f"The development manifest ({os.path.basename(train_manifest)}) has no "
                        f"{', '.join(dev_missing)} column(s): its outcomes are not described.")
    ctx.figs = collect_figures(ctx)
    sub_src = test_res or app_res
    sub_desc = test_desc if test_res else train_desc
    if sub_src and sub_desc:
        ctx.subgroups = subgroup_performance(endpoint, sub_src, sub_desc, qc_rep, min(n_boot, 200), seed)

    # ---------------------------------------------------------------- html
    kind = "prognostic (time-to-event)" if endpoint == "survival" else "diagnostic"
    if not title:
        title = (f"{'Development and evaluation' if has_test else 'Development'} of {len(infos)} {kind} "
                 f"model{'s' if len(infos) > 1 else ''} ({', '.join(i['label'] for i in infos)}): TRIPOD+AI report")
    now = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    H = Html()
    for section in sections(ctx):
        section(H, ctx)
    text = H.render(title, f"Generated by CMRRisk {__version__} on {now} with 'cmrrisk report'. "
                           "Research software; not a medical device.")
    write_text_atomic(os.fspath(out_html), text)
    progress.report(None, None, f"report written: {out_html}")

    def strip(info):
        return {k: v for k, v in info.items() if k not in ("pipe",)}

    return {"html": os.fspath(out_html), "endpoint": endpoint, "title": title,
            "models": [{**strip(i), "test": test_res.get(i["label"]), "apparent": app_res.get(i["label"])}
                       for i in infos],
            "figures": ctx.figs, "limitations": ctx.lims, "subgroups": ctx.subgroups,
            "train": public_desc(train_desc), "test": public_desc(test_desc),
            "qc": None if qc_rep is None else {"path": qc_rep["_path"], "volume": qc_rep.get("volume"),
                                               "check_counts": qc_rep["veracity"].get("check_counts")},
            "explanations": {"total": expl["total"], "shown": len(expl["items"])},
            "overlap_subjects": overlap}


def sections(ctx: ReportContext) -> list:
    """The section functions of a report, in order (``section(H, ctx)`` each)."""
    out = [section_summary, section_data, section_prep, section_outcome, section_predictors, section_sample,
           section_missing, section_methods]
    if ctx.endpoint == "diagnosis":
        out.append(section_imbalance)
    out += [section_output, section_participants, section_development, section_performance]
    if ctx.subgroups:
        out.append(section_subgroups)
    out.append(section_explanations)
    if ctx.extra:
        out.append(section_extra)
    return out + [section_limitations, section_software, section_todo]


def collect_figures(ctx: ReportContext) -> dict:
    """Figure name -> base64 PNG: calibration and Kaplan-Meier (survival) or ROC and confusion
    (diagnosis), on the test data and on the development data (apparent)."""
    figs = {}
    for tag, results in (("test", ctx.test_res), ("apparent", ctx.app_res)):
        if not results:
            continue
        if ctx.endpoint == "survival":
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
    return figs


def public_desc(d):
    if d is None:
        return None
    return {k: v for k, v in d.items() if k not in ("values",)}
