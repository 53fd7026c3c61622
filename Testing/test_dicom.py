"""DICOM cine input on the real GE series in ../shared/data/sunnybrook, and bad folders."""

import shutil
import warnings

import numpy as np
import pydicom
import pytest

from cmrrisk.errors import CMRRiskError
from cmrrisk.image import LPS_RAS, read_image

from conftest import SUNNYBROOK, needs_sunnybrook

SERIES = SUNNYBROOK / "SCD0000101"


def _headers(folder):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [(p, pydicom.dcmread(p, stop_before_pixels=True)) for p in sorted(folder.glob("*.dcm"))]


@needs_sunnybrook
def test_sunnybrook_cine_geometry_agrees_with_headers():
    vol = read_image(str(SERIES))
    hdrs = _headers(SERIES)
    ds0 = hdrs[0][1]
    n_phases = int(ds0.CardiacNumberOfImages)
    iop = np.asarray(ds0.ImageOrientationPatient, float)
    normal = np.cross(iop[:3], iop[3:])
    pos = sorted({round(float(np.dot(np.asarray(d.ImagePositionPatient, float), normal)), 2) for _, d in hdrs})
    assert vol.is_cine
    assert vol.array.shape == (n_phases, len(pos), int(ds0.Rows), int(ds0.Columns)) == (20, 12, 256, 256)
    sx, sy, sz = vol.spacing
    assert sx == pytest.approx(float(ds0.PixelSpacing[1]), abs=1e-4)
    assert sy == pytest.approx(float(ds0.PixelSpacing[0]), abs=1e-4)
    assert sz == pytest.approx(float(np.median(np.diff(pos))), abs=0.02)
    assert sz == pytest.approx(float(ds0.SpacingBetweenSlices), abs=0.02)
    # directions: rows along IOP[0:3], columns along IOP[3:6], in RAS
    d = vol.ijk_to_ras[:3, :3] / np.array(vol.spacing)
    assert np.allclose(d[:, 0], LPS_RAS[:3, :3] @ iop[:3], atol=1e-4)
    assert np.allclose(d[:, 1], LPS_RAS[:3, :3] @ iop[3:], atol=1e-4)
    # origin: the first slice's ImagePositionPatient
    first = min(hdrs, key=lambda h: float(np.dot(np.asarray(h[1].ImagePositionPatient, float), normal)))
    assert np.allclose(vol.ijk_to_ras[:3, 3], LPS_RAS[:3, :3] @ np.asarray(first[1].ImagePositionPatient, float), atol=1e-3)
    # phases sorted by TriggerTime
    assert np.all(np.diff(vol.meta["trigger_times_ms"]) > 0)
    assert vol.meta["manufacturer"].startswith("GE")


@needs_sunnybrook
def test_pixels_land_at_their_phase_and_slice():
    vol = read_image(str(SERIES))
    hdrs = _headers(SERIES)
    iop = np.asarray(hdrs[0][1].ImageOrientationPatient, float)
    normal = np.cross(iop[:3], iop[3:])
    locs = sorted({round(float(np.dot(np.asarray(d.ImagePositionPatient, float), normal)), 2) for _, d in hdrs})
    path, ds = hdrs[37]
    z = locs.index(round(float(np.dot(np.asarray(ds.ImagePositionPatient, float), normal)), 2))
    same = sorted(float(d.TriggerTime) for _, d in hdrs
                  if round(float(np.dot(np.asarray(d.ImagePositionPatient, float), normal)), 2) == locs[z])
    t = same.index(float(ds.TriggerTime))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        px = pydicom.dcmread(path).pixel_array
    assert np.array_equal(vol.array[t, z], px.astype(np.float32))


def _copy_two_locations(tmp_path):
    hdrs = _headers(SERIES)
    iop = np.asarray(hdrs[0][1].ImageOrientationPatient, float)
    normal = np.cross(iop[:3], iop[3:])
    key = lambda d: round(float(np.dot(np.asarray(d.ImagePositionPatient, float), normal)), 1)
    locs = sorted({key(d) for _, d in hdrs})[:2]
    out = tmp_path / "series"
    out.mkdir()
    files = []
    for p, d in hdrs:
        if key(d) in locs:
            shutil.copy(p, out / p.name)
            files.append(out / p.name)
    return out, files


def _edit(path, **tags):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path)
        for k, v in tags.items():
            setattr(ds, k, v)
        ds.save_as(path)


@needs_sunnybrook
def test_two_location_copy_reads(tmp_path):
    folder, _ = _copy_two_locations(tmp_path)
    vol = read_image(str(folder))
    assert vol.array.shape == (20, 2, 256, 256)


@needs_sunnybrook
@pytest.mark.parametrize("case,expect", [
    ("missing_phase", "phases"),
    ("duplicate_phase", "duplicate phase"),
    ("mixed_series", "series"),
    ("mixed_size", "different sizes"),
    ("mixed_orientation", "orientations"),
])
def test_bad_dicom_folders_are_refused_with_file_names(tmp_path, case, expect):
    folder, files = _copy_two_locations(tmp_path)
    victim = files[5]
    if case == "missing_phase":
        victim.unlink()
    elif case == "duplicate_phase":
        shutil.copy(victim, folder / "copy.dcm")
        _edit(folder / "copy.dcm", SOPInstanceUID="1.2.3.4.5")
    elif case == "mixed_series":
        _edit(victim, SeriesInstanceUID="1.2.826.0.1.999")
    elif case == "mixed_size":
        _edit(victim, Rows=128)
    elif case == "mixed_orientation":
        _edit(victim, ImageOrientationPatient=[1, 0, 0, 0, 1, 0])
    with pytest.raises(CMRRiskError) as e:
        read_image(str(folder))
    msg = str(e.value)
    assert expect in msg
    assert str(folder) in msg


def test_empty_folder(tmp_path):
    with pytest.raises(CMRRiskError, match="no readable DICOM"):
        read_image(str(tmp_path))
