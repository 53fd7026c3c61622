"""QC flags of an implausible scar prediction: scar away from the myocardium, MVO without
surrounding scar, scar burden above 80 %."""

import numpy as np

from cmrrisk import labels as L
from cmrrisk.image import Volume
from cmrrisk.qc import scar_plausibility_checks, volume_qc


def _wall():
    z, y, x = np.mgrid[0:6, 0:48, 0:48]
    r = np.hypot(y - 24, x - 24)
    lab = np.zeros((6, 48, 48), np.uint8)
    lab[r < 12] = L.LV_MYOCARDIUM
    lab[r < 8] = L.LV_BLOOD_POOL
    return lab, x, r


def _codes(seg):
    return {c["code"] for c in scar_plausibility_checks(seg, "lge", "model lge")}


def test_plausible_infarct_is_not_flagged():
    lab, x, r = _wall()
    wall = lab == L.LV_MYOCARDIUM
    lab[wall & (x < 20)] = L.SCAR
    lab[wall & (x < 20) & (r < 10)] = L.MVO  # dark core inside the scar
    assert _codes(lab) == set()


def test_scar_away_from_the_wall_is_flagged():
    lab, x, r = _wall()
    lab[wall_scar := (lab == L.LV_MYOCARDIUM) & (x < 15)] = L.SCAR
    lab[:, 2:12, 40:46] = L.SCAR  # a blob beside the heart, larger than the wall scar
    assert wall_scar.sum() < (lab[:, 2:12, 40:46] == L.SCAR).sum()
    assert "scar_outside_myocardium" in _codes(lab)
    lab[:, 2:12, 40:46] = 0
    assert "scar_outside_myocardium" not in _codes(lab)


def test_mvo_without_scar_is_flagged():
    lab, x, r = _wall()
    lab[(lab == L.LV_MYOCARDIUM) & (x < 18)] = L.MVO  # MVO alone, no scar around it
    assert "mvo_without_scar" in _codes(lab)
    lab[(lab == L.LV_MYOCARDIUM) & (x >= 18) & (x < 22)] = L.SCAR  # scar beside it
    assert "mvo_without_scar" not in _codes(lab)


def test_burden_above_80_percent_is_flagged():
    lab, x, r = _wall()
    wall = lab == L.LV_MYOCARDIUM
    lab[wall & (x < 33)] = L.SCAR
    burden = 100 * (lab == L.SCAR).sum() / np.isin(lab, L.MYOCARDIAL).sum()
    assert burden > 80
    checks = scar_plausibility_checks(lab)
    assert [c["code"] for c in checks] == ["scar_burden_implausible"]
    assert checks[0]["severity"] == "flag" and f"{burden:.0f} %" in checks[0]["message"]
    lab[wall & (x >= 26)] = L.LV_MYOCARDIUM
    assert _codes(lab) == set()


def test_volume_qc_of_an_lge_segmentation_carries_the_scar_flags():
    lab, x, r = _wall()
    lab[(lab == L.LV_MYOCARDIUM) & (x < 18)] = L.MVO
    img = np.random.default_rng(0).normal(100, 10, lab.shape).astype(np.float32)
    res = volume_qc(Volume(img, np.diag([1.5, 1.5, 8.0, 1.0])), lab, role="lge")
    assert "mvo_without_scar" in {c["code"] for c in res["checks"]}
    cine = volume_qc(Volume(img, np.diag([1.5, 1.5, 8.0, 1.0])), lab, role="cine")
    assert "mvo_without_scar" not in {c["code"] for c in cine["checks"]}
