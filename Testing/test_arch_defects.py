"""Defects found while reorganising the core, each with a test that failed before its fix."""

import numpy as np
import pytest


@pytest.fixture
def inputs_model():
    """A survival kind that reads per-subject inputs (as an image network does): its risk is the
    inputs' ``lp``; it checks that it always gets the inputs of exactly the rows it is given."""
    from cmrrisk.predict.models.registry import REGISTRY, Model, register

    @register
    class ReadsInputs(Model):
        name = "reads_inputs_test"
        uses_inputs = True

        def fit(self, x, y, inputs=None):
            assert inputs is not None and len(inputs) == len(x), "fit: inputs do not match the rows"
            return self

        def predict_risk(self, x, inputs=None):
            assert inputs is not None and len(inputs) == len(x), "predict: inputs do not match the rows"
            return np.array([r["lp"] for r in inputs], dtype=float)

    yield ReadsInputs.name
    REGISTRY.pop(("survival", ReadsInputs.name))


def test_auto_cross_validation_passes_each_fold_its_own_inputs(inputs_model):
    from cmrrisk.predict import create
    from cmrrisk.predict.base import SurvivalTarget

    rng = np.random.default_rng(0)
    n = 90
    lp = rng.normal(size=n)
    t = rng.exponential(1 / np.exp(2 * lp))
    y = SurvivalTarget(t, (rng.random(n) < 0.7).astype(int))
    x = rng.normal(size=(n, 2))  # noise: only the inputs carry the signal
    inputs = [{"subject": f"s{i}", "lp": float(lp[i])} for i in range(n)]
    m = create("auto", "survival", candidates=[["cox"], [inputs_model]], folds=3).fit(x, y, inputs)
    assert m.chosen == [inputs_model]
    assert m.cv_scores[inputs_model] > 0.7 > m.cv_scores["cox"]


def test_survival_all_lists_every_model_class_of_the_module():
    from cmrrisk.predict import survival
    from cmrrisk.predict.models.registry import REGISTRY

    defined = {cls.__name__ for cls in REGISTRY.values() if cls.__module__.startswith(survival.__name__)}
    assert "RandomSurvivalForest" in defined
    assert defined <= set(survival.__all__)


def _cox_model(tmp_path):
    from test_predict import _survival_manifest

    from cmrrisk.cli import main

    train = _survival_manifest(tmp_path / "train.csv", 100, 0)
    test = _survival_manifest(tmp_path / "test.csv", 60, 1)
    assert main(["train", train, "--endpoint", "survival", "--model", "cox", "--out", str(tmp_path / "m"),
                 "--cv", "0"]) == 0
    no_outcome = tmp_path / "dev_no_outcome.csv"
    lines = (tmp_path / "train.csv").read_text().splitlines()
    no_outcome.write_text("\n".join(",".join(r.split(",")[:-2]) for r in lines) + "\n")
    return str(tmp_path / "m"), str(no_outcome), test


def test_report_development_manifest_without_outcomes_is_not_ignored(tmp_path):
    from cmrrisk.errors import CMRRiskError
    from cmrrisk.report import write_report

    model, dev, test = _cox_model(tmp_path)
    # apparent performance needs the outcomes: refused up front, naming the manifest and columns
    with pytest.raises(CMRRiskError, match=r"dev_no_outcome.csv: the development manifest lacks the column\(s\) "
                                           r"time, event"):
        write_report(str(tmp_path / "r.html"), model, train_manifest=dev, n_boot=0, progress=None)
    assert not (tmp_path / "r.html").exists()
    # with a test manifest the development manifest is only described: the report says what it lacks
    res = write_report(str(tmp_path / "r.html"), model, train_manifest=dev, test_manifest=test, n_boot=0,
                       progress=None)
    assert any("has no time, event column(s)" in x for x in res["limitations"])


def _nifti(path, shape):
    import nibabel as nib

    nib.save(nib.Nifti1Image(np.ones(shape, np.float32), np.eye(4)), str(path))
    return str(path)


def test_qc_files_a_segmentation_of_the_wrong_size_under_its_code(tmp_path):
    from cmrrisk import qc
    from cmrrisk.image import read_image

    vol = read_image(_nifti(tmp_path / "img.nii.gz", (32, 32, 4)))
    seg = _nifti(tmp_path / "seg.nii.gz", (30, 32, 4))
    checks = []
    assert qc._seg_for({"cine_ed_seg": seg}, "cine_ed", vol, checks) is False
    assert [c["code"] for c in checks] == ["seg_shape_mismatch"], checks


def test_qc_tells_errors_apart_by_code_not_by_words(tmp_path, monkeypatch):
    import cmrrisk.image
    from cmrrisk import qc
    from cmrrisk.errors import CMRRiskError

    def fail(path, *a, **k):
        raise CMRRiskError(f"{path}: reworded message", code="nan_voxels")

    monkeypatch.setattr(cmrrisk.image, "read_image", fail)
    checks = []
    assert qc._read("x.nii.gz", "cine_ed", checks) is None
    assert [c["code"] for c in checks] == ["nan_voxels"]
    checks = []
    monkeypatch.undo()
    qc._read(str(tmp_path / "absent.nii.gz"), "cine_ed", checks)
    assert [c["code"] for c in checks] == ["missing_file"]


def test_error_code_survives_a_process_boundary():
    import pickle

    from cmrrisk.errors import CMRRiskError

    e = pickle.loads(pickle.dumps(CMRRiskError("a.nii: NaN", code="nan_voxels")))
    assert e.code == "nan_voxels" and str(e) == "a.nii: NaN"
    assert CMRRiskError("x").code == "error"
    with pytest.raises(ValueError, match="unknown error code"):
        CMRRiskError("x", code="nope")


def test_qc_module_entry_runs_the_cli_checks(tmp_path):
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=os.path.join(root, "CMRRiskExtension"))
    man = tmp_path / "m.csv"
    man.write_text("subject,cine_ed\na,a.nii.gz\n")
    r = subprocess.run([sys.executable, "-m", "cmrrisk.qc", "qc", str(man), "--out", str(tmp_path / "o"),
                        "--workers", "0"], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 2 and "--workers 0: give at least 1" in r.stderr, r.stderr
    (tmp_path / "file").write_text("x")
    r = subprocess.run([sys.executable, "-m", "cmrrisk.qc", "qc", str(man), "--out", str(tmp_path / "file")],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 2 and "is a file; give a folder" in r.stderr, r.stderr


def test_report_evaluation_uses_the_model_as_it_is(tmp_path, monkeypatch):
    """The report's evaluation returns per-subject predictions instead of swapping the
    pipeline's model for a caching wrapper."""
    from cmrrisk.report import evaluate_model, load_model_info

    model_dir, _, test = _cox_model(tmp_path)
    info = load_model_info(model_dir)
    model = info["pipe"].model
    seen = []
    original = type(model).predict_risk

    def spy(self, x, inputs=None):
        seen.append(info["pipe"].model is model)
        return original(self, x, inputs)

    monkeypatch.setattr(type(model), "predict_risk", spy)
    res = evaluate_model(info, test, n_boot=0, seed=0)
    assert seen and all(seen)
    assert info["pipe"].model is model
    from cmrrisk.predict.tabular import load_table

    table = load_table(test, "survival")
    np.testing.assert_array_equal(res["predictions"]["risk"], original(model, info["pipe"].features(table)))
    assert res["predictions"]["subjects"] == list(table.subjects)
