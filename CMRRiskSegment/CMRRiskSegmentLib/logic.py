"""CMRRisk Segment's Logic: segmentation of volume nodes and cine sequences into segmentation
and table nodes, scar analysis and quality checks; usable without the GUI::

    logic = slicer.util.getModuleLogic("CMRRiskSegment")
    segmentationNode = logic.segmentVolume(slicer.util.getNode("patient001_frame01"))
    result = logic.segmentSequence(sequenceNode, ed=0, es=10)   # ED/ES segmentations + indices
    model = logic.modelForVolume(volumeNode)                      # "cine" or "lge" from DICOM headers
    scar = logic.scarAnalysis(lgeSegmentationNode, lgeVolumeNode)  # scar, AHA segments, n-SD, FWHM
    qc = logic.qcVolume(volumeNode, segmentationNode)             # quality checks as a table node
    result = logic.process(volumeNode, model="auto")              # what Apply does, in one call
    result = logic.processParameters()                            # the same, from the parameter node
    export = logic.exportDicom(result, "/path/out")               # DICOM SEG(s) + SR of a result
    logic.sendDicom("https://pacs.example.org/dicom-web", export["files"])  # STOW-RS
    segNode = logic.importDicomSeg("/path/seg_ed.dcm")            # a SEG into a segmentation node
"""

import json
import os

import slicer
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleLogic

#: what an Apply result's segmentation nodes carry for the DICOM export (saved with the scene)
MODEL_ATTRIBUTE = "CMRRisk.model"
FRAME_ATTRIBUTE = "CMRRisk.cineFrame"  # "ed" or "es" of a cine
PHASE_ATTRIBUTE = "CMRRisk.phase"
FILES_ATTRIBUTE = "CMRRisk.dicomFiles"  # JSON list of the last export's files
SOURCE_REFERENCE = "CMRRiskSource"  # the segmented volume or cine sequence
PARTNER_REFERENCE = "CMRRiskPartner"  # the ES node of an ED node and the reverse


def _path(value):
    """A path parameter as text; "" for none (parameterNodeWrapper gives Path("") as ".")."""
    return "" if value is None or str(value) in ("", ".") else str(value)


class CMRRiskSegmentLogic(ScriptedLoadableModuleLogic):
    """Segmentation of volume nodes and cine sequences into segmentation and table nodes.

    Usable without the GUI; all long calls accept a ``progress`` and ``cancel()``: ``progress`` is
    a ``cmrrisk.progress.Progress`` (the core's progress-and-cancel contract) or a
    ``progress(done, total)`` callback (:func:`cmrrisk.progress.from_callbacks`).
    """

    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)
        self._segmenters = {}

    # ---- the module's parameter node

    @staticmethod
    def parameters(scene=None):
        """The module's choices in ``scene`` (default: ``slicer.mrmlScene``), saved with it:
        a :class:`cmrrisk.mrml.parameters.ParameterSet` of ``CMRRiskSegmentLib.parameters``."""
        from .parameters import parameters

        return parameters(scene if scene is not None else slicer.mrmlScene)

    def processParameters(self, params=None, progress=None, cancel=None):
        """What Apply does, reading every choice from the parameter node (``params``: a
        parameter set or wrapper; default: the scene's): :meth:`process` of ``inputNode`` with
        ``model``, ``device`` and, for a sequence with ``phases`` "ED and ES", ``edPhase`` /
        ``esPhase``."""
        from .parameters import ED_ES

        p = params if params is not None else self.parameters()
        node = p.inputNode
        edes = node is not None and node.IsA("vtkMRMLSequenceNode") and p.phases == ED_ES
        return self.process(node, model=p.model, device=p.device, ed=p.edPhase if edes else None,
                            es=p.esPhase if edes else None, progress=progress, cancel=cancel)

    def checkQualityParameters(self, params=None):
        """What "Check quality" does, from the parameter node: :meth:`checkQuality` of
        ``inputNode`` with ``qcSegmentation`` (volumes only) and ``model``."""
        p = params if params is not None else self.parameters()
        node = p.inputNode
        if node is None:
            raise ValueError("choose an input volume or cine sequence first.")
        seg = p.qcSegmentation if not node.IsA("vtkMRMLSequenceNode") else None
        return self.checkQuality(node, seg, model=p.model)

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
            self._markForExport(result, model, inputNode)
            which = "every phase" if "sequence" in result else "ED and ES"
            result["status"] = f"Segmented {which} of '{name}' with the {model} model; clinical indices in '{result['table'].GetName()}'."
            return result
        segNode = self.segmentVolume(inputNode, model=model, device=device, progress=progress, cancel=cancel)
        result = {"model": model, "segmentation": segNode, "table": None, "segmentsTable": None}
        self._markForExport(result, model, inputNode)
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
        from cmrrisk.progress import from_callbacks

        scene = volumeNode.GetScene()
        vol = mrml.volume_from_node(volumeNode)
        segmenter = self.segmenter(model, device)
        result = segmenter.segment_detailed(vol, progress=from_callbacks(progress, cancel, "counts"))
        node = mrml.labels_to_segmentation(scene, result.volume.array, volumeNode,
                                           f"{volumeNode.GetName()} segmentation",
                                           structures=segmenter.structures,
                                           segmentation_node=segmentationNode)
        self._markSliceOrder(segmenter, result, node)
        return node

    @staticmethod
    def _markSliceOrder(segmenter, result, *nodes):
        """Record on each node (attribute ``CMRRisk.sliceOrder``) what the segmentation
        ``result`` did with the slice order, as ``segment.json`` does."""
        from cmrrisk.segmentation.pipeline import slice_order_note

        note = slice_order_note(segmenter, result)
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
        from cmrrisk import labels as L
        from cmrrisk import mrml
        from cmrrisk.errors import CMRRiskError
        from cmrrisk.progress import from_callbacks

        name = sequenceNode.GetName()
        segmenter = self.segmenter(model, device)
        if set(segmenter.structures) != set(L.CINE_LABELS):
            raise CMRRiskError(f"'{name}' is a sequence, which this module reads as a cine; the {model} model "
                               "does not segment cines (its structures would be lost). Choose the cine model, "
                               "or segment a single LGE volume node.")
        frames = mrml.sequence_volume_nodes(sequenceNode)
        if (ed is None) != (es is None):
            raise ValueError("give both ed and es phase indices, or neither")
        phases = [int(ed), int(es)] if ed is not None else list(range(len(frames)))
        cine = mrml.volume_from_sequence(sequenceNode, phases)
        # with ed/es: the ED frame, then the ES frame anchored to it (as `cmrrisk features` does);
        # else ED / ES = largest / smallest LV, the ES phase segmented anchored to ED
        result = segmenter.segment_detailed(cine, from_callbacks(progress, cancel, "counts"),
                                            ed_es=(0, 1) if ed is not None else None)
        from cmrrisk.segmentation.pipeline import slice_order_note

        return self._sequenceResults(sequenceNode, result.volume.array, phases, result.ed_phase, result.es_phase,
                                     slice_order_note(segmenter, result), allPhases=ed is None)

    def _sequenceResults(self, sequenceNode, labels, phases, ed_i, es_i, sliceOrderNote, allPhases=True):
        """The scene outputs of a segmented cine sequence (``labels``: (phase, k, j, i) of the
        ``phases`` frames; ``ed_i`` / ``es_i``: indices into them): with ``allPhases`` a
        segmentation sequence played with the input, then the ED and ES segmentations and the
        clinical indices table, all in the input's study and under its transform."""
        from cmrrisk import mrml
        from cmrrisk.metrics import clinical_indices

        scene = sequenceNode.GetScene()
        name = sequenceNode.GetName()
        frames = mrml.sequence_volume_nodes(sequenceNode)
        studyNode = self._studyNodeOfSequence(scene, sequenceNode)
        spacing = mrml.volume_from_node(frames[phases[0]]).spacing
        result = {}
        if allPhases:
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
        # one slice-order decision for every phase
        for key in ("sequence", "ed", "es"):
            if key in result:
                result[key].SetAttribute("CMRRisk.sliceOrder", sliceOrderNote)
        for key, phase in (("ed", ed_phase), ("es", es_phase)):
            result[key].SetAttribute(FRAME_ATTRIBUTE, key)
            result[key].SetAttribute(PHASE_ATTRIBUTE, str(phase))
        result["ed"].SetNodeReferenceID(PARTNER_REFERENCE, result["es"].GetID())
        result["es"].SetNodeReferenceID(PARTNER_REFERENCE, result["ed"].GetID())
        indices = clinical_indices(labels[ed_i], labels[es_i], spacing)
        result["indices"] = indices
        result["table"] = self.indicesTable(scene, indices, f"{name} clinical indices", studyNode,
                                            ed_phase, es_phase)
        return result

    def startSequenceSegmentation(self, sequenceNode, model="cine", device="cpu", workDir=None,
                                  onProgress=None, onFinished=None, onLog=None):
        """Segment every phase of a cine sequence in a separate process (``cmrrisk segment`` on
        the cine written as a 4D image to ``workDir``, a new temporary folder by default); returns
        the started :class:`cmrrisk.mrml.runner.ProcessRunner`. When it succeeds,
        ``runner.results`` holds what :meth:`segmentSequence` returns (segmentation sequence, ED
        and ES segmentations, indices table) and ``status``; after a failure or a cancel nothing
        is added to the scene."""
        import tempfile

        from cmrrisk import labels as L
        from cmrrisk import mrml
        from cmrrisk.errors import CMRRiskError
        from cmrrisk.image import read_image, write_image
        from cmrrisk.modeldir import read_json
        from cmrrisk.mrml.runner import ProcessRunner

        if model == "auto":
            model = "cine"
        if set(self.segmenterStructures(model)) != set(L.CINE_LABELS):
            raise CMRRiskError(f"'{sequenceNode.GetName()}' is a sequence, which this module reads as a cine; the "
                               f"{model} model does not segment cines. Choose the cine model, or segment a single "
                               "LGE volume node.")
        work = workDir or tempfile.mkdtemp(prefix="cmrrisk-segment-")
        cine = mrml.volume_from_sequence(sequenceNode)
        path = os.path.join(work, "cine.nii.gz")
        write_image(cine, path)
        out = os.path.join(work, "segmentation")
        args = ["segment", path, "--out", out, "--model", model, "--device", device, "--quiet"]

        def finished(job):
            job.results = {}
            if job.state == "succeeded":
                report = read_json(os.path.join(out, "segment.json"))["inputs"][0]
                labels = read_image(report["output"]).array.astype("uint8")
                phases = list(range(labels.shape[0]))
                result = self._sequenceResults(sequenceNode, labels, phases, int(report["ed_phase"]),
                                               int(report["es_phase"]), report["slice_order"])
                result.update(model=model, segmentsTable=None)
                self._markForExport(result, model, sequenceNode)
                result["status"] = (f"Segmented every phase of '{sequenceNode.GetName()}' with the {model} model; "
                                    f"clinical indices in '{result['table'].GetName()}'.")
                job.results = result
            if onFinished is not None:
                onFinished(job)

        return ProcessRunner(args, onProgress=onProgress, onLog=onLog, onFinished=finished).start()

    @staticmethod
    def segmenterStructures(model):
        """The label values a bundled model (or model directory) segments, from its config (the
        network is not loaded)."""
        from cmrrisk import modeldir

        config = modeldir.read_json(os.path.join(modeldir.resolve(model), modeldir.CONFIG))
        return tuple(int(v) for v in config["labels"].values())

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



    # ---- DICOM SEG + SR export, DICOMweb, SEG import (cmrrisk.mrml.dicomseg)

    @staticmethod
    def _markForExport(result, model, inputNode):
        """Record on a result's segmentation nodes what the DICOM export needs later (also after
        the scene is saved and reloaded): the model and the segmented node."""
        for key in ("segmentation", "ed", "es"):
            node = result.get(key)
            if node is not None:
                node.SetAttribute(MODEL_ATTRIBUTE, str(model))
                node.SetNodeReferenceID(SOURCE_REFERENCE, inputNode.GetID())

    @staticmethod
    def _dicomFilesOfInput(inputNode):
        """The DICOM files of a volume or cine sequence loaded from Slicer's DICOM database (its
        ``DICOM.instanceUIDs``, or those of a sequence's proxy and frame nodes)."""
        nodes = [inputNode]
        if inputNode.IsA("vtkMRMLSequenceNode"):
            proxy = CMRRiskSegmentLogic._proxyNode(inputNode.GetScene(), inputNode)
            nodes += ([proxy] if proxy is not None else []) + [
                inputNode.GetNthDataNode(i) for i in range(inputNode.GetNumberOfDataNodes())]
        files = []
        for node in nodes:
            if node is not None:
                files += [f for f in CMRRiskSegmentLogic._dicomFiles(node) if f not in files]
        return files

    def dicomSourceFolder(self, inputNode, sourceFolder="", workDir=None):
        """The folder of ``inputNode``'s DICOM series: ``sourceFolder`` when given, else its
        files from Slicer's DICOM database, linked (or copied) into a new folder under
        ``workDir``. Raises ``CMRRiskError`` saying what to do when neither tells."""
        import shutil
        import tempfile

        from cmrrisk.errors import CMRRiskError

        if sourceFolder:
            if not os.path.isdir(sourceFolder):
                raise CMRRiskError(f"DICOM source folder {sourceFolder}: not a folder; choose the folder that "
                                   "holds the input's DICOM files.")
            return sourceFolder
        files = self._dicomFilesOfInput(inputNode)
        if not files:
            raise CMRRiskError(f"'{inputNode.GetName()}' was not loaded from Slicer's DICOM database, so its DICOM "
                               "files are unknown; load the series with the DICOM module, or set 'DICOM source "
                               "folder' to the folder of its DICOM files.")
        folder = tempfile.mkdtemp(prefix="cmrrisk-source-", dir=workDir)
        for i, f in enumerate(files):
            target = os.path.join(folder, f"{i:05d}.dcm")
            try:
                os.symlink(os.path.abspath(f), target)
            except OSError:  # no symbolic links (Windows without the privilege)
                shutil.copyfile(f, target)
        return folder

    def _exportNodes(self, result):
        """(model, input node, reference volume node, export_seg keywords, segmentation nodes)
        of an Apply result dict or of one of its segmentation nodes."""
        from cmrrisk import mrml
        from cmrrisk.errors import CMRRiskError

        if isinstance(result, dict):
            nodes = [result[k] for k in ("segmentation", "ed", "es") if result.get(k) is not None]
            if not nodes:
                raise CMRRiskError("nothing to export: segment the input first (Apply).")
            node = nodes[0]
        else:
            node = result
        if node is None:
            raise CMRRiskError("choose the segmentation to export (a result of Apply).")
        inputNode = node.GetNodeReference(SOURCE_REFERENCE)
        if inputNode is None:
            raise CMRRiskError(f"'{node.GetName()}': not a result of Apply in this module, so its image is unknown; "
                               "export a segmentation made by Apply.")
        model = node.GetAttribute(MODEL_ATTRIBUTE) or "cine"
        frame = node.GetAttribute(FRAME_ATTRIBUTE)
        if frame in ("ed", "es"):
            partner = node.GetNodeReference(PARTNER_REFERENCE)
            if partner is None:
                raise CMRRiskError(f"'{node.GetName()}': its {'ES' if frame == 'ed' else 'ED'} segmentation is no "
                                   "longer in the scene; segment the ED and ES phases again (Apply).")
            ed, es = (node, partner) if frame == "ed" else (partner, node)
            phase = int(ed.GetAttribute(PHASE_ATTRIBUTE))
            reference = (mrml.sequence_volume_nodes(inputNode)[phase] if inputNode.IsA("vtkMRMLSequenceNode")
                         else inputNode)
            keywords = {"ed": (phase, ed), "es": (int(es.GetAttribute(PHASE_ATTRIBUTE)), es)}
            return model, inputNode, reference, keywords, [ed, es]
        if inputNode.IsA("vtkMRMLSequenceNode"):
            raise CMRRiskError(f"'{node.GetName()}': one phase of a cine; export its ED or ES segmentation.")
        return model, inputNode, inputNode, {"stack": node}, [node]

    def exportDicom(self, result, outFolder, sourceFolder=""):
        """What "Export SEG + SR" does: DICOM SEG(s) and SR of an Apply result (its dict, or one
        of its segmentation nodes: a cine's ED or ES node exports both) through the same core
        code as ``cmrrisk segment --dicom``, into ``outFolder/<input>_dicom``. The source DICOM
        series: ``sourceFolder``, else the input's files in Slicer's DICOM database. The files
        are remembered on the segmentation nodes (attribute ``CMRRisk.dicomFiles``) for
        :meth:`sendDicomParameters`. Returns ``{"folder", "files", "repairs", "info", "status"}``."""
        import re
        import shutil

        from cmrrisk.dicomout.write import dicom_folder_name
        from cmrrisk.errors import CMRRiskError
        from cmrrisk.mrml import dicomseg

        model, inputNode, reference, keywords, nodes = self._exportNodes(result)
        if not outFolder:
            raise CMRRiskError("choose a DICOM output folder first.")
        source = self.dicomSourceFolder(inputNode, sourceFolder)
        try:
            stem = re.sub(r"[^A-Za-z0-9._-]+", "_", inputNode.GetName()).strip("_") or "input"
            out = os.path.join(outFolder, dicom_folder_name(stem))
            res = dicomseg.export_seg(source, out, reference, model=model, **keywords)
        finally:
            if source != sourceFolder:
                shutil.rmtree(source, ignore_errors=True)
        for node in nodes:
            node.SetAttribute(FILES_ATTRIBUTE, json.dumps(res["files"]))
        repaired = f" Repaired in the copies: {'; '.join(res['repairs'])}." if res["repairs"] else ""
        res["status"] = (f"Wrote {len(res['files'])} DICOM files (SEG + SR) of '{inputNode.GetName()}' to "
                         f"{res['folder']}.{repaired}")
        return res

    def exportDicomParameters(self, params=None):
        """:meth:`exportDicom` of the parameter node's ``exportSegmentation`` into
        ``dicomOutputFolder`` (``dicomSourceFolder`` when set)."""
        p = params if params is not None else self.parameters()
        return self.exportDicom(p.exportSegmentation, _path(p.dicomOutputFolder), _path(p.dicomSourceFolder))

    @staticmethod
    def sendDicom(url, files):
        """What "Send" does: store ``files`` (one export's SEG(s) and SR) on the DICOMweb server
        at ``url`` in one STOW-RS request, all or nothing. Credentials come from the environment
        only (``CMRRISK_DICOMWEB_TOKEN``, or ``CMRRISK_DICOMWEB_USER`` and
        ``CMRRISK_DICOMWEB_PASSWORD``). Returns ``{"stored": SOP instance UIDs, "status"}``."""
        from cmrrisk.errors import CMRRiskError
        from cmrrisk.mrml import dicomseg

        if not url:
            raise CMRRiskError("enter the DICOMweb server's URL (its DICOMweb root, e.g. "
                               "https://pacs.example.org/dicom-web) first.")
        files = list(files or [])
        if not files:
            raise CMRRiskError("nothing to send: export the segmentation as DICOM SEG + SR first.")
        gone = [f for f in files if not os.path.isfile(f)]
        if gone:
            raise CMRRiskError(f"{gone[0]}: no longer exists; export the segmentation again.")
        try:
            stored = dicomseg.send(url, files)
        except CMRRiskError as exc:  # the core's messages name command-line options
            raise CMRRiskError(str(exc).replace("--dicomweb ", "DICOMweb server ").replace("--stow: ", "")) from exc
        from cmrrisk.dicomout.client import safe_url

        return {"stored": stored, "status": f"Stored {len(stored)} DICOM files on {safe_url(url)}."}

    def sendDicomParameters(self, params=None):
        """:meth:`sendDicom` of the files last exported from ``exportSegmentation`` to
        ``dicomwebUrl``."""
        from cmrrisk.errors import CMRRiskError

        p = params if params is not None else self.parameters()
        node = p.exportSegmentation
        if node is None:
            raise CMRRiskError("choose the segmentation to send, and export it first.")
        files = json.loads(node.GetAttribute(FILES_ATTRIBUTE) or "[]")
        return self.sendDicom(str(p.dicomwebUrl or "").strip(), files)

    @staticmethod
    def referenceVolumeOfSeg(scene, dataset):
        """The loaded volume a DICOM SEG was made on: the scalar volume (or a cine sequence's
        proxy) whose ``DICOM.instanceUIDs`` share the most instances with the SEG's references;
        None when no loaded volume is its source."""
        refs = set()
        for series in dataset.get("ReferencedSeriesSequence", []):
            refs |= {str(i.ReferencedSOPInstanceUID) for i in series.get("ReferencedInstanceSequence", [])}
        best, overlap = None, 0
        for cls in ("vtkMRMLScalarVolumeNode", "vtkMRMLSequenceNode"):
            nodes = scene.GetNodesByClass(cls)
            nodes.UnRegister(None)
            for i in range(nodes.GetNumberOfItems()):
                node = nodes.GetItemAsObject(i)
                candidates = [node]
                if cls == "vtkMRMLSequenceNode":
                    candidates = [node.GetNthDataNode(k) for k in range(node.GetNumberOfDataNodes())]
                for c in candidates:
                    n = len(refs & set((c.GetAttribute("DICOM.instanceUIDs") or "").split())) if c else 0
                    if n > overlap:
                        shown = CMRRiskSegmentLogic._proxyNode(scene, node) if cls == "vtkMRMLSequenceNode" else node
                        best, overlap = shown or c, n
        return best

    def importDicomSeg(self, path, referenceNode=None, scene=None):
        """What "Import SEG" does: a DICOM SEG file (CMRRisk's or another tool's) into a new
        segmentation node with the SEG's segment names, colours, codes and geometry, placed
        over its reference volume (``referenceNode``, else the loaded volume it references,
        :meth:`referenceVolumeOfSeg`). Returns ``{"segmentation", "reference", "status"}``."""
        import pydicom

        from cmrrisk.errors import CMRRiskError
        from cmrrisk.mrml import dicomseg

        scene = scene if scene is not None else slicer.mrmlScene
        if not path or not os.path.isfile(path):
            raise CMRRiskError(f"DICOM SEG file {path or '(none)'}: not found; choose a DICOM SEG file (.dcm).")
        try:
            ds = pydicom.dcmread(path)
        except Exception as exc:
            raise CMRRiskError(f"{path}: not a readable DICOM file ({exc}); choose a DICOM SEG file.") from exc
        if str(ds.get("Modality", "")) != "SEG":
            raise CMRRiskError(f"{path}: a DICOM {ds.get('Modality', '?')} object, not a SEG; choose a DICOM SEG "
                               "file.")
        reference = referenceNode if referenceNode is not None else self.referenceVolumeOfSeg(scene, ds)
        node = dicomseg.import_seg(scene, ds, reference_node=reference)
        where = (f"over '{reference.GetName()}'" if reference is not None else
                 "with its own geometry (its source series is not loaded)")
        return {"segmentation": node, "reference": reference,
                "status": f"Read '{node.GetName()}' ({node.GetSegmentation().GetNumberOfSegments()} segments) {where}."}

    def importDicomSegParameters(self, params=None):
        """:meth:`importDicomSeg` of the parameter node's ``dicomSegFile``."""
        p = params if params is not None else self.parameters()
        return self.importDicomSeg(_path(p.dicomSegFile), scene=p.parameterNode.GetScene()
                                   if hasattr(p, "parameterNode") else None)
