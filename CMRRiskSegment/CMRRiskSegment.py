"""CMRRisk Segment: deep-learning segmentation of short-axis cine MRI in 3D Slicer.

Module, Widget, Logic and Test classes (Slicer's scripted-module convention). The Logic is thin:
it converts nodes to arrays through ``cmrrisk.mrml``, calls the ``cmrrisk`` core and converts the
results back, so everything the GUI does can be done from the Python console, e.g.::

    logic = slicer.util.getModuleLogic("CMRRiskSegment")
    segmentationNode = logic.segmentVolume(slicer.util.getNode("patient001_frame01"))
    result = logic.segmentSequence(sequenceNode, ed=0, es=10)   # ED/ES segmentations + indices
    model = logic.modelForVolume(volumeNode)                      # "cine" or "lge" from DICOM headers
    scar = logic.scarAnalysis(lgeSegmentationNode, lgeVolumeNode)  # scar, AHA segments, n-SD, FWHM
    qc = logic.qcVolume(volumeNode, segmentationNode)             # quality checks as a table node
    result = logic.process(volumeNode, model="auto")              # what Apply does, in one call
"""

import os
import sys

import slicer
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)

# Developer mode (module path added by hand): make the cmrrisk package importable from the
# source tree. An installed extension has it in Slicer's scripted-modules folder already.
_SOURCE_PACKAGE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "CMRRiskExtension")
if os.path.isdir(os.path.join(_SOURCE_PACKAGE_DIR, "cmrrisk")) and _SOURCE_PACKAGE_DIR not in sys.path:
    sys.path.append(_SOURCE_PACKAGE_DIR)

#: import name -> pip requirement, installed on first use after the user agrees
#: (numpy, SimpleITK, pydicom and vtk come with Slicer; the model-defining packages pinned as in
#: pyproject.toml, general-purpose ones left to pip so that they suit Slicer's numpy)
REQUIRED_PACKAGES = {
    "monai": "monai==1.6.1",
    "nibabel": "nibabel==5.4.2",
    "scipy": "scipy",
    "safetensors": "safetensors",
    "tqdm": "tqdm",
}


def missing_packages():
    """Python packages the module needs that are not importable in this Slicer."""
    from cmrrisk.mrml.dependencies import missing

    return missing(REQUIRED_PACKAGES, also=("torch",))


#
# Module
#


class CMRRiskSegment(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "CMRRisk Segment"
        self.parent.categories = ["Cardiac"]
        self.parent.dependencies = ["Sequences", "Segmentations"]
        self.parent.contributors = ["CMRRisk developers"]
        self.parent.helpText = (
            "Deep-learning segmentation of short-axis cine MRI (LV blood pool, LV myocardium, "
            "RV blood pool, with clinical indices from ED and ES) and, with the lge model, of LGE "
            "(myocardium, scar, microvascular obstruction, with scar burden, scar and transmurality "
            "per AHA segment, and n-SD / FWHM scar burdens for comparison). The 'auto' model picks "
            "cine or lge from the series' DICOM headers or name. Research use only.")
        self.parent.acknowledgementText = (
            "The bundled cine model was trained on the ACDC dataset (Bernard et al., IEEE TMI "
            "37(11):2514-2525, 2018), the bundled lge model on the EMIDEC dataset (Lalande et al., "
            "Data 5(4):89, 2020).")


#
# Widget
#


class CMRRiskSegmentWidget(ScriptedLoadableModuleWidget):
    """Thin GUI: every action is one Logic call."""

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/CMRRiskSegment.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = CMRRiskSegmentLogic()
        self._cancelRequested = False
        self.ui.modelComboBox.addItems(self.logic.availableModels() + ["auto"])
        self.ui.deviceComboBox.addItems(["cpu", "cuda"])
        self.ui.phaseComboBox.addItems(["All phases", "ED and ES"])
        self.ui.applyButton.connect("clicked(bool)", self.onApply)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancel)
        self.ui.qcButton.connect("clicked(bool)", self.onQC)
        self.ui.inputSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.updateGUI)
        self.ui.phaseComboBox.connect("currentIndexChanged(int)", self.updateGUI)
        self.ui.cancelButton.enabled = False
        self.updateGUI()

    def updateGUI(self, *_):
        node = self.ui.inputSelector.currentNode()
        isSequence = node is not None and node.IsA("vtkMRMLSequenceNode")
        self.ui.phaseComboBox.enabled = isSequence
        edes = isSequence and self.ui.phaseComboBox.currentIndex == 1
        self.ui.edSpinBox.enabled = edes
        self.ui.esSpinBox.enabled = edes
        if isSequence:
            n = max(1, node.GetNumberOfDataNodes())
            self.ui.edSpinBox.maximum = n - 1
            self.ui.esSpinBox.maximum = n - 1
        self.ui.applyButton.enabled = node is not None
        self.ui.qcButton.enabled = node is not None

    def _controls(self):
        """Everything the user could change or start while a run is going (Cancel excepted)."""
        return (self.ui.inputSelector, self.ui.phaseComboBox, self.ui.edSpinBox, self.ui.esSpinBox,
                self.ui.modelComboBox, self.ui.deviceComboBox, self.ui.qcSegmentationSelector,
                self.ui.applyButton, self.ui.qcButton)

    def _setRunning(self, running):
        for w in self._controls():
            w.enabled = not running
        self.ui.cancelButton.enabled = running
        if not running:
            self.updateGUI()

    def _cancel(self):
        slicer.app.processEvents()  # deliver a click on Cancel made since the last check
        return self._cancelRequested

    def _status(self, text):
        self.ui.statusLabel.text = text

    def onQC(self):
        node = self.ui.inputSelector.currentNode()
        # the checks need numpy and scipy only, not the networks' packages
        if node is None or not self.ensureDependencies({"scipy": REQUIRED_PACKAGES["scipy"]}, also=()):
            return
        segNode = self.ui.qcSegmentationSelector.currentNode() if not node.IsA("vtkMRMLSequenceNode") else None
        with slicer.util.tryWithErrorDisplay("CMRRisk quality check failed.", waitCursor=True):
            table = self.logic.checkQuality(node, segNode, model=self.ui.modelComboBox.currentText)
            self._status(f"Quality check: {table.GetAttribute('CMRRisk.qcStatus')} (table '{table.GetName()}').")
            self._showTable(table)

    @staticmethod
    def _showTable(table):
        slicer.app.applicationLogic().GetSelectionNode().SetActiveTableID(table.GetID())
        slicer.app.applicationLogic().PropagateTableSelection()

    def ensureDependencies(self, required=None, also=("torch",)):
        from cmrrisk.mrml.dependencies import ensure

        try:
            return ensure(REQUIRED_PACKAGES if required is None else required, also=also, status=self._status)
        except Exception as exc:  # ensure() reports pip failures itself; anything else is shown too
            slicer.util.errorDisplay(f"Installing CMRRisk's Python packages failed: {exc}")
            self._status(f"Not run: installing the Python packages failed ({exc}).")
            return False

    def onCancel(self):
        self._cancelRequested = True
        self._status("Cancelling...")

    def _progress(self, done, total):
        self.ui.progressBar.maximum = max(1, total)
        self.ui.progressBar.value = done
        slicer.app.processEvents()

    def onApply(self):
        node = self.ui.inputSelector.currentNode()
        if node is None or not self.ensureDependencies():
            return
        from cmrrisk.segmentation.infer import Cancelled

        self._cancelRequested = False
        self._setRunning(True)
        self._status("Segmenting...")
        edes = node.IsA("vtkMRMLSequenceNode") and self.ui.phaseComboBox.currentIndex == 1
        try:
            with slicer.util.tryWithErrorDisplay("CMRRisk segmentation failed.", waitCursor=True):
                try:
                    result = self.logic.process(
                        node, model=self.ui.modelComboBox.currentText, device=self.ui.deviceComboBox.currentText,
                        ed=self.ui.edSpinBox.value if edes else None, es=self.ui.esSpinBox.value if edes else None,
                        progress=self._progress, cancel=self._cancel)
                except Cancelled:  # not an error: no dialog
                    self._status("Cancelled; nothing was added to the scene.")
                    return
                if result.get("table") is not None:
                    self._showTable(result["table"])
                if result.get("segmentation") is not None:  # "Check quality" then checks it too
                    self.ui.qcSegmentationSelector.setCurrentNode(result["segmentation"])
                self._status(result["status"])
        except Exception as exc:  # already displayed by tryWithErrorDisplay
            self._status(f"Failed: {exc}")
        finally:
            self._setRunning(False)


#
# Logic
#


class CMRRiskSegmentLogic(ScriptedLoadableModuleLogic):
    """Segmentation of volume nodes and cine sequences into segmentation and table nodes.

    Usable without the GUI; all long calls accept ``progress(done, total)`` and ``cancel()``
    callbacks.
    """

    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)
        self._segmenters = {}

    @staticmethod
    def availableModels():
        from cmrrisk.modeldir import BUNDLED_DIR

        return sorted(d for d in os.listdir(BUNDLED_DIR) if os.path.isdir(os.path.join(BUNDLED_DIR, d)))

    def process(self, inputNode, model="auto", device="cpu", ed=None, es=None, progress=None, cancel=None):
        """What the module's Apply button does, in one call.

        ``model``: a bundled model name or "auto" (:meth:`modelForVolume`). A sequence node is
        segmented as a cine (:meth:`segmentSequence`, all phases or the ``ed``/``es`` phase
        indices); a volume node with :meth:`segmentVolume`, followed by :meth:`scarAnalysis`
        when the model segments scar. Returns ``{"model", "segmentation" (volume input) or
        "sequence"/"ed"/"es" (sequence input), "table" (clinical indices or scar burden; None
        for a single cine frame), "segmentsTable" (AHA segments, LGE), "status" (one line for
        the user)}``."""
        from cmrrisk import labels as L

        if inputNode is None:
            raise ValueError("choose an input volume or cine sequence first.")
        if model == "auto":
            model = self.modelForVolume(inputNode)
        name = inputNode.GetName()
        if inputNode.IsA("vtkMRMLSequenceNode"):
            result = self.segmentSequence(inputNode, model=model, device=device, ed=ed, es=es,
                                          progress=progress, cancel=cancel)
            result.update(model=model, segmentsTable=None)
            which = "every phase" if "sequence" in result else "ED and ES"
            result["status"] = f"Segmented {which} of '{name}' with the {model} model; clinical indices in '{result['table'].GetName()}'."
            return result
        segNode = self.segmentVolume(inputNode, model=model, device=device, progress=progress, cancel=cancel)
        result = {"model": model, "segmentation": segNode, "table": None, "segmentsTable": None}
        if L.SCAR in self.segmenter(model, device).structures:
            scar = self.scarAnalysis(segNode, inputNode)
            result.update(table=scar["table"], segmentsTable=scar["segmentsTable"], scar=scar["measures"])
            result["status"] = (f"Segmented '{name}' with the {model} model: scar burden "
                                f"{scar['measures']['scar_burden_pct']:.1f} % of the LV myocardium "
                                f"(table '{scar['table'].GetName()}').")
        else:
            result["status"] = f"Segmented '{name}' with the {model} model into '{segNode.GetName()}'."
        return result

    def segmenter(self, model="cine", device="cpu"):
        """The loaded model (cached; checksums verified on first load)."""
        from cmrrisk.segmentation.infer import Segmenter

        key = (model, device)
        if key not in self._segmenters:
            self._segmenters[key] = Segmenter.load(model, device=device)
        return self._segmenters[key]

    def segmentVolume(self, volumeNode, model="cine", device="cpu", progress=None, cancel=None,
                      segmentationNode=None):
        """Segment a 3D scalar volume node; returns a ``vtkMRMLSegmentationNode``."""
        from cmrrisk import mrml

        scene = volumeNode.GetScene()
        vol = mrml.volume_from_node(volumeNode)
        segmenter = self.segmenter(model, device)
        seg = segmenter.segment(vol, progress=progress, cancel=cancel)
        node = mrml.labels_to_segmentation(scene, seg.array, volumeNode,
                                           f"{volumeNode.GetName()} segmentation",
                                           structures=segmenter.structures,
                                           segmentation_node=segmentationNode)
        self._markSliceOrder(segmenter, node)
        return node

    @staticmethod
    def _markSliceOrder(segmenter, *nodes):
        """Record on each node (attribute ``CMRRisk.sliceOrder``) what the segmenter's last run
        did with the slice order, as ``segment.json`` does."""
        from cmrrisk.segmentation.pipeline import slice_order_note

        note = slice_order_note(segmenter)
        for node in nodes:
            node.SetAttribute("CMRRisk.sliceOrder", note)

    @staticmethod
    def scarTable(segmentationNode, volumeNode, name=None, **scarOptions):
        """Table (index, value, unit) of scar burden (% of LV myocardium, scar including MVO),
        scar, MVO and myocardium volumes of an LGE segmentation, followed by the AHA-segment
        transmurality counts and the n-SD / FWHM scar burdens (see :meth:`scarAnalysis`)."""
        return CMRRiskSegmentLogic.scarAnalysis(segmentationNode, volumeNode, name, **scarOptions)["table"]

    @staticmethod
    def scarAnalysis(segmentationNode, volumeNode, name=None, **scarOptions):
        """Scar measures of an LGE segmentation on its volume, computed by the core
        (``cmrrisk.metrics.lge_measures`` / ``cmrrisk.scar``).

        ``scarOptions`` go to ``cmrrisk.scar.scar_report`` (e.g. ``reference_angle_deg``,
        ``septum_direction``, ``base="first"``, ``n_sd=(2, 3, 5, 6)``). Returns
        ``{"measures": dict, "table": summary table node, "segmentsTable": AHA segment table node
        (None when the analysis was impossible; then measures["scar_analysis_error"] says why)}``.
        """
        from cmrrisk import mrml
        from cmrrisk.metrics import lge_measures
        from cmrrisk.scar import aha_table_columns, summary_rows

        labels = mrml.segmentation_to_labels(segmentationNode, volumeNode)
        vol = mrml.volume_from_node(volumeNode)
        measures = lge_measures(labels, vol.spacing, image=vol.array, ijk_to_ras=vol.ijk_to_ras,
                                **scarOptions)
        units = {"pct": "%", "ml": "mL"}
        keys = ("scar_burden_pct", "myocardium_ml", "scar_ml", "mvo_ml")
        rows = [(k, measures[k], units.get(k.rsplit("_", 1)[-1], "")) for k in keys]
        if "aha" in measures:
            rows += summary_rows(measures)
        scene = volumeNode.GetScene()
        base = name or f"{volumeNode.GetName()} scar"
        table = mrml.add_table(scene, base, {"index": [r[0] for r in rows],
                                             "value": [round(float(r[1]), 3) for r in rows],
                                             "unit": [r[2] for r in rows]}, volumeNode)
        segmentsTable = None
        if "aha" in measures:
            segmentsTable = mrml.add_table(scene, f"{base} AHA segments", aha_table_columns(measures["aha"]),
                                           volumeNode)
            for key in ("base_rule", "orientation_rule"):
                segmentsTable.SetAttribute(f"CMRRisk.{key}", measures["aha"][key])
            segmentsTable.SetAttribute("CMRRisk.approximate", str(measures["aha"]["approximate"]))
        else:
            table.SetAttribute("CMRRisk.scarAnalysisError", measures.get("scar_analysis_error", ""))
        return {"measures": measures, "table": table, "segmentsTable": segmentsTable}

    @staticmethod
    def qcVolume(volumeNode, segmentationNode=None, role="image", name=None, esVolumeNode=None):
        """Quality checks of a loaded volume (and optionally its segmentation), the same as
        ``cmrrisk qc`` runs per image (``cmrrisk.qc.volume_qc``): a table node with columns
        check, severity (exclude / flag), message - one row "ok" when nothing was found. The
        overall status (ok / flag / exclude) is the table's attribute ``CMRRisk.qcStatus``.
        ``role="lge"`` checks the segmentation as an LGE one (no RV expected).
        A sequence node (a cine over its phases) is checked as a 4D cine (phase count, blank
        phases, geometry; segment a phase's volume node to check its labels). ``esVolumeNode``:
        the ES frame when ``volumeNode`` is the ED frame; its own checks and the ED/ES pair checks
        (same grid: shape, spacing, direction, origin) are added."""
        from cmrrisk import mrml
        from cmrrisk.qc import pair_checks, status_of, volume_checks, volume_qc

        if volumeNode.IsA("vtkMRMLSequenceNode"):
            if segmentationNode is not None:
                raise ValueError("QC of a sequence checks the images only; pass one phase's volume node "
                                 "with its segmentation to check the labels.")
            vol = mrml.volume_from_sequence(volumeNode)
            role = "cine" if role == "image" else role
        else:
            vol = mrml.volume_from_node(volumeNode)
        labels = None
        if segmentationNode is not None:
            labels = mrml.segmentation_to_labels(segmentationNode, volumeNode)
        result = volume_qc(vol, labels, role)
        if esVolumeNode is not None:
            es = mrml.volume_from_node(esVolumeNode)
            extra = volume_checks(es, "cine_es")[1] + pair_checks(vol, es)
            result["checks"] = result["checks"] + extra
            result["status"] = status_of(result["checks"])
        checks = result["checks"] or [{"code": "ok", "severity": "ok", "message": "no problem found"}]
        table = mrml.add_table(volumeNode.GetScene(), name or f"{volumeNode.GetName()} QC",
                               {"check": [c["code"] for c in checks],
                                "severity": [c["severity"] for c in checks],
                                "message": [c["message"] for c in checks]}, volumeNode)
        table.SetAttribute("CMRRisk.qcStatus", result["status"])
        return table

    @staticmethod
    def checkQuality(volumeNode, segmentationNode=None, model="auto"):
        """What the module's "Check quality" button does: :meth:`qcVolume` of the selected image
        and, when given, its segmentation, checked as LGE labels (no RV expected) when the
        segmentation has scar or MVO segments, the chosen model is lge, or (model "auto") the
        series is recognised as LGE (:meth:`seriesKind`); as cine labels otherwise."""
        from cmrrisk import labels as L

        lge = model == "lge"
        if model == "auto" and not volumeNode.IsA("vtkMRMLSequenceNode"):
            lge = CMRRiskSegmentLogic.seriesKind(volumeNode)["kind"] == "lge"
        if segmentationNode is not None:
            seg = segmentationNode.GetSegmentation()
            names = {seg.GetNthSegment(i).GetName() for i in range(seg.GetNumberOfSegments())}
            lge = lge or bool(names & {L.SEGMENTS[L.SCAR][0], L.SEGMENTS[L.MVO][0]})
        return CMRRiskSegmentLogic.qcVolume(volumeNode, segmentationNode, role="lge" if lge else "image")

    @staticmethod
    def seriesKind(volumeNode):
        """``{"kind": "cine" | "lge" | "unknown", "reason": ...}`` of a volume or sequence node:
        a sequence is a cine; otherwise the DICOM headers of the node's instances (Slicer's DICOM
        database, attribute ``DICOM.instanceUIDs``), else the series metadata stored on the node
        by ``cmrrisk.mrml.volume_to_node``, else LGE/cine keywords in the node's name decide
        (``cmrrisk.dicom.classify_series`` rules)."""
        from cmrrisk.dicom import classify_files, classify_series, classify_text
        from cmrrisk.mrml import bridge

        if volumeNode.IsA("vtkMRMLSequenceNode"):
            return {"kind": "cine", "reason": "a sequence of volumes"}
        files = CMRRiskSegmentLogic._dicomFiles(volumeNode)
        meta = bridge.node_meta(volumeNode)
        # the first source that tells wins: DICOM files, stored series metadata, the node's name
        sources = [(files, classify_files, ""), (meta, classify_series, ""),
                   (volumeNode.GetName(), classify_text, "node name: ")]
        reasons = []
        for value, classify, prefix in sources:
            if not value:
                continue
            c = classify(value)
            if c["kind"] != "unknown":
                return {"kind": c["kind"], "reason": prefix + c["reason"]}
            reasons.append(c["reason"])
        return {"kind": "unknown", "reason": "; ".join(reasons)}

    @staticmethod
    def modelForVolume(volumeNode):
        """The bundled model for a node, 'cine' or 'lge' (see :meth:`seriesKind`); raises
        ``CMRRiskError`` asking the user to choose when nothing tells."""
        from cmrrisk.errors import CMRRiskError

        c = CMRRiskSegmentLogic.seriesKind(volumeNode)
        if c["kind"] not in ("cine", "lge"):
            raise CMRRiskError(f"'{volumeNode.GetName()}': cannot tell whether this is a cine or an LGE "
                               f"image ({c['reason']}); choose the cine or lge model.")
        return c["kind"]

    @staticmethod
    def _dicomFiles(volumeNode):
        """Files of the node's DICOM instances, when it was loaded from Slicer's DICOM database."""
        uids = (volumeNode.GetAttribute("DICOM.instanceUIDs") or "").split()
        db = getattr(slicer, "dicomDatabase", None)
        if not uids or db is None:
            return []
        files = [db.fileForInstance(uid) for uid in uids]
        return [f for f in files if f and os.path.isfile(f)]

    def segmentSequence(self, sequenceNode, model="cine", device="cpu", ed=None, es=None,
                        progress=None, cancel=None):
        """Segment a cine volume sequence.

        With ``ed`` and ``es`` (phase indices) only those two frames are segmented: returns
        ``{"ed": segNode, "es": segNode, "table": clinical indices table}``. Otherwise every phase
        is segmented into a sequence of segmentations (synchronised with the input's browser),
        ED and ES are taken as the phases of largest and smallest LV blood-pool volume, and the
        result is ``{"sequence": segmentation sequence node, "ed": .., "es": .., "table": ..}``.
        """
        from cmrrisk import mrml
        from cmrrisk.metrics import clinical_indices

        from cmrrisk import labels as L
        from cmrrisk.errors import CMRRiskError

        scene = sequenceNode.GetScene()
        name = sequenceNode.GetName()
        segmenter = self.segmenter(model, device)
        if set(segmenter.structures) != set(L.CINE_LABELS):
            raise CMRRiskError(f"'{name}' is a sequence, which this module reads as a cine; the {model} model "
                               "does not segment cines (its structures would be lost). Choose the cine model, "
                               "or segment a single LGE volume node.")
        frames = mrml.sequence_volume_nodes(sequenceNode)
        studyNode = self._studyNodeOfSequence(scene, sequenceNode)
        if (ed is None) != (es is None):
            raise ValueError("give both ed and es phase indices, or neither")
        phases = [int(ed), int(es)] if ed is not None else list(range(len(frames)))
        cine = mrml.volume_from_sequence(sequenceNode, phases)
        spacing = cine.spacing
        result = {}
        if ed is not None:
            # the ED frame, then the ES frame anchored to it (as `cmrrisk features` does)
            labels, ed_i, es_i = segmenter.segment_phases(cine.array, spacing, progress, cancel,
                                                          ed_es=(0, 1), geometry=cine.ijk_to_ras)
        else:
            # ED / ES = largest / smallest LV; the ES phase is segmented anchored to ED
            labels, ed_i, es_i = segmenter.segment_phases(cine.array, spacing, progress, cancel,
                                                          geometry=cine.ijk_to_ras)
        if ed is None:
            seq = scene.AddNewNodeByClass("vtkMRMLSequenceNode", f"{name} segmentation")
            seq.SetIndexName(sequenceNode.GetIndexName())
            seq.SetIndexUnit(sequenceNode.GetIndexUnit())
            seq.SetIndexType(sequenceNode.GetIndexType())
            for t in range(labels.shape[0]):
                tmp = mrml.labels_to_segmentation(scene, labels[t], frames[t], f"{name} phase {t}",
                                                  study_node=studyNode)
                seq.SetDataNodeAtValue(tmp, sequenceNode.GetNthIndexValue(t))
                scene.RemoveNode(tmp)
            mrml.place_in_study(scene, seq, studyNode)
            self._synchronizeWithBrowser(scene, sequenceNode, seq)
            result["sequence"] = seq
        ed_phase, es_phase = phases[ed_i], phases[es_i]
        result["ed"] = mrml.labels_to_segmentation(scene, labels[ed_i], frames[ed_phase],
                                                   f"{name} ED (phase {ed_phase}) segmentation",
                                                   study_node=studyNode)
        result["es"] = mrml.labels_to_segmentation(scene, labels[es_i], frames[es_phase],
                                                   f"{name} ES (phase {es_phase}) segmentation",
                                                   study_node=studyNode)
        proxy = self._proxyNode(scene, sequenceNode)
        if proxy is not None and proxy.GetTransformNodeID():  # shown where the cine is shown
            for key in ("ed", "es"):
                result[key].SetAndObserveTransformNodeID(proxy.GetTransformNodeID())
        # segment_phases takes one slice-order decision for every phase
        self._markSliceOrder(segmenter, *(result[k] for k in ("sequence", "ed", "es") if k in result))
        indices = clinical_indices(labels[ed_i], labels[es_i], spacing)
        result["indices"] = indices
        result["table"] = self.indicesTable(scene, indices, f"{name} clinical indices", studyNode,
                                            ed_phase, es_phase)
        return result

    @staticmethod
    def indicesTable(scene, indices, name, studyNode=None, edPhase=None, esPhase=None):
        """A table node (index, value, unit) of clinical indices."""
        from cmrrisk import mrml

        units = {"ml": "mL", "pct": "%", "g": "g"}
        keys = list(indices)
        rows = {
            "index": keys + (["ed_phase", "es_phase"] if edPhase is not None else []),
            "value": [round(float(indices[k]), 2) for k in keys]
            + ([float(edPhase), float(esPhase)] if edPhase is not None else []),
            "unit": [units.get(k.rsplit("_", 1)[-1], "") for k in keys]
            + (["", ""] if edPhase is not None else []),
        }
        return mrml.add_table(scene, name, rows, studyNode)

    @staticmethod
    def _browsersOf(scene, sequenceNode):
        """The sequence browser nodes that play ``sequenceNode``."""
        browsers = scene.GetNodesByClass("vtkMRMLSequenceBrowserNode")
        browsers.UnRegister(None)
        out = []
        for i in range(browsers.GetNumberOfItems()):
            browser = browsers.GetItemAsObject(i)
            if browser.IsSynchronizedSequenceNode(sequenceNode, True):
                out.append(browser)
        return out

    @staticmethod
    def _proxyNode(scene, sequenceNode):
        """The proxy volume node that shows ``sequenceNode`` in the views (None without a browser)."""
        for browser in CMRRiskSegmentLogic._browsersOf(scene, sequenceNode):
            proxy = browser.GetProxyNode(sequenceNode)
            if proxy is not None:
                return proxy
        return None

    @staticmethod
    def _studyNodeOfSequence(scene, sequenceNode):
        """The node whose subject-hierarchy study the outputs of a sequence go to: the sequence
        itself when it has an item under a study or folder, otherwise its browser's proxy node
        (a cine loaded from DICOM is in the study through its proxy)."""
        sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
        if sh is not None:
            item = sh.GetItemByDataNode(sequenceNode)
            if item and sh.GetItemParent(item) and sh.GetItemParent(item) != sh.GetSceneItemID():
                return sequenceNode
        proxy = CMRRiskSegmentLogic._proxyNode(scene, sequenceNode)
        return proxy if proxy is not None else sequenceNode

    @staticmethod
    def _synchronizeWithBrowser(scene, inputSequence, newSequence):
        """Play ``newSequence`` with every browser that plays ``inputSequence``; the browser's
        proxy of the new sequence follows the input's transform."""
        modules = getattr(slicer, "modules", None)
        sequencesLogic = modules.sequences.logic() if modules is not None and hasattr(modules, "sequences") else None
        for browser in CMRRiskSegmentLogic._browsersOf(scene, inputSequence):
            browser.AddSynchronizedSequenceNode(newSequence)
            if sequencesLogic is not None:  # inside Slicer: make the proxy node now
                sequencesLogic.UpdateProxyNodesFromSequences(browser)
            proxy, newProxy = browser.GetProxyNode(inputSequence), browser.GetProxyNode(newSequence)
            if proxy is not None and newProxy is not None and proxy.GetTransformNodeID():
                newProxy.SetAndObserveTransformNodeID(proxy.GetTransformNodeID())


#
# Test (runs inside Slicer: Reload and Test, or the self-test module)
#


class CMRRiskSegmentTest(ScriptedLoadableModuleTest):
    """Exercises the Logic on a synthetic short-axis-like volume: names, colours, geometry,
    label round trip and MRB save/load. The same checks run headless with pytest in
    ``Testing/test_slicer_bridge.py`` against real ACDC frames."""

    def setUp(self):
        slicer.mrmlScene.Clear(0)

    def runTest(self):
        absent = missing_packages()
        if absent:  # a fresh Slicer: say what to do instead of failing on an ImportError
            self.skipTest("CMRRisk Segment's self-test needs the Python packages " + ", ".join(absent)
                          + "; open the module and press Apply once to install them.")
        self.setUp()
        self.test_segment_volume_round_trip()
        self.setUp()
        self.test_scar_tables()
        self.setUp()
        self.test_qc_volume()

    def test_qc_volume(self):
        """Quality checks of a stack with a missing (zero-filled) slice: excluded, reason named."""
        import numpy as np

        self.delayDisplay("QC of a stack with a missing slice")
        z, y, x = np.mgrid[0:8, 0:64, 0:64]
        img = np.where(np.hypot(y - 32, x - 32) < 12, 300.0, 40.0).astype(np.float32)
        img += np.random.default_rng(0).normal(0, 5, img.shape).astype(np.float32)
        img[4] = 0.0
        volumeNode = slicer.util.addVolumeFromArray(img, name="qc phantom")
        volumeNode.SetSpacing(1.5, 1.5, 8.0)
        table = CMRRiskSegmentLogic.qcVolume(volumeNode)
        self.assertEqual(table.GetAttribute("CMRRisk.qcStatus"), "exclude")
        self.assertEqual(table.GetTable().GetValue(0, 0).ToString(), "missing_slice")
        self.delayDisplay("Test passed")

    def test_scar_tables(self):
        """AHA-segment and intensity-method tables of a ring phantom whose answer is known: scar
        filling the mid anteroseptal sector transmurally."""
        import numpy as np

        from cmrrisk import labels as L
        from cmrrisk import mrml

        self.delayDisplay("Scar phantom")
        z, y, x = np.indices((9, 64, 64)).astype(float)
        r = np.hypot(y - 31.5, x - 31.5)
        angle = np.degrees(np.arctan2(y - 31.5, x - 31.5))
        labels = np.where(r < 10, L.LV_BLOOD_POOL, np.where(r < 16, L.LV_MYOCARDIUM, 0)).astype(np.uint8)
        scar = (labels == L.LV_MYOCARDIUM) & (z >= 3) & (z <= 5) & (angle >= 0) & (angle < 60)
        labels[scar] = L.SCAR
        image = np.where(labels == L.SCAR, 200.0, np.where(labels == L.LV_MYOCARDIUM, 60.0, 150.0))
        image += np.random.default_rng(0).normal(0, 4, image.shape)
        volumeNode = slicer.util.addVolumeFromArray(image.astype(np.float32), name="scar phantom")
        segNode = mrml.labels_to_segmentation(slicer.mrmlScene, labels, volumeNode, "scar phantom segmentation",
                                              structures=L.LGE_LABELS)
        result = CMRRiskSegmentLogic.scarAnalysis(segNode, volumeNode, reference_angle_deg=0,
                                                  septum_direction=1, base="first")
        table = result["segmentsTable"].GetTable()
        self.assertEqual(table.GetNumberOfRows(), 16)
        self.assertAlmostEqual(table.GetValue(7, 5).ToDouble(), 100.0, places=3)  # segment 8 scar %
        self.assertEqual(result["measures"]["aha"]["summary"]["n_segments_transmurality_gt75"], 1)
        self.assertEqual(result["measures"]["intensity_methods"]["nsd"][2]["dice_vs_dl"], 1.0)
        self.delayDisplay("Test passed")

    def test_segment_volume_round_trip(self):
        import tempfile

        import numpy as np

        from cmrrisk import labels as L
        from cmrrisk import mrml

        self.delayDisplay("Synthetic short-axis stack")
        z, y, x = np.mgrid[0:8, 0:160, 0:160]
        r = np.hypot(y - 80, x - 80)
        img = np.where(r < 18, 300, np.where(r < 26, 80, 40)).astype(np.float32)
        img += np.random.default_rng(0).normal(0, 5, img.shape).astype(np.float32)
        volumeNode = slicer.util.addVolumeFromArray(img, name="synthetic")
        volumeNode.SetSpacing(1.5, 1.5, 8.0)
        volumeNode.SetOrigin(10.0, -20.0, 5.0)

        logic = CMRRiskSegmentLogic()
        segNode = logic.segmentVolume(volumeNode)
        seg = segNode.GetSegmentation()
        names = [seg.GetNthSegment(i).GetName() for i in range(seg.GetNumberOfSegments())]
        self.assertEqual(sorted(names), sorted(L.SEGMENTS[v][0] for v in L.CINE_LABELS))
        labels = mrml.segmentation_to_labels(segNode, volumeNode)
        self.assertEqual(labels.shape, img.shape)

        path = os.path.join(tempfile.mkdtemp(), "scene.mrb")
        self.assertTrue(slicer.util.saveScene(path))
        slicer.mrmlScene.Clear(0)
        slicer.util.loadScene(path)
        self.assertIsNotNone(slicer.util.getFirstNodeByClassByName("vtkMRMLSegmentationNode",
                                                                     "synthetic segmentation"))
        self.delayDisplay("Test passed")
