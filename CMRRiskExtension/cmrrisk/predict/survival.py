"""Time-to-event models (all on preprocessed covariate matrices).

- ``cox``: penalised (ridge) Cox proportional hazards, scikit-survival, Breslow baseline hazard.
- ``coxboost``: gradient-boosted regression trees on the Cox partial likelihood (Newton steps;
  the number of trees chosen by early stopping on a validation split inside the training data),
  trees stored as plain node arrays.
- ``rsf``: random survival forest (Ishwaran et al. 2008; log-rank splits, scikit-survival),
  trees stored as node arrays with each leaf's Kaplan-Meier curve on a grid of event times.
- ``deepsurv``: pycox's Cox PH loss on a multilayer perceptron (Katzman et al. 2018).
- ``coxtime``: Cox-Time (Kvamme, Borgan & Scheel 2019): h0(t) exp(g(x, t)) with g an MLP of
  the covariates and time, so hazards need not be proportional; pycox's case-control loss and
  label transform, Breslow-type baseline hazard computed after training; risk score = minus the
  restricted mean survival time (see :class:`CoxTime`).
- ``logistic_hazard``: pycox's discrete-time logistic hazard loss (Gensheimer & Narasimhan 2019).
- ``pchazard``: pycox's PC-Hazard (Kvamme & Borgan 2019): piecewise-constant hazard between
  quantile cuts, so survival is continuous in time.
- ``deephit``: pycox's DeepHit single-risk loss (Lee et al. 2018).
- ``ensemble``: the mean of the members' standardised risk scores (by default coxboost and a
  bag of five DeepSurv networks); its survival function is the mean of the members'.
- ``auto`` (default): chooses by k-fold cross-validation (Harrell's C) inside the training data
  among 33 candidate member sets (:data:`AUTO_CANDIDATES`): each of cox, coxboost (three
  settings), deepsurv (two settings), logistic_hazard, coxtime, pchazard and rsf (two
  settings) alone, and ensembles of them; then fits the choice on all of it. Every candidate's CV score is kept in
  its config (``cv_scores``).

Networks are trained with early stopping on a validation split drawn from the training data
only. All randomness comes from the ``seed``. Every model's state is numpy arrays (network
weights, tree nodes, cuts, baseline hazards) plus a JSON config (hyper-parameters, label
transform); nothing is pickled, and a restored model predicts exactly what the original did.
"""

from __future__ import annotations

import warnings

import numpy as np

from .models.baseline import BreslowBaseline, BreslowMixin, step_at
from .models.params import COUNT, FRACTION, NON_NEGATIVE, POSITIVE, Interval, Options
from .models.registry import Model, register
from .models.targets import check_target
from .models.training import check_interrupt, split_validation


# ------------------------------------------------------------------------------- Cox PH

@register
class CoxPH(BreslowMixin, Model):
    """Ridge-penalised Cox model (``alpha``: penalty on the standardised coefficients)."""

    name = "cox"
    parameter_constraints = {"alpha": [NON_NEGATIVE]}

    def __init__(self, seed=0, alpha: float = 0.1):
        super().__init__(seed, alpha=alpha)

    @property
    def alpha(self) -> float:
        return self.params["alpha"]

    def fit(self, x, y, inputs=None):
        from sksurv.linear_model import CoxPHSurvivalAnalysis
        from sksurv.util import Surv

        check_target(y, "survival")
        m = CoxPHSurvivalAnalysis(alpha=self.alpha, ties="breslow", n_iter=200)
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m.fit(np.asarray(x, float), Surv.from_arrays(y.event.astype(bool), y.time))
        self.coef = np.asarray(m.coef_, dtype=float)
        self.baseline = BreslowBaseline().fit(self.predict_risk(x), y.time, y.event)
        return self

    def predict_risk(self, x, inputs=None):
        return np.asarray(x, float) @ self.coef

    def state(self):
        return ({"coef": self.coef, **self.baseline.arrays()},
                {"name": self.name, "seed": self.seed, "params": self.params, **self.baseline.config()})

    @classmethod
    def from_state(cls, config, arrays):
        m = cls(seed=config["seed"], **config["params"])
        m.coef = arrays["coef"]
        m.baseline = BreslowBaseline.restore(config, arrays)
        return m


# ------------------------------------------------------------------------ boosted Cox trees

def _cox_grad_hess(f, time, event):
    """Gradient and diagonal Hessian of the negative Breslow partial log-likelihood."""
    order = np.argsort(time, kind="stable")
    t, e = time[order], event[order]
    w = np.exp(np.clip(f[order] - f.max(), -50, 0))
    first = np.searchsorted(t, t, side="left")
    last = np.searchsorted(t, t, side="right") - 1
    s = np.cumsum(w[::-1])[::-1][first]  # risk-set sum at each subject's own time
    inv = np.where(e > 0, 1.0 / s, 0.0)
    a = np.cumsum(inv)[last]
    b = np.cumsum(inv ** 2)[last]
    g = np.empty_like(w)
    h = np.empty_like(w)
    g[order] = -(e - w * a)
    h[order] = w * a - w ** 2 * b
    return g, np.maximum(h, 1e-6)


def cox_neg_loglik(f, time, event):
    """Mean negative Breslow partial log-likelihood of log-risks ``f``."""
    order = np.argsort(time, kind="stable")
    t, e, f = time[order], event[order], f[order]
    m = f.max()
    first = np.searchsorted(t, t, side="left")
    log_s = np.log(np.cumsum(np.exp(f - m)[::-1])[::-1][first]) + m
    return float(-np.sum((f - log_s)[e > 0]) / max(1, np.sum(e > 0)))


class _Trees:
    """Regression trees as flat node arrays; prediction needs numpy only."""

    FIELDS = ("left", "right", "feature", "threshold", "value")

    def __init__(self):
        self.nodes = {k: [] for k in self.FIELDS}
        self.offsets = [0]

    def add(self, tree, value=None):
        """Append a fitted scikit-learn tree; ``value`` (one number per node) replaces the
        tree's own node values."""
        t = tree.tree_
        off = self.offsets[-1]
        left = np.where(t.children_left >= 0, t.children_left + off, -1)
        right = np.where(t.children_right >= 0, t.children_right + off, -1)
        value = t.value[:, 0, 0] if value is None else value
        for k, v in zip(self.FIELDS, (left, right, t.feature, t.threshold, value)):
            self.nodes[k].append(np.asarray(v))
        self.offsets.append(off + t.node_count)

    def extend(self, other: "_Trees") -> None:
        """Append the trees of ``other`` (their node numbers shifted past these)."""
        off = self.offsets[-1]
        for k in self.FIELDS:
            for v in other.nodes[k]:
                self.nodes[k].append(np.where(v >= 0, v + off, -1) if k in ("left", "right") else v)
        self.offsets.extend(off + o for o in other.offsets[1:])

    def arrays(self, prefix):
        out = {f"{prefix}{k}": (np.concatenate(v) if v else np.zeros(0)) for k, v in self.nodes.items()}
        out[f"{prefix}offsets"] = np.asarray(self.offsets, dtype=np.int64)
        out[f"{prefix}left"] = out[f"{prefix}left"].astype(np.int64)
        out[f"{prefix}right"] = out[f"{prefix}right"].astype(np.int64)
        out[f"{prefix}feature"] = out[f"{prefix}feature"].astype(np.int64)
        return out

    @classmethod
    def from_arrays(cls, arrays, prefix):
        t = cls()
        t.flat = {k: np.asarray(arrays[f"{prefix}{k}"]) for k in cls.FIELDS}
        t.offsets = [int(o) for o in arrays[f"{prefix}offsets"]]
        return t

    def _flat(self):
        if not hasattr(self, "flat"):
            self.flat = self.arrays("")
        return self.flat

    def leaves(self, x):
        """(n_trees, n) index of the leaf each row reaches in each tree (into the flat node
        arrays); thresholds compared in float32 as scikit-learn does."""
        fl = self._flat()
        x = np.asarray(x, dtype=np.float32)
        rows = np.arange(len(x))
        out = []
        for root in self.offsets[:-1]:
            node = np.full(len(x), root, dtype=np.int64)
            while True:
                leaf = fl["left"][node] < 0
                if leaf.all():
                    break
                f = np.where(leaf, 0, fl["feature"][node])
                go_left = x[rows, f] <= fl["threshold"][node]
                node = np.where(leaf, node, np.where(go_left, fl["left"][node], fl["right"][node]))
            out.append(node)
        return np.asarray(out, dtype=np.int64).reshape(len(self.offsets) - 1, len(x))

    def predict_each(self, x):
        """(n_trees, n) leaf values."""
        return self._flat()["value"][self.leaves(x)]


@register
class CoxBoost(BreslowMixin, Model):
    """Newton-boosted regression trees on the Cox partial likelihood."""

    name = "coxboost"
    parameter_constraints = {"learning_rate": [POSITIVE], "max_depth": [COUNT],
                             "min_samples_leaf": [COUNT], "subsample": [Interval(float, 0, 1, "right")],
                             "max_trees": [COUNT], "patience": [COUNT], "val_fraction": [FRACTION]}

    def __init__(self, seed=0, learning_rate=0.05, max_depth=3, min_samples_leaf=10,
                 subsample=0.8, max_trees=500, patience=50, val_fraction=0.2):
        super().__init__(seed, learning_rate=learning_rate, max_depth=max_depth,
                         min_samples_leaf=min_samples_leaf, subsample=subsample, max_trees=max_trees,
                         patience=patience, val_fraction=val_fraction)

    def _boost(self, x, y, n_trees, val=None):
        from sklearn.tree import DecisionTreeRegressor

        p = self.params
        rng = np.random.default_rng(self.seed)
        trees = _Trees()
        f = np.zeros(len(x))
        fv = np.zeros(len(val[0])) if val is not None else None
        losses = []
        best, best_n = np.inf, 0
        for i in range(n_trees):
            if i % 10 == 0:
                check_interrupt()
            g, h = _cox_grad_hess(f, y.time, y.event)
            rows = rng.choice(len(x), int(round(p["subsample"] * len(x))), replace=False) \
                if p["subsample"] < 1 else np.arange(len(x))
            tree = DecisionTreeRegressor(max_depth=p["max_depth"], min_samples_leaf=p["min_samples_leaf"],
                                         random_state=int(rng.integers(2 ** 31 - 1)))
            tree.fit(x[rows], -g[rows] / h[rows], sample_weight=h[rows])
            tree.tree_.value[:, 0, 0] *= p["learning_rate"]
            f += tree.predict(x)
            trees.add(tree)
            if val is not None:
                fv += tree.predict(val[0])
                loss = cox_neg_loglik(fv, val[1].time, val[1].event)
                losses.append(loss)
                if loss < best - 1e-6:
                    best, best_n = loss, i + 1
                elif i + 1 - best_n >= p["patience"]:
                    break
        return trees, f, best_n

    def fit(self, x, y, inputs=None):
        check_target(y, "survival")
        x = np.asarray(x, dtype=np.float32)
        tr, va = split_validation(len(x), self.params["val_fraction"], self.seed, y.event)
        _, _, n = self._boost(x[tr], y[tr], self.params["max_trees"], (x[va], y[va]))
        self.n_trees = max(n, 1)
        self.trees, f, _ = self._boost(x, y, self.n_trees)
        self.baseline = BreslowBaseline().fit(f, y.time, y.event)
        return self

    def predict_risk(self, x, inputs=None):
        return self.trees.predict_each(x).sum(0)

    def state(self):
        arrays = self.trees.arrays("tree.")
        arrays.update(self.baseline.arrays())
        return arrays, {"name": self.name, "seed": self.seed, "params": self.params,
                        **self.baseline.config(), "n_trees": self.n_trees}

    @classmethod
    def from_state(cls, config, arrays):
        m = cls(seed=config["seed"], **config["params"])
        m.trees = _Trees.from_arrays(arrays, "tree.")
        m.baseline = BreslowBaseline.restore(config, arrays)
        m.n_trees = config["n_trees"]
        return m


#: trees of a random survival forest grown in one task
FOREST_BLOCK = 25


def _grow_trees(x, yy, grid, p, seeds):
    """Trees of :class:`RandomSurvivalForest`, one per seed: (trees, leaf rows of each tree
    numbered from 0 in this block, the leaves' survival at ``grid``, number of leaves)."""
    from sksurv.ensemble import RandomSurvivalForest as _SkForest

    trees = _Trees()
    leaf_rows, surv = [], []
    n_leaves = 0
    for i, seed in enumerate(seeds):
        if i % 10 == 0:
            check_interrupt()
        forest = _SkForest(n_estimators=1, min_samples_leaf=p["min_samples_leaf"],
                           max_features=p["max_features"], n_jobs=1, random_state=seed).fit(x, yy)
        t = forest.estimators_[0].tree_
        chf, km = t.value[:, :, 0], t.value[:, :, 1]
        mortality = chf[:, forest.is_event_time_].sum(1)
        cols = np.searchsorted(forest.unique_times_, grid, side="right") - 1
        leaf = t.children_left < 0
        rows = np.full(t.node_count, -1, dtype=np.int64)
        rows[leaf] = n_leaves + np.arange(int(leaf.sum()))
        n_leaves += int(leaf.sum())
        leaf_rows.append(rows)
        surv.append(km[leaf][:, cols].astype(np.float32))
        trees.add(forest.estimators_[0], mortality)
    return trees, leaf_rows, surv, n_leaves


@register
class RandomSurvivalForest(Model):
    """Random survival forest (Ishwaran et al., Ann. Appl. Stat. 2008): bootstrap trees with
    log-rank splits on a random subset of the covariates, grown by scikit-survival one tree at
    a time (bounded memory) and stored as node arrays. The risk score is scikit-survival's
    ensemble mortality (the trees' mean cumulative hazard summed over the training event
    times); the survival function is the trees' mean Kaplan-Meier curve of the leaf, stored at
    ``grid`` quantiles of the event times (step function between them)."""

    name = "rsf"
    parameter_constraints = {"n_trees": [COUNT], "min_samples_leaf": [COUNT],
                             "max_features": [Options("sqrt", "log2", None), Interval(int, 1, None),
                                              Interval(float, 0, 1, "right")],
                             "grid": [Interval(int, 2, None)]}

    def __init__(self, seed=0, n_trees=100, min_samples_leaf=10, max_features="sqrt", grid=64):
        super().__init__(seed, n_trees=n_trees, min_samples_leaf=min_samples_leaf,
                         max_features=max_features, grid=grid)

    def fit(self, x, y, inputs=None):
        check_target(y, "survival")
        p = self.params
        x = np.asarray(x, dtype=np.float32)
        yy = np.empty(len(x), dtype=[("event", bool), ("time", float)])
        yy["event"], yy["time"] = np.asarray(y.event) > 0, np.asarray(y.time, float)
        ev = np.unique(yy["time"][yy["event"]])
        self.grid = ev if len(ev) <= p["grid"] else np.unique(
            np.quantile(ev, np.linspace(0, 1, int(p["grid"])), method="inverted_cdf"))
        rng = np.random.default_rng(self.seed)
        seeds = [int(rng.integers(2 ** 31 - 1)) for _ in range(int(p["n_trees"]))]
        from ..parallel import map_fits

        # blocks of trees are independent fits: tasks on the command's engine, if any
        blocks = [(seeds[i:i + FOREST_BLOCK],) for i in range(0, len(seeds), FOREST_BLOCK)]
        self.trees = _Trees()
        leaf_rows, surv = [], []
        n_leaves = 0
        for trees, rows, s, n in map_fits(_grow_trees, blocks, size=len(x), shared=(x, yy, self.grid, p)):
            self.trees.extend(trees)
            leaf_rows += [np.where(r >= 0, r + n_leaves, -1) for r in rows]
            surv += s
            n_leaves += n
        self.leaf_rows = np.concatenate(leaf_rows)
        self.leaf_surv = np.concatenate(surv)
        return self

    def predict_risk(self, x, inputs=None):
        return self.trees.predict_each(x).mean(0)

    def predict_survival(self, x, times, inputs=None):
        leaves = self.trees.leaves(x)
        s = self.leaf_surv[self.leaf_rows[leaves]].astype(np.float64).mean(0)  # (n, grid)
        i = np.searchsorted(self.grid, np.asarray(times, dtype=float), side="right") - 1
        return np.where(i >= 0, s[:, np.clip(i, 0, len(self.grid) - 1)], 1.0)

    def state(self):
        arrays = self.trees.arrays("tree.")
        arrays.update({"grid": np.asarray(self.grid, float), "leaf_rows": self.leaf_rows,
                       "leaf_surv": self.leaf_surv})
        return arrays, {"name": self.name, "seed": self.seed, "params": self.params}

    @classmethod
    def from_state(cls, config, arrays):
        m = cls(seed=config["seed"], **config["params"])
        m.trees = _Trees.from_arrays(arrays, "tree.")
        m.grid = np.asarray(arrays["grid"], float)
        m.leaf_rows = np.asarray(arrays["leaf_rows"], np.int64)
        m.leaf_surv = np.asarray(arrays["leaf_surv"], np.float32)
        return m


# the network and ensemble kinds (registered on import), re-exported here
from .survival_ensemble import (AUTO_CANDIDATES, AUTO_MEMBERS, DEFAULT_MEMBERS, AutoSurvival, Ensemble,  # noqa: E402
                                auto_member, cv_member_risks, make_member)
from .survival_networks import CoxTime, DeepHit, DeepSurv, LogisticHazard, NetSurvival, PCHazard  # noqa: E402

__all__ = ["AutoSurvival", "CoxPH", "CoxBoost", "RandomSurvivalForest", "DeepSurv", "LogisticHazard",
           "DeepHit", "PCHazard", "CoxTime", "Ensemble",
           "AUTO_CANDIDATES", "AUTO_MEMBERS", "DEFAULT_MEMBERS", "auto_member", "cv_member_risks", "make_member",
           "cox_neg_loglik", "step_at"]
