"""Slice order read from the image geometry (``slice_order_from_geometry``): a real short-axis
orientation decides whether the 2.5D network reads a stack reversed; axis-aligned headers
(ACDC, the synthetic cohort) leave the decision to the LV area along the stack."""

import numpy as np
import pytest

from conftest import DATA, SUNNYBROOK, needs_sunnybrook


def _matrix(k_axis, spacing=1.4, dz=10.0):
    """ijk-to-RAS with a given slice direction and any in-plane axes orthogonal to it."""
    k = np.asarray(k_axis, float)
    k /= np.linalg.norm(k)
    a = np.cross(k, [0.0, 0.0, 1.0] if abs(k[2]) < 0.9 else [1.0, 0.0, 0.0])
    a /= np.linalg.norm(a)
    b = np.cross(k, a)
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2] = a * spacing, b * spacing, k * dz
    return m


def test_slice_order_from_geometry():
    from cmrrisk.segmentation.infer import LONG_AXIS_RAS, slice_order_from_geometry as order

    # a Sunnybrook GE series: the slice index runs from the apex toward the base
    sunny = _matrix([0.672, -0.666, 0.323])
    assert order(sunny) == "apex_first"
    flipped = sunny.copy()
    flipped[:3, 2] *= -1
    assert order(flipped) == "base_first"
    assert order(_matrix(LONG_AXIS_RAS)) == "base_first"
    # headers without orientation (ACDC, the synthetic cohort): the geometry cannot tell
    assert order(np.diag([-1.56, -1.56, 10.0, 1.0])) is None
    assert order(np.diag([1.0, 1.0, -8.0, 1.0])) is None
    assert order(None) is None
    assert order(np.zeros((4, 4))) is None
    # an oblique slice direction at right angles to the long axis: cannot tell either
    perpendicular = np.cross(LONG_AXIS_RAS, [1.0, 0.0, 0.0])
    assert order(_matrix(perpendicular)) is None


def test_segmenter_follows_the_geometry_before_the_labels(segmenter):
    """With an informative geometry the decision is the geometry's and no labels are judged;
    with the check off the geometry is ignored too."""
    from cmrrisk.segmentation.infer import Segmenter

    s = Segmenter.__new__(Segmenter)
    s.check_slice_order, s.slice_order = True, "base_first"
    assert s.geometry_reverse(_matrix([0.672, -0.666, 0.323])) is True
    assert s.geometry_reverse(np.diag([-1.5, -1.5, 10.0, 1.0])) is None
    s.check_slice_order = False
    assert s.geometry_reverse(_matrix([0.672, -0.666, 0.323])) is None

    calls = []
    real = segmenter._predict

    def counting(*a, **k):
        calls.append(1)
        return real(*a, **k)

    frame = np.random.default_rng(0).normal(size=(4, 64, 64)).astype(np.float32)
    segmenter._predict = counting
    try:
        got = segmenter.predict_frame_detailed(frame, (1.5, 1.5), geometry=_matrix([0.672, -0.666, 0.323]))
        assert got.reversed and got.order_source == "geometry"
        assert len(calls) == 1  # no first pass to judge the LV area
        got = segmenter.predict_frame_detailed(frame, (1.5, 1.5), geometry=np.diag([-1.5, -1.5, 10.0, 1.0]))
        assert got.order_source == "labels"
        got = segmenter.predict_frame_detailed(frame, (1.5, 1.5), reverse=False,
                                               geometry=_matrix([0.672, -0.666, 0.323]))
        assert not got.reversed and got.order_source == "caller"
    finally:
        del segmenter._predict


def _flip_slices(vol):
    """The same stack listed in the other slice order, geometry kept consistent (every voxel
    keeps its world position)."""
    from cmrrisk.image import Volume

    m = vol.ijk_to_ras.copy()
    n = vol.array.shape[0]
    m[:3, 3] = m[:3, 3] + (n - 1) * m[:3, 2]
    m[:3, 2] *= -1
    return Volume(np.ascontiguousarray(vol.array[::-1]), m, vol.source + " (flipped)")


@needs_sunnybrook
def test_sunnybrook_apex_found_with_the_geometry(segmenter):
    """SCD0000101 phase 7: the LV area along the stack keeps the given (apex-first) order, and
    the apical image IM-0001-0208 is segmented worse than when the geometry reverses the stack
    for the base-first model (development model 0.61 -> 0.89, bundled model 0.84 -> 0.89). The same stack listed base first is left as given and gives
    the same labels."""
    from cmrrisk.image import read_image
    from cmrrisk.metrics import dice

    from eval_sunnybrook import contour_mask

    vol = read_image(str(SUNNYBROOK / "SCD0000101"))
    inst = np.array(vol.meta["instance_numbers"])
    (z, t), = np.argwhere(inst == 208)
    frame = vol.frame(int(t))
    contour = next((DATA / "sunnybrook" / "contourfiles" / "SC-HF-I-1")
                   .glob("*-contours/IM-0001-0208-icontour-manual.txt"))
    ref = contour_mask(contour, frame.array.shape[1:])

    got = segmenter.predict_frame_detailed(frame.array, frame.spacing[:2])
    by_labels = got.labels
    assert not got.reversed and got.order_source == "labels"
    res = segmenter.segment_detailed(frame)
    by_geometry = res.volume.array
    assert res.reversed and res.order_source == "geometry"
    d_labels, d_geometry = dice(by_labels[z] == 1, ref), dice(by_geometry[z] == 1, ref)
    assert d_geometry > max(d_labels, 0.8), (d_labels, d_geometry)

    from cmrrisk.segmentation.infer import slice_order_from_geometry

    flipped = _flip_slices(frame)
    assert slice_order_from_geometry(flipped.ijk_to_ras) == "base_first"
    res = segmenter.segment_detailed(flipped)
    again = res.volume.array
    assert not res.reversed and res.order_source == "geometry"
    assert np.array_equal(again[::-1], by_geometry)


def test_segment_a_volume_passes_its_geometry_and_prior(segmenter):
    """``Segmenter.segment(vol, prior=...)``, the call every volume path uses, is
    ``predict_frame`` with the volume's spacing, geometry and the ED prior; a 4D cine refuses an
    outside prior."""
    from cmrrisk.errors import CMRRiskError
    from cmrrisk.image import Volume

    rng = np.random.default_rng(1)
    arr = rng.normal(100, 20, (4, 64, 64)).astype(np.float32)
    prior = np.zeros((4, 64, 64), np.uint8)
    prior[:, 20:40, 20:40] = 1
    m = _matrix([0.672, -0.666, 0.323], spacing=1.5)
    vol = Volume(arr, m, "frame")
    res = segmenter.segment_detailed(vol, prior=prior)
    got = res.volume.array
    assert res.order_source == "geometry" and res.reversed
    want = segmenter.predict_frame(arr, vol.spacing[:2], prior=prior, geometry=m)
    assert np.array_equal(got, want)
    with pytest.raises(CMRRiskError, match="4D cine"):
        segmenter.segment(Volume(np.stack([arr, arr]), m, "cine"), prior=prior)
