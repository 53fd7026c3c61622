"""The CMRRiskSegment Logic and the cmrrisk.mrml bridge against a real MRML scene (slicer-core)."""

import os

import numpy as np
import pytest

from cmrrisk import labels as L
from cmrrisk.image import read_image

from conftest import acdc_frame, needs_acdc, ACDC

slicer = pytest.importorskip("slicer")
vtk = pytest.importorskip("vtk")

SUBJECT = "patient090"  # has the whole 4D cine too


def _ijk_to_ras(node):
    m = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(m)
    return np.array([[m.GetElement(r, c) for c in range(4)] for r in range(4)])


@needs_acdc
def test_acdc_frame_through_logic_into_segmentation_and_back(scene, segment_module, segmenter):
    from cmrrisk import mrml

    vol = read_image(acdc_frame(SUBJECT, "ed"))
    node = mrml.volume_to_node(scene, vol, "frame")
    assert np.allclose(_ijk_to_ras(node), vol.ijk_to_ras)
    assert np.array_equal(mrml.volume_from_node(node).array, vol.array)

    logic = segment_module.CMRRiskSegmentLogic()
    logic._segmenters[("cine", "cpu")] = segmenter
    seg_node = logic.segmentVolume(node)
    expected = segmenter.segment(vol).array

    seg = seg_node.GetSegmentation()
    got = {}
    for i in range(seg.GetNumberOfSegments()):
        s = seg.GetNthSegment(i)
        term = vtk.reference("")
        assert s.GetTag(slicer.vtkSegment.GetTerminologyEntryTagName(), term)
        got[s.GetName()] = (s.GetColor(), str(term))
    for lab in L.CINE_LABELS:
        name, color, code = L.SEGMENTS[lab]
        assert name in got
        assert np.allclose(got[name][0], color)
        assert code[0] in got[name][1]
    assert len(got) == 3

    back = mrml.segmentation_to_labels(seg_node, node)
    assert back.shape == vol.array.shape
    assert np.array_equal(back, expected), "labels changed on the way through the segmentation node"
    assert seg_node.GetAttribute("CMRRisk.sliceOrder") == "as given (base first, as in training; order judged from the LV area along the stack)"


@needs_acdc
def test_reference_labels_round_trip_unchanged(scene):
    """Reference ACDC labels (all structures present) survive labels -> segmentation -> labels."""
    from cmrrisk import mrml

    vol = read_image(acdc_frame("patient001", "es"))
    ref = L.map_labels(read_image(acdc_frame("patient001", "es", gt=True)).array, L.ACDC_TO_PROJECT)
    node = mrml.volume_to_node(scene, vol, "frame")
    seg_node = mrml.labels_to_segmentation(scene, ref, node, "reference")
    assert np.array_equal(mrml.segmentation_to_labels(seg_node, node), ref)


@needs_acdc
def test_segmentation_lands_in_the_input_study_and_survives_mrb(scene, segment_module, segmenter, tmp_path):
    from cmrrisk import mrml

    vol = read_image(acdc_frame(SUBJECT, "es"))
    node = mrml.volume_to_node(scene, vol, "frame ES")
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    patient = sh.CreateSubjectItem(sh.GetSceneItemID(), "patient090")
    study = sh.CreateStudyItem(patient, "cine study")
    item = sh.GetItemByDataNode(node)
    if item:  # inside Slicer every node has an item already
        sh.SetItemParent(item, study)
    else:
        sh.CreateItem(study, node)

    logic = segment_module.CMRRiskSegmentLogic()
    logic._segmenters[("cine", "cpu")] = segmenter
    seg_node = logic.segmentVolume(node)
    assert sh.GetItemParent(sh.GetItemByDataNode(seg_node)) == study
    labels = mrml.segmentation_to_labels(seg_node, node)

    path = str(tmp_path / "study.mrb")
    assert scene.WriteToMRB(path)
    scene.Clear(1)
    assert scene.ReadFromMRB(path)
    seg2 = scene.GetFirstNodeByName(seg_node.GetName())
    vol2 = scene.GetFirstNodeByName("frame ES")
    assert seg2 is not None and vol2 is not None
    names = sorted(seg2.GetSegmentation().GetNthSegment(i).GetName()
                   for i in range(seg2.GetSegmentation().GetNumberOfSegments()))
    assert names == sorted(L.SEGMENTS[v][0] for v in L.CINE_LABELS)
    assert np.allclose(_ijk_to_ras(vol2), vol.ijk_to_ras, atol=1e-4)
    assert np.array_equal(mrml.segmentation_to_labels(seg2, vol2), labels)


def _cine_sequence(scene, n_phases=4):
    from cmrrisk import mrml

    cine = read_image(str(ACDC / SUBJECT / f"{SUBJECT}_4d.nii.gz"))
    seq = scene.AddNewNodeByClass("vtkMRMLSequenceNode", "cine")
    seq.SetIndexName("phase")
    for t in range(n_phases):
        tmp = mrml.volume_to_node(scene, cine.frame(t), f"phase {t}")
        seq.SetDataNodeAtValue(tmp, str(t))
        scene.RemoveNode(tmp)
    return cine, seq


@needs_acdc
def test_cine_sequence_ed_es_gives_segmentations_and_indices_table(scene, segment_module, segmenter):
    from cmrrisk.metrics import clinical_indices

    cine, seq = _cine_sequence(scene, 4)
    logic = segment_module.CMRRiskSegmentLogic()
    logic._segmenters[("cine", "cpu")] = segmenter
    res = logic.segmentSequence(seq, ed=0, es=3)
    ed = segmenter.segment(cine.frame(0)).array
    # the ES frame is segmented anchored to the ED labels
    es = segmenter.predict_frame(cine.frame(3).array, cine.spacing[:2], prior=ed)
    expected = clinical_indices(ed, es, cine.spacing)
    table = res["table"].GetTable()
    names = [table.GetValue(r, 0).ToString() for r in range(table.GetNumberOfRows())]
    values = [table.GetValue(r, 1).ToDouble() for r in range(table.GetNumberOfRows())]
    for k, v in expected.items():
        assert values[names.index(k)] == pytest.approx(v, abs=0.01)
    assert res["ed"].GetSegmentation().GetNumberOfSegments() == 3
    for key in ("ed", "es"):
        assert res[key].GetAttribute("CMRRisk.sliceOrder") == "as given (base first, as in training; order judged from the LV area along the stack)"


@needs_acdc
def test_cine_sequence_given_apex_first_is_read_base_first_and_says_so(scene, segment_module, segmenter):
    """A sequence whose stacks run apex first: every phase is segmented in the training order and
    put back, and the segmentation nodes say that they were reversed."""
    from cmrrisk import mrml

    cine = read_image(str(ACDC / SUBJECT / f"{SUBJECT}_4d.nii.gz"))
    seq = scene.AddNewNodeByClass("vtkMRMLSequenceNode", "cine apex first")
    for t in (0, 3):
        frame = cine.frame(t)
        frame = frame.with_array(np.ascontiguousarray(frame.array[::-1]))
        tmp = mrml.volume_to_node(scene, frame, f"phase {t}")
        seq.SetDataNodeAtValue(tmp, str(t))
        scene.RemoveNode(tmp)
    logic = segment_module.CMRRiskSegmentLogic()
    logic._segmenters[("cine", "cpu")] = segmenter
    res = logic.segmentSequence(seq)
    note = "reversed for the model (stack given apex first; the model was trained base first; order judged from the LV area along the stack)"
    for key in ("sequence", "ed", "es"):
        assert res[key].GetAttribute("CMRRisk.sliceOrder") == note
    ed = segmenter.segment(cine.frame(0)).array
    frame_node = mrml.sequence_volume_nodes(seq)[0]
    assert np.array_equal(mrml.segmentation_to_labels(res["ed"], frame_node), ed[::-1])


@needs_acdc
def test_cine_sequence_all_phases_gives_segmentation_sequence(scene, segment_module, segmenter):
    cine, seq = _cine_sequence(scene, 3)
    logic = segment_module.CMRRiskSegmentLogic()
    logic._segmenters[("cine", "cpu")] = segmenter
    calls = []
    res = logic.segmentSequence(seq, progress=lambda d, n: calls.append((d, n)))
    out = res["sequence"]
    assert out.GetNumberOfDataNodes() == 3
    assert out.GetNthDataNode(1).IsA("vtkMRMLSegmentationNode")
    assert calls[-1] == (3, 3)
    assert res["table"] is not None


def test_cancel_stops_the_logic(scene, segment_module, segmenter):
    from cmrrisk import mrml
    from cmrrisk.image import Volume
    from cmrrisk.segmentation.infer import Cancelled

    node = mrml.volume_to_node(scene, Volume(np.zeros((2, 64, 64), np.float32), np.eye(4)), "blank")
    logic = segment_module.CMRRiskSegmentLogic()
    logic._segmenters[("cine", "cpu")] = segmenter
    with pytest.raises(Cancelled):
        logic.segmentVolume(node, cancel=lambda: True)
