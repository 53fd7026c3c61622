"""Cohort manifests and features: manifest validation, clinical indices, radiomics,
deep features, the cohort runner (parallel, cache, failures, provenance), the CLI and the
CMRRiskPredict Logic against a real MRML scene."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import ACDC, ROOT, SUNNYBROOK, acdc_frame, needs_acdc, needs_sunnybrook, validation_subjects

from cmrrisk import labels as L
from cmrrisk.errors import CMRRiskError
from cmrrisk.image import Volume, read_image, write_image
from cmrrisk.manifest import acdc_manifest, mosteller_bsa, read_manifest

SPACING = (1.5, 1.5, 8.0)
AFFINE = np.diag([-SPACING[0], -SPACING[1], SPACING[2], 1.0])


def phantom(lv_radius=12.0, wall=5.0, shape=(8, 72, 72), rv=True, noise=0.0, seed=0):
    """A short-axis-like frame: bright LV blood pool, darker myocardial ring, RV crescent."""
    zz, yy, xx = np.mgrid[:shape[0], :shape[1], :shape[2]]
    r = np.hypot(yy - 36, xx - 36)
    inside = (zz > 0) & (zz < shape[0] - 1)
    lab = np.zeros(shape, np.uint8)
    if rv:
        rv_r = np.hypot(yy - 36, xx - 36 - lv_radius - wall - 6)
        lab[(rv_r < lv_radius) & inside & (r >= lv_radius + wall)] = L.RV_BLOOD_POOL
    lab[(r < lv_radius + wall) & inside] = L.LV_MYOCARDIUM
    lab[(r < lv_radius) & inside] = L.LV_BLOOD_POOL
    img = np.where(lab == L.LV_BLOOD_POOL, 300.0, 0) + np.where(lab == L.RV_BLOOD_POOL, 260.0, 0) \
        + np.where(lab == L.LV_MYOCARDIUM, 90.0, 0) + 30.0
    img = img + np.random.default_rng(seed).normal(0, noise, shape) if noise else img
    return img.astype(np.float32), lab


def write_subject(folder, name, ed_radius=12.0, es_radius=8.0, seed=0):
    out = {}
    for ph, rad in (("ed", ed_radius), ("es", es_radius)):
        img, lab = phantom(rad, noise=5.0, seed=seed)
        p_img = os.path.join(folder, f"{name}_{ph}.nii.gz")
        p_seg = os.path.join(folder, f"{name}_{ph}_seg.nii.gz")
        write_image(Volume(img, AFFINE), p_img)
        write_image(Volume(lab, AFFINE), p_seg)
        out[f"cine_{ph}"], out[f"cine_{ph}_seg"] = os.path.basename(p_img), os.path.basename(p_seg)
    return out


def write_manifest(path, rows):
    cols = []
    for r in rows:
        for c in r:
            if c not in cols:
                cols.append(c)
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)


# -------------------------------------------------------------------------------- manifest

def test_manifest_problems_name_line_and_column(tmp_path):
    sub = write_subject(str(tmp_path), "s1")
    write_manifest(tmp_path / "m.csv", [
        dict(subject="s1", **sub, height_cm="170", event="1", time="3.5"),
        dict(subject="s1", **sub, height_cm="tall", event="2", time="1"),
        dict(subject="", cine_ed="missing.nii.gz", cine_es=sub["cine_es"], height_cm="", event="0", time="-1"),
    ])
    with pytest.raises(CMRRiskError) as e:
        read_manifest(str(tmp_path / "m.csv"))
    msg = str(e.value)
    assert "line 3, column subject: 's1' already used on line 2" in msg
    assert "line 3, column height_cm: 'tall' is not a number" in msg
    assert "line 3, column event: '2'" in msg
    assert "line 4, column subject: empty" in msg
    assert "line 4, column cine_ed: missing.nii.gz does not exist" in msg
    assert "line 4, column time: -1 is negative" in msg


def test_manifest_paths_are_relative_to_its_folder(tmp_path, monkeypatch):
    sub = write_subject(str(tmp_path), "s1")
    write_manifest(tmp_path / "m.csv", [dict(subject="s1", **sub, age="61")])
    monkeypatch.chdir(ROOT)  # not the manifest's folder
    man = read_manifest(str(tmp_path / "m.csv"), require_images=True)
    assert man.rows[0]["cine_ed"] == str(tmp_path / sub["cine_ed"])
    assert man.covariate_columns() == ["age"]
    write_manifest(tmp_path / "n.csv", [dict(subject="s1", age="61")])
    with pytest.raises(CMRRiskError, match="no image column"):
        read_manifest(str(tmp_path / "n.csv"), require_images=True)


@needs_acdc
def test_acdc_manifest(tmp_path):
    out = tmp_path / "sub" / "acdc.csv"
    out.parent.mkdir()
    rows = acdc_manifest(str(ACDC), str(out))
    assert len(rows) == 100
    man = read_manifest(str(out), require_images=True)
    r = man.rows[0]
    assert r["subject"] == "patient001" and r["label"] == "DCM" and r["seg_labels"] == "acdc"
    assert os.path.samefile(r["cine_ed"], ACDC / "patient001" / "patient001_frame01.nii.gz")
    assert not os.path.isabs(rows[0]["cine_ed"])  # written relative
    assert float(r["bsa_m2"]) == pytest.approx(mosteller_bsa(184.0, 95.0), abs=1e-3)
    assert {x["label"] for x in man.rows} == {"NOR", "MINF", "DCM", "HCM", "RV"}


@needs_sunnybrook
def test_sunnybrook_manifest(tmp_path):
    from cmrrisk.manifest import sunnybrook_manifest

    out = tmp_path / "sb.csv"
    rows = sunnybrook_manifest(str(SUNNYBROOK.parent), str(out))
    assert [r["subject"] for r in rows] == ["SCD0000101", "SCD0000201"]
    man = read_manifest(str(out), require_images=True)
    assert all(os.path.isdir(r["cine"]) for r in man.rows)
    assert not os.path.isabs(rows[0]["cine"])
    assert {r["manufacturer"] for r in man.rows} == {"GE MEDICAL SYSTEMS"}
    assert {float(r["field_strength_t"]) for r in man.rows} == {1.5}
    with pytest.raises(CMRRiskError, match="no 'dicoms' folder"):
        sunnybrook_manifest(str(tmp_path), str(tmp_path / "x.csv"))


# -------------------------------------------------------------------------------- indices

def test_wall_thickness_of_a_ring_and_a_thicker_sector():
    from cmrrisk.features.indices import max_wall_thickness_mm

    _, lab = phantom(12.0, 5.0, rv=False)  # wall of 5 pixels = 7.5 mm
    t = max_wall_thickness_mm(lab, SPACING)
    assert t == pytest.approx(7.5, abs=1.0)
    # thicken a septal bulge of 90 degrees to 9 pixels (13.5 mm)
    zz, yy, xx = np.mgrid[:lab.shape[0], :lab.shape[1], :lab.shape[2]]
    r = np.hypot(yy - 36, xx - 36)
    bulge = (xx < 36) & (np.abs(yy - 36) < (36 - xx)) & (r < 21) & (lab == 0) & (zz > 0) & (zz < 7)
    lab2 = lab.copy()
    lab2[bulge] = L.LV_MYOCARDIUM
    assert max_wall_thickness_mm(lab2, SPACING) == pytest.approx(13.5, abs=1.5)
    assert np.isnan(max_wall_thickness_mm(np.zeros_like(lab), SPACING))


def test_cine_indices_names_and_indexing():
    from cmrrisk.features.indices import cine_indices

    _, ed = phantom(12.0)
    _, es = phantom(8.0)
    v = np.prod(SPACING) / 1000
    out = cine_indices(ed, es, SPACING, bsa_m2=2.0)
    assert out["lv_edv_ml"] == pytest.approx((ed == 1).sum() * v)
    assert out["lv_sv_ml"] == pytest.approx(out["lv_edv_ml"] - out["lv_esv_ml"])
    assert out["lv_ef_pct"] == pytest.approx(100 * out["lv_sv_ml"] / out["lv_edv_ml"])
    assert out["lv_mass_g"] == pytest.approx((ed == 2).sum() * v * 1.05)
    assert out["lv_edv_ml_m2"] == pytest.approx(out["lv_edv_ml"] / 2.0)
    assert out["lv_mass_g_m2"] == pytest.approx(out["lv_mass_g"] / 2.0)
    assert "lv_edv_ml_m2" not in cine_indices(ed, es, SPACING)


# -------------------------------------------------------------------------------- radiomics

def test_radiomics_names_values_and_small_regions():
    from cmrrisk.features import radiomics as R

    img, lab = phantom(12.0, noise=10.0)
    f = R.region_features(img, lab, AFFINE, R.CINE_REGIONS, "ed")
    lv_vol_mm3 = (lab == L.LV_BLOOD_POOL).sum() * np.prod(SPACING)
    assert f["lv_bp_ed_original_shape_VoxelVolume"] == pytest.approx(lv_vol_mm3, rel=0.02)
    assert "lv_myo_ed_original_glcm_Contrast" in f and "rv_bp_ed_original_firstorder_Mean" in f
    assert {R.feature_class(k) for k in f} >= {"shape", "firstorder", "glcm", "glrlm", "glszm", "gldm", "ngtdm"}
    # blood pool is brighter than myocardium after normalisation
    assert f["lv_bp_ed_original_firstorder_Mean"] > f["lv_myo_ed_original_firstorder_Mean"]
    assert f == R.region_features(img, lab, AFFINE, R.CINE_REGIONS, "ed")  # deterministic
    tiny = np.zeros_like(lab)
    tiny[3, 30:33, 30:33] = L.RV_BLOOD_POOL  # 9 voxels < minimumROISize
    assert R.region_features(img, tiny, AFFINE, R.CINE_REGIONS, "ed") == {}
    # large enough here, too small after pyradiomics resamples it to 1.5 mm: skipped, not an error
    fine = np.diag([-1.0, -1.0, 10.0, 1.0])
    small = np.zeros_like(lab)
    small[3, 30:35, 30:35] = L.RV_BLOOD_POOL  # 25 voxels of 1 mm -> about 11 of 1.5 mm
    assert R.region_features(img, small, fine, R.CINE_REGIONS, "ed") == {}


def test_bad_radiomics_parameter_file(tmp_path):
    from cmrrisk.features import radiomics as R

    p = tmp_path / "p.yaml"
    p.write_text("setting:\n  binCount: [not, a, number]\nfeatureClass:\n  nosuchclass:\n")
    with pytest.raises(CMRRiskError, match="p.yaml"):
        R.extractor(str(p))


# -------------------------------------------------------------------------------- deep

def test_deep_features_from_segmentation_pass_equal_separate_pass(segmenter):
    from cmrrisk.features import deep

    img, _ = phantom(12.0, noise=5.0)
    sp = SPACING[:2]
    with deep.capture_encoder(segmenter) as cap:
        got = segmenter.predict_frame_detailed(img, sp)
    seg = got.labels
    v1 = deep.pool(deep.captured_for_frame(got, cap),
                   deep.resampled_box(segmenter, img.shape, sp), seg)
    v2 = deep.embedding(segmenter, img, seg, sp, reverse=got.reversed)
    assert v1.shape == (256,)
    np.testing.assert_allclose(v1, v2, rtol=1e-4, atol=1e-5)
    assert np.array_equal(v2, deep.embedding(segmenter, img, seg, sp, reverse=got.reversed))
    img2, _ = phantom(16.0, noise=5.0)
    assert not np.allclose(v2, deep.embedding(segmenter, img2, seg, sp))


@needs_acdc
def test_features_of_a_stack_given_apex_first_equal_those_of_the_base_first_stack():
    """The cine model reads an apex-first stack in its training order (base first): indices and
    deep features (captured from the segmentation pass, or computed separately on given labels)
    are those of the base-first stack."""
    from cmrrisk.features import deep
    from cmrrisk.features.cohort import segmenter, image_features
    from cmrrisk.study import Study

    subj = validation_subjects()[2]
    vols = {ph: read_image(acdc_frame(subj, ph)) for ph in ("ed", "es")}
    flipped = {ph: v.with_array(np.ascontiguousarray(v.array[::-1])) for ph, v in vols.items()}
    opts = {"radiomics": False, "deep": True}
    a = image_features(Study(ed=vols["ed"], es=vols["es"]), options=opts)
    b = image_features(Study(ed=flipped["ed"], es=flipped["es"]), options=opts)
    assert a.keys() == b.keys() and "deep_ed_000" in a
    for k in a:
        assert b[k] == pytest.approx(a[k], rel=1e-4, abs=1e-5), k
    seg_model = segmenter("cine", "cpu")
    seg = seg_model.predict_frame(vols["ed"].array, vols["ed"].spacing[:2])
    v1 = deep.embedding(seg_model, vols["ed"].array, seg, vols["ed"].spacing[:2])
    v2 = deep.embedding(seg_model, flipped["ed"].array, np.ascontiguousarray(seg[::-1]), vols["ed"].spacing[:2])
    np.testing.assert_allclose(v1, v2, rtol=1e-4, atol=1e-5)


# -------------------------------------------------------------------------------- cohort

def test_cohort_features_cache_failures_and_provenance(tmp_path):
    from cmrrisk.features.cohort import compute_cohort, write_features

    rows = [dict(subject="a", **write_subject(str(tmp_path), "a", 12, 8, 0), age="60", event="1", time="2.0"),
            dict(subject="b", **write_subject(str(tmp_path), "b", 14, 11, 1), age="70", event="0", time="5.0")]
    bad = dict(rows[1], subject="c")
    bad["cine_es"] = "c_es.nii.gz"
    img, _ = phantom(8.0, shape=(6, 72, 72))
    write_image(Volume(img, AFFINE), str(tmp_path / "c_es.nii.gz"))  # 6 slices vs 8: shapes differ
    write_manifest(tmp_path / "m.csv", rows + [bad])
    out = str(tmp_path / "features.csv")
    prov = write_features(str(tmp_path / "m.csv"), out, workers=1, options={"deep": False}, progress=False)
    assert prov["n_failed"] == 1 and prov["failures"][0]["subject"] == "c"
    assert "differ in shape" in prov["failures"][0]["error"]
    with open(out) as fh:
        table = list(csv.DictReader(fh))
    assert [r["subject"] for r in table] == ["a", "b"]
    header = list(table[0])
    assert header[:4] == ["subject", "age", "event", "time"]
    assert "lv_ef_pct" in header and "lv_myo_es_original_glcm_Contrast" in header
    a_lab_ed = read_image(str(tmp_path / "a_ed_seg.nii.gz")).array
    assert float(table[0]["lv_edv_ml"]) == pytest.approx((a_lab_ed == 1).sum() * np.prod(SPACING) / 1000)
    pj = json.load(open(str(tmp_path / "features.provenance.json")))
    assert pj["models"]["cine"] and pj["software"]["radiomics"] and "binCount" in pj["radiomics_params"]
    assert pj["subjects"]["a"]["segmentation"] == {"ed": "reference", "es": "reference"}
    # a rerun takes everything from the cache; changing one file recomputes that subject only
    _, prov2 = compute_cohort(str(tmp_path / "m.csv"), str(tmp_path / "features_cache"), 1,
                              {"deep": False}, progress=False, subjects=["a", "b"])
    assert prov2["n_cached"] == 2 and prov2["n_computed"] == 0
    img, _ = phantom(13.0, noise=5.0, seed=3)
    write_image(Volume(img, AFFINE), str(tmp_path / "b_ed.nii.gz"))
    _, prov3 = compute_cohort(str(tmp_path / "m.csv"), str(tmp_path / "features_cache"), 1,
                              {"deep": False}, progress=False, subjects=["a", "b"])
    assert prov3["n_cached"] == 1 and prov3["n_computed"] == 1


def test_parallel_workers_give_the_same_table(tmp_path):
    from cmrrisk.features.cohort import compute_cohort

    rows = [dict(subject=f"s{i}", **write_subject(str(tmp_path), f"s{i}", 11 + i, 8, i)) for i in range(2)]
    write_manifest(tmp_path / "m.csv", rows)
    r1, _ = compute_cohort(str(tmp_path / "m.csv"), None, 1, {"radiomics": False}, progress=False)
    r2, p2 = compute_cohort(str(tmp_path / "m.csv"), None, 2, {"radiomics": False}, progress=False)
    assert p2["workers"] == 2
    for a, b in zip(r1, r2):
        assert a["subject"] == b["subject"]
        np.testing.assert_allclose([a["features"][k] for k in a["features"]],
                                   [b["features"][k] for k in a["features"]], rtol=1e-5, atol=1e-6)


def test_features_for_manifest_dataframe(tmp_path):
    from cmrrisk.features.cohort import features_for_manifest

    write_manifest(tmp_path / "m.csv", [dict(subject="a", **write_subject(str(tmp_path), "a"))])
    df = features_for_manifest(str(tmp_path / "m.csv"), progress=False, workers=1)
    assert list(df.index) == ["a"] and df.index.name == "subject"
    assert df.shape[1] > 500 and df.dtypes.unique().tolist() == [np.dtype(float)]
    assert "deep_ed_000" in df.columns
    cache = tmp_path / "m_features_cache"  # default cache beside the manifest
    assert cache.is_dir() and len(list(cache.glob("*.json"))) == 1
    again = features_for_manifest(str(tmp_path / "m.csv"), progress=False, workers=1)
    assert again.attrs["provenance"]["n_cached"] == 1
    assert again.equals(df)


def test_cli_features_and_bad_manifest(tmp_path):
    write_manifest(tmp_path / "m.csv", [dict(subject="a", **write_subject(str(tmp_path), "a"))])
    cmd = [sys.executable, "-m", "cmrrisk", "features", str(tmp_path / "m.csv"), "--out",
           str(tmp_path / "f.csv"), "--quiet", "--no-radiomics", "--workers", "1"]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert os.path.isfile(tmp_path / "f.csv") and "1 subjects" in res.stdout
    (tmp_path / "bad.csv").write_text("subject,cine_ed,cine_es\nx,nope.nii.gz,nope2.nii.gz\n")
    res = subprocess.run(cmd[:4] + [str(tmp_path / "bad.csv"), "--out", str(tmp_path / "g.csv")],
                         capture_output=True, text=True)
    assert res.returncode == 2
    assert "line 2, column cine_ed: nope.nii.gz does not exist" in res.stderr
    assert not os.path.exists(tmp_path / "g.csv")


@needs_acdc
def test_acdc_indices_from_model_agree_with_reference(tmp_path):
    """Two validation subjects (never trained on): indices from the bundled model's segmentation
    vs from the reference labels."""
    from cmrrisk.features.cohort import subject_features

    out = tmp_path / "acdc.csv"
    acdc_manifest(str(ACDC), str(out))
    man = read_manifest(str(out))
    val = validation_subjects()[:2]
    for row in (r for r in man.rows if r["subject"] in val):
        ref, _ = subject_features(row, {"radiomics": False, "deep": False})
        auto_row = dict(row, cine_ed_seg="", cine_es_seg="")
        auto, info = subject_features(auto_row, {"radiomics": False, "deep": False})
        assert info["segmentation"] == {"ed": "model cine", "es": "model cine (anchored to ED)"}
        assert abs(auto["lv_ef_pct"] - ref["lv_ef_pct"]) <= 8.0, row["subject"]
        assert abs(auto["lv_edv_ml"] - ref["lv_edv_ml"]) <= 0.15 * ref["lv_edv_ml"], row["subject"]
        assert auto["lv_edv_ml_m2"] == pytest.approx(auto["lv_edv_ml"] / float(row["bsa_m2"]))


# -------------------------------------------------------------------------------- Slicer

def test_predict_logic_features_table_in_scene(scene, predict_module):
    from cmrrisk import mrml

    nodes = {}
    labs = {}
    for ph, rad in (("ed", 12.0), ("es", 8.0)):
        img, lab = phantom(rad, noise=5.0)
        vol = mrml.volume_to_node(scene, Volume(img, AFFINE), f"study {ph}")
        nodes[ph] = (vol, mrml.labels_to_segmentation(scene, lab, vol, f"{ph} seg"))
        labs[ph] = lab
    logic = predict_module.CMRRiskPredictLogic()
    table = logic.computeFeatures(nodes["ed"][0], nodes["es"][0], nodes["ed"][1], nodes["es"][1],
                                  bsa=1.8, deep=False)
    assert table.IsA("vtkMRMLTableNode")
    cols = [table.GetColumnName(i) for i in range(table.GetNumberOfColumns())]
    assert cols == ["feature", "region", "phase", "class", "value"]
    rows = {table.GetCellText(i, 0): [table.GetCellText(i, j) for j in range(1, 5)]
            for i in range(table.GetNumberOfRows())}
    v = np.prod(SPACING) / 1000
    assert float(rows["lv_edv_ml"][3]) == pytest.approx((labs["ed"] == 1).sum() * v, rel=1e-4)
    assert rows["lv_edv_ml"][:3] == ["lv_bp", "ed", "clinical"]
    assert rows["lv_myo_es_original_glcm_Contrast"][:3] == ["lv_myo", "es", "radiomics glcm"]
    assert float(rows["lv_edv_ml_m2"][3]) == pytest.approx(float(rows["lv_edv_ml"][3]) / 1.8, rel=1e-4)
    with pytest.raises(ValueError, match="both the ED and the ES"):
        logic.computeFeatures(nodes["ed"][0], None)


@needs_acdc
def test_predict_logic_segments_when_no_segmentation_is_given(scene, predict_module):
    from cmrrisk import mrml

    subject = validation_subjects()[0]
    from conftest import acdc_frame

    vols = {ph: mrml.volume_to_node(scene, read_image(acdc_frame(subject, ph)), f"{subject} {ph}")
            for ph in ("ed", "es")}
    n_seg = scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode")
    table = predict_module.CMRRiskPredictLogic().computeFeatures(vols["ed"], vols["es"], radiomics=False)
    assert scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode") == n_seg + 2
    names = [table.GetCellText(i, 0) for i in range(table.GetNumberOfRows())]
    assert "lv_ef_pct" in names and "deep_es_255" in names
    ef = float(table.GetCellText(names.index("lv_ef_pct"), 4))
    assert 10 < ef < 85


def test_radiomics_without_provenance_gives_the_same_features():
    """The extractor skips pyradiomics' diagnostics (a speed-up); the features must be exactly
    those computed with the diagnostics on (which are then dropped)."""
    from cmrrisk.features import radiomics as R

    img, lab = phantom(12.0, noise=10.0)
    ex = R.extractor()
    assert ex.settings["additionalInfo"] is False
    fast = R.region_features(img, lab, AFFINE, R.CINE_REGIONS, "ed")
    try:
        ex.addProvenance(True)
        slow = R.region_features(img, lab, AFFINE, R.CINE_REGIONS, "ed")
    finally:
        ex.addProvenance(False)
    assert len(fast) > 100 and not any("diagnostics" in k for k in fast)
    assert fast.keys() == slow.keys()
    assert all(fast[k] == slow[k] or (np.isnan(fast[k]) and np.isnan(slow[k])) for k in fast)
