"""Progress of the command line, in one place: the human-readable bars and the
machine-readable line protocol.

**Bars** (:func:`progress_bar`): a tqdm bar on a terminal; elsewhere (stderr sent to a log
file or a pipe) a plain line every few seconds, so that a log holds a readable line per interval
instead of thousands of carriage-return updates::

    bar = progress_bar(total=len(jobs), desc="segment", unit="frame")
    for ...:
        bar.update(1)
    bar.close()

**Line protocol** (``cmrrisk --progress json ...``): a command prints, on standard output, one
JSON object per line for each step of its work, so that a program that started it (the Slicer
modules) can show a progress bar and the step::

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
import time

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


# ------------------------------------------------------------------------------ bars

#: seconds between two lines of :class:`LineProgress`
LOG_INTERVAL_S = 5.0


def is_terminal(stream) -> bool:
    """Whether ``stream`` is an interactive terminal (False for files, pipes, closed streams)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds >= 60 else f"{seconds} s"


class LineProgress:
    """The subset of tqdm's interface used here (``update``, ``close``, iteration, context
    manager) writing one line ``desc: n/total unit (p %), elapsed, about t left`` at most every
    ``interval`` seconds, and a last line on :meth:`close`."""

    def __init__(self, iterable=None, total: int | None = None, desc: str = "", unit: str = "it",
                 file=None, interval: float = LOG_INTERVAL_S, clock=time.monotonic):
        self.iterable = iterable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.total, self.desc, self.unit = total, desc, unit
        self.file = file if file is not None else sys.stderr
        self.interval = float(interval)
        self.clock = clock
        self.n = 0
        self.start = self._last = clock()
        self._printed_n = None
        self.closed = False

    def _line(self) -> str:
        elapsed = self.clock() - self.start
        head = f"{self.desc}: " if self.desc else ""
        if self.total:
            text = f"{head}{self.n}/{self.total} {self.unit} ({100.0 * self.n / self.total:.0f} %), {_duration(elapsed)}"
            if 0 < self.n < self.total:
                text += f", about {_duration(elapsed * (self.total - self.n) / self.n)} left"
            return text
        return f"{head}{self.n} {self.unit}, {_duration(elapsed)}"

    def _write(self) -> None:
        try:
            self.file.write(self._line() + "\n")
            self.file.flush()
        except (ValueError, OSError):  # a closed log: progress is not worth an error
            pass
        self._printed_n = self.n

    def update(self, n: int = 1) -> None:
        self.n += n
        now = self.clock()
        if now - self._last >= self.interval:
            self._last = now
            self._write()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self._printed_n != self.n:
                self._write()

    def __iter__(self):
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def progress_bar(iterable=None, total: int | None = None, desc: str = "", unit: str = "it", file=None,
                 leave: bool = True):
    """A tqdm bar when ``file`` (default stderr) is a terminal, else a :class:`LineProgress`."""
    file = file if file is not None else sys.stderr
    if is_terminal(file):
        from tqdm import tqdm

        return tqdm(iterable, total=total, desc=desc, unit=unit, file=file, leave=leave)
    return LineProgress(iterable, total, desc, unit, file)
