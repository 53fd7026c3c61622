"""How prediction metrics are written in logs and command output."""

from __future__ import annotations

import math


def fmt(x, nd: int = 3) -> str:
    """A metric with ``nd`` decimals; 'n/a' for None or NaN."""
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{nd}f}"
