"""What both CMRRisk modules' widgets and self-tests need, written once: the busy state of a run
(inputs and actions disabled, progress bar, Cancel), the packages a module lacks (from its
``Resources/requirements.txt``), and the skip of a self-test method that names them.

No Qt import: widgets are handled through their ``enabled``/``value``/``text`` properties, so
the same code runs in Slicer and, with plain objects, in tests.
"""

from __future__ import annotations

import os

from .dependencies import missing, read_requirements


def module_requirements(module_dir: str) -> dict:
    """{import name: requirement} of a module folder's ``Resources/requirements.txt``."""
    return read_requirements(os.path.join(module_dir, "Resources", "requirements.txt"))


def missing_for(module_dir: str, also=("torch",)) -> list:
    """Import names the module needs (its requirements and ``also``) that are absent."""
    return missing(module_requirements(module_dir), also=also)


def skip_unless(test, names, what: str) -> None:
    """Skip ``test`` (a ``unittest.TestCase``) with a message naming the packages of ``names``
    that are absent, and how to install them. Used at the top of every self-test method, because
    Slicer's test runner calls the methods directly (not only through ``runTest``)."""
    import unittest

    absent = missing({}, also=tuple(names))
    if absent:
        raise unittest.SkipTest(f"{what} needs the Python packages {', '.join(absent)}, not installed in this "
                                "Slicer: install the PyTorch extension, open the module and press its button "
                                "once to install the others, then run the test again.")


class BusyState:
    """One run at a time: while busy, the ``actions`` and ``inputs`` (widget names of ``ui``)
    are disabled and ``ui.cancelButton`` enabled; ``progress(fraction, message)`` moves
    ``ui.progressBar`` (fraction None: a busy indicator) and sets ``ui.statusLabel``;
    :meth:`requestCancel` (the Cancel button) sets the flag that :meth:`cancelled` reads.
    ``onIdle()`` runs when a run ends (the widget re-decides which buttons are enabled);
    ``processEvents()`` lets the GUI deliver a click during an in-process run."""

    SCALE = 1000

    def __init__(self, ui, actions=(), inputs=(), onIdle=None, processEvents=None):
        self.ui, self.actions, self.inputs = ui, tuple(actions), tuple(inputs)
        self.onIdle, self.processEvents = onIdle, processEvents or (lambda: None)
        self.busy = False
        self.cancelRequested = False

    def start(self, message: str = "") -> bool:
        """Enter the busy state; False (nothing changed) when a run is going on already."""
        if self.busy:
            return False
        self.busy, self.cancelRequested = True, False
        for name in self.actions + self.inputs:
            getattr(self.ui, name).enabled = False
        self.ui.cancelButton.enabled = True
        self.ui.progressBar.maximum, self.ui.progressBar.value = self.SCALE, 0
        self.status(message)
        return True

    def stop(self, message: str | None = None) -> None:
        self.busy = False
        for name in self.actions + self.inputs:
            getattr(self.ui, name).enabled = True
        self.ui.cancelButton.enabled = False
        if self.ui.progressBar.maximum == 0:  # a busy indicator left running
            self.ui.progressBar.maximum = self.SCALE
        if message is not None:
            self.status(message)
        if self.onIdle is not None:
            self.onIdle()

    def status(self, message) -> None:
        self.ui.statusLabel.text = str(message)

    def progress(self, fraction, message="") -> None:
        bar = self.ui.progressBar
        if fraction is None:
            bar.maximum = 0
        else:
            bar.maximum = self.SCALE
            bar.value = int(round(self.SCALE * min(1.0, max(0.0, float(fraction)))))
        if message:
            self.status(message)
        self.processEvents()

    def requestCancel(self) -> None:
        self.cancelRequested = True
        self.status("Cancelling...")

    def cancelled(self) -> bool:
        """The ``cancel()`` callback of in-process runs: deliver a pending click, read the flag."""
        self.processEvents()
        return self.cancelRequested

    def asProgress(self):
        """This progress bar and Cancel button as the core's ``cmrrisk.progress.Progress`` (what
        in-process Logic calls take)."""
        from ..progress import Progress

        return Progress.from_fractions(self.progress, self.cancelled)

    # ---- a run in a separate process (cmrrisk.mrml.runner), polled by the widget's timer

    job = None

    def startJob(self, message, start, onSuccess, timer, errorDisplay=None):
        """Enter the busy state and ``start(finished)`` a :class:`~cmrrisk.mrml.runner.ProcessRunner`
        (a Logic ``start...`` call); ``timer`` (a ``qt.QTimer`` whose timeout calls :meth:`poll`)
        runs until the process ends. Then ``onSuccess(job)`` returns the status line (it adds
        the results to the scene); a failure is shown with ``errorDisplay(message)``; a cancel
        says so. Returns the runner, or None when nothing was started."""
        if not self.start(message):
            return None

        def finished(job):
            timer.stop()
            self.job = None
            if job.state == "succeeded":
                line = onSuccess(job)
            elif job.state == "cancelled":
                line = "Cancelled; nothing was added to the scene."
            else:
                line = f"Failed: {job.error}"
                if errorDisplay is not None:
                    errorDisplay(line)
            self.stop(line)

        try:
            self.job = start(finished)
        except Exception as exc:  # refused before the process started (bad input)
            self.stop(f"Not started: {exc}")
            if errorDisplay is not None:
                errorDisplay(str(exc))
            return None
        timer.start()
        return self.job

    def poll(self) -> None:
        if self.job is not None:
            self.job.poll()

    def cancel(self) -> None:
        """Cancel: end the separate process (within 2 s; its end is handled at once), or ask an
        in-process run to stop at its next check."""
        if self.job is not None:
            self.job.cancel()
            self.poll()
        elif self.busy:
            self.requestCancel()


class ParameterNodeWidgetMixin:
    """The scripted-module template's parameter-node life cycle, for both modules' widgets: the
    module's parameter node (``self.openParameters(scene)``) is bound to the ``.ui`` widgets
    that carry ``SlicerParameterName`` while the module is shown, re-made after a scene close;
    ``updateGUI`` follows every change. A scene close first cancels a run (``onCancel``), so no
    result goes into a scene being closed."""

    _parameterNode = None
    _guiTag = None

    def initializeParameterNode(self):
        import slicer

        self.setParameterNode(self.openParameters(slicer.mrmlScene))

    def setParameterNode(self, params):
        import vtk

        if self._parameterNode is not None:
            if self._guiTag is not None:
                self._parameterNode.disconnectGui(self._guiTag)
            self.removeObserver(self._parameterNode.parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGUI)
        self._parameterNode, self._guiTag = params, None
        if params is not None:
            self._guiTag = params.connectGui(self.ui)
            self.addObserver(params.parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGUI)
            self.updateGUI()

    def enter(self):
        self.initializeParameterNode()

    def exit(self):
        self.setParameterNode(None)

    def cleanup(self):
        self.onCancel()
        self.removeObservers()

    def onSceneStartClose(self, caller, event):
        self.onCancel()
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event):
        if self.parent.isEntered:
            self.initializeParameterNode()

    def observeScene(self):
        """Observe the scene's close (call once in setup, after the Logic and busy state exist)."""
        import slicer

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.initializeParameterNode()
