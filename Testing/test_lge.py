"""LGE pieces: EMIDEC adapter and manifest, scar-aware post-processing and measures."""

import csv

import numpy as np
import pytest

from cmrrisk import labels as L
from cmrrisk.cli import main
from cmrrisk.datasets import EMIDEC_TO_PROJECT, list_emidec, read_emidec_case
from cmrrisk.image import read_image
from cmrrisk.metrics import lge_measures, scar_burden_pct
from cmrrisk.segmentation.postprocess import postprocess

from conftest import DATA

EMIDEC = DATA / "emidec"
needs_emidec = pytest.mark.skipif(not EMIDEC.is_dir(), reason=f"EMIDEC data not found at {EMIDEC}")

LGE = L.LGE_LABELS


def _lge_ring():
    z, y, x = np.indices((3, 64, 64))
    r = np.hypot(y - 32, x - 32)
    seg = np.zeros((3, 64, 64), np.uint8)
    seg[r < 14] = L.LV_MYOCARDIUM
    seg[r < 9] = L.LV_BLOOD_POOL
    wall = (r >= 9) & (r < 14)
    seg[wall & (x > 40)] = L.SCAR          # one scar region
    seg[wall & (x < 22)] = L.SCAR          # a second, separate scar region
    seg[wall & (x > 44) & (np.abs(y - 32) < 2)] = L.MVO
    return seg


def test_postprocess_keeps_multifocal_scar_and_fills_cavity():
    seg = _lge_ring()
    seg[1, 32, 32] = 0
    out = postprocess(seg, LGE)
    assert out[1, 32, 32] == L.LV_BLOOD_POOL
    assert ((out == L.SCAR) == (seg == L.SCAR)).all(), "separate scar regions must both survive"
    assert (out == L.MVO).sum() == (seg == L.MVO).sum()


def test_scar_burden_and_measures():
    seg = _lge_ring()
    wall = np.isin(seg, (L.LV_MYOCARDIUM, L.SCAR, L.MVO)).sum()
    scar = np.isin(seg, (L.SCAR, L.MVO)).sum()
    assert scar_burden_pct(seg) == pytest.approx(100 * scar / wall)
    m = lge_measures(seg, (2.0, 2.0, 5.0))
    assert m["mvo_ml"] == pytest.approx((seg == L.MVO).sum() * 20 / 1000)
    assert np.isnan(scar_burden_pct(np.zeros_like(seg)))


@needs_emidec
def test_emidec_cases_and_label_mapping():
    cases = list_emidec(str(EMIDEC))
    assert len(cases) == 75
    assert sum(c.group == "infarct" for c in cases) == 50
    c = next(c for c in cases if c.group == "infarct")
    img, lab = read_emidec_case(c)
    assert img.shape == lab.shape == (len(c.images), 256, 256)
    assert set(np.unique(lab)) <= set(EMIDEC_TO_PROJECT.values())


@needs_emidec
def test_manifest_emidec_writes_volumes_and_relative_paths(tmp_path):
    out = tmp_path / "m" / "manifest.csv"
    assert main(["manifest", "emidec", str(EMIDEC), "--out", str(out)]) == 0
    rows = list(csv.DictReader(open(out)))
    assert len(rows) == 75 and rows[0].keys() >= {"subject", "lge", "lge_seg", "label", "spacing_known"}
    r = next(r for r in rows if r["label"] == "infarct")
    assert not r["lge"].startswith("/")
    vol = read_image(str(out.parent / r["lge"]))
    seg = read_image(str(out.parent / r["lge_seg"]))
    assert vol.array.shape == seg.array.shape and vol.spacing == (1.0, 1.0, 1.0)
    assert r["spacing_known"] == "0"
    assert (seg.array == L.SCAR).any()


def _lge_validation_cases():
    from conftest import validation_subjects

    val = set(validation_subjects("lge"))
    return [c for c in list_emidec(str(EMIDEC)) if c.case in val]


@needs_emidec
def test_bundled_lge_model_on_held_out_cases():
    """Thresholds far below the model card's figures, far above a broken model's. The cases are
    the development split's validation cases (bench/devmodels.py), which a bundled model trained
    on all cases has seen: this catches a broken model; it does not measure accuracy."""
    from cmrrisk.segmentation.evaluate import evaluate_emidec
    from cmrrisk.segmentation.infer import Segmenter

    cases = _lge_validation_cases()
    cases = [c for c in cases if c.group == "infarct"][:3] + [c for c in cases if c.group == "normal"][:1]
    res = evaluate_emidec(Segmenter.load("lge"), cases)["summary"]
    assert res["dice_myocardium"] >= 0.70, res
    assert res["dice_lv_blood_pool"] >= 0.80, res
    # the bundled model's myocardium volume is within a few % of EMIDEC's references
    assert 0.85 <= res["myocardium_volume_ratio_median"] <= 1.15, res


@needs_emidec
def test_segment_lge_volume_cli_and_slicer_logic(tmp_path, scene, segment_module):
    import json

    from cmrrisk import mrml

    out = tmp_path / "m" / "manifest.csv"
    case = _lge_validation_cases()[-1].case
    assert main(["manifest", "emidec", str(EMIDEC), "--out", str(out)]) == 0
    lge = out.parent / "emidec_volumes" / f"{case}_lge.nii.gz"
    seg_dir = tmp_path / "seg"
    assert main(["segment", str(lge), "--model", "lge", "--out", str(seg_dir), "--quiet"]) == 0
    rep = json.loads((seg_dir / "segment.json").read_text())["inputs"][0]
    assert "scar_burden_pct" in rep["lge"] and "rv_empty" not in rep["flags"]
    aha = rep["lge"]["aha"]
    assert [r["segment"] for r in aha["segments"]] == list(range(1, 17))
    assert aha["approximate"] and "blood pool" in aha["base_rule"]  # EMIDEC: declared identity
    assert sum(r["myocardium_ml"] for r in aha["segments"]) == pytest.approx(rep["lge"]["myocardium_ml"], abs=0.05)
    assert sum(r["scar_ml"] for r in aha["segments"]) == pytest.approx(rep["lge"]["scar_ml"], abs=0.05)
    methods = rep["lge"]["intensity_methods"]
    assert [e["n"] for e in methods["nsd"]] == [2, 3, 5, 6]
    assert {"fwhm", "fwhm_above_remote"} <= set(methods)
    labels = read_image(str(seg_dir / f"{case}_lge_seg.nii.gz")).array
    assert set(np.unique(labels)) <= {0, 1, 2, 4, 5}

    node = mrml.volume_to_node(scene, read_image(str(lge)), "lge")
    logic = segment_module.CMRRiskSegmentLogic()
    seg_node = logic.segmentVolume(node, model="lge")
    seg = seg_node.GetSegmentation()
    names = sorted(seg.GetNthSegment(i).GetName() for i in range(seg.GetNumberOfSegments()))
    assert names == sorted(L.SEGMENTS[v][0] for v in LGE)
    assert np.array_equal(mrml.segmentation_to_labels(seg_node, node), labels)
    table = logic.scarTable(seg_node, node).GetTable()
    rows = {table.GetValue(r, 0).ToString(): table.GetValue(r, 1).ToDouble() for r in range(table.GetNumberOfRows())}
    assert rows["scar_burden_pct"] == pytest.approx(rep["lge"]["scar_burden_pct"], abs=0.01)
    assert rows["nsd3_scar_burden_pct"] == pytest.approx(methods["nsd"][1]["scar_burden_pct"], abs=0.01)
    assert rows["fwhm_above_remote_scar_burden_pct"] == pytest.approx(
        methods["fwhm_above_remote"]["scar_burden_pct"], abs=0.01)
    assert rows["n_segments_transmurality_gt50"] == aha["summary"]["n_segments_transmurality_gt50"]


def test_lge_model_segments_with_flips_by_default_and_features_know_it(tmp_path):
    """The lge model's config turns test-time flips on (measured: bench/results/lge_inference.json);
    cine keeps them off (speed goal); the feature cache identity records the difference; the
    command line can turn them off and says so in segment.json."""
    import json

    from cmrrisk.features.cohort import model_checksums
    from cmrrisk.image import Volume, write_image
    from cmrrisk.segmentation.infer import Segmenter

    assert Segmenter.load("lge").tta and not Segmenter.load("lge", tta=False).tta
    assert not Segmenter.load("cine").tta and Segmenter.load("cine", tta=True).tta
    sums = model_checksums()
    assert sums["lge"].endswith("+flips-window30mm+geomorder") and "heartwindow" not in sums["lge"]
    assert sums["cine"].endswith("+heartwindow30mm+geomorder") and "flips" not in sums["cine"]
    img = np.random.default_rng(0).normal(100, 10, (4, 64, 64)).astype(np.float32)
    write_image(Volume(img, np.eye(4)), str(tmp_path / "x_lge.nii.gz"))
    for flag, expected in (([], True), (["--no-tta"], False)):
        out = tmp_path / f"seg{len(flag)}"
        assert main(["segment", str(tmp_path / "x_lge.nii.gz"), "--model", "lge", "--out", str(out),
                     "--quiet"] + flag) == 0
        model = json.loads((out / "segment.json").read_text())["model"]
        assert model["test_time_flips"] is expected
        assert model["test_time_flips_window_margin_mm"] == (Segmenter.TTA_WINDOW_MARGIN_MM if expected else None)
