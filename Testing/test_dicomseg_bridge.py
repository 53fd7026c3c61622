"""DICOM SEG <-> MRML segmentation node (cmrrisk.mrml.dicomseg) against a real MRML scene:
a SEG written by CMRRisk imports with the right segment names, colours, terminology and
geometry; a segmentation node exports through the same core code and reads back unchanged."""

import numpy as np
import pytest
import vtk

from cmrrisk import labels as L
from synthdicom import synthetic_subject, write_series

pytest.importorskip("highdicom")
slicer = pytest.importorskip("slicer")

ALGORITHM = {"name": "cine", "weights_sha256": "ab" * 32}


@pytest.fixture(scope="module")
def subject():
    return synthetic_subject(seed=0)


def _segments(node):
    seg = node.GetSegmentation()
    return {seg.GetSegment(seg.GetNthSegmentID(i)).GetName(): seg.GetSegment(seg.GetNthSegmentID(i))
            for i in range(seg.GetNumberOfSegments())}


def test_cmrrisk_seg_imports_with_names_colours_geometry(scene, tmp_path, subject):
    from cmrrisk.dicomout.write import export_frames
    from cmrrisk.image import read_image
    from cmrrisk.mrml.bridge import segmentation_to_labels, volume_to_node
    from cmrrisk.mrml.dicomseg import import_seg

    folder = tmp_path / "lge"
    write_series(folder, [subject["lge_img"]], subject["spacing"], kind="lge", messy=True)
    labels = subject["lge"].astype(np.uint8)
    res = export_frames(str(folder), {"stack": labels}, {**ALGORITHM, "name": "lge"}, str(tmp_path / "out"))
    vol = read_image(str(folder))
    ref = volume_to_node(scene, vol, "lge")
    node = import_seg(scene, res["files"][0], reference_node=ref)
    segs = _segments(node)
    present = [lab for lab in L.LGE_LABELS]
    assert set(segs) == {L.SEGMENTS[lab][0] for lab in present}
    for lab in present:
        s = segs[L.SEGMENTS[lab][0]]
        assert np.allclose(s.GetColor(), L.SEGMENTS[lab][1], atol=0.01)
        term = vtk.reference("")
        assert s.GetTag(slicer.vtkSegment.GetTerminologyEntryTagName(), term)
        assert str(term) == L.terminology_string(lab)
    # geometry: exported onto the source volume's grid, the labels are the ones written
    back = segmentation_to_labels(node, ref)
    assert np.array_equal(back, labels)
    assert (back == L.SCAR).sum() > 0

    # another tool's SEG: a segment whose codes are not CMRRisk's keeps its own name and codes
    import pydicom

    ds = pydicom.dcmread(res["files"][0])
    item = ds.SegmentSequence[0]
    item.SegmentLabel = "Liver"
    item.SegmentedPropertyTypeCodeSequence[0].CodeValue = "10200004"
    item.SegmentedPropertyTypeCodeSequence[0].CodeMeaning = "Liver"
    del item.AnatomicRegionSequence
    foreign = import_seg(scene, ds, name="other tool")
    segs = _segments(foreign)
    assert "Liver" in segs and L.SEGMENTS[L.LV_BLOOD_POOL][0] not in segs
    term = vtk.reference("")
    segs["Liver"].GetTag(slicer.vtkSegment.GetTerminologyEntryTagName(), term)
    assert "SCT^10200004^Liver" in str(term)
    assert foreign.GetName() == "other tool"


def test_segmentation_nodes_export_through_core_and_round_trip(scene, tmp_path, subject):
    import pydicom

    from cmrrisk.image import Volume, read_image
    from cmrrisk.mrml.bridge import labels_to_segmentation, segmentation_to_labels, volume_to_node
    from cmrrisk.mrml.dicomseg import export_seg, import_seg
    from cmrrisk.dicomout.sr import read_measurements

    folder = tmp_path / "cine"
    write_series(folder, [subject["ed_img"], subject["es_img"]], subject["spacing"])
    vol = read_image(str(folder))
    ref = volume_to_node(scene, Volume(vol.array[0], vol.ijk_to_ras), "cine ED")
    ed = labels_to_segmentation(scene, subject["ed"].astype(np.uint8), ref, "ED")
    es = labels_to_segmentation(scene, subject["es"].astype(np.uint8), ref, "ES")
    res = export_seg(str(folder), str(tmp_path / "out"), ref, ed=(0, ed), es=(1, es), algorithm=ALGORITHM)
    names = sorted(p.split("/")[-1] for p in res["files"])
    assert names == ["seg_ed.dcm", "seg_es.dcm", "sr.dcm"]
    ms = {m["code"][0]: m["value"] for m in read_measurements(pydicom.dcmread(res["files"][-1]))}
    assert ms["8811-2"] == pytest.approx(res["info"]["indices"]["lv_ef_pct"])
    for key, labels in (("ed", subject["ed"]), ("es", subject["es"])):
        node = import_seg(scene, str(tmp_path / "out" / f"seg_{key}.dcm"), reference_node=ref)
        assert set(_segments(node)) == {L.SEGMENTS[lab][0] for lab in L.CINE_LABELS}
        assert np.array_equal(segmentation_to_labels(node, ref), labels)
    # a grid that is not the series' grid is refused
    other = volume_to_node(scene, Volume(vol.array[0], vol.ijk_to_ras @ np.diag([2.0, 1, 1, 1])), "other")
    from cmrrisk.errors import CMRRiskError

    with pytest.raises(CMRRiskError, match="grid"):
        export_seg(str(folder), str(tmp_path / "out2"), other, ed=(0, ed), es=(1, es), algorithm=ALGORITHM)
    assert not (tmp_path / "out2").exists()
