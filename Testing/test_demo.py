"""`cmrrisk demo` end to end on a small synthetic cohort: every output the issue names, metrics
that agree with the tables they summarise, Slicer scenes that load back, no partial output."""

import csv
import json
import os
import zipfile

import numpy as np
import pytest

from cmrrisk import cli, demo, synthetic
from cmrrisk.errors import CMRRiskError


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "demo-output"
    rc = cli.main(["demo", "--out", str(out), "--n", "20", "--cv", "2", "--explain", "1",
                   "--models", "cox,multiinput", "--max-epochs", "2", "--bootstrap", "10", "--quiet"])
    assert rc == 0
    return out


def test_outputs_exist(demo_out):
    for rel in ("report.html", "metrics.json", "tables/features.csv", "tables/segmentation_dice.csv",
                "tables/evaluation_cox.json", "tables/evaluation_multiinput.json", "qc/qc.json",
                "cohort/manifest.csv", "models/cox/model.safetensors", "models/multiinput/config.json"):
        assert (demo_out / rel).is_file(), rel
    assert not os.path.exists(str(demo_out) + ".previous")
    html = (demo_out / "report.html").read_text()
    assert "data:image/png;base64," in html and 'src="http' not in html


def test_metrics_agree_with_tables(demo_out):
    m = json.loads((demo_out / "metrics.json").read_text())
    for key in ("c_index_oracle", "c_index_best", "c_index_cox", "segmentation_dice_mean"):
        assert isinstance(m[key], float) and 0.0 <= m[key] <= 1.0, key
    ev = json.loads((demo_out / "tables/evaluation_cox.json").read_text())
    assert m["c_index_cox"] == ev["c_index_harrell"]
    best = json.loads((demo_out / f"tables/evaluation_{m['best_model']}.json").read_text())
    assert m["c_index_best"] == best["c_index_harrell"]
    # the best model is chosen by cross-validation on the training split, not by the test split
    from cmrrisk.demo import choose_best

    assert m["best_model"] == choose_best(m["models"])
    assert all(len(v["cv_fold_c"]) == v["cv_folds"] for v in m["models"].values())
    # Dice mean recomputed from the per-subject table
    with open(demo_out / "tables/segmentation_dice.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    vals = [float(v) for r in rows for k, v in r.items() if k != "subject" and v != ""]
    assert len(rows) == 20 and m["segmentation_dice_mean"] == pytest.approx(np.mean(vals), abs=1e-3)
    # oracle: Harrell's C of the true log-hazard on the test subjects
    from cmrrisk.predict.evaluation import harrell

    with open(demo_out / "cohort/manifest.csv", newline="") as fh:
        truth = {r["subject"]: r for r in csv.DictReader(fh)}
    with open(demo_out / "work/test_images.csv", newline="") as fh:
        test = [truth[r["subject"]] for r in csv.DictReader(fh)]
    assert len(test) == m["n_test"]
    c = harrell(np.array([float(r["time"]) for r in test]), np.array([int(r["event"]) for r in test]),
                np.array([float(r["true_log_hazard"]) for r in test]))
    assert m["c_index_oracle"] == pytest.approx(c)


def test_gap_decomposition_uses_the_measured_features(demo_out):
    """metrics.json's gap decomposition: the generator's formula evaluated with the LVEF and
    scar burden of tables/features.csv (measured from the model segmentations)."""
    from cmrrisk.predict.evaluation import harrell

    m = json.loads((demo_out / "metrics.json").read_text())
    g = m["gap_decomposition"]
    with open(demo_out / "cohort/manifest.csv", newline="") as fh:
        truth = {r["subject"]: r for r in csv.DictReader(fh)}
    with open(demo_out / "tables/features.csv", newline="") as fh:
        feats = {r["subject"]: r for r in csv.DictReader(fh)}
    with open(demo_out / "work/test_images.csv", newline="") as fh:
        test = [r["subject"] for r in csv.DictReader(fh)]
    lh = [synthetic.log_hazard(float(feats[s]["lv_ef_pct"]), float(feats[s]["scar_burden_pct"]),
                               float(truth[s]["age"]), float(truth[s]["diabetes"]), float(truth[s]["sex"]))
          for s in test]
    c = harrell(np.array([float(truth[s]["time"]) for s in test]),
                np.array([int(truth[s]["event"]) for s in test]), np.array(lh))
    assert g["c_index_formula_on_measured"] == pytest.approx(c)
    assert g["c_index_oracle"] == pytest.approx(m["c_index_oracle"])
    assert g["measurement_part"] == pytest.approx(m["c_index_oracle"] - c)
    err = [float(feats[s]["lv_ef_pct"]) - float(truth[s]["true_lvef"]) for s in test]
    assert g["lvef_error"]["mae_pp"] == pytest.approx(np.mean(np.abs(err)))
    assert g["n_test"] == m["n_test"]


def test_gap_decomposition_without_measurement_error_is_the_oracle():
    rng = np.random.default_rng(0)
    truth, feats = [], {}
    for i in range(40):
        ef, scar, age = rng.uniform(20, 70), rng.uniform(0, 40), rng.uniform(40, 80)
        dm, sex = int(rng.random() < 0.3), int(rng.random() < 0.5)
        lh = synthetic.log_hazard(ef, scar, age, dm, sex)
        truth.append({"subject": f"s{i}", "time": f"{rng.exponential(np.exp(-lh)):.4f}", "event": "1",
                      "true_lvef": f"{ef}", "true_scar_burden": f"{scar}", "true_log_hazard": f"{lh}",
                      "age": f"{age}", "diabetes": f"{dm}", "sex": f"{sex}"})
        feats[f"s{i}"] = {"lv_ef_pct": f"{ef}", "scar_burden_pct": f"{scar}"}
    ids = [f"s{i}" for i in range(0, 40, 2)]
    g = demo.gap_decomposition(truth, feats, ids)
    assert g["c_index_formula_on_measured"] == pytest.approx(g["c_index_oracle"])
    assert g["measurement_part"] == pytest.approx(0.0, abs=1e-12)
    assert g["lvef_error"]["mae_pp"] == pytest.approx(0.0, abs=1e-9) and g["n_test"] == 20
    feats["s0"]["scar_burden_pct"] = "95"  # one bad measurement is seen in the scar error
    assert demo.gap_decomposition(truth, feats, ids)["scar_burden_error"]["max_abs_pp"] > 50


def test_model_inputs_hold_no_truth(demo_out):
    for name in ("train_images.csv", "test_images.csv", "train_clinical.csv", "test_clinical.csv"):
        with open(demo_out / "work" / name, newline="") as fh:
            header = next(csv.reader(fh))
        assert not [c for c in header if c.startswith("true_")], name
    with open(demo_out / "work/train_images.csv", newline="") as fh:
        row = next(csv.DictReader(fh))
    # segmentations given to the models are the bundled models' output, not the generator's labels
    assert "work/segmentations" in row["cine_ed_seg"].replace(os.sep, "/")


def test_scene_per_explained_subject_loads_back(demo_out):
    slicer = pytest.importorskip("slicer")
    m = json.loads((demo_out / "metrics.json").read_text())
    assert len(m["explained_subjects"]) == 1
    s = m["explained_subjects"][0]
    path = demo_out / "scenes" / f"{s}.mrb"
    assert zipfile.is_zipfile(path)
    assert list((demo_out / "heatmaps" / s).glob("*.nii.gz"))
    from cmrrisk.mrml.scene import new_scene

    scene = new_scene()
    assert scene.ReadFromMRB(str(path))
    names = {scene.GetNthNodeByClass(i, "vtkMRMLScalarVolumeNode").GetName()
             for i in range(scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode"))}
    assert {f"{s} cine_ed", f"{s} cine_es", f"{s} lge", f"{s} cine_ed ig heatmap"} <= names
    assert scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode") == 3
    tables = {scene.GetNthNodeByClass(i, "vtkMRMLTableNode").GetName()
              for i in range(scene.GetNumberOfNodesByClass("vtkMRMLTableNode"))}
    assert {f"{s} attributions", f"{s} prediction", f"{s} features"} <= tables
    scene.Clear(1)
    del slicer


def test_refuses_to_overwrite_a_folder_that_is_not_a_demo(tmp_path):
    other = tmp_path / "mine"
    other.mkdir()
    (other / "thesis.tex").write_text("keep me")
    with pytest.raises(CMRRiskError, match="not a previous demo output"):
        demo.run_demo(str(other), n=20, quiet=True)
    assert (other / "thesis.tex").read_text() == "keep me"
    assert not (tmp_path / "mine.previous").exists()


def test_bad_arguments_are_clear(tmp_path):
    with pytest.raises(CMRRiskError, match="at least 20"):
        demo.run_demo(str(tmp_path / "d"), n=5, quiet=True)
    with pytest.raises(CMRRiskError, match="choose among"):
        demo.run_demo(str(tmp_path / "d"), models=("cox", "magic"), quiet=True)
    assert not (tmp_path / "d").exists() and not (tmp_path / "d.previous").exists()


def _previous_demo(folder):
    folder.mkdir()
    (folder / demo.MARKER).write_text("demo")
    (folder / "metrics.json").write_text('{"old": 1}')


def test_failed_run_restores_the_previous_output(tmp_path, monkeypatch):
    out = tmp_path / "demo-output"
    _previous_demo(out)

    def boom(root, *args):
        (tmp_path / "demo-output" / "half.txt").write_text("half")
        raise RuntimeError("interrupted")

    monkeypatch.setattr(demo, "_run", boom)
    with pytest.raises(RuntimeError):
        demo.run_demo(str(out), n=20, quiet=True)
    assert (out / "metrics.json").read_text() == '{"old": 1}' and not (out / "half.txt").exists()
    assert not (tmp_path / "demo-output.previous").exists()


def test_successful_run_replaces_the_previous_output(tmp_path, monkeypatch):
    out = tmp_path / "demo-output"
    _previous_demo(out)

    def ok(root, *args):
        (tmp_path / "demo-output" / "metrics.json").write_text('{"new": 1}')
        return {"new": 1}

    monkeypatch.setattr(demo, "_run", ok)
    assert demo.run_demo(str(out), n=20, quiet=True) == {"new": 1}
    assert (out / "metrics.json").read_text() == '{"new": 1}' and (out / demo.MARKER).is_file()
    assert not (tmp_path / "demo-output.previous").exists()


def test_choose_best_keeps_cox_unless_clearly_beaten():
    """bench/sim_model_choice.py chose this rule on 40 fresh cohorts: cox unless another model's
    CV mean beats it by more than the fold-to-fold SD of the difference."""
    from cmrrisk.demo import choose_best

    def model(folds):
        return {"cv": {"c_index_harrell": {"mean": float(np.mean(folds))}}, "cv_fold_c": folds}

    cox = [0.70, 0.75, 0.80, 0.72, 0.78]
    noisy = [0.74, 0.70, 0.86, 0.75, 0.80]  # mean +0.02, SD of the differences 0.04
    clear = [0.78, 0.81, 0.87, 0.80, 0.85]  # +0.072, SD 0.006
    assert choose_best({"cox": model(cox), "deepsurv": model(noisy)}) == "cox"
    assert choose_best({"cox": model(cox), "deepsurv": model(clear)}) == "deepsurv"
    # other folds (3-fold multiinput): unpaired spread sqrt(SD_a^2 + SD_b^2)
    assert choose_best({"cox": model(cox), "multiinput": model([0.76, 0.78, 0.80])}) == "cox"  # +0.03 < 0.046
    assert choose_best({"cox": model(cox), "multiinput": model([0.88, 0.90, 0.92])}) == "multiinput"
    assert choose_best({"cox": model(cox), "deepsurv": model(clear),
                        "multiinput": model([0.88, 0.90, 0.92])}) == "multiinput"
    assert choose_best({"deepsurv": model(noisy), "multiinput": model([0.6, 0.7, 0.8])}) == "deepsurv"
