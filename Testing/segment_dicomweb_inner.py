"""CMRRisk Segment's Send and Import against a real Orthanc. Not collected by the normal run:
these tests run inside a private network namespace, started by test_segment_dicomweb.py."""

import os
import warnings

import numpy as np
import pytest

from cmrrisk import labels as L
from cmrrisk.errors import CMRRiskError
from orthanc_server import PASSWORD, USER, orthanc
from orthanc_server import client as _client
from synthdicom import synthetic_subject, write_series

slicer = pytest.importorskip("slicer")


def test_export_send_and_read_back(scene, tmp_path, segment_module, monkeypatch):
    import pydicom

    from cmrrisk import mrml
    from cmrrisk.image import read_image

    subject = synthetic_subject(seed=0)
    folder = tmp_path / "lge"
    study, _series = write_series(folder, [subject["lge_img"]], subject["spacing"], kind="lge")
    node = mrml.volume_to_node(scene, read_image(str(folder)), "LGE")
    labels = subject["lge"].astype(np.uint8)
    seg = mrml.labels_to_segmentation(scene, labels, node, "LGE segmentation", structures=L.LGE_LABELS)
    logic = segment_module.CMRRiskSegmentLogic()
    logic._markForExport({"segmentation": seg}, "lge", node)  # what Apply records on its result
    params = logic.parameters(scene)
    params.update(exportSegmentation=seg, dicomOutputFolder=str(tmp_path / "out"), dicomSourceFolder=str(folder))
    export = logic.exportDicomParameters(params)
    with orthanc(tmp_path / "orthanc") as url:
        client = _client(url)
        params.dicomwebUrl = url
        monkeypatch.setenv("CMRRISK_DICOMWEB_USER", USER)
        monkeypatch.setenv("CMRRISK_DICOMWEB_PASSWORD", "wrong")
        with pytest.raises(CMRRiskError, match=r"^DICOMweb server .*refused the credentials \(HTTP 401"):
            logic.sendDicomParameters(params)
        assert client.search_for_series(study_instance_uid=study) == []
        monkeypatch.setenv("CMRRISK_DICOMWEB_PASSWORD", PASSWORD)
        sent = logic.sendDicomParameters(params)
        assert len(sent["stored"]) == len(export["files"]) == 2 and "Stored 2 DICOM files" in sent["status"]
        # nothing of the credentials in the scene
        assert PASSWORD not in str(params.parameterNode)
        series = client.search_for_series(study_instance_uid=study)
        assert sorted(s["00080060"]["Value"][0] for s in series) == ["SEG", "SR"]
        mine = pydicom.dcmread([f for f in export["files"] if f.endswith("seg_stack.dcm")][0])
        stored = client.retrieve_instance(study, str(mine.SeriesInstanceUID), str(mine.SOPInstanceUID))
    path = tmp_path / "from_server.dcm"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stored.save_as(path, enforce_file_format=False)
    back = logic.importDicomSeg(str(path), referenceNode=node, scene=scene)["segmentation"]
    assert np.array_equal(mrml.segmentation_to_labels(back, node), labels)
