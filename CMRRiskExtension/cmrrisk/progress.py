"""Machine-readable progress of the command line (``cmrrisk --progress json ...``).

With ``--progress json`` a command prints, on standard output, one JSON object per line for
each step of its work, so that a program that started it (the Slicer modules) can show a
progress bar and the step::

    {"event": "progress", "fraction": 0.25, "message": "cross-validation fold 2/5"}
    {"event": "progress", "fraction": null, "message": "bootstrap"}     (fraction unknown)
    {"event": "error", "message": "..."}                                (then exit status 2)
    {"event": "done", "status": 0}

Other lines of the command's output are not JSON objects with an ``"event"`` key; a reader
passes them on as log lines (:func:`parse` returns None for them). The core never imports
this module's state directly: the command functions take :func:`fractions`, :func:`counts` or
:func:`messages` and hand them to the core's usual ``progress`` callbacks.
"""

from __future__ import annotations

import json
import math
import sys

MODES = ("bar", "json", "none")
_state = {"mode": "bar", "stream": None}


def set_mode(mode: str, stream=None) -> None:
    """``bar`` (the default: the commands' own progress bars), ``json`` (the line protocol on
    ``stream``, default standard output) or ``none``."""
    if mode not in MODES:
        raise ValueError(f"--progress {mode!r}: choose one of {', '.join(MODES)}")
    _state["mode"], _state["stream"] = mode, stream


def mode() -> str:
    return _state["mode"]


def is_json() -> bool:
    return _state["mode"] == "json"


def _write(obj: dict) -> None:
    stream = _state["stream"] or sys.stdout
    stream.write(json.dumps(obj, separators=(", ", ": ")) + "\n")
    stream.flush()


def emit(fraction, message: str = "") -> None:
    """One progress line (``fraction`` in [0, 1], or None when unknown); nothing unless json."""
    if not is_json():
        return
    f = None
    if fraction is not None:
        f = float(fraction)
        f = None if math.isnan(f) else min(1.0, max(0.0, f))
    _write({"event": "progress", "fraction": f, "message": str(message)})


def error(message: str) -> None:
    if is_json():
        _write({"event": "error", "message": str(message)})


def done(status: int = 0) -> None:
    if is_json():
        _write({"event": "done", "status": int(status)})


def fractions(default=None):
    """A ``progress(fraction, message)`` callback: json lines in json mode, else ``default``."""
    return (lambda fraction, message="": emit(fraction, message)) if is_json() else default


def counts(default=None):
    """A ``progress(done, total, message)`` callback: json lines in json mode, else ``default``."""
    if not is_json():
        return default
    return lambda done_, total, message="": emit(done_ / total if total else None, message)


def messages(default=None):
    """A ``progress(*message)`` callback for steps of unknown number (fraction null)."""
    if not is_json():
        return default
    return lambda *message, **_: emit(None, " ".join(str(m) for m in message))


def parse(line):
    """The event of one output line ({"event", "fraction", "message", ...}), or None when the
    line is not part of the protocol (an ordinary log line)."""
    text = line.decode("utf-8", "replace") if isinstance(line, bytes) else str(line)
    text = text.strip()
    if not (text.startswith("{") and text.endswith("}")):
        return None
    try:
        obj = json.loads(text)
    except ValueError:
        return None
    if not isinstance(obj, dict) or obj.get("event") not in ("progress", "error", "done"):
        return None
    if obj["event"] == "progress":
        f = obj.get("fraction")
        obj["fraction"] = float(f) if isinstance(f, (int, float)) and not isinstance(f, bool) else None
        obj["message"] = str(obj.get("message", ""))
    return obj
