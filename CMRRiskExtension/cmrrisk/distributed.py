"""Data-parallel training under ``torchrun``: the process group, and the pieces a training loop
needs to run as one of several identical replicas.

``torchrun --nproc_per_node N -m cmrrisk COMMAND ...`` starts N processes that run the same
command with ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` set. :func:`distributed_context` joins
them into one process group (nccl when training on CUDA, else gloo). Two commands train that
way: ``train-segmentation`` (:mod:`cmrrisk.segmentation.train`) and ``train --model multiinput``
(:mod:`cmrrisk.predict.multiinput` through :func:`cmrrisk.predict.models.training.fit_network`,
which takes a :class:`DataParallel`).

:class:`DataParallel` holds one replica's side of a fit: the network wrapped in PyTorch's
DistributedDataParallel (gradients averaged over the processes at every step), this process's
share of a batch that every process drew from the same shared stream, the batch-norm statistics
taken from rank 0 before each evaluation, values agreed on by broadcasting rank 0's (so that
early stopping decides the same on every process), and the check that the replicas ended equal.
Setting ``CMRRISK_DDP_CHECK=FOLDER`` makes every process write what it checked (a digest of its
weights after each epoch and at the end of each fit) to ``FOLDER/rank<R>.jsonl``.
"""

from __future__ import annotations

import hashlib
import json
import os

from .errors import CMRRiskError

#: environment variable: a folder where each process writes the digests of its replica
CHECK_ENV = "CMRRISK_DDP_CHECK"


def world_size() -> int:
    """The number of processes ``torchrun`` started (1 outside it); nothing is initialised."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1") or 1))
    except ValueError:
        raise CMRRiskError(f"WORLD_SIZE={os.environ.get('WORLD_SIZE')!r}: not a number of processes; "
                           "start distributed runs with torchrun.") from None


def distributed_context(device: str = "cpu") -> tuple[int, int, int]:
    """(rank, world size, local rank) under ``torchrun`` (the process group initialised here:
    nccl when training on CUDA, else gloo); (0, 1, 0) otherwise."""
    world = world_size()
    if world <= 1:
        return 0, 1, 0
    import torch
    import torch.distributed as dist

    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        cuda = device in ("cuda", "auto") and torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(local)
        dist.init_process_group("nccl" if cuda else "gloo")
    return rank, world, local


def close() -> None:
    """Leave the process group (when one was joined)."""
    if world_size() > 1:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


_BARRIERS = [0]


def barrier() -> None:
    """Wait for every process (nothing outside a process group). After the group's own barrier,
    a second one through ``torchrun``'s rendezvous store: a gloo context closed right after a
    barrier can still fail a peer that has not finished it, so a process leaves the group only
    once every process has finished its last collective."""
    import datetime

    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return
    dist.barrier()
    addr, port = os.environ.get("MASTER_ADDR"), os.environ.get("MASTER_PORT")
    if not (addr and port):
        return
    store = dist.TCPStore(addr, int(port), is_master=False, timeout=datetime.timedelta(minutes=10))
    _BARRIERS[0] += 1
    key = (f"cmrrisk-barrier/{os.environ.get('TORCHELASTIC_RUN_ID', '')}/"
           f"{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}/{_BARRIERS[0]}")
    store.set(f"{key}/{dist.get_rank()}", "1")
    store.wait([f"{key}/{r}" for r in range(dist.get_world_size())])


def state_digest(state: dict) -> str:
    """SHA-256 of a state dict's names and tensor bytes (equal replicas, equal digests)."""
    h = hashlib.sha256()
    for k in sorted(state):
        h.update(k.encode())
        h.update(state[k].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


class DataParallel:
    """One replica's side of a data-parallel fit (see the module); make it with
    :func:`data_parallel`, which returns None outside ``torchrun``."""

    def __init__(self, rank: int, world: int, label: str = "fit", device=None):
        self.rank, self.world, self.label = rank, world, label
        #: where the exchanged values live: the network's device (nccl exchanges CUDA tensors only)
        self.device = device
        self.epoch_digests: list = []

    def wrap(self, net):
        """The network wrapped for training: its forward and backward pass average the
        gradients over the processes (rank 0's weights are broadcast first)."""
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(net)

    def usable(self, ix) -> bool:
        """Whether a batch of ``len(ix)`` rows gives every process at least one."""
        return len(ix) >= self.world

    def share(self, ix):
        """This process's rows of a batch (rows r, r + world, ...; disjoint, together the batch)."""
        return ix[self.rank::self.world]

    def scale(self, part: float, whole: float) -> float:
        """Factor on this process's mean loss so that the averaged gradient is that of the whole
        batch's mean: ``world * part / whole`` (``part``, ``whole``: rows, or events, in the
        share and in the batch)."""
        return self.world * float(part) / float(whole) if whole else 0.0

    def sync_buffers(self, net) -> None:
        """Rank 0's buffers (batch-norm statistics) on every process."""
        import torch.distributed as dist

        for b in net.buffers():
            dist.broadcast(b, 0)

    def agree(self, value: float) -> float:
        """Rank 0's ``value`` on every process."""
        import torch
        import torch.distributed as dist

        t = torch.tensor([float(value)], dtype=torch.float64, device=self.device)
        dist.broadcast(t, 0)
        return float(t.item())

    def total(self, *values: float) -> list:
        """The sums of ``values`` over the processes."""
        import torch
        import torch.distributed as dist

        t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return [float(v) for v in t]

    def epoch_done(self, net) -> None:
        """After an epoch (buffers synchronised): the replica's digest, kept for the check file."""
        if os.environ.get(CHECK_ENV):
            self.epoch_digests.append(state_digest(net.state_dict()))

    def check_replicas(self, net) -> dict:
        """Compare the replicas at the end of a fit: the largest absolute difference of any
        weight or buffer from rank 0's (all-reduced, so every process gets it) and the digests
        of all processes. Raises when they differ; returns the record kept in the model."""
        import torch
        import torch.distributed as dist

        state = net.state_dict()
        worst = torch.zeros(1, dtype=torch.float64, device=self.device)
        for k in sorted(state):
            v = state[k].detach()
            ref = v.clone()
            dist.broadcast(ref, 0)
            if v.numel():
                worst = torch.maximum(worst, (v.double() - ref.double()).abs().max().reshape(1))
        dist.all_reduce(worst, op=dist.ReduceOp.MAX)
        digest = state_digest(state)
        digests = [None] * self.world
        dist.all_gather_object(digests, digest)
        self._write_check(digest)
        if len(set(digests)) != 1 or float(worst.item()) != 0.0:
            raise RuntimeError(f"data-parallel training: the {self.world} replicas differ after the "
                               f"{self.label} (largest weight difference {float(worst.item()):.3g})")
        return {"world_size": self.world, "backend": dist.get_backend(),
                "replicas_identical": True, "max_weight_difference": float(worst.item())}

    def _write_check(self, digest: str) -> None:
        folder = os.environ.get(CHECK_ENV)
        if not folder:
            return
        os.makedirs(folder, exist_ok=True)
        rec = {"rank": self.rank, "world_size": self.world, "fit": self.label,
               "epochs": self.epoch_digests, "final": digest}
        with open(os.path.join(folder, f"rank{self.rank}.jsonl"), "a") as fh:
            fh.write(json.dumps(rec) + "\n")


def data_parallel(label: str = "fit") -> DataParallel | None:
    """A :class:`DataParallel` for this process under ``torchrun`` (joining the process group
    if needed, gloo: these fits run on the CPU); None in a single process."""
    if world_size() <= 1:
        return None
    rank, world, _ = distributed_context("cpu")
    return DataParallel(rank, world, label)
