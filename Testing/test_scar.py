"""Scar per AHA segment, transmurality, n-SD / FWHM, LGE series recognition.

Phantoms are rings whose correct answers follow from their construction: angles are measured
around the ring centre in mm, from +i towards +j, exactly as the module documents.
"""

import json
import math

import numpy as np
import pytest
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

from cmrrisk import labels as L
from cmrrisk import scar as S
from cmrrisk.cli import main
from cmrrisk.dicom import classify_files, classify_series, classify_text, classify_volume
from cmrrisk.errors import CMRRiskError
from cmrrisk.image import Volume, read_image, write_image
from cmrrisk.metrics import lge_measures, scar_burden_pct
from cmrrisk.segmentation.pipeline import choose_model, summarize_result

from conftest import DATA, SUNNYBROOK, needs_sunnybrook

EMIDEC = DATA / "emidec"
needs_emidec = pytest.mark.skipif(not EMIDEC.is_dir(), reason=f"EMIDEC data not found at {EMIDEC}")

SP = (1.5, 1.5, 8.0)
IDENTITY = np.diag(list(SP) + [1.0])


def ring(nz=9, n=64, r0=10.0, r1=16.0, sp=SP, centre=None):
    """(labels, angle deg from +i towards +j in mm, radius in voxels of i, slice index)."""
    z, y, x = np.indices((nz, n, n))
    c = (n - 1) / 2 if centre is None else centre
    dx, dy = (x - c) * sp[0], (y - c) * sp[1]
    r = np.hypot(dx, dy) / sp[0]
    lab = np.zeros((nz, n, n), np.uint8)
    lab[r < r1] = L.LV_MYOCARDIUM
    lab[r < r0] = L.LV_BLOOD_POOL
    return lab, np.degrees(np.arctan2(dy, dx)), r, z


def seg_row(res, n):
    return next(r for r in res["segments"] if r["segment"] == n)


def oblique(phi_deg=-80.0, sp=SP):
    """i along RAS +x (patient right); j and k rotated about x by phi: anterior (+y) projects on
    +j when cos(phi) > 0; the slice normal (0, -sin, cos) has cosine +0.47 with the typical
    base-to-apex axis for phi = -80, so the first slice is basal."""
    p = math.radians(phi_deg)
    u = np.array([1.0, 0, 0])
    v = np.array([0, math.cos(p), math.sin(p)])
    nrm = np.cross(u, v)
    m = np.eye(4)
    m[:3, :3] = np.stack([u, v, nrm], 1) @ np.diag(sp)
    m[:3, 3] = (10.0, -20.0, 5.0)
    return m


# ----------------------------------------------------------------------------- AHA segments


def test_transmural_sector_at_mid_level_is_one_full_segment():
    lab, ang, r, z = ring()
    # 9 slices, first basal: slices 3-5 are mid; theta in [0, 60) -> mid anteroseptal (8)
    lab[(lab == L.LV_MYOCARDIUM) & (z >= 3) & (z <= 5) & (ang >= 0) & (ang < 60)] = L.SCAR
    res = S.aha_analysis(lab, IDENTITY, reference_angle_deg=0, septum_direction=1, base="first")
    assert [r["segment"] for r in res["segments"]] == list(range(1, 17))  # no 17: slice-based
    assert "17" in res["note"]
    s8 = seg_row(res, 8)
    assert s8["scar_pct"] == pytest.approx(100.0)
    assert s8["transmurality_mean"] >= 0.95
    for row in res["segments"]:
        if row["segment"] != 8:
            assert row["scar_ml"] == 0.0, row
            assert row["transmurality_mean"] <= 0.05, row
    assert res["summary"]["n_segments_with_scar"] == 1
    for c in (25, 50, 75):
        assert res["summary"][f"n_segments_transmurality_gt{c}"] == 1
    vml = np.prod(SP) / 1000
    assert s8["scar_ml"] == pytest.approx((lab == L.SCAR).sum() * vml, abs=1e-3)
    assert sum(r["myocardium_ml"] for r in res["segments"]) == pytest.approx(
        np.isin(lab, L.MYOCARDIAL).sum() * vml, abs=1e-2)
    assert [s["level"] for s in res["slices"]] == ["basal"] * 3 + ["mid"] * 3 + ["apical"] * 3
    assert not res["approximate"] and "argument" in res["base_rule"]


def test_same_scar_lands_in_the_apical_segment_when_the_base_is_the_last_slice():
    lab, ang, r, z = ring()
    lab[(lab == L.LV_MYOCARDIUM) & (z <= 2) & (ang >= 20) & (ang < 100)] = L.SCAR
    first = S.aha_analysis(lab, IDENTITY, reference_angle_deg=0, septum_direction=1, base="first")
    last = S.aha_analysis(lab, IDENTITY, reference_angle_deg=0, septum_direction=1, base="last")
    assert first["base_slice"] == 0 and last["base_slice"] == 8
    # basal: theta 20..100 covers segments 2 (20..60) and 3 (60..100)
    assert seg_row(first, 2)["scar_ml"] > 0 and seg_row(first, 3)["scar_ml"] > 0
    # apical (septal 14 is theta 15..105): everything in 14
    assert seg_row(last, 14)["scar_pct"] == pytest.approx(100 * 80 / 90, abs=3)
    assert all(seg_row(last, n)["scar_ml"] == 0 for n in range(1, 17) if n != 14)


def test_subendocardial_scar_has_partial_transmurality():
    lab, ang, r, z = ring()
    # inner third of the wall (radius 10..12 of 10..16) over theta 120..180 at mid: segment 10
    lab[(lab == L.LV_MYOCARDIUM) & (z >= 3) & (z <= 5) & (ang >= 120) & (r < 12)] = L.SCAR
    res = S.aha_analysis(lab, IDENTITY, reference_angle_deg=0, septum_direction=1, base="first")
    s10 = seg_row(res, 10)
    assert s10["transmurality_mean"] == pytest.approx(1 / 3, abs=0.07)
    assert 20 < s10["scar_pct"] < 35  # area share of the inner third of the ring (~28 %)
    assert res["summary"]["n_segments_transmurality_gt25"] == 1
    assert res["summary"]["n_segments_transmurality_gt50"] == 0


def test_base_and_orientation_from_rv_insertion_with_geometry():
    m = oblique()
    lab, ang, r, z = ring(sp=SP)
    # RV crescent outside the LV over image angles 120..240 on every slice but the two apical ones
    rv = (r >= 17) & (r < 24) & (ang >= 120) | (r >= 17) & (r < 24) & (ang < -120)
    lab[rv & (z < 7)] = L.RV_BLOOD_POOL
    # anterior projects on +j (angle +90), so the anterior insertion is the 120 deg end and the
    # septum (180) lies at increasing angle: mid anteroseptal (8) = image angles 120..180
    lab[(lab == L.LV_MYOCARDIUM) & (z >= 3) & (z <= 5) & (ang >= 120)] = L.SCAR
    res = S.aha_analysis(lab, m)
    assert "geometry" in res["base_rule"] and res["base_slice"] == 0
    assert "RV insertion" in res["orientation_rule"]
    assert not res["approximate"], res["approximate_reasons"]
    assert seg_row(res, 8)["scar_pct"] > 90
    assert sum(seg_row(res, n)["scar_ml"] for n in range(1, 17) if n != 8) < 0.1 * seg_row(res, 8)["scar_ml"]
    sl = {s["slice"]: s for s in res["slices"]}
    assert sl[4]["reference"] == "rv_insertion" and sl[4]["septum_direction"] == 1
    assert abs(sl[4]["reference_angle_deg"] - 120) < 6
    assert sl[8]["reference"] == "rv_insertion of slice 6"
    # the same stack seen with the slice order reversed along the normal: base is the last slice
    flipped = m.copy()
    flipped[:3, 2] *= -1
    assert S.aha_analysis(lab, flipped)["base_slice"] == 8


def test_orientation_from_patient_axes_without_rv():
    m = oblique()
    lab, ang, r, z = ring()
    # septum ~ patient right = +i (angle 0), anterior = +j (90): anterior insertion assumed at
    # 60 deg, septum at decreasing angle -> mid anteroseptal (8) = image angles 0..60
    lab[(lab == L.LV_MYOCARDIUM) & (z >= 3) & (z <= 5) & (ang > 0) & (ang < 60)] = L.SCAR
    res = S.aha_analysis(lab, m)
    assert seg_row(res, 8)["scar_pct"] > 95
    assert res["approximate"] and "patient geometry" in res["orientation_rule"]
    assert res["slices"][0]["septum_direction"] == -1
    assert res["slices"][0]["reference_angle_deg"] == pytest.approx(60, abs=0.5)


def test_unknown_geometry_without_rv_is_flagged_approximate():
    lab, ang, r, z = ring()
    lab[(z <= 2) & (lab == L.LV_BLOOD_POOL) & (r >= 6)] = L.LV_MYOCARDIUM  # small cavity near k = 0
    res = S.aha_analysis(lab, IDENTITY)
    assert res["approximate"] and not res["geometry_known"]
    assert len(res["approximate_reasons"]) == 2
    assert "larger LV blood pool" in res["base_rule"] and res["base_slice"] == 8
    assert res["slices"][0]["reference"] == "default"
    json.dumps(res)  # plain JSON types only


def test_errors_are_clear():
    lab, *_ = ring()
    with pytest.raises(CMRRiskError, match="no LV myocardium"):
        S.aha_analysis(np.zeros_like(lab), IDENTITY)
    with pytest.raises(CMRRiskError, match="3D short-axis"):
        S.aha_analysis(lab[0], IDENTITY)
    with pytest.raises(CMRRiskError, match="same grid"):
        S.intensity_methods(np.zeros((2, 3, 4)), lab, IDENTITY)
    with pytest.raises(CMRRiskError, match="base="):
        S.aha_analysis(lab, IDENTITY, base="top")
    with pytest.raises(CMRRiskError, match="4x4"):
        S.aha_analysis(lab, np.eye(3))
    # no myocardium through lge_measures: zeros / NaN burden and the reason, no exception
    m = lge_measures(np.zeros_like(lab), SP, image=np.zeros(lab.shape), ijk_to_ras=IDENTITY)
    assert m["myocardium_ml"] == 0 and math.isnan(m["scar_burden_pct"])
    assert "no LV myocardium" in m["scar_analysis_error"] and "aha" not in m


def test_no_scar_gives_zero_everywhere():
    lab, *_ = ring()
    res = S.aha_analysis(lab, IDENTITY, reference_angle_deg=0, septum_direction=1, base="first")
    assert all(r["scar_ml"] == 0 and r["transmurality_mean"] == 0 for r in res["segments"])
    assert res["summary"]["transmurality_mean_scarred_chords"] is None


# ----------------------------------------------------------------------------- intensity methods


def _intensity_phantom():
    lab, ang, r, z = ring()
    kw = dict(reference_angle_deg=0, septum_direction=1, base="first")
    smap, _ = S.segment_map(lab, IDENTITY, **kw)
    img = np.full(lab.shape, 300.0)  # blood pool bright, outside the myocardium: ignored
    myo = lab == L.LV_MYOCARDIUM
    img[myo] = 95.0
    remote = smap == 11
    checker = (np.indices(lab.shape).sum(0) % 2).astype(bool)
    img[remote & checker] = 80.0
    img[remote & ~checker] = 100.0           # remote: mean ~90, SD ~10
    bright = smap == 10
    img[bright] = 130.0                       # healthy label, mean + ~4 SD
    scar = smap == 8
    lab[scar] = L.SCAR
    img[scar] = 200.0
    first_scar = tuple(np.argwhere(scar)[0])
    img[first_scar] = 220.0
    mvo = scar & (r < 11.5) & (np.abs(ang - 30) < 6)
    lab[mvo] = L.MVO
    img[mvo] = 50.0
    return img, lab, kw, dict(scar=scar, bright=bright, mvo=mvo, myo=np.isin(lab, L.MYOCARDIAL), remote=remote)


def test_nsd_and_fwhm_on_a_phantom_with_known_intensities():
    img, lab, kw, m = _intensity_phantom()
    res = S.intensity_methods(img, lab, IDENTITY, **kw)
    assert res["remote"]["segment"] == 11
    assert res["remote"]["mean"] == pytest.approx(90, abs=0.5)
    assert res["remote"]["sd"] == pytest.approx(10, abs=0.3)
    myo_n, scar_n, bright_n = m["myo"].sum(), m["scar"].sum(), m["bright"].sum()
    by_n = {e["n"]: e for e in res["nsd"]}
    assert sorted(by_n) == [2, 3, 5, 6]
    remote_vals = img[m["remote"]]
    for n in (2, 3, 5, 6):
        assert by_n[n]["threshold"] == pytest.approx(remote_vals.mean() + n * remote_vals.std(ddof=1), abs=1e-3)
    # n = 2, 3: thresholds ~110, ~120 take the 130-valued segment too; n = 5, 6 (~140, ~150) do not
    for n in (2, 3):
        assert by_n[n]["scar_burden_pct"] == pytest.approx(100 * (scar_n + bright_n) / myo_n, abs=1e-3)
        assert by_n[n]["dice_vs_dl"] == pytest.approx(2 * scar_n / (2 * scar_n + bright_n), abs=1e-4)
    for n in (5, 6):
        assert by_n[n]["scar_burden_pct"] == pytest.approx(100 * scar_n / myo_n, abs=1e-3)
        assert by_n[n]["dice_vs_dl"] == 1.0
    # FWHM: max 220 in the DL scar -> threshold 110 takes the 130 segment too;
    # above remote: 90 + (220 - 90) / 2 = 155 -> scar only
    assert res["fwhm"]["threshold"] == pytest.approx(110)
    assert res["fwhm"]["scar_burden_pct"] == pytest.approx(100 * (scar_n + bright_n) / myo_n, abs=1e-3)
    assert res["fwhm_above_remote"]["threshold"] == pytest.approx(90 + 65, abs=0.5)
    assert res["fwhm_above_remote"]["dice_vs_dl"] == 1.0
    assert res["dl"]["scar_burden_pct"] == pytest.approx(scar_burden_pct(lab), abs=1e-3)
    # without the DL MVO the dark no-reflow core is missed by every intensity method
    no_mvo = S.intensity_methods(img, lab, IDENTITY, include_mvo=False, n_sd=(5,), **kw)
    assert no_mvo["nsd"][0]["scar_ml"] == pytest.approx(
        (scar_n - m["mvo"].sum()) * np.prod(SP) / 1000, abs=1e-3)
    assert no_mvo["nsd"][0]["dice_vs_dl"] < 1.0


def test_remote_falls_back_when_every_segment_has_scar_and_fwhm_without_scar():
    lab, ang, r, z = ring()
    kw = dict(reference_angle_deg=0, septum_direction=1, base="first")
    img = np.where(lab == L.LV_MYOCARDIUM, 100.0, 0.0)
    clean = S.intensity_methods(img, lab, IDENTITY, **kw)
    assert clean["fwhm"]["maximum"] is None and clean["fwhm"]["scar_ml"] == 0
    assert clean["nsd"][0]["scar_ml"] == 0  # constant myocardium: nothing above mean + 2 SD
    lab[(lab == L.LV_MYOCARDIUM) & (r > 15)] = L.SCAR  # a thin rim of scar everywhere
    res = S.intensity_methods(img, lab, IDENTITY, **kw)
    assert "no scar-free segment" in res["remote"]["rule"]


def test_scar_report_and_summary_rows_are_json_and_consistent():
    img, lab, kw, m = _intensity_phantom()
    rep = S.scar_report(img, lab, IDENTITY, **kw)
    text = json.dumps(rep)
    assert "NaN" not in text
    rows = dict((k, v) for k, v, _ in S.summary_rows(rep))
    assert rows["nsd3_scar_burden_pct"] == rep["intensity_methods"]["nsd"][1]["scar_burden_pct"]
    assert rows["n_segments_transmurality_gt75"] == 1
    cols = S.aha_table_columns(rep["aha"])
    assert len(cols["segment"]) == 16 and cols["scar_pct"][7] == pytest.approx(100)


def test_summarize_result_puts_scar_analysis_in_the_lge_entry():
    img, lab, kw, m = _intensity_phantom()
    vol = Volume(img.astype(np.float32), IDENTITY)
    info = summarize_result(vol, vol.with_array(lab), L.LGE_LABELS)
    lge = info["lge"]
    assert lge["scar_burden_pct"] == pytest.approx(scar_burden_pct(lab))
    assert len(lge["aha"]["segments"]) == 16 and lge["aha"]["approximate"]
    assert {e["n"] for e in lge["intensity_methods"]["nsd"]} == {2, 3, 5, 6}
    json.dumps(info)


# ----------------------------------------------------------------------------- series kind


@pytest.mark.parametrize("meta,kind", [
    ({"n_phases": 25, "inversion_time_ms": 300.0}, "cine"),
    ({"n_phases": 1, "inversion_time_ms": 300.0}, "lge"),
    ({"n_phases": 1, "series_description": "SAX PSIR"}, "lge"),
    ({"n_phases": 1, "protocol_name": "de_sax_stack"}, "lge"),
    ({"n_phases": 1, "series_description": "Delayed Enhancement SA"}, "lge"),
    ({"n_phases": 1, "series_description": "late gad short axis"}, "lge"),
    ({"n_phases": 1, "series_description": "VIABILITY_SAX"}, "lge"),
    ({"n_phases": 1, "series_description": "MOLLI T1 map", "inversion_time_ms": 100.0}, "unknown"),
    ({"n_phases": 1, "series_description": "TI scout", "inversion_time_ms": 100.0}, "unknown"),
    ({"n_phases": 1, "series_description": "sa cine ssfp"}, "cine"),
    ({"n_phases": 1, "series_description": "short axis"}, "unknown"),
    ({"n_phases": 1, "series_description": "DEXA"}, "unknown"),  # DE only as a whole word
])
def test_classify_series_rules(meta, kind):
    c = classify_series(meta)
    assert c["kind"] == kind, c
    assert c["reason"]


def test_classify_text_on_names():
    assert classify_text("Case_P001_lge")["kind"] == "lge"
    assert classify_text("patient001_frame01")["kind"] == "unknown"


def _write_series(folder, n_slices=3, phases=1, description="SAX LGE", inversion=300.0, size=64,
                  value=None):
    folder.mkdir(parents=True)
    series = generate_uid()
    z, y, x = np.indices((n_slices, size, size))
    rr = np.hypot(y - size / 2, x - size / 2)
    pix = np.where(rr < 8, 400, np.where(rr < 12, 120, 60)).astype(np.uint16)
    n = 0
    for k in range(n_slices):
        for t in range(phases):
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID = MRImageStorage
            meta.MediaStorageSOPInstanceUID = generate_uid()
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds = FileDataset(str(folder / f"im{n:03d}.dcm"), {}, file_meta=meta, preamble=b"\0" * 128)
            ds.SOPClassUID = MRImageStorage
            ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
            ds.SeriesInstanceUID = series
            ds.Modality = "MR"
            ds.Manufacturer = "TestVendor"
            ds.SeriesDescription = description
            if inversion is not None:
                ds.InversionTime = inversion
            ds.TriggerTime = 40.0 * t
            ds.InstanceNumber = n + 1
            ds.ImageOrientationPatient = [1, 0, 0, 0, 0.8, -0.6]
            ds.ImagePositionPatient = [0.0, 8.0 * k * 0.6, 8.0 * k * 0.8]
            ds.PixelSpacing = [1.5, 1.5]
            ds.SliceThickness = 8.0
            ds.Rows = ds.Columns = size
            ds.SamplesPerPixel = 1
            ds.PhotometricInterpretation = "MONOCHROME2"
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
            ds.PixelData = pix[k].tobytes()
            ds.save_as(folder / f"im{n:03d}.dcm", enforce_file_format=True)
            n += 1
    return folder


def test_synthetic_dicom_series_are_classified(tmp_path):
    lge = _write_series(tmp_path / "a", description="SAX PSIR")
    vol = read_image(str(lge))
    assert vol.meta["inversion_time_ms"] == 300.0 and vol.meta["n_phases"] == 1
    assert classify_volume(vol)["kind"] == "lge"
    assert classify_files(sorted(lge.glob("*.dcm")))["kind"] == "lge"
    assert choose_model(vol, str(lge))[0] == "lge"
    cine = _write_series(tmp_path / "b", phases=3, description="short axis", inversion=None)
    assert classify_files(sorted(cine.glob("*.dcm")))["kind"] == "cine"
    assert choose_model(read_image(str(cine)), str(cine))[0] == "cine"
    plain = _write_series(tmp_path / "c", description="short axis", inversion=None)
    with pytest.raises(CMRRiskError, match="--model cine or --model lge"):
        choose_model(read_image(str(plain)), str(plain))


@needs_sunnybrook
def test_real_cine_dicom_is_cine():
    folder = SUNNYBROOK / "SCD0000101"
    c = classify_files(sorted(folder.glob("*.dcm"))[:60])
    assert c["kind"] == "cine" and "trigger times" in c["reason"]


def test_segment_auto_picks_lge_for_dicom_and_refuses_a_plain_nifti(tmp_path, capsys):
    lge = _write_series(tmp_path / "lge_series", description="SAX LGE")
    out = tmp_path / "out"
    assert main(["segment", str(lge), "--model", "auto", "--out", str(out), "--quiet"]) == 0
    rep = json.loads((out / "segment.json").read_text())
    e = rep["inputs"][0]
    assert e["model"] == "lge" and "LGE" in e["model_selected_because"]
    assert rep["model_selection"] == "auto" and list(rep["models"]) == ["lge"]
    assert "aha" in e["lge"] or "scar_analysis_error" in e["lge"]
    assert e["metadata"]["inversion_time_ms"] == 300.0

    frame = tmp_path / "subject_frame01.nii.gz"
    write_image(Volume(np.zeros((4, 32, 32), np.float32), IDENTITY), str(frame))
    out2 = tmp_path / "out2"
    assert main(["segment", str(frame), "--model", "auto", "--out", str(out2), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert str(frame) in err and "--model cine or --model lge" in err
    assert not out2.exists()  # validated before anything is written
    cine4d = tmp_path / "cine4d.nii.gz"
    write_image(Volume(np.zeros((3, 4, 32, 32), np.float32), IDENTITY), str(cine4d))
    assert choose_model(read_image(str(cine4d)), str(cine4d))[0] == "cine"


# ----------------------------------------------------------------------------- Slicer Logic


def test_slicer_logic_scar_tables_and_model_choice(tmp_path, scene, segment_module):
    slicer = pytest.importorskip("slicer")
    from cmrrisk import mrml
    from cmrrisk.errors import CMRRiskError as Err

    img, lab, kw, m = _intensity_phantom()
    node = mrml.volume_to_node(scene, Volume(img.astype(np.float32), IDENTITY), "phantom")
    seg_node = mrml.labels_to_segmentation(scene, lab, node, "phantom seg", structures=L.LGE_LABELS)
    logic = segment_module.CMRRiskSegmentLogic()
    res = logic.scarAnalysis(seg_node, node, **kw)
    core = S.scar_report(img, lab, IDENTITY, **kw)
    seg_table = res["segmentsTable"].GetTable()
    assert seg_table.GetNumberOfRows() == 16
    cols = [seg_table.GetColumnName(c) for c in range(seg_table.GetNumberOfColumns())]
    row8 = next(r for r in range(16) if seg_table.GetValue(r, cols.index("segment")).ToDouble() == 8)
    assert seg_table.GetValue(row8, cols.index("scar_pct")).ToDouble() == pytest.approx(100)
    assert seg_table.GetValue(row8, cols.index("name")).ToString() == "mid anteroseptal"
    t = res["table"].GetTable()
    rows = {t.GetValue(r, 0).ToString(): t.GetValue(r, 1).ToDouble() for r in range(t.GetNumberOfRows())}
    assert rows["nsd5_scar_burden_pct"] == pytest.approx(core["intensity_methods"]["nsd"][2]["scar_burden_pct"], abs=1e-3)
    assert rows["n_segments_transmurality_gt50"] == core["aha"]["summary"]["n_segments_transmurality_gt50"]
    assert res["segmentsTable"].GetAttribute("CMRRisk.base_rule").startswith("argument")
    # scarTable keeps its contract: the summary table
    t2 = logic.scarTable(seg_node, node, **kw).GetTable()
    assert t2.GetValue(0, 0).ToString() == "scar_burden_pct"

    # model choice: stored DICOM metadata, DICOM database files, sequence, name, nothing
    series = _write_series(tmp_path / "s", description="SAX PSIR")
    dnode = mrml.volume_to_node(scene, read_image(str(series)), "series 5")
    assert logic.modelForVolume(dnode) == "lge"
    plain = mrml.volume_to_node(scene, Volume(np.zeros((2, 32, 32), np.float32), IDENTITY), "patient001_frame01")
    with pytest.raises(Err, match="choose the cine or lge model"):
        logic.modelForVolume(plain)
    plain.SetName("Case_P001 LGE")
    assert logic.modelForVolume(plain) == "lge"
    seq = scene.AddNewNodeByClass("vtkMRMLSequenceNode", "cine")
    assert logic.modelForVolume(seq) == "cine"
    files = {f"1.2.3.{i}": str(p) for i, p in enumerate(sorted(series.glob("*.dcm")))}

    class FakeDatabase:
        def fileForInstance(self, uid):
            return files.get(uid, "")

    other = mrml.volume_to_node(scene, Volume(np.zeros((2, 32, 32), np.float32), IDENTITY), "series 7")
    other.SetAttribute("DICOM.instanceUIDs", " ".join(files))
    old = getattr(slicer, "dicomDatabase", None)
    slicer.dicomDatabase = FakeDatabase()
    try:
        assert logic.seriesKind(other)["kind"] == "lge"
    finally:
        if old is None:
            del slicer.dicomDatabase
        else:
            slicer.dicomDatabase = old


# ----------------------------------------------------------------------------- EMIDEC


@needs_emidec
def test_emidec_reference_labels_intensity_methods_and_segments():
    """nSD / FWHM on EMIDEC's expert myocardium, compared with the expert scar. Thresholds well
    below what was measured (see the report printed with -s), well above a broken method."""
    from cmrrisk.datasets import list_emidec, read_emidec_case

    affine = np.diag([-1.0, -1.0, 1.0, 1.0])  # as the EMIDEC manifest declares: geometry unknown
    rows = []
    for c in list_emidec(str(EMIDEC)):
        img, lab = read_emidec_case(c)
        rep = S.scar_report(img, lab, affine)
        im = rep["intensity_methods"]
        rows.append((c.group, scar_burden_pct(lab), {e["n"]: e for e in im["nsd"]}, im["fwhm"],
                     im["fwhm_above_remote"], rep["aha"]))
    inf = [r for r in rows if r[0] == "infarct"]
    nor = [r for r in rows if r[0] == "normal"]
    ref = np.array([r[1] for r in inf])
    out = {}
    for name, get in [(f"nsd{n}", (lambda r, n=n: r[2][n])) for n in (2, 3, 5, 6)] + [
            ("fwhm", lambda r: r[3]), ("fwhm_above_remote", lambda r: r[4])]:
        b = np.array([get(r)["scar_burden_pct"] for r in inf])
        out[name] = {"burden_mean": b.mean(), "r": np.corrcoef(b, ref)[0, 1],
                     "dice_mean": np.mean([get(r)["dice_vs_dl"] for r in inf]),
                     "normal_burden_mean": np.mean([get(r)["scar_burden_pct"] for r in nor])}
    print("\nEMIDEC reference burden mean (infarct)", round(ref.mean(), 2))
    for k, v in out.items():
        print(k, {kk: round(float(vv), 3) for kk, vv in v.items()})
    assert out["nsd3"]["dice_mean"] > 0.5 and out["nsd3"]["r"] > 0.4
    assert out["fwhm_above_remote"]["dice_mean"] > 0.5 and out["fwhm_above_remote"]["r"] > 0.4
    # more SDs, less scar: strictly fewer voxels on average
    assert out["nsd2"]["burden_mean"] > out["nsd3"]["burden_mean"] > out["nsd5"]["burden_mean"] > out["nsd6"]["burden_mean"]
    assert out["nsd6"]["normal_burden_mean"] < 5
    assert all(r[4]["scar_ml"] == 0 for r in nor)  # no reference scar: no FWHM region
    # EMIDEC slices run apex -> base (cavity grows): the unknown-geometry rule finds the base last
    assert all(r[5]["base_slice"] == max(s["slice"] for s in r[5]["slices"]) for r in rows)
    assert all(r[5]["approximate"] for r in rows)
    assert np.mean([r[5]["summary"]["n_segments_with_scar"] for r in inf]) >= 2
    assert all(r[5]["summary"]["n_segments_with_scar"] == 0 for r in nor)


def test_module_self_test_scar_method_runs_headless(scene, segment_module):
    """The Slicer self-test's scar check, run against the real MRML scene with unittest asserts."""
    import unittest

    case = unittest.TestCase()
    t = segment_module.CMRRiskSegmentTest()
    t.delayDisplay = lambda *a, **k: None
    for name in ("assertEqual", "assertAlmostEqual", "assertTrue"):
        setattr(t, name, getattr(case, name))
    t.test_scar_tables()
