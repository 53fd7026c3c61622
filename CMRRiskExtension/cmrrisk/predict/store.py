"""Prediction model directories (docs/explanation/architecture.md).

Files: ``model.safetensors`` (every array of the model: network weights, coefficients, tree
nodes, baseline hazards), ``config.json`` (endpoint, model name and hyper-parameters, seed,
classes, training data summary, software versions), ``preprocessing.json`` (fitted imputation,
encoding, selection and scaling), ``feature_names.json``, ``metrics.json`` (cross-validation
results, when computed), ``MODEL_CARD.md`` and ``checksums.json`` (SHA-256 of every other file).
Nothing is pickled; :func:`load_pipeline` verifies every checksum before reading anything.
"""

from __future__ import annotations

import os

import numpy as np

from .. import modeldir
from ..errors import CMRRiskError
from .base import get_class
from .pipeline import Pipeline
from .tabular import Preprocessor

FORMAT = "cmrrisk-predict"
FORMAT_VERSION = 1
PREPROCESSING = "preprocessing.json"
FEATURES = "feature_names.json"
METRICS = "metrics.json"
CARD = "MODEL_CARD.md"


def versions() -> dict:
    out = modeldir.software_versions()
    for mod in ("sklearn", "sksurv", "pycox", "lifelines", "pandas", "safetensors"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:  # pragma: no cover - optional
            pass
    return out


def save_pipeline(pipe: Pipeline, model_dir: str, metrics: dict | None = None) -> None:
    import torch

    arrays, mconfig = pipe.model.state()
    state = {}
    for k, v in arrays.items():
        a = np.ascontiguousarray(np.asarray(v))
        if a.dtype == np.bool_:
            a = a.astype(np.uint8)
        state[f"model.{k}"] = torch.from_numpy(a.copy())
    config = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "endpoint": pipe.endpoint,
        "model_name": pipe.model_name, "seed": pipe.seed, "max_features": pipe.max_features,
        "model_params": pipe.model_params, "hyperparameters": getattr(pipe, "user_params", {}),
        "model": mconfig, "classes": pipe.classes,
        "inputs": {"columns": pipe.preprocessor.params["columns"],
                   "image_columns": pipe.preprocessor.params.get("image_columns", []),
                   "n_features": len(pipe.preprocessor.feature_names)},
        "training": pipe.training, "software": versions(),
    }
    extra = {PREPROCESSING: pipe.preprocessor.to_json(), FEATURES: pipe.preprocessor.feature_names,
             CARD: model_card(pipe, metrics)}
    if metrics is not None:
        extra[METRICS] = metrics
    modeldir.save(model_dir, state, config, extra)


def load_pipeline(model_dir: str) -> Pipeline:
    if not os.path.isdir(model_dir):
        raise CMRRiskError(f"{model_dir}: model directory not found; train one with "
                           "'cmrrisk train MANIFEST --endpoint ... --out MODEL_DIR'.")
    config, state = modeldir.load(model_dir)  # verifies SHA-256 of every file first
    if config.get("format") != FORMAT:
        raise CMRRiskError(f"{model_dir}: not a CMRRisk prediction model (format "
                           f"{config.get('format')!r}); segmentation models cannot predict risk.")
    if config.get("format_version", 0) > FORMAT_VERSION:
        raise CMRRiskError(f"{model_dir}: written by a newer CMRRisk (format version "
                           f"{config['format_version']}); update CMRRisk to load it.")
    sums = modeldir.read_json(os.path.join(model_dir, modeldir.CHECKSUMS))
    if PREPROCESSING not in sums:
        raise CMRRiskError(f"{model_dir}: {PREPROCESSING} missing from {modeldir.CHECKSUMS}.")
    pre = Preprocessor.from_json(modeldir.read_json(os.path.join(model_dir, PREPROCESSING)))
    arrays = {k[len("model."):]: v.numpy() for k, v in state.items() if k.startswith("model.")}
    cls = get_class(config["model"]["name"], config["endpoint"])
    pipe = Pipeline.__new__(Pipeline)
    pipe.endpoint = config["endpoint"]
    pipe.model_name = config["model_name"]
    pipe.seed = config["seed"]
    pipe.max_features = config.get("max_features")
    pipe.model_params = config.get("model_params", {})
    pipe.user_params = config.get("hyperparameters", {})
    pipe.model = cls.from_state(config["model"], arrays)
    pipe.preprocessor = pre
    pipe.classes = config.get("classes")
    pipe.training = config.get("training", {})
    pipe.model_dir = model_dir
    return pipe


def model_card(pipe: Pipeline, metrics: dict | None) -> str:
    t = pipe.training
    lines = [f"# CMRRisk {pipe.endpoint} model: {pipe.model_name}", "",
             f"- Training data: {t.get('manifest')} ({t.get('n')} subjects"
             + (f", {t.get('n_events')} events" if "n_events" in t else "")
             + (f", classes {t.get('class_counts')}" if "class_counts" in t else "") + ")",
             f"- Inputs: {len(pipe.preprocessor.params['columns'])} columns, "
             f"{len(pipe.preprocessor.feature_names)} features after preprocessing "
             "(median imputation, one-hot categories, "
             + (f"univariate selection of {pipe.max_features}, " if pipe.max_features else "")
             + "standardisation; fitted on the training data)",
             f"- Seed: {pipe.seed}"]
    if getattr(pipe, "user_params", None):
        lines.append("- Hyper-parameters set: " + ", ".join(f"{k}={v}" for k, v in sorted(pipe.user_params.items()))
                     + " (the others at their defaults)")
    chosen = getattr(pipe.model, "chosen", None)
    if chosen:
        lines.append(f"- Model choice: {'+'.join(chosen)}, by {pipe.model.params['folds']}-fold "
                     "cross-validation inside the training data (Harrell's C: "
                     + ", ".join(f"{k} {v:.3f}" for k, v in pipe.model.cv_scores.items()) + ")")
    if metrics:
        lines += ["", f"## {metrics.get('k')}-fold cross-validation (inside the training data; "
                  "every fitted step inside the folds)", ""]
        lines += [f"- {k}: {v['mean']:.3f} (SD {v['sd']:.3f})"
                  for k, v in metrics.get("summary", {}).items()]
    lines += ["", "Validate on an external cohort before any use; not a medical device.", ""]
    return "\n".join(lines)

