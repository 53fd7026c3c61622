"""Prediction for one study in memory, and training with progress and cancel.

The study itself is a :class:`cmrrisk.study.Study` (images, label maps, covariates, body surface
area; that module says what a study *is*, this one what is predicted for it). These are the
functions behind the CMRRisk Predict module in Slicer (its Logic converts nodes to a ``Study``
with :func:`cmrrisk.mrml.study_from_nodes` and results to table and plot nodes); they import no
Slicer code and are used from Python too::

    pipe = load_pipeline("my_model")
    study = Study(ed=ed, es=es, covariates={"age": 61, "sex": "F"})
    table, notes = study_table(pipe, study)
    result = predict_table(pipe, table)      # risk, risk group, survival curve / class probabilities
    result = predict_study("my_model", study)  # the same from a model directory, in one call

    train_model("cohort.csv", "survival", "my_model", progress=Progress(report, cancel))

A study's image features are computed by the same code as ``cmrrisk features``
(:func:`cmrrisk.features.cohort.image_features`) with the options recorded in the model, and the
model refuses them (as it refuses a manifest) when its feature settings or the bundled
segmentation models differ from those it was trained with.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from typing import Callable

import numpy as np

from ..errors import Cancelled, CMRRiskError  # noqa: F401  (Cancelled: re-exported, see below)
from ..progress import Progress, as_progress
from ..study import Study
from .formatting import fmt
from .models.targets import risk_group
from .tabular import Table, feature_settings

# ``Cancelled`` (raised when the caller's ``cancel()`` returned True, see :class:`cmrrisk.progress.Progress`;
# nothing was written) lives in
# :mod:`cmrrisk.errors` so that image-feature extraction raises the very same class.


#: points of the survival curve returned by :func:`predict_table`
CURVE_POINTS = 60


def _study_features(pipe, study: Study, info, device=None, progress=None) -> tuple[dict, dict]:
    """Image features of the study with the model's feature options, and their settings record.
    ``device`` (optional) runs the segmentation network there instead of the recorded device
    (the features mean the same; the settings record keeps the model's)."""
    from ..features.cohort import image_features, settings_record

    want = (pipe.preprocessor.params.get("feature_settings") or {}).get("options") or {}
    opts = {k: v for k, v in want.items() if k in ("radiomics", "deep", "device")}
    if study.ed is None and study.lge is None:
        raise CMRRiskError("this model uses image features: give the study's ED and ES frames "
                           f"(image columns in training: {', '.join(pipe.preprocessor.params['image_columns'])}).")
    run_opts = dict(opts, device=device) if device else opts
    feats = image_features(study, options=run_opts, info=info, progress=progress)
    return feats, feature_settings(settings_record(opts))


def study_table(pipe, study: Study, workdir: str | None = None, info: dict | None = None,
                device: str | None = None, progress: Progress | None = None) -> tuple[Table, list]:
    """A one-subject :class:`Table` for ``pipe`` from ``study`` (:class:`cmrrisk.study.Study`:
    images, label maps or ``None`` for the bundled models, covariates {column: value}, body
    surface area). Returns the table and notes (e.g. covariates imputed).

    A model over images (``multiinput``) reads image files: with ``workdir`` the volumes are
    written there as NIfTI and the table points to them (the caller removes it); without, the
    table has no image paths (for callers that pass the image tensors themselves).

    ``device`` and ``progress`` (a :class:`cmrrisk.progress.Progress`) go to the image-feature
    extraction (:func:`cmrrisk.features.cohort.image_features`)."""
    import pandas as pd

    from ..image import write_image

    params = pipe.preprocessor.params
    cols, kinds = params["columns"], params["kinds"]
    feature_cols = set(params.get("feature_columns") or [])
    ed, es, lge, subject = study.ed, study.es, study.lge, study.subject
    covariates = {str(k): v for k, v in dict(study.covariates or {}).items()}
    unknown = sorted(c for c in covariates if c not in cols)
    notes = []
    if unknown:
        raise CMRRiskError(f"covariate(s) {', '.join(unknown)} are not inputs of this model "
                           f"(its covariates: {', '.join(c for c in cols if c not in feature_cols) or 'none'}).")
    info = {} if info is None else info
    values, provenance, image_cols = {}, {}, []
    if params.get("image_columns"):
        feats, provenance = _study_features(pipe, study, info, device, progress)
        values.update({c: feats.get(c) for c in feature_cols})
        image_cols = list(params["image_columns"])
    data, missing = {}, []
    for c in cols:
        v = values.get(c) if c in feature_cols else covariates.get(c)
        if v is None or (isinstance(v, str) and not v.strip()) or (isinstance(v, float) and math.isnan(v)):
            if c not in feature_cols:
                missing.append(c)
            data[c] = [None] if kinds[c] == "categorical" else [np.nan]
        elif kinds[c] == "categorical":
            data[c] = [str(v).strip()]
        else:
            try:
                data[c] = [float(v)]
            except (TypeError, ValueError) as exc:
                raise CMRRiskError(f"covariate '{c}': {v!r} is not a number.") from exc
    df = pd.DataFrame(data, index=pd.Index([subject], name="subject"), columns=cols)
    for c in cols:
        if kinds[c] == "categorical":
            df[c] = df[c].astype(object)
    if missing:
        notes.append("covariates not given (imputed with the training median or first level): "
                     + ", ".join(missing))
    absent = sorted(c for c in feature_cols if values.get(c) is None)
    if absent and image_cols:
        notes.append(f"{len(absent)} image feature(s) absent for this study (imputed), e.g. {absent[0]}")
    images = []
    if pipe.model.uses_inputs:
        if ed is None or es is None:
            raise CMRRiskError(f"model {pipe.model_name!r} reads the cine images: give the ED and ES frames.")
    if pipe.model.uses_inputs and workdir is not None:
        row = {"subject": subject}
        for key, vol, seg in (("cine_ed", ed, study.ed_seg), ("cine_es", es, study.es_seg),
                              ("lge", lge, study.lge_seg)):
            if vol is None:
                continue
            row[key] = os.path.join(workdir, f"{key}.nii.gz")
            write_image(vol, row[key])
            if seg is not None:
                row[f"{key}_seg"] = os.path.join(workdir, f"{key}_seg.nii.gz")
                write_image(vol.with_array(np.asarray(seg, np.uint8)), row[f"{key}_seg"])
        images = [row]
    table = Table("<study>", [subject], df, image_columns=image_cols,
                  feature_columns=[c for c in cols if c in feature_cols], lines=[0],
                  feature_provenance=provenance, images=images)
    return table, notes


def predict_table(pipe, table: Table, horizons=None, curve_points: int = CURVE_POINTS) -> list:
    """Predictions for every subject of ``table``: a list of dicts.

    Survival: ``risk`` (higher = worse), ``risk_group`` (low / intermediate / high, by the
    tertiles of the training risks), ``survival`` ({horizon: probability}; default horizons: the
    quartiles of the training event times) and ``curve`` ({"time": [...], "survival": [...]}
    from 0 to the longest training follow-up). Diagnosis: ``predicted`` and ``probabilities``."""
    out = []
    if pipe.endpoint == "diagnosis":
        p = pipe.predict_proba(table)
        for i, s in enumerate(table.subjects):
            j = int(np.argmax(p[i]))
            out.append({"subject": s, "endpoint": "diagnosis", "predicted": pipe.classes[j],
                        "probability": float(p[i, j]),
                        "probabilities": {c: float(v) for c, v in zip(pipe.classes, p[i])}})
        return out
    risk = pipe.predict_risk(table)
    hs = [float(h) for h in (horizons if horizons is not None else pipe.horizons())]
    tmax = float(pipe.training.get("time_max") or (max(hs) if hs else 1.0))
    grid = np.linspace(0.0, tmax, int(curve_points))
    times = np.array(sorted(set(hs) | set(grid.tolist())))
    surv = pipe.predict_survival(table, times)
    cut = pipe.training.get("risk_cutpoints")
    for i, s in enumerate(table.subjects):
        row = {"subject": s, "endpoint": "survival", "risk": float(risk[i]),
               "survival": {h: float(surv[i, int(np.searchsorted(times, h))]) for h in hs},
               "curve": {"time": [float(t) for t in grid],
                         "survival": [float(surv[i, int(np.searchsorted(times, t))]) for t in grid]}}
        if cut:
            row["risk_group"] = risk_group(cut, risk[i])
        out.append(row)
    return out


def predict_study(model_dir_or_pipe, study: Study | None = None, horizons=None, info: dict | None = None,
                  device: str | None = None, progress: Progress | None = None) -> dict:
    """Load a model directory (or take a loaded pipeline) and predict for ``study`` (a
    :class:`cmrrisk.study.Study`; None: an empty one, for a model over covariates that imputes
    them all); the result of :func:`predict_table` for it, with ``notes`` and ``model``.

    ``device``: where the segmentation network runs (default: as recorded in the model);
    ``progress`` (a :class:`cmrrisk.progress.Progress`): image features in 0..0.85 of it, then
    the prediction, then the end; a cancel raises :class:`Cancelled` before the next step."""
    from . import multiinput  # noqa: F401  (registers the image models)
    from .store import load_pipeline

    pipe = load_pipeline(model_dir_or_pipe) if isinstance(model_dir_or_pipe, str) else model_dir_or_pipe
    with tempfile.TemporaryDirectory(prefix="cmrrisk_study_") as work:
        progress = as_progress(progress)
        table, notes = study_table(pipe, study if study is not None else Study(), work, info, device,
                                   progress.part(0.0, 0.85))
        progress.fraction(0.9, "prediction")
        res = predict_table(pipe, table, horizons)[0]
    progress.report(1, 1, "prediction done")
    res["notes"] = notes
    res["model"] = pipe.model_name
    return res


def train_model(manifest: str, endpoint: str, out: str, model: str | None = None, seed: int = 0,
                max_epochs: int | None = None, cv: int = 5, max_features: int | None = None,
                cache_dir: str | None = None, progress: Progress | None = None,
                log: Callable[[str], None] | None = None, params: dict | None = None) -> dict:
    """Train a model on a manifest and write its model directory (what ``cmrrisk train`` does).

    ``params``: the model's hyper-parameters, {name: value} (values may be text, as typed in a
    form: '0.5', '[64,64]'); checked before any work (an unknown name or a value out of range
    raises :class:`~cmrrisk.errors.CMRRiskError` naming it and the allowed ones), recorded in the
    model directory (``config.json``: ``model_params``, ``hyperparameters``) and its model card.
    :func:`cmrrisk.predict.base.parameter_table` lists a kind's parameters and defaults.

    ``progress`` (a :class:`cmrrisk.progress.Progress`) is updated after each step (reading and
    image features, each cross-validation fold, the final fit, writing); its cancel is asked
    there and, inside network and boosting fits, once per epoch or round: it raises
    :class:`Cancelled` and the model directory is not written. Returns {"model_dir", "model", "cv" (the metrics or
    None), "chosen", "cv_scores", "seconds"}."""
    from . import multiinput  # noqa: F401  (registers the image models)
    from .base import DEFAULTS, get_class, parse_params

    from ..distributed import close as close_group
    from ..distributed import distributed_context, world_size
    from ..modeldir import check_output

    if endpoint not in DEFAULTS:
        raise CMRRiskError(f"endpoint {endpoint!r}: choose survival or diagnosis.")
    name = model or DEFAULTS[endpoint]
    user_params = parse_params(name, endpoint, dict(params or {}))
    check_output(out)  # before any work: an existing folder of other files is never replaced
    image_model = get_class(name, endpoint).uses_inputs
    k = int(cv or 0)
    if k == 1 or k < 0:
        raise CMRRiskError(f"--cv {cv}: give 0 (no cross-validation) or at least 2 folds.")
    params = {"max_epochs": int(max_epochs)} if max_epochs else {}
    params.update(user_params)
    world, rank = world_size(), 0
    if world > 1:  # under torchrun: every process runs this; the network fits are data-parallel
        cls = get_class(name, endpoint)
        if not getattr(cls, "data_parallel", False):
            raise CMRRiskError(f"model {name!r} is not trained data-parallel: under torchrun ({world} "
                               "processes) only --model multiinput is. Run `cmrrisk train` without "
                               "torchrun (--workers N spreads this model's fits over worker processes).")
        cls(seed=seed, **params).check_world(world)
        rank = distributed_context("cpu")[0]
        if rank != 0:  # rank 0 alone reports and writes
            log, progress = None, None
    try:
        return _train_model(manifest, endpoint, out, name, seed, k, max_features, cache_dir, progress,
                            log, params, user_params, image_model, rank)
    finally:
        close_group()


def _train_model(manifest, endpoint, out, name, seed, k, max_features, cache_dir, progress, log,
                 params, user_params, image_model, rank) -> dict:
    from .base import interrupt_hook
    from .pipeline import Pipeline
    from .store import save_pipeline
    from .tabular import load_table
    from .validation import cross_validate

    from ..distributed import barrier

    log = log or (lambda _msg: None)
    total = 3 + (k if k > 1 else 0)
    state = {"step": 0, "doing": "reading the manifest"}

    progress = as_progress(progress)

    def stop_if_asked():
        if progress.cancelled():
            raise Cancelled(f"training cancelled ({state['doing']})")

    def tick(msg, doing):
        state["step"] += 1
        progress.report(state["step"], total, msg)
        state["doing"] = doing
        stop_if_asked()

    t0 = time.time()
    stop_if_asked()
    with interrupt_hook(stop_if_asked):
        # an image network reads the images itself: its covariates are the manifest's own columns
        table = load_table(manifest, endpoint, cache_dir=cache_dir, image_features=not image_model)
        log(f"{manifest}: {len(table)} subjects, {table.covariates.shape[1]} input column(s); "
            f"model {name} ({endpoint})")
        tick(f"read {len(table)} subjects", "cross-validation fold 1" if k > 1 else "final fit")
        metrics = None
        if k > 1:
            c0 = time.time()
            metrics = cross_validate(
                table, endpoint, name, k=k, seed=seed, max_features=max_features, model_params=params,
                progress=Progress(lambda done, of, _msg: done and tick(
                    f"cross-validation fold {done}/{of}",
                    f"cross-validation fold {done + 1}" if done < of else "final fit")))
            metrics["seconds"] = round(time.time() - c0, 1)
            log(f"{k}-fold cross-validation: " + ", ".join(
                f"{key} {fmt(v['mean'])} (SD {fmt(v['sd'])})" for key, v in metrics["summary"].items()))
        pipe = Pipeline(endpoint, name, seed=seed, max_features=max_features, model_params=params).fit(table)
    chosen = getattr(pipe.model, "chosen", None)
    if chosen:
        log(f"{name}: chose {'+'.join(chosen)} by {pipe.model.params['folds']}-fold CV inside the training "
            "data (" + ", ".join(f"{key} {v:.3f}" for key, v in pipe.model.cv_scores.items()) + ")")
    tick("final fit on all subjects", "writing the model")
    pipe.user_params = user_params
    if rank == 0:
        save_pipeline(pipe, out, metrics)
        log(f"model written: {out}")
    barrier()  # under torchrun the other processes end once rank 0 has written
    progress.report(total, total, "model written")
    return {"model_dir": out, "model": name, "cv": metrics, "chosen": chosen,
            "cv_scores": getattr(pipe.model, "cv_scores", None), "seconds": round(time.time() - t0, 1)}
