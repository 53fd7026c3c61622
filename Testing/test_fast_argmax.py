"""channel_argmax must give exactly torch.argmax(dim=1), ties included, in every layout."""

import pytest
import torch

from cmrrisk.segmentation.preprocess import channel_argmax


@pytest.mark.parametrize("channels", [2, 4, 5])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "cropped"])
def test_channel_argmax_equals_argmax(channels, layout):
    g = torch.Generator().manual_seed(channels)
    # few distinct values: many ties between channels, which must resolve to the first
    x = torch.randint(0, 3, (3, channels, 40, 56), generator=g).float()
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    elif layout == "cropped":
        x = x[:, :, 3:31, 5:47]
    ties = (x == x.max(1, keepdim=True).values).sum(1) > 1
    assert ties.float().mean() > 0.2  # the case that matters is really exercised
    out = channel_argmax(x)
    assert out.dtype == torch.int64
    assert torch.equal(out, x.argmax(1))


def test_channel_argmax_extremes():
    x = torch.zeros(1, 4, 5, 5)
    assert int(channel_argmax(x).max()) == 0  # all tied: the first channel
    x[:, 1:] = torch.finfo(torch.float32).min  # the ES prior's refusal value
    x[0, 3, 2, 2] = 7.0
    out = channel_argmax(x)
    assert int(out[0, 2, 2]) == 3 and int(out.sum()) == 3
