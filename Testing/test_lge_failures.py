"""Per-case failure listing of an LGE evaluation: cases whose scar Dice is below 0.30 or whose
scar-burden error exceeds 5 points are listed in the JSON and printed."""

import json

import numpy as np

from cmrrisk import labels as L
from cmrrisk.cli import main
from cmrrisk.image import Volume, write_image
from cmrrisk.segmentation.evaluate import lge_failure

AFFINE = np.diag([-1.5, -1.5, 8.0, 1.0])


def _lge(scar_cols):
    z, y, x = np.mgrid[0:6, 0:48, 0:48]
    r = np.hypot(y - 24, x - 22)
    lab = np.zeros((6, 48, 48), np.uint8)
    lab[r < 12] = L.LV_MYOCARDIUM
    lab[r < 8] = L.LV_BLOOD_POOL
    wall = lab == L.LV_MYOCARDIUM
    lab[wall & (x >= scar_cols[0]) & (x < scar_cols[1])] = L.SCAR
    return lab


def test_failure_rule():
    assert lge_failure("a", 0.8, 10.0, 11.0) is None
    low = lge_failure("a", 0.29, 10.0, 11.0)
    assert low and len(low["reasons"]) == 1 and "Dice" in low["reasons"][0]
    far = lge_failure("b", 0.9, 16.5, 11.0)
    assert far and far["burden_error_pp"] == 5.5 and "burden" in far["reasons"][0]
    assert lge_failure("c", None, 3.0, 0.0) is None  # no reference scar: Dice not scored, error 3 points
    assert lge_failure("c", None, 6.0, 0.0)["reasons"][0].startswith("scar burden")
    assert len(lge_failure("d", 0.1, 30.0, 10.0)["reasons"]) == 2


def test_evaluate_segmentation_lists_unsafe_cases(tmp_path, capsys):
    pred_dir, ref_dir = tmp_path / "pred", tmp_path / "ref"
    cases = {"good": (_lge((10, 20)), _lge((10, 19))),  # nearly the same scar
             "missed": (_lge((10, 20)), _lge((33, 35))),  # scar elsewhere: Dice 0
             "overcalled": (_lge((10, 20)), _lge((10, 30)))}  # overlapping, burden far too high
    for name, (ref, pred) in cases.items():
        write_image(Volume(ref, AFFINE), str(ref_dir / f"{name}_seg.nii.gz"))
        write_image(Volume(pred, AFFINE), str(pred_dir / f"{name}_seg.nii.gz"))
    js = tmp_path / "e.json"
    assert main(["evaluate-segmentation", "--pred", str(pred_dir), "--ref", str(ref_dir), "--json", str(js)]) == 0
    res = json.loads(js.read_text())
    failed = {f["name"]: f for f in res["lge_failures"]}
    assert set(failed) == {"missed", "overcalled"}
    assert failed["missed"]["scar_dice"] == 0.0
    over = next(f for f in res["frames"] if f["name"] == "overcalled")["metrics"]
    assert over["Scar + MVO"]["dice"] >= 0.30  # listed for its burden, not its overlap
    assert failed["overcalled"]["burden_error_pp"] > 5
    assert res["summary"]["lge_failures"]["n_failed"] == 2
    out = capsys.readouterr().out
    listing = out.split("unsafe")[1]
    assert "missed" in listing and "overcalled" in listing and "good" not in listing
