"""Long work in a separate process: ``python -m cmrrisk --progress json ...``.

The modules never run training, reports or cohort work on Slicer's main thread. A
:class:`ProcessRunner` starts the command line in another Python (``PythonSlicer`` inside Slicer,
the current interpreter elsewhere), reads its output on a reader thread, and hands progress
(``cmrrisk.progress`` line protocol), log lines and the end to callbacks whenever
:meth:`ProcessRunner.poll` is called: by a ``QTimer`` in the module's widget, by a loop in a
script or test (:meth:`ProcessRunner.wait`). :meth:`ProcessRunner.cancel` ends the process (and
any process it started) within two seconds; the caller adds results to the scene only in its
``onFinished`` callback, when the process succeeded, so a cancelled run leaves the scene as it was.
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time

from .. import progress as P

#: seconds between asking the process to stop and killing it
TERMINATE_GRACE_S = 1.0


def python_executable() -> str:
    """The Python that runs ``-m cmrrisk``: Slicer's ``PythonSlicer`` launcher inside Slicer
    (``sys.executable`` is the application there), else this interpreter."""
    try:
        import slicer  # noqa: F401

        app = getattr(slicer, "app", None)
    except ImportError:
        app = None
    if app is not None:
        found = shutil.which("PythonSlicer")
        if found:
            return found
    return sys.executable


def package_environment(extra: dict | None = None) -> dict:
    """The environment of the child: ``PYTHONPATH`` starts with the folder that holds this
    ``cmrrisk`` package (the extension's scripted-modules folder inside Slicer, the source tree
    in developer mode), so the child imports the same code; unbuffered output."""
    import cmrrisk

    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(cmrrisk.__file__)))
    env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


class ProcessRunner:
    """One ``cmrrisk`` command in a separate process.

    ``onProgress(fraction, message)`` (fraction None when unknown), ``onLog(line)`` for other
    output, ``onFinished(runner)`` once, at the end (``runner.state`` is "succeeded", "failed"
    or "cancelled"; ``runner.error`` the error message of a failure). Callbacks run in the thread
    that calls :meth:`poll`."""

    def __init__(self, args, onProgress=None, onLog=None, onFinished=None, python=None, env=None, cwd=None):
        self.args = [str(a) for a in args]
        self.command = [python or python_executable(), "-m", "cmrrisk", "--progress", "json", *self.args]
        self.onProgress, self.onLog, self.onFinished = onProgress, onLog, onFinished
        self.env = package_environment(env)
        self.cwd = cwd
        self.state = "new"
        self.returncode = None
        self.error = None
        self.log = []
        self.lastProgress = None
        self._proc = None
        self._lines = queue.Queue()
        self._reader = None
        self._cancelled = False

    # ---- lifecycle

    def start(self) -> "ProcessRunner":
        if self._proc is not None:
            raise RuntimeError("this runner was started already; make a new one")
        kwargs = {}
        if os.name == "posix":
            kwargs["start_new_session"] = True  # its own process group: cancel ends its workers too
        else:  # pragma: no cover - Windows
            kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP
        self._proc = subprocess.Popen(self.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, env=self.env, cwd=self.cwd, bufsize=1,
                                      text=True, encoding="utf-8", errors="replace", **kwargs)
        self.state = "running"
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def _read(self):
        for line in self._proc.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)  # end of output

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def pid(self):
        return None if self._proc is None else self._proc.pid

    def poll(self) -> bool:
        """Hand the output received so far to the callbacks; at the end, call ``onFinished``.
        Returns True while the run goes on."""
        if self.state != "running":
            return False
        ended = False
        while True:
            try:
                line = self._lines.get_nowait()
            except queue.Empty:
                break
            if line is None:
                ended = True
                break
            self._dispatch(line)
        if ended or (self._proc.poll() is not None and not self._reader.is_alive() and self._lines.empty()):
            self._finish()
            return False
        return True

    def _dispatch(self, line: str):
        event = P.parse(line)
        if event is None:
            self.log.append(line)
            if self.onLog is not None:
                self.onLog(line)
        elif event["event"] == "progress":
            self.lastProgress = (event["fraction"], event["message"])
            if self.onProgress is not None:
                self.onProgress(event["fraction"], event["message"])
        elif event["event"] == "error":
            self.error = event.get("message", "")

    def _finish(self):
        self.returncode = self._proc.wait()
        if self._cancelled:
            self.state = "cancelled"
        elif self.returncode == 0:
            self.state = "succeeded"
        else:
            self.state = "failed"
            if not self.error:  # a crash: the last lines of its output say why
                tail = [line for line in self.log if line.strip()][-1:]
                self.error = (tail[0] if tail else "") or f"the process ended with status {self.returncode}"
        if self.onFinished is not None:
            self.onFinished(self)

    def cancel(self) -> None:
        """End the process and everything it started: a terminate signal, then a kill after
        ``TERMINATE_GRACE_S``; returns within two seconds. ``onFinished`` follows (state
        "cancelled") at the next :meth:`poll`."""
        if self._proc is None or self.state != "running":
            return
        self._cancelled = True
        self._signal(signal.SIGTERM)
        try:
            self._proc.wait(timeout=TERMINATE_GRACE_S)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL if hasattr(signal, "SIGKILL") else signal.SIGTERM)
            try:
                self._proc.wait(timeout=0.8)
            except subprocess.TimeoutExpired:  # pragma: no cover - the kernel is slow
                pass

    def _signal(self, sig):
        try:
            if os.name == "posix":
                os.killpg(self._proc.pid, sig)
            elif sig == signal.SIGTERM:  # pragma: no cover - Windows
                self._proc.terminate()
            else:  # pragma: no cover
                self._proc.kill()
        except (ProcessLookupError, PermissionError):
            pass

    def wait(self, timeout=None, interval=0.05) -> str:
        """Poll until the run ends (scripts and tests; the GUI polls from a timer instead).
        Returns the final state; on ``timeout`` (seconds) the run is cancelled."""
        end = None if timeout is None else time.monotonic() + timeout
        while self.poll():
            if end is not None and time.monotonic() > end:
                self.cancel()
            time.sleep(interval)
        return self.state
