"""Prognostic (time-to-event) and diagnostic models on covariates and image features.

- :mod:`.tabular`: manifest loading and validation, preprocessing fitted on training rows only;
- :mod:`.base`: the model interface (fit / predict_risk / predict_survival / predict_proba,
  state / from_state) and the registry of model names;
- :mod:`.survival`, :mod:`.diagnosis`: the models;
- :mod:`.pipeline`: preprocessing + model, fitted and applied on a :class:`~.tabular.Table`;
- :mod:`.store`: model directories (docs/explanation/architecture.md) with SHA-256 verification;
- :mod:`.evaluation`: C-indices, time-dependent AUC, Brier score, calibration, Kaplan-Meier by
  risk group, diagnostic metrics, bootstrap confidence intervals;
- :mod:`.validation`: k-fold cross-validation (every fitted step inside the folds) and external
  validation;
- :mod:`.commands`: the ``train``, ``predict`` and ``evaluate`` subcommands.
"""

from .base import DEFAULTS, create, model_names, register  # noqa: F401
