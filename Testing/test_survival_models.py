"""Survival models: the Cox-Time and PC-Hazard models and the ``auto`` model's inner-CV
choice among them (small synthetic data; runs in well under a minute)."""

import json

import numpy as np
import pytest


def synthetic(n=700, seed=1):
    """Exponential event times with log-hazard lp (proportional hazards), exponential censoring."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    lp = 1.0 * x[:, 0] - 0.7 * x[:, 1] + 0.5 * x[:, 2]
    t_event = rng.exponential(1.0 / np.exp(lp))
    t_cens = rng.exponential(2.0, size=n)
    return x, np.minimum(t_event, t_cens), (t_event <= t_cens).astype(int), lp


def _table(x, t, e):
    from cmrrisk.predict.tabular import table_from_arrays

    return table_from_arrays(x, t, e)


def _c(t, e, r):
    from cmrrisk.predict.evaluation import harrell

    return harrell(t, e, r)


def _fit_and_check(name, params, slack):
    """Fit on 500 synthetic subjects, test on 200: C-index near the true hazard's; a survival
    function within [0, 1], 1 at time 0, non-increasing. Returns (pipe, test, risk, survival)."""
    from cmrrisk.predict.pipeline import Pipeline

    x, t, e, lp = synthetic()
    tr, te = np.arange(500), np.arange(500, 700)
    pipe = Pipeline("survival", name, seed=0, model_params=params).fit(_table(x[tr], t[tr], e[tr]))
    test = _table(x[te], t[te], e[te])
    risk = pipe.predict_risk(test)
    truth = _c(t[te], e[te], lp[te])
    c = _c(t[te], e[te], risk)
    assert c > 0.70 and c > truth - slack, f"{name}: C {c:.3f} (true hazard {truth:.3f})"
    s = pipe.predict_survival(test, TIMES)
    assert s.shape == (200, len(TIMES))
    assert np.all((s >= 0) & (s <= 1))
    assert np.allclose(s[:, 0], 1.0)
    assert np.all(np.diff(s, axis=1) <= 1e-12)
    return pipe, test, risk, s


NEW = [("coxtime", {"n_bags": 2}), ("pchazard", {"n_bags": 2})]
TIMES = [0.0, 0.05, 0.2, 0.5, 1.0, 2.0, 50.0]


@pytest.mark.parametrize("name,params", NEW)
def test_new_model_ranks_by_true_hazard_and_round_trips(name, params, tmp_path):
    from cmrrisk.predict.store import load_pipeline, save_pipeline

    x, t, e, _ = synthetic()
    tr, te = np.arange(500), np.arange(500, 700)
    pipe, test, risk, s = _fit_and_check(name, params, 0.05)
    # higher risk = lower predicted survival at the median time
    h = float(np.median(t[tr]))
    assert _c(t[te], e[te], -pipe.predict_survival(test, [h])[:, 0]) > 0.70
    # saved as arrays + JSON and restored exactly
    save_pipeline(pipe, str(tmp_path / name))
    cfg = json.loads((tmp_path / name / "config.json").read_text())
    assert cfg["model"]["name"] == name and len(cfg["model"]["epochs"]) == 2
    again = load_pipeline(str(tmp_path / name))
    assert np.array_equal(again.predict_risk(test), risk)
    assert np.array_equal(again.predict_survival(test, TIMES), s)


def test_coxtime_state_holds_label_transform_and_baseline():
    from cmrrisk.predict.base import SurvivalTarget
    from cmrrisk.predict.survival import CoxTime

    x, t, e, _ = synthetic(300, seed=4)
    m = CoxTime(seed=1, max_epochs=20, time_grid=50).fit(x.astype(np.float32), SurvivalTarget(t, e))
    arrays, config = m.state()
    assert {"bh_times", "bh_gtimes", "bh0", "net0.mlp.0.weight"} <= set(arrays)
    assert all(isinstance(v, np.ndarray) for v in arrays.values())
    json.dumps(config)  # JSON-able, nothing pickled
    assert config["time_std"] > 0 and np.isfinite(config["time_mean"])
    # the event times are all kept; g is evaluated on at most time_grid of them
    assert len(arrays["bh_times"]) == len(np.unique(t[e > 0]))
    assert len(np.unique(arrays["bh_gtimes"])) <= 50
    assert np.all(arrays["bh0"] >= 0)
    back = CoxTime.from_state(config, arrays)
    xs = x[:50].astype(np.float32)
    assert np.array_equal(back.predict_survival(xs, [0.3, 1.0]), m.predict_survival(xs, [0.3, 1.0]))


def test_coxtime_learns_a_time_varying_effect():
    """x[:, 0] raises the hazard early and lowers it late (crossing survival curves): a
    proportional-hazards model cannot represent it, Cox-Time can."""
    from cmrrisk.predict.base import SurvivalTarget
    from cmrrisk.predict.survival import CoxTime

    rng = np.random.default_rng(5)
    n = 1500
    x = rng.normal(size=(n, 2))
    group = x[:, 0] > 0
    # group 1: hazard 2 before t=0.5, 0.1 after; group 0: constant hazard 0.6
    u = rng.exponential(1.0, n)
    t1 = np.where(u < 1.0, u / 2.0, 0.5 + (u - 1.0) / 0.1)
    t0 = u / 0.6
    t_event = np.where(group, t1, t0)
    t_cens = rng.uniform(0.5, 6.0, n)
    t, e = np.minimum(t_event, t_cens), (t_event <= t_cens).astype(int)
    m = CoxTime(seed=0, lr=1e-2, n_bags=2).fit(x.astype(np.float32), SurvivalTarget(t, e))
    probe = np.array([[1.0, 0.0], [-1.0, 0.0]], dtype=np.float32)
    s = m.predict_survival(probe, [0.3, 4.0])
    assert s[0, 0] < s[1, 0]  # early: group 1 dies faster
    assert s[0, 1] > s[1, 1]  # late: the curves have crossed


def test_auto_considers_the_new_models_by_inner_cv(tmp_path):
    from cmrrisk.predict.pipeline import Pipeline
    from cmrrisk.predict.store import load_pipeline, save_pipeline
    from cmrrisk.predict.survival import AUTO_CANDIDATES, auto_member

    keys = {k for c in AUTO_CANDIDATES for k in c}
    assert {"coxtime", "pchazard"} <= {auto_member(k)[0] for k in keys}
    x, t, e, _ = synthetic(400, seed=7)
    tab = _table(x, t, e)
    cands = [["cox"], ["coxtime"], ["pchazard"], ["cox", "coxtime"]]
    pipe = Pipeline("survival", seed=0, model_params={"candidates": cands, "folds": 3,
                                                      "max_epochs": 15}).fit(tab)
    assert set(pipe.model.cv_scores) == {"cox", "coxtime", "pchazard", "cox+coxtime"}
    assert all(0.6 < v <= 1 for v in pipe.model.cv_scores.values()), pipe.model.cv_scores
    best = max(pipe.model.cv_scores, key=pipe.model.cv_scores.get)
    assert "+".join(pipe.model.chosen) == best
    save_pipeline(pipe, str(tmp_path / "auto"))
    cfg = json.loads((tmp_path / "auto" / "config.json").read_text())
    assert cfg["model"]["cv_scores"] == pipe.model.cv_scores
    again = load_pipeline(str(tmp_path / "auto"))
    assert np.array_equal(again.predict_risk(tab), pipe.predict_risk(tab))
    assert np.array_equal(again.predict_survival(tab, [0.5, 1.0]), pipe.predict_survival(tab, [0.5, 1.0]))


def test_random_survival_forest_ranks_matches_scikit_survival_and_round_trips(tmp_path):
    """``rsf``: risks by the true hazard; each stored tree predicts exactly what
    scikit-survival's tree does (mortality; Kaplan-Meier at the grid times); saved and restored
    exactly."""
    from sksurv.ensemble import RandomSurvivalForest as SkForest

    from cmrrisk.predict.base import SurvivalTarget
    from cmrrisk.predict.store import load_pipeline, save_pipeline
    from cmrrisk.predict.survival import RandomSurvivalForest

    x, t, e, _ = synthetic()
    tr, te = np.arange(500), np.arange(500, 700)
    pipe, test, risk, s = _fit_and_check("rsf", {"n_trees": 30}, 0.06)
    save_pipeline(pipe, str(tmp_path / "rsf"))
    again = load_pipeline(str(tmp_path / "rsf"))
    assert np.array_equal(again.predict_risk(test), risk)
    assert np.array_equal(again.predict_survival(test, TIMES), s)

    # one tree against scikit-survival's own forest grown with the same random state
    xs, y = x[tr].astype(np.float32), SurvivalTarget(t[tr], e[tr])
    one = RandomSurvivalForest(seed=5, n_trees=1, min_samples_leaf=8, grid=20).fit(xs, y)
    rs = int(np.random.default_rng(5).integers(2 ** 31 - 1))
    yy = np.empty(len(xs), dtype=[("event", bool), ("time", float)])
    yy["event"], yy["time"] = e[tr] > 0, t[tr]
    ref = SkForest(n_estimators=1, min_samples_leaf=8, max_features="sqrt", n_jobs=1,
                   random_state=rs).fit(xs, yy)
    xt = x[te].astype(np.float32)
    assert np.allclose(one.predict_risk(xt), ref.predict(xt))
    assert len(one.grid) == 20
    km = np.array([f(one.grid) for f in ref.predict_survival_function(xt)])
    assert np.allclose(one.predict_survival(xt, one.grid), km, atol=1e-6)
