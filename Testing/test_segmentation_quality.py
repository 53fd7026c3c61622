"""The bundled cine model on real ACDC frames of the development split's validation subjects
(bench/devmodels.py): held out from the model trained with the split; seen in training by a
bundled model trained on all subjects.

Thresholds sit well below the validation figures but far above what a broken model (wrong
labels, wrong geometry, untrained weights) reaches; accuracy itself is measured on the
development model by bench/eval_acdc_validation.py."""

import numpy as np
import pytest

from cmrrisk import labels as L
from cmrrisk.image import read_image
from cmrrisk.metrics import clinical_indices, dice

from conftest import acdc_frame, needs_acdc, validation_subjects

MIN_DICE = {L.LV_BLOOD_POOL: 0.85, L.LV_MYOCARDIUM: 0.75, L.RV_BLOOD_POOL: 0.75}


@needs_acdc
def test_bundled_model_on_held_out_acdc_frames(segmenter):
    subjects = validation_subjects()[::5][:4]  # one per ACDC group band, 4 subjects, ED and ES
    assert len(subjects) >= 3
    scores = {lab: [] for lab in L.CINE_LABELS}
    ef_err = []
    for subj in subjects:
        segs = {}
        for phase in ("ed", "es"):
            img = read_image(acdc_frame(subj, phase))
            ref = L.map_labels(read_image(acdc_frame(subj, phase, gt=True)).array, L.ACDC_TO_PROJECT)
            pred = segmenter.segment(img).array
            assert pred.shape == ref.shape
            for lab in L.CINE_LABELS:
                scores[lab].append(dice(pred == lab, ref == lab))
            segs[phase] = (pred, ref, img.spacing)
        p = clinical_indices(segs["ed"][0], segs["es"][0], segs["ed"][2])
        r = clinical_indices(segs["ed"][1], segs["es"][1], segs["ed"][2])
        ef_err.append(abs(p["lv_ef_pct"] - r["lv_ef_pct"]))
    means = {L.SEGMENTS[k][0]: float(np.mean(v)) for k, v in scores.items()}
    for lab, thr in MIN_DICE.items():
        assert means[L.SEGMENTS[lab][0]] >= thr, f"mean Dice {means} below {thr}"
    assert float(np.mean(ef_err)) <= 10.0, f"LVEF errors {ef_err}"


def test_slice_order_score_follows_the_lv_area():
    from cmrrisk.segmentation.infer import slice_order_score

    z, y, x = np.indices((6, 40, 40))
    r = np.hypot(y - 20, x - 20)
    radius = np.array([14, 13, 11, 9, 6, 3])[:, None, None]  # base ... apex
    lab = np.where(r < radius, L.LV_BLOOD_POOL, 0).astype(np.uint8)
    assert slice_order_score(lab, "base_first") == pytest.approx(1.0)
    assert slice_order_score(lab[::-1], "base_first") == pytest.approx(-1.0)
    assert slice_order_score(lab[::-1], "apex_first") == pytest.approx(1.0)
    assert slice_order_score(lab[:2], "base_first") == 0.0  # too few slices to judge


@needs_acdc
def test_a_stack_given_in_the_other_order_is_segmented_in_the_training_order(segmenter):
    """An apex-first cine frame (the model was trained base first) is detected, segmented
    reversed and put back: exactly the labels of the base-first frame, reversed. Forcing the
    given order instead gives other, worse labels. An ES frame follows its ED prior."""
    subj = validation_subjects()[3]
    ed = read_image(acdc_frame(subj, "ed"))
    es = read_image(acdc_frame(subj, "es"))
    ref = L.map_labels(read_image(acdc_frame(subj, "ed", gt=True)).array, L.ACDC_TO_PROJECT)[::-1]
    sp = ed.spacing[:2]
    got = segmenter.predict_frame_detailed(ed.array, sp)
    given = got.labels
    assert not got.reversed
    rev_in = np.ascontiguousarray(ed.array[::-1])
    got = segmenter.predict_frame_detailed(rev_in, sp)
    auto = got.labels
    assert got.reversed
    assert np.array_equal(auto, given[::-1])
    got = segmenter.predict_frame_detailed(rev_in, sp, reverse=False)
    forced = got.labels
    assert not got.reversed and not np.array_equal(forced, auto)
    d_auto = np.mean([dice(auto == k, ref == k) for k in L.CINE_LABELS])
    d_forced = np.mean([dice(forced == k, ref == k) for k in L.CINE_LABELS])
    assert d_auto > d_forced
    es_given = segmenter.predict_frame(es.array, sp, prior=given)
    got = segmenter.predict_frame_detailed(np.ascontiguousarray(es.array[::-1]), sp, prior=auto)
    assert got.reversed and np.array_equal(got.labels, es_given[::-1])
    # a 4D cine apex first: every phase reversed for the network, ES anchored to ED
    from cmrrisk.image import Volume

    frames = np.stack([ed.array, es.array])[:, ::-1]
    vol4 = Volume(np.ascontiguousarray(frames), ed.ijk_to_ras, "cine")
    res = segmenter.segment_detailed(vol4)
    out = res.volume.array
    assert res.reversed
    assert np.array_equal(out[0], given[::-1]) and np.array_equal(out[1], es_given[::-1])


@needs_acdc
def test_segment_cli_reports_the_slice_order(tmp_path):
    import json

    from cmrrisk.cli import main
    from cmrrisk.image import write_image

    from cmrrisk.segmentation.pipeline import output_name

    base_first = acdc_frame(validation_subjects()[0], "ed")
    img = read_image(base_first)
    apex_first = tmp_path / "apex_first.nii.gz"
    write_image(img.with_array(np.ascontiguousarray(img.array[::-1])), str(apex_first))
    for extra, expect in (([], "reversed for the model (stack given apex first; the model was trained base first; "
                                "order judged from the LV area along the stack)"),
                          (["--keep-slice-order"], "as given (not checked)")):
        out = tmp_path / ("keep" if extra else "auto")
        assert main(["segment", str(apex_first), base_first, "--out", str(out),
                     "--quiet", *extra]) == 0
        rep = json.loads((out / "segment.json").read_text())
        assert rep["inputs"][0]["slice_order"] == expect
        assert rep["inputs"][1]["slice_order"] == ("as given (not checked)" if extra else
                                                   "as given (base first, as in training; order judged "
                                                   "from the LV area along the stack)")
        assert rep["model"]["slice_order_trained"] == "base_first"
        assert rep["model"]["slice_order_checked"] is not bool(extra)
    auto = read_image(str(tmp_path / "auto" / output_name(str(apex_first)))).array
    given = read_image(str(tmp_path / "auto" / output_name(base_first))).array
    assert np.array_equal(auto, given[::-1])
