"""k-fold cross-validation and external validation.

Cross-validation fits a fresh :class:`~.pipeline.Pipeline` (imputation, encoding, feature
selection, scaling and model) on the training folds only and evaluates it on the held-out fold;
folds are stratified by event (survival) or label (diagnosis). External validation applies a
saved model to a second manifest, after checking that its columns match.
"""

from __future__ import annotations

import time as _time

import numpy as np

from ..errors import CMRRiskError
from .evaluation import diagnosis_report, evaluate_pipeline
from .pipeline import Pipeline
from .tabular import Table

SUMMARY_KEYS = {"survival": ("c_index_harrell", "c_index_uno", "integrated_brier", "td_auc_mean"),
                "diagnosis": ("accuracy", "balanced_accuracy", "auc_macro")}


def folds(table: Table, endpoint: str, k: int, seed: int):
    from sklearn.model_selection import StratifiedKFold

    strata = np.asarray(table.event, int) if endpoint == "survival" else np.asarray(table.label, str)
    _, counts = np.unique(strata, return_counts=True)
    if k < 2:
        raise CMRRiskError(f"cross-validation needs at least 2 folds (got {k}).")
    if counts.min() < k:
        raise CMRRiskError(f"{table.source}: the smallest {'event group' if endpoint == 'survival' else 'class'}"
                           f" has {counts.min()} subject(s), fewer than the {k} folds; use fewer folds.")
    return list(StratifiedKFold(k, shuffle=True, random_state=seed).split(np.zeros(len(strata)), strata))


def cross_validate(table: Table, endpoint: str, model: str | None = None, k: int = 5, seed: int = 0,
                   max_features: int | None = None, model_params: dict | None = None,
                   n_boot: int = 0, progress=None) -> dict:
    """Per-fold metrics, their mean and SD, and (diagnosis) metrics of the pooled out-of-fold
    probabilities. Every fitted step sees the training folds only. ``progress``: a
    :class:`cmrrisk.progress.Progress`, updated before each fold and at the end (a cancel
    stops before the next fold); with the folds as tasks on the command's engine, before the
    first and at the end."""
    from ..parallel import fits_on_workers, map_fits
    from ..progress import as_progress

    progress = as_progress(progress)
    table.require(endpoint)
    splits = folds(table, endpoint, k, seed)
    args = [(endpoint, model, seed, max_features, model_params, n_boot, f, tr, te)
            for f, (tr, te) in enumerate(splits)]
    if fits_on_workers(len(args), len(table)):  # each fold a task on the command's engine
        progress.update(0, k, f"cross-validation: {k} folds on the workers")
        results = map_fits(_fold, args, shared=(table,))
    else:  # in this process, with progress before each fold
        results = []
        for f, a in enumerate(args):
            progress.update(f, k, f"cross-validation fold {f + 1}/{k}")
            results.append(_fold(table, *a))
    progress.report(k, k, f"{k}-fold cross-validation done")
    per_fold = [m for m, _ in results]
    oof = None
    if endpoint == "diagnosis":
        classes = sorted(set(table.label))
        oof = np.zeros((len(table), len(classes)))
        for (tr, te), (_, (pipe_classes, p)) in zip(splits, results):
            # align fold classes with the whole table's classes
            for j, c in enumerate(pipe_classes):
                oof[te, classes.index(c)] = p[:, j]
    summary = {}
    for key in SUMMARY_KEYS[endpoint]:
        v = [m.get(key) for m in per_fold if m.get(key) is not None]
        if v:
            summary[key] = {"mean": float(np.mean(v)), "sd": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0}
    out = {"k": k, "seed": seed, "endpoint": endpoint, "model": model or Pipeline(endpoint).model_name,
           "n": len(table), "summary": summary, "folds": per_fold}
    if endpoint == "diagnosis":
        classes = sorted(set(table.label))
        y = np.array([classes.index(v) for v in table.label])
        out["pooled_out_of_fold"] = diagnosis_report(y, oof, classes, n_boot=max(n_boot, 0), seed=seed)
    return out


def _fold(table, endpoint, model, seed, max_features, model_params, n_boot, f, tr, te):
    """One fold of :func:`cross_validate`: (its metrics, and for a diagnosis (the pipeline's
    classes, the held-out probabilities))."""
    t0 = _time.time()
    pipe = Pipeline(endpoint, model, seed=seed, max_features=max_features,
                    model_params=model_params).fit(table.subset(tr))
    test = table.subset(te)
    m = evaluate_pipeline(pipe, test, n_boot=n_boot, seed=seed)
    m["fold"], m["n_train"], m["seconds"] = f, len(tr), round(_time.time() - t0, 2)
    return m, ((pipe.classes, pipe.predict_proba(test)) if endpoint == "diagnosis" else None)


def needs_image_features(pipe) -> bool:
    return bool(pipe.preprocessor.params.get("image_columns"))


#: the manifest column holding a simulation's true log-hazard (``cmrrisk synth`` writes it)
ORACLE_COLUMN = "true_log_hazard"


def oracle_c_index_on(table, manifest: str, column: str | None = ORACLE_COLUMN):
    """Harrell's C of a known true risk score, the manifest's ``column`` (a synthetic cohort's
    ``true_log_hazard``), on the table's subjects: the best C-index any model could reach on
    them, reported beside each model's. None when ``column`` is None, the manifest has no such
    column (real data) or a subject lacks a value."""
    import csv

    from .evaluation import harrell_or_nan

    if table.time is None or not column:
        return None
    with open(manifest, newline="") as fh:
        rows = {r.get("subject"): r.get(column) for r in csv.DictReader(fh)}
    try:
        lh = np.array([float(rows[s]) for s in table.subjects])
    except (KeyError, TypeError, ValueError):
        return None
    c = harrell_or_nan(np.asarray(table.time, float), np.asarray(table.event), lh) \
        if np.isfinite(lh).all() else float("nan")
    return None if np.isnan(c) else float(c)


def external_validation(model_dir: str, manifest: str, n_boot: int = 200, seed: int = 0,
                        cache_dir: str | None = None, horizons=None,
                        oracle_column: str | None = ORACLE_COLUMN) -> dict:
    """Load a saved model (checksums verified), check the manifest matches its inputs, evaluate
    (survival: at ``horizons``, default the model's, see :meth:`Pipeline.horizons`).
    ``oracle_column``: a manifest column holding the true risk score (simulated data), whose
    C-index is reported as ``c_index_oracle``; None: none."""
    from .store import load_pipeline
    from .tabular import load_table

    pipe = load_pipeline(model_dir)
    table = load_table(manifest, pipe.endpoint, need_outcome=True, cache_dir=cache_dir,
                       image_features=needs_image_features(pipe))
    res = evaluate_pipeline(pipe, table, n_boot=n_boot, seed=seed, horizons=horizons)
    if pipe.endpoint == "survival":
        res["time_range"] = [float(np.min(table.time)), float(np.max(table.time))]
        oracle = oracle_c_index_on(table, manifest, oracle_column)
        if oracle is not None:
            res["c_index_oracle"] = oracle
    res["model_dir"] = model_dir
    res["manifest"] = manifest
    res["model"] = pipe.model_name
    return res
