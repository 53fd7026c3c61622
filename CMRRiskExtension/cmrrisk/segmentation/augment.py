"""Training batches: random 2.5D crops around the heart with spatial and intensity augmentation.

Spatial (one resampling per sample, so the label stays aligned): rotation (any angle, since
short-axis orientation differs between scanners), isotropic scaling, flips, elastic deformation.
Intensity: contrast / brightness, gamma, smooth multiplicative coil shading, Gaussian noise,
blur and simulated lower resolution.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


class FrameStore:
    """Pre-processed training frames: images (Z, H, W) in [0, 1] and labels (Z, H, W) uint8,
    all at the model's in-plane spacing."""

    def __init__(self):
        self.images: list[torch.Tensor] = []
        self.labels: list[torch.Tensor] = []
        self.centres: list[np.ndarray] = []   # per slice (row, col) of the foreground centroid
        self.index: list[tuple[int, int]] = []  # (frame, slice) of every training slice

    def add(self, image: np.ndarray, label: np.ndarray) -> None:
        f = len(self.images)
        self.images.append(torch.from_numpy(image.astype(np.float16)))
        self.labels.append(torch.from_numpy(label.astype(np.uint8)))
        fg = label > 0
        zz, yy, xx = np.nonzero(fg)
        frame_c = np.array([yy.mean(), xx.mean()]) if len(yy) else np.array(label.shape[1:]) / 2.0
        cents = []
        for z in range(label.shape[0]):
            y, x = np.nonzero(fg[z])
            cents.append(np.array([y.mean(), x.mean()]) if len(y) else frame_c)
            self.index.append((f, z))
        self.centres.append(np.stack(cents))

    def __len__(self):
        return len(self.index)


def _smooth_field(rng: np.random.Generator, n: int, size: int, coarse: int = 4) -> torch.Tensor:
    f = torch.from_numpy(rng.standard_normal((1, n, coarse, coarse)).astype(np.float32))
    return F.interpolate(f, size=(size, size), mode="bicubic", align_corners=False)[0]


def sample_batch(store: FrameStore, rng: np.random.Generator, batch: int, crop: int,
                 context: int = 1, augment: bool = True):
    """Return (images (B, 2*context+1, crop, crop), labels (B, crop, crop) long)."""
    imgs, labs = [], []
    half = (crop - 1) / 2.0
    lin = torch.linspace(-half, half, crop)
    vv, uu = torch.meshgrid(lin, lin, indexing="ij")  # rows, cols in output pixels
    for _ in range(batch):
        f, z = store.index[rng.integers(len(store.index))]
        img, lab = store.images[f], store.labels[f]
        nz, h, w = img.shape
        zs = [min(max(z + d, 0), nz - 1) for d in range(-context, context + 1)]
        src = torch.cat([img[zs].float(), lab[z:z + 1].float()], 0)[None]  # (1, C+1, H, W)
        if rng.random() < 0.1:
            cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        else:
            cy, cx = store.centres[f][z] + rng.uniform(-0.25, 0.25, 2) * crop
        if augment:
            theta = rng.uniform(-math.pi, math.pi)
            scale = math.exp(rng.uniform(math.log(0.8), math.log(1.25)))
            fx = -1.0 if rng.random() < 0.5 else 1.0
            fy = -1.0 if rng.random() < 0.5 else 1.0
        else:
            theta, scale, fx, fy = 0.0, 1.0, 1.0, 1.0
        c, s = math.cos(theta), math.sin(theta)
        u, v = uu * fx * scale, vv * fy * scale
        x_in = cx + c * u - s * v
        y_in = cy + s * u + c * v
        if augment and rng.random() < 0.25:
            disp = _smooth_field(rng, 2, crop) * rng.uniform(1.0, 4.0)
            x_in = x_in + disp[0]
            y_in = y_in + disp[1]
        grid = torch.stack([(2 * x_in + 1) / w - 1, (2 * y_in + 1) / h - 1], -1)[None]
        im = F.grid_sample(src[:, :-1], grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        lb = F.grid_sample(src[:, -1:], grid, mode="nearest", padding_mode="zeros", align_corners=False)
        imgs.append(im[0])
        labs.append(lb[0, 0])
    x = torch.stack(imgs)
    y = torch.stack(labs).round().long()
    if augment:
        x = intensity_augment(x, rng)
    return x, y


def intensity_augment(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    b, c, h, w = x.shape
    out = []
    for i in range(b):
        xi = x[i]
        if rng.random() < 0.15:  # simulated lower in-plane resolution
            f = rng.uniform(1.3, 2.0)
            small = F.interpolate(xi[None], scale_factor=1 / f, mode="bilinear", align_corners=False)
            xi = F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)[0]
        if rng.random() < 0.1:  # blur
            k = torch.tensor([0.25, 0.5, 0.25])
            k2 = (k[:, None] * k[None, :]).expand(c, 1, 3, 3)
            xi = F.conv2d(xi[None], k2, padding=1, groups=c)[0]
        if rng.random() < 0.3:  # coil shading
            field = torch.exp(_smooth_field(rng, 1, h, 3) * rng.uniform(0.1, 0.35))
            xi = xi * field
        if rng.random() < 0.5:  # contrast and brightness
            xi = xi * rng.uniform(0.75, 1.25) + rng.uniform(-0.1, 0.1)
        if rng.random() < 0.3:  # gamma
            xi = xi.clamp(min=0) ** rng.uniform(0.7, 1.5)
        if rng.random() < 0.2:  # noise
            xi = xi + torch.randn_like(xi) * rng.uniform(0.0, 0.06)
        out.append(xi)
    return torch.stack(out)
