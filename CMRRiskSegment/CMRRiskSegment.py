"""CMRRisk Segment: deep-learning segmentation of short-axis cine MRI in 3D Slicer.

Module, Widget, Logic and Test classes (Slicer's scripted-module convention). The Logic is thin:
it converts nodes to arrays through ``cmrrisk.mrml``, calls the ``cmrrisk`` core and converts the
results back, so everything the GUI does can be done from the Python console, e.g.::

    logic = slicer.util.getModuleLogic("CMRRiskSegment")
    segmentationNode = logic.segmentVolume(slicer.util.getNode("patient001_frame01"))
    result = logic.segmentSequence(sequenceNode, ed=0, es=10)   # ED/ES segmentations + indices
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
REQUIRED_PACKAGES = {
    "monai": "monai==1.6.1",
    "nibabel": "nibabel==5.4.2",
    "safetensors": "safetensors",
    "tqdm": "tqdm",
}


def missing_packages():
    """Python packages the core needs that are not importable in this Slicer (torch included)."""
    import importlib.util

    missing = [name for name in ["torch"] + list(REQUIRED_PACKAGES) if importlib.util.find_spec(name) is None]
    return missing


#
# Module
#


class CMRRiskSegment(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "CMRRisk Segment"
        self.parent.categories = ["Cardiac"]
        self.parent.dependencies = []
        self.parent.contributors = ["CMRRisk developers"]
        self.parent.helpText = (
            "Deep-learning segmentation of short-axis cine MRI (LV blood pool, LV myocardium, "
            "RV blood pool, with clinical indices from ED and ES) and, with the lge model, of LGE "
            "(myocardium, scar, microvascular obstruction, with scar burden). Research use only.")
        self.parent.acknowledgementText = (
            "The bundled cine model was trained on the ACDC dataset (Bernard et al., IEEE TMI "
            "37(11):2514-2525, 2018).")


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
        self.ui.modelComboBox.addItems(self.logic.availableModels())
        self.ui.deviceComboBox.addItems(["cpu", "cuda"])
        self.ui.phaseComboBox.addItems(["All phases", "ED and ES"])
        self.ui.applyButton.connect("clicked(bool)", self.onApply)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancel)
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

    def ensureDependencies(self):
        missing = missing_packages()
        if not missing:
            return True
        if not slicer.util.confirmOkCancelDisplay(
                "CMRRisk needs these Python packages, which are not installed in this Slicer: "
                + ", ".join(missing) + ".\n\nInstall them now (internet connection needed)?",
                "CMRRisk: install dependencies"):
            return False
        if "torch" in missing:
            try:
                import PyTorchUtils  # from the PyTorch extension
            except ImportError:
                slicer.util.errorDisplay("Install the PyTorch extension from the Extensions "
                                         "Manager first, then restart Slicer.")
                return False
            if PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=True) is None:
                return False
        with slicer.util.WaitCursor():
            for name in missing:
                if name in REQUIRED_PACKAGES:
                    slicer.util.pip_install(REQUIRED_PACKAGES[name])
        return not missing_packages()

    def onCancel(self):
        self._cancelRequested = True

    def _progress(self, done, total):
        self.ui.progressBar.maximum = max(1, total)
        self.ui.progressBar.value = done
        slicer.app.processEvents()

    def onApply(self):
        node = self.ui.inputSelector.currentNode()
        if node is None or not self.ensureDependencies():
            return
        self._cancelRequested = False
        self.ui.applyButton.enabled = False
        self.ui.cancelButton.enabled = True
        self.ui.statusLabel.text = "Segmenting..."
        model = self.ui.modelComboBox.currentText
        device = self.ui.deviceComboBox.currentText
        try:
            with slicer.util.tryWithErrorDisplay("CMRRisk segmentation failed.", waitCursor=True):
                if node.IsA("vtkMRMLSequenceNode"):
                    edes = self.ui.phaseComboBox.currentIndex == 1
                    result = self.logic.segmentSequence(
                        node, model=model, device=device,
                        ed=self.ui.edSpinBox.value if edes else None,
                        es=self.ui.esSpinBox.value if edes else None,
                        progress=self._progress, cancel=lambda: self._cancelRequested)
                    if result.get("table") is not None:
                        slicer.app.applicationLogic().GetSelectionNode().SetActiveTableID(result["table"].GetID())
                        slicer.app.applicationLogic().PropagateTableSelection()
                else:
                    segNode = self.logic.segmentVolume(node, model=model, device=device,
                                                       progress=self._progress,
                                                       cancel=lambda: self._cancelRequested)
                    if model == "lge":
                        table = self.logic.scarTable(segNode, node)
                        slicer.app.applicationLogic().GetSelectionNode().SetActiveTableID(table.GetID())
                        slicer.app.applicationLogic().PropagateTableSelection()
                self.ui.statusLabel.text = "Done."
        except Exception as exc:  # already displayed by tryWithErrorDisplay
            self.ui.statusLabel.text = f"Stopped: {exc}"
        finally:
            self.ui.applyButton.enabled = True
            self.ui.cancelButton.enabled = False


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
        return mrml.labels_to_segmentation(scene, seg.array, volumeNode,
                                           f"{volumeNode.GetName()} segmentation",
                                           structures=segmenter.structures,
                                           segmentation_node=segmentationNode)

    @staticmethod
    def scarTable(segmentationNode, volumeNode, name=None):
        """Table of scar burden (% of LV myocardium, scar including MVO), scar, MVO and
        myocardium volumes of an LGE segmentation."""
        from cmrrisk import mrml
        from cmrrisk.metrics import lge_measures

        labels = mrml.segmentation_to_labels(segmentationNode, volumeNode)
        vol = mrml.volume_from_node(volumeNode)
        measures = lge_measures(labels, vol.spacing)
        units = {"pct": "%", "ml": "mL"}
        rows = {"index": list(measures),
                "value": [round(float(v), 2) for v in measures.values()],
                "unit": [units.get(k.rsplit("_", 1)[-1], "") for k in measures]}
        return mrml.add_table(volumeNode.GetScene(), name or f"{volumeNode.GetName()} scar", rows, volumeNode)

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
        from cmrrisk.metrics import clinical_indices, volumes_ml

        scene = sequenceNode.GetScene()
        name = sequenceNode.GetName()
        frames = mrml.sequence_volume_nodes(sequenceNode)
        segmenter = self.segmenter(model, device)
        if (ed is None) != (es is None):
            raise ValueError("give both ed and es phase indices, or neither")
        phases = [int(ed), int(es)] if ed is not None else list(range(len(frames)))
        cine = mrml.volume_from_sequence(sequenceNode, phases)
        labels = segmenter.segment(cine, progress=progress, cancel=cancel).array
        spacing = cine.spacing
        result = {}
        if ed is not None:
            ed_i, es_i = 0, 1
        else:
            lv = [volumes_ml(labels[t], spacing)["lv_ml"] for t in range(labels.shape[0])]
            ed_i, es_i = max(range(len(lv)), key=lv.__getitem__), min(range(len(lv)), key=lv.__getitem__)
            seq = scene.AddNewNodeByClass("vtkMRMLSequenceNode", f"{name} segmentation")
            seq.SetIndexName(sequenceNode.GetIndexName())
            seq.SetIndexUnit(sequenceNode.GetIndexUnit())
            for t in range(labels.shape[0]):
                tmp = mrml.labels_to_segmentation(scene, labels[t], frames[t], f"{name} phase {t}",
                                                  study_node=sequenceNode)
                seq.SetDataNodeAtValue(tmp, sequenceNode.GetNthIndexValue(t))
                scene.RemoveNode(tmp)
            mrml.place_in_study(scene, seq, sequenceNode)
            self._synchronizeWithBrowser(scene, sequenceNode, seq)
            result["sequence"] = seq
        ed_phase, es_phase = phases[ed_i], phases[es_i]
        result["ed"] = mrml.labels_to_segmentation(scene, labels[ed_i], frames[ed_phase],
                                                   f"{name} ED (phase {ed_phase}) segmentation",
                                                   study_node=sequenceNode)
        result["es"] = mrml.labels_to_segmentation(scene, labels[es_i], frames[es_phase],
                                                   f"{name} ES (phase {es_phase}) segmentation",
                                                   study_node=sequenceNode)
        indices = clinical_indices(labels[ed_i], labels[es_i], spacing)
        result["indices"] = indices
        result["table"] = self.indicesTable(scene, indices, f"{name} clinical indices", sequenceNode,
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
    def _synchronizeWithBrowser(scene, inputSequence, newSequence):
        browsers = scene.GetNodesByClass("vtkMRMLSequenceBrowserNode")
        browsers.UnRegister(None)
        for i in range(browsers.GetNumberOfItems()):
            browser = browsers.GetItemAsObject(i)
            if browser.IsSynchronizedSequenceNode(inputSequence.GetID(), True):
                browser.AddSynchronizedSequenceNode(newSequence)


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
        self.setUp()
        self.test_segment_volume_round_trip()

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
