"""Prediction for one loaded study and training with progress/cancel (cmrrisk.predict.study),
and the CMRRisk Predict Logic over them against a real MRML scene."""

import os

import numpy as np
import pytest

from cmrrisk.errors import CMRRiskError
from cmrrisk.image import Volume, write_image
from cmrrisk.progress import Progress
from cmrrisk.study import Study

from test_features import AFFINE, phantom
from test_predict import _survival_manifest


def _train(manifest, out, endpoint="survival", model="cox", **kw):
    from cmrrisk.predict.study import train_model

    return train_model(str(manifest), endpoint, str(out), model=model, **kw)


@pytest.fixture(scope="module")
def survival_model(tmp_path_factory):
    d = tmp_path_factory.mktemp("study")
    manifest = _survival_manifest(d / "train.csv", 160, 0)
    steps = []
    res = _train(manifest, d / "model", cv=3, progress=Progress(lambda i, n, msg: steps.append((i, n, msg))))
    return d / "model", manifest, steps, res


def test_train_model_reports_each_step_and_writes_the_model(survival_model):
    model_dir, _, steps, res = survival_model
    assert [s[0] for s in steps] == list(range(1, len(steps) + 1))
    assert len(steps) == 3 + 3 and all(s[1] == 6 for s in steps)  # read, 3 folds, final fit, written
    assert [s[2] for s in steps[1:4]] == [f"cross-validation fold {i}/3" for i in (1, 2, 3)]
    assert (model_dir / "model.safetensors").is_file() and (model_dir / "metrics.json").is_file()
    assert res["cv"]["k"] == 3 and res["model"] == "cox"


def test_cancel_stops_training_and_writes_nothing(tmp_path):
    from cmrrisk.predict.study import Cancelled

    manifest = _survival_manifest(tmp_path / "train.csv", 120, 3)
    seen = []
    with pytest.raises(Cancelled, match="fold 2"):
        _train(manifest, tmp_path / "model", cv=3,
               progress=Progress(lambda i, n, msg: seen.append(i), cancel=lambda: len(seen) >= 2))
    assert seen == [1, 2]
    assert not (tmp_path / "model").exists()


def test_cancel_reaches_inside_a_network_fit(tmp_path):
    """With no cross-validation the only steps are read and final fit: a cancel that arrives
    after the read stops the network during its epochs, before the fit would end."""
    from cmrrisk.predict.study import Cancelled

    rng = np.random.default_rng(0)
    lines = ["subject,a,b,label"] + [f"s{i},{i % 2 + rng.normal(0, .5):.3f},{rng.normal():.3f},{'AB'[i % 2]}"
                                      for i in range(60)]
    (tmp_path / "dx.csv").write_text("\n".join(lines) + "\n")
    calls, seen = [], []

    def cancel():
        calls.append(1)
        return len(calls) >= 4

    with pytest.raises(Cancelled, match="final fit"):
        _train(tmp_path / "dx.csv", tmp_path / "model", endpoint="diagnosis", model="mlp", cv=0,
               max_epochs=500, progress=Progress(lambda i, n, msg: seen.append(i), cancel))
    assert seen == [1] and len(calls) == 4 and not (tmp_path / "model").exists()


def test_study_prediction_equals_the_manifest_prediction(survival_model, tmp_path):
    """One study's covariates given as a dict give the same risk and survival as `cmrrisk
    predict` on a manifest row with the same values."""
    import pandas as pd

    from cmrrisk.predict.store import load_pipeline
    from cmrrisk.predict.study import predict_study
    from cmrrisk.predict.tabular import load_table

    model_dir, manifest, _, _ = survival_model
    pipe = load_pipeline(str(model_dir))
    table = load_table(manifest, "survival", need_outcome=False, image_features=False)
    raw = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    horizons = [0.5, 1.0]
    ref = pipe.predict_frame(table, horizons)
    for i in (1, 5, 17):  # row 17 has no age: imputed in both paths
        row = raw.iloc[i]
        cov = {c: row[c] for c in ("age", "score", "sex") if row[c] != ""}
        res = predict_study(pipe, Study(subject=row["subject"], covariates=cov), horizons=horizons)
        assert res["risk"] == pytest.approx(ref["risk"].iloc[i], rel=1e-6, abs=1e-9)
        assert res["survival"][0.5] == pytest.approx(ref["survival_at_0.5"].iloc[i], rel=1e-6)
        assert res["survival"][1.0] == pytest.approx(ref["survival_at_1"].iloc[i], rel=1e-6)
        assert res["risk_group"] in ("low", "intermediate", "high")
        assert ("age" in " ".join(res["notes"])) == (i == 17)
        s = np.array(res["curve"]["survival"])
        assert s[0] == pytest.approx(1.0, abs=0.02) and np.all(np.diff(s) <= 1e-12) and s.min() >= 0


def test_study_prediction_refuses_unknown_or_malformed_covariates(survival_model):
    from cmrrisk.predict.study import predict_study

    model_dir = str(survival_model[0])
    with pytest.raises(CMRRiskError, match="weight"):
        predict_study(model_dir, Study(covariates={"age": 60, "weight": 80}))
    with pytest.raises(CMRRiskError, match="'age'"):
        predict_study(model_dir, Study(covariates={"age": "sixty"}))
    with pytest.raises(CMRRiskError, match="value"):
        predict_study(model_dir, Study(covariates={"age": 60, "sex": "X"}))


def test_diagnosis_study_prediction_gives_class_probabilities(tmp_path):
    from cmrrisk.predict.study import predict_study

    rng = np.random.default_rng(0)
    lines = ["subject,a,b,label"]
    for i in range(90):
        c = i % 3
        lines.append(f"s{i},{c + rng.normal(0, 0.3):.3f},{rng.normal():.3f},{'XYZ'[c]}")
    (tmp_path / "dx.csv").write_text("\n".join(lines) + "\n")
    _train(tmp_path / "dx.csv", tmp_path / "model", endpoint="diagnosis", model="logistic", cv=0)
    res = predict_study(str(tmp_path / "model"), Study(covariates={"a": 2.0, "b": 0.0}))
    assert res["predicted"] == "Z"
    assert set(res["probabilities"]) == {"X", "Y", "Z"}
    assert sum(res["probabilities"].values()) == pytest.approx(1.0)


# ------------------------------------------------------------------- a model over image features

def _image_feature_model(tmp_path, n=24):
    """A Cox model over the indices of phantom studies (features computed by the same function as
    for a study, radiomics and deep features off) and one covariate."""
    import pandas as pd

    from cmrrisk.features.cohort import FEATURES_VERSION, image_features, model_checksums
    from cmrrisk.predict.pipeline import Pipeline
    from cmrrisk.predict.store import save_pipeline
    from cmrrisk.predict.tabular import load_table

    rng = np.random.default_rng(1)
    rows, feats, studies = [], {}, {}
    for i in range(n):
        ed_r, es_r = rng.uniform(10, 15), rng.uniform(5, 10)
        (ed, ed_lab), (es, es_lab) = phantom(ed_r, noise=4.0, seed=i), phantom(es_r, noise=4.0, seed=100 + i)
        vols = {"ed": Volume(ed, AFFINE), "es": Volume(es, AFFINE)}
        for ph in ("ed", "es"):
            write_image(vols[ph], str(tmp_path / f"s{i}_{ph}.nii.gz"))
        feats[f"s{i}"] = image_features(Study(ed=vols["ed"], es=vols["es"], ed_seg=ed_lab, es_seg=es_lab),
                                        options={"radiomics": False, "deep": False})
        studies[f"s{i}"] = (vols, ed_lab, es_lab)
        ef = feats[f"s{i}"]["lv_ef_pct"]
        age = 50 + 20 * rng.random()
        t = rng.exponential(np.exp(-(60 - ef) / 15.0 - (age - 60) / 20.0))
        rows.append(f"s{i},{age:.2f},s{i}_ed.nii.gz,s{i}_es.nii.gz,{t:.4f},{int(rng.random() < 0.8)}")
    (tmp_path / "m.csv").write_text("subject,age,cine_ed,cine_es,time,event\n" + "\n".join(rows) + "\n")
    df = pd.DataFrame.from_dict(feats, orient="index").astype(float)
    df.index.name = "subject"
    df.attrs["provenance"] = {"features_version": FEATURES_VERSION, "models": model_checksums(),
                              "options": {"radiomics": False, "deep": False, "device": "cpu"},
                              "radiomics_params": None}
    table = load_table(str(tmp_path / "m.csv"), "survival", features=df)
    pipe = Pipeline("survival", "cox").fit(table)
    save_pipeline(pipe, str(tmp_path / "model"))
    return pipe, table, studies


def test_logic_predicts_study_from_nodes_with_image_features(scene, predict_module, tmp_path):
    from cmrrisk import mrml

    pipe, table, studies = _image_feature_model(tmp_path)
    ref = pipe.predict_frame(table, [0.5])
    logic = predict_module.CMRRiskPredictLogic()
    for i in (0, 7):
        s = f"s{i}"
        vols, ed_lab, es_lab = studies[s]
        ed = mrml.volume_to_node(scene, vols["ed"], f"{s} ED")
        es = mrml.volume_to_node(scene, vols["es"], f"{s} ES")
        seg_ed = mrml.labels_to_segmentation(scene, ed_lab, ed, f"{s} ED seg")
        seg_es = mrml.labels_to_segmentation(scene, es_lab, es, f"{s} ES seg")
        age = float(table.covariates.loc[s, "age"])
        out = logic.predictStudy(str(tmp_path / "model"), ed, es, seg_ed, seg_es,
                                 covariates=logic.parseCovariates(f"age={age}"),
                                 horizons=logic.parseHorizons("0.5"))
        t = out["table"]
        cols = [t.GetColumnName(j) for j in range(t.GetNumberOfColumns())]
        assert cols == ["subject", "model", "risk", "risk_group", "survival_at_0.5"]
        assert float(t.GetCellText(0, 2)) == pytest.approx(ref.loc[s, "risk"], rel=1e-5, abs=1e-6)
        assert float(t.GetCellText(0, 4)) == pytest.approx(ref.loc[s, "survival_at_0.5"], rel=1e-5)
        chart = out["chart"]
        assert chart.IsA("vtkMRMLPlotChartNode") and chart.GetNumberOfPlotSeriesNodes() == 1
        series = chart.GetNthPlotSeriesNode(0)
        curve = series.GetTableNode().GetTable()
        surv = [curve.GetValue(r, 1).ToDouble() for r in range(curve.GetNumberOfRows())]
        assert surv == pytest.approx(out["result"]["curve"]["survival"])
        assert (series.GetXColumnName(), series.GetYColumnName()) == ("time", "survival")


def test_logic_refuses_a_model_whose_feature_settings_differ(scene, predict_module, tmp_path):
    """A model trained on features of other segmentation weights is refused, naming the cause."""
    import json

    from cmrrisk import mrml
    from cmrrisk import modeldir

    _, _, studies = _image_feature_model(tmp_path, n=16)
    d = str(tmp_path / "model")
    pre_path = os.path.join(d, "preprocessing.json")
    pre = json.loads(open(pre_path).read())
    pre["feature_settings"]["models"]["cine"] = "0" * 64
    modeldir.write_json(pre_path, pre)
    sums = json.loads(open(os.path.join(d, "checksums.json")).read())
    import hashlib

    sums["preprocessing.json"] = hashlib.sha256(open(pre_path, "rb").read()).hexdigest()
    modeldir.write_json(os.path.join(d, "checksums.json"), sums)
    vols, ed_lab, es_lab = studies["s0"]
    ed, es = (mrml.volume_to_node(scene, vols[p], p) for p in ("ed", "es"))
    logic = predict_module.CMRRiskPredictLogic()
    with pytest.raises(CMRRiskError, match="other settings than in training.*models"):
        logic.predictStudy(d, ed, es, mrml.labels_to_segmentation(scene, ed_lab, ed, "a"),
                           mrml.labels_to_segmentation(scene, es_lab, es, "b"), covariates={"age": 60})


def test_logic_train_then_predict_covariates_only(scene, predict_module, tmp_path):
    from cmrrisk.predict.study import Cancelled

    logic = predict_module.CMRRiskPredictLogic()
    manifest = _survival_manifest(tmp_path / "train.csv", 120, 4)
    with pytest.raises(ValueError, match="output folder"):
        logic.trainModel(manifest, "survival", "")
    with pytest.raises(Cancelled):
        logic.trainModel(manifest, "survival", str(tmp_path / "m0"), model="cox", cancel=lambda: True)
    steps = []
    res = logic.trainModel(manifest, "survival", str(tmp_path / "m"), model="cox", cv=2,
                           progress=lambda i, n, msg: steps.append(i))
    assert steps == [1, 2, 3, 4, 5] and res["model_dir"] == str(tmp_path / "m")
    out = logic.predictStudy(str(tmp_path / "m"), covariates=logic.parseCovariates("age=61; sex=F, score=0.2"))
    assert out["table"].GetNumberOfRows() == 1 and out["chart"] is not None
    assert out["result"]["notes"] == []
    with pytest.raises(ValueError, match="name=value"):
        logic.parseCovariates("age 61")
    with pytest.raises(ValueError, match="twice"):
        logic.parseCovariates("age=1, age=2")
    with pytest.raises(ValueError, match="finite positive"):
        logic.parseHorizons("0, 5")
    with pytest.raises(ValueError, match="finite positive"):  # as cmrrisk predict --horizons
        logic.parseHorizons("365, inf")
    assert logic.parseHorizons("365; 730") == [365.0, 730.0] and logic.parseHorizons(" ") is None


def test_explanation_of_a_study_uses_its_computed_image_features(tmp_path):
    """explain_study builds the same row as a prediction: the study's own LVEF, not the
    training median, and no imputation note for image features it could compute."""
    from cmrrisk.explain.core import explain_study

    pipe, table, studies = _image_feature_model(tmp_path, n=16)
    vols, ed_lab, es_lab = studies["s3"]
    study = Study("s3", vols["ed"], vols["es"], ed_seg=ed_lab, es_seg=es_lab, covariates={"age": 55.0})
    e = explain_study(pipe, study, method="ig", k=0)
    values = {r["feature"]: r["value"] for r in e.attributions}
    assert float(values["lv_ef_pct"]) == pytest.approx(table.covariates.loc["s3", "lv_ef_pct"], rel=1e-6)
    assert not any("imputed" in n for n in e.notes)


def test_logic_writes_the_report_of_a_model(scene, predict_module, survival_model, tmp_path):
    """The Report section's Logic call: the HTML is written beside the model by default, the
    model is evaluated on the test manifest with the code of 'cmrrisk evaluate', and missing
    inputs are refused with a message that says what to choose."""
    from cmrrisk.predict.validation import external_validation

    model_dir, train_manifest, _, _ = survival_model
    test_manifest = _survival_manifest(tmp_path / "test.csv", 80, 5)
    logic = predict_module.CMRRiskPredictLogic()
    with pytest.raises(ValueError, match="model directory"):
        logic.writeReport("", trainManifest=str(train_manifest))
    with pytest.raises(ValueError, match="training manifest and/or a test manifest"):
        logic.writeReport(str(model_dir))
    with pytest.raises(ValueError, match="Test manifest .*missing.csv does not exist"):
        logic.writeReport(str(model_dir), testManifest=str(tmp_path / "missing.csv"))
    messages = []
    out = tmp_path / "r" / "report.html"
    os.makedirs(out.parent)
    res = logic.writeReport(str(model_dir), str(out), trainManifest=str(train_manifest),
                            testManifest=test_manifest, bootstrap=20, progress=messages.append)
    assert res["html"] == str(out) and out.read_text().startswith("<!DOCTYPE html>")
    assert any("report written" in m for m in messages)
    test = res["models"][0]["test"]
    ref = external_validation(str(model_dir), test_manifest, n_boot=20, seed=0)
    assert test["n"] == 80 and test["c_index_harrell"] == ref["c_index_harrell"]
    assert test["c_index_harrell_ci"] == ref["c_index_harrell_ci"]
