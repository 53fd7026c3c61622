"""The segmentation service: one loader (cached per model and device) and ED/ES segmentation
with ES anchored to ED, giving the same labels as the segmenter called directly."""

import numpy as np
import pytest

from cmrrisk import synthetic as S
from cmrrisk.errors import CMRRiskError
from cmrrisk.progress import Progress
from cmrrisk.segmentation import service
from cmrrisk.volume import Volume


@pytest.fixture(scope="module")
def subject():
    rng = np.random.default_rng(11)
    p = S.draw_subject(rng)
    r = S.render_subject(p, rng)
    m = S.affine(p)
    return {ph: Volume(np.asarray(r[f"{ph}_img"], np.float32), m, ph) for ph in ("ed", "es", "lge")}, r


def test_segmenter_is_loaded_once_per_model_and_device():
    assert service.segmenter("cine", "cpu") is service.segmenter("cine", "cpu")
    assert service.segmenter("cine", "cpu") is not service.segmenter("lge", "cpu")


def test_ed_es_equals_the_segmenter_called_directly_with_es_anchored_to_ed(subject):
    vols, _ = subject
    seg = service.segmenter("cine")
    ed_direct = np.asarray(seg.segment(vols["ed"]).array)
    es_direct = np.asarray(seg.segment(vols["es"], prior=ed_direct).array)
    es_unanchored = np.asarray(seg.segment(vols["es"]).array)
    r = service.segment_ed_es(vols["ed"], vols["es"])
    np.testing.assert_array_equal(r.ed, ed_direct)
    np.testing.assert_array_equal(r.es, es_direct)
    assert r.sources == {"ed": "model cine", "es": "model cine"}
    assert not r.frames["ed"].anchored and r.frames["es"].anchored
    assert r.frames["es"].order_source in ("geometry", "labels", "caller", "unchecked")
    # the anchor is used: on this subject it changes some ES voxels (else this test could not fail)
    assert (es_direct != es_unanchored).any()


def test_reference_labels_are_kept_and_es_is_anchored_to_the_reference_ed(subject):
    vols, truth = subject
    ref_ed = np.asarray(truth["ed"], np.uint8)
    seen = []
    r = service.segment_ed_es(vols["ed"], vols["es"], ed_labels=ref_ed,
                              progress=Progress(lambda done, total, message: seen.append((done, total, message))))
    assert seen == [(0, 1, "segmentation (ES)")]
    assert r.frames["ed"].source == "reference" and r.ed is not None
    np.testing.assert_array_equal(r.ed, ref_ed)
    want = service.segmenter("cine").segment(vols["es"], prior=ref_ed).array
    np.testing.assert_array_equal(r.es, want)


def test_lge_frame_and_a_prior_on_a_4d_cine_is_refused(subject):
    vols, _ = subject
    r = service.segment_frame(vols["lge"], "lge")
    assert r.source == "model lge" and r.labels.shape == vols["lge"].array.shape
    cine = Volume(np.stack([vols["ed"].array, vols["es"].array]), vols["ed"].ijk_to_ras, "cine")
    with pytest.raises(CMRRiskError, match="4D cine"):
        service.segment_frame(cine, prior=np.zeros(vols["ed"].array.shape, np.uint8))


def test_slice_order_check_stays_off_for_a_model_without_a_slice_order(tmp_path):
    """A model whose config gives no training slice order cannot judge a stack's order: asking
    for the check (the default) must not turn it on, as Segmenter.load leaves it off."""
    import json

    from cmrrisk import modeldir

    cfg, state = modeldir.load(modeldir.resolve("cine"))
    cfg = json.loads(json.dumps(cfg))
    cfg["preprocessing"].pop("slice_order")
    cfg["task"] = "custom"
    path = str(tmp_path / "no_order")
    modeldir.save(path, state, cfg)
    assert service.segmenter(path).check_slice_order is False
    assert service.segmenter(path, check_slice_order=False).check_slice_order is False
    assert service.segmenter("cine").check_slice_order is True
