"""Heart window: a frame segmented after another frame of the same cine (ES anchored to ED,
later phases of a 4D cine) is run through the network only around that frame's heart
(Segmenter.heart_window), aligned to the network's 16-pixel pooling grid."""

import numpy as np
import pytest
import torch

from conftest import acdc_frame, needs_acdc, validation_subjects


def _segmenter(margin=30.0):
    from cmrrisk.segmentation.infer import Segmenter

    s = Segmenter.load("cine", tta=False)
    s.HEART_WINDOW_MARGIN_MM = margin
    return s


def test_window_holds_the_heart_plus_margin_on_the_pooling_grid():
    s = _segmenter()
    m = int(np.ceil(30.0 / s.target_spacing))
    labels = np.zeros((3, 100, 120), np.uint8)          # image grid
    labels[1, 40:61, 50:71] = 2
    labels[2, 45:70, 52:60] = 3
    valid = (8, 4, 150, 180)                             # image resampled 1.5 x, padded to 160 x 192
    y0, y1, x0, x1 = s.heart_window(labels, valid, (160, 192))
    assert y0 % 16 == 0 and x0 % 16 == 0 and y1 % 16 == 0 and x1 % 16 == 0
    # the heart's rows 40-69 / columns 50-70 map to grid rows 68-113 / columns 79-110
    assert y0 <= 8 + 40 * 1.5 - m and y1 >= 8 + 70 * 1.5 + m
    assert x0 <= 4 + 50 * 1.5 - m and x1 >= 4 + 71 * 1.5 + m
    assert (y1 - y0) * (x1 - x0) < 160 * 192

    # no heart, no margin, or a window as large as the grid: the whole image (None)
    assert s.heart_window(np.zeros_like(labels), valid, (160, 192)) is None
    assert _segmenter(None).heart_window(labels, valid, (160, 192)) is None
    big = np.zeros_like(labels)
    big[0, 2:98, 2:118] = 1
    assert s.heart_window(big, valid, (160, 192)) is None


def test_outside_the_window_is_background_and_the_window_is_recorded(monkeypatch):
    s = _segmenter()
    rng = np.random.default_rng(0)
    frame = rng.random((3, 96, 96)).astype(np.float32)
    monkeypatch.setattr(s, "heart_window", lambda labels, valid, grid: (16, 64, 32, 80))
    seen = []

    def scores(x, valid):  # a network that calls every pixel it sees LV blood pool
        seen.append(tuple(x.shape[-2:]))
        out = torch.zeros((x.shape[0], 4) + tuple(x.shape[-2:]))
        out[:, 1] = 10.0
        return out
    monkeypatch.setattr(s, "_scores", scores)
    prior = np.zeros(frame.shape, np.uint8)
    prior[:, 40:50, 40:50] = 1
    got = s.predict_frame_detailed(frame, (1.5, 1.5), post=False, window_from=prior, reverse=False)
    out = got.labels
    assert got.window == (16, 64, 32, 80) and seen == [(48, 48)]
    # the grid is the frame itself here (1.5 mm, 96 a multiple of 16): inside rows 16-63 and
    # columns 32-79 what the network said, outside everything is background
    inside = np.zeros(frame.shape[1:], bool)
    inside[16:64, 32:80] = True
    assert not out[:, ~inside].any()
    assert (out[:, 17:63, 33:79] == 1).all()
    got = s.predict_frame_detailed(frame, (1.5, 1.5), post=False, reverse=False)
    assert got.window is None and seen[-1] == (96, 96)


def test_window_labels_of_another_shape_are_refused():
    from cmrrisk.errors import CMRRiskError

    s = _segmenter()
    with pytest.raises(CMRRiskError, match="same cine"):
        s.predict_frame(np.zeros((3, 64, 64), np.float32), (1.5, 1.5),
                        window_from=np.zeros((3, 64, 60), np.uint8))


@needs_acdc
def test_es_anchored_in_the_window_agrees_with_the_whole_image():
    from cmrrisk import labels as L
    from cmrrisk.image import read_image
    from cmrrisk.metrics import dice

    subject = validation_subjects()[0]
    ed_img, es_img = (read_image(acdc_frame(subject, w)) for w in ("ed", "es"))
    sxy = ed_img.spacing[:2]
    whole, window = _segmenter(None), _segmenter(30.0)
    ed = whole.predict_frame(ed_img.array, sxy)
    got_whole = whole.predict_frame_detailed(es_img.array, sxy, prior=ed)
    got_window = window.predict_frame_detailed(es_img.array, sxy, prior=ed)
    es_whole, es_window = got_whole.labels, got_window.labels
    assert got_whole.window is None and got_window.window is not None
    for label in (L.LV_BLOOD_POOL, L.LV_MYOCARDIUM, L.RV_BLOOD_POOL):
        assert dice(es_whole == label, es_window == label) >= 0.97, label


@needs_acdc
def test_deep_features_captured_in_the_window_match_a_whole_image_pass():
    """The ES frame anchored to ED runs the encoder on the heart window only; the captured cells
    are put back on the whole grid (features.deep.captured_for_frame) before pooling, so the
    embedding is close to that of a separate whole-image pass on the same labels."""
    from cmrrisk.features import deep
    from cmrrisk.image import read_image

    seg = _segmenter(30.0)
    subject = validation_subjects()[1]
    ed_img, es_img = (read_image(acdc_frame(subject, w)) for w in ("ed", "es"))
    sxy = ed_img.spacing[:2]
    ed = seg.predict_frame(ed_img.array, sxy)
    with deep.capture_encoder(seg) as cap:
        got = seg.predict_frame_detailed(es_img.array, sxy, prior=ed)
    es = got.labels
    assert got.window is not None
    box = deep.resampled_box(seg, es_img.array.shape, sxy)
    with pytest.raises(ValueError, match="resampled box"):
        deep.captured_for_frame(got, cap)
    v_window = deep.pool(deep.captured_for_frame(got, cap, box), box, es)
    v_whole = deep.embedding(seg, es_img.array, es, sxy, reverse=got.reversed)
    rel = np.linalg.norm(v_window - v_whole) / np.linalg.norm(v_whole)
    assert np.corrcoef(v_window, v_whole)[0, 1] > 0.99 and rel < 0.05, (rel,)
