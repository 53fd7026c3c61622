"""Hyper-parameters of the models: declared, validated and parsed in one place.

Every model class declares ``parameter_constraints``: {name: [constraint, ...]} (a value is valid
when it satisfies at least one of its constraints, as scikit-learn's ``_parameter_constraints``).
Its ``__init__`` takes the parameters as explicit keywords. :func:`check_names` refuses an
unknown name and :func:`validate` an out-of-range value; both raise a one-line
:class:`~cmrrisk.errors.CMRRiskError` naming the parameter and what is allowed.
:func:`parse_value` turns command-line text (``--param KEY=VALUE``) into the parameter's type.
"""

from __future__ import annotations

import inspect
import json
import math
import numbers

from ...errors import CMRRiskError


class Interval:
    """A number of ``kind`` (int or float) between ``low`` and ``high`` (None: unbounded);
    ``closed`` is 'both', 'left', 'right' or 'neither'."""

    def __init__(self, kind, low=None, high=None, closed="both"):
        self.kind, self.low, self.high, self.closed = kind, low, high, closed

    def accepts(self, v) -> bool:
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            return False
        if self.kind is int and not isinstance(v, numbers.Integral):
            return False
        if isinstance(v, float) and math.isnan(v):
            return False
        lo_ok = self.low is None or (v >= self.low if self.closed in ("both", "left") else v > self.low)
        hi_ok = self.high is None or (v <= self.high if self.closed in ("both", "right") else v < self.high)
        return lo_ok and hi_ok

    def convert(self, v):
        return int(v) if self.kind is int else float(v)

    def __str__(self):
        left = "[" if self.closed in ("both", "left") and self.low is not None else "("
        right = "]" if self.closed in ("both", "right") and self.high is not None else ")"
        lo = "-inf" if self.low is None else f"{self.low:g}"
        hi = "inf" if self.high is None else f"{self.high:g}"
        return f"{'an integer' if self.kind is int else 'a number'} in {left}{lo}, {hi}{right}"


class Options:
    """One of a fixed set of values."""

    def __init__(self, *values):
        self.values = values

    def accepts(self, v) -> bool:
        return any(v == o and type(v) is type(o) for o in self.values)

    def convert(self, v):
        return v

    def __str__(self):
        return "one of " + ", ".join(json.dumps(o) for o in self.values)


class IntList:
    """A non-empty list of positive integers (e.g. hidden layer widths)."""

    def accepts(self, v) -> bool:
        return (isinstance(v, (list, tuple)) and len(v) > 0
                and all(isinstance(i, numbers.Integral) and not isinstance(i, bool) and i > 0 for i in v))

    def convert(self, v):
        return [int(i) for i in v]

    def __str__(self):
        return "a list of positive integers, e.g. [32,32]"


class Anything:
    """Any JSON value (structured parameters such as ensemble members, checked by the model)."""

    def __init__(self, what: str = "a JSON value"):
        self.what = what

    def accepts(self, v) -> bool:
        return True

    def convert(self, v):
        return v

    def __str__(self):
        return self.what


#: frequent constraints
POSITIVE = Interval(float, 0, None, closed="neither")
NON_NEGATIVE = Interval(float, 0, None, closed="left")
FRACTION = Interval(float, 0, 1, closed="neither")
COUNT = Interval(int, 1, None)
NONE = Options(None)


def parameter_names(cls) -> list:
    """Keyword parameters accepted by ``cls`` (its ``__init__`` and those it passes on up the
    class hierarchy), without ``seed``."""
    return sorted(constraints(cls))


def constraints(cls) -> dict:
    out = {}
    for klass in reversed(cls.__mro__):
        out.update(klass.__dict__.get("parameter_constraints", {}))
    return out


def _allowed(cls) -> str:
    names = parameter_names(cls)
    return ", ".join(names) if names else "(none)"


def check_names(cls, params: dict) -> None:
    """Refuse a parameter the model ``cls`` does not have."""
    known = constraints(cls)
    for key in params:
        if key not in known:
            raise CMRRiskError(f"model {cls.name!r} ({cls.endpoint}) has no parameter {key!r}; "
                               f"allowed: {_allowed(cls)}.")


def validate(cls, params: dict) -> dict:
    """Check names and values of ``params`` for ``cls``; returns them with numbers converted to
    the declared kind (an integer 5 given for a float parameter becomes 5.0)."""
    check_names(cls, params)
    known = constraints(cls)
    out = {}
    for key, value in params.items():
        rules = known[key]
        ok = [r for r in rules if r.accepts(value)]
        if not ok:
            raise CMRRiskError(f"model {cls.name!r} parameter {key!r} = {json.dumps(value, default=str)}: "
                               f"must be {' or '.join(str(r) for r in rules)}.")
        out[key] = ok[0].convert(value)
    return out


def parse_value(cls, key: str, text: str):
    """Command-line text of parameter ``key`` of ``cls`` -> a value of its type (JSON syntax:
    numbers, true/false, null, [lists]; anything else is taken as a string)."""
    check_names(cls, {key: None})
    text = str(text).strip()
    try:
        value = json.loads(text)
    except ValueError:
        value = {"True": True, "False": False, "None": None}.get(text, text)
    return validate(cls, {key: value})[key]


def explicit_init(cls) -> None:
    """Check that ``cls.__init__`` names its parameters (no ``**kwargs`` that could swallow a
    misspelt one) and that every name has constraints; called by the registry."""
    known = constraints(cls)
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None or klass is object or klass.__name__ == "Model":
            continue
        for p in list(inspect.signature(init).parameters.values())[1:]:
            if p.name == "seed":
                continue
            if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                continue  # passes the subclass's parameters on to the base class's __init__
            if p.name not in known:
                raise TypeError(f"{cls.__name__}: parameter {p.name!r} has no constraint")
