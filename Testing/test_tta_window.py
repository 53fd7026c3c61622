"""Test-time flips on a window around the heart (Segmenter.tta_window / _flip_average)."""

import numpy as np
import pytest
import torch

from conftest import acdc_frame, needs_acdc, validation_subjects


def _segmenter(margin):
    from cmrrisk.segmentation.infer import Segmenter

    s = Segmenter.load("cine", tta=True)
    s.TTA_WINDOW_MARGIN_MM = margin
    return s


def test_window_holds_the_heart_plus_margin_in_multiples_of_16():
    s = _segmenter(30.0)
    m = int(np.ceil(30.0 / s.target_spacing))
    labels = torch.zeros(3, 272, 240, dtype=torch.long)
    labels[1, 100:141, 90:131] = 2
    labels[2, 120:150, 95:100] = 3
    valid = (8, 12, 256, 216)
    y0, y1, x0, x1 = s.tta_window(labels, valid)
    assert (y1 - y0) % 16 == 0 and (x1 - x0) % 16 == 0
    assert 0 <= y0 <= 100 - m and y1 >= 150 + m and y1 <= 272
    assert 0 <= x0 <= 90 - m and x1 >= 131 + m and x1 <= 240
    assert (y1 - y0) * (x1 - x0) < 0.5 * 272 * 240  # a real saving over the whole grid

    # a heart at the grid's corner: the window is clamped inside the grid, still a multiple of 16
    corner = torch.zeros(2, 64, 80, dtype=torch.long)
    corner[0, 0:5, 70:80] = 1
    y0, y1, x0, x1 = s.tta_window(corner, (0, 0, 64, 80))
    assert y0 == 0 and x1 == 80 and (y1 - y0) % 16 == 0 and (x1 - x0) % 16 == 0

    # labels in the padding only (outside the valid region) do not count; nothing found -> None
    pad_only = torch.zeros(2, 64, 80, dtype=torch.long)
    pad_only[:, 0:4, :] = 1
    assert s.tta_window(pad_only, (8, 0, 48, 80)) is None
    assert s.tta_window(torch.zeros(2, 64, 80, dtype=torch.long), (0, 0, 64, 80)) is None

    # margin None: the whole grid, no window
    assert _segmenter(None).tta_window(labels, valid) == (0, 272, 0, 240)


def test_flip_average_leaves_the_outside_of_the_window_to_the_unflipped_pass(monkeypatch):
    """Outside the window the probabilities are those of the plain pass; inside, the mean of
    the plain pass and of the two flipped passes run on the window alone."""
    s = _segmenter(30.0)
    monkeypatch.setattr(s, "tta_window", lambda labels, valid: (32, 96, 48, 128))
    x = torch.rand(2, 3, 160, 160, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        plain = s._forward(x).softmax(1)
        out = s._flip_average(x, (0, 0, 160, 160))
        xc = x[:, :, 32:96, 48:128]
        inside = (plain[:, :, 32:96, 48:128] + s._forward(xc.flip(2)).softmax(1).flip(2)
                  + s._forward(xc.flip(3)).softmax(1).flip(3)) / 3
    assert torch.allclose(out.sum(1), torch.ones_like(out.sum(1)), atol=1e-5)
    outside = torch.ones(160, 160, dtype=torch.bool)
    outside[32:96, 48:128] = False
    assert torch.equal(out[:, :, outside], plain[:, :, outside])
    assert torch.allclose(out[:, :, 32:96, 48:128], inside, atol=1e-6)
    assert not torch.allclose(out[:, :, 32:96, 48:128], plain[:, :, 32:96, 48:128], atol=1e-4)
    # nothing found by the plain pass: no flips at all
    monkeypatch.setattr(s, "tta_window", lambda labels, valid: None)
    with torch.inference_mode():
        assert torch.equal(s._flip_average(x, (0, 0, 160, 160)), plain)


@needs_acdc
@pytest.mark.parametrize("which", ["ed", "es"])
def test_windowed_flips_agree_with_whole_image_flips_on_a_real_frame(which):
    from cmrrisk import labels as L
    from cmrrisk.image import read_image
    from cmrrisk.metrics import dice

    img = read_image(acdc_frame(validation_subjects()[0], which))
    whole = _segmenter(None).segment(img).array
    window = _segmenter(30.0).segment(img).array
    for label in (L.LV_BLOOD_POOL, L.LV_MYOCARDIUM, L.RV_BLOOD_POOL):
        assert dice(whole == label, window == label) >= 0.97, label
