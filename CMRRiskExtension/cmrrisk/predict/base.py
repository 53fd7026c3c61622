"""The one model interface and the model registry.

Every model, tabular or image-based, is a :class:`Model`:

- ``fit(x, y, inputs=None)``: ``x`` the preprocessed float32 matrix (rows = subjects);
  ``y`` a :class:`SurvivalTarget` or :class:`DiagnosisTarget`; ``inputs`` optional per-subject
  extra inputs (a list of dicts, e.g. image paths from the manifest) for models that need them;
- ``predict_risk(x, inputs=None)``: one number per subject, higher = worse (survival: higher
  hazard; diagnosis: not used, see ``predict_proba``);
- ``predict_survival(x, times, inputs=None)``: survival probabilities, shape (n, len(times));
- ``predict_proba(x, inputs=None)`` (diagnosis): class probabilities, shape (n, n_classes);
- ``state()`` -> (arrays, config): plain numpy arrays (stored as safetensors) and a JSON-able
  dict; ``from_state(config, arrays)`` rebuilds the model from them. No pickled objects.

A later model (e.g. a multi-input image network) registers itself with :func:`register` under
its name and endpoint and sets ``uses_inputs = True`` to receive the manifest's image paths.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np

from ..errors import CMRRiskError

_REGISTRY: dict = {}
DEFAULTS = {"survival": "auto", "diagnosis": "auto"}

#: a callable set by a long-running caller (``cmrrisk.predict.study.train_model``) that raises to
#: stop training; models call :func:`check_interrupt` once per epoch or boosting round
_INTERRUPT = None


def check_interrupt() -> None:
    """Give a caller's cancel request a chance to stop a long fit (raises its exception)."""
    if _INTERRUPT is not None:
        _INTERRUPT()


@contextlib.contextmanager
def interrupt_hook(fn):
    """Within the block, :func:`check_interrupt` calls ``fn`` (which raises to stop)."""
    global _INTERRUPT
    previous, _INTERRUPT = _INTERRUPT, fn
    try:
        yield
    finally:
        _INTERRUPT = previous


@dataclass
class SurvivalTarget:
    time: np.ndarray
    event: np.ndarray

    def __post_init__(self):
        self.time = np.asarray(self.time, dtype=float)
        self.event = np.asarray(self.event, dtype=int)

    def __getitem__(self, idx):
        return SurvivalTarget(self.time[idx], self.event[idx])


@dataclass
class DiagnosisTarget:
    y: np.ndarray  # integer class index
    classes: list

    def __getitem__(self, idx):
        return DiagnosisTarget(np.asarray(self.y)[idx], self.classes)


class Model:
    name = "model"
    endpoint = "survival"
    uses_inputs = False

    def __init__(self, seed: int = 0, **params):
        self.seed = seed
        self.params = params

    def fit(self, x, y, inputs=None):  # pragma: no cover - interface
        raise NotImplementedError

    def predict_risk(self, x, inputs=None) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def predict_survival(self, x, times, inputs=None) -> np.ndarray:
        raise CMRRiskError(f"model {self.name!r} does not predict survival functions.")

    def predict_proba(self, x, inputs=None) -> np.ndarray:
        raise CMRRiskError(f"model {self.name!r} does not predict class probabilities.")

    def state(self):  # pragma: no cover
        raise NotImplementedError

    @classmethod
    def from_state(cls, config: dict, arrays: dict) -> "Model":  # pragma: no cover
        raise NotImplementedError

    def describe(self) -> dict:
        return {"name": self.name, "endpoint": self.endpoint, "seed": self.seed, "params": self.params}


def register(cls):
    """Class decorator: make ``cls`` available under ``(cls.endpoint, cls.name)``."""
    _REGISTRY[(cls.endpoint, cls.name)] = cls
    return cls


def model_names(endpoint: str) -> list:
    _load_builtin()
    return sorted(n for (e, n) in _REGISTRY if e == endpoint)


def get_class(name: str, endpoint: str):
    _load_builtin()
    key = (endpoint, name)
    if key not in _REGISTRY:
        raise CMRRiskError(f"model {name!r} is not a {endpoint} model; choose one of "
                           f"{', '.join(model_names(endpoint))}.")
    return _REGISTRY[key]


def create(name: str | None, endpoint: str, seed: int = 0, **params) -> Model:
    """A new, unfitted model; ``name=None`` gives the endpoint's default."""
    cls = get_class(name or DEFAULTS[endpoint], endpoint)
    return cls(seed=seed, **params)


#: modules that register further models when they are installed (e.g. the image network)
OPTIONAL_MODULES = ("multiinput",)


def _load_builtin():
    import importlib

    from . import diagnosis, survival  # noqa: F401  (registration side effect)

    for name in OPTIONAL_MODULES:
        try:
            importlib.import_module(f"{__package__}.{name}")
        except ImportError as exc:  # absent, or its own dependencies are missing
            if getattr(exc, "name", None) != f"{__package__}.{name}":
                import warnings

                warnings.warn(f"models of cmrrisk.predict.{name} unavailable: {exc}")


# ----------------------------------------------------------------- shared survival helpers

def breslow(risk, time, event):
    """Breslow estimate of the baseline cumulative hazard for log-risks ``risk`` (centred on
    their mean). Returns (event times, cumulative hazard at those times, centre)."""
    risk = np.asarray(risk, dtype=float)
    centre = float(risk.mean())
    w = np.exp(np.clip(risk - centre, -50, 50))
    order = np.argsort(time, kind="stable")
    t, e, w = np.asarray(time, float)[order], np.asarray(event)[order], w[order]
    at_risk = np.cumsum(w[::-1])[::-1]
    times = np.unique(t[e > 0])
    if len(times) == 0:
        raise CMRRiskError("no events in the training data: a survival model needs events "
                           "(event = 1) to learn from.")
    first = np.searchsorted(t, times, side="left")
    deaths = np.bincount(np.searchsorted(times, t[e > 0]), minlength=len(times))
    h = deaths / at_risk[first]
    return times, np.cumsum(h), centre


def step_at(xp, fp, x, before=0.0):
    """Right-continuous step function through (xp, fp), ``before`` left of xp[0]."""
    i = np.searchsorted(np.asarray(xp), np.asarray(x, dtype=float), side="right") - 1
    fp = np.asarray(fp)
    return np.where(i >= 0, fp[np.clip(i, 0, len(fp) - 1)], before)


def cox_survival(risk, centre, bh_times, bh_cumhaz, times):
    h0 = step_at(bh_times, bh_cumhaz, times)
    r = np.exp(np.clip(np.asarray(risk, float) - centre, -50, 50))
    return np.exp(-np.outer(r, h0))


@contextlib.contextmanager
def torch_threads(n: int = 1):
    """Run small tabular networks on ``n`` CPU threads (restored afterwards): for networks this
    size more threads only add synchronisation, and on a shared machine they can be 40x slower."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)
