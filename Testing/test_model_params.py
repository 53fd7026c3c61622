"""Model hyper-parameters are explicit, validated keywords; one outcome check, one Breslow
baseline, one place for risk-group names and horizon parsing."""

import numpy as np
import pytest

from cmrrisk.errors import CMRRiskError


def _survival(n=120, seed=0):
    from cmrrisk.predict.base import SurvivalTarget

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    t = rng.exponential(1 / np.exp(x[:, 0] - 0.5 * x[:, 1]))
    c = rng.exponential(2.0, n)
    return x, SurvivalTarget(np.minimum(t, c), (t <= c).astype(int))


def test_misspelt_parameter_is_refused_naming_it_and_the_allowed_ones():
    from cmrrisk.predict import create
    from cmrrisk.predict.survival import CoxPH

    with pytest.raises(CMRRiskError) as ei:
        create("cox", "survival", alhpa=5.0)
    assert "'alhpa'" in str(ei.value) and "allowed: alpha" in str(ei.value)
    with pytest.raises(CMRRiskError, match="'alhpa'"):  # building the class directly too
        CoxPH(alhpa=5.0)


def test_out_of_range_and_wrongly_typed_values_are_refused():
    from cmrrisk.predict import create

    with pytest.raises(CMRRiskError, match=r"'dropout' = 2: must be a number in \[0, 1\)"):
        create("deepsurv", "survival", dropout=2)
    with pytest.raises(CMRRiskError, match="'max_depth'"):
        create("coxboost", "survival", max_depth=2.5)
    with pytest.raises(CMRRiskError, match="'hidden'"):
        create("mlp", "diagnosis", hidden=[0])
    with pytest.raises(CMRRiskError, match="'alpha'"):
        create("cox", "survival", alpha=-1)


@pytest.mark.parametrize("endpoint", ["survival", "diagnosis"])
def test_no_model_swallows_an_unknown_keyword(endpoint):
    from cmrrisk.predict.base import create, model_names

    for name in model_names(endpoint):
        with pytest.raises(CMRRiskError, match="no parameter 'bogus'"):
            create(name, endpoint, bogus=1)


def test_alpha_is_used_by_the_fitted_cox_model():
    from sksurv.linear_model import CoxPHSurvivalAnalysis
    from sksurv.util import Surv

    from cmrrisk.predict import create

    x, y = _survival()
    m5 = create("cox", "survival", alpha=5).fit(x, y)
    assert m5.params == {"alpha": 5.0}
    ref = CoxPHSurvivalAnalysis(alpha=5.0, ties="breslow", n_iter=200).fit(
        x, Surv.from_arrays(y.event.astype(bool), y.time))
    np.testing.assert_allclose(m5.coef, ref.coef_, rtol=1e-6)
    m01 = create("cox", "survival").fit(x, y)
    assert np.abs(m5.coef).sum() < np.abs(m01.coef).sum()  # a stronger penalty shrinks


def test_max_epochs_budget_is_dropped_only_for_kinds_without_epochs():
    from cmrrisk.predict import create

    assert create("cox", "survival", max_epochs=3).params == {"alpha": 0.1}
    assert create("deepsurv", "survival", max_epochs=3).params["max_epochs"] == 3


def test_parse_params_converts_text_to_the_parameter_type():
    from cmrrisk.predict.base import parse_params

    p = parse_params("deepsurv", "survival", {"hidden": "[64,64]", "dropout": "0.3", "n_bags": "2"})
    assert p == {"hidden": [64, 64], "dropout": 0.3, "n_bags": 2}
    assert parse_params("rsf", "survival", {"max_features": "sqrt"}) == {"max_features": "sqrt"}
    assert parse_params("cox", "survival", {"alpha": "5"}) == {"alpha": 5.0}
    with pytest.raises(CMRRiskError, match="'n_bags'"):
        parse_params("deepsurv", "survival", {"n_bags": "two"})


def test_one_breslow_baseline_gives_the_cox_survival_curve():
    from cmrrisk.predict import create
    from cmrrisk.predict.models import BreslowBaseline
    from cmrrisk.predict.survival import CoxPH

    x, y = _survival()
    m = create("cox", "survival").fit(x, y)
    assert isinstance(m.baseline, BreslowBaseline)
    # S(t|x) = exp(-H0(t) exp(lp - centre)) with H0 the Breslow sum of d / sum exp(lp - centre)
    lp = m.predict_risk(x)
    w = np.exp(lp - lp.mean())
    t0 = float(np.median(y.time))
    h0 = sum(np.sum((y.time == t) & (y.event > 0)) / w[y.time >= t].sum()
             for t in np.unique(y.time[(y.event > 0) & (y.time <= t0)]))
    np.testing.assert_allclose(m.predict_survival(x[:3], [t0])[:, 0], np.exp(-h0 * w[:3]), rtol=1e-9)
    arrays, config = m.state()
    again = CoxPH.from_state(config, arrays)
    np.testing.assert_array_equal(again.predict_survival(x, [t0]), m.predict_survival(x, [t0]))


def test_one_outcome_check_for_every_model():
    from cmrrisk.predict import create
    from cmrrisk.predict.base import DiagnosisTarget, SurvivalTarget

    x = np.zeros((6, 2))
    for name in ("cox", "coxboost", "deepsurv"):
        with pytest.raises(CMRRiskError, match="only 1 event"):
            create(name, "survival").fit(x, SurvivalTarget(np.arange(1, 7), [1, 0, 0, 0, 0, 0]))
        with pytest.raises(CMRRiskError, match="needs time and event"):
            create(name, "survival").fit(x, DiagnosisTarget(np.zeros(6, int), ["a", "b"]))
    for name in ("logistic", "mlp", "auto"):
        with pytest.raises(CMRRiskError, match="at least two classes"):
            create(name, "diagnosis").fit(x, DiagnosisTarget(np.zeros(6, int), ["a"]))


def test_risk_group_names_and_horizons_defined_once():
    from cmrrisk.predict.models import group_names, parse_horizons, risk_group

    assert group_names(3) == ["low", "intermediate", "high"]
    assert group_names(2) == ["low", "high"]
    assert risk_group([1.0, 2.0], 0.5) == "low" and risk_group([1.0, 2.0], 1.5) == "intermediate"
    assert risk_group([1.0, 2.0], 2.0) == "high"
    assert parse_horizons("365, 730") == [365.0, 730.0]
    assert parse_horizons([1, 2]) == [1.0, 2.0]
    assert parse_horizons("") is None and parse_horizons(None) is None
    for bad in ("inf", "0", "-1", "a,b", "nan"):
        with pytest.raises(CMRRiskError, match="--horizons"):
            parse_horizons(bad)


def test_networks_are_module_level_classes():
    from cmrrisk.predict.models import networks
    from cmrrisk.predict.multiinput import build_net

    net = build_net(8, 2, 1, width=4, slices=2)
    assert type(net) is networks.MultiInputNet
    assert type(networks.MLP(3, 1, [4], 0.1)).__module__ == "cmrrisk.predict.models.networks"


def test_structured_parameters_are_checked_before_fitting():
    from cmrrisk.predict import create
    from cmrrisk.predict.base import parse_params

    with pytest.raises(CMRRiskError, match="'foo' is not a survival model"):
        parse_params("auto", "survival", {"candidates": '[["cox"], ["foo"]]'})
    with pytest.raises(CMRRiskError, match="'candidates'"):
        parse_params("auto", "survival", {"candidates": "[[]]"})
    with pytest.raises(CMRRiskError, match="no parameter 'hiden'"):
        create("ensemble", "survival", members=[["deepsurv", {"hiden": [3]}]])
    with pytest.raises(CMRRiskError, match="'members'"):
        create("ensemble", "survival", members=[["deepsurv"]])
