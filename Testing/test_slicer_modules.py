"""The Slicer modules' machinery against a real MRML scene (slicer-core): parameter nodes saved
with the scene, the separate-process runner and its progress protocol, cancel, results in the
scene, optional radiomics, recorded package versions, dependency installation, the sample study."""

import csv
import json
import os
import sys
import time
import types

import numpy as np
import pytest

slicer = pytest.importorskip("slicer")


def _covariate_cohort(predict_module, path, n=60):
    from CMRRiskPredictLib.selftest import covariateCohort

    return covariateCohort(str(path), n=n)


# ---------------------------------------------------------------- parameter nodes

def _values(module):
    """A value of every parameter of ``module``'s parameter list, none equal to its default."""
    out = {}
    for p in module.PARAMETERS:
        out[p.name] = {"str": f"{p.name} text", "int": 3, "float": 1.75, "bool": not p.default,
                       "path": f"/data/{p.name}", "node": None}[p.kind]
    return out


@pytest.mark.parametrize("which", ["CMRRiskSegment", "CMRRiskPredict"])
def test_every_choice_is_saved_with_the_scene_and_read_back(scene, tmp_path, which, segment_module, predict_module):
    """Set every parameter, write the scene as .mrb, read it into a new scene: same values,
    node references resolved to the same nodes."""
    import importlib

    from cmrrisk import mrml
    from cmrrisk.image import Volume
    from cmrrisk.mrml.scene import new_scene, save_mrb

    params_module = importlib.import_module(f"{which}Lib.parameters")
    logic = (segment_module.CMRRiskSegmentLogic if which == "CMRRiskSegment" else predict_module.CMRRiskPredictLogic)()
    params = logic.parameters(scene)
    values = _values(params_module)
    vol = mrml.volume_to_node(scene, Volume(np.zeros((3, 8, 8), np.float32), np.eye(4)), "study volume")
    seg = mrml.labels_to_segmentation(scene, np.zeros((3, 8, 8), np.uint8), vol, "study segmentation")
    for p in params_module.PARAMETERS:
        if p.kind == "node":
            values[p.name] = seg if "Segmentation" in p.nodeClass else vol
    params.update(**values)
    assert params.values() == values
    path = save_mrb(scene, str(tmp_path / "study.mrb"))

    other = new_scene()
    try:
        assert other.ReadFromMRB(path)
        back = params_module.parameters(other).values()
        for name, value in values.items():
            if hasattr(value, "GetName"):
                assert back[name] is not None and back[name].GetName() == value.GetName(), name
            else:
                assert back[name] == value, name
    finally:
        other.Clear(1)


def test_parameters_are_stored_as_slicers_parameter_node_wrapper_stores_them(scene):
    """Either side reads what the other wrote: numbers and text with str(), booleans as
    True/False, nodes as a reference beside an empty parameter, no path as '' (read '.' too)."""
    from cmrrisk.mrml.parameters import Parameter, ParameterSet, find_parameter_node

    spec = (Parameter("n", "int", 1), Parameter("x", "float", 0.5), Parameter("flag", "bool", False),
            Parameter("folder", "path", ""), Parameter("volume", "node"))
    node = find_parameter_node(scene, "Example")
    assert node is find_parameter_node(scene, "Example") and node.GetSingletonTag() == "Example"
    p = ParameterSet(node, spec)
    assert p.values() == {"n": 1, "x": 0.5, "flag": False, "folder": "", "volume": None}
    vol = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "v")
    p.update(n=7, x=2.5, flag=True, folder="/a/b", volume=vol)
    assert [node.GetParameter(k) for k in ("n", "x", "flag", "folder", "volume")] == ["7", "2.5", "True", "/a/b", ""]
    assert node.GetNodeReferenceID("volume") == vol.GetID()
    node.SetParameter("folder", ".")  # parameterNodeWrapper's Path("")
    assert p.folder == ""
    with pytest.raises(AttributeError, match="no parameter 'nope'"):
        p.nope = 1


def test_segment_buttons_read_the_parameter_node(scene, segment_module):
    """Check quality through the parameter node: the chosen image and segmentation."""
    from cmrrisk import mrml
    from cmrrisk.image import Volume

    y, x = np.mgrid[0:64, 0:64]
    img = np.full((8, 64, 64), 40.0, np.float32)
    img[:, np.hypot(y - 32, x - 32) < 12] = 300.0
    img += np.random.default_rng(0).normal(0, 5, img.shape).astype(np.float32)
    img[4] = 0.0  # a missing slice
    logic = segment_module.CMRRiskSegmentLogic()
    params = logic.parameters(scene)
    with pytest.raises(ValueError, match="choose an input"):
        logic.checkQualityParameters(params)
    params.inputNode = mrml.volume_to_node(scene, Volume(img, np.diag([1.5, 1.5, 8.0, 1.0])), "qc input")
    params.model = "cine"
    table = logic.checkQualityParameters(params)
    assert table.GetAttribute("CMRRisk.qcStatus") == "exclude"
    assert table.GetTable().GetValue(0, 0).ToString() == "missing_slice"


# ---------------------------------------------------------------- progress protocol

def test_progress_lines_parse_and_plain_output_is_left_alone():
    from cmrrisk import progress as P

    assert P.parse('{"event": "progress", "fraction": 0.5, "message": "fold 1/2"}') == {
        "event": "progress", "fraction": 0.5, "message": "fold 1/2"}
    assert P.parse('{"event": "progress", "fraction": null, "message": "bootstrap"}')["fraction"] is None
    assert P.parse("model written: /tmp/m") is None
    assert P.parse('{"subject": "S1"}') is None  # JSON, but not an event
    assert P.parse(b'{"event": "done", "status": 0}')["status"] == 0


def test_cli_prints_json_progress_and_errors(tmp_path, capsys, predict_module):
    """`cmrrisk --progress json train ...`: one JSON event per line, fractions rising to 1, a
    final done; a user error is an error event and exit status 2."""
    from cmrrisk import progress as P
    from cmrrisk.cli import main

    manifest = _covariate_cohort(predict_module, tmp_path / "cohort.csv", n=40)
    try:
        assert main(["--progress", "json", "train", manifest, "--endpoint", "survival", "--model", "cox",
                     "--cv", "2", "--out", str(tmp_path / "m")]) == 0
        events = [P.parse(line) for line in capsys.readouterr().out.splitlines()]
        steps = [e["fraction"] for e in events if e and e["event"] == "progress"]
        assert len(steps) >= 4 and steps == sorted(steps) and steps[-1] == 1.0
        assert events[-1] == {"event": "done", "status": 0}
        assert main(["--progress", "json", "train", str(tmp_path / "absent.csv"), "--endpoint", "survival",
                     "--out", str(tmp_path / "m2")]) == 2
        last = P.parse(capsys.readouterr().out.splitlines()[-1])
        assert last["event"] == "error" and "absent.csv" in last["message"]
    finally:
        P.set_mode("bar")


# ---------------------------------------------------------------- the separate-process runner

def test_training_runs_in_a_separate_process_and_its_results_are_loaded(scene, tmp_path, predict_module):
    """Start, progress received while it runs, results (the cross-validation metrics) added to
    the scene only when the process has ended."""
    logic = predict_module.CMRRiskPredictLogic()
    manifest = _covariate_cohort(predict_module, tmp_path / "cohort.csv")
    seen, finished = [], []
    job = logic.startTraining(manifest, "survival", str(tmp_path / "model"), model="cox", cv=3, scene=scene,
                              onProgress=lambda f, m: seen.append((f, m, scene.GetNumberOfNodesByClass("vtkMRMLTableNode"))),
                              onFinished=finished.append)
    assert job.running and job.pid != os.getpid()
    assert job.wait(timeout=300) == "succeeded", job.error
    assert finished == [job]
    assert [f for f, _, _ in seen] == sorted(f for f, _, _ in seen) and seen[-1][0] == 1.0
    assert any("fold" in m for _, m, _ in seen)
    assert all(n == 0 for _, _, n in seen)  # nothing in the scene while it ran
    table = job.results["metrics"]
    assert table.GetScene() is scene and table.GetNumberOfRows() >= 3
    with open(tmp_path / "model" / "metrics.json") as f:
        summary = json.load(f)["summary"]
    rows = {table.GetCellText(i, 0): float(table.GetCellText(i, 1)) for i in range(table.GetNumberOfRows())}
    assert rows["c_index_harrell"] == pytest.approx(summary["c_index_harrell"]["mean"])
    assert any("model written" in line for line in job.log)  # plain output kept as the log


def test_training_through_the_parameter_node_and_a_failure_named(scene, tmp_path, predict_module):
    logic = predict_module.CMRRiskPredictLogic()
    params = logic.parameters(scene)
    params.update(manifest=str(tmp_path / "missing.csv"), endpoint="survival", outputDir=str(tmp_path / "m"),
                  modelName="cox", cv=0)
    job = logic.startTrainingParameters(params, scene=scene)
    assert job.wait(timeout=120) == "failed"
    assert "missing.csv" in job.error and job.returncode == 2
    assert scene.GetNumberOfNodesByClass("vtkMRMLTableNode") == 0 and not (tmp_path / "m").exists()


def test_hyper_parameters_from_the_parameter_node(scene, tmp_path, predict_module):
    """The Training section's hyper-parameters (text and file) reach ``cmrrisk train``; a wrong
    key is refused before anything starts, naming it and the allowed keys."""
    from cmrrisk.errors import CMRRiskError

    logic = predict_module.CMRRiskPredictLogic()
    manifest = _covariate_cohort(predict_module, tmp_path / "cohort.csv", n=80)
    (tmp_path / "p.yaml").write_text("alpha: 2\n")
    params = logic.parameters(scene)
    params.update(manifest=manifest, endpoint="survival", outputDir=str(tmp_path / "m"), modelName="cox", cv=0,
                  modelParams="alhpa=5")
    with pytest.raises(CMRRiskError) as e:
        logic.startTrainingParameters(params, scene=scene)
    assert "'alhpa'" in str(e.value) and "alpha" in str(e.value).replace("'alhpa'", "")
    assert not (tmp_path / "m").exists()
    params.update(modelParams="alpha=5", paramsFile=str(tmp_path / "p.yaml"))
    assert logic.startTrainingParameters(params, scene=scene).wait(timeout=300) == "succeeded"
    with open(tmp_path / "m" / "config.json") as f:
        assert json.load(f)["model"]["params"] == {"alpha": 5.0}  # the text overrides the file
    assert logic.hyperParameterArguments("deepsurv", "survival", {"hidden": [8, 8], "dropout": 0.1}) == [
        "--param", "hidden=[8, 8]", "--param", "dropout=0.1"]


def test_hyper_parameter_text_splits_at_top_level_commas():
    from cmrrisk.predict.commands import split_assignments

    assert split_assignments("alpha=0.5, hidden=[64, 64],  name='a,b' ,") == ["alpha=0.5", "hidden=[64, 64]",
                                                                             "name='a,b'"]
    assert split_assignments("") == []


def test_cancel_ends_the_process_and_leaves_nothing(scene, tmp_path, predict_module):
    """Cancel during a long training: the process has ended when cancel() returns (it waits at
    most TERMINATE_GRACE_S + 0.8 s), the run ends as cancelled, nothing is added to the scene
    and no model directory is written."""
    from cmrrisk.mrml.runner import TERMINATE_GRACE_S

    logic = predict_module.CMRRiskPredictLogic()
    manifest = _covariate_cohort(predict_module, tmp_path / "cohort.csv", n=3000)
    seen = []
    job = logic.startTraining(manifest, "survival", str(tmp_path / "model"), model="rsf", cv=10, scene=scene,
                              onProgress=lambda f, m: seen.append(m))
    while job.poll() and not seen:  # wait for the first progress line
        time.sleep(0.05)
    assert job.running, f"the training ended before it could be cancelled: {job.log}"
    job.cancel()
    assert job._proc.poll() is not None  # the process is gone already
    assert TERMINATE_GRACE_S + 0.8 <= 2.0
    assert job.wait(timeout=10) == "cancelled"
    assert job.results == {}
    assert scene.GetNumberOfNodesByClass("vtkMRMLTableNode") == 0
    assert not (tmp_path / "model").exists()


def test_report_runs_in_a_separate_process(scene, tmp_path, predict_module):
    logic = predict_module.CMRRiskPredictLogic()
    manifest = _covariate_cohort(predict_module, tmp_path / "cohort.csv", n=50)
    assert logic.startTraining(manifest, "survival", str(tmp_path / "m"), model="cox", cv=0).wait(300) == "succeeded"
    messages = []
    job = logic.startReport(str(tmp_path / "m"), trainManifest=manifest, bootstrap=0,
                            onProgress=lambda f, m: messages.append((f, m)))
    assert job.wait(timeout=300) == "succeeded", job.error
    assert job.results["html"] == str(tmp_path / "m" / "report.html") and os.path.isfile(job.results["html"])
    assert messages and all(f is None for f, _ in messages)  # steps of unknown number


# ---------------------------------------------------------------- radiomics optional, versions

def _phantom_study(scene):
    from cmrrisk import mrml
    from cmrrisk.image import Volume

    zz, yy, xx = np.mgrid[:6, :48, :48]
    r = np.hypot(yy - 24, xx - 24)
    nodes = []
    for radius in (10, 7):
        lab = np.zeros((6, 48, 48), np.uint8)
        lab[(r < radius + 4) & (zz > 0) & (zz < 5)] = 2
        lab[(r < radius) & (zz > 0) & (zz < 5)] = 1
        img = ((lab == 1) * 300.0 + (lab == 2) * 80.0 + 20.0).astype(np.float32)
        vol = mrml.volume_to_node(scene, Volume(img, np.diag([1.5, 1.5, 8.0, 1.0])), f"r{radius}")
        nodes += [vol, mrml.labels_to_segmentation(scene, lab, vol, f"r{radius} seg")]
    return nodes


def test_features_without_pyradiomics_say_what_radiomics_would_add(scene, predict_module, monkeypatch):
    import CMRRiskPredictLib.logic as logic_module

    monkeypatch.setattr(logic_module, "radiomicsAvailable", lambda: False)
    ed, ed_seg, es, es_seg = _phantom_study(scene)
    table = predict_module.CMRRiskPredictLogic().computeFeatures(ed, es, ed_seg, es_seg, radiomics=True, deep=False)
    names = [table.GetCellText(i, 0) for i in range(table.GetNumberOfRows())]
    assert "lv_edv_ml" in names and not [n for n in names if n.startswith("original_")]
    assert table.GetAttribute("CMRRisk.notes") == logic_module.RADIOMICS_NOTE
    assert "shape, intensity and texture" in logic_module.RADIOMICS_NOTE


def test_model_directories_record_versions_and_other_versions_warn(scene, tmp_path, predict_module, monkeypatch):
    """A trained model records every model-defining package present; loaded under another
    version of one, a VersionWarning names the package and both versions, and the Predict
    module's result carries it."""
    import warnings

    from cmrrisk import modeldir

    manifest = _covariate_cohort(predict_module, tmp_path / "cohort.csv", n=40)
    logic = predict_module.CMRRiskPredictLogic()
    assert logic.startTraining(manifest, "survival", str(tmp_path / "m"), model="cox", cv=0).wait(300) == "succeeded"
    with open(tmp_path / "m" / "config.json") as f:
        recorded = json.load(f)["software"]
    present = {m for m in modeldir.MODEL_DEFINING if modeldir._installed_version(m)}
    assert present <= set(recorded) and {"torch", "sksurv", "pycox"} <= present
    with warnings.catch_warnings():
        warnings.simplefilter("error", modeldir.VersionWarning)
        modeldir.load(str(tmp_path / "m"))  # same versions: silent

    real = modeldir._installed_version
    monkeypatch.setattr(modeldir, "_installed_version", lambda m: "0.0.1" if m == "sksurv" else real(m))
    with pytest.warns(modeldir.VersionWarning, match=rf"scikit-survival {recorded['sksurv']}.*scikit-survival 0.0.1"):
        modeldir.load(str(tmp_path / "m"))
    out = logic.predictStudy(str(tmp_path / "m"), covariates="age=70, sex=1, diabetes=0")
    assert any("scikit-survival 0.0.1" in n for n in out["result"]["notes"])
    assert "scikit-survival 0.0.1" in out["table"].GetAttribute("CMRRisk.notes")
    # a build suffix is not a version change
    monkeypatch.setattr(modeldir, "_installed_version", lambda m: recorded[m].split("+")[0] + "+cu126" if m == "torch" else real(m))
    assert modeldir.version_differences(recorded) == []


# ---------------------------------------------------------------- dependencies the Slicer way

class _Slicer:
    def __init__(self, monkeypatch, packaging=None):
        import contextlib

        self.asked, self.pip, self.ensured, self.errors = [], [], [], []
        monkeypatch.setattr(slicer.util, "confirmOkCancelDisplay", lambda *a, **k: self.asked.append(a[0]) or True,
                            raising=False)
        monkeypatch.setattr(slicer.util, "errorDisplay", lambda m, *a, **k: self.errors.append(m), raising=False)
        monkeypatch.setattr(slicer.util, "WaitCursor", contextlib.nullcontext, raising=False)
        monkeypatch.setattr(slicer.util, "pip_install", lambda req: self.pip.append(req), raising=False)
        if packaging:
            ns = types.SimpleNamespace(pip_ensure=lambda reqs, **kw: self.ensured.append((list(reqs), kw)))
            monkeypatch.setattr(slicer, "packaging", ns, raising=False)


def test_pip_ensure_is_used_where_slicer_has_it(monkeypatch):
    from cmrrisk.mrml import dependencies as D

    ui = _Slicer(monkeypatch, packaging=True)
    answers = iter([["cmrrisk_absent_pkg"], []])
    monkeypatch.setattr(D, "missing", lambda required, also: next(answers))
    assert D.ensure({"cmrrisk_absent_pkg": "cmrrisk-absent-pkg>=1.0"}, also=()) is True
    assert ui.ensured == [(["cmrrisk-absent-pkg>=1.0"], {"prompt_install": False, "requester": "CMRRisk"})]
    assert ui.pip == [] and len(ui.asked) == 1


def test_requirements_file_reads_import_names(tmp_path):
    from cmrrisk.mrml.dependencies import read_requirements

    path = tmp_path / "requirements.txt"
    path.write_text("# comment\nmonai>=1.4\nscikit-learn>=1.4  # import: sklearn\n\npandas>=1.5,<3\n")
    assert read_requirements(str(path)) == {"monai": "monai>=1.4", "sklearn": "scikit-learn>=1.4",
                                            "pandas": "pandas>=1.5,<3"}


def test_cuda_is_offered_only_when_torch_sees_a_gpu(monkeypatch):
    torch = pytest.importorskip("torch")
    from cmrrisk.mrml.dependencies import devices

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert devices() == ["cpu"]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert devices() == ["cpu", "cuda"]


def test_predict_module_does_not_require_radiomics(predict_module):
    from cmrrisk.mrml.moduleutils import module_requirements

    reqs = module_requirements(os.path.dirname(predict_module.__file__))
    assert "radiomics" not in reqs and "torch" not in reqs
    assert "radiomics" not in predict_module.missing_packages()


# ---------------------------------------------------------------- busy state

def test_busy_state_disables_inputs_and_maps_progress():
    from cmrrisk.mrml.moduleutils import BusyState

    ui = types.SimpleNamespace(**{n: types.SimpleNamespace(enabled=True) for n in ("a", "b", "cancelButton")},
                               progressBar=types.SimpleNamespace(maximum=1, value=0),
                               statusLabel=types.SimpleNamespace(text=""))
    idle = []
    busy = BusyState(ui, actions=("a",), inputs=("b",), onIdle=lambda: idle.append(1))
    assert busy.start("working") and not busy.start("again")
    assert (ui.a.enabled, ui.b.enabled, ui.cancelButton.enabled) == (False, False, True)
    busy.progress(0.25, "step")
    assert (ui.progressBar.maximum, ui.progressBar.value, ui.statusLabel.text) == (1000, 250, "step")
    busy.progress(None, "unknown length")
    assert ui.progressBar.maximum == 0
    contract = busy.asProgress()  # the core's Progress: the same bar, the Cancel button
    contract.update(3, 4, "three of four")
    assert (ui.progressBar.maximum, ui.progressBar.value, ui.statusLabel.text) == (1000, 750, "three of four")
    busy.requestCancel()
    assert busy.cancelled()
    from cmrrisk.errors import Cancelled

    with pytest.raises(Cancelled):
        contract.update(4, 4, "four")
    busy.stop("done")
    assert (ui.a.enabled, ui.cancelButton.enabled, ui.progressBar.maximum, idle) == (True, False, 1000, [1])


# ---------------------------------------------------------------- sample study

def test_sample_study_is_generated_once_and_loaded(scene, tmp_path):
    from cmrrisk import labels as L
    from cmrrisk import mrml
    from cmrrisk.image import read_image
    from cmrrisk.mrml.sampledata import load_sample_study, make_sample_study

    folder = str(tmp_path / "sample")
    study = make_sample_study(folder)
    stamp = os.path.getmtime(study["cine_ed"])
    assert make_sample_study(folder)["cine_ed"] == study["cine_ed"] and os.path.getmtime(study["cine_ed"]) == stamp
    nodes = load_sample_study(scene, folder)
    for role in ("cine_ed", "cine_es", "lge"):
        vol = read_image(study[role])
        assert np.array_equal(mrml.volume_from_node(nodes[role]).array, vol.array)
        ref = read_image(study[f"{role}_seg"]).array.astype(np.uint8)
        assert np.array_equal(mrml.segmentation_to_labels(nodes[f"{role}_seg"], nodes[role]), ref)
    assert L.SCAR in np.unique(read_image(study["lge_seg"]).array)
    with open(study["manifest"]) as f:
        assert next(csv.DictReader(f))["subject"] == study["subject"]


def test_segment_self_test_on_the_sample_study(scene, segment_module, monkeypatch, tmp_path):
    """The self-test's segmentation test runs headless on the sample study: the bundled cine
    model agrees with the generator's LV blood pool."""
    import unittest

    from cmrrisk.mrml import sampledata

    if segment_module.missing_packages():
        pytest.skip(f"packages missing here: {segment_module.missing_packages()}")
    monkeypatch.setattr(sampledata, "default_folder", lambda: str(tmp_path / "sample"))
    case = unittest.TestCase()
    t = segment_module.CMRRiskSegmentTest()
    shown = []
    t.delayDisplay = shown.append
    for name in ("assertEqual", "assertTrue", "assertGreater", "assertIsNotNone", "assertAlmostEqual"):
        setattr(t, name, getattr(case, name))
    monkeypatch.setattr(slicer, "mrmlScene", scene)
    t.test_sample_study()
    scene.Clear(0)
    t.test_segment_sample_study()
    assert "Dice" in shown[-1]


# ---------------------------------------------------------------- explanations in a separate process

from test_explain import cine_model  # noqa: E402,F401  (fixture: a tiny multi-input diagnosis model)


def test_explanation_runs_in_a_separate_process_with_the_in_process_result(cine_model, scene, predict_module,  # noqa: F811
                                                                          tmp_path):
    """The Explain button's process: the study written as a one-subject manifest, `cmrrisk
    explain` run in another Python, its heatmap loaded over the ED volume with the ED geometry:
    the same heatmap and text as the in-process explainStudy; a cancel adds nothing."""
    from cmrrisk import mrml
    from cmrrisk.image import read_image

    model_dir, manifest, d = cine_model
    ed = mrml.volume_to_node(scene, read_image(str(d / "c5_ed_img.nii.gz")), "ed")
    es = mrml.volume_to_node(scene, read_image(str(d / "c5_es_img.nii.gz")), "es")
    segs = {ph: mrml.labels_to_segmentation(
        scene, np.rint(read_image(str(d / f"c5_{ph}_seg.nii.gz")).array).astype(np.uint8), node, f"{ph} seg")
        for ph, node in (("ed", ed), ("es", es))}
    study = {"edVolumeNode": ed, "esVolumeNode": es, "edSegmentationNode": segs["ed"], "esSegmentationNode": segs["es"]}
    logic = predict_module.CMRRiskPredictLogic()
    expected = logic.explainStudy(model_dir, **study, covariates="age=61", method="gradcam", k=0, showOverlay=False)
    n_before = scene.GetNumberOfNodes()

    job = logic.startExplanation(model_dir, **study, covariates="age=61", method="gradcam", k=0,
                                 workDir=str(tmp_path / "cancelled"))
    job.cancel()
    assert job.wait(timeout=10) == "cancelled" and scene.GetNumberOfNodes() == n_before

    seen = []
    job = logic.startExplanation(model_dir, **study, covariates="age=61", method="gradcam", k=0,
                                 workDir=str(tmp_path / "run"), onProgress=lambda f, m: seen.append((f, m)))
    assert job.wait(timeout=300) == "succeeded", job.error
    assert seen and seen[0] == (0.0, "explaining study")
    heat = job.results["heatmaps"]["cine_ed"]
    assert np.allclose(mrml.volume_from_node(heat).array, mrml.volume_from_node(expected["heatmaps"]["cine_ed"]).array,
                       atol=1e-5)
    assert np.allclose(mrml.volume_from_node(heat).ijk_to_ras, mrml.volume_from_node(ed).ijk_to_ras)
    assert job.results["text"] == expected["text"]
    assert job.results["attributions"].GetNumberOfRows() == expected["attributions"].GetNumberOfRows()


# ---------------------------------------------------------------- cine sequences in a separate process

def test_every_phase_of_a_cine_is_segmented_in_a_separate_process(scene, segment_module, segmenter, tmp_path):
    """Apply on a sequence (all phases): `cmrrisk segment` on the cine written as a 4D image, in
    another Python, with frame progress; the segmentation sequence, ED / ES segmentations and the
    indices table equal those of the in-process segmentSequence; a cancel adds nothing."""
    from cmrrisk import mrml
    from cmrrisk.image import read_image
    from cmrrisk.mrml.sampledata import make_sample_study

    study = make_sample_study(str(tmp_path / "sample"))
    seq = scene.AddNewNodeByClass("vtkMRMLSequenceNode", "cine")
    seq.SetIndexName("phase")
    for t, role in enumerate(("cine_ed", "cine_es", "cine_ed")):
        tmp = mrml.volume_to_node(scene, read_image(study[role]), f"phase {t}")
        seq.SetDataNodeAtValue(tmp, str(t))
        scene.RemoveNode(tmp)
    logic = segment_module.CMRRiskSegmentLogic()
    logic._segmenters[("cine", "cpu")] = segmenter
    expected = logic.segmentSequence(seq)
    n_before = scene.GetNumberOfNodes()

    job = logic.startSequenceSegmentation(seq, workDir=str(tmp_path / "cancelled"))
    job.cancel()
    assert job.wait(timeout=10) == "cancelled" and scene.GetNumberOfNodes() == n_before

    seen = []
    job = logic.startSequenceSegmentation(seq, workDir=str(tmp_path / "run"), onProgress=lambda f, m: seen.append(f))
    assert job.wait(timeout=600) == "succeeded", job.error
    assert seen and seen[-1] == 1.0 and seen == sorted(seen)
    got = job.results
    assert got["sequence"].GetNumberOfDataNodes() == 3
    for key in ("ed", "es"):
        assert got[key].GetName() == expected[key].GetName()  # the same ED and ES phases
        frame = mrml.sequence_volume_nodes(seq)[0]
        a = mrml.segmentation_to_labels(got[key], frame)
        b = mrml.segmentation_to_labels(expected[key], frame)
        assert (a == b).mean() > 0.999
    assert got["indices"] == pytest.approx(expected["indices"], rel=0.01)
    assert got["ed"].GetAttribute("CMRRisk.sliceOrder") == expected["ed"].GetAttribute("CMRRisk.sliceOrder")
    assert "every phase" in got["status"]


def test_busy_state_runs_a_job_until_it_ends(scene, tmp_path, predict_module):
    """The widgets' process runs: the timer polls the runner; a success adds the results through
    onSuccess; Cancel ends the process and says so; a refused start shows the error."""
    from cmrrisk.mrml.moduleutils import BusyState

    ui = types.SimpleNamespace(**{n: types.SimpleNamespace(enabled=True) for n in ("go", "cancelButton")},
                               progressBar=types.SimpleNamespace(maximum=1, value=0),
                               statusLabel=types.SimpleNamespace(text=""))

    class Timer:
        running = False

        def start(self):
            self.running = True

        def stop(self):
            self.running = False

    timer, errors, busy = Timer(), [], BusyState(ui, actions=("go",))
    logic = predict_module.CMRRiskPredictLogic()
    manifest = _covariate_cohort(predict_module, tmp_path / "cohort.csv", n=40)
    job = busy.startJob("training", lambda finished: logic.startTraining(
        manifest, "survival", str(tmp_path / "m"), model="cox", cv=0, onProgress=busy.progress, onFinished=finished),
        lambda job: f"written {job.results['model_dir']}", timer, errors.append)
    assert timer.running and not ui.go.enabled and busy.job is job, (errors, ui.statusLabel.text)
    while timer.running:  # what the QTimer does
        busy.poll()
        time.sleep(0.05)
    assert ui.statusLabel.text == f"written {tmp_path / 'm'}" and ui.go.enabled and busy.job is None
    assert ui.progressBar.value == 1000

    busy.startJob("training", lambda finished: logic.startTraining(
        manifest, "survival", str(tmp_path / "m2"), model="rsf", cv=10, onFinished=finished),
        lambda job: "done", timer, errors.append)
    busy.cancel()
    assert ui.statusLabel.text.startswith("Cancelled") and not timer.running and ui.go.enabled
    assert busy.startJob("training", lambda finished: logic.startTraining("", "survival", "x"), None, timer,
                         errors.append) is None
    assert errors == ["Choose a cohort manifest (CSV)."] and ui.statusLabel.text.startswith("Not started")


def test_predict_self_test_trains_and_explains_in_processes(scene, predict_module, monkeypatch, tmp_path):
    """The Predict self-test's process tests run headless with the packages present."""
    import unittest

    from cmrrisk.mrml import sampledata

    if predict_module.missing_packages():
        pytest.skip(f"packages missing here: {predict_module.missing_packages()}")
    monkeypatch.setattr(sampledata, "default_folder", lambda: str(tmp_path / "sample"))
    monkeypatch.setattr(slicer, "mrmlScene", scene)
    case = unittest.TestCase()
    t = predict_module.CMRRiskPredictTest()
    shown = []
    t.delayDisplay = shown.append
    for name in ("assertEqual", "assertTrue", "assertGreater", "assertIn", "assertAlmostEqual"):
        setattr(t, name, getattr(case, name))
    t.test_train_covariate_model_in_a_process()
    t.test_explain_on_the_sample_study_in_a_process()
    assert shown == [s for s in shown if "passed" in s] and len(shown) == 2
