"""Metrics, post-processing, quality flags, label mapping and model directories."""

import os
import shutil

import numpy as np
import pytest

from cmrrisk import labels as L
from cmrrisk import modeldir
from cmrrisk.errors import CMRRiskError
from cmrrisk.metrics import clinical_indices, dice, hd95
from cmrrisk.segmentation.postprocess import postprocess
from cmrrisk.segmentation.quality import frame_flags


def _ring(shape=(4, 64, 64), c=(32, 32), r_in=8, r_out=12):
    z, y, x = np.indices(shape)
    r = np.hypot(y - c[0], x - c[1])
    seg = np.zeros(shape, np.uint8)
    seg[r < r_out] = L.LV_MYOCARDIUM
    seg[r < r_in] = L.LV_BLOOD_POOL
    return seg


def test_dice_and_hd95_known_values():
    a = np.zeros((1, 10, 10), bool)
    b = np.zeros((1, 10, 10), bool)
    a[0, 2:6, 2:6] = True
    b[0, 2:6, 4:8] = True
    assert dice(a, b) == pytest.approx(0.5)
    assert dice(a, a) == 1.0
    assert hd95(a, a, (1, 1, 1)) == 0.0
    assert hd95(a, b, (1, 1, 1)) == pytest.approx(2.0, abs=0.01)
    assert np.isnan(hd95(a, np.zeros_like(a), (1, 1, 1)))


def test_clinical_indices():
    ed = _ring(r_in=10, r_out=14)
    es = _ring(r_in=5, r_out=12)
    sp = (1.0, 1.0, 10.0)
    idx = clinical_indices(ed, es, sp)
    lv_ed = (ed == 1).sum() * 10 / 1000
    lv_es = (es == 1).sum() * 10 / 1000
    assert idx["lv_edv_ml"] == pytest.approx(lv_ed)
    assert idx["lv_ef_pct"] == pytest.approx(100 * (lv_ed - lv_es) / lv_ed)
    assert idx["lv_mass_g"] == pytest.approx((ed == 2).sum() * 10 / 1000 * 1.05)
    assert np.isnan(idx["rv_ef_pct"])


def test_postprocess_removes_islands_and_fills_holes():
    seg = _ring()
    seg[1, 32, 32] = 0                    # hole in the LV
    seg[2, 2:4, 2:4] = L.LV_BLOOD_POOL    # island
    out = postprocess(seg)
    assert out[1, 32, 32] == L.LV_BLOOD_POOL
    assert (out[2, 2:4, 2:4] == 0).all()
    assert (out == postprocess(out)).all()


def test_quality_flags():
    seg = _ring()
    assert frame_flags(seg, (1.5, 1.5, 8)) == ["rv_empty"]
    assert frame_flags(np.zeros_like(seg), (1, 1, 1)) == ["no_heart_found"]
    open_lv = seg.copy()
    open_lv[open_lv == L.LV_MYOCARDIUM] = 0
    assert "lv_not_enclosed_by_myocardium" in frame_flags(open_lv, (1.5, 1.5, 8))


def test_acdc_label_mapping():
    a = np.array([0, 1, 2, 3])
    assert L.map_labels(a, L.ACDC_TO_PROJECT).tolist() == [0, 3, 2, 1]
    with pytest.raises(ValueError, match="7"):
        L.map_labels(np.array([7]), L.ACDC_TO_PROJECT)


def test_bundled_model_verifies_and_is_small():
    path = modeldir.resolve("cine")
    modeldir.verify(path)
    size = sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path))
    assert size <= 20 * 1024 * 1024
    cfg = modeldir.read_json(os.path.join(path, "config.json"))
    assert cfg["labels"] == {"LV blood pool": 1, "LV myocardium": 2, "RV blood pool": 3}


def test_tampered_model_is_refused(tmp_path):
    dst = tmp_path / "m"
    shutil.copytree(modeldir.resolve("cine"), dst)
    with open(dst / "model.safetensors", "r+b") as f:
        f.seek(2000)
        f.write(b"\x00\x01\x02\x03")
    with pytest.raises(CMRRiskError, match="SHA-256"):
        modeldir.load(str(dst))
    (dst / "checksums.json").unlink()
    with pytest.raises(CMRRiskError, match="checksums"):
        modeldir.load(str(dst))
