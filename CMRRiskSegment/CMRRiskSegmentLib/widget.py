"""CMRRisk Segment's widget: the .ui bound to the module's parameter node; every button is one
Logic call. Every phase of a cine sequence is segmented in a separate process (progress read by a
timer, Cancel ends it); a single volume, or the ED and ES frames, in Slicer with progress and
Cancel checked between frames."""

import slicer

from cmrrisk.mrml.moduleutils import BusyState, ParameterNodeWidgetMixin

from .logic import CMRRiskSegmentLogic
from .parameters import ALL_PHASES, ED_ES, parameters

try:
    from slicer.i18n import tr as _
except ImportError:  # slicer-core (tests): no translation
    def _(text):
        return text

#: what the user could change or start while a run is going (Cancel excepted)
ACTIONS = ("applyButton", "qcButton", "exportDicomButton", "sendDicomButton", "importDicomSegButton")
#: milliseconds between two reads of a separate process's progress
POLL_MS = 200
INPUTS = ("inputSelector", "phaseComboBox", "edSpinBox", "esSpinBox", "modelComboBox",
          "deviceComboBox", "qcSegmentationSelector", "exportSegmentationSelector",
          "dicomSourceFolderPathLineEdit", "dicomOutputFolderPathLineEdit", "dicomwebUrlLineEdit",
          "dicomSegFilePathLineEdit")


class SegmentWidgetMixin(ParameterNodeWidgetMixin):
    """The body of ``CMRRiskSegmentWidget`` (the module file holds only the class statement)."""

    def setupWidget(self, moduleDir):
        from cmrrisk.mrml.dependencies import devices

        self.moduleDir = moduleDir
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/CMRRiskSegment.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = CMRRiskSegmentLogic()
        self.busy = BusyState(self.ui, ACTIONS, INPUTS, onIdle=self.updateGUI, processEvents=slicer.app.processEvents)
        import qt

        self.timer = qt.QTimer()  # reads a separate process's progress while it runs
        self.timer.setInterval(POLL_MS)
        self.timer.connect("timeout()", self.busy.poll)
        self.ui.modelComboBox.addItems(self.logic.availableModels() + ["auto"])
        self.ui.deviceComboBox.addItems(devices())  # "cuda" only when torch sees a GPU
        self.ui.phaseComboBox.addItems([ALL_PHASES, ED_ES])  # the stored values: not translated
        self.ui.applyButton.connect("clicked(bool)", self.onApply)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancel)
        self.ui.qcButton.connect("clicked(bool)", self.onQC)
        self.ui.exportDicomButton.connect("clicked(bool)", self.onExportDicom)
        self.ui.sendDicomButton.connect("clicked(bool)", self.onSendDicom)
        self.ui.importDicomSegButton.connect("clicked(bool)", self.onImportDicomSeg)
        self.ui.cancelButton.enabled = False
        self.observeScene()  # binds the parameter node to the widgets

    @staticmethod
    def openParameters(scene):
        return parameters(scene, wrapped=True)

    # ---- GUI state

    def onCancel(self):
        self.busy.cancel()

    def updateGUI(self, *_args):
        if self.busy.busy or self._parameterNode is None:
            return
        p = self._parameterNode
        node = p.inputNode
        isSequence = node is not None and node.IsA("vtkMRMLSequenceNode")
        self.ui.phaseComboBox.enabled = isSequence
        edes = isSequence and p.phases == ED_ES
        self.ui.edSpinBox.enabled = self.ui.esSpinBox.enabled = edes
        if isSequence:
            n = max(1, node.GetNumberOfDataNodes())
            self.ui.edSpinBox.maximum = self.ui.esSpinBox.maximum = n - 1
        self.ui.applyButton.enabled = self.ui.qcButton.enabled = node is not None
        exportable = p.exportSegmentation is not None
        self.ui.exportDicomButton.enabled = exportable and bool(str(p.dicomOutputFolder or "").strip("."))
        self.ui.sendDicomButton.enabled = exportable and bool(p.dicomwebUrl)
        self.ui.importDicomSegButton.enabled = bool(str(p.dicomSegFile or "").strip("."))

    def ensureDependencies(self, quality=False):
        """Install what is missing after the user agrees (quality checks need scipy only)."""
        from cmrrisk.mrml.dependencies import ensure
        from cmrrisk.mrml.moduleutils import module_requirements

        required = module_requirements(self.moduleDir)
        if quality:
            required = {"scipy": required["scipy"]}
        try:
            return ensure(required, also=() if quality else ("torch",), status=self.busy.status)
        except Exception as exc:  # ensure() reports pip failures itself; anything else is shown too
            slicer.util.errorDisplay(_("Installing CMRRisk's Python packages failed: {error}").format(error=exc))
            self.busy.status(_("Not run: installing the Python packages failed ({error}).").format(error=exc))
            return False

    @staticmethod
    def _showTable(table):
        slicer.app.applicationLogic().GetSelectionNode().SetActiveTableID(table.GetID())
        slicer.app.applicationLogic().PropagateTableSelection()

    # ---- actions (one Logic call each)

    def onQC(self):
        if self._parameterNode is None or not self.ensureDependencies(quality=True):
            return
        with slicer.util.tryWithErrorDisplay(_("CMRRisk quality check failed."), waitCursor=True):
            table = self.logic.checkQualityParameters(self._parameterNode)
            self.busy.status(_("Quality check: {status} (table '{name}').").format(
                status=table.GetAttribute("CMRRisk.qcStatus"), name=table.GetName()))
            self._showTable(table)

    def onApply(self):
        from cmrrisk.errors import Cancelled

        if self._parameterNode is None or not self.ensureDependencies():
            return
        p = self._parameterNode
        node = p.inputNode
        if node is not None and node.IsA("vtkMRMLSequenceNode") and p.phases == ALL_PHASES:
            # every phase of a cine: a separate process, results added when it ends
            def succeeded(job):
                self._showTable(job.results["table"])
                return job.results["status"]

            self.busy.startJob(_("Segmenting every phase (separate process)..."), lambda finished: (
                self.logic.startSequenceSegmentation(node, model=p.model, device=p.device,
                                                     onProgress=self.busy.progress, onFinished=finished)),
                succeeded, self.timer, slicer.util.errorDisplay)
            return
        if not self.busy.start(_("Segmenting...")):
            return
        message = None
        try:
            with slicer.util.tryWithErrorDisplay(_("CMRRisk segmentation failed."), waitCursor=True):
                try:
                    result = self.logic.processParameters(self._parameterNode, progress=self.busy.asProgress())
                except Cancelled:  # not an error: no dialog
                    message = _("Cancelled; nothing was added to the scene.")
                    return
                if result.get("table") is not None:
                    self._showTable(result["table"])
                if result.get("segmentation") is not None:  # "Check quality" then checks it too
                    self._parameterNode.qcSegmentation = result["segmentation"]
                exported = result.get("segmentation") or result.get("ed")
                if exported is not None:  # "Export SEG + SR" then exports it
                    self._parameterNode.exportSegmentation = exported
                message = result["status"]
        except Exception as exc:  # already displayed by tryWithErrorDisplay
            message = _("Failed: {error}").format(error=exc)
        finally:
            self.busy.stop(message)

    def _dicomAction(self, failed, action):
        """One DICOM button: its packages (asked for once), then one Logic call with the
        parameter node; the result's status line shown."""
        from cmrrisk.mrml import dicomseg
        from cmrrisk.mrml.dependencies import ensure

        if self._parameterNode is None:
            return None
        try:
            if not ensure(dicomseg.REQUIRED_PACKAGES, also=(), status=self.busy.status):
                return None
        except Exception as exc:
            slicer.util.errorDisplay(_("Installing CMRRisk's Python packages failed: {error}").format(error=exc))
            return None
        with slicer.util.tryWithErrorDisplay(failed, waitCursor=True):
            result = action(self._parameterNode)
            self.busy.status(result["status"])
            return result
        return None

    def onExportDicom(self):
        self._dicomAction(_("CMRRisk DICOM export failed."), self.logic.exportDicomParameters)

    def onSendDicom(self):
        self._dicomAction(_("Sending to the DICOMweb server failed."), self.logic.sendDicomParameters)

    def onImportDicomSeg(self):
        result = self._dicomAction(_("Reading the DICOM SEG failed."), self.logic.importDicomSegParameters)
        if result is not None and result["reference"] is not None:
            slicer.util.setSliceViewerLayers(background=result["reference"])

