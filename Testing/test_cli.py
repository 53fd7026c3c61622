"""The command line end to end: outputs, geometry, segment.json, evaluation, bad input."""

import json
import os
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest

from cmrrisk.cli import main

from conftest import ACDC, SUNNYBROOK, acdc_frame, needs_acdc, needs_sunnybrook


def _affine_of(path):
    from cmrrisk.image import read_image

    return read_image(str(path)).ijk_to_ras


@needs_acdc
def test_segment_frame_and_cine_keep_shape_and_geometry(tmp_path):
    frame = acdc_frame("patient090", "ed")
    cine = str(ACDC / "patient090" / "patient090_4d.nii.gz")
    out = tmp_path / "out"
    assert main(["segment", frame, cine, "--out", str(out), "--quiet"]) == 0
    f_out = out / (os.path.basename(frame).replace(".nii.gz", "_seg.nii.gz"))
    c_out = out / "patient090_4d_seg.nii.gz"
    for src, dst in ((frame, f_out), (cine, c_out)):
        a, b = nib.load(src), nib.load(dst)
        assert a.shape == b.shape
        assert np.allclose(a.affine, b.affine, atol=1e-5)
        assert np.allclose(_affine_of(src), _affine_of(dst), atol=1e-5)
        assert set(np.unique(np.asarray(b.dataobj))) <= {0, 1, 2, 3}
    rep = json.loads((out / "segment.json").read_text())
    assert [e["kind"] for e in rep["inputs"]] == ["frame", "cine"]
    assert rep["inputs"][1]["shape"] == list(reversed(nib.load(cine).shape))
    assert 0 <= rep["inputs"][1]["ed_phase"] < nib.load(cine).shape[3]
    assert "lv_ef_pct" in rep["inputs"][1]["indices"]
    assert rep["model"]["weights_sha256"]
    assert all(isinstance(e["flags"], list) for e in rep["inputs"])


@needs_sunnybrook
def test_segment_dicom_folder_writes_4d_named_after_folder(tmp_path):
    folder = SUNNYBROOK / "SCD0000101"
    out = tmp_path / "out"
    assert main(["segment", str(folder), "--out", str(out), "--quiet"]) == 0
    img = nib.load(out / "SCD0000101_seg.nii.gz")
    assert img.shape == (256, 256, 12, 20)
    from cmrrisk.image import read_image

    src = read_image(str(folder))
    assert np.allclose(img.affine, src.ijk_to_ras, atol=1e-4)
    rep = json.loads((out / "segment.json").read_text())
    assert rep["inputs"][0]["metadata"]["manufacturer"].startswith("GE")


@needs_acdc
def test_evaluate_segmentation_against_acdc_reference(tmp_path, capsys):
    out = tmp_path / "pred"
    subj = "patient001"
    frames = [acdc_frame(subj, "ed"), acdc_frame(subj, "es")]
    assert main(["segment", *frames, "--out", str(out), "--quiet"]) == 0
    js = tmp_path / "eval.json"
    assert main(["evaluate-segmentation", "--pred", str(out), "--ref", str(ACDC / subj),
                 "--ref-labels", "acdc", "--json", str(js)]) == 0
    res = json.loads(js.read_text())
    assert len(res["frames"]) == 2
    assert res["subjects"][0]["subject"] == subj
    for key in ("lv_edv_ml", "lv_esv_ml", "lv_ef_pct", "lv_mass_g", "rv_edv_ml", "rv_esv_ml", "rv_ef_pct"):
        assert key in res["subjects"][0]["indices_ref"]
    # reference against itself: perfect scores, so the comparison is not trivially high
    ref_dir = tmp_path / "refcopy"
    ref_dir.mkdir()
    from cmrrisk import labels as L
    from cmrrisk.image import read_image, write_image

    for f in frames:
        gt = read_image(f.replace(".nii.gz", "_gt.nii.gz"))
        write_image(gt.with_array(L.map_labels(gt.array, L.ACDC_TO_PROJECT)),
                    str(ref_dir / os.path.basename(f).replace(".nii.gz", "_seg.nii.gz")))
    js2 = tmp_path / "self.json"
    assert main(["evaluate-segmentation", "--pred", str(ref_dir), "--ref", str(ACDC / subj),
                 "--ref-labels", "acdc", "--json", str(js2)]) == 0
    self_res = json.loads(js2.read_text())
    assert all(m["dice"] == 1.0 for f in self_res["frames"] for m in f["metrics"].values())
    assert self_res["summary"]["lv_ef_pct_error"]["mae"] == 0.0


def _run_cli(*args):
    return subprocess.run([sys.executable, "-m", "cmrrisk", *args], capture_output=True, text=True)


@pytest.mark.parametrize("case", ["missing", "2d", "nan"])
def test_bad_input_exits_nonzero_names_file_and_writes_nothing(tmp_path, case):
    good = tmp_path / "good.nii.gz"
    nib.save(nib.Nifti1Image(np.random.default_rng(0).random((64, 64, 4)).astype(np.float32), np.eye(4)), good)
    bad = tmp_path / "bad.nii.gz"
    if case == "2d":
        nib.save(nib.Nifti1Image(np.zeros((64, 64), np.float32), np.eye(4)), bad)
    elif case == "nan":
        a = np.ones((64, 64, 3), np.float32)
        a[0, 0, 0] = np.nan
        nib.save(nib.Nifti1Image(a, np.eye(4)), bad)
    out = tmp_path / "out"
    r = _run_cli("segment", str(good), str(bad), "--out", str(out), "--quiet")
    assert r.returncode == 2
    assert str(bad) in r.stderr
    assert "Traceback" not in r.stderr
    assert not out.exists() or os.listdir(out) == []


@needs_sunnybrook
def test_dicom_folder_with_mixed_series_is_refused(tmp_path):
    import shutil
    import warnings

    import pydicom

    folder = tmp_path / "mixed"
    folder.mkdir()
    for name in ("1.dcm", "2.dcm", "3.dcm"):
        shutil.copy(SUNNYBROOK / "SCD0000101" / name, folder / name)
    shutil.copy(SUNNYBROOK / "SCD0000201" / "1.dcm", folder / "other.dcm")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pydicom.dcmread(folder / "other.dcm")  # readable: the refusal is about mixing series
    r = _run_cli("segment", str(folder), "--out", str(tmp_path / "out"), "--quiet")
    assert r.returncode == 2 and "series" in r.stderr and str(folder) in r.stderr
    assert not (tmp_path / "out").exists()


def test_unknown_model_is_a_clear_error(tmp_path):
    good = tmp_path / "good.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((64, 64, 4), np.float32), np.eye(4)), good)
    r = _run_cli("segment", str(good), "--out", str(tmp_path / "o"), "--model", "nosuchmodel")
    assert r.returncode == 2 and "nosuchmodel" in r.stderr


def test_blank_image_is_flagged_not_silently_passed(tmp_path):
    img = tmp_path / "blank.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((96, 96, 6), np.float32), np.diag([1.5, 1.5, 8, 1])), img)
    out = tmp_path / "out"
    assert main(["segment", str(img), "--out", str(out), "--quiet"]) == 0
    rep = json.loads((out / "segment.json").read_text())
    assert rep["inputs"][0]["flags"], "an image without a heart must carry a quality flag"
