"""The bundled cine model on real ACDC frames it never saw in training.

Thresholds sit well below the model card's validation figures but far above what a broken
model (wrong labels, wrong geometry, untrained weights) reaches."""

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
