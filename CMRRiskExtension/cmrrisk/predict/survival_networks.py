"""The network survival models (DeepSurv, logistic hazard, DeepHit, PC-Hazard, Cox-Time): one
training loop (:func:`~.models.training.fit_network`), ``n_bags`` networks per model; see
:mod:`.survival` for the list of kinds."""

from __future__ import annotations

import warnings

import numpy as np

from .models.baseline import BreslowBaseline, BreslowMixin
from .models.params import COUNT, FRACTION, NON_NEGATIVE, POSITIVE, IntList, Interval, Options
from .models.registry import Model, register
from .models.targets import check_target
from .models.training import fit_network, seeded, split_validation, torch_threads


# ---------------------------------------------------------------------------- networks

class NetSurvival(Model):
    """Shared training loop: Adam, mini-batches, early stopping on a validation split of the
    training data (best epoch's weights kept); ``n_bags`` networks on different splits/seeds."""

    parameter_constraints = {"hidden": [IntList()], "dropout": [Interval(float, 0, 1, "left")],
                             "lr": [POSITIVE], "weight_decay": [NON_NEGATIVE], "batch_size": [COUNT],
                             "max_epochs": [COUNT], "patience": [COUNT], "val_fraction": [FRACTION],
                             "n_bags": [COUNT]}

    def __init__(self, seed=0, hidden=(32, 32), dropout=0.1, lr=1e-3, weight_decay=1e-4,
                 batch_size=256, max_epochs=200, patience=15, val_fraction=0.2, n_bags=1,
                 **kw):
        super().__init__(seed, hidden=list(hidden), dropout=dropout, lr=lr,
                         weight_decay=weight_decay, batch_size=batch_size, max_epochs=max_epochs,
                         patience=patience, val_fraction=val_fraction, n_bags=n_bags, **kw)

    # subclasses: _out_dim(), _prepare(y), _loss(phi, idx) and _surv_from_out(out)
    def _net(self, d_in):
        from .models.networks import MLP

        return MLP(d_in, self._out_dim(), self.params["hidden"], self.params["dropout"])

    def fit(self, x, y, inputs=None):
        check_target(y, "survival")
        x = np.asarray(x, dtype=np.float32)
        self.d_in = x.shape[1]
        self._prepare(y)
        self.nets, self.epochs = [], []
        for b in range(self.params["n_bags"]):
            seed = self.seed * 1000 + b
            tr, va = split_validation(len(x), self.params["val_fraction"], seed, y.event)
            with seeded(seed, threads=1):
                net, ep = self._train_one(x, tr, va, seed)
            self.nets.append(net)
            self.epochs.append(ep)
        self._after_fit(x, y)
        return self

    def _after_fit(self, x, y):
        pass

    def _train_one(self, x, tr, va, seed):
        import torch

        p = self.params
        net = self._net(x.shape[1])
        X = torch.from_numpy(x)
        rows = self._start_split(tr, va, seed)
        ep = fit_network(net, lambda n, ix: self._batch_loss(n, X, ix), lambda n: self._val_loss(n, X, va),
                         rows, lr=p["lr"], weight_decay=p["weight_decay"], batch_size=p["batch_size"],
                         max_epochs=p["max_epochs"], patience=p["patience"],
                         generator=torch.Generator().manual_seed(seed), skip_batch=self._skip_batch)
        return net, ep

    def _start_split(self, tr, va, seed):
        """Called once per network before training; returns the rows an epoch iterates over."""
        return tr

    def _batch_loss(self, net, X, ix):
        import torch

        return self._loss(net(X[torch.from_numpy(ix)]), ix)

    def _val_loss(self, net, X, va):
        import torch

        return self._loss(net(X[torch.from_numpy(va)]), va)

    def _skip_batch(self, ix):
        return False

    def _outputs(self, x):
        import torch

        with torch.no_grad(), torch_threads(1):
            xt = torch.from_numpy(np.asarray(x, dtype=np.float32))
            return [net(xt).numpy().astype(float) for net in self.nets]

    def state(self):
        arrays = {}
        for b, net in enumerate(self.nets):
            for k, v in net.state_dict().items():
                arrays[f"net{b}.{k}"] = v.detach().cpu().numpy()
        arrays.update(self._extra_arrays())
        return arrays, {"name": self.name, "seed": self.seed, "params": self.params,
                        "d_in": self.d_in, "epochs": self.epochs, **self._extra_config()}

    def _extra_arrays(self):
        return {}

    def _extra_config(self):
        return {}

    @classmethod
    def from_state(cls, config, arrays):
        import torch

        m = cls(seed=config["seed"], **config["params"])
        m.d_in, m.epochs = config["d_in"], config["epochs"]
        m._restore(config, arrays)
        m.nets = []
        for b in range(m.params["n_bags"]):
            net = m._net(m.d_in)
            sd = {k[len(f"net{b}."):]: torch.as_tensor(np.asarray(v))
                  for k, v in arrays.items() if k.startswith(f"net{b}.")}
            net.load_state_dict(sd)
            net.eval()
            m.nets.append(net)
        return m

    def _restore(self, config, arrays):
        pass


@register
class DeepSurv(BreslowMixin, NetSurvival):
    name = "deepsurv"

    def _out_dim(self):
        return 1

    def _prepare(self, y):
        import torch

        self._t = torch.from_numpy(y.time.astype(np.float32))
        self._e = torch.from_numpy(y.event.astype(np.float32))

    def _skip_batch(self, ix):
        return float(self._e[ix].sum()) == 0

    def _loss(self, phi, ix):
        from pycox.models.loss import cox_ph_loss

        return cox_ph_loss(phi.squeeze(-1), self._t[ix], self._e[ix])

    def _after_fit(self, x, y):
        self.baseline = BreslowBaseline().fit(self.predict_risk(x), y.time, y.event)

    def predict_risk(self, x, inputs=None):
        return np.mean([o[:, 0] for o in self._outputs(x)], axis=0)


class _Discrete(NetSurvival):
    """Discrete-time models: ``n_durations`` intervals cut at quantiles of the event times."""

    parameter_constraints = {"n_durations": [Interval(int, 2, None)]}

    def __init__(self, seed=0, n_durations=20, **kw):
        super().__init__(seed, n_durations=n_durations, **kw)

    def _out_dim(self):
        return len(self.cuts)

    def _prepare(self, y):
        import torch
        from pycox.preprocessing.label_transforms import LabTransDiscreteTime

        lt = LabTransDiscreteTime(int(self.params["n_durations"]), scheme="quantiles")
        with warnings.catch_warnings():  # tied event times merge cuts: expected on small cohorts
            warnings.filterwarnings("ignore", message="cuts are not unique")
            lt.fit(y.time.astype(float), y.event.astype(float))
        self.cuts = np.asarray(lt.cuts, dtype=float)
        idx, ev = lt.transform(y.time.astype(float), y.event.astype(float))
        self._idx = torch.from_numpy(np.asarray(idx, dtype=np.int64))
        self._ev = torch.from_numpy(np.asarray(ev, dtype=np.float32))

    def _surv_grid(self, x):
        return np.mean([self._surv_from_out(o) for o in self._outputs(x)], axis=0)

    def predict_survival(self, x, times, inputs=None):
        s = self._surv_grid(x)
        i = np.searchsorted(self.cuts, np.asarray(times, float), side="right") - 1
        return np.where(i[None, :] >= 0, s[:, np.clip(i, 0, len(self.cuts) - 1)], 1.0)

    def predict_risk(self, x, inputs=None):
        """Minus the restricted mean survival time over the grid (higher = worse)."""
        s = self._surv_grid(x)
        widths = np.diff(self.cuts)
        return -(s[:, :-1] * widths).sum(1)

    def _extra_arrays(self):
        return {"cuts": self.cuts}

    def _restore(self, config, arrays):
        self.cuts = np.asarray(arrays["cuts"], dtype=float)


@register
class LogisticHazard(_Discrete):
    name = "logistic_hazard"

    def _loss(self, phi, ix):
        from pycox.models.loss import nll_logistic_hazard

        return nll_logistic_hazard(phi, self._idx[ix], self._ev[ix])

    @staticmethod
    def _surv_from_out(out):
        from scipy.special import expit

        h = expit(out)
        return np.cumprod(1.0 - h, axis=1)


@register
class DeepHit(_Discrete):
    name = "deephit"
    parameter_constraints = {"alpha": [Interval(float, 0, 1)], "sigma": [POSITIVE]}

    def __init__(self, seed=0, alpha=0.2, sigma=0.1, **kw):
        super().__init__(seed, alpha=alpha, sigma=sigma, **kw)

    def _loss(self, phi, ix):
        import torch
        from pycox.models.data import pair_rank_mat
        from pycox.models.loss import DeepHitSingleLoss

        idx = self._idx[ix]
        ev = self._ev[ix]
        rank = torch.from_numpy(pair_rank_mat(idx.numpy(), ev.numpy()).astype(np.float32))
        return DeepHitSingleLoss(self.params["alpha"], self.params["sigma"])(phi, idx, ev, rank)

    @staticmethod
    def _surv_from_out(out):
        # pycox pads a zero logit for "after the last cut"
        z = np.concatenate([out, np.zeros((len(out), 1))], axis=1)
        z = np.exp(z - z.max(1, keepdims=True))
        pmf = z / z.sum(1, keepdims=True)
        return 1.0 - np.cumsum(pmf, axis=1)[:, :-1]


@register
class PCHazard(_Discrete):
    """PC-Hazard (Kvamme & Borgan 2019, pycox): a hazard that is constant within each of
    ``n_durations`` intervals (cut at quantiles of the Kaplan-Meier curve, from time 0); the
    network's outputs are the intervals' hazards through a softplus, trained with pycox's
    ``nll_pc_hazard_loss`` (exact piecewise-exponential likelihood, the fraction of its last
    interval that each subject was observed included). The cumulative hazard is piecewise
    linear in time, so survival is defined at every time, not only at the cuts (held constant
    after the last cut). Default learning rate 5e-3 (1e-3 needed ~200 epochs on small data).
    ``predict_risk``: minus the restricted mean survival time, as the other discrete models."""

    name = "pchazard"

    def __init__(self, seed=0, lr=5e-3, **kw):
        super().__init__(seed, lr=lr, **kw)

    def _out_dim(self):
        return len(self.cuts) - 1

    def _prepare(self, y):
        import torch
        from pycox.preprocessing.label_transforms import LabTransPCHazard

        lt = LabTransPCHazard(int(self.params["n_durations"]), scheme="quantiles")
        with warnings.catch_warnings():  # tied times merge cuts; events at time 0 are dropped
            warnings.simplefilter("ignore")
            lt.fit(y.time.astype(float), y.event.astype(float))
            idx, ev, frac = lt.transform(y.time.astype(float), y.event.astype(float))
        self.cuts = np.asarray(lt.cuts, dtype=float)
        self._idx = torch.from_numpy(np.asarray(idx, dtype=np.int64))
        self._ev = torch.from_numpy(np.asarray(ev, dtype=np.float32))
        self._frac = torch.from_numpy(np.asarray(frac, dtype=np.float32))

    def _loss(self, phi, ix):
        from pycox.models.loss import nll_pc_hazard_loss

        return nll_pc_hazard_loss(phi, self._idx[ix], self._ev[ix], self._frac[ix])

    @staticmethod
    def _surv_from_out(out):
        h = np.logaddexp(0.0, out)  # softplus: the hazard accumulated over each interval
        return np.exp(-np.concatenate([np.zeros((len(h), 1)), np.cumsum(h, axis=1)], axis=1))

    def predict_survival(self, x, times, inputs=None):
        t = np.asarray(times, dtype=float)
        c = self.cuts
        j = np.clip(np.searchsorted(c, t, side="right") - 1, 0, len(c) - 2)
        frac = np.clip((t - c[j]) / (c[j + 1] - c[j]), 0.0, 1.0)
        out = []
        for o in self._outputs(x):
            h = np.logaddexp(0.0, o)
            cum = np.concatenate([np.zeros((len(h), 1)), np.cumsum(h, axis=1)], axis=1)
            out.append(np.exp(-(cum[:, j] + h[:, j] * frac[None, :])))
        return np.mean(out, axis=0)

    def predict_risk(self, x, inputs=None):
        """Minus the restricted mean survival time up to the last cut, integrated exactly over
        the piecewise-exponential survival curve (higher = worse)."""
        w = np.diff(self.cuts)
        rmst = []
        for o in self._outputs(x):
            h = np.maximum(np.logaddexp(0.0, o), 1e-12)
            s0 = self._surv_from_out(o)[:, :-1]
            rmst.append((s0 * -np.expm1(-h) / h * w).sum(1))
        return -np.mean(rmst, axis=0)


@register
class CoxTime(NetSurvival):
    """Cox-Time (Kvamme, Borgan & Scheel, JMLR 2019; pycox ``CoxTime``): a relative-risk model
    without proportional hazards, h(t | x) = h0(t) exp(g(x, t)), with g an MLP of the covariates
    and the time (pycox's ``MLPVanillaCoxTime``; time standardised as pycox's
    ``LabTransCoxTime`` does, optionally after log1p). Trained with pycox's case-control loss:
    each event (case) against one control drawn at random from its risk set, both evaluated at
    the case's time (``softplus(g_control - g_case)``; ``shrink`` as pycox). Early stopping on a
    validation split of the training data, scored with ``n_val_controls`` controls per case
    drawn once (so the score does not jitter between epochs).

    After training, the baseline hazard is Breslow's, with g evaluated at each event time:
    dH0(t_k) = d_k / sum over the risk set of exp(g(x_j, t_k)) (pycox's
    ``compute_baseline_hazards`` on the training data); H(t | x) = sum over t_k <= t of
    dH0(t_k) exp(g(x, t_k)). When there are more than ``time_grid`` distinct event times, g is
    evaluated at ``time_grid`` quantiles of the event times and each event time uses the nearest
    (0 = every event time, exactly as pycox; the grid keeps SUPPORT's 900 event times cheap).

    ``predict_risk`` is minus the restricted mean survival time up to the last training event
    time (the area under the predicted survival curve): with hazards that are not proportional
    there is no single risk score, and the RMST ranks subjects by their whole curve rather than
    by one arbitrary horizon; the discrete-time models here use the same definition.
    Default learning rate 1e-2, as in pycox's Cox-Time examples."""

    name = "coxtime"
    parameter_constraints = {"log_duration": [Options(True, False)], "shrink": [NON_NEGATIVE],
                             "n_val_controls": [COUNT], "time_grid": [Interval(int, 0, None)]}

    def __init__(self, seed=0, lr=1e-2, log_duration=False, shrink=0.0, n_val_controls=4,
                 time_grid=100, **kw):
        super().__init__(seed, lr=lr, log_duration=log_duration, shrink=shrink,
                         n_val_controls=n_val_controls, time_grid=time_grid, **kw)

    def _net(self, d_in):
        from .models.networks import TimeMLP

        return TimeMLP(d_in, self.params["hidden"], self.params["dropout"])

    def _scale(self, t):
        t = np.asarray(t, dtype=float)
        if self.params["log_duration"]:
            t = np.log1p(t)
        return ((t - self.time_mean) / self.time_std).astype(np.float32)

    def _prepare(self, y):
        import torch

        t = np.log1p(y.time) if self.params["log_duration"] else y.time
        self.time_mean, self.time_std = float(np.mean(t)), float(np.std(t) or 1.0)
        self._time = np.asarray(y.time, float)
        self._event = np.asarray(y.event)
        self._ts = torch.from_numpy(self._scale(y.time))

    def _start_split(self, tr, va, seed):
        rng = np.random.default_rng(seed + 31)
        self._rng = rng
        self._tr_sorted = tr[np.argsort(self._time[tr], kind="stable")]
        self._tr_times = self._time[self._tr_sorted]
        vs = va[np.argsort(self._time[va], kind="stable")]
        cases = vs[self._event[vs] > 0]
        first = np.searchsorted(self._time[vs], self._time[cases], side="left")
        k = int(self.params["n_val_controls"])
        u = rng.random((k, len(cases)))
        self._val_cases = cases
        self._val_controls = vs[first + (u * (len(vs) - first)).astype(int)]
        return tr[self._event[tr] > 0]

    def _controls(self, ix):
        first = np.searchsorted(self._tr_times, self._time[ix], side="left")
        n = len(self._tr_sorted)
        return self._tr_sorted[first + (self._rng.random(len(ix)) * (n - first)).astype(int)]

    def _batch_loss(self, net, X, ix):
        import torch
        import torch.nn.functional as F

        # one forward pass for cases and controls together (as pycox): separate passes would let
        # batch normalisation remove the very difference between cases and controls
        t = self._ts[torch.from_numpy(ix)]
        rows = torch.from_numpy(np.concatenate([ix, self._controls(ix)]))
        g_case, g_ctrl = net(X[rows], torch.cat([t, t])).split(len(ix))
        loss = F.softplus(g_ctrl - g_case).mean()
        if self.params["shrink"]:
            loss = loss + self.params["shrink"] * (g_case.abs().mean() + g_ctrl.abs().mean())
        return loss

    def _val_loss(self, net, X, va):
        import torch

        if len(self._val_cases) == 0:
            return torch.tensor(0.0)
        k = len(self._val_controls)
        t = self._ts[torch.from_numpy(self._val_cases)]
        rows = torch.from_numpy(np.concatenate([self._val_cases, *self._val_controls]))
        g = net(X[rows], t.repeat(k + 1)).reshape(k + 1, -1)
        diffs = [torch.zeros_like(g[0])] + [g[j] - g[0] for j in range(1, k + 1)]
        return torch.logsumexp(torch.stack(diffs), dim=0).mean()

    # g on a set of (scaled) times: (n, len(gtimes)), one forward pass per time
    def _g(self, net, x, gtimes):
        import torch

        with torch.no_grad(), torch_threads(1):
            xt = torch.from_numpy(np.asarray(x, dtype=np.float32))
            return np.stack([net(xt, torch.full((len(xt),), float(g), dtype=torch.float32))
                             .numpy().astype(float) for g in gtimes], axis=1)

    def _after_fit(self, x, y):
        times = np.unique(y.time[y.event > 0])
        g_orig = times
        grid = int(self.params["time_grid"] or 0)
        if grid and len(times) > grid:
            q = np.unique(np.quantile(times, np.linspace(0, 1, grid)))
            mid = (q[1:] + q[:-1]) / 2
            g_orig = q[np.searchsorted(mid, times, side="left")]
        self.bh_times = times
        self.bh_gtimes = self._scale(g_orig)
        uniq, inv = np.unique(self.bh_gtimes, return_inverse=True)
        order = np.argsort(y.time, kind="stable")
        t_sorted = y.time[order]
        first = np.searchsorted(t_sorted, times, side="left")
        deaths = np.bincount(np.searchsorted(times, y.time[y.event > 0]), minlength=len(times))
        self.bh_hazards = []
        for net in self.nets:
            e = np.exp(np.clip(self._g(net, np.asarray(x)[order], uniq), -80, 80))
            at_risk = np.cumsum(e[::-1], axis=0)[::-1]  # (n, n_gtimes)
            self.bh_hazards.append(deaths / at_risk[first, inv])
        for k in ("_ts", "_time", "_event", "_rng", "_tr_sorted", "_tr_times", "_val_cases",
                  "_val_controls"):
            self.__dict__.pop(k, None)

    def _surv_on_grid(self, x):
        """(n_nets, n, n_event_times) survival at the training event times."""
        uniq, inv = np.unique(self.bh_gtimes, return_inverse=True)
        out = []
        for net, dh in zip(self.nets, self.bh_hazards):
            e = np.exp(np.clip(self._g(net, x, uniq), -80, 80))[:, inv]
            out.append(np.exp(-np.cumsum(e * dh[None, :], axis=1)))
        return np.asarray(out)

    def predict_survival(self, x, times, inputs=None):
        s = self._surv_on_grid(x).mean(0)
        i = np.searchsorted(self.bh_times, np.asarray(times, float), side="right") - 1
        return np.where(i[None, :] >= 0, s[:, np.clip(i, 0, len(self.bh_times) - 1)], 1.0)

    def predict_risk(self, x, inputs=None):
        """Minus the restricted mean survival time up to the last training event time."""
        s = self._surv_on_grid(x).mean(0)
        widths = np.diff(np.concatenate([[0.0], self.bh_times]))
        before = np.concatenate([np.ones((len(s), 1)), s[:, :-1]], axis=1)
        return -(before * widths).sum(1)

    def _extra_arrays(self):
        out = {"bh_times": self.bh_times, "bh_gtimes": self.bh_gtimes}
        out.update({f"bh{b}": h for b, h in enumerate(self.bh_hazards)})
        return out

    def _extra_config(self):
        return {"time_mean": self.time_mean, "time_std": self.time_std}

    def _restore(self, config, arrays):
        self.time_mean, self.time_std = config["time_mean"], config["time_std"]
        self.bh_times = np.asarray(arrays["bh_times"], dtype=float)
        self.bh_gtimes = np.asarray(arrays["bh_gtimes"], dtype=np.float32)
        self.bh_hazards = [np.asarray(arrays[f"bh{b}"], dtype=float)
                           for b in range(self.params["n_bags"])]
