"""Cohort quality control (data selection): per-volume and per-subject checks, the
cohort report (volume, variety, veracity), the ``qc`` command and the CMRRiskSegment Logic's
``qcVolume`` against a real MRML scene; ACDC and Sunnybrook when present."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import ACDC, ROOT, SUNNYBROOK, needs_acdc, needs_sunnybrook
from test_features import AFFINE, phantom, write_manifest, write_subject

from cmrrisk import labels as L
from cmrrisk import qc
from cmrrisk.errors import CMRRiskError
from cmrrisk.image import Volume, write_image
from cmrrisk.manifest import read_manifest


def codes(checks, severity=None):
    return {c["code"] for c in checks if severity is None or c["severity"] == severity}


def _write(folder, name, img, lab=None, affine=AFFINE):
    p = os.path.join(folder, f"{name}.nii.gz")
    write_image(Volume(img, affine), p)
    if lab is not None:
        write_image(Volume(lab, affine), os.path.join(folder, f"{name}_seg.nii.gz"))
    return os.path.basename(p)


def _pair(folder, name, ed_img, es_img, ed_lab, es_lab):
    return {"cine_ed": _write(folder, f"{name}_ed", ed_img, ed_lab),
            "cine_es": _write(folder, f"{name}_es", es_img, es_lab),
            "cine_ed_seg": f"{name}_ed_seg.nii.gz", "cine_es_seg": f"{name}_es_seg.nii.gz"}


def synthetic_cohort(folder):
    """Eight subjects, each with one known problem (or none); returns the manifest path."""
    folder = str(folder)
    rows = [dict(subject="good", **write_subject(folder, "good", seed=0), manufacturer="Siemens",
                 field_strength_t="3", time="5.0", event="1", label="A"),
            dict(subject="good2", **write_subject(folder, "good2", seed=1), manufacturer="GE",
                 field_strength_t="1.5", time="2.0", event="0", label="B")]
    ed, ed_lab = phantom(12.0, noise=5.0, seed=2)
    es, es_lab = phantom(8.0, noise=5.0, seed=3)
    rows.append(dict(subject="shape", **_pair(folder, "shape", ed, es[:, 4:68, 4:68], ed_lab, es_lab[:, 4:68, 4:68]),
                     time="1.0", event="1", label="A"))
    nan_img = ed.copy()
    nan_img[3, 30, 30] = np.nan
    rows.append(dict(subject="nan", **_pair(folder, "nan", nan_img, es, ed_lab, es_lab), time="3.0", event="0",
                     label="A"))
    const = np.zeros_like(ed)
    rows.append(dict(subject="constant", **_pair(folder, "constant", const, const, ed_lab, es_lab), time="4.0",
                     event="0", label="B"))
    # LV without myocardium on one side: not enclosed by myocardium
    open_ed, open_es = ed_lab.copy(), es_lab.copy()
    xx = np.arange(ed.shape[2])[None, None, :]
    open_ed[(open_ed == L.LV_MYOCARDIUM) & (xx < 36)] = 0
    open_es[(open_es == L.LV_MYOCARDIUM) & (xx < 36)] = 0
    rows.append(dict(subject="openlv", **_pair(folder, "openlv", ed, es, open_ed, open_es), time="6.0", event="1",
                     label="B"))
    unread = _pair(folder, "unread", ed, es, ed_lab, es_lab)
    with open(os.path.join(folder, unread["cine_es"]), "wb") as fh:
        fh.write(b"this is not a NIfTI file" * 10)
    rows.append(dict(subject="unread", **unread, time="7.0", event="0", label="A"))
    # inverted contrast: a histogram unlike the cohort's
    rows.append(dict(subject="inverted", **_pair(folder, "inverted", 500.0 - ed, 500.0 - es, ed_lab, es_lab),
                     time="8.0", event="0", label="A"))
    path = os.path.join(folder, "cohort.csv")
    write_manifest(path, rows)
    return path


# -------------------------------------------------------------------------------- volumes

def test_volume_checks_geometry_slices_and_metadata():
    img, lab = phantom(noise=5.0)
    meta = {"manufacturer": "Philips", "field_strength_t": 3.0, "slice_thickness_mm": 4.0,
            "sequence_name": "bSSFP"}
    info, checks = qc.volume_checks(Volume(img, AFFINE, meta=meta), "cine_ed")
    assert info["manufacturer"] == "Philips" and info["field_strength_t"] == 3.0
    assert info["sequence"] == "bSSFP" and info["matrix"] == [72, 72] and info["n_slices"] == 8
    assert info["spacing_mm"] == [1.5, 1.5, 8.0]
    assert codes(checks) == {"slice_gap"}  # 8 mm spacing, 4 mm thick
    _, checks = qc.volume_checks(Volume(img, AFFINE), "cine_ed")
    assert checks == []

    missing = img.copy()
    missing[4] = 0.0
    assert codes(qc.volume_checks(Volume(missing, AFFINE))[1], "exclude") == {"missing_slice"}
    padded = img.copy()
    padded[0] = 0.0
    assert codes(qc.volume_checks(Volume(padded, AFFINE))[1]) == {"blank_end_slice"}
    assert codes(qc.volume_checks(Volume(img[:3], AFFINE))[1]) == {"few_slices"}
    assert "single_slice" in codes(qc.volume_checks(Volume(img[:1], AFFINE))[1], "exclude")
    sat = np.minimum(img, 100.0)  # clipped: every bright voxel at the maximum
    assert "saturated" in codes(qc.volume_checks(Volume(sat, AFFINE))[1], "flag")
    wide = np.diag([-4.0, -4.0, 8.0, 1.0])
    assert "in_plane_spacing_unusual" in codes(qc.volume_checks(Volume(img, wide))[1])
    rect = np.diag([-1.5, -1.9, 8.0, 1.0])
    assert "anisotropic_pixels" in codes(qc.volume_checks(Volume(img, rect))[1])
    nan = img.copy()
    nan[2, 3, 4] = np.nan
    assert "nan_voxels" in codes(qc.volume_checks(Volume(nan, AFFINE))[1], "exclude")


def test_cine_phase_checks():
    frames = [phantom(12.0 - t * 0.2, noise=5.0, seed=t)[0] for t in range(12)]
    cine = np.stack(frames)
    info, checks = qc.volume_checks(Volume(cine, AFFINE), "cine")
    assert checks == [] and info["n_phases"] == 12
    cine[5] = 0.0
    assert "blank_phase" in codes(qc.volume_checks(Volume(cine, AFFINE), "cine")[1], "exclude")
    assert codes(qc.volume_checks(Volume(np.stack(frames[:6]), AFFINE), "cine")[1]) == {"few_phases"}


def test_segmentation_and_index_checks():
    img, lab = phantom(noise=5.0)
    assert qc.volume_qc(Volume(img, AFFINE), lab)["status"] == "ok"
    no_myo = np.where(lab == L.LV_MYOCARDIUM, 0, lab).astype(np.uint8)
    res = qc.volume_qc(Volume(img, AFFINE), no_myo)
    assert res["status"] == "exclude" and "seg_myocardium_empty" in codes(res["checks"], "exclude")
    assert "seg_lv_not_enclosed_by_myocardium" in codes(res["checks"], "flag")
    res = qc.volume_qc(Volume(img, AFFINE), np.zeros_like(lab))
    assert codes(res["checks"]) == {"seg_no_heart_found"}
    res = qc.volume_qc(Volume(img, AFFINE), lab[:, :60])
    assert codes(res["checks"]) == {"seg_shape_mismatch"}
    # LGE: no RV expected
    lge_lab = np.where(lab == L.RV_BLOOD_POOL, 0, lab).astype(np.uint8)
    assert qc.volume_qc(Volume(img, AFFINE), lge_lab, role="lge")["status"] == "ok"
    assert "seg_rv_empty" in codes(qc.volume_qc(Volume(img, AFFINE), lge_lab, role="cine_ed")["checks"])
    # indices outside their plausible ranges
    flags = qc.index_checks({"lv_edv_ml": 900.0, "lv_ef_pct": -20.0, "lv_mass_g": 100.0})
    assert codes(flags, "flag") == {"implausible_lv_edv_ml", "implausible_lv_ef_pct"}
    thick = qc.segmentation_checks(lab, (6.0, 6.0, 8.0), "cine_ed")  # 5 px wall = 30 mm: fine
    assert "implausible_lv_max_wall_thickness_mm" not in codes(thick)
    thick = qc.segmentation_checks(lab, (9.0, 9.0, 8.0), "cine_ed")  # 45 mm
    assert "implausible_lv_max_wall_thickness_mm" in codes(thick, "flag")


# -------------------------------------------------------------------------------- cohort

def test_cohort_statuses_reasons_and_summaries(tmp_path):
    man = synthetic_cohort(tmp_path / "data")
    rep = qc.cohort_qc(man, str(tmp_path / "qc"), segment=True, workers=1, progress=False)
    subj = {s["subject"]: s for s in rep["veracity"]["subjects"]}
    status = {k: v["status"] for k, v in subj.items()}
    assert status == {"good": "ok", "good2": "ok", "shape": "exclude", "nan": "exclude", "constant": "exclude",
                      "openlv": "flag", "unread": "exclude", "inverted": "flag"}
    assert "ed_es_shape_mismatch" in codes(subj["shape"]["checks"], "exclude")
    assert "nan_voxels" in codes(subj["nan"]["checks"], "exclude")
    assert "constant_image" in codes(subj["constant"]["checks"], "exclude")
    assert codes(subj["openlv"]["checks"]) == {"seg_lv_not_enclosed_by_myocardium"}
    unread = [c for c in subj["unread"]["checks"] if c["code"] == "unreadable"]
    assert unread and unread[0]["role"] == "cine_es" and "unread_es.nii.gz" in unread[0]["message"]
    assert codes(subj["inverted"]["checks"]) == {"intensity_outlier"}
    assert subj["good"]["segmentation"] == {"cine_ed": "reference", "cine_es": "reference"}
    assert 40 < subj["good"]["indices"]["lv_edv_ml"] < 60  # pi * 18^2 mm^2 * 6 slices * 8 mm = 48.9 mL

    vol = rep["volume"]
    assert vol["n_subjects"] == 8 and vol["n_with_image"] == {"cine_ed": 8, "cine_es": 8}
    assert vol["n_events"] == 3 and vol["n_censored"] == 5
    assert vol["follow_up"]["all"]["max"] == 8.0 and vol["follow_up"]["all"]["median"] == 4.5
    assert vol["follow_up"]["censored"]["n"] == 5
    assert vol["labels"] == {"A": 5, "B": 3}
    assert vol["status"] == {"ok": 2, "flag": 2, "exclude": 4}
    var = rep["variety"]
    assert var["manufacturer"] == {"unknown": 6, "GE": 1, "Siemens": 1}
    assert var["field_strength"] == {"unknown": 6, "1.5 T": 1, "3 T": 1}
    ed = var["per_role"]["cine_ed"]
    assert ed["in_plane_mm"]["median"] == pytest.approx(1.5) and ed["slice_spacing_mm"]["max"] == pytest.approx(8.0)
    assert ed["matrices"] == {"72x72": 7}  # the NaN image is unreadable
    assert var["per_role"]["cine_es"]["matrices"] == {"72x72": 6, "64x64": 1}  # unread_es is unreadable

    out = tmp_path / "qc"
    assert sorted(os.listdir(out)) == ["qc.json", "qc.md", "qc_subjects.csv"]  # no temporary files left
    assert json.loads((out / "qc.json").read_text())["volume"]["status"]["exclude"] == 4
    with open(out / "qc_subjects.csv", newline="") as fh:
        rows = {r["subject"]: r for r in csv.DictReader(fh)}
    assert rows["shape"]["status"] == "exclude" and "cine: ed_es_shape_mismatch" in rows["shape"]["exclude_reasons"]
    assert rows["openlv"]["flag_reasons"] == "cine_ed: seg_lv_not_enclosed_by_myocardium; " \
                                             "cine_es: seg_lv_not_enclosed_by_myocardium"
    assert rows["good"]["status"] == "ok" and rows["good"]["manufacturer"] == "Siemens"
    md = (out / "qc.md").read_text()
    assert "excluded 4" in md and "**nan** (exclude)" in md and "Siemens 1" in md


def test_one_failure_never_stops_the_cohort(tmp_path, monkeypatch):
    man = synthetic_cohort(tmp_path / "data")
    real = qc.subject_qc

    def boom(row, segment=True):
        if row["subject"] == "good2":
            raise RuntimeError("simulated crash")
        return real(row, segment)

    monkeypatch.setattr(qc, "subject_qc", boom)
    rep = qc.cohort_qc(man, str(tmp_path / "qc"), segment=False, workers=1, progress=False)
    subj = {s["subject"]: s for s in rep["veracity"]["subjects"]}
    assert subj["good2"]["status"] == "exclude"
    assert subj["good2"]["checks"][0]["code"] == "qc_failed" and "simulated crash" in subj["good2"]["checks"][0]["message"]
    assert subj["good"]["status"] == "ok" and len(subj) == 8


def test_bundled_model_segments_when_no_reference(tmp_path):
    folder = str(tmp_path)
    sub = write_subject(folder, "s1")
    write_manifest(tmp_path / "m.csv", [{"subject": "s1", "cine_ed": sub["cine_ed"], "cine_es": sub["cine_es"]}])
    res = qc.subject_qc(read_manifest(str(tmp_path / "m.csv")).rows[0], segment=True)
    assert res["segmentation"] == {"cine_ed": "model cine", "cine_es": "model cine"}
    assert "lv_edv_ml" in res["indices"]
    assert res["status"] != "exclude"  # the model finds LV and myocardium in the phantom


# -------------------------------------------------------------------------------- command line

def _run_cli(*args):
    env = dict(os.environ, PYTHONPATH=str(ROOT / "CMRRiskExtension"))
    return subprocess.run([sys.executable, "-m", "cmrrisk.qc", "qc", *args], capture_output=True, text=True,
                          env=env, timeout=300)


def test_cli_end_to_end(tmp_path):
    man = synthetic_cohort(tmp_path / "data")
    out = tmp_path / "report"
    r = _run_cli(man, "--out", str(out), "--workers", "2", "--quiet")
    assert r.returncode == 0, r.stderr
    assert "8 subjects: 2 ok, 2 flagged, 4 excluded" in r.stdout
    assert "exclude: nan: nan_voxels" in r.stdout
    assert sorted(os.listdir(out)) == ["qc.json", "qc.md", "qc_subjects.csv"]
    rep = json.loads((out / "qc.json").read_text())
    assert rep["segment"] is True and rep["volume"]["status"] == {"ok": 2, "flag": 2, "exclude": 4}

    bad = tmp_path / "bad.csv"
    bad.write_text("id,cine_ed\nx,a.nii.gz\n")
    r = _run_cli(str(bad), "--out", str(tmp_path / "bad_out"), "--quiet")
    assert r.returncode == 2 and "no 'subject' column" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "bad_out").exists()
    r = _run_cli(str(tmp_path / "nope.csv"), "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "no such manifest file" in r.stderr


def test_cli_hooked_into_cmrrisk():
    from cmrrisk import cli

    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    if "qc" not in sub.choices:
        pytest.skip("qc is not yet registered in cmrrisk/cli.py (cmrrisk.qc.add_commands)")
    args = parser.parse_args(["qc", "m.csv", "--out", "o", "--no-segment", "--workers", "3"])
    assert args.func is qc.cmd_qc and args.no_segment and args.workers == 3


def test_missing_image_file_excludes_the_subject_not_the_cohort(tmp_path):
    sub = write_subject(str(tmp_path), "s1")
    write_manifest(tmp_path / "m.csv", [dict(subject="s1", **sub),
                                        dict(subject="s2", cine_ed="gone_ed.nii.gz", cine_es=sub["cine_es"])])
    rep = qc.cohort_qc(str(tmp_path / "m.csv"), str(tmp_path / "o"), segment=False, workers=1, progress=False)
    s1, s2 = rep["veracity"]["subjects"]
    assert s1["status"] == "ok" and s2["status"] == "exclude"
    assert codes(s2["checks"]) == {"missing_file"} and "gone_ed.nii.gz" in s2["checks"][0]["message"]


def test_bad_manifest_raises_with_row_and_column(tmp_path):
    write_manifest(tmp_path / "m.csv", [{"subject": "a", "cine_ed": "x.nii.gz", "cine_es": "y.nii.gz", "event": "2"}])
    with pytest.raises(CMRRiskError, match="line 2, column event"):
        qc.cohort_qc(str(tmp_path / "m.csv"), str(tmp_path / "o"), progress=False)


# -------------------------------------------------------------------------------- Slicer

def test_slicer_logic_qc_volume(scene, segment_module):
    from cmrrisk import mrml

    img, lab = phantom(noise=5.0)
    node = mrml.volume_to_node(scene, Volume(img, AFFINE, "frame"), "frame")
    logic = segment_module.CMRRiskSegmentLogic()
    seg_node = mrml.labels_to_segmentation(scene, lab, node, "reference")

    def rows(table):
        t = table.GetTable()
        cols = [t.GetColumnByName(c) for c in ("check", "severity", "message")]
        return [tuple(c.GetValue(i) for c in cols) for i in range(t.GetNumberOfRows())]

    table = logic.qcVolume(node, seg_node)
    assert table.GetAttribute("CMRRisk.qcStatus") == "ok"
    assert rows(table) == [("ok", "ok", "no problem found")]

    open_lab = lab.copy()
    xx = np.arange(lab.shape[2])[None, None, :]
    open_lab[(open_lab == L.LV_MYOCARDIUM) & (xx < 36)] = 0
    seg2 = mrml.labels_to_segmentation(scene, open_lab, node, "open")
    table = logic.qcVolume(node, seg2, name="open QC")
    assert table.GetName() == "open QC" and table.GetAttribute("CMRRisk.qcStatus") == "flag"
    assert [r[:2] for r in rows(table)] == [("seg_lv_not_enclosed_by_myocardium", "flag")]

    missing = img.copy()
    missing[4] = 0.0
    node2 = mrml.volume_to_node(scene, Volume(missing, AFFINE, "gap"), "gap")
    table = logic.qcVolume(node2)
    assert table.GetAttribute("CMRRisk.qcStatus") == "exclude"
    assert rows(table)[0][:2] == ("missing_slice", "exclude") and "[4]" in rows(table)[0][2]


def test_slicer_self_test_qc_runs_headless(scene, segment_module):
    import unittest

    class SelfTest(segment_module.CMRRiskSegmentTest, unittest.TestCase):
        def delayDisplay(self, message):
            pass

    t = SelfTest()
    unittest.TestCase.__init__(t, "runTest")
    t.test_qc_volume()
    tables = [n for n in scene.GetNodesByClass("vtkMRMLTableNode")]
    assert [n.GetName() for n in tables] == ["qc phantom QC"]


# -------------------------------------------------------------------------------- public data

@needs_acdc
def test_acdc_reference_segmentations_no_exclusions(tmp_path):
    r = subprocess.run([sys.executable, "-m", "cmrrisk", "manifest", "acdc", str(ACDC), "--out",
                        str(tmp_path / "acdc.csv")], capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, PYTHONPATH=str(ROOT / "CMRRiskExtension")))
    assert r.returncode == 0, r.stderr
    with open(tmp_path / "acdc.csv", newline="") as fh:
        lines = list(csv.reader(fh))
    picks = [lines[0]] + [lines[i] for i in (1, 21, 41, 61, 81)]  # one subject of each ACDC group
    with open(tmp_path / "acdc5.csv", "w", newline="") as fh:
        csv.writer(fh).writerows(picks)
    rep = qc.cohort_qc(str(tmp_path / "acdc5.csv"), str(tmp_path / "qc"), segment=True, workers=1,
                       progress=False)
    subj = rep["veracity"]["subjects"]
    assert [s["status"] for s in subj if s["status"] == "exclude"] == []
    assert all(s["segmentation"] == {"cine_ed": "reference", "cine_es": "reference"} for s in subj)
    assert rep["volume"]["n_subjects"] == 5 and len(rep["volume"]["labels"]) == 5
    ed = rep["variety"]["per_role"]["cine_ed"]
    assert 0.5 < ed["in_plane_mm"]["min"] <= ed["in_plane_mm"]["max"] < 2.5
    assert all(20 < s["indices"]["lv_edv_ml"] < 600 for s in subj)


@needs_sunnybrook
def test_sunnybrook_variety_from_dicom_headers(tmp_path):
    series = sorted(p for p in SUNNYBROOK.iterdir() if p.is_dir())[:2]
    write_manifest(tmp_path / "sb.csv", [{"subject": p.name, "cine": str(p)} for p in series])  # no vendor columns
    rep = qc.cohort_qc(str(tmp_path / "sb.csv"), str(tmp_path / "qc"), segment=False, workers=1, progress=False)
    var = rep["variety"]
    assert var["manufacturer"].get("GE MEDICAL SYSTEMS") == len(series)
    assert var["field_strength"].get("1.5 T") == len(series)
    cine = var["per_role"]["cine"]
    assert cine["n_phases"]["min"] >= 2 and cine["slice_thickness_mm"] is not None
    assert rep["volume"]["status"]["exclude"] == 0


def test_slicer_logic_qc_of_a_cine_sequence_and_an_ed_es_pair(scene, segment_module):
    from cmrrisk import mrml

    img, lab = phantom(noise=5.0)
    logic = segment_module.CMRRiskSegmentLogic()

    def rows(table):
        t = table.GetTable()
        return [t.GetColumnByName("check").GetValue(i) for i in range(t.GetNumberOfRows())]

    # a cine sequence with a blank phase: checked as a 4D cine
    seq = scene.AddNewNodeByClass("vtkMRMLSequenceNode", "cine")
    seq.SetIndexName("phase")
    for t in range(4):
        frame = img * (0.0 if t == 2 else 1.0 + 0.05 * t)
        tmp = mrml.volume_to_node(scene, Volume(frame.astype(np.float32), AFFINE, f"p{t}"), f"p{t}")
        seq.SetDataNodeAtValue(tmp, str(t))
        scene.RemoveNode(tmp)
    table = logic.qcVolume(seq)
    codes = rows(table)
    assert table.GetAttribute("CMRRisk.qcStatus") in ("flag", "exclude") and codes != ["ok"]
    direct = qc.volume_qc(mrml.volume_from_sequence(seq), None, "cine")
    assert codes == [c["code"] for c in direct["checks"]]  # the same checks as cmrrisk qc
    with pytest.raises(ValueError, match="one phase"):
        logic.qcVolume(seq, mrml.labels_to_segmentation(scene, lab, mrml.volume_to_node(
            scene, Volume(img, AFFINE, "f"), "f"), "s"))

    # ED / ES pair: same grid is fine; another spacing is excluded
    ed = mrml.volume_to_node(scene, Volume(img, AFFINE, "ed"), "ed")
    es = mrml.volume_to_node(scene, Volume(img * 0.9, AFFINE, "es"), "es")
    assert logic.qcVolume(ed, esVolumeNode=es).GetAttribute("CMRRisk.qcStatus") == "ok"
    other = AFFINE.copy()
    other[0, 0] *= 1.3
    es2 = mrml.volume_to_node(scene, Volume(img, other, "es2"), "es2")
    table = logic.qcVolume(ed, esVolumeNode=es2)
    assert table.GetAttribute("CMRRisk.qcStatus") == "exclude"
    assert "ed_es_spacing_mismatch" in rows(table)


def test_shards_merged_give_the_single_run_report(tmp_path):
    """``qc --shard I/N`` then ``merge-qc-shards``: the report a single run writes (the cohort-wide
    intensity outlier, which needs every subject, found at the merge); a missing shard or a bad
    shard spec is one clear error with nothing written."""
    man = synthetic_cohort(tmp_path / "data")
    single = tmp_path / "single"
    assert _run_cli(man, "--out", str(single), "--workers", "1", "--no-segment", "--quiet").returncode == 0
    for i in (1, 2, 3):
        r = _run_cli(man, "--out", str(tmp_path / f"s{i}"), "--workers", "1", "--no-segment", "--quiet",
                     "--shard", f"{i}/3")
        assert r.returncode == 0, r.stderr
        assert sorted(os.listdir(tmp_path / f"s{i}")) == ["qc_shard.json"]
    env = dict(os.environ, PYTHONPATH=str(ROOT / "CMRRiskExtension"))

    def merge(*dirs, out):
        return subprocess.run([sys.executable, "-m", "cmrrisk", "merge-qc-shards", *map(str, dirs), "--out", str(out)],
                              capture_output=True, text=True, env=env, timeout=300)

    r = merge(tmp_path / "s3", tmp_path / "s1", tmp_path / "s2", out=tmp_path / "merged")
    assert r.returncode == 0, r.stderr
    assert "8 subjects from 3 shards" in r.stdout
    for name in ("qc_subjects.csv", "qc.md"):
        assert (tmp_path / "merged" / name).read_text() == (single / name).read_text(), name
    a, b = (json.loads((d / "qc.json").read_text()) for d in (single, tmp_path / "merged"))
    a.pop("wall_seconds"), b.pop("wall_seconds")
    assert a == b
    assert "intensity_outlier" in (single / "qc_subjects.csv").read_text()  # the cohort-wide check is in it
    r = merge(tmp_path / "s1", tmp_path / "s3", out=tmp_path / "incomplete")
    assert r.returncode == 2 and "missing 2" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "incomplete").exists()
    r = _run_cli(man, "--out", str(tmp_path / "bad"), "--shard", "4/3", "--quiet")
    assert r.returncode == 2 and "--shard 4/3" in r.stderr and not (tmp_path / "bad").exists()
