import os

import nibabel as nib
import numpy as np
import pytest

from cmrrisk.errors import CMRRiskError
from cmrrisk.image import Volume, read_image, stem, write_image

from conftest import needs_acdc, acdc_frame


def _affine():
    a = np.array([[0.0, -1.4, 0.2, 12.0], [1.4, 0.0, 0.1, -30.0], [0.0, 0.1, 8.0, 55.0], [0, 0, 0, 1]])
    return a


def test_nifti_round_trip_keeps_shape_and_affine(tmp_path):
    data = np.random.default_rng(0).integers(0, 500, (40, 30, 6)).astype(np.int16)  # (i, j, k)
    p = tmp_path / "img.nii.gz"
    nib.save(nib.Nifti1Image(data, _affine()), p)
    vol = read_image(str(p))
    assert vol.array.shape == (6, 30, 40)
    assert np.array_equal(vol.array, data.transpose(2, 1, 0))
    out = tmp_path / "out.nii.gz"
    write_image(vol.with_array((vol.array > 250).astype(np.uint8)), str(out))
    back = nib.load(out)
    assert back.shape == data.shape
    assert np.allclose(back.affine, _affine(), atol=1e-5)
    assert [f for f in os.listdir(tmp_path) if f.startswith(".")] == []


def test_4d_nifti_round_trip(tmp_path):
    data = np.random.default_rng(1).random((20, 24, 5, 7)).astype(np.float32)
    p = tmp_path / "cine.nii"
    nib.save(nib.Nifti1Image(data, _affine()), p)
    vol = read_image(str(p))
    assert vol.is_cine and vol.array.shape == (7, 5, 24, 20)
    write_image(vol.with_array(np.zeros(vol.array.shape, np.uint8)), str(tmp_path / "seg.nii.gz"))
    back = nib.load(tmp_path / "seg.nii.gz")
    assert back.shape == data.shape and np.allclose(back.affine, _affine(), atol=1e-5)


def test_nrrd_geometry_matches_nifti(tmp_path):
    data = np.random.default_rng(2).random((32, 28, 4)).astype(np.float32)
    pn = tmp_path / "a.nii.gz"
    nib.save(nib.Nifti1Image(data, _affine()), pn)
    v = read_image(str(pn))
    v.nifti_header = None
    write_image(v, str(tmp_path / "a.nrrd"))
    w = read_image(str(tmp_path / "a.nrrd"))
    assert np.allclose(w.ijk_to_ras, v.ijk_to_ras, atol=1e-5)
    assert np.allclose(w.array, v.array)


@needs_acdc
def test_acdc_inconsistent_sform_uses_pixdim_like_itk():
    import SimpleITK as sitk

    path = acdc_frame("patient001", "ed")
    vol = read_image(path)
    itk = sitk.ReadImage(path)
    assert np.allclose(vol.spacing, itk.GetSpacing(), atol=1e-4)


def test_stem_names():
    assert stem("/x/patient101_frame01.nii.gz") == "patient101_frame01"
    assert stem("/x/a.nrrd") == "a"


@pytest.mark.parametrize("case", ["missing", "2d", "nan", "ext", "corrupt"])
def test_bad_input_names_the_file(tmp_path, case):
    p = tmp_path / "bad.nii.gz"
    if case == "missing":
        p = tmp_path / "nothere.nii.gz"
    elif case == "2d":
        nib.save(nib.Nifti1Image(np.zeros((64, 64), np.float32), np.eye(4)), p)
    elif case == "nan":
        a = np.ones((64, 64, 3), np.float32)
        a[3, 3, 1] = np.nan
        nib.save(nib.Nifti1Image(a, np.eye(4)), p)
    elif case == "ext":
        p = tmp_path / "bad.png"
        p.write_bytes(b"x")
    elif case == "corrupt":
        p.write_bytes(b"not a nifti file at all")
    with pytest.raises(CMRRiskError) as e:
        read_image(str(p))
    assert str(p) in str(e.value)


def test_write_failure_leaves_nothing(tmp_path):
    vol = Volume(np.zeros((2, 20, 20), np.uint8), np.eye(4))
    with pytest.raises(CMRRiskError):
        write_image(vol, str(tmp_path / "x.png"))
    assert os.listdir(tmp_path) == []
