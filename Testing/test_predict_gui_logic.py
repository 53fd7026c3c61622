"""The CMRRisk Predict module's GUI actions, each one Logic call, exercised headless against a
real MRML scene (the widget itself needs Qt and cannot run here): progress and cancel of Compute
features, Predict and Explain, the Explanation section's call and its heatmap overlay, the lists
the widget fills from the core, the .ui file's structure, and the self-test's skip."""

import unittest
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from conftest import ROOT
from test_explain import cine_model  # noqa: F401  (fixture: a tiny multi-input diagnosis model)
from test_features import AFFINE, phantom
from test_predict_study import _image_feature_model, _train

UI = ROOT / "CMRRiskPredict" / "Resources" / "UI" / "CMRRiskPredict.ui"


def _recorder():
    seen = []
    return seen, lambda fraction, message: seen.append((fraction, message))


def _assert_increasing(seen):
    fractions = [f for f, _ in seen]
    assert fractions[0] == pytest.approx(0.0) and fractions[-1] == pytest.approx(1.0)
    assert all(b > a for a, b in zip(fractions, fractions[1:])), seen


def _cancel_at(seen, word):
    """A cancel callback that says stop once a progress message containing ``word`` was seen."""
    return lambda: any(word in m for _, m in seen)


#: the classes of the nodes the module's actions add (tables, segmentations, charts, heatmaps)
OUTPUT_CLASSES = ("vtkMRMLTableNode", "vtkMRMLSegmentationNode", "vtkMRMLPlotChartNode",
                  "vtkMRMLPlotSeriesNode", "vtkMRMLScalarVolumeNode")


def _outputs(scene):
    """Nodes in the scene by class, and all nodes: a cancelled action adds none (no output and no
    helper node left behind)."""
    counts = {c: scene.GetNumberOfNodesByClass(c) for c in OUTPUT_CLASSES}
    counts["all nodes"] = scene.GetNumberOfNodes()
    return counts


def _study_nodes(scene, ed_radius=12.0, es_radius=8.0):
    from cmrrisk import mrml
    from cmrrisk.image import Volume

    nodes, labs = {}, {}
    for ph, rad in (("ed", ed_radius), ("es", es_radius)):
        img, lab = phantom(rad, noise=5.0)
        nodes[ph] = mrml.volume_to_node(scene, Volume(img, AFFINE), f"study {ph}")
        labs[ph] = lab
    return nodes, labs


# ---------------------------------------------------------------- Compute features

def test_compute_features_reports_each_step_with_increasing_fractions(scene, predict_module):
    """The ES frame is segmented (the bundled network, on the device chosen), the ED one is
    given: progress names segmentation, deep features, indices and radiomics, in order."""
    from cmrrisk import mrml

    nodes, labs = _study_nodes(scene)
    ed_seg = mrml.labels_to_segmentation(scene, labs["ed"], nodes["ed"], "ed seg")
    n_seg = scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode")
    seen, progress = _recorder()
    table = predict_module.CMRRiskPredictLogic().computeFeatures(
        edVolumeNode=nodes["ed"], esVolumeNode=nodes["es"], edSegmentationNode=ed_seg,
        esSegmentationNode=None, lgeVolumeNode=None, lgeSegmentationNode=None,
        bsa=None, radiomics=True, deep=True, device="cpu", progress=progress, cancel=lambda: False)
    _assert_increasing(seen)
    messages = [m for _, m in seen]
    for word in ("deep features (ED)", "segmentation and deep features (ES)", "clinical indices",
                 "radiomics (ED)", "radiomics (ES)", "adding the results"):
        assert any(word in m for m in messages), (word, messages)
    order = [next(i for i, m in enumerate(messages) if w in m)
             for w in ("segmentation", "clinical indices", "radiomics (ED)", "adding")]
    assert order == sorted(order)
    assert scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode") == n_seg + 1
    names = [table.GetCellText(i, 0) for i in range(table.GetNumberOfRows())]
    assert "lv_ef_pct" in names and "deep_es_000" in names


def test_cancel_stops_compute_features_and_adds_no_node(scene, predict_module):
    from cmrrisk.predict.study import Cancelled

    nodes, _ = _study_nodes(scene)
    logic = predict_module.CMRRiskPredictLogic()
    before = _outputs(scene)
    with pytest.raises(Cancelled):  # at once
        logic.computeFeatures(nodes["ed"], nodes["es"], radiomics=False, deep=False, cancel=lambda: True)
    seen, progress = _recorder()
    with pytest.raises(Cancelled, match="ES"):  # after the ED frame was segmented
        logic.computeFeatures(nodes["ed"], nodes["es"], radiomics=False, deep=False, progress=progress,
                              cancel=_cancel_at(seen, "segmentation (ED)"))
    assert any("segmentation (ED)" in m for _, m in seen)
    assert _outputs(scene) == before


# ---------------------------------------------------------------- Predict

def test_predict_study_progress_cancel_and_the_widget_call(scene, predict_module, tmp_path):
    """The Predict button's call: covariates and horizons as the widget's text, device, progress
    and cancel; a cancel at the prediction step leaves the scene as it was."""
    from cmrrisk import mrml
    from cmrrisk.predict.study import Cancelled

    _, _, studies = _image_feature_model(tmp_path, n=16)
    vols, ed_lab, es_lab = studies["s2"]
    ed = mrml.volume_to_node(scene, vols["ed"], "s2 ED")
    es = mrml.volume_to_node(scene, vols["es"], "s2 ES")
    study = {"edVolumeNode": ed, "esVolumeNode": es,
             "edSegmentationNode": mrml.labels_to_segmentation(scene, ed_lab, ed, "ed seg"),
             "esSegmentationNode": mrml.labels_to_segmentation(scene, es_lab, es, "es seg"),
             "lgeVolumeNode": None, "lgeSegmentationNode": None}
    logic = predict_module.CMRRiskPredictLogic()
    before = _outputs(scene)
    seen, progress = _recorder()
    with pytest.raises(Cancelled, match="prediction"):
        logic.predictStudy(str(tmp_path / "model"), **study, covariates="age=61", horizons="0.5",
                           bsa=None, device="cpu", progress=progress, cancel=_cancel_at(seen, "clinical indices"))
    assert _outputs(scene) == before
    seen, progress = _recorder()
    out = logic.predictStudy(str(tmp_path / "model"), **study, covariates="age=61", horizons="0.5",
                             bsa=None, device="cpu", progress=progress, cancel=lambda: False)
    _assert_increasing(seen)
    messages = [m for _, m in seen]
    assert any("clinical indices" in m for m in messages) and any(m == "prediction" for m in messages)
    t = out["table"]
    assert [t.GetColumnName(j) for j in range(t.GetNumberOfColumns())][-1] == "survival_at_0.5"
    assert out["summary"].startswith("cox: risk ") and out["chart"] is not None
    assert _outputs(scene)["vtkMRMLTableNode"] == before["vtkMRMLTableNode"] + 2  # prediction + curve


def test_predict_diagnosis_summary_and_report_cancel(scene, predict_module, tmp_path):
    """The Logic's diagnosis path (class probabilities, no chart), and Write report's cancel."""
    from cmrrisk.predict.study import Cancelled

    rng = np.random.default_rng(0)
    lines = ["subject,a,b,label"] + [f"s{i},{i % 3 + rng.normal(0, .3):.3f},{rng.normal():.3f},{'XYZ'[i % 3]}"
                                      for i in range(90)]
    (tmp_path / "dx.csv").write_text("\n".join(lines) + "\n")
    _train(tmp_path / "dx.csv", tmp_path / "model", endpoint="diagnosis", model="logistic", cv=0)
    logic = predict_module.CMRRiskPredictLogic()
    out = logic.predictStudy(str(tmp_path / "model"), covariates="a=2.0, b=0", horizons="")
    t = out["table"]
    cols = [t.GetColumnName(j) for j in range(t.GetNumberOfColumns())]
    assert cols == ["subject", "model", "predicted", "p_X", "p_Y", "p_Z"] and out["chart"] is None
    assert out["summary"].startswith("logistic: Z (p = ")
    with pytest.raises(Cancelled):
        logic.writeReport(str(tmp_path / "model"), trainManifest=str(tmp_path / "dx.csv"), cancel=lambda: True)
    assert not (tmp_path / "model" / "report.html").exists()


# ---------------------------------------------------------------- Explanation

def test_explain_study_as_the_widget_calls_it(cine_model, scene, predict_module):  # noqa: F811
    """The Explain button's call on a small trained image model: a heatmap volume node with the
    ED image's geometry, shown as the foreground of the slice views, an attributions table, the
    similar cases of the reference manifest and the text, with progress; a cancel adds nothing."""
    import vtk

    from cmrrisk import mrml
    from cmrrisk.image import read_image
    from cmrrisk.predict.study import Cancelled

    model_dir, manifest, d = cine_model
    ed = mrml.volume_to_node(scene, read_image(str(d / "c5_ed_img.nii.gz")), "ed")
    es = mrml.volume_to_node(scene, read_image(str(d / "c5_es_img.nii.gz")), "es")
    segs = {ph: mrml.labels_to_segmentation(
        scene, np.rint(read_image(str(d / f"c5_{ph}_seg.nii.gz")).array).astype(np.uint8), node, f"{ph} seg")
        for ph, node in (("ed", ed), ("es", es))}
    study = {"edVolumeNode": ed, "esVolumeNode": es, "edSegmentationNode": segs["ed"],
             "esSegmentationNode": segs["es"], "lgeVolumeNode": None, "lgeSegmentationNode": None}
    comps = [scene.AddNewNodeByClass("vtkMRMLSliceCompositeNode") for _ in range(2)]  # as slice views have
    logic = predict_module.CMRRiskPredictLogic()
    before = _outputs(scene)
    seen, progress = _recorder()
    with pytest.raises(Cancelled):
        logic.explainStudy(model_dir, **study, covariates="age=61", method="gradcam",
                           referenceManifest=manifest, k=2, device="cpu", progress=progress,
                           cancel=_cancel_at(seen, "reference subjects"))
    assert _outputs(scene) == before
    seen, progress = _recorder()
    out = logic.explainStudy(model_dir, **study, covariates="age=61", method="gradcam",
                             referenceManifest=manifest, k=2, device="cpu", progress=progress,
                             cancel=lambda: False)
    _assert_increasing(seen)
    assert any("saliency" in m for _, m in seen)
    heat = out["heatmaps"]["cine_ed"]
    m1, m2 = vtk.vtkMatrix4x4(), vtk.vtkMatrix4x4()
    heat.GetIJKToRASMatrix(m1)
    ed.GetIJKToRASMatrix(m2)
    assert all(abs(m1.GetElement(i, j) - m2.GetElement(i, j)) < 1e-6 for i in range(4) for j in range(4))
    assert heat.GetImageData().GetDimensions() == ed.GetImageData().GetDimensions()
    assert mrml.volume_from_node(heat).array.max() > 0
    for comp in comps:
        assert comp.GetForegroundVolumeID() == heat.GetID() and comp.GetBackgroundVolumeID() == ed.GetID()
    table = out["attributions"]
    assert table.IsA("vtkMRMLTableNode") and table.GetTable().GetNumberOfRows() == 2  # images + age
    assert out["similar"].GetTable().GetNumberOfRows() == 2
    assert out["text"] and table.GetAttribute("CMRRisk.explanation") == out["text"]
    with pytest.raises(ValueError, match="choose one of gradcam, ig"):
        logic.explainStudy(model_dir, **study, method="nonsense", k=0)


def test_show_heatmap_sets_the_foreground_of_every_slice_view(scene, predict_module):
    from cmrrisk import mrml
    from cmrrisk.image import Volume

    img, _ = phantom(12.0)
    ref = mrml.volume_to_node(scene, Volume(img, AFFINE), "ref")
    comps = [scene.AddNewNodeByClass("vtkMRMLSliceCompositeNode") for _ in range(3)]
    logic = predict_module.CMRRiskPredictLogic()
    heat = logic.showHeatmap(Volume(img / img.max(), AFFINE), ref, opacity=0.4)
    assert heat.IsA("vtkMRMLScalarVolumeNode") and heat.GetName() == "ref heatmap"
    assert mrml.volume_from_node(heat).array.shape == img.shape
    for comp in comps:
        assert comp.GetForegroundVolumeID() == heat.GetID() and comp.GetBackgroundVolumeID() == ref.GetID()
        assert comp.GetForegroundOpacity() == pytest.approx(0.4)
    for comp in comps:  # an existing heatmap node is shown as it is, not copied
        comp.SetForegroundVolumeID(None)
    n = scene.GetNumberOfNodes()
    assert logic.showHeatmap(heat, ref) is heat and scene.GetNumberOfNodes() == n
    assert all(c.GetForegroundVolumeID() == heat.GetID() for c in comps)


# ---------------------------------------------------------------- what the widget shows

def _ui():
    return ET.parse(UI).getroot()


def _widget(root, name):
    return next(w for w in root.iter("widget") if w.get("name") == name)


def _items(widget):
    return [i.find("property/string").text for i in widget.findall("item")]


def test_widget_lists_come_from_the_core_and_match_the_ui(predict_module):
    import argparse

    from cmrrisk.explain.commands import add_commands
    from cmrrisk.explain.saliency import METHODS
    from cmrrisk.predict import model_names

    logic = predict_module.CMRRiskPredictLogic()
    assert logic.explanationMethods() == list(METHODS)
    for endpoint in ("survival", "diagnosis"):
        assert logic.modelNames(endpoint) == model_names(endpoint) and "auto" in logic.modelNames(endpoint)
    assert "cox" in logic.modelNames("survival") and "logistic" in logic.modelNames("diagnosis")
    root = _ui()
    methods = _widget(root, "explainMethodComboBox")
    assert _items(methods) == list(METHODS)
    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["explain", "m", "x.csv", "--subject", "s", "--out", "o"])
    assert _items(methods)[int(methods.find("property[@name='currentIndex']/number").text)] == args.method
    assert int(_widget(root, "kSpinBox").find("property[@name='value']/number").text) == args.k
    assert tuple(_items(_widget(root, "deviceComboBox"))) == predict_module.CMRRiskPredictLogic.DEVICES
    model = _widget(root, "modelNameComboBox")
    assert _items(model) == ["auto"] and model.find("property[@name='editable']/bool").text == "true"


def test_ui_structure_for_long_runs_and_selectors(predict_module):
    root = _ui()
    names = {w.get("name") for w in root.iter("widget")}
    # every widget the busy state touches exists
    assert not [n for n in predict_module.ACTION_BUTTONS + predict_module.INPUT_WIDGETS if n not in names]
    # progress and Cancel are shared, outside every collapsible section
    for section in ("trainCollapsibleButton", "predictCollapsibleButton", "explainCollapsibleButton",
                    "inputsCollapsibleButton", "reportCollapsibleButton"):
        inside = {w.get("name") for w in _widget(root, section).iter("widget")}
        assert not inside & {"progressBar", "cancelButton"}, section
    assert _widget(root, "cancelButton").find("property[@name='enabled']/bool").text == "false"
    explain = {w.get("name") for w in _widget(root, "explainCollapsibleButton").iter("widget")}
    assert {"explainMethodComboBox", "referenceManifestPathLineEdit", "kSpinBox", "explainButton"} <= explain
    assert "deviceComboBox" in {w.get("name") for w in _widget(root, "inputsCollapsibleButton").iter("widget")}
    for name in ("edSelector", "esSelector", "lgeSelector"):
        prop = _widget(root, name).find("property[@name='showChildNodeTypes']/bool")
        assert prop is not None and prop.text == "false", name
    receivers = {(c.findtext("receiver"), c.findtext("slot")) for c in root.iter("connection")}
    assert ("tableView", "setMRMLScene(vtkMRMLScene*)") in receivers
    src = (ROOT / "CMRRiskPredict" / "CMRRiskPredict.py").read_text()
    assert 'dependencies = ["Plots"' in src


# ---------------------------------------------------------------- the Slicer self-test

def _test_case(predict_module):
    case = unittest.TestCase()
    t = predict_module.CMRRiskPredictTest()
    t.delayDisplay = lambda *a, **k: None
    for name in ("assertEqual", "assertAlmostEqual", "assertTrue", "assertIn", "assertGreater"):
        setattr(t, name, getattr(case, name))
    return t


@pytest.mark.parametrize("method", ["test_indices_from_given_segmentation", "test_train_covariate_model_in_a_process",
                                    "test_explain_on_the_sample_study_in_a_process"])
def test_each_self_test_method_skips_itself_naming_missing_packages(scene, predict_module, monkeypatch, method):
    from cmrrisk.mrml import moduleutils

    monkeypatch.setattr(moduleutils, "missing", lambda required, also: [n for n in also if n != "numpy"])
    t = _test_case(predict_module)
    with pytest.raises(unittest.SkipTest, match=r"needs the Python packages torch"):
        getattr(t, method)()
    assert scene.GetNumberOfNodesByClass("vtkMRMLTableNode") == 0


def test_self_test_runs_headless_when_packages_are_present(scene, predict_module):
    if predict_module.missing_packages():
        pytest.skip(f"packages missing here: {predict_module.missing_packages()}")
    t = _test_case(predict_module)
    t.test_indices_from_given_segmentation()  # the self-test's own asserts
    assert scene.GetNumberOfNodesByClass("vtkMRMLTableNode") == 1
