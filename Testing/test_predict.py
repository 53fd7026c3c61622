"""Prediction core (tabular models): models, model directories, manifest validation,
leakage-free cross-validation, evaluation metrics and the train/predict/evaluate commands."""

import argparse
import json
import os

import numpy as np
import pytest

from conftest import DATA

SURV_DATA = DATA / "survival"
needs_survival = pytest.mark.skipif(not (SURV_DATA / "gbsg_cancer_train_test.h5").is_file(),
                                    reason=f"DeepSurv survival data not found at {SURV_DATA}")

FAST_NET = {"max_epochs": 30, "patience": 10}


def synthetic_survival(n=500, seed=0, nonlinear=False):
    """Exponential times with log-hazard lp; independent exponential censoring."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5))
    lp = 1.0 * x[:, 0] - 0.7 * x[:, 1] + 0.5 * x[:, 2]
    if nonlinear:
        lp = lp + 0.8 * x[:, 3] ** 2
    t_event = rng.exponential(1.0 / np.exp(lp))
    t_cens = rng.exponential(2.0, size=n)
    time = np.minimum(t_event, t_cens)
    event = (t_event <= t_cens).astype(int)
    return x, time, event, lp


def _table(x, time=None, event=None, label=None, names=None):
    from cmrrisk.predict.tabular import table_from_arrays

    return table_from_arrays(x, time, event, label, names=names)


def _cindex(time, event, risk):
    from cmrrisk.predict.evaluation import harrell

    return harrell(time, event, risk)


def _run(argv):
    """The CLI with the prediction commands (as cmrrisk.cli registers them)."""
    from cmrrisk.cli import build_parser, main

    sub = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    if sub and "train" in sub[0].choices:  # the lead's cli.py calls add_commands
        return main(argv)
    from cmrrisk.errors import CMRRiskError
    from cmrrisk.predict.commands import add_commands

    p = argparse.ArgumentParser(prog="cmrrisk")
    add_commands(p.add_subparsers(dest="command", required=True))
    args = p.parse_args(argv)
    try:
        return args.func(args)
    except CMRRiskError as exc:
        print(f"cmrrisk {args.command}: error: {exc}")
        return 2


# ------------------------------------------------------------------------- survival models

@pytest.mark.parametrize("name,params,tol", [
    ("cox", {}, 0.02),
    ("coxboost", {}, 0.05),
    ("deepsurv", FAST_NET, 0.04),
    ("logistic_hazard", {"max_epochs": 60, "lr": 5e-3}, 0.05),
    ("deephit", {"max_epochs": 60, "lr": 5e-3}, 0.07),
])
def test_survival_models_recover_known_hazard(name, params, tol):
    from cmrrisk.predict.pipeline import Pipeline

    x, t, e, lp = synthetic_survival(700, seed=1)
    tr, te = np.arange(500), np.arange(500, 700)
    truth = _cindex(t[te], e[te], lp[te])
    pipe = Pipeline("survival", name, seed=0, model_params=params).fit(_table(x[tr], t[tr], e[tr]))
    test = _table(x[te], t[te], e[te])
    c = _cindex(t[te], e[te], pipe.predict_risk(test))
    assert c > truth - tol, f"{name}: C {c:.3f} vs true risk {truth:.3f}"
    # a survival function: in [0, 1], non-increasing in time
    s = pipe.predict_survival(test, [0.05, 0.2, 0.5, 1.0, 3.0])
    assert s.shape == (200, 5)
    assert np.all((s >= 0) & (s <= 1))
    assert np.all(np.diff(s, axis=1) <= 1e-9)
    # the population's mean predicted survival is close to Kaplan-Meier at the median time
    from cmrrisk.predict.evaluation import km_at

    h = float(np.median(t[te]))
    assert abs(pipe.predict_survival(test, [h]).mean() - km_at(t[te], e[te], h)) < 0.12


def test_coxboost_finds_nonlinear_effect_that_cox_misses():
    from cmrrisk.predict.pipeline import Pipeline

    x, t, e, lp = synthetic_survival(1000, seed=2, nonlinear=True)
    tr, te = np.arange(700), np.arange(700, 1000)
    c = {}
    for name in ("cox", "coxboost"):
        pipe = Pipeline("survival", name).fit(_table(x[tr], t[tr], e[tr]))
        c[name] = _cindex(t[te], e[te], pipe.predict_risk(_table(x[te], t[te], e[te])))
    assert c["coxboost"] > c["cox"] + 0.02, c


def test_auto_default_chooses_by_inner_cross_validation(tmp_path):
    from cmrrisk.predict.pipeline import Pipeline
    from cmrrisk.predict.store import load_pipeline, save_pipeline

    x, t, e, _ = synthetic_survival(600, seed=8, nonlinear=True)
    tab = _table(x, t, e)
    pipe = Pipeline("survival", seed=0, model_params={"candidates": [["cox"], ["coxboost"]],
                                                      "folds": 3}).fit(tab)
    assert pipe.model_name == "auto"
    assert set(pipe.model.cv_scores) == {"cox", "coxboost"}
    assert pipe.model.chosen == ["coxboost"]  # the non-linear effect: boosting wins in CV
    save_pipeline(pipe, str(tmp_path / "auto"))
    cfg = json.loads((tmp_path / "auto" / "config.json").read_text())
    assert cfg["model"]["chosen"] == ["coxboost"] and cfg["model"]["cv_scores"]["coxboost"] > 0.6
    again = load_pipeline(str(tmp_path / "auto"))
    assert np.array_equal(again.predict_risk(tab), pipe.predict_risk(tab))


def test_cox_coefficients_match_lifelines():
    """The penalised Cox baseline agrees with an independent implementation."""
    import pandas as pd
    from lifelines import CoxPHFitter

    from cmrrisk.predict.survival import CoxPH

    x, t, e, _ = synthetic_survival(400, seed=3)
    m = CoxPH(alpha=0.0).fit(x, __import__("cmrrisk.predict.base", fromlist=["x"]).SurvivalTarget(t, e))
    df = pd.DataFrame(x, columns=[f"x{j}" for j in range(5)]).assign(T=t, E=e)
    ref = CoxPHFitter().fit(df, "T", "E").params_.to_numpy()
    assert np.allclose(m.coef, ref, atol=2e-3)


# ---------------------------------------------------------------------- model directories

@pytest.fixture(scope="module")
def ensemble_dir(tmp_path_factory):
    from cmrrisk.predict.pipeline import Pipeline
    from cmrrisk.predict.store import save_pipeline

    x, t, e, _ = synthetic_survival(300, seed=4)
    pipe = Pipeline("survival", "ensemble", seed=3, model_params={"max_epochs": 15}).fit(_table(x, t, e))
    d = tmp_path_factory.mktemp("m") / "ens"
    save_pipeline(pipe, str(d))
    return pipe, d, x


def test_save_load_round_trip_identical(ensemble_dir):
    from cmrrisk.predict.store import load_pipeline

    pipe, d, x = ensemble_dir
    names = sorted(os.listdir(d))
    assert {"model.safetensors", "config.json", "preprocessing.json", "feature_names.json",
            "checksums.json", "MODEL_CARD.md"} <= set(names)
    assert not any(n.endswith((".pkl", ".pickle", ".joblib")) for n in names)
    cfg = json.loads((d / "config.json").read_text())
    assert cfg["software"]["torch"] and cfg["training"]["n"] == 300
    loaded = load_pipeline(str(d))
    tab = _table(x[:50])
    assert np.array_equal(pipe.predict_risk(tab), loaded.predict_risk(tab))
    ts = [0.1, 0.5, 1.0]
    assert np.array_equal(pipe.predict_survival(tab, ts), loaded.predict_survival(tab, ts))


def test_same_seed_same_model_different_seed_differs():
    from cmrrisk.predict.pipeline import Pipeline

    x, t, e, _ = synthetic_survival(200, seed=5)
    tab = _table(x, t, e)
    r = [Pipeline("survival", "deepsurv", seed=s, model_params={"max_epochs": 5}).fit(tab).predict_risk(tab)
         for s in (7, 7, 8)]
    assert np.array_equal(r[0], r[1])
    assert not np.allclose(r[0], r[2])


def test_tampered_model_directory_is_refused(ensemble_dir, tmp_path):
    import shutil

    from cmrrisk.errors import CMRRiskError
    from cmrrisk.predict.store import load_pipeline

    _, d, _ = ensemble_dir
    for victim in ("preprocessing.json", "model.safetensors"):
        copy = tmp_path / victim
        shutil.copytree(d, copy)
        with open(copy / victim, "r+b") as f:
            f.seek(-3, 2)
            last = f.read(1)
            f.seek(-3, 2)
            f.write(b"0" if last != b"0" else b"1")
        with pytest.raises(CMRRiskError, match=f"{victim}: SHA-256"):
            load_pipeline(str(copy))


# ------------------------------------------------------------------------ manifest checks

def _write(path, text):
    path.write_text(text)
    return str(path)


def test_manifest_errors_name_line_subject_and_column(tmp_path):
    from cmrrisk.errors import CMRRiskError
    from cmrrisk.predict.tabular import load_table

    m = _write(tmp_path / "m.csv", "subject,age,sex,time,event\n"
               "a,60,F,10,1\nb,seventy,M,12,0\nc,55,F,-3,1\nd,50,M,4,2\na,40,F,5,0\n")
    with pytest.raises(CMRRiskError) as ei:
        load_table(m, "survival")
    msg = str(ei.value)
    assert "line 3 (subject b), column 'age': 'seventy' is not a number" in msg
    assert "line 4 (subject c), column 'time'" in msg
    assert "line 5 (subject d), column 'event': '2' is not 0" in msg
    assert "line 6 (subject a), column 'subject': subject repeated (first on line 2)" in msg
    no_outcome = _write(tmp_path / "n.csv", "subject,age\na,1\nb,2\n")
    with pytest.raises(CMRRiskError, match="survival endpoint needs the column"):
        load_table(no_outcome, "survival")
    with pytest.raises(CMRRiskError, match="'label' column"):
        load_table(no_outcome, "diagnosis")


def test_model_refuses_manifest_with_other_columns(tmp_path):
    from cmrrisk.errors import CMRRiskError
    from cmrrisk.predict.pipeline import Pipeline
    from cmrrisk.predict.tabular import load_table

    rng = np.random.default_rng(0)
    rows = "\n".join(f"s{i},{rng.normal():.3f},{'MF'[i % 2]},{rng.uniform(1, 9):.2f},{i % 3 == 0:d}"
                     for i in range(40))
    train = load_table(_write(tmp_path / "t.csv", "subject,age,sex,time,event\n" + rows + "\n"), "survival")
    assert train.covariates["sex"].dtype == object  # text column -> category
    pipe = Pipeline("survival", "cox").fit(train)
    assert pipe.preprocessor.feature_names == ["age", "sex=M"]
    missing = load_table(_write(tmp_path / "x.csv", "subject,age\na,1\n"), need_outcome=False)
    with pytest.raises(CMRRiskError, match="missing column.*sex"):
        pipe.predict_risk(missing)
    retyped = load_table(_write(tmp_path / "y.csv", "subject,age,sex\na,1,3\n"), need_outcome=False)
    with pytest.raises(CMRRiskError, match="'sex' is numeric here but was categorical"):
        pipe.predict_risk(retyped)
    newlevel = load_table(_write(tmp_path / "z.csv", "subject,age,sex\na,1,X\n"), need_outcome=False)
    with pytest.raises(CMRRiskError, match="value.*X not seen in training"):
        pipe.predict_risk(newlevel)


def test_image_manifest_uses_feature_table(tmp_path):
    import pandas as pd

    from cmrrisk.predict.tabular import load_table

    m = _write(tmp_path / "m.csv", "subject,cine_ed,cine_ed_seg,seg_labels,age,label\n"
               "a,a.nii.gz,a_seg.nii.gz,acdc,50,x\nb,b.nii.gz,,acdc,60,y\n")
    feats = pd.DataFrame({"lv_edv_ml": [120.0, 150.0]}, index=pd.Index(["a", "b"], name="subject"))
    tab = load_table(m, "diagnosis", features=feats)
    assert list(tab.covariates.columns) == ["age", "lv_edv_ml"]
    assert tab.feature_columns == ["lv_edv_ml"] and tab.image_columns == ["cine_ed"]
    # per-subject inputs for image models: absolute paths, subject and label convention
    assert tab.images[0] == {"subject": "a", "cine_ed": str(tmp_path / "a.nii.gz"),
                             "cine_ed_seg": str(tmp_path / "a_seg.nii.gz"), "seg_labels": "acdc"}
    assert "cine_ed_seg" not in tab.images[1]
    assert tab.subset([1]).images[0]["subject"] == "b"
    # a model trained on images refuses a covariates-only manifest
    from cmrrisk.errors import CMRRiskError
    from cmrrisk.predict.tabular import Preprocessor

    pre = Preprocessor().fit(tab)
    plain = load_table(_write(tmp_path / "p.csv", "subject,age,lv_edv_ml\nc,1,2\n"), need_outcome=False)
    with pytest.raises(CMRRiskError, match="uses image features"):
        pre.transform(plain)
    # ... and a manifest whose features were computed with other settings
    feats.attrs["provenance"] = {"features_version": 1, "options": {"radiomics": True}}
    pre = Preprocessor().fit(load_table(m, "diagnosis", features=feats))
    other = feats.copy()
    other.attrs["provenance"] = {"features_version": 2, "options": {"radiomics": True}}
    with pytest.raises(CMRRiskError, match=r"other settings than in training \(differing: features_version\)"):
        pre.transform(load_table(m, "diagnosis", features=other))
    assert pre.transform(load_table(m, "diagnosis", features=feats)).shape == (2, 2)


def test_image_feature_absent_in_new_cohort_is_imputed_not_refused(tmp_path):
    """A feature family that no subject of a new cohort has (e.g. scar texture when no scar was
    segmented) is missing, imputed with the training median; a missing manifest covariate is
    still refused."""
    import pandas as pd

    from cmrrisk.errors import CMRRiskError
    from cmrrisk.predict.tabular import Preprocessor, load_table

    m = _write(tmp_path / "m.csv", "subject,cine_ed,age,label\na,a.nii.gz,50,x\nb,b.nii.gz,60,y\n"
               "c,c.nii.gz,70,y\n")
    idx = pd.Index(["a", "b", "c"], name="subject")
    feats = pd.DataFrame({"lv_edv_ml": [120.0, 150.0, 130.0], "scar_glcm": [1.0, 3.0, np.nan]}, index=idx)
    pre = Preprocessor().fit(load_table(m, "diagnosis", features=feats))
    x = pre.transform(load_table(m, "diagnosis", features=feats.drop(columns="scar_glcm")))
    j = pre.feature_names.index("scar_glcm")
    assert np.allclose(x[:, j], 0.0)  # the training median (2), standardised by the training mean (2)
    m2 = _write(tmp_path / "m2.csv", "subject,cine_ed,label\na,a.nii.gz,x\n")
    with pytest.raises(CMRRiskError, match="missing column.*age"):
        pre.transform(load_table(m2, "diagnosis", features=feats.drop(columns="scar_glcm").iloc[:1]))


# --------------------------------------------------------------------- cross-validation

def test_cross_validation_fits_preprocessing_inside_folds(monkeypatch):
    """Every preprocessing fit sees only training-fold subjects: a spy records them, and a
    poisoned test row (huge value) must not shift the scaling of other folds."""
    from cmrrisk.predict import tabular
    from cmrrisk.predict.validation import cross_validate, folds

    x, t, e, _ = synthetic_survival(150, seed=6)
    x[7, 0] = 1e6  # an extreme value in one subject
    tab = _table(x, t, e)
    seen, means = [], []
    orig = tabular.Preprocessor.fit

    def spy(self, table, endpoint=None):
        seen.append(set(table.subjects))
        out = orig(self, table, endpoint)
        means.append(self.params["mean"][0])
        return out

    monkeypatch.setattr(tabular.Preprocessor, "fit", spy)
    res = cross_validate(tab, "survival", "cox", k=3, seed=0)
    fs = folds(tab, "survival", 3, 0)
    assert len(seen) == 3 and len(res["folds"]) == 3
    for used, mean, (tr, te) in zip(seen, means, fs):
        assert used == {tab.subjects[i] for i in tr}
        assert not used & {tab.subjects[i] for i in te}
        # the scaling of a fold whose test rows hold the extreme value never saw it
        assert (abs(mean) > 1e3) == (7 in tr)
    assert 0.6 < res["summary"]["c_index_harrell"]["mean"] < 0.9


def test_feature_selection_happens_inside_folds():
    """Pure-noise features with random labels: selection on the whole data would make CV look
    good; selection inside folds keeps it near chance."""
    from cmrrisk.predict.validation import cross_validate

    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 400))
    label = np.array(["a", "b"])[rng.integers(0, 2, 80)]
    res = cross_validate(_table(x, label=label), "diagnosis", "logistic", k=4, seed=0, max_features=5)
    assert res["pooled_out_of_fold"]["auc_macro"] < 0.68


# ---------------------------------------------------------------------------- diagnosis

@pytest.mark.parametrize("name", ["logistic", "mlp", "auto"])
def test_diagnosis_multiclass(name):
    from cmrrisk.predict.evaluation import diagnosis_report
    from cmrrisk.predict.pipeline import Pipeline

    rng = np.random.default_rng(1)
    centres = np.array([[0, 0, 0], [2.5, 0, 0], [0, 2.5, 0]])
    y = rng.integers(0, 3, 450)
    x = centres[y] + rng.normal(size=(450, 3))
    labels = np.array(["NOR", "DCM", "HCM"])[y]
    tr, te = np.arange(300), np.arange(300, 450)
    pipe = Pipeline("diagnosis", name, seed=0).fit(_table(x[tr], label=labels[tr]))
    assert pipe.classes == ["DCM", "HCM", "NOR"]
    test = _table(x[te], label=labels[te])
    p = pipe.predict_proba(test)
    assert np.allclose(p.sum(1), 1)
    rep = diagnosis_report(pipe.target(test).y, p, pipe.classes, n_boot=50)
    assert rep["accuracy"] > 0.78 and rep["balanced_accuracy"] > 0.78
    assert all(a > 0.85 for a in rep["auc_per_class"].values())
    assert np.array(rep["confusion_matrix"]).sum() == 150
    assert rep["accuracy_ci"][0] < rep["accuracy"] < rep["accuracy_ci"][1]


def test_auto_diagnosis_chooses_column_family_by_inner_cv():
    """Informative clinical columns among many pure-noise 'deep' and 'radiomic' columns: the
    inner CV must choose the clinical family, and that must beat logistic on all columns."""
    from cmrrisk.predict.pipeline import Pipeline

    rng = np.random.default_rng(4)
    n = 160
    y = rng.integers(0, 3, n)
    clinical = np.eye(3)[y] * 1.6 + rng.normal(size=(n, 3))
    noise = rng.normal(size=(n, 150))
    names = ["lv_ef_pct", "lv_edv_ml", "rv_ef_pct"] + [f"deep_ed_{i:03d}" for i in range(100)] + \
        [f"lv_myo_ed_original_glcm_F{i}" for i in range(50)]
    x = np.column_stack([clinical, noise])
    labels = np.array(["DCM", "HCM", "NOR"])[y]
    tr, te = np.arange(100), np.arange(100, n)
    auto = Pipeline("diagnosis", "auto", seed=0).fit(_table(x[tr], label=labels[tr], names=names))
    assert auto.model.chosen == ["logistic:clinical"]
    assert set(auto.model.cv_scores) == {"logistic:clinical", "logistic:clinical+radiomics", "logistic:all"}
    full = Pipeline("diagnosis", "logistic", seed=0).fit(_table(x[tr], label=labels[tr], names=names))
    test = _table(x[te], label=labels[te], names=names)
    acc = {k: float(np.mean(np.array(p.classes)[p.predict_proba(test).argmax(1)] == labels[te]))
           for k, p in (("auto", auto), ("full", full))}
    assert acc["auto"] > acc["full"] + 0.05, acc


# ---------------------------------------------------------------------------- evaluation

def test_survival_report_metrics():
    from cmrrisk.predict.evaluation import survival_report
    from cmrrisk.predict.pipeline import Pipeline

    x, t, e, lp = synthetic_survival(600, seed=7)
    pipe = Pipeline("survival", "cox").fit(_table(x[:400], t[:400], e[:400]))
    test = _table(x[400:], t[400:], e[400:])
    xt = pipe._x(test)
    rep = survival_report(t[400:], e[400:], pipe.predict_risk(test),
                          lambda ts: pipe.model.predict_survival(xt, ts), n_boot=50)
    assert rep["c_index_harrell_ci"][0] < rep["c_index_harrell"] < rep["c_index_harrell_ci"][1]
    assert 0.7 < rep["c_index_uno"] < 0.9 and 0.7 < rep["td_auc_mean"] < 0.95
    assert 0 < rep["integrated_brier"] < 0.2
    assert 0.7 < rep["calibration"]["slope"] < 1.3
    g = rep["risk_groups"]
    assert g["logrank_p"] < 1e-6 and len(g["groups"]) == 3
    # random scores: C near 0.5, log-rank not significant, worse Brier
    rng = np.random.default_rng(0)
    bad = survival_report(t[400:], e[400:], rng.normal(size=200),
                          lambda ts: np.tile(np.exp(-np.asarray(ts) * rng.uniform(0.1, 5, (200, 1))), 1),
                          n_boot=20)
    assert abs(bad["c_index_harrell"] - 0.5) < 0.08
    assert bad["integrated_brier"] > rep["integrated_brier"]


# ------------------------------------------------------------------------- command line

def _survival_manifest(path, n, seed):
    x, t, e, _ = synthetic_survival(n, seed=seed)
    lines = ["subject,age,score,sex,time,event"]
    for i in range(n):
        age = "" if i % 17 == 0 else f"{60 + 10 * x[i, 0]:.2f}"  # some missing values
        lines.append(f"p{seed}_{i},{age},{x[i, 1]:.4f},{'FM'[int(x[i, 2] > 0)]},{t[i]:.5f},{e[i]}")
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_cli_train_predict_evaluate(tmp_path):
    train = _survival_manifest(tmp_path / "train.csv", 200, 0)
    ext = _survival_manifest(tmp_path / "ext.csv", 120, 1)
    out = tmp_path / "model"
    assert _run(["train", train, "--endpoint", "survival", "--model", "deepsurv", "--out", str(out),
                 "--seed", "1", "--max-epochs", "10", "--cv", "2"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["k"] == 2 and "c_index_harrell" in metrics["summary"]
    pred = tmp_path / "pred.csv"
    assert _run(["predict", str(out), ext, "--out", str(pred), "--horizons", "0.5,1"]) == 0
    import pandas as pd

    df = pd.read_csv(pred)
    assert list(df.columns) == ["subject", "risk", "survival_at_0.5", "survival_at_1"]
    assert len(df) == 120 and df["risk"].notna().all()
    js = tmp_path / "eval.json"
    assert _run(["evaluate", str(out), ext, "--json", str(js), "--bootstrap", "30"]) == 0
    res = json.loads(js.read_text())
    for k in ("n", "c_index_harrell", "c_index_harrell_ci", "c_index_uno", "integrated_brier"):
        assert k in res
    assert res["n"] == 120 and res["c_index_harrell"] > 0.6
    trained_h = json.loads((out / "config.json").read_text())["training"]["horizons"]
    assert res["horizons"] and set(res["horizons"]) <= set(trained_h)  # default: the model's
    # chosen horizons: the time-dependent AUC and Brier scores at those times; one beyond the
    # follow-up is dropped with a message
    js2 = tmp_path / "eval2.json"
    assert _run(["evaluate", str(out), ext, "--json", str(js2), "--bootstrap", "10",
                 "--horizons", "0.5,1,999"]) == 0
    res2 = json.loads(js2.read_text())
    assert res2["horizons"] == [0.5, 1.0]
    assert set(res2["td_auc"]) == {"0.5", "1"} and set(res2["brier"]) == {"0.5", "1"}
    assert res2["c_index_harrell"] == res["c_index_harrell"]
    assert _run(["evaluate", str(out), ext, "--horizons", "soon"]) == 2
    # a manifest without the model's columns: exit 2 and a message naming them
    bad = _write(tmp_path / "bad.csv", "subject,age,time,event\na,1,2,1\n")
    assert _run(["predict", str(out), bad, "--out", str(tmp_path / "p2.csv")]) == 2


def test_cli_survival_default_is_auto(tmp_path, capsys):
    train = _survival_manifest(tmp_path / "train.csv", 150, 2)
    out = tmp_path / "model"
    assert _run(["train", train, "--endpoint", "survival", "--out", str(out), "--cv", "0",
                 "--max-epochs", "3"]) == 0
    assert "auto: chose" in capsys.readouterr().out
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model_name"] == "auto" and cfg["model"]["chosen"]
    assert not (out / "metrics.json").exists()


def test_cli_diagnosis_default_model(tmp_path, capsys):
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 120)
    x = rng.normal(size=(120, 2)) + 2 * y[:, None]
    text = "subject,a,b,label\n" + "\n".join(
        f"s{i},{x[i, 0]:.3f},{x[i, 1]:.3f},{['normal', 'infarct'][y[i]]}" for i in range(120)) + "\n"
    m = _write(tmp_path / "d.csv", text)
    out = tmp_path / "dm"
    assert _run(["train", m, "--endpoint", "diagnosis", "--out", str(out), "--cv", "3"]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model_name"] == "auto" and cfg["classes"] == ["infarct", "normal"]
    js = tmp_path / "e.json"
    assert _run(["evaluate", str(out), m, "--json", str(js), "--bootstrap", "20"]) == 0
    res = json.loads(js.read_text())
    assert res["n"] == 120 and res["accuracy"] > 0.85 and res["balanced_accuracy"] > 0.85
    pred = tmp_path / "p.csv"
    assert _run(["predict", str(out), m, "--out", str(pred)]) == 0
    assert pred.read_text().splitlines()[0] == "subject,predicted,p_infarct,p_normal"


# ------------------------------------------------------------------- real benchmark data

@needs_survival
def test_gbsg_cox_and_coxboost_on_deepsurv_split():
    """Real data: Rotterdam (train) -> GBSG (test). Published CPH 0.658 (DeepSurv paper)."""
    import h5py

    from cmrrisk.predict.pipeline import Pipeline

    with h5py.File(SURV_DATA / "gbsg_cancer_train_test.h5", "r") as f:
        tr = [f["train"][k][:] for k in ("x", "t", "e")]
        te = [f["test"][k][:] for k in ("x", "t", "e")]
    c = {}
    for name in ("cox", "coxboost"):
        pipe = Pipeline("survival", name, seed=0).fit(_table(*tr))
        c[name] = _cindex(te[1], te[2], pipe.predict_risk(_table(*te)))
    assert 0.64 < c["cox"] < 0.67, c
    assert c["coxboost"] > 0.66, c


def test_simulation_truth_columns_are_never_covariates(tmp_path):
    from cmrrisk.manifest import read_manifest
    from cmrrisk.predict.tabular import load_table

    text = "subject,age,true_log_hazard,true_lvef,time,event\n" + "\n".join(
        f"s{i},{50 + i},{0.1 * i},{40 + i},{1 + i},{i % 2}" for i in range(12)) + "\n"
    m = _write(tmp_path / "syn.csv", text)
    assert list(load_table(m, "survival").covariates.columns) == ["age"]
    assert read_manifest(m, check_paths=False).covariate_columns() == ["age"]


def test_oracle_c_index_beside_the_models_on_simulated_data(tmp_path, capsys):
    """A manifest with the simulation truth ``true_log_hazard`` (as cmrrisk synth writes it):
    evaluate and report give its Harrell C on the same subjects beside the model's; it is never
    a predictor; real data (no such column) get none."""
    from cmrrisk.predict.evaluation import harrell
    from cmrrisk.report import write_report

    def manifest(path, n, seed):
        x, t, e, lp = synthetic_survival(n, seed=seed)
        lines = ["subject,age,score,time,event,true_log_hazard"]
        lines += [f"s{seed}_{i},{x[i, 0]:.4f},{x[i, 1]:.4f},{t[i]:.5f},{e[i]},{lp[i]:.6f}" for i in range(n)]
        path.write_text("\n".join(lines) + "\n")
        return str(path), t, e, lp

    train, *_ = manifest(tmp_path / "train.csv", 150, 3)
    test, t, e, lp = manifest(tmp_path / "test.csv", 80, 4)
    out = tmp_path / "cox"
    assert _run(["train", train, "--endpoint", "survival", "--model", "cox", "--out", str(out), "--cv", "0"]) == 0
    names = (out / "feature_names.json").read_text()
    assert "score" in names and "true_log_hazard" not in names
    js = tmp_path / "e.json"
    capsys.readouterr()
    assert _run(["evaluate", str(out), test, "--json", str(js), "--bootstrap", "10"]) == 0
    res = json.loads(js.read_text())
    assert res["c_index_oracle"] == pytest.approx(harrell(t, e, lp))
    assert res["c_index_oracle"] > res["c_index_harrell"] - 0.05  # the model sees 2 of 3 terms
    assert "oracle C-index" in capsys.readouterr().out
    html = tmp_path / "r.html"
    write_report(str(html), [str(out)], test_manifest=test, n_boot=10)
    text = html.read_text(encoding="utf-8")
    assert "oracle (simulation" in text and f"{res['c_index_oracle']:.3f}" in text
    # real data: no oracle
    plain = tmp_path / "plain.csv"
    plain.write_text("\n".join(",".join(line.split(",")[:5]) for line in open(test).read().splitlines()) + "\n")
    assert _run(["evaluate", str(out), str(plain), "--json", str(js), "--bootstrap", "10"]) == 0
    assert "c_index_oracle" not in json.loads(js.read_text())
