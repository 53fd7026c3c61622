"""The Breslow baseline hazard shared by every relative-risk model (Cox, boosted Cox trees,
DeepSurv, the multi-input network): fitted on the training log-risks, it turns any log-risk
into a survival curve, and stores itself as two arrays and one number."""

from __future__ import annotations

import numpy as np

from ...errors import CMRRiskError


def step_at(xp, fp, x, before=0.0):
    """Right-continuous step function through (xp, fp), ``before`` left of xp[0]."""
    i = np.searchsorted(np.asarray(xp), np.asarray(x, dtype=float), side="right") - 1
    fp = np.asarray(fp)
    return np.where(i >= 0, fp[np.clip(i, 0, len(fp) - 1)], before)


class BreslowBaseline:
    """Breslow estimate of the baseline cumulative hazard for log-risks centred on their mean.

    ``fit(risk, time, event)`` on the training subjects; ``survival(risk, times)`` gives
    S(t | x) = exp(-H0(t) exp(risk - centre)), shape (n, len(times)). Stored as the arrays
    ``bh_times``, ``bh_cumhaz`` and the config value ``centre`` (:meth:`arrays`, :meth:`config`,
    :meth:`restore`)."""

    def __init__(self, times=None, cumhaz=None, centre: float = 0.0):
        self.times = None if times is None else np.asarray(times, dtype=float)
        self.cumhaz = None if cumhaz is None else np.asarray(cumhaz, dtype=float)
        self.centre = centre

    def fit(self, risk, time, event) -> "BreslowBaseline":
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
        self.times, self.cumhaz, self.centre = times, np.cumsum(deaths / at_risk[first]), centre
        return self

    def survival(self, risk, times) -> np.ndarray:
        h0 = step_at(self.times, self.cumhaz, times)
        r = np.exp(np.clip(np.asarray(risk, float) - self.centre, -50, 50))
        return np.exp(-np.outer(r, h0))

    def arrays(self) -> dict:
        return {"bh_times": self.times, "bh_cumhaz": self.cumhaz}

    def config(self) -> dict:
        return {"centre": self.centre}

    @classmethod
    def restore(cls, config: dict, arrays: dict) -> "BreslowBaseline":
        return cls(arrays["bh_times"], arrays["bh_cumhaz"], float(config["centre"]))


class BreslowMixin:
    """For a relative-risk model with a ``baseline`` (:class:`BreslowBaseline`): survival curves,
    the baseline's arrays and config in the model's saved state (the ``_extra_arrays`` /
    ``_extra_config`` / ``_restore`` hooks of the network models), and the old attribute names
    ``bh_times``, ``bh_cumhaz``, ``centre``."""

    baseline: BreslowBaseline

    def predict_survival(self, x, times, inputs=None, **kw):
        return self.baseline.survival(self.predict_risk(x, inputs, **kw), times)

    def _extra_arrays(self):
        return self.baseline.arrays()

    def _extra_config(self):
        return self.baseline.config()

    def _restore(self, config, arrays):
        self.baseline = BreslowBaseline.restore(config, arrays)

    bh_times = property(lambda self: self.baseline.times)
    bh_cumhaz = property(lambda self: self.baseline.cumhaz)
    centre = property(lambda self: self.baseline.centre)
