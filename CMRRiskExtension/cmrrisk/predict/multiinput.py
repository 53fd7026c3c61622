"""``--model multiinput``: a network over the cine images (ED/ES pair with their segmentations as
extra channels) plus the clinical covariates, trained end to end.

Architecture (like the published CMR risk models, small enough for a laptop CPU):

* image branch: a 2D CNN shared by the grid's short-axis slices (4 blocks of 3x3 convolution,
  batch norm, ReLU, 2x2 max-pooling after the first three; widths w, 2w, 4w, 4w) on the 8
  channels of :mod:`.images` (ED and ES image, one-hot ED and ES labels), global average pooled
  per slice; a learned embedding of the slice position (base -> apex) is added and the slices
  are pooled by mean and max;
* LGE branch (when every training subject has an ``lge`` image; ``use_lge=False`` turns it
  off): the same CNN design on the LGE grid (LGE image, one-hot myocardium, scar, MVO), pooled
  the same way;
* covariate branch: one linear layer + ReLU (16 units) on the preprocessed covariates (absent
  when there are none);
* head: dropout, linear (32) + ReLU, linear -> class logits (diagnosis: cross-entropy) or one
  log-hazard (survival: negative Cox partial log-likelihood, pycox's ``cox_ph_loss`` as for
  ``deepsurv``; Breslow baseline for survival curves).

Training: Adam, mini-batches, augmentation (in-plane flips and 90-degree rotations of the whole
grid, intensity scale/shift of the image channels), early stopping on a stratified validation
split of the training subjects (best epoch kept). The layer ``cnn.block4`` is the Grad-CAM
target used by ``cmrrisk explain``.

Under ``torchrun`` (``WORLD_SIZE`` > 1; ``torchrun --nproc_per_node N -m cmrrisk train MANIFEST
--model multiinput ...``) every process runs the whole command the same way: it reads the
manifest, prepares the same image tensors, makes the same cross-validation folds and fits the
same sequence of networks, and each of those fits is data-parallel (PyTorch
DistributedDataParallel over gloo, on the CPU): the epoch's shuffle comes from the seed, alike on
every process; each process takes every N-th row of each batch (``batch_size`` is the total and
must be a multiple of N, at least 2N), augments it from its own stream and draws its own dropout;
the gradients are averaged (each process's loss weighted by its share of the batch's rows, or of
its events for the Cox loss); the batch-norm statistics are rank 0's before each validation and
rank 0's validation loss decides early stopping for all, so every process stops at the same epoch.
At the end of each fit the replicas are compared (largest weight difference and digests; they must
be equal, recorded as ``distributed`` in the model's configuration). Only rank 0 prints and writes
the model directory (:func:`cmrrisk.predict.study.train_model`). Other models are not trained in
parallel this way and are refused under ``torchrun``, as are engine workers (``--workers``,
``--scheduler``, ``--cluster``): the engine is the in-process one on every rank.
"""

from __future__ import annotations

import time

import numpy as np

from ..errors import CMRRiskError
from .images import CHANNELS, GRID, LGE_CHANNELS, prepare, prepare_lge
from .models.baseline import BreslowBaseline, BreslowMixin
from .models.params import COUNT, FRACTION, NON_NEGATIVE, POSITIVE, Interval, Options
from .models.registry import Model, register
from .models.targets import check_target
from .models.training import fit_network, seeded


def build_net(n_channels: int, n_cov: int, n_out: int, width: int = 16, slices: int = 8,
              dropout: float = 0.3, n_lge_channels: int = 0):
    """The network (:class:`~.models.networks.MultiInputNet`)."""
    from .models.networks import MultiInputNet

    return MultiInputNet(n_channels, n_cov, n_out, width, slices, dropout, n_lge_channels)


def _augment(xb, g, n_intensity=2):
    """Random in-plane flips / 90-degree rotations of the whole grid and an intensity scale and
    shift of the first ``n_intensity`` (image) channels."""
    import torch

    x = xb.clone()
    if torch.rand(1, generator=g).item() < 0.5:
        x = x.flip(-1)
    if torch.rand(1, generator=g).item() < 0.5:
        x = x.flip(-2)
    r = int(torch.randint(0, 4, (1,), generator=g).item())
    if r:
        x = torch.rot90(x, r, dims=(-2, -1))
    n = x.shape[0]
    scale = 1 + 0.2 * (torch.rand(n, 1, 1, 1, 1, generator=g) - 0.5)
    shift = 0.1 * (torch.rand(n, 1, 1, 1, 1, generator=g) - 0.5)
    x[:, :, :n_intensity] = (x[:, :, :n_intensity] * scale + shift).clamp(0, 1)
    return x


class _MultiInput(Model):
    uses_inputs = True
    data_parallel = True  # fits under torchrun with DistributedDataParallel (see the module)
    parameter_constraints = {"width": [COUNT], "dropout": [Interval(float, 0, 1, "left")],
                             "lr": [POSITIVE], "weight_decay": [NON_NEGATIVE], "batch_size": [COUNT],
                             "max_epochs": [COUNT], "patience": [COUNT], "val_fraction": [FRACTION],
                             "use_lge": [Options("auto", True, False)]}

    def __init__(self, seed=0, width=16, dropout=0.3, lr=1e-3, weight_decay=1e-4, batch_size=16,
                 max_epochs=150, patience=30, val_fraction=0.2, use_lge="auto"):
        super().__init__(seed, width=width, dropout=dropout, lr=lr, weight_decay=weight_decay,
                         batch_size=batch_size, max_epochs=max_epochs, patience=patience,
                         val_fraction=val_fraction, use_lge=use_lge)
        self.grid = dict(GRID)
        self.net = None
        self.uses_lge = False
        self.geometries = None  # of the last prepared inputs (used by explanations)

    # ---- data
    def images(self, inputs, progress=False):
        """The cine tensor, or (cine, LGE) tensors for a model with an LGE branch."""
        if inputs is None:
            raise CMRRiskError(f"model {self.name!r} needs the manifest's images (cine_ed + cine_es or cine).")
        x, geoms = prepare(list(inputs), self.grid, progress)
        self.geometries = geoms
        if not self.uses_lge:
            return x
        missing = [r.get("subject") for r in inputs if not r.get("lge")]
        if missing:
            raise CMRRiskError(f"model {self.name!r} was trained with LGE images; subject(s) "
                               f"{', '.join(map(str, missing[:5]))} have none (column lge).")
        return x, prepare_lge(list(inputs), self.grid, progress)[0]

    @staticmethod
    def _parts(imgs):
        return imgs if isinstance(imgs, tuple) else (imgs, None)

    def _decide_lge(self, inputs, images):
        if images is not None:
            return isinstance(images, tuple)
        choice = self.params.get("use_lge", "auto")
        has = inputs is not None and all(r.get("lge") for r in inputs)
        if choice is True and not has:
            raise CMRRiskError(f"model {self.name!r}: use_lge is on but not every subject has an LGE image.")
        return bool(has) if choice == "auto" else bool(choice)

    def _cov(self, x, n):
        x = np.zeros((n, 0), np.float32) if x is None else np.asarray(x, np.float32).reshape(n, -1)
        return x

    # ---- training
    def _split(self, n, strata):
        rng = np.random.default_rng(self.seed)
        va = []
        for s in np.unique(strata):
            idx = np.nonzero(strata == s)[0]
            rng.shuffle(idx)
            va.extend(idx[:max(1, int(round(len(idx) * self.params["val_fraction"])))].tolist())
        va = np.array(sorted(va))
        tr = np.setdiff1d(np.arange(n), va)
        return tr, va

    def check_world(self, world: int) -> None:
        """Refuse a number of ``torchrun`` processes that cannot share the batch evenly."""
        b = int(self.params["batch_size"])
        if world > 1 and (b % world or b < 2 * world):
            raise CMRRiskError(f"model {self.name!r}: batch_size {b} cannot be shared by the {world} "
                               f"processes of torchrun; give a multiple of {world} of at least {2 * world} "
                               f"(--param batch_size={2 * world * max(1, round(b / (2 * world)))}; the batch "
                               "is the total over all processes) or start fewer processes.")

    def fit(self, x, y, inputs=None, images=None):
        import torch

        from ..distributed import data_parallel, world_size

        self.check_world(world_size())
        parallel = data_parallel(f"{self.name} {self.endpoint} fit")
        rank0 = parallel is None or parallel.rank == 0
        self.uses_lge = self._decide_lge(inputs, images)
        imgs = self.images(inputs, progress=rank0) if images is None else images
        cine, lge = self._parts(imgs)
        n = len(cine)
        cov = self._cov(x, n)
        self.n_cov = cov.shape[1]
        self._setup_target(y)
        p = self.params
        tr, va = self._split(n, self._strata(y))
        X, C = torch.from_numpy(cine), torch.from_numpy(cov)
        G = torch.from_numpy(lge) if lge is not None else None
        g = torch.Generator().manual_seed(self.seed)  # the shuffles: alike on every process
        # augmentation: this process's own stream under torchrun (one stream with the shuffles
        # otherwise, as single-process fits always drew)
        aug = g if parallel is None else torch.Generator().manual_seed(self.seed + 7919 * (parallel.rank + 1))

        def batch_loss(net, ix):
            it = torch.from_numpy(ix)
            lg = _augment(G[it], aug, 1) if G is not None else None
            return self._loss(net(_augment(X[it], aug), C[it], lg), ix)

        def val_loss(net):
            iv = torch.from_numpy(va)
            return self._loss(net(X[iv], C[iv], G[iv] if G is not None else None), va)

        self.history = []
        self.distributed = None
        # an image network keeps the caller's thread count; torch's generator is not restored
        with seeded(self.seed, threads=None, fork=False):
            self.net = build_net(len(CHANNELS), self.n_cov, self._n_out(), p["width"], self.grid["slices"],
                                 p["dropout"], len(LGE_CHANNELS) if self.uses_lge else 0)
            if parallel is not None:  # equal initial weights, then each process its own dropout
                torch.manual_seed(self.seed + 7919 * (parallel.rank + 1))
            t0 = time.perf_counter()
            best_epoch = fit_network(self.net, batch_loss, val_loss, tr, lr=p["lr"],
                                     weight_decay=p["weight_decay"], batch_size=p["batch_size"],
                                     max_epochs=p["max_epochs"], patience=p["patience"], generator=g,
                                     skip_batch=self._skip_batch, tol=1e-6, history=self.history,
                                     parallel=parallel, weight=self._weight)
            self.fit_seconds = round(time.perf_counter() - t0, 2)
        if parallel is not None:
            self.distributed = dict(parallel.check_replicas(self.net),
                                    batch_per_process=int(p["batch_size"]) // parallel.world)
        self.best_epoch = best_epoch
        self._after_fit(imgs, cov, y)
        return self

    def _weight(self, ix):
        """What a batch's mean loss is averaged over (rows)."""
        return len(ix)

    def _skip_batch(self, ix):
        return False

    def _after_fit(self, imgs, cov, y):
        pass

    def outputs(self, x, inputs=None, images=None) -> np.ndarray:
        import torch

        imgs = self.images(inputs) if images is None else images
        cine, lge = self._parts(imgs)
        if self.uses_lge and lge is None:
            raise CMRRiskError(f"model {self.name!r} has an LGE branch: it needs the LGE images too.")
        cov = self._cov(x, len(cine))
        if cov.shape[1] != self.n_cov:
            raise CMRRiskError(f"model {self.name!r} was trained with {self.n_cov} covariates, got {cov.shape[1]}.")
        with torch.no_grad():
            return self.net(torch.from_numpy(cine), torch.from_numpy(cov),
                            torch.from_numpy(lge) if lge is not None else None).numpy().astype(float)

    # ---- storage
    def state(self):
        arrays = {f"net.{k}": v.detach().cpu().numpy() for k, v in self.net.state_dict().items()}
        arrays.update(self._extra_arrays())
        return arrays, {"name": self.name, "seed": self.seed, "params": self.params, "grid": self.grid,
                        "channels": CHANNELS, "lge_channels": LGE_CHANNELS if self.uses_lge else [],
                        "uses_lge": self.uses_lge, "n_cov": self.n_cov, "best_epoch": self.best_epoch,
                        "fit_seconds": getattr(self, "fit_seconds", None),
                        **({"distributed": self.distributed} if getattr(self, "distributed", None) else {}),
                        **self._extra_config()}

    @classmethod
    def from_state(cls, config, arrays):
        import torch

        m = cls(seed=config["seed"], **config["params"])
        m.grid, m.n_cov, m.best_epoch = dict(config["grid"]), int(config["n_cov"]), config.get("best_epoch")
        m.uses_lge = bool(config.get("uses_lge", False))
        m._restore(config, arrays)
        m.net = build_net(len(CHANNELS), m.n_cov, m._n_out(), m.params["width"], m.grid["slices"],
                          m.params["dropout"], len(LGE_CHANNELS) if m.uses_lge else 0)
        m.net.load_state_dict({k[4:]: torch.as_tensor(np.asarray(v)) for k, v in arrays.items() if k.startswith("net.")})
        m.net.eval()
        return m

    def _extra_arrays(self):
        return {}

    def _extra_config(self):
        return {}

    def _restore(self, config, arrays):
        pass


@register
class MultiInputDiagnosis(_MultiInput):
    name = "multiinput"
    endpoint = "diagnosis"

    def _setup_target(self, y):
        check_target(y, "diagnosis")
        self.classes = list(y.classes)
        self._y = np.asarray(y.y, dtype=np.int64)

    def _strata(self, y):
        return np.asarray(y.y)

    def _n_out(self):
        return len(self.classes)

    def _loss(self, out, ix):
        import torch

        return torch.nn.functional.cross_entropy(out, torch.from_numpy(self._y[ix]))

    def predict_proba(self, x, inputs=None, images=None):
        z = self.outputs(x, inputs, images)
        z = z - z.max(1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(1, keepdims=True)

    def predict_risk(self, x, inputs=None, images=None):
        return self.predict_proba(x, inputs, images).max(1)

    def _extra_config(self):
        return {"classes": self.classes}

    def _restore(self, config, arrays):
        self.classes = list(config["classes"])


@register
class MultiInputSurvival(BreslowMixin, _MultiInput):
    name = "multiinput"
    endpoint = "survival"

    def _setup_target(self, y):
        check_target(y, "survival", min_events=1)
        self._t = np.asarray(y.time, float)
        self._e = np.asarray(y.event, float)

    def _strata(self, y):
        return np.asarray(y.event)

    def _n_out(self):
        return 1

    def _skip_batch(self, ix):
        return self._e[ix].sum() == 0

    def _weight(self, ix):
        """The Cox loss is a mean over the batch's events."""
        return float(self._e[ix].sum())

    def _loss(self, out, ix):
        import torch
        from pycox.models.loss import cox_ph_loss

        e = torch.from_numpy(self._e[ix]).float()
        if float(e.sum()) == 0:  # no event (a validation split of a tiny cohort): no information
            return out[:, 0].sum() * 0.0
        return cox_ph_loss(out[:, 0], torch.from_numpy(self._t[ix]), e)

    def _after_fit(self, imgs, cov, y):
        risk = self.outputs(cov, images=imgs)[:, 0]
        self.baseline = BreslowBaseline().fit(risk, y.time, y.event)

    def predict_risk(self, x, inputs=None, images=None):
        return self.outputs(x, inputs, images)[:, 0]
