"""Saliency maps for image networks (captum), and the sanity checks that go with them.

Every function here works on a torch module ``net(images, covariates)`` whose ``images`` are
(n, slices, channels, H, W) and whose ``covariates`` are (n, n_cov) (n_cov may be 0): the
multi-input network of :mod:`cmrrisk.predict.multiinput`. Results are numpy arrays on the
network's grid; :func:`cmrrisk.predict.images.from_grid` (called by :mod:`.core`) puts them back
onto the original image.

Methods (``METHODS``):

* ``gradcam``: Grad-CAM on a convolutional layer (default ``cnn.block4``), positive part,
  upsampled bilinearly to the slice size. The layer sees the n*slices images as one batch; the
  result is reshaped back to (n, slices, H, W).
* ``ig``: Integrated Gradients from an all-zero image (``internal_batch_size`` bounds memory).
* ``gradshap``: GradientShap with baselines drawn from zero and from noisy copies of the input.
* ``occlusion``: the drop in the score when a square patch of every channel is set to zero.

Channel-resolved methods (ig, gradshap) keep the channel axis: (n, slices, channels, H, W).
"""

from __future__ import annotations

import numpy as np

from ..errors import CMRRiskError

METHODS = ("gradcam", "ig", "gradshap", "occlusion")
DEFAULT_LAYER = "cnn.block4"


class _Forward:
    """``net`` as a function of (images, covariates). With ``contrast`` and several outputs, the
    score of a class is its logit minus the mean logit over classes, so that evidence shared by
    every class cancels (unlike the log-probability, it does not saturate for confident
    predictions)."""

    def __init__(self, net, contrast: bool = False):
        self.net = net
        self.contrast = contrast

    def __call__(self, images, covariates):
        out = self.net(images, covariates)
        if self.contrast and out.shape[1] > 1:
            out = out - out.mean(dim=1, keepdim=True)
        return out


def _tensors(images, covariates):
    import torch

    x = torch.as_tensor(np.asarray(images, np.float32))
    if x.ndim != 5:
        raise CMRRiskError(f"images must be (n, slices, channels, H, W); got shape {tuple(x.shape)}.")
    c = np.zeros((x.shape[0], 0), np.float32) if covariates is None else np.asarray(covariates, np.float32)
    return x, torch.as_tensor(c.reshape(x.shape[0], -1))


def get_layer(net, name: str):
    """The sub-module ``name`` (dotted path, e.g. ``cnn.block4``) of ``net``."""
    mod = net
    for part in name.split("."):
        if not hasattr(mod, part):
            raise CMRRiskError(f"layer {name!r} not found in the network (no {part!r}); "
                               "choose a convolutional layer such as cnn.block3 or cnn.block4.")
        mod = getattr(mod, part)
    return mod


def image_attributions(net, images, covariates=None, target=None, method: str = "gradcam",
                       layer: str = DEFAULT_LAYER, n_steps: int = 32, internal_batch_size: int = 16,
                       n_samples: int = 16, window: int = 16, stride: int = 8, seed: int = 0,
                       with_covariates: bool = False):
    """Attributions of the score ``net(images, covariates)[:, target]`` to the images.

    Returns (n, slices, H, W) for gradcam and occlusion, (n, slices, channels, H, W) for ig and
    gradshap; with ``with_covariates`` a pair (image attributions, covariate attributions (n, n_cov)
    or None when the method does not attribute covariates jointly).
    ``target``: class index (int, or one per subject); ``None`` for a single-output network.
    """
    import torch
    from captum.attr import GradientShap, IntegratedGradients, LayerAttribution, LayerGradCam, Occlusion

    if method not in METHODS:
        raise CMRRiskError(f"--method {method!r}: choose one of {', '.join(METHODS)}.")
    n_all = len(images)
    if method == "ig" and n_all > max(1, internal_batch_size):
        # captum needs internal_batch_size >= subjects per call: explain in chunks
        step = max(1, internal_batch_size)
        parts = [image_attributions(net, images[s:s + step], None if covariates is None else covariates[s:s + step],
                                    target if target is None or isinstance(target, (int, np.integer))
                                    else np.asarray(target).ravel()[s:s + step], method, layer, n_steps,
                                    internal_batch_size, n_samples, window, stride, seed, True)
                 for s in range(0, n_all, step)]
        out = np.concatenate([p[0] for p in parts])
        cov = None if parts[0][1] is None else np.concatenate([p[1] for p in parts])
        return (out, cov) if with_covariates else out
    x, c = _tensors(images, covariates)
    n, k, ch, h, w = x.shape
    was_training = net.training
    net.eval()
    fwd = _Forward(net)
    tgt = 0 if target is None else target
    if isinstance(tgt, np.integer):
        tgt = int(tgt)
    if not isinstance(tgt, int):
        tgt = [int(t) for t in np.asarray(tgt).ravel()]
    cov_attr = None
    try:
        if method == "gradcam":
            lgc = LayerGradCam(_Forward(net, contrast=True), get_layer(net, layer))
            a = lgc.attribute(x, target=tgt, additional_forward_args=(c,), relu_attributions=True)
            a = LayerAttribution.interpolate(a.detach(), (h, w), interpolate_mode="bilinear")
            out = a.reshape(n, k, h, w).clamp_min(0).numpy()
        elif method == "ig":
            ig = IntegratedGradients(fwd)
            inputs = (x, c) if c.shape[1] else x
            extra = None if c.shape[1] else (c,)
            a = ig.attribute(inputs, baselines=tuple(torch.zeros_like(t) for t in inputs)
                             if isinstance(inputs, tuple) else torch.zeros_like(x),
                             target=tgt, additional_forward_args=extra, n_steps=n_steps,
                             internal_batch_size=internal_batch_size)
            if isinstance(a, tuple):
                out, cov_attr = a[0].detach().numpy(), a[1].detach().numpy()
            else:
                out = a.detach().numpy()
        elif method == "gradshap":
            # baselines: an all-zero image and a flat image at each channel's mean intensity
            flat = torch.ones_like(x[:1]) * x.mean(dim=(0, 1, 3, 4), keepdim=True)
            base = torch.cat([torch.zeros_like(x[:1]), flat])
            gs = GradientShap(fwd)
            torch.manual_seed(seed)
            if c.shape[1]:
                a = gs.attribute((x, c), baselines=(base, torch.zeros(2, c.shape[1])), n_samples=n_samples,
                                 stdevs=0.05, target=tgt)
                out, cov_attr = a[0].detach().numpy(), a[1].detach().numpy()
            else:
                a = gs.attribute(x, baselines=base, n_samples=n_samples, stdevs=0.05, target=tgt,
                                 additional_forward_args=(c,))
                out = a.detach().numpy()
        else:  # occlusion
            occ = Occlusion(fwd)
            win, st = min(window, h, w), min(stride, h, w)
            a = occ.attribute(x, sliding_window_shapes=(1, ch, win, win), strides=(1, ch, st, st),
                              baselines=0.0, target=tgt, additional_forward_args=(c,),
                              perturbations_per_eval=32)
            out = a.detach().numpy().mean(axis=2)  # identical over channels
    finally:
        net.train(was_training)
    out = out.astype(np.float32)
    return (out, cov_attr) if with_covariates else out


def collapse_channels(attr: np.ndarray, channels=None) -> np.ndarray:
    """(n, slices, channels, H, W) -> (n, slices, H, W): sum over ``channels`` (all when None);
    a 4D array is returned as is."""
    a = np.asarray(attr)
    if a.ndim == 4:
        return a
    if a.ndim != 5:
        raise CMRRiskError(f"attributions must be 4D or 5D; got shape {a.shape}.")
    idx = list(range(a.shape[2])) if channels is None else list(channels)
    return a[:, :, idx].sum(axis=2)


# ------------------------------------------------------------------------------- sanity checks

def positive_share(heat: np.ndarray, mask: np.ndarray) -> float:
    """Share of the positive attribution that lies inside ``mask`` (nan when nothing is positive)."""
    h = np.clip(np.asarray(heat, float), 0, None)
    m = np.asarray(mask, bool)
    if h.shape != m.shape:
        raise CMRRiskError(f"heatmap shape {h.shape} differs from mask shape {m.shape}.")
    total = h.sum()
    return float(h[m].sum() / total) if total > 0 else float("nan")


def rank_correlation(a: np.ndarray, b: np.ndarray, absolute: bool = True) -> float:
    """Spearman rank correlation of two maps (of |values| by default, as in Adebayo et al. 2018)."""
    from scipy.stats import spearmanr

    a, b = np.asarray(a, float).ravel(), np.asarray(b, float).ravel()
    if absolute:
        a, b = np.abs(a), np.abs(b)
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b)[0])


def randomised_copy(net, seed: int = 0, cascade_from: str | None = None):
    """A copy of ``net`` with re-initialised weights (the model-randomisation test of Adebayo
    et al. 2018). ``cascade_from``: only the named top-level child and those after it are
    re-initialised (cascading randomisation); default: every layer."""
    import copy

    import torch

    torch.manual_seed(seed)
    new = copy.deepcopy(net)
    names = [n for n, _ in new.named_children()]
    if cascade_from is not None and cascade_from not in names:
        raise CMRRiskError(f"{cascade_from!r} is not a top-level layer ({', '.join(names)}).")
    start = names.index(cascade_from) if cascade_from else 0
    chosen = set(names[start:])
    for name, child in new.named_children():
        if name not in chosen:
            continue
        for m in child.modules():
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.reset_running_stats()
    if cascade_from is None:
        for pname, p in new.named_parameters(recurse=False):
            with torch.no_grad():
                p.normal_(0, 0.1)
    new.eval()
    return new


def randomisation_test(net, images, covariates=None, target=None, method: str = "gradcam",
                       seed: int = 0, n_random: int = 3, **kw) -> dict:
    """Spearman rank correlation between each subject's map from the trained network and from
    ``n_random`` randomised copies (seeds ``seed``, ``seed + 1``, ...): a method that explains the
    model gives low correlations. A map that vanishes for a randomised copy counts as rho 0."""
    a = collapse_channels(image_attributions(net, images, covariates, target, method, **kw))
    rho = []
    for r in range(int(n_random)):
        b = collapse_channels(image_attributions(randomised_copy(net, seed + r), images, covariates, target,
                                                 method, **kw))
        for i in range(len(a)):
            v = rank_correlation(a[i], b[i])
            rho.append(0.0 if v != v and np.ptp(b[i]) == 0 and np.ptp(a[i]) > 0 else v)
    return {"method": method, "n_random": int(n_random), "spearman": rho,
            "spearman_mean": float(np.nanmean(rho)) if rho else None}
