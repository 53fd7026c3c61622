"""Pre-processing shared by training and inference, so that both see the same input.

1. intensity: clip to the volume's 0.5 / 99.5 percentiles and scale to [0, 1];
2. in-plane resampling of every slice to ``target_spacing`` mm (bilinear);
3. 2.5D: each slice is stacked with its neighbours (edge slices repeat themselves);
4. padding to a multiple of 16 pixels for the U-Net.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def normalize_intensity(arr: np.ndarray, low: float = 0.5, high: float = 99.5) -> np.ndarray:
    a = np.asarray(arr, dtype=np.float32)
    lo, hi = np.percentile(a, [low, high])
    if hi - lo < 1e-6:
        return np.zeros_like(a, dtype=np.float32)
    return np.clip((a - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def resampled_size(shape_yx, spacing_xy, target: float) -> tuple:
    """(rows, cols) after resampling rows of spacing_y and columns of spacing_x to ``target`` mm."""
    sx, sy = spacing_xy
    return (max(1, int(round(shape_yx[0] * sy / target))), max(1, int(round(shape_yx[1] * sx / target))))


def resample_slices(t: torch.Tensor, size, mode: str = "bilinear") -> torch.Tensor:
    """Resample a (N, C, H, W) tensor in-plane to ``size`` (align_corners=False keeps pixel centres
    consistent in both directions)."""
    if tuple(t.shape[-2:]) == tuple(size):
        return t
    if mode == "nearest":
        return F.interpolate(t, size=size, mode="nearest-exact")
    return F.interpolate(t, size=size, mode=mode, align_corners=False)


def stack_neighbours(t: torch.Tensor, context: int = 1) -> torch.Tensor:
    """(Z, 1, H, W) -> (Z, 2*context+1, H, W): slice k with k-context .. k+context."""
    z = t.shape[0]
    idx = torch.arange(z)
    chans = [t[(idx + d).clamp(0, z - 1), 0] for d in range(-context, context + 1)]
    return torch.stack(chans, dim=1)


def pad_to_multiple(t: torch.Tensor, multiple: int = 16):
    """Pad the last two dims (symmetrically) up to a multiple; return tensor and (top, left, H, W)."""
    h, w = t.shape[-2:]
    ph = (-h) % multiple
    pw = (-w) % multiple
    top, left = ph // 2, pw // 2
    if ph or pw:
        t = F.pad(t, (left, pw - left, top, ph - top))
    return t, (top, left, h, w)


def prepare_frame(arr: np.ndarray, spacing_xy, target: float):
    """Normalise and resample a (Z, H, W) frame; returns (Z, 1, H', W') float tensor."""
    a = normalize_intensity(arr)
    t = torch.from_numpy(a)[:, None]
    size = resampled_size(a.shape[1:], spacing_xy, target)
    return resample_slices(t, size)


def channel_argmax(scores: torch.Tensor) -> torch.Tensor:
    """Index of the highest score along dim 1 of an (N, C, H, W) tensor, the first on ties,
    exactly as ``scores.argmax(1)``, which is several times slower on a tensor in the default
    (channels-first) layout, as the scores of a heart-window or flipped pass are: one thread,
    9 x 5 x 432 x 352 scores 0.39 s vs 0.03 s. Interleaved, a synthetic LGE stack (flips,
    window) then took 0.90 times as long on 2 threads, 0.93 and 0.97 on one (three A/B runs); a plain cine frame, whose scores stay in the
    network's channels-last layout, is unchanged (interleaved A/B, 7 runs each). Identical
    results: Testing/test_fast_argmax.py."""
    return scores.max(1).indices


def labels_to_target_grid(lab: np.ndarray, spacing_xy, target: float, n_classes: int) -> np.ndarray:
    """Resample a (Z, H, W) label map in-plane (one-hot, bilinear, argmax) -> uint8."""
    t = torch.from_numpy(lab.astype(np.int64))
    onehot = F.one_hot(t, n_classes).permute(0, 3, 1, 2).float()
    size = resampled_size(lab.shape[1:], spacing_xy, target)
    return channel_argmax(resample_slices(onehot, size)).numpy().astype(np.uint8)
