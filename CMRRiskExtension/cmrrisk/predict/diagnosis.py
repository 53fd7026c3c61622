"""Diagnostic (classification) models on preprocessed covariate matrices.

- ``logistic`` (default): L2-penalised logistic regression (binary) or multinomial regression
  (more classes), scikit-learn; stored as coefficient arrays, predicted with numpy.
- ``mlp``: a small multilayer perceptron (PyTorch, cross-entropy, early stopping on a
  validation split of the training data), for non-linear effects when there are enough subjects.
- ``auto`` (default): k-fold cross-validation inside the training data chooses among logistic
  regression on every column, on the clinical columns only (everything that is neither a
  radiomic nor a deep feature: indices, anthropometrics, covariates), and on clinical + radiomic
  columns; the chosen one is refitted on all training subjects.
"""

from __future__ import annotations

import numpy as np

from .models.params import COUNT, FRACTION, NON_NEGATIVE, POSITIVE, IntList, Interval
from .models.registry import Model, register
from .models.targets import check_target
from .models.training import fit_network, seeded, split_validation, torch_threads


def _check_target(y):
    check_target(y, "diagnosis")


def _softmax(z):
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


@register
class Logistic(Model):
    """Multinomial (softmax) logistic regression with ridge penalty ``C`` (inverse strength)."""

    name = "logistic"
    endpoint = "diagnosis"
    parameter_constraints = {"C": [POSITIVE]}

    def __init__(self, seed=0, C: float = 1.0):
        super().__init__(seed, C=C)

    def fit(self, x, y, inputs=None):
        from sklearn.linear_model import LogisticRegression

        _check_target(y)
        m = LogisticRegression(C=self.params["C"], max_iter=2000, random_state=self.seed)
        m.fit(np.asarray(x, float), np.asarray(y.y))
        k = len(y.classes)
        coef = np.zeros((k, x.shape[1]))
        icpt = np.full(k, -30.0)  # a class absent from training gets ~zero probability
        if len(m.classes_) == 2:
            # scikit-learn's binary model: one row for the second class; as softmax over two
            coef[m.classes_[1]] = m.coef_[0]
            icpt[m.classes_[1]] = m.intercept_[0]
            icpt[m.classes_[0]] = 0.0
        else:
            coef[m.classes_] = m.coef_
            icpt[m.classes_] = m.intercept_
        self.coef, self.intercept, self.classes = coef, icpt, list(y.classes)
        return self

    def predict_proba(self, x, inputs=None):
        return _softmax(np.asarray(x, float) @ self.coef.T + self.intercept)

    def predict_risk(self, x, inputs=None):
        """Probability of the last class (binary: the positive class)."""
        return self.predict_proba(x)[:, -1]

    def state(self):
        return ({"coef": self.coef, "intercept": self.intercept},
                {"name": self.name, "seed": self.seed, "params": self.params, "classes": self.classes})

    @classmethod
    def from_state(cls, config, arrays):
        m = cls(seed=config["seed"], **config["params"])
        m.coef, m.intercept = np.asarray(arrays["coef"]), np.asarray(arrays["intercept"])
        m.classes = config["classes"]
        return m


@register
class MLPClassifier(Model):
    name = "mlp"
    endpoint = "diagnosis"
    parameter_constraints = {"hidden": [IntList()], "dropout": [Interval(float, 0, 1, "left")],
                             "lr": [POSITIVE], "weight_decay": [NON_NEGATIVE], "batch_size": [COUNT],
                             "max_epochs": [COUNT], "patience": [COUNT], "val_fraction": [FRACTION]}

    def __init__(self, seed=0, hidden=(32,), dropout=0.2, lr=1e-3, weight_decay=1e-3,
                 batch_size=64, max_epochs=300, patience=30, val_fraction=0.2):
        super().__init__(seed, hidden=list(hidden), dropout=dropout, lr=lr, weight_decay=weight_decay,
                         batch_size=batch_size, max_epochs=max_epochs, patience=patience,
                         val_fraction=val_fraction)

    def _net(self):
        from .models.networks import MLP

        return MLP(self.d_in, len(self.classes), self.params["hidden"], self.params["dropout"])

    def fit(self, x, y, inputs=None):
        import torch

        _check_target(y)
        p = self.params
        x = np.asarray(x, dtype=np.float32)
        self.d_in, self.classes = x.shape[1], list(y.classes)
        labels = np.asarray(y.y, dtype=np.int64)
        tr, va = split_validation(len(x), p["val_fraction"], self.seed, labels)
        X, Y = torch.from_numpy(x), torch.from_numpy(labels)
        lossf = torch.nn.CrossEntropyLoss()
        iv = torch.from_numpy(va)
        with seeded(self.seed, threads=1):
            net = self._net()
            self.epochs = fit_network(
                net, lambda n, ix: lossf(n(X[torch.from_numpy(ix)]), Y[torch.from_numpy(ix)]),
                lambda n: lossf(n(X[iv]), Y[iv]), tr, lr=p["lr"], weight_decay=p["weight_decay"],
                batch_size=p["batch_size"], max_epochs=p["max_epochs"], patience=p["patience"],
                generator=torch.Generator().manual_seed(self.seed))
        self.net = net
        return self

    def predict_proba(self, x, inputs=None):
        import torch

        with torch.no_grad(), torch_threads(1):
            out = self.net(torch.from_numpy(np.asarray(x, dtype=np.float32))).numpy().astype(float)
        return _softmax(out)

    def predict_risk(self, x, inputs=None):
        return self.predict_proba(x)[:, -1]

    def state(self):
        return ({k: v.numpy() for k, v in self.net.state_dict().items()},
                {"name": self.name, "seed": self.seed, "params": self.params, "classes": self.classes,
                 "d_in": self.d_in, "epochs": self.epochs})

    @classmethod
    def from_state(cls, config, arrays):
        import torch

        m = cls(seed=config["seed"], **config["params"])
        m.d_in, m.classes, m.epochs = config["d_in"], config["classes"], config["epochs"]
        m.net = m._net()
        m.net.load_state_dict({k: torch.as_tensor(np.asarray(v)) for k, v in arrays.items()})
        m.net.eval()
        return m


#: candidate (name, column family) pairs of ``auto``, simplest first (ties go to the first)
AUTO_DIAGNOSIS_CANDIDATES = [("logistic", "clinical"), ("logistic", "clinical+radiomics"), ("logistic", "all")]


def column_family(name: str) -> str:
    """'deep' (deep features), 'radiomics' (pyradiomics) or 'clinical' (everything else)."""
    if name.startswith("deep_"):
        return "deep"
    if "_original_" in name:
        return "radiomics"
    return "clinical"


def family_columns(names: list, family: str) -> np.ndarray:
    want = {"clinical": {"clinical"}, "clinical+radiomics": {"clinical", "radiomics"},
            "all": {"clinical", "radiomics", "deep"}}[family]
    return np.array([i for i, n in enumerate(names) if column_family(n) in want], dtype=np.int64)


@register
class AutoDiagnosis(Model):
    """The default diagnosis model: inner cross-validation (accuracy) picks the column family
    (see :data:`AUTO_DIAGNOSIS_CANDIDATES`); the pipeline tells it the column names."""

    name = "auto"
    endpoint = "diagnosis"
    wants_feature_names = True
    parameter_constraints = {"folds": [Interval(int, 2, None)]}

    def __init__(self, seed=0, folds=5):
        super().__init__(seed, folds=folds)
        self.feature_names: list | None = None

    def fit(self, x, y, inputs=None):
        from sklearn.model_selection import StratifiedKFold

        _check_target(y)
        x = np.asarray(x, float)
        names = self.feature_names or [f"x{i}" for i in range(x.shape[1])]
        cands = []
        for model, fam in AUTO_DIAGNOSIS_CANDIDATES:
            cols = family_columns(names, fam)
            key = (tuple(cols.tolist()))
            if len(cols) and all(tuple(c[2].tolist()) != key for c in cands):
                cands.append((model, fam, cols))
        counts = np.bincount(np.asarray(y.y), minlength=len(y.classes))
        k = int(min(self.params["folds"], counts[counts > 0].min()))
        self.cv_scores = {}
        if len(cands) > 1 and k >= 2:
            splits = list(StratifiedKFold(k, shuffle=True, random_state=self.seed).split(x, y.y))
            for model, fam, cols in cands:
                acc = []
                for tr, te in splits:
                    m = Logistic(seed=self.seed).fit(x[tr][:, cols], y[tr])
                    acc.append(float(np.mean(m.predict_proba(x[te][:, cols]).argmax(1) == np.asarray(y.y)[te])))
                self.cv_scores[f"{model}:{fam}"] = float(np.mean(acc))
            best = max(range(len(cands)), key=lambda i: self.cv_scores[f"{cands[i][0]}:{cands[i][1]}"])
        else:
            best = 0
        model, fam, cols = cands[best]
        self.chosen = [f"{model}:{fam}"]
        self.columns = cols
        self.member = Logistic(seed=self.seed).fit(x[:, cols], y)
        self.classes = list(y.classes)
        return self

    def predict_proba(self, x, inputs=None):
        return self.member.predict_proba(np.asarray(x, float)[:, self.columns])

    def predict_risk(self, x, inputs=None):
        return self.predict_proba(x)[:, -1]

    def state(self):
        arrays, cfg = self.member.state()
        arrays = {f"member.{k}": v for k, v in arrays.items()}
        arrays["columns"] = np.asarray(self.columns, dtype=np.int64)
        return arrays, {"name": self.name, "seed": self.seed, "params": self.params, "classes": self.classes,
                        "chosen": self.chosen, "cv_scores": self.cv_scores, "member": cfg}

    @classmethod
    def from_state(cls, config, arrays):
        m = cls(seed=config["seed"], **config["params"])
        m.member = Logistic.from_state(config["member"], {k[7:]: v for k, v in arrays.items() if k.startswith("member.")})
        m.columns = np.asarray(arrays["columns"], dtype=np.int64)
        m.classes, m.chosen, m.cv_scores = config["classes"], config["chosen"], config["cv_scores"]
        return m
