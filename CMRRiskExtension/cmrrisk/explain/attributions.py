"""Attributions of a prediction to its covariates / features, per subject and over a cohort.

The explained score is what the model predicts for one subject: for a diagnosis model the
probability of a class (by default the predicted one), for a survival model the risk score (log
hazard; higher = worse). Inputs are the preprocessed (standardised) features, so the all-zero
baseline is the training cohort's average subject.

* image networks (``uses_inputs``, e.g. ``multiinput``): Integrated Gradients or GradientShap of
  the network's output with respect to the covariate branch, the subject's images held fixed;
* any other model (coefficients, trees, small networks): captum's KernelShap on the model's own
  prediction function (model-agnostic, no gradients needed).

:func:`global_importance` summarises a cohort: mean |attribution| per feature and permutation
importance (drop in accuracy or Harrell's C-index when one feature, or the images as one block,
is shuffled across subjects).
"""

from __future__ import annotations

import numpy as np

from ..errors import CMRRiskError

IMAGES = "images"  # name of the image block in importance tables


def _is_image_model(model) -> bool:
    return bool(getattr(model, "uses_inputs", False)) and getattr(model, "net", None) is not None


def scorer(model, endpoint: str, target=None, images=None):
    """f(x (n, d)) -> (n,) scores: class ``target`` probability (diagnosis) or risk (survival).
    ``images`` (n, ...) are passed to image models (one per row of x)."""
    def f(x):
        x = np.asarray(x, np.float32)
        kw = {} if images is None else {"images": images}
        if endpoint == "diagnosis":
            p = model.predict_proba(x, **kw)
            t = np.zeros(len(x), int) if target is None else np.broadcast_to(np.asarray(target), (len(x),))
            return p[np.arange(len(x)), t]
        return np.asarray(model.predict_risk(x, **kw), float)
    return f


def covariate_attributions(model, x, endpoint: str, target=None, images=None, method: str = "auto",
                           n_samples: int = 200, n_steps: int = 32, seed: int = 0) -> np.ndarray:
    """Attributions (n, d) of each subject's score to its d preprocessed features.

    ``method``: ``ig`` or ``gradshap`` (image networks: gradients through the covariate branch),
    ``kernelshap`` (any model), ``auto`` (ig for image networks, kernelshap otherwise).
    """
    import torch

    x = np.asarray(x, np.float32)
    if x.ndim != 2:
        raise CMRRiskError(f"features must be a 2D matrix (subjects x features); got shape {x.shape}.")
    n, d = x.shape
    if d == 0:
        return np.zeros((n, 0), np.float32)
    image_model = _is_image_model(model)
    if method == "auto":
        method = "ig" if image_model else "kernelshap"
    if method in ("ig", "gradshap") and image_model:
        return _net_covariate_attributions(model, x, endpoint, target, images, method, n_steps, seed)
    if method not in ("ig", "gradshap", "kernelshap"):
        raise CMRRiskError(f"covariate attribution method {method!r}: choose ig, gradshap or kernelshap.")
    from captum.attr import KernelShap

    out = np.zeros((n, d), np.float32)
    tg = None if target is None else np.broadcast_to(np.asarray(target), (n,))
    for i in range(n):
        img_i = None if images is None else images[i:i + 1]
        f = scorer(model, endpoint, None if tg is None else int(tg[i]), img_i)

        def fwd(t, f=f):
            return torch.as_tensor(f(t.detach().numpy()), dtype=torch.float64)

        torch.manual_seed(seed)
        ks = KernelShap(fwd)
        a = ks.attribute(torch.as_tensor(x[i:i + 1], dtype=torch.float64),
                         baselines=torch.zeros(1, d, dtype=torch.float64),
                         n_samples=max(n_samples, 2 * d + 2), perturbations_per_eval=64)
        out[i] = a.detach().numpy()[0]
    return out


def _net_covariate_attributions(model, x, endpoint, target, images, method, n_steps, seed):
    import torch
    from captum.attr import GradientShap, IntegratedGradients

    if images is None:
        raise CMRRiskError(f"model {model.name!r} needs the subjects' images to attribute its covariates.")
    net = model.net
    net.eval()
    imgs = torch.as_tensor(np.asarray(images, np.float32))
    c = torch.as_tensor(x)
    if endpoint == "diagnosis":
        probs = torch.nn.functional.softmax

        def fwd(cov, im):
            return probs(net(im, cov), dim=1)
        tgt = 0 if target is None else [int(t) for t in np.broadcast_to(np.asarray(target), (len(x),))]
    else:
        def fwd(cov, im):
            return net(im, cov)[:, 0]
        tgt = None
    if method == "ig":
        a = IntegratedGradients(fwd).attribute(c, baselines=torch.zeros_like(c), target=tgt,
                                               additional_forward_args=(imgs,), n_steps=n_steps,
                                               internal_batch_size=max(8, n_steps))
    else:
        torch.manual_seed(seed)
        a = GradientShap(fwd).attribute(c, baselines=torch.zeros(2, c.shape[1]), n_samples=16,
                                        stdevs=0.1, target=tgt, additional_forward_args=(imgs,))
    return a.detach().numpy().astype(np.float32)


# ---------------------------------------------------------------------------- cohort summaries

def _metric(endpoint, y):
    if endpoint == "diagnosis":
        yy = np.asarray(y)

        def acc(pred):
            return float(np.mean(np.asarray(pred).argmax(1) == yy))
        return acc, "accuracy"
    from ..predict.evaluation import harrell

    t, e = y

    def cidx(risk):
        return harrell(t, e, np.asarray(risk, float).ravel())
    return cidx, "c_index_harrell"


def _predict(model, endpoint, x, images):
    kw = {} if images is None else {"images": images}
    return model.predict_proba(x, **kw) if endpoint == "diagnosis" else model.predict_risk(x, **kw)


def permutation_importance(model, x, y, names, endpoint: str, images=None, n_repeats: int = 5,
                           seed: int = 0) -> list:
    """Drop in accuracy (diagnosis; ``y`` class indices) or Harrell's C-index (survival; ``y`` a
    (time, event) pair) when one feature - or, for image models, the images as one block - is
    shuffled across subjects. Returns [{feature, importance (mean drop), sd, metric, baseline}]."""
    x = np.asarray(x, np.float32)
    metric, metric_name = _metric(endpoint, y)
    base = metric(_predict(model, endpoint, x, images))
    rng = np.random.default_rng(seed)
    out = []
    blocks = [(j, nm) for j, nm in enumerate(names)]
    if images is not None:
        blocks.append((None, IMAGES))
    for j, nm in blocks:
        drops = []
        for _ in range(n_repeats):
            perm = rng.permutation(len(x))
            xp, ip = x, images
            if j is None:
                ip = images[perm]
            else:
                xp = x.copy()
                xp[:, j] = x[perm, j]
            drops.append(base - metric(_predict(model, endpoint, xp, ip)))
        out.append({"feature": nm, "importance": float(np.mean(drops)), "sd": float(np.std(drops)),
                    "metric": metric_name, "baseline": base})
    return out


def global_importance(model, x, y, names, endpoint: str, images=None, target=None, n_repeats: int = 5,
                      seed: int = 0, method: str = "auto") -> list:
    """Per feature: mean |attribution| over the cohort and permutation importance; sorted by
    permutation importance (largest first)."""
    names = list(names)
    if len(names) != np.asarray(x).shape[1]:
        raise CMRRiskError(f"{len(names)} feature names for {np.asarray(x).shape[1]} feature columns.")
    if target is None and endpoint == "diagnosis":
        kw = {} if images is None else {"images": images}
        target = model.predict_proba(np.asarray(x, np.float32), **kw).argmax(1)
    attr = covariate_attributions(model, x, endpoint, target, images, method, seed=seed)
    mean_abs = dict(zip(names, np.abs(attr).mean(0).tolist())) if len(names) else {}
    rows = permutation_importance(model, x, y, names, endpoint, images, n_repeats, seed)
    for r in rows:
        r["mean_abs_attribution"] = mean_abs.get(r["feature"])
    return sorted(rows, key=lambda r: -r["importance"])


def feature_values(table, names) -> list:
    """The subject's raw value of each preprocessed feature (``sex=M`` -> the subject's ``sex``),
    for tables with one subject; strings for categories, floats otherwise (nan when missing)."""
    df = table.covariates
    vals = []
    for nm in names:
        col = nm if nm in df.columns else nm.split("=", 1)[0]
        if col not in df.columns:
            vals.append(None)
            continue
        v = df[col].iloc[0]
        vals.append(v if isinstance(v, str) or v is None else float(v))
    return vals
