"""The catalog of model kinds: every built-in kind loaded, looked up by name.

The interface itself (:class:`Model`), parameters, outcomes, the Breslow baseline and the
training loop live in :mod:`cmrrisk.predict.models`; the kinds in :mod:`.survival`,
:mod:`.diagnosis` and (when its dependencies are installed) :mod:`.multiinput`. Import from here
to find a kind by name: :func:`create`, :func:`get_class`, :func:`model_names`,
:func:`parameter_names`, :func:`parse_params`.
"""

from __future__ import annotations

import warnings

from ..errors import CMRRiskError
from . import diagnosis, survival  # noqa: F401  (registration)
from .models.params import parameter_names as _parameter_names
from .models.params import parse_value, validate
from .models.registry import DEFAULTS, REGISTRY, Model, build, lookup, register  # noqa: F401
from .models.targets import DiagnosisTarget, SurvivalTarget  # noqa: F401
from .models.training import check_interrupt, interrupt_hook  # noqa: F401

try:  # the image network: registers itself; absent when its own dependencies are missing
    from . import multiinput  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the installation
    warnings.warn(f"models of cmrrisk.predict.multiinput unavailable: {exc}")


def model_names(endpoint: str) -> list:
    return sorted(n for (e, n) in REGISTRY if e == endpoint)


def get_class(name: str, endpoint: str):
    return lookup(name, endpoint)


def create(name: str | None, endpoint: str, seed: int = 0, **params) -> Model:
    """A new, unfitted model; ``name=None`` gives the endpoint's default. An unknown or
    out-of-range parameter raises :class:`~cmrrisk.errors.CMRRiskError` naming it and the
    allowed ones; ``max_epochs`` is ignored by kinds without epochs."""
    if endpoint not in DEFAULTS:
        raise CMRRiskError(f"endpoint {endpoint!r}: choose survival or diagnosis.")
    return build(get_class(name or DEFAULTS[endpoint], endpoint), seed=seed, **params)


def parameter_names(name: str | None, endpoint: str) -> list:
    """Hyper-parameters the kind ``name`` accepts."""
    return _parameter_names(get_class(name or DEFAULTS[endpoint], endpoint))


def parse_params(name: str | None, endpoint: str, values: dict) -> dict:
    """Validated hyper-parameters of kind ``name`` from ``values``: text (from ``--param
    KEY=VALUE``) is parsed to the parameter's type, other values (from a JSON or YAML file) are
    checked as they are. Raises :class:`~cmrrisk.errors.CMRRiskError` naming the first unknown
    or invalid key and the allowed ones."""
    cls = get_class(name or DEFAULTS[endpoint], endpoint)
    out = {}
    for key, value in values.items():
        out[key] = parse_value(cls, key, value) if isinstance(value, str) else validate(cls, {key: value})[key]
    cls(**out)  # the checks that look at several parameters or at other kinds (ensemble members)
    return out


def parameter_table(name: str | None, endpoint: str) -> list:
    """The hyper-parameters of kind ``name`` for a form or a help text: one dict per parameter
    with ``name``, ``default`` and ``allowed`` (in words), sorted by name."""
    from .models.params import constraints

    cls = get_class(name or DEFAULTS[endpoint], endpoint)
    defaults = cls().params
    return [{"name": k, "default": defaults.get(k), "allowed": " or ".join(str(r) for r in rules)}
            for k, rules in sorted(constraints(cls).items())]
