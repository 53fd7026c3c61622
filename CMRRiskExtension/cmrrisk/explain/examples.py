"""Example-based explanations: the reference (training) subjects most similar to a subject in
the model's latent space, with their outcomes.

Latent space: for networks with a ``head`` (the multi-input network) the vector that enters the
head (pooled image features + covariate branch), captured with a forward hook; for other models
the preprocessed (standardised) feature vector. Distances are Euclidean after scaling every
latent dimension by its standard deviation over the reference subjects.
"""

from __future__ import annotations

import numpy as np

from ..errors import CMRRiskError


def latent(model, x, images=None, batch: int = 16) -> np.ndarray:
    """(n, m) latent vectors of the subjects."""
    x = np.asarray(x, np.float32)
    net = getattr(model, "net", None)
    head = getattr(net, "head", None) if net is not None else None
    if head is None or images is None:
        if getattr(model, "uses_inputs", False) and images is None:
            raise CMRRiskError(f"model {model.name!r}: latent vectors need the subjects' images.")
        return x.astype(np.float64)
    import torch

    got = []
    hook = head.register_forward_hook(lambda mod, inp, out: got.append(inp[0].detach().numpy().copy()))
    try:
        net.eval()
        with torch.no_grad():
            for s in range(0, len(x), batch):
                net(torch.as_tensor(np.asarray(images[s:s + batch], np.float32)),
                    torch.as_tensor(x[s:s + batch].reshape(len(x[s:s + batch]), -1)))
    finally:
        hook.remove()
    return np.concatenate(got).astype(np.float64)


def similar_cases(query: np.ndarray, reference: np.ndarray, subjects, outcomes, k: int = 5,
                  exclude=None) -> list:
    """The ``k`` reference subjects nearest to ``query`` (one latent vector).

    ``outcomes``: one dict per reference subject (e.g. {"label": "DCM"} or {"time": .., "event": ..}).
    ``exclude``: subject identifiers to leave out (the query subject itself).
    Returns [{subject, distance, rank, **outcome}], nearest first.
    """
    ref = np.asarray(reference, float)
    q = np.asarray(query, float).ravel()
    if ref.ndim != 2 or ref.shape[1] != q.size:
        raise CMRRiskError(f"latent vectors differ in size: query {q.size}, reference {ref.shape}.")
    subjects = list(subjects)
    keep = [i for i, s in enumerate(subjects) if not exclude or s not in set(exclude)]
    if not keep:
        raise CMRRiskError("no reference subjects to compare with (all excluded).")
    sd = ref[keep].std(0)
    sd[sd < 1e-9] = 1.0
    dist = np.sqrt((((ref[keep] - q) / sd) ** 2).sum(1))
    order = np.argsort(dist, kind="stable")[:k]
    out = []
    for r, j in enumerate(order):
        i = keep[j]
        out.append({"rank": r + 1, "subject": subjects[i], "distance": float(dist[j]), **dict(outcomes[i])})
    return out


def outcomes_of(table, endpoint: str) -> list:
    """Per subject of ``table``: {"label": ...} (diagnosis) or {"time": ..., "event": ...}."""
    out = []
    for i in range(len(table)):
        if endpoint == "diagnosis":
            out.append({"label": None if table.label is None else str(table.label[i])})
        else:
            out.append({"time": None if table.time is None else float(table.time[i]),
                        "event": None if table.event is None else int(table.event[i])})
    return out
