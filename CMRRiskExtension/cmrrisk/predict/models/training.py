"""The one training loop of every network (survival, diagnosis, multi-input): Adam,
mini-batches, early stopping on a validation split of the training data (best epoch's weights
kept), a cancel check once per epoch, and a CPU thread limit."""

from __future__ import annotations

import contextlib

import numpy as np

from ...errors import CMRRiskError

#: a callable set by a long-running caller (``cmrrisk.predict.study.train_model``) that raises to
#: stop training; models call :func:`check_interrupt` once per epoch or boosting round
_INTERRUPT = None


def check_interrupt() -> None:
    """Give a caller's cancel request a chance to stop a long fit (raises its exception)."""
    if _INTERRUPT is not None:
        _INTERRUPT()


@contextlib.contextmanager
def interrupt_hook(fn):
    """Within the block, :func:`check_interrupt` calls ``fn`` (which raises to stop)."""
    global _INTERRUPT
    previous, _INTERRUPT = _INTERRUPT, fn
    try:
        yield
    finally:
        _INTERRUPT = previous


@contextlib.contextmanager
def torch_threads(n: int | None = 1):
    """Run small tabular networks on ``n`` CPU threads (restored afterwards): for networks this
    size more threads only add synchronisation, and on a shared machine they can be 40x slower.
    ``n=None`` leaves the thread count alone (image networks)."""
    import torch

    old = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@contextlib.contextmanager
def seeded(seed: int, threads: int | None = 1, fork: bool = True):
    """Torch's global generator seeded with ``seed`` within the block (its previous state
    restored afterwards when ``fork``), on ``threads`` CPU threads."""
    import torch

    ctx = torch.random.fork_rng() if fork else contextlib.nullcontext()
    with ctx, torch_threads(threads):
        torch.manual_seed(seed)
        yield


def split_validation(n, fraction, seed, strata=None):
    """Deterministic train/validation split of ``range(n)`` (stratified by ``strata``) for early
    stopping; the validation part is ``fraction`` of each stratum (rounded)."""
    rng = np.random.default_rng(seed + 7919)
    if strata is None:
        strata = np.zeros(n, dtype=int)
    va = []
    for s in np.unique(strata):
        idx = np.flatnonzero(strata == s)
        rng.shuffle(idx)
        va.extend(idx[: int(round(fraction * len(idx)))])
    va = np.sort(np.asarray(va, dtype=int))
    tr = np.setdiff1d(np.arange(n), va)
    if len(va) < 2 or len(tr) < 2:
        raise CMRRiskError(f"too few subjects ({n}) to hold out a validation split for early "
                           "stopping.")
    return tr, va


def fit_network(net, batch_loss, val_loss, rows, *, lr, weight_decay, batch_size, max_epochs,
                patience, generator, skip_batch=None, tol=1e-7, history=None, parallel=None,
                weight=len):
    """Train ``net`` in place and keep its best epoch's weights; returns the best epoch (1-based).

    Each epoch: :func:`check_interrupt`, ``rows`` shuffled with ``generator``, mini-batches of
    ``batch_size`` (a batch of fewer than two rows, or one ``skip_batch(ix)`` refuses, is
    skipped), ``batch_loss(net, ix)`` minimised with Adam; then ``val_loss(net)`` in evaluation
    mode. Training stops ``patience`` epochs after the last improvement by more than ``tol``.
    ``history`` (a list) receives {"epoch", "train_loss", "val_loss"} per epoch.

    ``parallel`` (a :class:`cmrrisk.distributed.DataParallel`, under ``torchrun``): this process
    is one replica. ``generator`` must then be seeded alike on every process (the shuffles, and so
    the batches and the skipped ones, are the same everywhere); each process computes the loss on
    its share of the batch through the DistributedDataParallel wrapper, scaled by its share of
    ``weight(ix)`` (rows; events for a Cox loss) so that the averaged gradient is the batch's; a
    batch with fewer rows than processes is skipped; before validation the batch-norm statistics
    are rank 0's and rank 0's validation loss decides for all, so the processes stop together
    with equal weights (checked at the end)."""
    import torch

    model = net if parallel is None else parallel.wrap(net)
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
    best, best_state, best_ep = np.inf, None, 0
    for ep in range(int(max_epochs)):
        check_interrupt()
        model.train()
        perm = rows[torch.randperm(len(rows), generator=generator).numpy()]
        losses = []
        for s in range(0, len(perm), batch_size):
            ix = perm[s:s + batch_size]
            if len(ix) < 2 or (skip_batch is not None and skip_batch(ix)):
                continue
            if parallel is not None and not parallel.usable(ix):
                continue
            opt.zero_grad()
            if parallel is None:
                loss = batch_loss(net, ix)
            else:
                part = parallel.share(ix)
                loss = batch_loss(model, part) * parallel.scale(weight(part), weight(ix))
            loss.backward()
            opt.step()
            if history is not None:
                losses.append(loss.item())
        net.eval()
        if parallel is not None:
            parallel.sync_buffers(net)
            parallel.epoch_done(net)
        with torch.no_grad():
            vl = float(val_loss(net))
        if parallel is not None:
            vl = parallel.agree(vl)
            if history is not None:  # the mean over processes of the batches' (scaled) losses
                total, count = parallel.total(sum(losses), len(losses))
                losses = [total / count] if count else []
        if history is not None:
            history.append({"epoch": ep + 1, "train_loss": float(np.mean(losses)) if losses else None,
                            "val_loss": vl})
        if vl < best - tol or best_state is None:
            best, best_ep = vl, ep
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        elif ep - best_ep >= patience:
            break
    net.load_state_dict(best_state)
    net.eval()
    return best_ep + 1
