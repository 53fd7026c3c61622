"""DICOM SEG and SR outputs (cmrrisk.dicomout): codes, geometry, deterministic UIDs, the safe
repairs of messy headers and the refusals; ``segment --dicom`` end to end on a synthetic DICOM
series and on a real Sunnybrook cine."""

import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pydicom
import pytest

from cmrrisk import labels as L
from cmrrisk.errors import CMRRiskError
from cmrrisk.metrics import clinical_indices, lge_measures
from conftest import ROOT, SUNNYBROOK, needs_sunnybrook
from synthdicom import synthetic_subject, write_series

pytest.importorskip("highdicom")

ALGORITHM = {"name": "cine", "weights_sha256": "0123456789abcdef" * 4}
SEG_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"


@pytest.fixture(scope="module")
def subject():
    return synthetic_subject(seed=0)


def _read(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(path)


def _cine_outputs(folder, subject, algorithm=ALGORITHM):
    from cmrrisk.dicomout.source import load_series
    from cmrrisk.dicomout.write import build_outputs
    from cmrrisk.image import read_image

    vol = read_image(str(folder))
    series = load_series(str(folder), vol.array.shape)
    labels = np.stack([subject["ed"], subject["es"]])
    sp = vol.spacing
    info = {"ed_phase": 0, "es_phase": 1, "indices": clinical_indices(labels[0], labels[1], sp)}
    return series, labels, info, build_outputs(series, labels, info, L.CINE_LABELS, algorithm, "cine")


def _codes(item, seq):
    s = item.get(seq)
    return (str(s[0].CodeValue), str(s[0].CodingSchemeDesignator)) if s else None


def _seg_on_source_grid(seg_path, series, phase):
    """The SEG's label map reordered onto the source slices (matched by ImagePositionPatient)."""
    from cmrrisk.dicomout.seg import read_seg

    r = read_seg(seg_path)
    out = np.zeros((len(series.grid),) + r["array"].shape[1:], np.uint8)
    positions = [np.asarray(loc[phase].ImagePositionPatient, float) for loc in series.grid]
    for k in range(r["array"].shape[0]):
        pos = r["affine_lps"] @ np.array([k, 0, 0, 1.0])
        z = int(np.argmin([np.linalg.norm(pos[:3] - p) for p in positions]))
        assert np.linalg.norm(pos[:3] - positions[z]) < 0.05  # mm; real headers are rounded
        out[z] = r["labels"][k]
    return r, out


def test_cine_seg_codes_references_geometry_and_uids(tmp_path, subject):
    folder = tmp_path / "cine"
    write_series(folder, [subject["ed_img"], subject["es_img"]], subject["spacing"])
    series, labels, info, out = _cine_outputs(folder, subject)
    assert sorted(out) == ["seg_ed.dcm", "seg_es.dcm", "sr.dcm"]
    from cmrrisk.dicomout.write import write_outputs

    files = write_outputs(out, str(tmp_path / "out" / "cine_dicom"))
    for key, phase in (("ed", 0), ("es", 1)):
        seg = _read(tmp_path / "out" / "cine_dicom" / f"seg_{key}.dcm")
        assert seg.SOPClassUID == SEG_CLASS and seg.SegmentationType == "BINARY"
        assert seg.StudyInstanceUID == series.first.StudyInstanceUID
        assert seg.FrameOfReferenceUID == series.first.FrameOfReferenceUID
        # every source image of the phase is referenced, none of the other phase
        refs = {str(i.ReferencedSOPInstanceUID) for i in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence}
        assert refs == {str(ds.SOPInstanceUID) for ds in series.frame(phase)}
        segs = {int(s.SegmentNumber): s for s in seg.SegmentSequence}
        assert [str(segs[n].SegmentLabel) for n in (1, 2, 3)] == ["LV blood pool", "LV myocardium", "RV blood pool"]
        assert _codes(segs[1], "SegmentedPropertyCategoryCodeSequence") == ("85756007", "SCT")
        assert _codes(segs[1], "SegmentedPropertyTypeCodeSequence") == ("87612001", "SCT")
        assert _codes(segs[1], "AnatomicRegionSequence") == ("87878005", "SCT")
        assert _codes(segs[2], "SegmentedPropertyCategoryCodeSequence") == ("91723000", "SCT")
        assert _codes(segs[2], "SegmentedPropertyTypeCodeSequence") == ("49848007", "SCT")
        assert _codes(segs[3], "AnatomicRegionSequence") == ("53085002", "SCT")
        alg = segs[1].SegmentationAlgorithmIdentificationSequence[0]
        assert "cine" in str(alg.AlgorithmName) and "0123456789abcdef" in str(alg.AlgorithmVersion)
        assert "weights_sha256=" + ALGORITHM["weights_sha256"] in str(alg.AlgorithmParameters)
        assert "segmentation" in str(seg.SeriesDescription)
        # pixels: the label map comes back on the source slices
        r, back = _seg_on_source_grid(tmp_path / "out" / "cine_dicom" / f"seg_{key}.dcm", series, phase)
        assert np.array_equal(back, labels[phase])
        assert {s["label"] for s in r["segments"]} == {1, 2, 3}
        assert np.allclose(r["segments"][0]["rgb"], L.SEGMENTS[1][1], atol=0.01)
    # same input, model and frame -> same UIDs; another model -> other UIDs
    again = _cine_outputs(folder, subject)[3]
    for name in out:
        assert out[name].SOPInstanceUID == again[name].SOPInstanceUID
        assert out[name].SeriesInstanceUID == again[name].SeriesInstanceUID
    other = _cine_outputs(folder, subject, {**ALGORITHM, "weights_sha256": "f" * 64})[3]
    assert other["seg_ed.dcm"].SOPInstanceUID != out["seg_ed.dcm"].SOPInstanceUID
    assert out["seg_ed.dcm"].SOPInstanceUID != out["seg_es.dcm"].SOPInstanceUID
    assert all(os.path.isfile(f) for f in files)


def test_cine_sr_measurements_reference_their_segments(tmp_path, subject):
    import highdicom as hd

    from cmrrisk.dicomout.sr import read_measurements

    folder = tmp_path / "cine"
    write_series(folder, [subject["ed_img"], subject["es_img"]], subject["spacing"])
    _series, _labels, info, out = _cine_outputs(folder, subject)
    path = tmp_path / "sr.dcm"
    out["sr.dcm"].save_as(path, enforce_file_format=True)
    sr = _read(path)
    assert str(sr.ContentTemplateSequence[0].TemplateIdentifier) == "1500"
    hd.sr.Comprehensive3DSR.from_dataset(sr)  # highdicom reads it back
    ms = {m["code"]: m for m in read_measurements(sr)}
    ed, es = str(out["seg_ed.dcm"].SOPInstanceUID), str(out["seg_es.dcm"].SOPInstanceUID)
    want = {("18026-5", "LN"): ("lv_edv_ml", "mL", (ed, 1)), ("18148-7", "LN"): ("lv_esv_ml", "mL", (es, 1)),
            ("8811-2", "LN"): ("lv_ef_pct", "%", (ed, 1)), ("18087-7", "LN"): ("lv_mass_g", "g", (ed, 2)),
            ("RVEDV", "99CMRRISK"): ("rv_edv_ml", "mL", (ed, 3)), ("RVESV", "99CMRRISK"): ("rv_esv_ml", "mL", (es, 3)),
            ("RVEF", "99CMRRISK"): ("rv_ef_pct", "%", (ed, 3))}
    assert set(ms) == set(want)
    for code, (key, unit, seg_ref) in want.items():
        assert ms[code]["value"] == pytest.approx(info["indices"][key], rel=1e-6)
        assert ms[code]["unit"] == unit and ms[code]["unit_scheme"] == "UCUM"
        assert ms[code]["segment"] == seg_ref


def test_lge_seg_and_sr(tmp_path, subject):
    from cmrrisk.dicomout.source import load_series
    from cmrrisk.dicomout.sr import read_measurements
    from cmrrisk.dicomout.write import build_outputs
    from cmrrisk.image import read_image

    folder = tmp_path / "lge"
    write_series(folder, [subject["lge_img"]], subject["spacing"], kind="lge")
    vol = read_image(str(folder))
    series = load_series(str(folder), vol.array.shape)
    labels = subject["lge"].astype(np.uint8)
    scar = np.argwhere(labels == L.SCAR)
    assert len(scar) > 20
    labels[tuple(scar[: len(scar) // 5].T)] = L.MVO  # this subject has no MVO of its own
    info = {"lge": lge_measures(labels, vol.spacing)}
    out = build_outputs(series, labels, info, L.LGE_LABELS, {**ALGORITHM, "name": "lge"}, "lge")
    assert sorted(out) == ["seg_stack.dcm", "sr.dcm"]
    seg = out["seg_stack.dcm"]
    segs = {str(s.SegmentLabel): s for s in seg.SegmentSequence}
    assert _codes(segs["Myocardial scar"], "SegmentedPropertyCategoryCodeSequence") == ("49755003", "SCT")
    assert _codes(segs["Myocardial scar"], "SegmentedPropertyTypeCodeSequence") == ("12402003", "SCT")
    assert _codes(segs["Microvascular obstruction"], "SegmentedPropertyTypeCodeSequence")[1] == "99CMRRISK"
    seg.save_as(tmp_path / "seg.dcm", enforce_file_format=True)
    _r, back = _seg_on_source_grid(tmp_path / "seg.dcm", series, 0)
    assert np.array_equal(back, labels)
    ms = read_measurements(out["sr.dcm"])
    by_meaning = {(m["meaning"], m["segment"][1]): m for m in ms}
    scar_n = int(segs["Myocardial scar"].SegmentNumber)
    mvo_n = int(segs["Microvascular obstruction"].SegmentNumber)
    assert by_meaning[("Volume", scar_n)]["value"] == pytest.approx(info["lge"]["scar_ml"])
    assert by_meaning[("Volume", mvo_n)]["value"] == pytest.approx(info["lge"]["mvo_ml"])
    burden = [m for m in ms if m["code"] == ("SCARBURDEN", "99CMRRISK")]
    assert burden and burden[0]["value"] == pytest.approx(info["lge"]["scar_burden_pct"]) and burden[0]["unit"] == "%"


def test_messy_headers_repaired_once_and_safely(tmp_path, subject):
    from cmrrisk.dicomout.source import load_series

    folder = tmp_path / "messy"
    write_series(folder, [subject["ed_img"], subject["es_img"]], subject["spacing"], messy=True, trigger_jitter=7)
    src = {p.name: _read(p) for p in folder.iterdir()}
    series, _labels, _info, out = _cine_outputs(folder, subject)
    text = "\n".join(series.repairs)
    assert len(series.repairs) == 4
    assert "FrameOfReferenceUID: 8 different values" in text
    assert "StudyDate ['20120000']" in text and "PatientBirthDate ['00000000']" in text
    assert "kept verbatim" in text and "StudyInstanceUID" in text
    assert "TriggerTime varies by up to 21.0 ms" in text
    seg = out["seg_ed.dcm"]
    # the SEG keeps the archive's (non-conforming) UIDs so that it points at the images
    assert str(seg.StudyInstanceUID) == str(src["im0001.dcm"].StudyInstanceUID)
    assert ".01." in str(seg.StudyInstanceUID) + "." or ".0" in str(seg.ReferencedSeriesSequence[0].SeriesInstanceUID)
    assert str(seg.get("StudyDate", "")) == "" and str(seg.get("PatientBirthDate", "")) == ""
    assert seg.FrameOfReferenceUID == series.first.FrameOfReferenceUID
    # the source files are untouched
    assert all(str(ds.StudyDate) == "20120000" for ds in src.values())
    again = load_series(str(folder))
    assert len({str(ds.FrameOfReferenceUID) for loc in again.grid for ds in loc}) == 1


def test_inconsistent_frame_of_reference_and_bad_uid_refused(tmp_path, subject):
    from cmrrisk.dicomout.source import load_series

    folder = tmp_path / "shifted"
    write_series(folder, [subject["ed_img"]], subject["spacing"], messy=True)
    victim = sorted(folder.iterdir())[2]
    ds = _read(victim)
    ds.ImagePositionPatient = [-95.0, -90.0, float(ds.ImagePositionPatient[2])]  # 5 mm in-plane shift
    ds.save_as(victim)
    with pytest.raises(CMRRiskError) as e:
        load_series(str(folder))
    assert str(victim) in str(e.value) and "FrameOfReferenceUID" in str(e.value)

    folder = tmp_path / "baduid"
    write_series(folder, [subject["ed_img"]], subject["spacing"])
    victim = sorted(folder.iterdir())[1]
    ds = _read(victim)
    ds.SOPInstanceUID = "1.2.abc.4"
    ds.save_as(victim)
    with pytest.raises(CMRRiskError) as e:
        load_series(str(folder))
    assert str(victim) in str(e.value) and "SOPInstanceUID" in str(e.value)


def _run(*args, env=None):
    e = dict(os.environ, PYTHONPATH=str(ROOT / "CMRRiskExtension"), **(env or {}))
    return subprocess.run([sys.executable, "-m", "cmrrisk", *args], capture_output=True, text=True, env=e)


def test_segment_dicom_cli_twice_gives_same_uids(tmp_path, subject):
    folder = tmp_path / "cine"
    write_series(folder, [subject["ed_img"], subject["es_img"]], subject["spacing"], messy=True)
    out = tmp_path / "out"
    uids = []
    for _ in range(2):
        r = _run("segment", str(folder), "--out", str(out), "--dicom", "--threads", "1", "--quiet")
        assert r.returncode == 0, r.stderr
        rep = json.loads((out / "segment.json").read_text())
        d = rep["inputs"][0]["dicom"]
        assert sorted(os.listdir(d["folder"])) == ["seg_ed.dcm", "seg_es.dcm", "sr.dcm"]
        uids.append(d["sop_instance_uids"])
        # each repair said once
        for rep_line in d["repairs"]:
            assert r.stderr.count(rep_line) == 1
    assert uids[0] == uids[1]
    assert sorted(os.listdir(out)) == ["cine_dicom", "cine_seg.nii.gz", "segment.json"]


def test_segment_dicom_bad_options(tmp_path, subject):
    import nibabel as nib

    nii = tmp_path / "img.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((32, 32, 3), np.float32), np.eye(4)), nii)
    r = _run("segment", str(nii), "--out", str(tmp_path / "o"), "--dicom")
    assert r.returncode == 2 and str(nii) in r.stderr and "--dicom" in r.stderr
    assert not (tmp_path / "o").exists()
    r = _run("segment", str(nii), "--out", str(tmp_path / "o"), "--study", "1.2.3")
    assert r.returncode == 2 and "--study needs --dicomweb" in r.stderr
    r = _run("segment", "--out", str(tmp_path / "o"), "--dicomweb", "http://127.0.0.1:9/dicom-web")
    assert r.returncode == 2 and "--study" in r.stderr
    r = _run("segment", "--out", str(tmp_path / "o"), "--dicomweb", "http://user:secret@127.0.0.1:9/dicom-web",
             "--study", "1.2.3")
    assert r.returncode == 2 and "secret" not in r.stderr and "environment" in r.stderr
    # an unreachable server: one line, no traceback, nothing written
    r = _run("segment", "--out", str(tmp_path / "o"), "--dicomweb", "http://127.0.0.1:9/dicom-web", "--study", "1.2.3",
             env={"CMRRISK_DICOMWEB_PASSWORD": "topsecret", "CMRRISK_DICOMWEB_USER": "u"})
    assert r.returncode == 2 and "cannot connect" in r.stderr and "Traceback" not in r.stderr
    assert "topsecret" not in r.stderr + r.stdout
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


@needs_sunnybrook
def test_sunnybrook_cine_seg_and_sr_agree_with_segment_json(tmp_path):
    """Held-out real cine (GE, Sunnybrook): EF from the SEG pixels and in the SR within a point
    of segment.json; codes read back with pydicom and highdicom."""
    import highdicom as hd

    from cmrrisk.dicomout.source import load_series
    from cmrrisk.dicomout.sr import read_measurements
    from cmrrisk.metrics import volumes_ml

    folder = SUNNYBROOK / "SCD0000201"
    out = tmp_path / "out"
    r = _run("segment", str(folder), "--out", str(out), "--dicom", "--threads", "1", "--quiet")
    assert r.returncode == 0, r.stderr
    rep = json.loads((out / "segment.json").read_text())["inputs"][0]
    d = out / "SCD0000201_dicom"
    series = load_series(str(folder))
    lv = {}
    spacing = rep["spacing_mm"]
    for key, phase in (("ed", rep["ed_phase"]), ("es", rep["es_phase"])):
        seg = hd.seg.Segmentation.from_dataset(_read(d / f"seg_{key}.dcm"))
        assert [s.SegmentedPropertyTypeCodeSequence[0].CodeValue for s in seg.SegmentSequence] == \
            ["87612001", "49848007", "87612001"]
        _r, labels = _seg_on_source_grid(d / f"seg_{key}.dcm", series, phase)
        lv[key] = volumes_ml(labels, spacing)["lv_ml"]
    ef_pixels = 100 * (lv["ed"] - lv["es"]) / lv["ed"]
    assert abs(ef_pixels - rep["indices"]["lv_ef_pct"]) < 1.0
    ms = {m["code"]: m["value"] for m in read_measurements(_read(d / "sr.dcm"))}
    assert abs(ms[("8811-2", "LN")] - rep["indices"]["lv_ef_pct"]) < 1.0
    assert ms[("18026-5", "LN")] == pytest.approx(lv["ed"], rel=1e-3)
    assert "FrameOfReferenceUID" in r.stderr and "blanked invalid dates" in r.stderr


def test_store_refused_by_the_server_is_one_clear_error(tmp_path, subject):
    """A STOW-RS answered with an HTTP error (a stub server on the loopback interface): one
    message naming the status, and nothing reported as kept when the server holds nothing."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from cmrrisk.dicomout.client import connect, store

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(409)
            self.end_headers()

        def do_GET(self):  # QIDO: nothing stored
            self.send_response(204)
            self.end_headers()

        def do_DELETE(self):
            self.send_response(405)
            self.end_headers()

        def log_message(self, *a):
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        folder = tmp_path / "cine"
        write_series(folder, [subject["ed_img"], subject["es_img"]], subject["spacing"])
        _s, _l, _i, out = _cine_outputs(folder, subject)
        url = f"http://127.0.0.1:{srv.server_address[1]}/dicom-web"
        with pytest.raises(CMRRiskError) as e:
            store(connect(url), url, list(out.values()))
        msg = str(e.value)
        assert "HTTP 409" in msg and "nothing of this result was kept" in msg and "\n" not in msg
    finally:
        srv.shutdown()
