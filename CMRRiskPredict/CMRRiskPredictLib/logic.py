"""CMRRisk Predict's Logic: features, predictions, training, reports and explanations of the
loaded study; usable without the GUI::

    logic = slicer.util.getModuleLogic("CMRRiskPredict")
    table = logic.computeFeatures(edVolumeNode=ed, esVolumeNode=es,
                                  edSegmentationNode=edSeg, esSegmentationNode=esSeg, device="cuda")
    out = logic.predictStudy("my_model", ed, es, covariates={"age": 61, "sex": "F"})
    out["table"], out["chart"]        # table node, vtkMRMLPlotChartNode of the survival curve
    ex = logic.explainStudy("my_model", ed, es, covariates="age=61, sex=F", method="ig", k=5)
    ex["heatmaps"]["cine_ed"], ex["attributions"], ex["text"]   # heatmap over ED in the views
    job = logic.startTraining("cohort.csv", "survival", "my_model")   # a separate process
    job.wait(); job.results["metrics"]                                 # table node of its metrics

The study-level calls take ``progress`` and ``cancel()`` (returns True to stop:
``cmrrisk.errors.Cancelled`` is raised and nothing is added to the scene): ``progress`` is a
``cmrrisk.progress.Progress`` (the core's progress-and-cancel contract, used as it is) or a
``progress(fraction, message)`` callback such as the module's progress bar. Training and
reports run as ``python -m cmrrisk`` in a separate process (:mod:`cmrrisk.mrml.runner`): the
module's GUI thread only reads their progress lines; their results are added to the scene when
the process ends, never after a cancel.
"""

import os

import slicer
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleLogic

#: what radiomics adds, said when pyradiomics is absent (it is optional)
RADIOMICS_NOTE = ("pyradiomics is not installed, so the features are clinical indices, deep features "
                  "and covariates only; with it (the SlicerRadiomics extension, or 'pip install pyradiomics') "
                  "the shape, intensity and texture features of every region (LV blood pool, myocardium, RV, "
                  "scar) are added, and models trained on radiomic features can be used.")


def radiomicsAvailable():
    import importlib.util

    return importlib.util.find_spec("radiomics") is not None


class CMRRiskPredictLogic(ScriptedLoadableModuleLogic):
    """Features, predictions, training and explanations of the loaded study; usable without the GUI."""

    #: where the segmentation network can run (the combo offers "cuda" only when torch sees a GPU:
    #: ``cmrrisk.mrml.dependencies.devices``)
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
    def _progress(progress, cancel, shape="fractions"):
        """The ``cmrrisk.progress.Progress`` of a call's ``progress`` and ``cancel`` arguments
        (:func:`cmrrisk.progress.from_callbacks`): what the core takes."""
        from cmrrisk.progress import from_callbacks

        return from_callbacks(progress, cancel, shape)

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
        notes = []
        if radiomics and not radiomicsAvailable():  # optional: said, not an error
            radiomics = False
            notes.append(RADIOMICS_NOTE)
        prog = self._progress(progress, cancel)
        prog.fraction(0.0, "reading the study")
        study = mrml.study_from_nodes(edVolumeNode, esVolumeNode, lgeVolumeNode, edSegmentationNode,
                                      esSegmentationNode, lgeSegmentationNode, bsa=bsa)
        info = {}
        feats = image_features(
            study, options={"radiomics": radiomics, "deep": deep, "device": device or "cpu"}, info=info,
            progress=prog.part(0.02, 0.95))
        prog.fraction(0.96, "adding the results to the scene")  # the last chance to cancel: nothing added yet
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
        table.SetAttribute("CMRRisk.notes", " ".join(notes))
        prog.report(1, 1, "features done")
        return table

    # ---- explanations (cmrrisk.explain; the same core as `cmrrisk explain`)

    @staticmethod
    def _loadModel(modelDir):
        """The model's pipeline; ``pipe.versionNotes``: the warning when the model was made
        with other versions of its model-defining packages (also logged)."""
        import logging
        import warnings

        from cmrrisk.explain.core import register_models
        from cmrrisk.modeldir import VersionWarning
        from cmrrisk.predict.store import load_pipeline

        register_models()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", VersionWarning)
            pipe = load_pipeline(modelDir)
        notes = [str(w.message) for w in caught if issubclass(w.category, VersionWarning)]
        for note in notes:
            logging.warning(note)
        try:
            pipe.versionNotes = notes
        except AttributeError:  # pragma: no cover - a pipeline without attributes
            pass
        return pipe

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
        from cmrrisk.explain.core import explain_study

        if not modelDir:
            raise ValueError("Choose a model directory (written by 'cmrrisk train' or the Training section).")
        refs = {c: n for c, n in (("cine_ed", edVolumeNode), ("cine_es", esVolumeNode)) if n is not None}
        if not refs:
            raise ValueError("Give the study's ED (and ES) volume node to place the results.")
        methods = self.explanationMethods()
        if method not in methods:
            raise ValueError(f"Explanation method {method!r}: choose one of {', '.join(methods)}.")
        covariates = self.parseCovariates(covariates) if isinstance(covariates, str) else covariates
        prog = self._progress(progress, cancel)
        prog.fraction(0.0, "loading the model")
        pipe = self._loadModel(modelDir)
        if k:
            prog.fraction(0.05, "reference subjects")
        reference = self._reference(pipe, referenceManifest or None, int(k or 0))
        study = mrml.study_from_nodes(
            edVolumeNode, esVolumeNode, lgeVolumeNode, edSegmentationNode, esSegmentationNode, lgeSegmentationNode,
            covariates, subject=subject or (edVolumeNode.GetName() if edVolumeNode is not None else "study"))
        expl = explain_study(pipe, study, method, reference, int(k or 0), device=device or "cpu",
                             progress=prog.part(0.1, 0.95))
        prog.fraction(0.96, "adding the results to the scene")
        out = self._showExplanation(expl, refs, showOverlay)
        prog.report(1, 1, "explanation done")
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
        """'365, 730' (commas or semicolons) -> [365.0, 730.0]; empty -> None (the model's
        default horizons); the rule of ``cmrrisk predict --horizons``
        (:func:`cmrrisk.predict.models.parse_horizons`: finite times > 0)."""
        from cmrrisk.errors import CMRRiskError
        from cmrrisk.predict.models import parse_horizons

        try:
            return parse_horizons((text or "").replace(";", ","), what="horizons")
        except CMRRiskError as exc:
            raise ValueError(str(exc)) from exc

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
        prog = self._progress(progress, cancel)
        prog.fraction(0.0, "loading the model")
        pipe = self._loadModel(modelDir)
        reference = edVolumeNode or lgeVolumeNode
        study = mrml.study_from_nodes(edVolumeNode, esVolumeNode, lgeVolumeNode, edSegmentationNode,
                                      esSegmentationNode, lgeSegmentationNode, covariates, bsa, name)
        subject = study.subject
        res = predict_study(pipe, study, horizons, device=device or "cpu", progress=prog.part(0.05, 0.95))
        prog.fraction(0.96, "adding the results to the scene")  # the last chance to cancel: nothing added yet
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
        res["notes"] = list(res["notes"]) + list(getattr(pipe, "versionNotes", []))
        table.SetAttribute("CMRRisk.notes", "; ".join(res["notes"]))
        notes = f"; {'; '.join(res['notes'])}" if res["notes"] else ""
        prog.report(1, 1, "prediction done")
        return {"table": table, "chart": chartNode, "result": res, "summary": f"{res['model']}: {summary}{notes}"}

    def trainModel(self, manifestPath, endpoint, outputDir, model=None, seed=0, maxEpochs=None, cv=5,
                   maxFeatures=None, progress=None, cancel=None, log=None):
        """Train a model on a cohort manifest and write ``outputDir`` (what ``cmrrisk train``
        does). ``progress``: a ``cmrrisk.progress.Progress`` or ``progress(done, total, message)``,
        after each step (image features, each cross-validation fold, final fit, writing); ``cancel()`` is checked between steps and
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
                           progress=self._progress(progress, cancel, "report"), log=log)

    def writeReport(self, modelDir, outputHtml=None, trainManifest=None, testManifest=None, qc=None,
                    bootstrap=200, seed=0, progress=None, cancel=None):
        """Write the TRIPOD+AI-style HTML report of a model (what ``cmrrisk report`` does) and
        return the core's dict (``html``: the path written, ``models`` with their test or
        apparent metrics, ``limitations``, ...). ``outputHtml`` defaults to
        ``modelDir/report.html``; ``trainManifest`` is described (participants, outcomes),
        ``testManifest`` (optional, with outcomes) is where the model is evaluated; without it
        the figures are apparent (optimistic) ones on the training manifest and the report says
        so. ``progress`` (a ``cmrrisk.progress.Progress``, or ``progress(message)``) receives each
        step's message; ``cancel()`` is checked at each
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
        prog = self._progress(progress, cancel, "messages")
        prog.say("the report")
        return write_report(outputHtml, modelDir, train_manifest=trainManifest or None,
                            test_manifest=testManifest or None, qc=qc or None, n_boot=int(bootstrap),
                            seed=int(seed), progress=prog)

    # ---- the module's parameter node: every button as one call that reads it

    @staticmethod
    def parameters(scene=None):
        """The module's choices in ``scene`` (default: ``slicer.mrmlScene``), saved with it:
        a :class:`cmrrisk.mrml.parameters.ParameterSet` of ``CMRRiskPredictLib.parameters``."""
        from .parameters import parameters

        return parameters(scene if scene is not None else slicer.mrmlScene)

    @staticmethod
    def _path(value):
        """A path parameter as text ("" for none; parameterNodeWrapper writes none as ".")."""
        text = "" if value is None else str(value)
        return "" if text in ("", ".") else text

    @staticmethod
    def studyNodes(params):
        """The study's volume and segmentation nodes of the parameter node, as keyword arguments."""
        return {"edVolumeNode": params.edVolume, "esVolumeNode": params.esVolume,
                "edSegmentationNode": params.edSegmentation, "esSegmentationNode": params.esSegmentation,
                "lgeVolumeNode": params.lgeVolume, "lgeSegmentationNode": params.lgeSegmentation}

    def computeFeaturesParameters(self, params=None, progress=None, cancel=None):
        """What "Compute features" does, from the parameter node."""
        p = params if params is not None else self.parameters()
        return self.computeFeatures(**self.studyNodes(p), bsa=p.bsa or None, radiomics=p.radiomics, deep=p.deep,
                                    device=p.device, progress=progress, cancel=cancel)

    def predictParameters(self, params=None, progress=None, cancel=None):
        """What "Predict" does, from the parameter node."""
        p = params if params is not None else self.parameters()
        return self.predictStudy(self._path(p.modelDir), **self.studyNodes(p), covariates=p.covariates,
                                 horizons=p.horizons, bsa=p.bsa or None, device=p.device,
                                 progress=progress, cancel=cancel)

    def explainParameters(self, params=None, progress=None, cancel=None):
        """What "Explain" does, from the parameter node."""
        p = params if params is not None else self.parameters()
        nodes = self.studyNodes(p)
        return self.explainStudy(self._path(p.modelDir), **nodes, covariates=p.covariates,
                                 method=p.explainMethod, referenceManifest=self._path(p.referenceManifest) or None,
                                 k=p.k, device=p.device, progress=progress, cancel=cancel)

    # ---- long work in a separate process (training, reports)

    @staticmethod
    def startProcess(args, onProgress=None, onFinished=None, onLog=None):
        """Start ``python -m cmrrisk --progress json ARGS`` and return its
        :class:`cmrrisk.mrml.runner.ProcessRunner` (poll it, or ``wait()``)."""
        from cmrrisk.mrml.runner import ProcessRunner

        return ProcessRunner(args, onProgress=onProgress, onLog=onLog, onFinished=onFinished).start()

    @staticmethod
    def metricsTable(scene, modelDir, name=None):
        """A table node (metric, mean, sd) of a model directory's cross-validation metrics
        (``metrics.json``); None when the model was trained without cross-validation."""
        import json

        from cmrrisk import mrml

        path = os.path.join(modelDir, "metrics.json")
        if not os.path.isfile(path):
            return None
        with open(path) as f:
            summary = json.load(f).get("summary") or {}
        rows = [(k, v) for k, v in summary.items() if isinstance(v, dict) and "mean" in v]
        table = mrml.add_table(scene, name or f"{os.path.basename(os.path.normpath(modelDir))} cross-validation",
                               {"metric": [k for k, _ in rows], "mean": [float(v["mean"]) for _, v in rows],
                                "sd": [float(v.get("sd") or 0.0) for _, v in rows]})
        table.SetAttribute("CMRRisk.model", str(modelDir))
        return table

    def startTraining(self, manifestPath, endpoint, outputDir, model=None, seed=0, cv=5, maxEpochs=None,
                      scene=None, onProgress=None, onFinished=None, onLog=None, params=None, paramsFile=None):
        """Train a model (``cmrrisk train``) in a separate process; returns the started runner.
        When it succeeds, ``runner.results`` is ``{"model_dir", "metrics": table node of the
        cross-validation metrics (or None)}`` added to ``scene``; after a failure or a cancel
        nothing is added. ``onFinished(runner)`` is called after that.

        ``params``: the model's hyper-parameters, a dict or ``"KEY=VALUE, ..."`` text;
        ``paramsFile``: a JSON or YAML file of them (``params`` overrides it). Both are checked
        here, before anything starts: an unknown key or a value out of range raises a
        CMRRiskError naming the key and the allowed ones."""
        if not manifestPath:
            raise ValueError("Choose a cohort manifest (CSV).")
        if not outputDir:
            raise ValueError("Choose an output folder for the model.")
        args = ["train", manifestPath, "--endpoint", endpoint, "--out", outputDir, "--seed", int(seed),
                "--cv", int(cv or 0)]
        if model:
            args += ["--model", model]
        if maxEpochs:
            args += ["--max-epochs", int(maxEpochs)]
        args += self.hyperParameterArguments(model, endpoint, params, paramsFile)
        scene = scene if scene is not None else slicer.mrmlScene

        def finished(job):
            job.results = {}
            if job.state == "succeeded":
                job.results = {"model_dir": outputDir, "metrics": self.metricsTable(scene, outputDir)}
            if onFinished is not None:
                onFinished(job)

        return self.startProcess(args, onProgress, finished, onLog)

    @staticmethod
    def hyperParameterArguments(model, endpoint, params=None, paramsFile=None):
        """``cmrrisk train`` arguments for the hyper-parameters, checked first (see
        :meth:`startTraining`)."""
        import json

        from cmrrisk.predict.commands import collect_params, split_assignments

        if isinstance(params, dict):
            items = [f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in params.items()]
        else:
            items = split_assignments(params or "")
        if paramsFile and not os.path.isfile(paramsFile):
            raise ValueError(f"Hyper-parameter file {paramsFile} does not exist.")
        collect_params(model or "auto", endpoint, paramsFile or None, items)  # raises before any work
        args = ["--params", paramsFile] if paramsFile else []
        for item in items:
            args += ["--param", item]
        return args

    def startTrainingParameters(self, params=None, scene=None, onProgress=None, onFinished=None, onLog=None):
        """What "Train" does, from the parameter node (manifest, endpoint, modelName, outputDir,
        cv, seed, maxEpochs, modelParams, paramsFile)."""
        p = params if params is not None else self.parameters()
        model = (p.modelName or "").strip()
        return self.startTraining(self._path(p.manifest), p.endpoint, self._path(p.outputDir), model=model or None,
                                  seed=p.seed, cv=p.cv, maxEpochs=p.maxEpochs or None, scene=scene,
                                  onProgress=onProgress, onFinished=onFinished, onLog=onLog,
                                  params=p.modelParams or None, paramsFile=self._path(p.paramsFile) or None)

    def startReport(self, modelDir, trainManifest=None, testManifest=None, outputHtml=None, bootstrap=200,
                    seed=0, onProgress=None, onFinished=None, onLog=None):
        """Write the model's HTML report (``cmrrisk report``) in a separate process; returns the
        started runner; on success ``runner.results`` is ``{"html": path}``."""
        if not modelDir:
            raise ValueError("Choose a model directory (written by 'cmrrisk train' or the Training section).")
        if not trainManifest and not testManifest:
            raise ValueError("Choose the training manifest and/or a test manifest: the report describes "
                             "and evaluates the model on them.")
        outputHtml = outputHtml or os.path.join(modelDir, "report.html")
        args = ["report", "--model", modelDir, "--out", outputHtml, "--bootstrap", int(bootstrap), "--seed", int(seed)]
        if trainManifest:
            args += ["--train", trainManifest]
        if testManifest:
            args += ["--test", testManifest]

        def finished(job):
            job.results = {"html": outputHtml} if job.state == "succeeded" else {}
            if onFinished is not None:
                onFinished(job)

        return self.startProcess(args, onProgress, finished, onLog)

    def startReportParameters(self, params=None, onProgress=None, onFinished=None, onLog=None):
        """What "Write report" does, from the parameter node (modelDir, manifest, testManifest)."""
        p = params if params is not None else self.parameters()
        return self.startReport(self._path(p.modelDir), self._path(p.manifest) or None,
                                self._path(p.testManifest) or None, onProgress=onProgress,
                                onFinished=onFinished, onLog=onLog)

    def startExplanation(self, modelDir, edVolumeNode=None, esVolumeNode=None, edSegmentationNode=None,
                         esSegmentationNode=None, lgeVolumeNode=None, lgeSegmentationNode=None, covariates=None,
                         method="ig", referenceManifest=None, k=5, showOverlay=True, workDir=None,
                         onProgress=None, onFinished=None, onLog=None):
        """Explain the model's prediction for the loaded study in a separate process (``cmrrisk
        explain`` on a one-subject manifest of the study's images, written to ``workDir``, a new
        temporary folder by default); returns the started runner. When it succeeds the results
        are added to the scene as :meth:`explainStudy` adds them, and ``runner.results`` is its
        dict (``heatmaps``, ``attributions``, ``similar``, ``text``); after a failure or a
        cancel nothing is added."""
        import tempfile

        from cmrrisk import mrml
        from cmrrisk.image import write_image

        if not modelDir:
            raise ValueError("Choose a model directory (written by 'cmrrisk train' or the Training section).")
        refs = {c: n for c, n in (("cine_ed", edVolumeNode), ("cine_es", esVolumeNode), ("lge", lgeVolumeNode))
                if n is not None}
        if "cine_ed" not in refs and "lge" not in refs:
            raise ValueError("Give the study's ED (and ES) volume node, or its LGE volume node, to place the results.")
        methods = self.explanationMethods()
        if method not in methods:
            raise ValueError(f"Explanation method {method!r}: choose one of {', '.join(methods)}.")
        covariates = self.parseCovariates(covariates) if isinstance(covariates, str) else dict(covariates or {})
        work = workDir or tempfile.mkdtemp(prefix="cmrrisk-explain-")
        subject = "study"
        row = {"subject": subject}
        segs = {"cine_ed": edSegmentationNode, "cine_es": esSegmentationNode, "lge": lgeSegmentationNode}
        for col, node in refs.items():
            write_image(mrml.volume_from_node(node), os.path.join(work, f"{col}.nii.gz"))
            row[col] = f"{col}.nii.gz"
            if segs[col] is not None:
                labels = self._labels(segs[col], node).astype("uint8")
                vol = mrml.volume_from_node(node)
                write_image(type(vol)(labels, vol.ijk_to_ras), os.path.join(work, f"{col}_seg.nii.gz"))
                row[f"{col}_seg"] = f"{col}_seg.nii.gz"
        for key, value in covariates.items():
            if key in row:
                raise ValueError(f"covariates: {key!r} is an image column name; rename the covariate.")
            row[key] = value
        manifest = os.path.join(work, "study.csv")
        with open(manifest, "w", newline="", encoding="utf-8") as f:
            import csv

            writer = csv.DictWriter(f, fieldnames=list(row))
            writer.writeheader()
            writer.writerow(row)
        out = os.path.join(work, "explanation")
        args = ["explain", modelDir, manifest, "--subject", subject, "--out", out, "--method", method,
                "--k", int(k or 0), "--no-png"]
        if referenceManifest:
            args += ["--reference", referenceManifest]

        def finished(job):
            job.results = {}
            if job.state == "succeeded":
                job.results = self.loadExplanation(out, subject, refs, showOverlay)
            if onFinished is not None:
                onFinished(job)

        return self.startProcess(args, onProgress, finished, onLog)

    def loadExplanation(self, folder, subject, referenceNodes, showOverlay=True):
        """Add the files of ``cmrrisk explain`` for ``subject`` (in ``folder``) to the scene over
        ``referenceNodes`` ({column: volume node}): heatmap volume nodes, the attribution and
        similar-cases tables, the text; returns the same dict as :meth:`explainStudy`."""
        import json

        from cmrrisk import mrml
        from cmrrisk.image import Volume, read_image
        from cmrrisk.mrml.heatmap import heatmap_to_node

        with open(os.path.join(folder, f"{subject}_explanation.json"), encoding="utf-8") as f:
            expl = json.load(f)
        first = next(iter(referenceNodes.values()))
        scene = first.GetScene()
        name = first.GetName()
        heatNodes = {}
        for col, file in (expl.get("files") or {}).get("heatmaps", {}).items():
            ref = referenceNodes.get(col)
            if ref is None:
                continue
            heat = read_image(os.path.join(folder, file))
            # the study's own geometry (the NIfTI round trip keeps it up to float precision)
            geometry = mrml.volume_from_node(ref).ijk_to_ras
            heatNodes[col] = heatmap_to_node(scene, Volume(heat.array, geometry),
                                             f"{name} {col} {expl['method']} heatmap", ref)
        if showOverlay and heatNodes:
            col = "cine_ed" if "cine_ed" in heatNodes else next(iter(heatNodes))
            self.showHeatmap(heatNodes[col], referenceNodes.get(col))
        rows = expl.get("attributions") or []
        table = mrml.add_table(scene, f"{name} attributions", {
            "feature": [r["feature"] for r in rows],
            "value": ["" if r["value"] is None else str(r["value"]) for r in rows],
            "attribution": [float(r["attribution"] or 0.0) for r in rows]}, first)
        table.SetAttribute("CMRRisk.explanation", expl.get("text", ""))
        similar = None
        if expl.get("similar_cases"):
            keys = [k for k in expl["similar_cases"][0] if k != "rank"]
            similar = mrml.add_table(scene, f"{name} similar cases",
                                     {k: ["" if s.get(k) is None else s.get(k) for s in expl["similar_cases"]]
                                      for k in keys}, first)
        return {"heatmaps": heatNodes, "attributions": table, "similar": similar, "text": expl.get("text", ""),
                "explanation": expl}

    def startExplanationParameters(self, params=None, onProgress=None, onFinished=None, onLog=None):
        """What "Explain" does, from the parameter node, in a separate process."""
        p = params if params is not None else self.parameters()
        return self.startExplanation(self._path(p.modelDir), **self.studyNodes(p), covariates=p.covariates,
                                     method=p.explainMethod, referenceManifest=self._path(p.referenceManifest) or None,
                                     k=p.k, onProgress=onProgress, onFinished=onFinished, onLog=onLog)
