"""Progress and cancel, in one place: the one contract of every long step, the command line's
human-readable bars and its machine-readable line protocol.

**The contract** (:class:`Progress`): every long step of the core (features of a study or a
cohort, training, cross-validation, explanation, QC, segmentation, the report) takes one
``progress`` argument, a :class:`Progress` (or None: silent, never cancelled). The step calls
``progress.update(done, total, message)`` before each unit of work (``total`` None: an amount
not known in advance); ``update`` first asks the caller's ``cancel()`` and raises
:class:`cmrrisk.errors.Cancelled` when it returns True, so a cancel stops the step before the
next unit and nothing is left half-written. ``progress.part(low, high)`` hands a sub-step its
own 0..1 range of the caller's; ``progress.check()`` only asks for a cancel (inside an epoch
loop)::

    def long_step(items, progress=None):
        progress = as_progress(progress)
        for i, item in enumerate(items):
            progress.update(i, len(items), f"item {i + 1}/{len(items)}")
            ...
        progress.update(len(items), len(items), "done")

The adapters make one from what a caller has: :func:`cli_progress` (the command line: a bar, or
JSON lines with ``--progress json``, or nothing with ``--progress none``),
:meth:`Progress.from_fractions` (a ``(fraction, message)`` callback and a ``cancel()``: the
Slicer modules' progress bar and Cancel button, ``cmrrisk.mrml.moduleutils.BusyState``),
:meth:`Progress.printing` (each message to a function such as ``print``) and :func:`as_progress`
(None, True/False, a ``report(done, total, message)`` callable or a Progress).

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
passes them on as log lines (:func:`parse` returns None for them). The core never reads this
module's mode itself: the command functions make a :func:`cli_progress` and hand it to the core.
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


# ------------------------------------------------------------------------------ the contract


class Progress:
    """The progress-and-cancel object of a long step (see the module).

    ``report(done, total, message)`` (optional) receives every update (``done`` and ``total``
    None when the amount is not known); ``cancel()`` (optional) returns True to stop."""

    def __init__(self, report=None, cancel=None):
        self._report = report
        self._cancel = cancel

    # -- what a long step calls

    def cancelled(self) -> bool:
        return bool(self._cancel is not None and self._cancel())

    def check(self, doing: str = "") -> None:
        """Raise :class:`cmrrisk.errors.Cancelled` when the caller asked to stop."""
        if self.cancelled():
            from .errors import Cancelled

            raise Cancelled(f"cancelled before {doing}" if doing else "cancelled")

    def update(self, done=None, total=None, message: str = "") -> None:
        """``done`` of ``total`` units are done and ``message`` is what comes next; raises
        :class:`cmrrisk.errors.Cancelled` first when the caller asked to stop."""
        self.check(message)
        self.report(done, total, message)

    __call__ = update

    def report(self, done=None, total=None, message: str = "") -> None:
        """Report without asking for a cancel: the last update, once the work is done and
        written, where a cancel could only leave the caller unsure of what happened."""
        if self._report is not None:
            self._report(done, total, str(message))

    def fraction(self, fraction, message: str = "") -> None:
        """:meth:`update` with a fraction (0..1) of the work."""
        self.update(fraction, 1.0, message)

    def say(self, message: str) -> None:
        """:meth:`update` for a step of unknown share of the work."""
        self.update(None, None, message)

    def part(self, low: float, high: float) -> "Progress":
        """The progress of a sub-step that covers ``low``..``high`` (fractions) of this one's
        work; the same cancel."""
        def report(done, total, message):
            f = None if done is None or not total else float(done) / float(total)
            if self._report is not None:
                self._report(None if f is None else low + (high - low) * f, 1.0 if f is not None else None,
                             message)

        return Progress(report, self._cancel)

    def close(self) -> None:
        """End the display (a bar); the object must not be updated afterwards."""
        close = getattr(self._report, "close", None)
        if close is not None:
            close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    # -- adapters

    @classmethod
    def from_fractions(cls, fn=None, cancel=None) -> "Progress":
        """From a ``fn(fraction, message)`` callback (fraction None when unknown) and a
        ``cancel()``: the Slicer modules' progress bar and Cancel button."""
        if fn is None:
            return cls(None, cancel)
        return cls(lambda done, total, message: fn(float(done) / float(total) if done is not None and total else None,
                                                   message), cancel)

    @classmethod
    def from_counts(cls, fn=None, cancel=None) -> "Progress":
        """From a ``fn(done, total)`` callback and a ``cancel()`` (updates of unknown amount are
        not passed on)."""
        if fn is None:
            return cls(None, cancel)
        return cls(lambda done, total, _message: None if done is None else fn(int(done), int(total)), cancel)

    @classmethod
    def printing(cls, fn=print, cancel=None) -> "Progress":
        """Each message to ``fn`` (e.g. ``print``), amounts left out."""
        return cls(lambda _done, _total, message: fn(message), cancel)


def from_callbacks(progress=None, cancel=None, shape: str = "fractions") -> Progress:
    """The :class:`Progress` of a Slicer Logic call's ``progress`` and ``cancel`` arguments:
    ``progress`` is a Progress (kept; ``cancel`` added) or a callback of ``shape``
    ("fractions": ``progress(fraction, message)``, the module's progress bar; "counts":
    ``progress(done, total)``; "report": ``progress(done, total, message)``; "messages":
    ``progress(message)``)."""
    if isinstance(progress, Progress) or progress is None or shape == "report":
        return as_progress(progress, cancel)
    if shape == "counts":
        return Progress.from_counts(progress, cancel)
    if shape == "messages":
        return Progress.printing(progress, cancel)
    if shape != "fractions":
        raise ValueError(f"progress shape {shape!r}: fractions, counts, report or messages")
    return Progress.from_fractions(progress, cancel)


def as_progress(progress=None, cancel=None, desc: str = "", unit: str = "it", leave: bool = True) -> Progress:
    """The :class:`Progress` of what a caller passed: None or False (silent), True (a bar on
    standard error with ``desc`` and ``unit``, whatever the mode: a step inside a command whose
    own :func:`cli_progress` speaks the line protocol), a Progress (kept), or a
    ``report(done, total, message)`` callable; ``cancel()`` (optional) is added."""
    if isinstance(progress, Progress):
        if cancel is None:
            return progress
        own = progress

        def both():
            return own.cancelled() or bool(cancel())

        return Progress(own._report, both)
    if progress is None or progress is False:
        return Progress(None, cancel)
    if progress is True:
        return Progress(_Bar(desc, unit, leave), cancel)
    if callable(progress):
        return Progress(progress, cancel)
    raise TypeError(f"progress: expected a cmrrisk.progress.Progress, a callable, a bool or None, "
                    f"not {type(progress).__name__}")


class _Bar:
    """A ``report(done, total, message)`` that moves a :func:`progress_bar`, made at the first
    update with a known total."""

    def __init__(self, desc: str, unit: str, leave: bool):
        self.desc, self.unit, self.leave = desc, unit, leave
        self.bar = None

    def __call__(self, done, total, _message):
        if done is None:
            return
        if self.bar is None:
            self.bar = progress_bar(total=int(total) if total else None, desc=self.desc, unit=self.unit,
                                    leave=self.leave)
        step = int(done) - self.bar.n
        if step > 0:
            self.bar.update(step)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _json_line(done, total, message):
    emit(float(done) / float(total) if done is not None and total else None, message)


def json_progress(cancel=None) -> Progress:
    """The ``--progress json`` line protocol as a :class:`Progress` (lines on standard output)."""
    return Progress(_json_line, cancel)


def cli_progress(desc: str = "", unit: str = "it", leave: bool = True) -> Progress:
    """The command line's :class:`Progress` in the current mode (:func:`set_mode`): a bar on
    standard error (``bar``), JSON lines on standard output (``json``) or nothing (``none``)."""
    if is_json():
        return json_progress()
    return as_progress(mode() != "none", desc=desc, unit=unit, leave=leave)


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
