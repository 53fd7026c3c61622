"""The one progress-and-cancel contract (``cmrrisk.progress.Progress``): its adapters, and every
long step of the core taking it, reporting through it and stopping on its cancel."""

import importlib
import inspect
import io
import json
import os

import numpy as np
import pytest

from cmrrisk import progress as P
from cmrrisk.errors import Cancelled
from cmrrisk.progress import Progress, as_progress, from_callbacks

#: the long steps of the core: each takes ``progress`` (a Progress) and no separate ``cancel``
LONG_STEPS = [
    "cmrrisk.features.cohort:image_features",
    "cmrrisk.features.cohort:compute_cohort",
    "cmrrisk.features.cohort:write_features",
    "cmrrisk.predict.study:study_table",
    "cmrrisk.predict.study:predict_study",
    "cmrrisk.predict.study:train_model",
    "cmrrisk.predict.validation:cross_validate",
    "cmrrisk.explain.core:explain_study",
    "cmrrisk.qc:cohort_qc",
    "cmrrisk.report.build:write_report",
    "cmrrisk.segmentation.pipeline:segment_inputs",
    "cmrrisk.segmentation.service:segment_ed_es",
    "cmrrisk.segmentation.train:train",
    "cmrrisk.segmentation.evaluate:evaluate_acdc",
    "cmrrisk.synthetic.cohort:generate_cohort",
    "cmrrisk.parallel:run_subjects",
]


class Recorder:
    """A ``report(done, total, message)`` that keeps every call, and a ``cancel()`` that says
    yes once ``stop_after`` reports were made."""

    def __init__(self, stop_after=None):
        self.calls, self.stop_after = [], stop_after

    def __call__(self, done, total, message):
        self.calls.append((done, total, message))

    def cancel(self):
        return self.stop_after is not None and len(self.calls) >= self.stop_after

    def progress(self):
        return Progress(self, self.cancel)


@pytest.mark.parametrize("target", LONG_STEPS)
def test_every_long_step_takes_the_one_contract(target):
    mod, name = target.split(":")
    fn = getattr(importlib.import_module(mod), name)
    params = inspect.signature(fn).parameters
    assert "progress" in params and "cancel" not in params, list(params)


def test_segmenter_calls_take_the_one_contract():
    from cmrrisk.segmentation.infer import Segmenter

    for name in ("segment", "segment_detailed", "segment_phases"):
        params = inspect.signature(getattr(Segmenter, name)).parameters
        assert "progress" in params and "cancel" not in params, name


# ------------------------------------------------------------------------ the object

def test_update_reports_and_a_cancel_stops_before_the_report():
    rec = Recorder(stop_after=2)
    p = rec.progress()
    p.update(0, 3, "a")
    p(1, 3, "b")
    with pytest.raises(Cancelled, match="before c"):
        p.update(2, 3, "c")
    assert rec.calls == [(0, 3, "a"), (1, 3, "b")]
    p.report(3, 3, "written")  # the last report, after the work: no cancel asked
    assert rec.calls[-1] == (3, 3, "written")
    with pytest.raises(Cancelled):
        p.check()


def test_part_maps_a_sub_step_into_its_range_with_the_same_cancel():
    rec = Recorder()
    p = rec.progress()
    sub = p.part(0.2, 0.6)
    sub.update(1, 4, "x")
    sub.fraction(1.0, "y")
    sub.say("z")
    assert rec.calls == [(pytest.approx(0.3), 1.0, "x"), (pytest.approx(0.6), 1.0, "y"), (None, None, "z")]
    flag = []
    stop = Progress(None, lambda: bool(flag)).part(0.0, 0.5)
    stop.update(0, 1, "fine")
    flag.append(1)
    with pytest.raises(Cancelled):
        stop.update(1, 2, "next")


def test_adapters():
    seen = []
    Progress.from_fractions(lambda f, m: seen.append((f, m))).update(1, 4, "quarter")
    Progress.from_fractions(lambda f, m: seen.append((f, m))).say("unknown")
    Progress.from_counts(lambda d, n: seen.append((d, n))).update(2, 5, "ignored")
    Progress.printing(seen.append).update(1, 2, "said")
    assert seen == [(0.25, "quarter"), (None, "unknown"), (2, 5), "said"]
    # what a Slicer Logic call receives: a Progress is kept, callbacks are adapted
    p = Progress()
    assert from_callbacks(p) is p
    assert from_callbacks(lambda d, n: seen.append((d, n)), shape="counts")._report is not None
    with pytest.raises(Cancelled):
        from_callbacks(lambda f, m: None, lambda: True).update(0, 1, "x")
    with pytest.raises(ValueError, match="shape"):
        from_callbacks(lambda: None, shape="other")
    # as_progress: None and False are silent, a callable is the report, a Progress is kept
    assert as_progress(None)._report is None and as_progress(False)._report is None
    assert as_progress(p) is p
    with pytest.raises(Cancelled):
        as_progress(p, cancel=lambda: True).check()
    with pytest.raises(TypeError, match="Progress"):
        as_progress(3)


def test_command_line_adapters_follow_the_mode():
    out = io.StringIO()
    try:
        P.set_mode("json", out)
        P.cli_progress("features", "subject").update(1, 4, "s1")
        P.set_mode("none")
        P.cli_progress("features", "subject").update(2, 4, "s2")  # nothing
    finally:
        P.set_mode("bar")
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert lines == [{"event": "progress", "fraction": 0.25, "message": "s1"}]
    err = io.StringIO()
    bar = P._Bar("segment", "frame", True)
    bar.bar = P.LineProgress(total=4, desc="segment", unit="frame", file=err)
    with Progress(bar) as p:
        p.update(3, 4, "x")
    assert "segment: 3/4 frame" in err.getvalue()


# ------------------------------------------------------------------------ the long steps

def _study():
    from cmrrisk.image import Volume
    from cmrrisk.study import Study
    from test_features import AFFINE, phantom

    (ed, ed_lab), (es, es_lab) = phantom(13.0, noise=3.0), phantom(9.0, noise=3.0, seed=1)
    return Study(ed=Volume(ed, AFFINE), es=Volume(es, AFFINE), ed_seg=ed_lab, es_seg=es_lab)


def test_image_features_report_each_step_and_stop_on_cancel():
    from cmrrisk.features.cohort import image_features

    opts = {"radiomics": False, "deep": False}
    rec = Recorder()
    image_features(_study(), opts, progress=rec.progress())
    assert [c[2] for c in rec.calls] == ["clinical indices (cine)", "image features done"]
    with pytest.raises(Cancelled, match="clinical indices"):
        image_features(_study(), opts, progress=Progress(None, lambda: True))


def test_segmentation_reports_each_frame_and_stops_on_cancel(segmenter):
    from cmrrisk.image import Volume

    study = _study()
    cine = Volume(np.stack([study.ed.array, study.es.array]), study.ed.ijk_to_ras)
    rec = Recorder()
    res = segmenter.segment_detailed(cine, rec.progress())
    assert [c[:2] for c in rec.calls] == [(0, 2), (1, 2), (2, 2)] and res.ed_phase == 0
    with pytest.raises(Cancelled):
        segmenter.segment(study.ed, Progress(None, lambda: True))


def test_cross_validation_reports_folds_and_stops_before_the_next(tmp_path):
    from cmrrisk.predict.tabular import load_table
    from cmrrisk.predict.validation import cross_validate
    from test_predict import _survival_manifest

    table = load_table(str(_survival_manifest(tmp_path / "m.csv", 90, 1)), "survival", image_features=False)
    rec = Recorder()
    cross_validate(table, "survival", "cox", k=3, progress=rec.progress())
    assert [c[:2] for c in rec.calls] == [(0, 3), (1, 3), (2, 3), (3, 3)]
    with pytest.raises(Cancelled, match="fold 2/3"):
        cross_validate(table, "survival", "cox", k=3, progress=Recorder(stop_after=1).progress())


@pytest.fixture(scope="module")
def small_cohort(tmp_path_factory):
    from cmrrisk.synthetic import generate_cohort

    return generate_cohort(str(tmp_path_factory.mktemp("contract") / "c"), n=3, seed=2, progress=False)


def test_cohort_steps_report_per_subject_and_stop_on_cancel(small_cohort, tmp_path):
    from cmrrisk.features.cohort import compute_cohort
    from cmrrisk.qc import cohort_qc

    rec = Recorder()
    records, _ = compute_cohort(small_cohort, None, 1, {"radiomics": False, "deep": False}, progress=rec.progress())
    assert len(records) == 3 and [c[:2] for c in rec.calls] == [(0, 3), (1, 3), (2, 3), (3, 3)]
    with pytest.raises(Cancelled):
        compute_cohort(small_cohort, None, 1, {"radiomics": False, "deep": False},
                       progress=Recorder(stop_after=2).progress())
    with pytest.raises(Cancelled):
        cohort_qc(small_cohort, str(tmp_path / "qc"), segment=False, workers=1,
                  progress=Recorder(stop_after=1).progress())
    assert not os.path.exists(tmp_path / "qc" / "qc.json")


def test_synthetic_cohort_stops_on_cancel_leaving_nothing(tmp_path):
    from cmrrisk.synthetic import generate_cohort

    rec = Recorder(stop_after=1)
    with pytest.raises(Cancelled):
        generate_cohort(str(tmp_path / "c"), n=3, seed=1, progress=rec.progress())
    assert rec.calls == [(0, 3, "subject 1/3")]
    assert not os.path.exists(tmp_path / "c") or not os.listdir(tmp_path / "c")
    assert [p for p in os.listdir(tmp_path) if "partial" in p] == []


def test_segment_inputs_report_frames_and_stop_on_cancel(small_cohort, tmp_path):
    from cmrrisk.manifest import read_manifest
    from cmrrisk.segmentation.pipeline import segment_inputs

    rows = read_manifest(small_cohort).rows[:2]
    inputs = [rows[0]["cine_ed"], rows[1]["cine_es"]]
    rec = Recorder()
    segment_inputs(inputs[:1], str(tmp_path / "one"), progress=rec.progress())
    assert [c[:2] for c in rec.calls] == [(0, 1), (0, 1), (1, 1)]
    with pytest.raises(Cancelled):
        segment_inputs(inputs, str(tmp_path / "two"), progress=Recorder(stop_after=1).progress())
    assert not os.listdir(tmp_path / "two")
