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


@pytest.mark.parametrize("task", ["cine", "lge"])
def test_bundled_weights_are_stored_in_half_precision_and_load_as_float32(task):
    from safetensors import safe_open

    path = modeldir.resolve(task)
    with safe_open(os.path.join(path, modeldir.WEIGHTS), "pt") as f:
        stored = {str(f.get_slice(k).get_dtype()) for k in f.keys()}
    assert "F16" in stored and "F32" not in stored
    _, state = modeldir.load(path)
    assert {str(v.dtype) for v in state.values() if v.is_floating_point()} == {"torch.float32"}


def test_store_half_round_trip(tmp_path):
    """Float32 and float16 model folders both load as float32; store_half keeps the values to
    float16 rounding, leaves integer tensors alone and rewrites the checksums."""
    import torch

    state = {"w": torch.linspace(-3, 3, 101, dtype=torch.float32), "n": torch.tensor([7], dtype=torch.int64)}
    modeldir.save(str(tmp_path / "m"), state, {"name": "m"})
    _, full = modeldir.load(str(tmp_path / "m"))
    assert torch.equal(full["w"], state["w"]) and full["w"].dtype == torch.float32
    before = os.path.getsize(tmp_path / "m" / modeldir.WEIGHTS)
    sums = modeldir.store_half(str(tmp_path / "m"))
    assert sums[modeldir.WEIGHTS] == modeldir.sha256(str(tmp_path / "m" / modeldir.WEIGHTS))
    assert os.path.getsize(tmp_path / "m" / modeldir.WEIGHTS) < before
    _, half = modeldir.load(str(tmp_path / "m"))  # checksums verified
    assert half["w"].dtype == torch.float32 and torch.equal(half["w"], state["w"].half().float())
    assert not torch.equal(half["w"], state["w"])  # rounded: the test would notice a no-op
    assert half["n"].dtype == torch.int64 and half["n"].item() == 7


def test_es_prior_keeps_the_lv_inside_the_ed_wall():
    """End-systole anchored to end-diastole: LV / myocardium scores far outside the ED LV wall
    (here a second, RV-like blob that the scores call LV) lose to the next class; those
    within the margin are kept; mismatched shapes are refused."""
    import torch

    from cmrrisk.segmentation.infer import Segmenter

    seg = Segmenter.__new__(Segmenter)
    seg.label_values = np.array([0, L.LV_BLOOD_POOL, L.LV_MYOCARDIUM, L.RV_BLOOD_POOL], np.uint8)
    ed = _ring(shape=(2, 64, 64), c=(32, 20), r_in=7, r_out=11)   # ED LV wall: x in 9..31
    scores = torch.zeros((2, 4, 64, 64))
    scores[:, 3] = 1.0                                              # RV everywhere ...
    es_lv = _ring(shape=(2, 64, 64), c=(32, 20), r_in=4, r_out=9) == L.LV_BLOOD_POOL
    far = _ring(shape=(2, 64, 64), c=(32, 50), r_in=6, r_out=7) == L.LV_BLOOD_POOL
    near = np.zeros_like(far)
    near[:, 32, 33] = True                                          # 2 px (3 mm) outside the ED wall
    for m in (es_lv, far, near):
        scores[:, 1][torch.from_numpy(m)] = 5.0                     # ... but LV where these are
    out = seg._apply_es_prior(scores, ed, (1.5, 1.5)).argmax(1).numpy()
    lab = seg.label_values[out]
    assert (lab[es_lv] == L.LV_BLOOD_POOL).all()
    assert (lab[near] == L.LV_BLOOD_POOL).all()                    # within 10 mm: kept
    assert (lab[far] == L.RV_BLOOD_POOL).all()                     # >= 13 px (19.5 mm) out: not LV
    plain = seg.label_values[scores.argmax(1).numpy()]
    assert (plain[far] == L.LV_BLOOD_POOL).all()                   # without the prior it was
    # an ED frame without any LV leaves the scores alone
    assert torch.equal(seg._apply_es_prior(scores, np.zeros_like(ed), (1.5, 1.5)), scores)
    with pytest.raises(CMRRiskError, match="same cine"):
        seg._apply_es_prior(scores, ed[:1], (1.5, 1.5))


def test_es_prior_refuses_lv_on_the_ed_rv_only_when_it_swallowed_the_rv():
    """When much of the ES LV blood pool lies on the ED RV blood pool (an RV read as LV, within
    the wall margin so the first check keeps it), the LV is refused there; a few LV pixels on
    the ED RV (the septum moving) are left alone."""
    import torch

    from cmrrisk.segmentation.infer import Segmenter

    seg = Segmenter.__new__(Segmenter)
    seg.label_values = np.array([0, L.LV_BLOOD_POOL, L.LV_MYOCARDIUM, L.RV_BLOOD_POOL], np.uint8)
    ed = _ring(shape=(2, 64, 64), c=(32, 20), r_in=7, r_out=11)   # ED LV wall: x in 9..31
    ed[:, 24:41, 32:38] = L.RV_BLOOD_POOL                          # ED RV beside the septum
    es_lv = _ring(shape=(2, 64, 64), c=(32, 20), r_in=4, r_out=9) == L.LV_BLOOD_POOL
    for n_cols, refused in ((6, True), (1, False)):
        on_rv = np.zeros_like(es_lv)
        on_rv[:, 28:37, 32:32 + n_cols] = True                     # 54 px (> 0.2) or 9 px per slice
        scores = torch.zeros((2, 4, 64, 64))
        scores[:, 3] = 1.0
        for m in (es_lv, on_rv):
            scores[:, 1][torch.from_numpy(m)] = 5.0
        share = on_rv.sum() / (on_rv.sum() + es_lv.sum())
        assert (share > seg.ES_RV_CONFUSION_FRACTION) == refused
        lab = seg.label_values[seg._apply_es_prior(scores, ed, (1.5, 1.5)).argmax(1).numpy()]
        assert (lab[es_lv] == L.LV_BLOOD_POOL).all()
        assert (lab[on_rv] == (L.RV_BLOOD_POOL if refused else L.LV_BLOOD_POOL)).all()


def test_segment_phases_anchors_the_es_phase_to_ed():
    """ED = largest LV, ES = smallest; ES is segmented again with the ED labels as prior; with
    known phases ED is segmented first and ES directly with the prior."""
    from cmrrisk.segmentation.infer import FramePrediction, Segmenter

    seg = Segmenter.__new__(Segmenter)
    radius = [10, 8, 4, 6]                      # LV radius per phase: ED 0, ES 2
    calls = []

    windows = []

    geometries = []

    def fake(frame, spacing_xy, post=True, prior=None, reverse=None, window_from=None, geometry=None):
        t = int(frame.flat[0])
        calls.append((t, None if prior is None else prior.copy()))
        windows.append(None if window_from is None else window_from.copy())
        geometries.append(geometry)
        return FramePrediction(_ring(shape=(2, 64, 64), r_in=radius[t], r_out=radius[t] + 3), bool(reverse),
                               "caller" if reverse is not None else "labels")

    seg.predict_frame_detailed = fake
    frames = np.stack([np.full((2, 64, 64), t, np.float32) for t in range(4)])
    out, ed, es = seg.segment_phases(frames, (1.0, 1.0, 8.0))
    assert (ed, es) == (0, 2)
    assert [t for t, _ in calls] == [0, 1, 2, 3, 2]
    assert calls[-1][1] is not None and np.array_equal(calls[-1][1], out[0])
    assert all(p is None for _, p in calls[:4])
    # every phase after the first is placed by the first phase's heart
    # (the ES phase segmented again is placed by its prior, the ED labels)
    assert windows[0] is None and all(np.array_equal(w, out[0]) for w in windows[1:4])
    assert windows[4] is None
    calls.clear()
    windows.clear()
    geometries.clear()
    from cmrrisk.image import Volume

    geometry = np.diag([1.0, 1.0, 8.0, 1.0])
    res = seg.segment_detailed(Volume(frames, geometry, "cine"), ed_es=(1, 3))
    out, ed, es = res.volume.array, res.ed_phase, res.es_phase
    assert (ed, es) == (1, 3)
    # the geometry reaches every phase; the first phase's order decision is the one reported
    assert len(geometries) == 4 and all(np.array_equal(g, geometry) for g in geometries)
    assert res.order_source == "labels" and not res.reversed
    assert [t for t, _ in calls] == [1, 0, 2, 3]
    assert np.array_equal(calls[3][1], out[1]) and calls[0][1] is None
    assert windows[0] is None and all(np.array_equal(w, out[1]) for w in windows[1:])
