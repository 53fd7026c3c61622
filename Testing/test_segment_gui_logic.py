"""What the CMRRisk Segment widget does, through the Logic calls it makes (the widget itself cannot
run without the Slicer application): Apply as one call (`process`), refusal of a non-cine model
for a sequence, outputs under the input's transform, sequence browsers and study placement, and
first-use installation of Python packages (`cmrrisk.mrml.dependencies.ensure`)."""

import contextlib
import sys
import types

import numpy as np
import pytest

from cmrrisk import labels as L
from cmrrisk.errors import CMRRiskError
from cmrrisk.image import Volume, read_image

from conftest import ACDC, needs_acdc
from test_slicer_bridge import _cine_sequence

slicer = pytest.importorskip("slicer")
vtk = pytest.importorskip("vtk")



def _logic(segment_module, segmenter):
    logic = segment_module.CMRRiskSegmentLogic()
    logic._segmenters[("cine", "cpu")] = segmenter
    return logic


def _transform(scene):
    t = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "shift")
    m = vtk.vtkMatrix4x4()
    m.SetElement(0, 3, 12.5)
    t.SetMatrixTransformToParent(m)
    return t


def _count(scene, cls):
    return scene.GetNumberOfNodesByClass(cls)


@needs_acdc
def test_apply_on_a_cine_frame_is_one_logic_call(scene, segment_module, segmenter):
    """model 'auto' on a node named as a cine picks the cine model; the result is a segmentation
    with the labels segmentVolume gives, under the input's transform, and a status line."""
    from cmrrisk import mrml

    vol = read_image(str(ACDC / "patient001" / "patient001_frame01.nii.gz"))
    node = mrml.volume_to_node(scene, vol, "patient001 cine frame01")
    shift = _transform(scene)
    node.SetAndObserveTransformNodeID(shift.GetID())
    res = _logic(segment_module, segmenter).process(node, model="auto")
    assert res["model"] == "cine" and res["table"] is None
    seg = res["segmentation"]
    assert seg.GetTransformNodeID() == shift.GetID()
    assert np.array_equal(mrml.segmentation_to_labels(seg, node), segmenter.segment(vol).array)
    assert "patient001 cine frame01" in res["status"] and "cine model" in res["status"]


def test_apply_auto_without_a_clue_names_the_node(scene, segment_module, segmenter):
    from cmrrisk import mrml

    node = mrml.volume_to_node(scene, Volume(np.zeros((4, 32, 32), np.float32), np.eye(4)), "series 7")
    with pytest.raises(CMRRiskError, match="'series 7'.*choose the cine or lge model"):
        _logic(segment_module, segmenter).process(node, model="auto")
    assert _count(scene, "vtkMRMLSegmentationNode") == 0


def test_apply_on_an_lge_volume_adds_the_scar_tables(scene, segment_module, tmp_path):
    """An LGE stack (synthetic subject) with the lge model: scar segments, the scar table shown,
    and the burden in the status line equal to the table's."""
    from cmrrisk import mrml, synthetic

    manifest = synthetic.generate_cohort(str(tmp_path / "c"), n=1, seed=5, progress=False)
    import csv

    row = next(csv.DictReader(open(manifest)))
    lge = read_image(str((tmp_path / "c" / row["lge"]).resolve()))
    node = mrml.volume_to_node(scene, lge, "subject LGE")
    res = segment_module.CMRRiskSegmentLogic().process(node, model="lge")
    seg = res["segmentation"].GetSegmentation()
    names = {seg.GetNthSegment(i).GetName() for i in range(seg.GetNumberOfSegments())}
    assert {"Myocardial scar", "Microvascular obstruction"} <= names
    table = res["table"].GetTable()
    rows = {table.GetValue(r, 0).ToString(): table.GetValue(r, 1).ToDouble() for r in range(table.GetNumberOfRows())}
    assert f"{rows['scar_burden_pct']:.1f} %" in res["status"]
    assert res["scar"]["scar_burden_pct"] == pytest.approx(rows["scar_burden_pct"], abs=1e-3)


@needs_acdc
def test_apply_on_a_sequence_ed_es(scene, segment_module, segmenter):
    _, seq = _cine_sequence(scene, 3)
    res = _logic(segment_module, segmenter).process(seq, model="cine", ed=0, es=2)
    assert set(res) >= {"ed", "es", "table", "status"} and "sequence" not in res
    assert "ED and ES" in res["status"] and res["table"].GetName() in res["status"]


def test_a_sequence_is_refused_by_the_lge_model_before_anything_is_added(scene, segment_module):
    from cmrrisk import mrml

    seq = scene.AddNewNodeByClass("vtkMRMLSequenceNode", "lge series")
    for t in range(2):
        tmp = mrml.volume_to_node(scene, Volume(np.zeros((3, 32, 32), np.float32), np.eye(4)), f"p{t}")
        seq.SetDataNodeAtValue(tmp, str(t))
        scene.RemoveNode(tmp)
    before = (_count(scene, "vtkMRMLSegmentationNode"), _count(scene, "vtkMRMLTableNode"),
              _count(scene, "vtkMRMLSequenceNode"))
    with pytest.raises(CMRRiskError, match="'lge series' is a sequence.*Choose the cine model"):
        segment_module.CMRRiskSegmentLogic().segmentSequence(seq, model="lge")
    after = (_count(scene, "vtkMRMLSegmentationNode"), _count(scene, "vtkMRMLTableNode"),
             _count(scene, "vtkMRMLSequenceNode"))
    assert after == before


@needs_acdc
def test_sequence_outputs_follow_the_browser_proxy(scene, segment_module, segmenter, monkeypatch):
    """A cine played by a browser whose proxy is in a study and under a transform (as a cine
    loaded from DICOM): the segmentation sequence is played by the same browser with its proxy
    under the same transform, and the ED/ES segmentations and the table go to the proxy's
    study, also under the transform."""
    _, seq = _cine_sequence(scene, 3)
    browser = scene.AddNewNodeByClass("vtkMRMLSequenceBrowserNode", "cine browser")
    browser.SetAndObserveMasterSequenceNodeID(seq.GetID())
    proxy = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "cine proxy")
    browser.AddProxyNode(proxy, seq, False)
    assert browser.GetProxyNode(seq) is proxy
    shift = _transform(scene)
    proxy.SetAndObserveTransformNodeID(shift.GetID())
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    study = sh.CreateStudyItem(sh.CreateSubjectItem(sh.GetSceneItemID(), "patient"), "cine study")
    sh.CreateItem(study, proxy)

    class SequencesLogic:  # what Slicer's Sequences module does for a newly synchronised sequence
        def UpdateProxyNodesFromSequences(self, b):
            nodes = vtk.vtkCollection()
            b.GetSynchronizedSequenceNodes(nodes, True)
            for i in range(nodes.GetNumberOfItems()):
                s = nodes.GetItemAsObject(i)
                if b.GetProxyNode(s) is None:
                    b.AddProxyNode(scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "proxy"), s, False)

    logic = SequencesLogic()
    monkeypatch.setattr(slicer, "modules", types.SimpleNamespace(sequences=types.SimpleNamespace(logic=lambda: logic)),
                        raising=False)
    res = _logic(segment_module, segmenter).process(seq, model="cine")
    out = res["sequence"]
    assert browser.IsSynchronizedSequenceNode(out, True)
    new_proxy = browser.GetProxyNode(out)
    assert new_proxy is not None and new_proxy.GetTransformNodeID() == shift.GetID()
    for key in ("ed", "es"):
        assert res[key].GetTransformNodeID() == shift.GetID()
    for node in (res["ed"], res["es"], res["table"], out):
        assert sh.GetItemParent(sh.GetItemByDataNode(node)) == study, node.GetName()
    assert out.GetIndexType() == seq.GetIndexType()


def test_heatmap_follows_the_transform_of_its_image(scene):
    from cmrrisk import mrml
    from cmrrisk.mrml.heatmap import heatmap_to_node

    vol = Volume(np.zeros((3, 16, 16), np.float32), np.diag([1.5, 1.5, 8.0, 1.0]))
    node = mrml.volume_to_node(scene, vol, "image")
    shift = _transform(scene)
    node.SetAndObserveTransformNodeID(shift.GetID())
    heat = heatmap_to_node(scene, vol.with_array(np.ones((3, 16, 16), np.float32)), "heat", node)
    assert heat.GetTransformNodeID() == shift.GetID()


# ----------------------------------------------------------------- installing packages on first use

class _Display:
    """Stands in for slicer.util's dialogs and pip: records what the user would have seen."""

    def __init__(self, monkeypatch, agree=True, pip=None):
        self.errors, self.asked, self.pip = [], [], []
        monkeypatch.setattr(slicer.util, "errorDisplay", lambda text, *a, **k: self.errors.append(text), raising=False)
        monkeypatch.setattr(slicer.util, "confirmOkCancelDisplay",
                            lambda text, *a, **k: self.asked.append(text) or agree, raising=False)
        monkeypatch.setattr(slicer.util, "WaitCursor", contextlib.nullcontext, raising=False)
        monkeypatch.setattr(slicer.util, "pip_install", pip or (lambda req: self.pip.append(req)), raising=False)


def test_ensure_declined_installs_nothing_and_says_so(monkeypatch):
    from cmrrisk.mrml import dependencies as D

    ui = _Display(monkeypatch, agree=False)
    status = []
    assert D.ensure({"cmrrisk_absent_pkg": "cmrrisk-absent-pkg==1.0"}, also=(), status=status.append) is False
    assert ui.pip == [] and "cmrrisk_absent_pkg" in ui.asked[0]
    assert "declined" in status[0] and "cmrrisk_absent_pkg" in status[0]


def test_ensure_reports_a_failed_or_ineffective_install(monkeypatch):
    from cmrrisk.mrml import dependencies as D

    ui = _Display(monkeypatch)
    status = []
    # pip "succeeds" but the package is still not importable: said, not silently True
    assert D.ensure({"cmrrisk_absent_pkg": "cmrrisk-absent-pkg==1.0"}, also=(), status=status.append) is False
    assert ui.pip == ["cmrrisk-absent-pkg==1.0"]
    assert "Still missing" in status[0] and ui.errors

    def broken(req):
        raise RuntimeError("no network")

    ui = _Display(monkeypatch, pip=broken)
    status = []
    assert D.ensure({"cmrrisk_absent_pkg": "x==1"}, also=(), status=status.append) is False
    assert "no network" in status[0] and "no network" in ui.errors[0]


def test_ensure_asks_once_and_installs_torch_through_pytorchutils(monkeypatch):
    from cmrrisk.mrml import dependencies as D

    ui = _Display(monkeypatch)
    calls = []

    class Logic:
        def installTorch(self, **kw):
            calls.append(kw)
            return object()

    monkeypatch.setitem(sys.modules, "PyTorchUtils", types.SimpleNamespace(PyTorchUtilsLogic=Logic))
    answers = iter([["torch", "monai"], []])  # missing before, nothing after
    monkeypatch.setattr(D, "missing", lambda required, also: next(answers))
    assert D.ensure({"monai": "monai==1.6.1"}) is True
    assert len(ui.asked) == 1 and "torch, monai" in ui.asked[0]
    assert calls == [{"askConfirmation": False, "torchVersionRequirement": D.TORCH_REQUIREMENT}]
    assert ui.pip == ["monai==1.6.1"]


def test_extension_packages_are_named_not_pip_installed(monkeypatch):
    from cmrrisk.mrml import dependencies as D

    ui = _Display(monkeypatch)
    monkeypatch.setattr(D, "missing", lambda required, also: ["radiomics"])
    status = []
    assert D.ensure({"radiomics": "pyradiomics"}, also=(), status=status.append) is False
    assert ui.pip == [] and ui.asked == [] and "SlicerRadiomics" in status[0]


@pytest.mark.parametrize("method", ["test_sample_study", "test_qc_volume", "test_scar_tables",
                                    "test_segment_sample_study"])
def test_each_self_test_method_skips_itself_naming_missing_packages(segment_module, monkeypatch, method):
    """Slicer's CTest runner calls the test_* methods directly: on a build machine without the
    packages each one is skipped with their names and what to do, before touching the scene."""
    import unittest

    from cmrrisk.mrml import moduleutils

    monkeypatch.setattr(moduleutils, "missing", lambda required, also: list(also))
    t = segment_module.CMRRiskSegmentTest()
    with pytest.raises(unittest.SkipTest, match=r"needs the Python packages .*install the PyTorch extension"):
        getattr(t, method)()


def test_check_quality_reads_an_lge_segmentation_as_lge(scene, segment_module):
    """"Check quality" with a segmentation that has scar: checked as LGE labels (no RV expected);
    the same labels checked as cine labels miss the RV."""
    from cmrrisk import mrml

    z, y, x = np.indices((6, 64, 64)).astype(float)
    r = np.hypot(y - 31.5, x - 31.5)
    labels = np.where(r < 10, L.LV_BLOOD_POOL, np.where(r < 16, L.LV_MYOCARDIUM, 0)).astype(np.uint8)
    labels[(labels == L.LV_MYOCARDIUM) & (x > 40)] = L.SCAR
    image = np.where(labels == L.SCAR, 200.0, np.where(labels == L.LV_MYOCARDIUM, 60.0, 150.0)).astype(np.float32)
    node = mrml.volume_to_node(scene, Volume(image, np.diag([1.5, 1.5, 8.0, 1.0])), "series 3")
    seg = mrml.labels_to_segmentation(scene, labels, node, "seg", structures=L.LGE_LABELS)
    logic = segment_module.CMRRiskSegmentLogic

    def codes(table):
        t = table.GetTable()
        return {t.GetValue(i, 0).ToString() for i in range(t.GetNumberOfRows())}

    first = codes(logic.checkQuality(node, seg, model="auto"))
    assert "seg_rv_empty" not in first
    assert "seg_rv_empty" in codes(logic.qcVolume(node, seg))  # as cine labels


def test_terminology_codes_are_standard_or_private_99_schemes():
    """Segment terminology: SNOMED CT or DICOM codes, or a private scheme as DICOM requires
    ("99" prefix), in the serialised entry that Slicer stores on each segment."""
    for label, (_, _, (value, scheme, meaning)) in L.SEGMENTS.items():
        assert scheme in ("SCT", "DCM") or scheme.startswith("99"), (label, scheme)
        assert f"{scheme}^{value}^{meaning}" in L.terminology_string(label)


def test_reading_a_segmentation_leaves_no_helper_nodes(scene):
    """segmentation_to_labels exports each segment through a temporary label map; its display
    and colour nodes go with it (a Predict run that reads given segmentations added 2 nodes per
    segment before)."""
    from cmrrisk import mrml

    node = mrml.volume_to_node(scene, Volume(np.zeros((3, 32, 32), np.float32), np.eye(4)), "v")
    lab = np.zeros((3, 32, 32), np.uint8)
    lab[:, 5:10, 5:10] = L.LV_BLOOD_POOL
    lab[:, 12:20, 12:20] = L.RV_BLOOD_POOL
    seg = mrml.labels_to_segmentation(scene, lab, node, "s")
    before = scene.GetNumberOfNodes()
    assert np.array_equal(mrml.segmentation_to_labels(seg, node), lab)
    assert scene.GetNumberOfNodes() == before


def test_one_cancelled_class_for_segmentation_features_and_models():
    """The Predict widget catches cmrrisk.errors.Cancelled; a cancel inside the segmenter must be
    that class too, or it would show as an error."""
    from cmrrisk.errors import Cancelled
    from cmrrisk.predict.study import Cancelled as PredictCancelled
    from cmrrisk.segmentation.infer import Cancelled as SegmentCancelled

    assert SegmentCancelled is Cancelled and PredictCancelled is Cancelled
