"""Outcomes a model learns from, their checks, and the names shared by every output about them
(risk groups, prediction horizons)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import CMRRiskError


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


def check_target(y, endpoint: str, min_events: int = 2):
    """The one outcome check of every model: the right kind of outcome, and enough of it to learn
    from (survival: at least ``min_events`` events; diagnosis: at least two classes present)."""
    if endpoint == "survival":
        if not isinstance(y, SurvivalTarget):
            raise CMRRiskError("a survival model needs time and event outcomes "
                               "(columns 'time' and 'event').")
        n = int(np.sum(np.asarray(y.event) > 0))
        if n < min_events:
            raise CMRRiskError(f"only {n} event(s) in the training data; a survival model needs "
                               "several subjects with event = 1.")
        return y
    if not isinstance(y, DiagnosisTarget):
        raise CMRRiskError("a diagnosis model needs a 'label' outcome (column 'label').")
    counts = np.bincount(np.asarray(y.y), minlength=len(y.classes))
    if len(y.classes) < 2 or (counts > 0).sum() < 2:
        raise CMRRiskError(f"a diagnosis model needs at least two classes in the training data "
                           f"(found {', '.join(map(str, y.classes))}).")
    return y


# ------------------------------------------------------------------------------ risk groups

#: names of the predicted-risk groups, low to high, by number of groups
RISK_GROUPS = {2: ["low", "high"], 3: ["low", "intermediate", "high"]}


def group_names(n_groups: int) -> list:
    """Names of ``n_groups`` risk groups, low to high ('group k' beyond three)."""
    return list(RISK_GROUPS.get(n_groups, [f"group {k + 1}" for k in range(n_groups)]))


def risk_group(cutpoints, risk: float) -> str:
    """The group of one risk score given the ascending ``cutpoints`` between groups."""
    return group_names(len(cutpoints) + 1)[int(np.searchsorted(cutpoints, risk, side="right"))]


# -------------------------------------------------------------------------------- horizons

def parse_horizons(text, what: str = "--horizons"):
    """Prediction horizons: '1,2.5,5' (or '365, 730', or a list of numbers) -> [1.0, 2.5, 5.0];
    None or '' -> None (the model's default horizons). Each must be a finite time > 0: survival
    at an infinite time is not a prediction (it is 0 or the cure fraction, never estimable from
    finite follow-up)."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    items = str(text).split(",") if isinstance(text, str) else list(text)
    try:
        hs = [float(h) for h in items if str(h).strip()]
    except ValueError as exc:
        raise CMRRiskError(f"{what} {text!r}: give numbers separated by commas (e.g. 365, 730).") from exc
    if not hs or any(not np.isfinite(h) or h <= 0 for h in hs):
        raise CMRRiskError(f"{what} {text!r}: give finite positive times separated by commas.")
    return hs
