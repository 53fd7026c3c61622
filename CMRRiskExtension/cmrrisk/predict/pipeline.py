"""Preprocessing + model as one unit: fitted on a training :class:`~.tabular.Table`, applied to
any table with the same columns. Cross-validation fits a fresh pipeline in every fold, so every
fitted step (imputation, encoding, selection, scaling, model) sees training rows only."""

from __future__ import annotations

import numpy as np

from ..errors import CMRRiskError
from .base import DiagnosisTarget, SurvivalTarget, create
from .tabular import Preprocessor, Table


class Pipeline:
    def __init__(self, endpoint: str, model: str | None = None, seed: int = 0,
                 max_features: int | None = None, model_params: dict | None = None):
        from .base import DEFAULTS

        self.endpoint = endpoint
        self.model_name = model or DEFAULTS[endpoint]
        self.seed = seed
        self.max_features = max_features
        self.model_params = dict(model_params or {})
        self.user_params: dict = {}  # the hyper-parameters a user set (recorded in the model directory)
        self.model = create(self.model_name, endpoint, seed=seed, **self.model_params)
        self.preprocessor = Preprocessor(max_features)
        self.classes: list | None = None
        self.training: dict = {}

    # ------------------------------------------------------------------------ targets
    def target(self, table: Table):
        table.require(self.endpoint)
        if self.endpoint == "survival":
            return SurvivalTarget(table.time, table.event)
        classes = self.classes if self.classes is not None else sorted(set(table.label))
        unknown = sorted(set(table.label) - set(classes))
        if unknown:
            raise CMRRiskError(f"{table.source}: label(s) {', '.join(unknown)} are not among the "
                               f"model's classes ({', '.join(classes)}).")
        return DiagnosisTarget(np.array([classes.index(v) for v in table.label]), classes)

    @staticmethod
    def inputs(table: Table):
        """Per-subject extra inputs for models that set ``uses_inputs`` (e.g. an image network):
        a list of {image column: absolute path}, one per subject, from the manifest."""
        if not table.images:
            raise CMRRiskError(f"{table.source}: this model needs image columns "
                               "(cine_ed, cine_es, cine, lge) in the manifest.")
        return table.images

    def fit(self, table: Table) -> "Pipeline":
        table.require(self.endpoint)
        if self.endpoint == "diagnosis":
            self.classes = sorted(set(table.label))
        y = self.target(table)
        self.preprocessor = Preprocessor(self.max_features).fit(table, self.endpoint)
        x = self.preprocessor.transform(table)
        if getattr(self.model, "wants_feature_names", False):
            self.model.feature_names = self.preprocessor.feature_names
        self.model.fit(x, y, self.inputs(table) if self.model.uses_inputs else None)
        self.training = training_summary(table, self.endpoint)
        if self.endpoint == "survival":
            # risk-group boundaries (tertiles of the training risks) for Kaplan-Meier curves
            r = self.model.predict_risk(x, self.model_inputs(table))
            self.training["risk_cutpoints"] = [float(q) for q in np.quantile(r, [1 / 3, 2 / 3])]
        return self

    def features(self, table: Table):
        """The preprocessed matrix the model sees for ``table``."""
        return self.preprocessor.transform(table)

    _x = features  # the name tests and older callers use

    def predict_risk(self, table: Table) -> np.ndarray:
        return self.model.predict_risk(self.features(table), self.model_inputs(table))

    def predict_survival(self, table: Table, times) -> np.ndarray:
        return self.model.predict_survival(self.features(table), np.asarray(times, float), self.model_inputs(table))

    def predict_proba(self, table: Table) -> np.ndarray:
        return self.model.predict_proba(self.features(table), self.model_inputs(table))

    def model_inputs(self, table):
        """The per-subject inputs for a model that reads them (None for the others)."""
        return self.inputs(table) if self.model.uses_inputs else None

    def horizons(self) -> list:
        """Default evaluation horizons: quartiles of the training event times."""
        return list(self.training.get("horizons", []))

    def predict_frame(self, table: Table, horizons=None):
        """A DataFrame (one row per subject) of predictions: survival: ``risk`` and
        ``survival_at_<t>`` for each horizon; diagnosis: ``predicted`` and ``p_<class>``."""
        import pandas as pd

        df = pd.DataFrame(index=pd.Index(table.subjects, name="subject"))
        if self.endpoint == "survival":
            df["risk"] = self.predict_risk(table)
            hs = list(horizons) if horizons is not None else self.horizons()
            if hs:
                s = self.predict_survival(table, hs)
                for j, h in enumerate(hs):
                    df[f"survival_at_{h:g}"] = s[:, j]
        else:
            p = self.predict_proba(table)
            df["predicted"] = [self.classes[i] for i in p.argmax(1)]
            for j, c in enumerate(self.classes):
                df[f"p_{c}"] = p[:, j]
        return df


def training_summary(table: Table, endpoint: str) -> dict:
    out = {"manifest": table.source, "n": len(table), "columns": list(table.covariates.columns)}
    if endpoint == "survival":
        t, e = np.asarray(table.time, float), np.asarray(table.event, int)
        et = t[e > 0]
        out.update({"n_events": int(e.sum()), "time_min": float(t.min()), "time_max": float(t.max()),
                    "time_median": float(np.median(t)),
                    "horizons": [float(np.quantile(et, q)) for q in (0.25, 0.5, 0.75)] if len(et) else []})
    else:
        labels, counts = np.unique(np.asarray(table.label, dtype=str), return_counts=True)
        out["class_counts"] = {str(k): int(v) for k, v in zip(labels, counts)}
    return out
