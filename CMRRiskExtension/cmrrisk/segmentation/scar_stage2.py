"""Second-stage scar segmentation on LGE: scar and MVO inside a myocardium-centred crop.

Given an LGE stack and a myocardium mask (the first stage's whole myocardium: healthy + scar +
MVO), each slice is cropped around the myocardium at native resolution and a small 2D U-Net
labels each pixel background / scar / MVO. Its inputs are:

* the intensity normalised to the study's own references, because LGE intensities are relative:
  ``(I - remote) / (blood - remote)``, where ``remote`` is the mean of the darkest of six
  angular sectors of the myocardium (pooled over the stack) and ``blood`` the median of the LV
  cavity (the holes enclosed by the myocardium), so that remote myocardium is 0 and blood pool 1;
* the myocardium mask;
* optionally (``classic=True``) the classic maps inside the mask: n-SD (normalised intensity above
  remote mean + ``N_SD`` SD of the remote sector) and FWHM above remote (at or above half-way from
  the remote mean to the 99th percentile of the myocardium);
* optionally (``context=True``, "2.5D") the normalised intensity of the slices below and above
  (the edge slice repeated at the ends of the stack) as two more channels.

The labels written back stay inside the first stage's myocardium: the stage-2 scar and MVO
replace the first stage's, so the whole myocardium (and its Dice) is unchanged.

Training (:func:`train`) uses reference myocardium masks jittered at random (dilation, erosion,
in-plane shift) so that the network learns to work from an imperfect first stage, samples slices
with scar twice as often as the others, and minimises soft Dice (scar + MVO, and MVO) plus focal
cross-entropy (``loss="dice_focal"``), or focal Tversky (``loss="focal_tversky"``: false negatives
weighted :data:`TVERSKY_BETA`, false positives :data:`TVERSKY_ALPHA`, exponent
:data:`TVERSKY_GAMMA`, for small structures) plus focal cross-entropy. It checkpoints every
``checkpoint_every`` iterations and resumes from the checkpoint. Pure torch + numpy + scipy; CPU friendly (about 0.1 M parameters).
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch
from scipy import ndimage
from torch import nn
from torch.nn import functional as F

from .. import labels as L

N_SD = 3.0
N_SECTORS = 6
CROP = 80
FEATURES = (8, 16, 32, 48)
LOSSES = ("dice_focal", "focal_tversky")
TVERSKY_ALPHA, TVERSKY_BETA, TVERSKY_GAMMA = 0.3, 0.7, 0.75


# ----------------------------------------------------------------------------- intensity references


def _sector_index(myo2d: np.ndarray):
    yy, xx = np.nonzero(myo2d)
    cy, cx = yy.mean(), xx.mean()
    ang = np.arctan2(yy - cy, xx - cx)
    return yy, xx, ((ang + math.pi) / (2 * math.pi) * N_SECTORS).astype(int).clip(0, N_SECTORS - 1)


def references(image: np.ndarray, myo: np.ndarray) -> dict:
    """Remote myocardium (darkest of :data:`N_SECTORS` angular sectors, pooled over slices) mean
    and SD, and the LV blood-pool median (holes enclosed by the myocardium, else the 90th
    percentile of a ring just inside / around it)."""
    sectors = [[] for _ in range(N_SECTORS)]
    cavity = []
    for k in range(image.shape[0]):
        m = myo[k]
        if m.sum() < 10:
            continue
        yy, xx, s = _sector_index(m)
        vals = image[k][yy, xx]
        for n in range(N_SECTORS):
            sectors[n].append(vals[s == n])
        hole = ndimage.binary_fill_holes(m) & ~m
        hole = ndimage.binary_erosion(hole)
        if hole.sum() >= 5:
            cavity.append(image[k][hole])
    sectors = [np.concatenate(v) for v in sectors if v and sum(len(a) for a in v) > 0]
    if not sectors:
        vals = image[myo] if myo.any() else image.ravel()
        return {"remote_mean": float(np.mean(vals)), "remote_sd": float(np.std(vals)) + 1e-6,
                "blood": float(np.percentile(image, 99))}
    medians = [np.median(v) if len(v) >= 10 else np.inf for v in sectors]
    remote = sectors[int(np.argmin(medians))]
    if cavity:
        blood = float(np.median(np.concatenate(cavity)))
    else:
        blood = float(np.percentile(image[ndimage.binary_dilation(myo, iterations=3)], 90))
    return {"remote_mean": float(remote.mean()), "remote_sd": float(remote.std()) + 1e-6, "blood": blood}


def normalise(image: np.ndarray, myo: np.ndarray) -> tuple[np.ndarray, dict]:
    """(normalised image: remote 0, blood 1; references)."""
    ref = references(image, myo)
    scale = max(ref["blood"] - ref["remote_mean"], 4 * ref["remote_sd"], 1e-3)
    return ((image - ref["remote_mean"]) / scale).astype(np.float32), {**ref, "scale": scale}


def classic_maps(norm: np.ndarray, myo: np.ndarray, ref: dict) -> tuple[np.ndarray, np.ndarray]:
    """n-SD and FWHM-above-remote masks (float32) inside ``myo`` on the normalised image."""
    sd = ref["remote_sd"] / ref["scale"]
    nsd = myo & (norm > N_SD * sd)
    top = float(np.percentile(norm[myo], 99)) if myo.any() else 1.0
    fwhm = myo & (norm >= 0.5 * top) & (top > N_SD * sd)
    return nsd.astype(np.float32), fwhm.astype(np.float32)


def n_inputs(classic: bool, context: bool = False) -> int:
    """Number of input channels of the network for these options."""
    return 2 + 2 * classic + 2 * context


def intensity_channels(classic: bool, context: bool = False) -> list[int]:
    """Indices of the channels that hold normalised intensity (augmented together in training)."""
    return [0] + ([n_inputs(classic, False), n_inputs(classic, False) + 1] if context else [])


def input_channels(image: np.ndarray, myo: np.ndarray, classic: bool, context: bool = False) -> np.ndarray:
    """(C, Z, H, W) float32 network input for a whole stack: normalised intensity, mask, [classic
    maps], [intensity of the slice below, of the slice above]."""
    norm, ref = normalise(image.astype(np.float32), myo)
    clipped = np.clip(norm, -2.0, 4.0)
    chans = [clipped, myo.astype(np.float32)]
    if classic:
        chans += list(classic_maps(norm, myo, ref))
    if context:
        z = np.arange(image.shape[0])
        chans += [clipped[np.maximum(z - 1, 0)], clipped[np.minimum(z + 1, image.shape[0] - 1)]]
    return np.stack(chans)


# ----------------------------------------------------------------------------- crops


def crop_box(myo: np.ndarray, size: int = CROP) -> tuple[int, int, int]:
    """(centre row, centre column, side) of an in-plane square around the whole stack's myocardium:
    at least ``size``, a multiple of 8 that holds the myocardium with an 8-pixel margin."""
    _, yy, xx = np.nonzero(myo)
    cy, cx = (int(round((yy.min() + yy.max()) / 2)), int(round((xx.min() + xx.max()) / 2)))
    need = max(yy.max() - yy.min(), xx.max() - xx.min()) + 16
    side = int(max(size, 8 * math.ceil(need / 8)))
    return cy, cx, side


def crop(arr: np.ndarray, cy: int, cx: int, side: int) -> np.ndarray:
    """Crop the last two axes to ``side`` x ``side`` centred on (cy, cx), zero-padded."""
    h, w = arr.shape[-2:]
    y0, x0 = cy - side // 2, cx - side // 2
    out = np.zeros(arr.shape[:-2] + (side, side), arr.dtype)
    ys, xs = max(y0, 0), max(x0, 0)
    ye, xe = min(y0 + side, h), min(x0 + side, w)
    if ye > ys and xe > xs:
        out[..., ys - y0:ye - y0, xs - x0:xe - x0] = arr[..., ys:ye, xs:xe]
    return out


def uncrop(arr: np.ndarray, cy: int, cx: int, shape2) -> np.ndarray:
    side = arr.shape[-1]
    h, w = shape2
    y0, x0 = cy - side // 2, cx - side // 2
    out = np.zeros(arr.shape[:-2] + (h, w), arr.dtype)
    ys, xs = max(y0, 0), max(x0, 0)
    ye, xe = min(y0 + side, h), min(x0 + side, w)
    if ye > ys and xe > xs:
        out[..., ys:ye, xs:xe] = arr[..., ys - y0:ye - y0, xs - x0:xe - x0]
    return out


# ----------------------------------------------------------------------------- network


def _block(ci, co):
    return nn.Sequential(nn.Conv2d(ci, co, 3, padding=1, bias=False), nn.BatchNorm2d(co), nn.LeakyReLU(0.01, True),
                         nn.Conv2d(co, co, 3, padding=1, bias=False), nn.BatchNorm2d(co), nn.LeakyReLU(0.01, True))


class ScarNet(nn.Module):
    """Small 2D U-Net (three poolings); out: background, scar, MVO."""

    def __init__(self, in_channels: int, features=FEATURES, out_channels: int = 3):
        super().__init__()
        f = list(features)
        self.enc = nn.ModuleList([_block(in_channels, f[0])] + [_block(f[i], f[i + 1]) for i in range(len(f) - 1)])
        self.dec = nn.ModuleList([_block(f[i + 1] + f[i], f[i]) for i in reversed(range(len(f) - 1))])
        self.head = nn.Conv2d(f[0], out_channels, 1)

    def forward(self, x):
        skips = []
        for i, e in enumerate(self.enc):
            x = e(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        x = skips.pop()
        for d in self.dec:
            s = skips.pop()
            x = d(torch.cat([F.interpolate(x, size=s.shape[-2:], mode="nearest"), s], 1))
        return self.head(x)


def n_parameters(net) -> int:
    return sum(p.numel() for p in net.parameters())


# ----------------------------------------------------------------------------- inference


@torch.inference_mode()
def predict(net: ScarNet | list, image: np.ndarray, myo: np.ndarray, classic: bool, flips: bool = True,
            context: bool = False, rotations: bool = False) -> np.ndarray:
    """Stage-2 label map (0 / :data:`L.SCAR` / :data:`L.MVO`, uint8, on the image's grid) inside
    ``myo`` for a (Z, H, W) stack; zeros where the mask is empty. ``flips``: probabilities averaged
    over the image as is and flipped along each in-plane axis; ``rotations``: averaged over the
    four quarter turns instead, each also mirrored when ``flips`` (the eight symmetries of the
    square crop). ``net`` may be a list of networks with the same inputs: their probabilities are
    averaged too."""
    out = np.zeros(image.shape, np.uint8)
    if not myo.any():
        return out
    nets = list(net) if isinstance(net, (list, tuple)) else [net]
    for n in nets:
        n.eval()
    cy, cx, side = crop_box(myo)
    x = crop(input_channels(image, myo, classic, context), cy, cx, side)
    x = torch.from_numpy(x).permute(1, 0, 2, 3).contiguous()
    prob = 0
    for model in nets:
        if rotations:
            for k in range(4):
                for mirror in ((False, True) if flips else (False,)):
                    xi = torch.rot90(x.flip((3,)) if mirror else x, k, (2, 3))
                    p = torch.rot90(model(xi).softmax(1), -k, (2, 3))
                    prob = prob + (p.flip((3,)) if mirror else p)
        else:
            for dims in ([None, (3,), (2,)] if flips else [None]):
                xi = x if dims is None else x.flip(dims)
                p = model(xi).softmax(1)
                prob = prob + (p if dims is None else p.flip(dims))
    lab = prob.argmax(1).numpy().astype(np.uint8)
    lab = np.choose(lab, [0, L.SCAR, L.MVO]).astype(np.uint8)
    lab = uncrop(lab, cy, cx, image.shape[-2:])
    lab[~myo] = 0
    return lab


def fuse(stage1: np.ndarray, stage2: np.ndarray) -> np.ndarray:
    """Stage-2 scar / MVO map fused with the first stage's labels: empty when the first stage
    finds no scar or MVO anywhere in the stack (stage 2 alone over-calls scar on hearts without
    infarct); otherwise the first stage's MVO is kept as MVO and the stage-2 scar + MVO around it
    becomes scar."""
    out = np.zeros(stage2.shape, np.uint8)
    if not np.isin(stage1, L.SCAR_WITH_MVO).any():
        return out
    out[stage2 > 0] = L.SCAR
    out[stage1 == L.MVO] = L.MVO
    return out


def apply(stage1: np.ndarray, stage2: np.ndarray) -> np.ndarray:
    """Stage-1 labels with scar / MVO replaced by stage 2's inside the stage-1 myocardium."""
    out = stage1.copy()
    myo = np.isin(stage1, L.MYOCARDIAL)
    out[myo] = L.LV_MYOCARDIUM
    out[myo & (stage2 == L.SCAR)] = L.SCAR
    out[myo & (stage2 == L.MVO)] = L.MVO
    return out


# ----------------------------------------------------------------------------- training


def jitter_mask(myo: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The reference myocardium changed as a first stage might: dilated or eroded by 1-2 pixels
    and / or shifted by up to 2 pixels in-plane (per stack)."""
    m = myo.copy()
    r = rng.random()
    st = ndimage.generate_binary_structure(3, 1)
    st[0] = st[2] = False  # in-plane only
    if r < 0.3:
        m = ndimage.binary_dilation(m, st, iterations=int(rng.integers(1, 3)))
    elif r < 0.55:
        e = ndimage.binary_erosion(m, st, iterations=1)
        m = e if e.sum() > 0.5 * m.sum() else m
    if rng.random() < 0.5:
        dy, dx = rng.integers(-2, 3, size=2)
        m = np.roll(m, (int(dy), int(dx)), axis=(1, 2))
    return m


def _target(lab: np.ndarray) -> np.ndarray:
    t = np.zeros(lab.shape, np.int64)
    t[lab == L.SCAR] = 1
    t[lab == L.MVO] = 2
    return t


def loss_fn(logits, target, gamma: float = 2.0, kind: str = "dice_focal"):
    """Focal cross-entropy plus, over the batch, for scar + MVO and for MVO: soft Dice
    (``dice_focal``) or focal Tversky (``focal_tversky``)."""
    if kind not in LOSSES:
        raise ValueError(f"loss {kind!r}: expected one of {', '.join(LOSSES)}")
    p = logits.softmax(1)
    ce = F.cross_entropy(logits, target, reduction="none")
    pt = torch.exp(-ce)
    focal = ((1 - pt) ** gamma * ce).mean()
    dl = 0
    for pred, ref in ((p[:, 1] + p[:, 2], (target > 0).float()), (p[:, 2], (target == 2).float())):
        inter = (pred * ref).sum()
        if kind == "dice_focal":
            dl = dl + 1 - (2 * inter + 1) / (pred.sum() + ref.sum() + 1)
        else:
            fp, fn = (pred * (1 - ref)).sum(), ((1 - pred) * ref).sum()
            ti = (inter + 1) / (inter + TVERSKY_ALPHA * fp + TVERSKY_BETA * fn + 1)
            dl = dl + (1 - ti) ** TVERSKY_GAMMA
    return focal + dl / 2


def _samples(cases, classic: bool, rng, context: bool = False):
    """Per case: (input channels (C, Z, H, W) cropped with a jittered mask, target (Z, side, side))."""
    out = []
    for image, lab in cases:
        myo_ref = np.isin(lab, L.MYOCARDIAL)
        m = jitter_mask(myo_ref, rng)
        x = input_channels(image, m, classic, context)
        cy, cx, side = crop_box(myo_ref)
        cy += int(rng.integers(-6, 7))
        cx += int(rng.integers(-6, 7))
        out.append((crop(x, cy, cx, CROP), crop(_target(lab), cy, cx, CROP)))
    return out


def train(cases, ckpt_path: str, *, classic: bool, iterations: int = 800, batch: int = 8, seed: int = 0,
          lr: float = 2e-3, checkpoint_every: int = 100, refresh_every: int = 100, log=None,
          context: bool = False, loss: str = "dice_focal") -> ScarNet:
    """Train a :class:`ScarNet` on ``cases`` [(image (Z, H, W), project labels)], resuming from
    ``ckpt_path`` when it exists; returns the trained network (eval mode). The jittered inputs
    are redrawn every ``refresh_every`` iterations. ``context``: 2.5D input (see
    :func:`input_channels`); ``loss``: one of :data:`LOSSES` (see :func:`loss_fn`)."""
    if loss not in LOSSES:
        raise ValueError(f"loss {loss!r}: expected one of {', '.join(LOSSES)}")
    torch.manual_seed(seed)
    net = ScarNet(n_inputs(classic, context))
    bright = intensity_channels(classic, context)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=iterations, pct_start=0.1)
    start = 0
    if os.path.isfile(ckpt_path):
        st = torch.load(ckpt_path, weights_only=True)
        net.load_state_dict(st["net"])
        opt.load_state_dict(st["opt"])
        sched.load_state_dict(st["sched"])
        start = int(st["iteration"])
    rng = np.random.default_rng(seed + 1000 * start)
    net.train()
    data = None
    for it in range(start, iterations):
        if data is None or (it - start) % refresh_every == 0:
            data = _samples(cases, classic, rng, context)
            slices = [(i, k) for i, (x, t) in enumerate(data) for k in range(x.shape[1])]
            scar = [s for s in slices if (data[s[0]][1][s[1]] > 0).any()]
            plain = [s for s in slices if not (data[s[0]][1][s[1]] > 0).any()]
        picks = []
        for _ in range(batch):  # scar slices drawn with probability 2/3
            pool = scar if scar and (rng.random() < 2 / 3 or not plain) else plain
            picks.append(pool[int(rng.integers(len(pool)))])
        xb = np.stack([data[i][0][:, k] for i, k in picks])
        tb = np.stack([data[i][1][k] for i, k in picks])
        if rng.random() < 0.5:
            xb, tb = xb[..., ::-1], tb[..., ::-1]
        if rng.random() < 0.5:
            xb, tb = xb[..., ::-1, :], tb[..., ::-1, :]
        kr = int(rng.integers(4))
        xb, tb = np.rot90(xb, kr, (-2, -1)), np.rot90(tb, kr, (-2, -1))
        xb = np.ascontiguousarray(xb)
        xb[:, bright] = xb[:, bright] * float(rng.uniform(0.85, 1.15)) + float(rng.normal(0, 0.05))
        x = torch.from_numpy(np.ascontiguousarray(xb))
        t = torch.from_numpy(np.ascontiguousarray(tb))
        value = loss_fn(net(x), t, kind=loss)
        opt.zero_grad()
        value.backward()
        opt.step()
        sched.step()
        if log and (it + 1) % 50 == 0:
            log(f"iteration {it + 1}/{iterations} loss {float(value):.4f}")
        if (it + 1) % checkpoint_every == 0 or it + 1 == iterations:
            tmp = ckpt_path + ".tmp"
            torch.save({"net": net.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                        "iteration": it + 1}, tmp)
            os.replace(tmp, ckpt_path)
    net.eval()
    return net
