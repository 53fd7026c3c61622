"""CMRRisk Predict's widget: the .ui bound to the module's parameter node; every button is one
Logic call. Training, reports and explanations run in a separate process polled by a timer, so
Slicer stays responsive; features and the prediction of the loaded study run with progress and
Cancel, checked between steps."""

import slicer

from cmrrisk.mrml.moduleutils import BusyState, ParameterNodeWidgetMixin

from .logic import CMRRiskPredictLogic, radiomicsAvailable, RADIOMICS_NOTE
from .parameters import parameters

try:
    from slicer.i18n import tr as _
except ImportError:  # slicer-core (tests): no translation
    def _(text):
        return text

#: buttons that start a run (all disabled while one runs)
ACTION_BUTTONS = ("applyButton", "predictButton", "trainButton", "reportButton", "explainButton")
#: inputs that must not change during a run
INPUT_WIDGETS = ("edSelector", "edSegmentationSelector", "esSelector", "esSegmentationSelector",
                 "lgeSelector", "lgeSegmentationSelector", "deviceComboBox", "bsaSpinBox",
                 "radiomicsCheckBox", "deepCheckBox", "modelDirPathLineEdit", "covariatesLineEdit",
                 "horizonsLineEdit", "manifestPathLineEdit", "endpointComboBox", "modelNameComboBox",
                 "outputDirPathLineEdit", "cvSpinBox", "seedSpinBox", "maxEpochsSpinBox",
                 "testManifestPathLineEdit", "explainMethodComboBox", "referenceManifestPathLineEdit", "kSpinBox")
#: milliseconds between two reads of a separate process's progress
POLL_MS = 200
#: Python packages the module needs, for the dependency prompt (radiomics optional, torch from
#: the PyTorch extension)
ALSO = ("torch",)


class PredictWidgetMixin(ParameterNodeWidgetMixin):
    """The body of ``CMRRiskPredictWidget`` (the module file holds only the class statement)."""

    def setupWidget(self, moduleDir):
        import ctk
        import qt

        from cmrrisk.mrml.dependencies import devices

        self.moduleDir = moduleDir
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/CMRRiskPredict.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = CMRRiskPredictLogic()
        self.busy = BusyState(self.ui, ACTION_BUTTONS, INPUT_WIDGETS, onIdle=self.updateGUI,
                              processEvents=slicer.app.processEvents)
        self.timer = qt.QTimer()  # reads a separate process's progress while it runs
        self.timer.setInterval(POLL_MS)
        self.timer.connect("timeout()", self.busy.poll)
        self.ui.modelDirPathLineEdit.filters = ctk.ctkPathLineEdit.Dirs
        self.ui.outputDirPathLineEdit.filters = ctk.ctkPathLineEdit.Dirs
        for name in ("manifestPathLineEdit", "testManifestPathLineEdit", "referenceManifestPathLineEdit"):
            getattr(self.ui, name).nameFilters = [_("Cohort manifest (*.csv)")]
        self.ui.explainMethodComboBox.clear()
        self.ui.explainMethodComboBox.addItems(self.logic.explanationMethods())
        self.ui.deviceComboBox.clear()
        self.ui.deviceComboBox.addItems(devices())  # "cuda" only when torch sees a GPU
        if not radiomicsAvailable():
            self.ui.radiomicsCheckBox.toolTip = RADIOMICS_NOTE
        self.ui.cancelButton.enabled = False
        self.ui.applyButton.connect("clicked(bool)", self.onApply)
        self.ui.predictButton.connect("clicked(bool)", self.onPredict)
        self.ui.trainButton.connect("clicked(bool)", self.onTrain)
        self.ui.reportButton.connect("clicked(bool)", self.onReport)
        self.ui.explainButton.connect("clicked(bool)", self.onExplain)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancel)
        self.ui.endpointComboBox.connect("currentIndexChanged(int)", self.fillModelNames)
        self.observeScene()  # binds the parameter node to the widgets
        self.fillModelNames()

    @staticmethod
    def openParameters(scene):
        return parameters(scene, wrapped=True)

    # ---- GUI state

    def updateGUI(self, *_args):
        if self.busy.busy or self._parameterNode is None:
            return
        p, path = self._parameterNode, CMRRiskPredictLogic._path
        modelDir = bool(path(p.modelDir))
        self.ui.applyButton.enabled = bool((p.edVolume and p.esVolume) or p.lgeVolume)
        self.ui.predictButton.enabled = modelDir
        self.ui.explainButton.enabled = bool(modelDir and p.edVolume)
        self.ui.trainButton.enabled = bool(path(p.manifest) and path(p.outputDir))
        self.ui.reportButton.enabled = bool(modelDir and (path(p.manifest) or path(p.testManifest)))

    def fillModelNames(self, *_args):
        """The registered model names of the chosen endpoint (the combo stays editable)."""
        current = self.ui.modelNameComboBox.currentText
        try:
            names = self.logic.modelNames(self.ui.endpointComboBox.currentText)
        except Exception:  # dependencies not installed yet: the endpoint's default only
            names = ["auto"]
        self.ui.modelNameComboBox.clear()
        self.ui.modelNameComboBox.addItems(names)
        self.ui.modelNameComboBox.currentText = current if current in names else "auto"

    def ensureDependencies(self):
        from cmrrisk.mrml.dependencies import ensure
        from cmrrisk.mrml.moduleutils import module_requirements

        return ensure(module_requirements(self.moduleDir), also=ALSO, status=self.busy.status)

    def _showTable(self, table):
        self.ui.tableView.setMRMLTableNode(table)
        slicer.app.applicationLogic().GetSelectionNode().SetActiveTableID(table.GetID())
        slicer.app.applicationLogic().PropagateTableSelection()

    # ---- in-process study actions: progress and Cancel between steps

    def _run(self, failureMessage, startMessage, action):
        from cmrrisk.errors import Cancelled

        if not self.busy.start(startMessage):
            return
        message = None
        try:
            with slicer.util.tryWithErrorDisplay(failureMessage, waitCursor=True):
                if not self.ensureDependencies():  # it says why in the status label
                    return
                try:
                    message = action()
                except Cancelled:
                    self.ui.progressBar.value = 0
                    message = _("Cancelled; nothing was added to the scene.")
        except Exception as exc:  # already displayed by tryWithErrorDisplay
            message = _("Stopped: {error}").format(error=exc)
        finally:
            self.busy.stop(message)

    def onApply(self):
        def action():
            table = self.logic.computeFeaturesParameters(self._parameterNode, self.busy.asProgress())
            self._showTable(table)
            notes = table.GetAttribute("CMRRisk.notes") or ""
            return _("{n} features.").format(n=table.GetNumberOfRows()) + (" " + notes if notes else "")

        self._run(_("CMRRisk features failed."), _("Computing features..."), action)

    def onPredict(self):
        def action():
            out = self.logic.predictParameters(self._parameterNode, self.busy.asProgress())
            self._showTable(out["table"])
            if out["chart"] is not None:
                slicer.modules.plots.logic().ShowChartInLayout(out["chart"])
            return out["summary"]

        self._run(_("CMRRisk prediction failed."), _("Predicting..."), action)

    # ---- training, reports and explanations: a separate process, polled by the timer

    def onExplain(self):
        def succeeded(job):
            self._showTable(job.results["attributions"])
            return job.results["text"]

        self._startJob(_("Explaining (separate process)..."), lambda finished: self.logic.startExplanationParameters(
            self._parameterNode, onProgress=self.busy.progress, onFinished=finished), succeeded)

    def _startJob(self, startMessage, start, onSuccess):
        if self.ensureDependencies():
            self.busy.startJob(startMessage, start, onSuccess, self.timer, slicer.util.errorDisplay)

    def onCancel(self):
        self.busy.cancel()

    def onTrain(self):
        def succeeded(job):
            self._parameterNode.modelDir = self._pathValue(job.results["model_dir"])
            if job.results["metrics"] is not None:
                self._showTable(job.results["metrics"])
            return _("Model written: {path}").format(path=job.results["model_dir"])

        self._startJob(_("Training (separate process)..."), lambda finished: self.logic.startTrainingParameters(
            self._parameterNode, onProgress=self.busy.progress, onFinished=finished), succeeded)

    def onReport(self):
        def succeeded(job):
            import qt

            qt.QDesktopServices.openUrl(qt.QUrl.fromLocalFile(job.results["html"]))
            return _("Report written: {path}").format(path=job.results["html"])

        self._startJob(_("Writing the report (separate process)..."), lambda finished: self.logic.startReportParameters(
            self._parameterNode, onProgress=self.busy.progress, onFinished=finished), succeeded)

    @staticmethod
    def _pathValue(text):
        import pathlib

        return pathlib.Path(text)
