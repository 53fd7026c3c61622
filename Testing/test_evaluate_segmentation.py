"""cmrrisk evaluate-segmentation on what cmrrisk segment writes besides 3D cine frames: LGE label
maps (scar, MVO, whole myocardium, scar burden) and 4D cines (phase by phase)."""

import json

import numpy as np
import pytest

from cmrrisk import labels as L
from cmrrisk.cli import main
from cmrrisk.image import Volume, write_image

AFFINE = np.diag([-1.5, -1.5, 8.0, 1.0])


def _heart(shape=(6, 48, 48), r_lv=8.0, wall=4.0, rv=True):
    z, y, x = np.mgrid[0:shape[0], 0:shape[1], 0:shape[2]]
    r = np.hypot(y - 24, x - 22)
    lab = np.zeros(shape, np.uint8)
    lab[r < r_lv + wall] = L.LV_MYOCARDIUM
    lab[r < r_lv] = L.LV_BLOOD_POOL
    if rv:
        lab[(np.hypot(y - 24, x - 40) < 7) & (lab == 0)] = L.RV_BLOOD_POOL
    return lab


def _lge(scar_cols, mvo=False):
    lab = _heart(rv=False)
    wall = lab == L.LV_MYOCARDIUM
    sc = np.zeros_like(wall)
    sc[:, :, scar_cols[0]:scar_cols[1]] = True
    lab[wall & sc] = L.SCAR
    if mvo:
        lab[wall & sc & (np.arange(48)[None, :, None] < 24)] = L.MVO
    return lab


def test_lge_frames_get_scar_mvo_myocardium_and_burden(tmp_path, capsys):
    pred_dir, ref_dir = tmp_path / "pred", tmp_path / "ref"
    ref = _lge((8, 20), mvo=True)
    pred = _lge((8, 16))  # scar a little narrower, no MVO
    write_image(Volume(ref, AFFINE), str(ref_dir / "case1_seg.nii.gz"))
    write_image(Volume(pred, AFFINE), str(pred_dir / "case1_seg.nii.gz"))
    # an LGE case without scar in either: whole myocardium and LV only (no free Dice 1.0 for scar)
    healthy = _heart(rv=False)
    write_image(Volume(healthy, AFFINE), str(ref_dir / "case2_seg.nii.gz"))
    write_image(Volume(healthy, AFFINE), str(pred_dir / "case2_seg.nii.gz"))
    js = tmp_path / "e.json"
    assert main(["evaluate-segmentation", "--pred", str(pred_dir), "--ref", str(ref_dir), "--json", str(js)]) == 0
    res = json.loads(js.read_text())
    f1 = next(f for f in res["frames"] if f["name"] == "case1")
    assert f1["kind"] == "lge"
    m = f1["metrics"]
    myo_p, myo_r = np.isin(pred, L.MYOCARDIAL), np.isin(ref, L.MYOCARDIAL)
    assert m["Myocardium (all)"]["dice"] == pytest.approx(1.0)  # same wall, other labels inside it
    sp, sr = np.isin(pred, L.SCAR_WITH_MVO), np.isin(ref, L.SCAR_WITH_MVO)
    assert m["Scar + MVO"]["dice"] == pytest.approx(2 * (sp & sr).sum() / (sp.sum() + sr.sum()))
    assert 0.5 < m["Scar + MVO"]["dice"] < 1.0
    assert m["Microvascular obstruction"]["dice"] == 0.0  # reference has MVO, prediction none
    assert m["scar_burden_pct"]["ref"] == pytest.approx(100 * sr.sum() / myo_r.sum())
    assert m["scar_burden_pct"]["pred"] == pytest.approx(100 * sp.sum() / myo_p.sum())
    f2 = next(f for f in res["frames"] if f["name"] == "case2")
    assert f2["kind"] == "cine"  # no scar labels anywhere: compared as a cine frame
    s = res["summary"]
    assert s["LGE Scar + MVO"]["n_frames"] == 1 and s["LGE Microvascular obstruction"]["n_frames"] == 1
    assert s["scar_burden_pct_error"]["median_abs"] == pytest.approx(
        abs(m["scar_burden_pct"]["pred"] - m["scar_burden_pct"]["ref"]))
    out = capsys.readouterr().out
    assert "case1" in out and "Scar" in out and "burden" in out


def test_4d_cine_is_compared_phase_by_phase(tmp_path):
    pred_dir, ref_dir = tmp_path / "pred", tmp_path / "ref"
    ed, es = _heart(r_lv=9.0), _heart(r_lv=6.0)
    ref = np.zeros((5,) + ed.shape, np.uint8)
    ref[0], ref[3] = ed, es  # only ED and ES are labelled, as in ACDC's 4D references
    pred = np.stack([ed, ed, ed, _heart(r_lv=6.5), es])
    write_image(Volume(ref, AFFINE), str(ref_dir / "cine_seg.nii.gz"))
    write_image(Volume(pred, AFFINE), str(pred_dir / "cine_seg.nii.gz"))
    js = tmp_path / "e.json"
    assert main(["evaluate-segmentation", "--pred", str(pred_dir), "--ref", str(ref_dir), "--json", str(js)]) == 0
    res = json.loads(js.read_text())
    assert [f["name"] for f in res["frames"]] == ["cine_phase00", "cine_phase03"]
    assert [f["phase"] for f in res["frames"]] == [0, 3]
    assert res["frames"][0]["metrics"]["LV blood pool"]["dice"] == 1.0
    assert res["frames"][1]["metrics"]["LV blood pool"]["dice"] < 1.0
    (pair,) = res["subjects"]
    assert (pair["ed"], pair["es"]) == ("cine_phase00", "cine_phase03")
    assert pair["indices_ref"]["lv_ef_pct"] > pair["indices_pred"]["lv_ef_pct"] > 0


def test_4d_prediction_with_an_empty_reference_is_refused(tmp_path, capsys):
    pred_dir, ref_dir = tmp_path / "pred", tmp_path / "ref"
    write_image(Volume(np.stack([_heart(), _heart()]), AFFINE), str(pred_dir / "c_seg.nii.gz"))
    write_image(Volume(np.zeros((2, 6, 48, 48), np.uint8), AFFINE), str(ref_dir / "c_seg.nii.gz"))
    assert main(["evaluate-segmentation", "--pred", str(pred_dir), "--ref", str(ref_dir)]) != 0
    assert "no labels in any phase" in capsys.readouterr().err
