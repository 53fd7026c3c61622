"""CMRRisk Predict: image-derived features (clinical indices, radiomics, deep features) of the
loaded study in 3D Slicer, predictions of a trained model (risk, risk group, survival curve, or
class probabilities), training from a cohort manifest, and explanations.

Module, Widget, Logic and Test classes (Slicer's scripted-module convention). The Logic is thin:
nodes -> arrays through ``cmrrisk.mrml``, features from ``cmrrisk.features.cohort.image_features``
(the same function that ``cmrrisk features`` runs on a cohort), results -> a table node::

    logic = slicer.util.getModuleLogic("CMRRiskPredict")
    table = logic.computeFeatures(edVolumeNode=ed, esVolumeNode=es,
                                  edSegmentationNode=edSeg, esSegmentationNode=esSeg, device="cuda")
    out = logic.predictStudy("my_model", ed, es, covariates={"age": 61, "sex": "F"})
    out["table"], out["chart"]        # table node, vtkMRMLPlotChartNode of the survival curve
    ex = logic.explainStudy("my_model", ed, es, covariates="age=61, sex=F", method="ig", k=5)
    ex["heatmaps"]["cine_ed"], ex["attributions"], ex["text"]   # heatmap over ED in the views
    logic.trainModel("cohort.csv", "survival", "my_model", progress=print)

Every button of the module is one of these calls. The long ones take ``progress(fraction,
message)`` and ``cancel()`` (returns True to stop: ``cmrrisk.predict.study.Cancelled`` is raised
and nothing is added to the scene); ``trainModel`` reports ``progress(done, total, message)``.
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
#: (radiomics comes from the SlicerRadiomics extension; torch from the PyTorch extension)
#: (numpy, SimpleITK, pydicom and vtk come with Slicer; the model-defining packages pinned as in
#: pyproject.toml, general-purpose ones left to pip so that they suit Slicer's numpy)
REQUIRED_PACKAGES = {
    "monai": "monai==1.6.1",
    "captum": "captum==0.9.0",
    "pandas": "pandas<3",
    "sklearn": "scikit-learn==1.9.1",
    "sksurv": "scikit-survival==0.28.0",
    "lifelines": "lifelines==0.30.3",
    "pycox": "pycox==0.3.0",
    "torchtuples": "torchtuples==0.2.2",
    "h5py": "h5py",
    "matplotlib": "matplotlib",
    "scipy": "scipy",
    "PIL": "pillow",
    "safetensors": "safetensors",
    "nibabel": "nibabel==5.4.2",
    "tqdm": "tqdm",
    "dask": "dask==2026.8.0",  # the cohort engine (cmrrisk.parallel)
    "distributed": "distributed==2026.8.0",
}


def missing_packages():
    """Python packages the module needs that are not importable in this Slicer."""
    from cmrrisk.mrml.dependencies import missing

    return missing(REQUIRED_PACKAGES, also=("torch", "radiomics"))


#
# Module
#


class CMRRiskPredict(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "CMRRisk Predict"
        self.parent.categories = ["Cardiac"]
        # survival curves are shown with the Plots module; results are table and segmentation nodes
        self.parent.dependencies = ["Plots", "Tables", "Segmentations"]
        self.parent.contributors = ["CMRRisk developers"]
        self.parent.helpText = (
            "Image-derived features of a cardiac MRI study: clinical indices (volumes, ejection "
            "fraction, mass, wall thickness, scar burden), radiomic features (pyradiomics, bundled "
            "parameter file) and deep features (encoder of the bundled segmentation network), "
            "for ED/ES cine frames and LGE. Missing segmentations are computed with the bundled "
            "models (on the CPU or a CUDA GPU). Prediction: a model trained with 'cmrrisk train' "
            "(or the Training section) gives the study's risk score, risk group and survival curve, "
            "or class probabilities. Explanation: heatmap volumes over the images, covariate "
            "attributions and a short text for the prediction. Long runs show their progress and "
            "can be cancelled. Research use only.")
        self.parent.acknowledgementText = (
            "Radiomics: van Griethuysen et al., Cancer Research 77(21):e104-e107, 2017. "
            "Bundled models trained on ACDC (Bernard et al., IEEE TMI 2018) and EMIDEC "
            "(Lalande et al., Data 2020).")


#
# Widget
#

#: buttons that start a long run (all disabled while one runs)
ACTION_BUTTONS = ("applyButton", "predictButton", "trainButton", "reportButton", "explainButton")
#: inputs that must not change during a run
INPUT_WIDGETS = ("edSelector", "edSegmentationSelector", "esSelector", "esSegmentationSelector",
                 "lgeSelector", "lgeSegmentationSelector", "deviceComboBox", "bsaSpinBox",
                 "radiomicsCheckBox", "deepCheckBox", "modelDirPathLineEdit", "covariatesLineEdit",
                 "horizonsLineEdit", "manifestPathLineEdit", "endpointComboBox", "modelNameComboBox",
                 "outputDirPathLineEdit", "cvSpinBox", "testManifestPathLineEdit",
                 "explainMethodComboBox", "referenceManifestPathLineEdit", "kSpinBox")


class CMRRiskPredictWidget(ScriptedLoadableModuleWidget):
    """Thin GUI: every action is one Logic call, run by ``_run`` with the shared progress bar and
    Cancel button, the other actions and the inputs disabled until it ends."""

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/CMRRiskPredict.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = CMRRiskPredictLogic()
        import ctk

        self.ui.modelDirPathLineEdit.filters = ctk.ctkPathLineEdit.Dirs
        self.ui.outputDirPathLineEdit.filters = ctk.ctkPathLineEdit.Dirs
        for name in ("manifestPathLineEdit", "testManifestPathLineEdit", "referenceManifestPathLineEdit"):
            getattr(self.ui, name).nameFilters = ["Cohort manifest (*.csv)"]
        self.ui.explainMethodComboBox.clear()
        self.ui.explainMethodComboBox.addItems(self.logic.explanationMethods())
        self.ui.explainMethodComboBox.currentText = "ig"  # the default of 'cmrrisk explain'
        self._busy = False
        self._cancelRequested = False
        self.ui.cancelButton.enabled = False
        self.ui.applyButton.connect("clicked(bool)", self.onApply)
        self.ui.predictButton.connect("clicked(bool)", self.onPredict)
        self.ui.trainButton.connect("clicked(bool)", self.onTrain)
        self.ui.reportButton.connect("clicked(bool)", self.onReport)
        self.ui.explainButton.connect("clicked(bool)", self.onExplain)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancel)
        self.ui.endpointComboBox.connect("currentIndexChanged(int)", self.fillModelNames)
        self.ui.trainCollapsibleButton.connect("contentsCollapsed(bool)", self.fillModelNames)
        for name in ("edSelector", "esSelector", "lgeSelector"):
            getattr(self.ui, name).connect("currentNodeChanged(vtkMRMLNode*)", self.updateGUI)
        for name in ("modelDirPathLineEdit", "manifestPathLineEdit", "outputDirPathLineEdit",
                     "testManifestPathLineEdit"):
            getattr(self.ui, name).connect("currentPathChanged(QString)", self.updateGUI)
        self.updateGUI()

    def updateGUI(self, *_):
        if self._busy:
            return
        ed, es, lge = (self.ui.edSelector.currentNode(), self.ui.esSelector.currentNode(),
                       self.ui.lgeSelector.currentNode())
        modelDir = bool(self.ui.modelDirPathLineEdit.currentPath)
        self.ui.applyButton.enabled = bool((ed and es) or lge)
        self.ui.predictButton.enabled = modelDir
        self.ui.explainButton.enabled = bool(modelDir and ed)
        self.ui.trainButton.enabled = bool(self.ui.manifestPathLineEdit.currentPath
                                           and self.ui.outputDirPathLineEdit.currentPath)
        self.ui.reportButton.enabled = bool(modelDir and (self.ui.manifestPathLineEdit.currentPath
                                                          or self.ui.testManifestPathLineEdit.currentPath))

    def fillModelNames(self, *_):
        """The registered model names of the chosen endpoint (the combo stays editable for a
        model registered later from the Python console)."""
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

        return ensure(REQUIRED_PACKAGES, also=("torch", "radiomics"),
                      status=lambda message: setattr(self.ui.statusLabel, "text", message))

    def _studyNodes(self):
        """The study's volume and segmentation nodes chosen in the Study section."""
        return {"edVolumeNode": self.ui.edSelector.currentNode(),
                "esVolumeNode": self.ui.esSelector.currentNode(),
                "edSegmentationNode": self.ui.edSegmentationSelector.currentNode(),
                "esSegmentationNode": self.ui.esSegmentationSelector.currentNode(),
                "lgeVolumeNode": self.ui.lgeSelector.currentNode(),
                "lgeSegmentationNode": self.ui.lgeSegmentationSelector.currentNode()}

    # ---- the shared run: busy state, progress, cancel, errors

    def _setBusy(self, busy):
        self._busy = busy
        for name in ACTION_BUTTONS + INPUT_WIDGETS:  # buttons: re-enabled as updateGUI decides
            getattr(self.ui, name).enabled = not busy
        self.ui.cancelButton.enabled = busy
        if not busy:
            self.updateGUI()

    def _cancelled(self):
        """The cancel callback: let Qt deliver a pending Cancel click, then read the flag."""
        slicer.app.processEvents()
        return self._cancelRequested

    def _progress(self, fraction, message):
        self.ui.progressBar.maximum = 1000
        self.ui.progressBar.value = int(round(1000 * min(1.0, max(0.0, float(fraction)))))
        self.ui.statusLabel.text = str(message)
        slicer.app.processEvents()

    def _run(self, failureMessage, startMessage, action):
        """Run ``action`` (one Logic call and the display of its result) with the other actions
        and the inputs disabled, the progress bar and Cancel live; a cancel says "Cancelled."
        without an error dialog, another error is shown and summarised in the status label."""
        from cmrrisk.errors import Cancelled

        if self._busy:
            return
        self._cancelRequested = False
        self._setBusy(True)
        self.ui.progressBar.maximum, self.ui.progressBar.value = 1000, 0
        self.ui.statusLabel.text = startMessage
        slicer.app.processEvents()
        try:
            with slicer.util.tryWithErrorDisplay(failureMessage, waitCursor=True):
                if not self.ensureDependencies():  # it says why in the status label
                    return
                try:
                    action()
                except Cancelled:
                    self.ui.progressBar.value = 0
                    self.ui.statusLabel.text = "Cancelled."
        except Exception as exc:  # already displayed by tryWithErrorDisplay
            self.ui.statusLabel.text = f"Stopped: {exc}"
        finally:
            self.ui.progressBar.maximum = max(1, self.ui.progressBar.maximum)
            self._setBusy(False)

    def onCancel(self):
        self._cancelRequested = True
        self.ui.statusLabel.text = "Cancelling..."

    def _showTable(self, table):
        self.ui.tableView.setMRMLTableNode(table)
        slicer.app.applicationLogic().GetSelectionNode().SetActiveTableID(table.GetID())
        slicer.app.applicationLogic().PropagateTableSelection()

    # ---- actions (one Logic call each)

    def onApply(self):
        def action():
            table = self.logic.computeFeatures(
                **self._studyNodes(), bsa=self.ui.bsaSpinBox.value or None,
                radiomics=self.ui.radiomicsCheckBox.checked, deep=self.ui.deepCheckBox.checked,
                device=self.ui.deviceComboBox.currentText, progress=self._progress, cancel=self._cancelled)
            self._showTable(table)
            self.ui.statusLabel.text = f"{table.GetNumberOfRows()} features."

        self._run("CMRRisk features failed.", "Computing features...", action)

    def onPredict(self):
        def action():
            out = self.logic.predictStudy(
                self.ui.modelDirPathLineEdit.currentPath, **self._studyNodes(),
                covariates=self.ui.covariatesLineEdit.text, horizons=self.ui.horizonsLineEdit.text,
                bsa=self.ui.bsaSpinBox.value or None, device=self.ui.deviceComboBox.currentText,
                progress=self._progress, cancel=self._cancelled)
            self._showTable(out["table"])
            if out["chart"] is not None:
                slicer.modules.plots.logic().ShowChartInLayout(out["chart"])
            self.ui.statusLabel.text = out["summary"]

        self._run("CMRRisk prediction failed.", "Predicting...", action)

    def onExplain(self):
        def action():
            out = self.logic.explainStudy(
                self.ui.modelDirPathLineEdit.currentPath, **self._studyNodes(),
                covariates=self.ui.covariatesLineEdit.text,
                method=self.ui.explainMethodComboBox.currentText,
                referenceManifest=self.ui.referenceManifestPathLineEdit.currentPath or None,
                k=self.ui.kSpinBox.value, device=self.ui.deviceComboBox.currentText,
                progress=self._progress, cancel=self._cancelled)  # shows the heatmap as foreground
            self._showTable(out["attributions"])
            self.ui.statusLabel.text = out["text"]

        self._run("CMRRisk explanation failed.", "Explaining...", action)

    def onTrain(self):
        def action():
            res = self.logic.trainModel(
                self.ui.manifestPathLineEdit.currentPath, self.ui.endpointComboBox.currentText,
                self.ui.outputDirPathLineEdit.currentPath, model=self.ui.modelNameComboBox.currentText.strip(),
                cv=self.ui.cvSpinBox.value,
                progress=lambda done, total, message: self._progress(done / max(1, total), message),
                cancel=self._cancelled)
            self.ui.modelDirPathLineEdit.currentPath = res["model_dir"]
            self.ui.statusLabel.text = f"Model written: {res['model_dir']} ({res['seconds']:.0f} s)"

        self._run("CMRRisk training failed.", "Training...", action)

    def onReport(self):
        def action():
            self.ui.progressBar.maximum = 0  # steps of unknown number: a busy indicator
            res = self.logic.writeReport(
                self.ui.modelDirPathLineEdit.currentPath, trainManifest=self.ui.manifestPathLineEdit.currentPath,
                testManifest=self.ui.testManifestPathLineEdit.currentPath,
                progress=lambda message: (setattr(self.ui.statusLabel, "text", str(message)),
                                          slicer.app.processEvents()),
                cancel=self._cancelled)
            self.ui.progressBar.maximum, self.ui.progressBar.value = 1, 1
            self.ui.statusLabel.text = f"Report written: {res['html']}"
            import qt

            qt.QDesktopServices.openUrl(qt.QUrl.fromLocalFile(res["html"]))

        self._run("CMRRisk report failed.", "Writing the report...", action)


#
# Logic
#


class CMRRiskPredictLogic(ScriptedLoadableModuleLogic):
    """Features, predictions, training and explanations of the loaded study; usable without the GUI."""

    #: where the segmentation network runs (the Study section's device combo)
    DEVICES = ("cpu", "cuda")

    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)

    # ---- what the GUI offers, from the core

    @staticmethod
    def explanationMethods():
        """Image saliency methods of ``cmrrisk explain`` (``cmrrisk.explain.saliency.METHODS``)."""
        from cmrrisk.explain.saliency import METHODS

        return list(METHODS)

    @staticmethod
    def modelNames(endpoint):
        """Registered model names of ``endpoint`` ("survival" or "diagnosis"; "auto" included)."""
        from cmrrisk.predict import model_names

        return list(model_names(endpoint))

    # ---- progress and cancel of long calls

    @staticmethod
    def _steps(progress, cancel):
        """``step(fraction, message)``: ``cmrrisk.errors.stepper`` (raises ``Cancelled``, the class
        of the training path, when ``cancel()`` returns True, else reports progress)."""
        from cmrrisk.errors import stepper

        return stepper(progress, cancel)

    @staticmethod
    def _within(progress, low, high):
        """The core's ``progress(fraction, message)`` mapped into [low, high] of the caller's."""
        if progress is None:
            return None
        return lambda fraction, message: progress(low + (high - low) * float(fraction), message)

    @staticmethod
    def _labels(segmentationNode, volumeNode):
        from cmrrisk import mrml

        if segmentationNode is None:
            return None
        return mrml.segmentation_to_labels(segmentationNode, volumeNode)

    def computeFeatures(self, edVolumeNode=None, esVolumeNode=None, edSegmentationNode=None,
                        esSegmentationNode=None, lgeVolumeNode=None, lgeSegmentationNode=None,
                        bsa=None, radiomics=True, deep=True, name=None, addSegmentations=True,
                        device="cpu", progress=None, cancel=None):
        """Compute the study's features; returns a ``vtkMRMLTableNode`` with columns feature,
        region, phase, class, value (one row per feature, the names of ``cmrrisk features``).

        Segmentation nodes are optional (segments named as CMRRisk names them, or any segment
        whose terminology/name matches); a missing one is computed with the bundled model on
        ``device`` ("cpu" or "cuda") and, with ``addSegmentations``, added to the scene as a
        segmentation node.

        ``progress(fraction, message)`` is called before each step (segmentation and deep
        features per image, clinical indices, radiomics, adding the results) and with 1.0 at
        the end; ``cancel()`` is checked before each step and raises
        ``cmrrisk.predict.study.Cancelled``; no node is added to the scene then."""
        from cmrrisk import labels as L
        from cmrrisk import mrml
        from cmrrisk.features.cohort import image_features
        from cmrrisk.features.tables import feature_rows

        if (edVolumeNode is None) != (esVolumeNode is None):
            raise ValueError("Give both the ED and the ES volume (or neither, with an LGE volume).")
        if edVolumeNode is None and lgeVolumeNode is None:
            raise ValueError("Give ED and ES volumes, an LGE volume, or both.")
        step = self._steps(progress, cancel)
        step(0.0, "reading the study")
        ed = mrml.volume_from_node(edVolumeNode) if edVolumeNode is not None else None
        es = mrml.volume_from_node(esVolumeNode) if esVolumeNode is not None else None
        lge = mrml.volume_from_node(lgeVolumeNode) if lgeVolumeNode is not None else None
        info = {}
        feats = image_features(
            ed, es, self._labels(edSegmentationNode, edVolumeNode), self._labels(esSegmentationNode, esVolumeNode),
            lge, self._labels(lgeSegmentationNode, lgeVolumeNode), bsa_m2=bsa,
            options={"radiomics": radiomics, "deep": deep, "device": device or "cpu"}, info=info,
            progress=self._within(progress, 0.02, 0.95), cancel=cancel)
        step(0.96, "adding the results to the scene")  # the last chance to cancel: nothing added yet
        reference = edVolumeNode or lgeVolumeNode
        scene = reference.GetScene()
        if addSegmentations:
            made = info.get("segmentations", {})
            for key, node, given in (("ed", edVolumeNode, edSegmentationNode),
                                     ("es", esVolumeNode, esSegmentationNode),
                                     ("lge", lgeVolumeNode, lgeSegmentationNode)):
                if given is None and key in made and node is not None:
                    mrml.labels_to_segmentation(scene, made[key], node, f"{node.GetName()} segmentation",
                                                structures=L.LGE_LABELS if key == "lge" else L.CINE_LABELS)
        columns = feature_rows(feats)
        table = mrml.add_table(scene, name or f"{reference.GetName()} features", columns, reference)
        if progress is not None:
            progress(1.0, "features done")
        return table

    # ---- explanations (cmrrisk.explain; the same core as `cmrrisk explain`)

    @staticmethod
    def _loadModel(modelDir):
        from cmrrisk.explain.core import _models
        from cmrrisk.predict.store import load_pipeline

        _models()
        return load_pipeline(modelDir)

    @staticmethod
    def _reference(pipe, referenceManifest, k):
        from cmrrisk.explain.core import load_reference, reference_latents

        if not k:
            return None
        table = load_reference(pipe, referenceManifest)
        return None if table is None else reference_latents(pipe, table)

    def showHeatmap(self, heatVolume, referenceNode, name=None, opacity=0.5):
        """Show a heatmap over ``referenceNode`` in the slice views: the foreground (with
        ``opacity``) of every slice composite node, ``referenceNode`` the background. ``heatVolume``
        is a heatmap volume node, or a ``cmrrisk.image.Volume`` with the reference node's
        geometry, added as a volume node with the heat colour map. Returns the heatmap node."""
        from cmrrisk.mrml.heatmap import heatmap_to_node, show_overlay

        if hasattr(heatVolume, "IsA") and heatVolume.IsA("vtkMRMLVolumeNode"):
            node, scene = heatVolume, heatVolume.GetScene()
        else:
            scene = referenceNode.GetScene()
            node = heatmap_to_node(scene, heatVolume, name or f"{referenceNode.GetName()} heatmap", referenceNode)
        show_overlay(scene, node, referenceNode, opacity)
        return node

    def _showExplanation(self, expl, referenceNodes, showOverlay=True):
        """Explanation -> heatmap volume nodes, an attribution table, a similar-cases table."""
        from cmrrisk import mrml
        from cmrrisk.mrml.heatmap import heatmap_to_node

        first = next(iter(referenceNodes.values()))
        scene = first.GetScene()
        heatNodes = {}
        for col, vol in expl.heatmaps.items():
            ref = referenceNodes.get(col)
            heatNodes[col] = heatmap_to_node(scene, vol, f"{expl.subject} {col} {expl.method} heatmap", ref)
        if showOverlay and heatNodes:
            col = "cine_ed" if "cine_ed" in heatNodes else next(iter(heatNodes))
            self.showHeatmap(heatNodes[col], referenceNodes.get(col))
        rows = expl.attributions
        table = mrml.add_table(scene, f"{expl.subject} attributions", {
            "feature": [r["feature"] for r in rows],
            "value": ["" if r["value"] is None else str(r["value"]) for r in rows],
            "attribution": [float(r["attribution"]) for r in rows]}, first)
        table.SetAttribute("CMRRisk.explanation", expl.text)
        similar = None
        if expl.similar:
            keys = [k for k in expl.similar[0] if k not in ("rank",)]
            similar = mrml.add_table(scene, f"{expl.subject} similar cases",
                                     {k: ["" if s.get(k) is None else s.get(k) for s in expl.similar]
                                      for k in keys}, first)
        return {"heatmaps": heatNodes, "attributions": table, "similar": similar, "text": expl.text,
                "explanation": expl}

    def explainStudy(self, modelDir, edVolumeNode=None, esVolumeNode=None, edSegmentationNode=None,
                     esSegmentationNode=None, covariates=None, method="ig", referenceManifest=None,
                     k=5, showOverlay=True, subject=None, lgeVolumeNode=None, lgeSegmentationNode=None,
                     device="cpu", progress=None, cancel=None):
        """Explain the model's prediction for the loaded study (the Explanation section's call).
        Returns a dict: ``heatmaps`` ({"cine_ed"/"cine_es": heatmap volume node}, with the
        geometry of its image), ``attributions`` and ``similar`` (table nodes), ``text`` (the
        sentence), ``explanation`` (the core object). With ``showOverlay`` the ED heatmap becomes
        the foreground of the slice views over the ED volume (:meth:`showHeatmap`).

        ``covariates``: {column: value} or the text "age=61, sex=F" of the model's covariate
        columns (missing ones are imputed and listed in the explanation's notes); segmentations
        are optional (bundled model on ``device``); ``method``: one of
        :meth:`explanationMethods`; ``referenceManifest`` (optional): the cohort whose ``k`` most
        similar subjects are listed (default: the model's training manifest where it still is;
        ``k`` 0: none). ``progress(fraction, message)`` and ``cancel()`` as for
        :meth:`computeFeatures` (a cancel raises ``Cancelled`` and adds no node)."""
        from cmrrisk import mrml
        from cmrrisk.explain.core import explain_volumes

        if not modelDir:
            raise ValueError("Choose a model directory (written by 'cmrrisk train' or the Training section).")
        refs = {c: n for c, n in (("cine_ed", edVolumeNode), ("cine_es", esVolumeNode)) if n is not None}
        if not refs:
            raise ValueError("Give the study's ED (and ES) volume node to place the results.")
        methods = self.explanationMethods()
        if method not in methods:
            raise ValueError(f"Explanation method {method!r}: choose one of {', '.join(methods)}.")
        covariates = self.parseCovariates(covariates) if isinstance(covariates, str) else covariates
        step = self._steps(progress, cancel)
        step(0.0, "loading the model")
        pipe = self._loadModel(modelDir)
        if k:
            step(0.05, "reference subjects")
        reference = self._reference(pipe, referenceManifest or None, int(k or 0))
        ed = mrml.volume_from_node(edVolumeNode) if edVolumeNode is not None else None
        es = mrml.volume_from_node(esVolumeNode) if esVolumeNode is not None else None
        lge = mrml.volume_from_node(lgeVolumeNode) if lgeVolumeNode is not None else None
        expl = explain_volumes(pipe, ed, es, self._labels(edSegmentationNode, edVolumeNode),
                               self._labels(esSegmentationNode, esVolumeNode), covariates,
                               subject or (edVolumeNode.GetName() if edVolumeNode is not None else "study"),
                               method, reference, int(k or 0), lge=lge,
                               lge_seg=self._labels(lgeSegmentationNode, lgeVolumeNode), device=device or "cpu",
                               progress=self._within(progress, 0.1, 0.95), cancel=cancel)
        step(0.96, "adding the results to the scene")
        out = self._showExplanation(expl, refs, showOverlay)
        if progress is not None:
            progress(1.0, "explanation done")
        return out

    def explainSubject(self, modelDir, manifestPath, subject, method="ig", referenceManifest=None,
                       k=5, outputDir=None, showOverlay=True):
        """Explain one subject of a cohort manifest: its ED/ES images are added to the scene as
        volume nodes, with the heatmaps, tables and text of ``explainStudy``; with ``outputDir`` the
        files of ``cmrrisk explain`` are written too."""
        from cmrrisk import mrml
        from cmrrisk.explain.core import explain_subject, write_explanation
        from cmrrisk.predict.tabular import load_table
        from cmrrisk.predict.validation import needs_image_features

        pipe = self._loadModel(modelDir)
        table = load_table(manifestPath, pipe.endpoint, need_outcome=False,
                           image_features=needs_image_features(pipe))
        expl = explain_subject(pipe, table, subject, method, self._reference(pipe, referenceManifest, k), k)
        if outputDir:
            write_explanation(expl, outputDir)
        scene = slicer.mrmlScene
        refs = {col: mrml.volume_to_node(scene, vol, f"{subject} {col}") for col, vol in expl.images.items()}
        if not refs:  # a model without images: the tables only
            table_node = mrml.add_table(scene, f"{subject} attributions", {
                "feature": [r["feature"] for r in expl.attributions],
                "value": ["" if r["value"] is None else str(r["value"]) for r in expl.attributions],
                "attribution": [float(r["attribution"]) for r in expl.attributions]})
            table_node.SetAttribute("CMRRisk.explanation", expl.text)
            return {"heatmaps": {}, "attributions": table_node, "similar": None, "text": expl.text,
                    "explanation": expl}
        return self._showExplanation(expl, refs, showOverlay)


    # ---- prediction and training (cmrrisk.predict.study: the core of `cmrrisk predict` / `train`)

    @staticmethod
    def parseCovariates(text):
        """'age=61, sex=F; diabetes=1' -> {"age": "61", "sex": "F", "diabetes": "1"} (values are
        converted by the model: numbers for numeric columns, text for categories)."""
        out = {}
        for item in [t.strip() for t in (text or "").replace(";", ",").replace("\n", ",").split(",")]:
            if not item:
                continue
            if "=" not in item:
                raise ValueError(f"covariates: {item!r} is not name=value (e.g. age=61, sex=F).")
            key, value = (x.strip() for x in item.split("=", 1))
            if not key:
                raise ValueError(f"covariates: {item!r} has no name before '='.")
            if key in out:
                raise ValueError(f"covariates: {key!r} is given twice.")
            out[key] = value
        return out

    @staticmethod
    def parseHorizons(text):
        """'365, 730' -> [365.0, 730.0]; empty -> None (the model's default horizons)."""
        items = [t.strip() for t in (text or "").replace(";", ",").split(",") if t.strip()]
        try:
            values = [float(t) for t in items]
        except ValueError as exc:
            raise ValueError(f"horizons {text!r}: give times separated by commas (e.g. 365, 730).") from exc
        if any(v <= 0 for v in values):
            raise ValueError(f"horizons {text!r}: times must be > 0.")
        return values or None

    def predictStudy(self, modelDir, edVolumeNode=None, esVolumeNode=None, edSegmentationNode=None,
                     esSegmentationNode=None, lgeVolumeNode=None, lgeSegmentationNode=None,
                     covariates=None, horizons=None, bsa=None, name=None, chart=True,
                     device="cpu", progress=None, cancel=None):
        """Predict with a model directory (``cmrrisk train``) for the loaded study.

        Returns a dict: ``table`` (a one-row table node: survival: risk, risk_group and
        survival_at_<t> per horizon; diagnosis: predicted and p_<class>), ``chart`` (survival:
        a ``vtkMRMLPlotChartNode`` of the predicted survival curve; else None), ``result`` (the
        core's dict, with ``notes`` such as imputed covariates). Image features and missing
        segmentations are computed as for ``cmrrisk features`` (the network on ``device``); a
        model trained on covariates only needs no volume. ``covariates``: {column: value} or the
        text "age=61, sex=F"; ``horizons``: a list of times or the text "365, 730". ``summary``:
        the one-line result the module shows. ``progress(fraction, message)`` and ``cancel()`` as
        for :meth:`computeFeatures` (a cancel raises ``Cancelled`` and adds no node)."""
        from cmrrisk import mrml
        from cmrrisk.mrml.plots import survival_chart
        from cmrrisk.predict.study import predict_study

        if not modelDir:
            raise ValueError("Choose a model directory (written by 'cmrrisk train' or the Training section).")
        if (edVolumeNode is None) != (esVolumeNode is None):
            raise ValueError("Give both the ED and the ES volume (or neither).")
        covariates = self.parseCovariates(covariates) if isinstance(covariates, str) else covariates
        horizons = self.parseHorizons(horizons) if isinstance(horizons, str) else horizons
        step = self._steps(progress, cancel)
        step(0.0, "loading the model")
        pipe = self._loadModel(modelDir)
        vol = {k: (mrml.volume_from_node(n) if n is not None else None)
               for k, n in (("ed", edVolumeNode), ("es", esVolumeNode), ("lge", lgeVolumeNode))}
        reference = edVolumeNode or lgeVolumeNode
        subject = name or (reference.GetName() if reference is not None else "study")
        res = predict_study(pipe, vol["ed"], vol["es"], self._labels(edSegmentationNode, edVolumeNode),
                            self._labels(esSegmentationNode, esVolumeNode), vol["lge"],
                            self._labels(lgeSegmentationNode, lgeVolumeNode), covariates, horizons,
                            subject=subject, bsa_m2=bsa, device=device or "cpu",
                            progress=self._within(progress, 0.05, 0.95), cancel=cancel)
        step(0.96, "adding the results to the scene")  # the last chance to cancel: nothing added yet
        scene = reference.GetScene() if reference is not None else slicer.mrmlScene
        columns = {"subject": [subject], "model": [res["model"]]}
        if res["endpoint"] == "survival":
            columns["risk"] = [res["risk"]]
            if "risk_group" in res:
                columns["risk_group"] = [res["risk_group"]]
            for h, p in res["survival"].items():
                columns[f"survival_at_{h:g}"] = [p]
        else:
            columns["predicted"] = [res["predicted"]]
            for c, p in res["probabilities"].items():
                columns[f"p_{c}"] = [p]
        table = mrml.add_table(scene, f"{subject} prediction", columns, reference)
        table.SetAttribute("CMRRisk.model", str(modelDir))
        table.SetAttribute("CMRRisk.notes", "; ".join(res["notes"]))
        chartNode = None
        if chart and res["endpoint"] == "survival":
            chartNode, _ = survival_chart(scene, {subject: (res["curve"]["time"], res["curve"]["survival"])},
                                          f"{subject} predicted survival", reference)
        summary = (f"risk {res['risk']:.3g} ({res.get('risk_group', 'no groups')})"
                   if res["endpoint"] == "survival" else f"{res['predicted']} (p = {res['probability']:.2f})")
        notes = f"; {'; '.join(res['notes'])}" if res["notes"] else ""
        if progress is not None:
            progress(1.0, "prediction done")
        return {"table": table, "chart": chartNode, "result": res, "summary": f"{res['model']}: {summary}{notes}"}

    def trainModel(self, manifestPath, endpoint, outputDir, model=None, seed=0, maxEpochs=None, cv=5,
                   maxFeatures=None, progress=None, cancel=None, log=None):
        """Train a model on a cohort manifest and write ``outputDir`` (what ``cmrrisk train``
        does). ``progress(done, total, message)`` after each step (image features, each
        cross-validation fold, final fit, writing); ``cancel()`` is checked between steps and
        raises ``cmrrisk.predict.study.Cancelled`` (nothing is written). Returns the core's dict
        (model_dir, model, cv metrics, chosen candidates, seconds)."""
        from cmrrisk.predict.study import train_model

        if not manifestPath:
            raise ValueError("Choose a cohort manifest (CSV).")
        if not outputDir:
            raise ValueError("Choose an output folder for the model.")
        return train_model(manifestPath, endpoint, outputDir, model=model or None, seed=int(seed),
                           max_epochs=int(maxEpochs) if maxEpochs else None, cv=int(cv or 0),
                           max_features=int(maxFeatures) if maxFeatures else None,
                           progress=progress, cancel=cancel, log=log)

    def writeReport(self, modelDir, outputHtml=None, trainManifest=None, testManifest=None, qc=None,
                    bootstrap=200, seed=0, progress=None, cancel=None):
        """Write the TRIPOD+AI-style HTML report of a model (what ``cmrrisk report`` does) and
        return the core's dict (``html``: the path written, ``models`` with their test or
        apparent metrics, ``limitations``, ...). ``outputHtml`` defaults to
        ``modelDir/report.html``; ``trainManifest`` is described (participants, outcomes),
        ``testManifest`` (optional, with outcomes) is where the model is evaluated; without it
        the figures are apparent (optimistic) ones on the training manifest and the report says
        so. ``progress(message)`` receives each step's message; ``cancel()`` is checked at each
        step and raises ``cmrrisk.predict.study.Cancelled`` (the HTML is written at the end only,
        so nothing is written then)."""
        from cmrrisk.report import write_report

        if not modelDir:
            raise ValueError("Choose a model directory (written by 'cmrrisk train' or the Training section).")
        for label, path in (("Model directory", modelDir), ("Training manifest", trainManifest),
                            ("Test manifest", testManifest)):
            if path and not os.path.exists(path):
                raise ValueError(f"{label} {path} does not exist.")
        if not trainManifest and not testManifest:
            raise ValueError("Choose the training manifest and/or a test manifest: the report describes "
                             "and evaluates the model on them.")
        outputHtml = outputHtml or os.path.join(modelDir, "report.html")
        step = self._steps(None, cancel)

        def report_progress(*message):
            step(0.0, " ".join(str(m) for m in message))
            if progress is not None:
                progress(*message)

        step(0.0, "the report")
        return write_report(outputHtml, modelDir, train_manifest=trainManifest or None,
                            test_manifest=testManifest or None, qc=qc or None, n_boot=int(bootstrap),
                            seed=int(seed), progress=report_progress)


#
# Test (runs inside Slicer: Reload and Test)
#


def _skipMessage(absent):
    return ("CMRRiskPredict self-test skipped: the Python packages " + ", ".join(absent)
            + " are not installed in this Slicer. Press Compute features (or Predict) once and accept "
            "the installation, or install the SlicerRadiomics and PyTorch extensions first, then "
            "run the test again.")


class CMRRiskPredictTest(ScriptedLoadableModuleTest):
    """Features of a synthetic study with known volumes.

    Needs the packages of ``REQUIRED_PACKAGES``: run by a test runner (CTest) without them, the
    tests are skipped (``unittest.SkipTest``) with a message that names them; "Reload and Test"
    offers to install them first (the same confirmation as the module's buttons)."""

    def setUp(self):
        import unittest

        absent = missing_packages()
        if absent:
            raise unittest.SkipTest(_skipMessage(absent))
        slicer.mrmlScene.Clear()

    def runTest(self):
        import unittest

        app = getattr(slicer, "app", None)
        if missing_packages() and app is not None and not app.testingEnabled():
            from cmrrisk.mrml.dependencies import ensure

            ensure(REQUIRED_PACKAGES, also=("torch", "radiomics"))  # asks before installing
        try:
            self.setUp()
        except unittest.SkipTest as exc:
            (getattr(self, "delayDisplay", None) or print)(str(exc))
            return
        self.test_indices_from_given_segmentation()

    def test_indices_from_given_segmentation(self):
        import numpy as np

        from cmrrisk import mrml
        from cmrrisk.image import Volume

        shape = (6, 64, 64)
        zz, yy, xx = np.mgrid[:shape[0], :shape[1], :shape[2]]
        r = np.hypot(yy - 32, xx - 32)
        labels = {}
        for phase, radius in (("ed", 12), ("es", 8)):
            lab = np.zeros(shape, np.uint8)
            lab[(r < radius + 5) & (zz > 0) & (zz < 5)] = 2
            lab[(r < radius) & (zz > 0) & (zz < 5)] = 1
            labels[phase] = lab
        affine = np.diag([1.5, 1.5, 8.0, 1.0])
        nodes = {}
        for phase, lab in labels.items():
            img = (lab == 1) * 300.0 + (lab == 2) * 80.0 + 20.0
            vol = mrml.volume_to_node(slicer.mrmlScene, Volume(img.astype(np.float32), affine), phase)
            seg = mrml.labels_to_segmentation(slicer.mrmlScene, lab, vol, f"{phase} seg")
            nodes[phase] = (vol, seg)
        table = CMRRiskPredictLogic().computeFeatures(nodes["ed"][0], nodes["es"][0], nodes["ed"][1],
                                                      nodes["es"][1], radiomics=False, deep=False)
        values = {table.GetCellText(i, 0): float(table.GetCellText(i, 4)) for i in range(table.GetNumberOfRows())}
        voxel_ml = 1.5 * 1.5 * 8.0 / 1000.0
        self.assertAlmostEqual(values["lv_edv_ml"], (labels["ed"] == 1).sum() * voxel_ml, places=3)
        self.assertAlmostEqual(values["lv_esv_ml"], (labels["es"] == 1).sum() * voxel_ml, places=3)
        self.delayDisplay("CMRRiskPredict test passed")
