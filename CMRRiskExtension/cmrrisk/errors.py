"""User-facing errors."""


class CMRRiskError(Exception):
    """An error caused by the user's input (file, row, field): the message says what and what to do.

    The command line prints the message without a traceback and exits with status 2.
    """


class Cancelled(Exception):
    """Raised when the caller's ``cancel()`` returned True; nothing was written.

    (Not a :class:`CMRRiskError`: a cancellation is not a failure of one subject's input.)
    ``cmrrisk.predict.study.Cancelled`` and ``cmrrisk.segmentation.infer.Cancelled`` are this class."""


def stepper(progress=None, cancel=None):
    """``step(fraction, message)`` for long calls with optional callbacks: raise
    :class:`Cancelled` when ``cancel()`` returns True, else report ``progress(fraction, message)``.
    Called before each step, so that a cancel stops the call before the step's work."""

    def step(fraction: float, message: str) -> None:
        if cancel is not None and cancel():
            raise Cancelled(f"cancelled before {message}")
        if progress is not None:
            progress(float(fraction), message)

    return step
