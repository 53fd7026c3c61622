"""The model interface and the registry of model kinds.

Every model, tabular or image-based, is a :class:`Model`:

- ``fit(x, y, inputs=None)``: ``x`` the preprocessed float32 matrix (rows = subjects);
  ``y`` a :class:`~.targets.SurvivalTarget` or :class:`~.targets.DiagnosisTarget`; ``inputs``
  optional per-subject extra inputs (a list of dicts, e.g. image paths from the manifest) for
  models that need them;
- ``predict_risk(x, inputs=None)``: one number per subject, higher = worse;
- ``predict_survival(x, times, inputs=None)``: survival probabilities, shape (n, len(times));
- ``predict_proba(x, inputs=None)`` (diagnosis): class probabilities, shape (n, n_classes);
- ``state()`` -> (arrays, config): plain numpy arrays (stored as safetensors) and a JSON-able
  dict; ``from_state(config, arrays)`` rebuilds the model from them. No pickled objects.

Hyper-parameters are explicit keywords of each class's ``__init__``, declared with their
constraints in ``parameter_constraints`` (:mod:`.params`); an unknown name or an out-of-range
value is refused when the model is built. A model kind registers itself with :func:`register`
under its name and endpoint; :mod:`cmrrisk.predict.catalog` loads the built-in kinds and is the
place to look a kind up by name.
"""

from __future__ import annotations

from ...errors import CMRRiskError
from .params import check_names, explicit_init, parameter_names, validate

REGISTRY: dict = {}
DEFAULTS = {"survival": "auto", "diagnosis": "auto"}
ENDPOINTS = tuple(DEFAULTS)


class Model:
    name = "model"
    endpoint = "survival"
    uses_inputs = False
    parameter_constraints: dict = {}

    def __new__(cls, *args, **params):
        params.pop("seed", None)
        check_names(cls, params)  # a misspelt keyword: a clear error instead of a TypeError
        return super().__new__(cls)

    def __init__(self, seed: int = 0, **params):
        self.seed = seed
        self.params = validate(type(self), params)

    def fit(self, x, y, inputs=None):  # pragma: no cover - interface
        raise NotImplementedError

    def predict_risk(self, x, inputs=None):  # pragma: no cover
        raise NotImplementedError

    def predict_survival(self, x, times, inputs=None):
        raise CMRRiskError(f"model {self.name!r} does not predict survival functions.")

    def predict_proba(self, x, inputs=None):
        raise CMRRiskError(f"model {self.name!r} does not predict class probabilities.")

    def state(self):  # pragma: no cover
        raise NotImplementedError

    @classmethod
    def from_state(cls, config: dict, arrays: dict) -> "Model":  # pragma: no cover
        raise NotImplementedError

    @classmethod
    def parameter_names(cls) -> list:
        return parameter_names(cls)

    def describe(self) -> dict:
        return {"name": self.name, "endpoint": self.endpoint, "seed": self.seed, "params": self.params}


def register(cls):
    """Class decorator: make ``cls`` available under ``(cls.endpoint, cls.name)``."""
    explicit_init(cls)
    REGISTRY[(cls.endpoint, cls.name)] = cls
    return cls


def registered_names(endpoint: str) -> list:
    """Names of the kinds registered so far (see :func:`cmrrisk.predict.catalog.model_names`)."""
    return sorted(n for (e, n) in REGISTRY if e == endpoint)


def lookup(name: str, endpoint: str):
    """The registered class of ``name`` (kinds registered so far only)."""
    if endpoint not in DEFAULTS:
        raise CMRRiskError(f"endpoint {endpoint!r}: choose survival or diagnosis.")
    key = (endpoint, name)
    if key not in REGISTRY:
        raise CMRRiskError(f"model {name!r} is not a {endpoint} model; choose one of "
                           f"{', '.join(registered_names(endpoint))}.")
    return REGISTRY[key]


#: a training budget that every caller may pass: models without epochs ignore it
BUDGET_KEYS = ("max_epochs",)


def build(cls, seed: int = 0, **params):
    """A new unfitted ``cls`` with ``params`` validated; a budget key (``max_epochs``) that the
    kind does not have is dropped (the ``--max-epochs`` cap applies to networks only)."""
    names = set(cls.parameter_names())
    params = {k: v for k, v in params.items() if k in names or k not in BUDGET_KEYS}
    return cls(seed=seed, **params)
