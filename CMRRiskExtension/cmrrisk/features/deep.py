"""Deep features: a fixed-length, deterministic embedding of a subject's images.

Network: the encoder of the bundled segmentation U-Net of the image's kind (``cine`` for cine
frames, ``lge`` for LGE stacks; MONAI BasicUNet), with the same pre-processing as segmentation
(percentile intensity scaling, in-plane resampling, neighbouring slices as channels).
Layer: the deepest encoder block (``down_4``: 256 channels at 1/16 of the resampled grid,
i.e. 24 mm cells for the cine model).
Pooling: per slice, the average of the 256 channels over the cells weighted by the fraction of
each cell covered by the heart (all labels > 0 of the subject's segmentation); then the average
over slices weighted by each slice's heart area. Slices without heart do not count. The result
is one 256-vector per image (phase), named ``deep_<phase>_000`` ... ``deep_<phase>_255``.

The weights are frozen and the network is in evaluation mode (batch-norm running statistics),
so the embedding depends only on the image, its segmentation and the model's SHA-256.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..segmentation.preprocess import pad_to_multiple, prepare_frame, resample_slices, stack_neighbours

LAYER = "down_4"


@torch.inference_mode()
def encoder_features(segmenter, image: np.ndarray, spacing_xy) -> torch.Tensor:
    """(Z, C, h, w) activations of the encoder's deepest block and the padded grid's geometry."""
    net = segmenter.net
    t = prepare_frame(image, spacing_xy, segmenter.target_spacing)
    x = stack_neighbours(t, segmenter.context)
    x, box = pad_to_multiple(x, 16)
    x = x.to(segmenter.device)
    if segmenter.device.type == "cpu":
        x = x.contiguous(memory_format=torch.channels_last)
    outs = []
    for i in range(0, x.shape[0], 4):
        h = net.conv_0(x[i:i + 4])
        h = net.down_1(h)
        h = net.down_2(h)
        h = net.down_3(h)
        h = net.down_4(h)
        outs.append(h.float().cpu())
    return torch.cat(outs), box, tuple(t.shape[-2:])


class capture_encoder:
    """Context manager that keeps the deepest encoder block's output of every forward pass of
    ``segmenter`` (so that segmenting and embedding cost one pass):

    >>> with capture_encoder(seg_model) as cap:
    ...     labels = seg_model.predict_frame(image, spacing_xy)
    >>> vec = pool(cap.features(), resampled_box(seg_model, image.shape, spacing_xy), labels)
    """

    def __init__(self, segmenter):
        self.segmenter = segmenter
        self.chunks: list = []
        self.handle = None

    def __enter__(self):
        if self.segmenter.tta:
            raise ValueError("capture_encoder needs a segmenter without test-time flips")

        def hook(_module, _inp, out):
            self.chunks.append(out.detach().float().cpu())

        self.handle = getattr(self.segmenter.net, LAYER).register_forward_hook(hook)
        return self

    def __exit__(self, *exc):
        self.handle.remove()
        return False

    def features(self) -> torch.Tensor:
        return torch.cat(self.chunks)


def embedding(segmenter, image: np.ndarray, seg: np.ndarray, spacing_xy, reverse: bool | None = None) -> np.ndarray:
    """A 256-vector (float64) for one (Z, Y, X) image and its label map (same shape).

    The encoder reads the stack in the model's training slice order: ``reverse`` says whether
    to reverse it (pass the ``reversed`` of the ``predict_frame_detailed`` result that made
    ``seg``); ``None``: judged on ``seg`` as ``predict_frame`` would."""
    if image.shape != seg.shape:
        raise ValueError(f"image {image.shape} and segmentation {seg.shape} differ in shape")
    if reverse is None:
        reverse = segmenter.reads_reversed(seg)
    if reverse:
        feats, box, _ = encoder_features(segmenter, np.ascontiguousarray(image[::-1]), spacing_xy)
        return pool(feats.flip(0), box, seg)
    feats, box, _ = encoder_features(segmenter, image, spacing_xy)
    return pool(feats, box, seg)


def captured_for_frame(result, cap: "capture_encoder", box=None) -> torch.Tensor:
    """The encoder output of the pass that produced ``result`` (the
    :class:`~cmrrisk.segmentation.infer.FramePrediction` of the ``predict_frame_detailed`` call
    made inside ``cap``), in the input's slice order (a stack reversed for the model is
    segmented twice: first as given, then reversed; the second pass counts).

    When that pass saw only the heart window (``result.window``: an ES frame anchored to ED),
    its cells are put back in place on the whole padded grid, whose resampled image is ``box``
    (:func:`resampled_box`; required then); cells outside the window are zero, and carry no
    weight in :func:`pool` since the labels are background there. The window's edges lie on the
    16-pixel cells, so the placement is exact."""
    feats = cap.features()[-result.labels.shape[0]:]
    win = result.window
    if win is not None:
        if box is None:
            raise ValueError("captured_for_frame needs the resampled box when the pass saw a heart window")
        top, left, hh, ww = box
        gh, gw = -(-hh // 16), -(-ww // 16)
        y0, y1, x0, x1 = (v // 16 for v in win)
        if feats.shape[-2:] != (y1 - y0, x1 - x0) or y1 > gh or x1 > gw:
            raise ValueError(f"captured encoder cells {tuple(feats.shape[-2:])} do not match the heart "
                             f"window {win} on a {gh} x {gw} cell grid")
        full = feats.new_zeros(feats.shape[:2] + (gh, gw))
        full[:, :, y0:y1, x0:x1] = feats
        feats = full
    return feats.flip(0) if result.reversed else feats


def resampled_box(segmenter, image_shape, spacing_xy) -> tuple:
    """(top, left, h, w) of the resampled image inside the padded network input."""
    from ..segmentation.preprocess import resampled_size

    hh, ww = resampled_size(image_shape[-2:], spacing_xy, segmenter.target_spacing)
    ph, pw = (-hh) % 16, (-ww) % 16
    return (ph // 2, pw // 2, hh, ww)


def pool(feats: torch.Tensor, box, seg: np.ndarray) -> np.ndarray:
    """Heart-weighted average of encoder activations (Z, C, h, w) -> C-vector."""
    top, left, hh, ww = box
    heart = torch.from_numpy((seg > 0).astype(np.float32))[:, None]
    heart = resample_slices(heart, (hh, ww))  # onto the resampled grid
    heart = F.pad(heart, (left, feats.shape[-1] * 16 - ww - left, top, feats.shape[-2] * 16 - hh - top))
    w = F.avg_pool2d(heart, 16)  # fraction of each encoder cell covered by the heart
    area = w.sum(dim=(1, 2, 3))
    if float(area.sum()) <= 0:
        return np.zeros(feats.shape[1], dtype=np.float64)
    per_slice = (feats * w).sum(dim=(2, 3)) / area.clamp_min(1e-6)[:, None]
    vec = (per_slice * area[:, None]).sum(0) / area.sum()
    return vec.double().numpy()


def embedding_names(phase: str, n: int = 256) -> list:
    return [f"deep_{phase}_{i:03d}" for i in range(n)]
