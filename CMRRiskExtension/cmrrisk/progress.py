"""Progress bars of the command line: a tqdm bar on a terminal; elsewhere (stderr sent to a log
file or a pipe) a plain line every few seconds, so that a log holds a readable line per interval
instead of thousands of carriage-return updates.

    bar = progress_bar(total=len(jobs), desc="segment", unit="frame")
    for ...:
        bar.update(1)
    bar.close()
"""

from __future__ import annotations

import sys
import time

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
