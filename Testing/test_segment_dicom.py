"""CMRRisk Segment's DICOM actions through the Logic calls its buttons make, against a real MRML
scene (slicer-core): an Apply result of a synthetic DICOM series exported as SEG + SR, read back
into segmentation nodes with the same segments, names, colours and geometry; the parameter-node
versions of the buttons; bad input (no DICOM source, no output folder, an unreachable server, a
file that is not a SEG) refused with a message saying what to do. Sending to a real DICOMweb
server is tested in test_segment_dicomweb.py (Orthanc in a private network namespace)."""

import json
import os

import numpy as np
import pytest

import netns
from cmrrisk import labels as L
from cmrrisk.errors import CMRRiskError
from synthdicom import synthetic_subject, write_series

slicer = pytest.importorskip("slicer")
pytest.importorskip("highdicom")
vtk = pytest.importorskip("vtk")


@pytest.fixture(scope="module")
def subject():
    return synthetic_subject(seed=0)


def _segments(node):
    seg = node.GetSegmentation()
    out = {}
    for i in range(seg.GetNumberOfSegments()):
        s = seg.GetNthSegment(i)
        out[s.GetName()] = tuple(round(c, 3) for c in s.GetColor())
    return out


def _cine_sequence(scene, folder):
    from cmrrisk import mrml
    from cmrrisk.image import read_image

    cine = read_image(str(folder))
    seq = scene.AddNewNodeByClass("vtkMRMLSequenceNode", "cine SAX")
    seq.SetIndexName("phase")
    for t in range(cine.array.shape[0]):
        tmp = mrml.volume_to_node(scene, cine.frame(t), f"phase {t}")
        seq.SetDataNodeAtValue(tmp, str(t))
        scene.RemoveNode(tmp)
    return cine, seq


def test_cine_result_exports_and_imports_back(scene, tmp_path, subject, segment_module, segmenter):
    """Apply (ED and ES of a cine sequence from a synthetic DICOM series), Export, Import: the
    SEGs import over the right frame with the segments, names, colours and labels of the result."""
    from cmrrisk import mrml
    from cmrrisk.dicomout.sr import read_measurements

    folder = tmp_path / "cine"
    write_series(folder, [subject["ed_img"], subject["es_img"]], subject["spacing"])
    cine, seq = _cine_sequence(scene, folder)
    logic = segment_module.CMRRiskSegmentLogic()
    logic._segmenters[("cine", "cpu")] = segmenter
    result = logic.process(seq, model="cine", ed=0, es=1)
    params = logic.parameters(scene)
    params.exportSegmentation = result["es"]  # either frame exports both
    params.dicomOutputFolder = str(tmp_path / "out")
    # headless: no DICOM database, so the source folder must be named
    with pytest.raises(CMRRiskError, match="not loaded from Slicer's DICOM database.*DICOM source folder"):
        logic.exportDicomParameters(params)
    assert not (tmp_path / "out").exists()
    params.dicomSourceFolder = str(folder)
    res = logic.exportDicomParameters(params)
    names = sorted(os.path.basename(f) for f in res["files"])
    assert names == ["seg_ed.dcm", "seg_es.dcm", "sr.dcm"]
    assert os.path.dirname(res["files"][0]) == str(tmp_path / "out" / "cine_SAX_dicom")
    assert "3 DICOM files" in res["status"]
    import pydicom

    ms = {m["code"][0]: m["value"] for m in read_measurements(pydicom.dcmread(res["files"][-1]))}
    assert ms["8811-2"] == pytest.approx(result["indices"]["lv_ef_pct"], abs=1e-6)
    assert json.loads(result["ed"].GetAttribute("CMRRisk.dicomFiles")) == res["files"]

    # Import: the frame node that carries the SEG's instances is found as its reference
    frames = mrml.sequence_volume_nodes(seq)
    files = sorted(os.listdir(folder))
    n_slices = subject["ed_img"].shape[0]
    import pydicom as pd

    by_phase = {0: [], 1: []}
    for f in files:
        ds = pd.dcmread(folder / f, stop_before_pixels=True)
        by_phase[int(round(float(ds.TriggerTime) / 40.0))].append(str(ds.SOPInstanceUID))
    assert all(len(v) == n_slices for v in by_phase.values())
    for key, phase in (("ed", 0), ("es", 1)):
        frame = mrml.volume_to_node(scene, cine.frame(phase), f"frame {phase}")
        frame.SetAttribute("DICOM.instanceUIDs", " ".join(by_phase[phase]))  # as Slicer's DICOM loader does
        params.dicomSegFile = str(tmp_path / "out" / "cine_SAX_dicom" / f"seg_{key}.dcm")
        back = logic.importDicomSegParameters(params)
        assert back["reference"] is frame, key
        node = back["segmentation"]
        assert _segments(node) == _segments(result[key])
        assert set(_segments(node)) == {L.SEGMENTS[lab][0] for lab in L.CINE_LABELS}
        assert np.array_equal(mrml.segmentation_to_labels(node, frame),
                              mrml.segmentation_to_labels(result[key], frames[phase]))
        assert "over 'frame" in back["status"]
        scene.RemoveNode(frame)


def test_lge_result_exports_and_imports_with_names_colours_geometry(scene, tmp_path, subject, segment_module):
    from cmrrisk import mrml
    from cmrrisk.image import read_image

    folder = tmp_path / "lge"
    write_series(folder, [subject["lge_img"]], subject["spacing"], kind="lge", messy=True)
    vol = read_image(str(folder))
    node = mrml.volume_to_node(scene, vol, "LGE")
    labels = subject["lge"].astype(np.uint8)
    seg = mrml.labels_to_segmentation(scene, labels, node, "LGE segmentation", structures=L.LGE_LABELS)
    logic = segment_module.CMRRiskSegmentLogic()
    result = {"model": "lge", "segmentation": seg}
    logic._markForExport(result, "lge", node)  # what Apply records on its result
    res = logic.exportDicom(seg, str(tmp_path / "out"), str(folder))
    assert sorted(os.path.basename(f) for f in res["files"]) == ["seg_stack.dcm", "sr.dcm"]
    assert res["repairs"] and "Repaired" in res["status"]  # the messy series' faults are said
    segfile = res["files"][0]
    # no loaded volume carries its instances: imported with its own geometry, then over a given one
    alone = logic.importDicomSeg(segfile, scene=scene)
    assert alone["reference"] is None and "own geometry" in alone["status"]
    back = logic.importDicomSeg(segfile, referenceNode=node, scene=scene)["segmentation"]
    assert _segments(back) == _segments(seg)
    for lab in L.LGE_LABELS:
        assert np.allclose(_segments(back)[L.SEGMENTS[lab][0]], L.SEGMENTS[lab][1], atol=0.01)
    assert np.array_equal(mrml.segmentation_to_labels(back, node), labels)
    assert np.array_equal(mrml.segmentation_to_labels(alone["segmentation"], node), labels)


def test_bad_input_says_what_to_do(scene, tmp_path, subject, segment_module):
    from cmrrisk import mrml
    from cmrrisk.image import Volume

    logic = segment_module.CMRRiskSegmentLogic()
    params = logic.parameters(scene)
    with pytest.raises(CMRRiskError, match="choose the segmentation to export"):
        logic.exportDicomParameters(params)
    vol = mrml.volume_to_node(scene, Volume(np.zeros((4, 16, 16), np.float32), np.eye(4)), "plain")
    seg = mrml.labels_to_segmentation(scene, np.zeros((4, 16, 16), np.uint8), vol, "drawn by hand")
    params.exportSegmentation = seg
    params.dicomOutputFolder = str(tmp_path / "out")
    with pytest.raises(CMRRiskError, match="'drawn by hand': not a result of Apply.*export a segmentation made by Apply"):
        logic.exportDicomParameters(params)
    logic._markForExport({"segmentation": seg}, "cine", vol)
    params.dicomOutputFolder = ""
    with pytest.raises(CMRRiskError, match="choose a DICOM output folder"):
        logic.exportDicomParameters(params)
    params.dicomOutputFolder = str(tmp_path / "out")
    with pytest.raises(CMRRiskError, match="'plain' was not loaded from Slicer's DICOM database.*'DICOM source folder'"):
        logic.exportDicomParameters(params)
    params.dicomSourceFolder = str(tmp_path / "nowhere")
    with pytest.raises(CMRRiskError, match="nowhere: not a folder"):
        logic.exportDicomParameters(params)
    assert not (tmp_path / "out").exists()

    # sending: no URL, nothing exported, an unreachable server, credentials in the URL
    with pytest.raises(CMRRiskError, match="nothing to send: export"):
        params.dicomwebUrl = "http://127.0.0.1:1/dicom-web"
        logic.sendDicomParameters(params)
    folder = tmp_path / "lge"
    write_series(folder, [subject["lge_img"]], subject["spacing"], kind="lge")
    files = sorted(str(folder / f) for f in os.listdir(folder))[:1]
    params.dicomwebUrl = ""
    seg.SetAttribute("CMRRisk.dicomFiles", json.dumps(files))
    with pytest.raises(CMRRiskError, match="enter the DICOMweb server's URL"):
        logic.sendDicomParameters(params)
    params.dicomwebUrl = f"http://127.0.0.1:{netns.free_port()}/dicom-web"
    with pytest.raises(CMRRiskError, match=r"^DICOMweb server http://127\.0\.0\.1:\d+/dicom-web: cannot connect .*check the URL"):
        logic.sendDicomParameters(params)
    with pytest.raises(CMRRiskError, match="holds a user name or password.*environment"):
        logic.sendDicom("http://me:secret@127.0.0.1:1/dicom-web", files)
    assert "secret" not in params.parameterNode.GetParameter("dicomwebUrl")

    # importing: no file, not DICOM, DICOM that is not a SEG
    with pytest.raises(CMRRiskError, match="not found; choose a DICOM SEG file"):
        logic.importDicomSeg(str(tmp_path / "none.dcm"), scene=scene)
    (tmp_path / "text.dcm").write_text("hello")
    with pytest.raises(CMRRiskError, match="not a readable DICOM file"):
        logic.importDicomSeg(str(tmp_path / "text.dcm"), scene=scene)
    with pytest.raises(CMRRiskError, match="a DICOM MR object, not a SEG"):
        logic.importDicomSeg(files[0], scene=scene)
    assert scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode") == 1
