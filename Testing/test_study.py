"""``cmrrisk.study.Study``: one subject's images, label maps, covariates and body surface area,
built from a manifest row or from Slicer nodes, and the one argument of the study-level calls."""

import inspect
import os

import numpy as np
import pytest

from cmrrisk.errors import CMRRiskError
from cmrrisk.image import Volume, write_image
from cmrrisk.study import Study, bsa_of_row

IMAGE_ARGUMENTS = {"ed", "es", "ed_seg", "es_seg", "lge", "lge_seg", "bsa_m2", "covariates"}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    from cmrrisk.manifest import read_manifest
    from cmrrisk.synthetic import generate_cohort

    path = generate_cohort(str(tmp_path_factory.mktemp("study")), n=2, seed=3, progress=False)
    return read_manifest(path)


def test_study_from_a_manifest_row(cohort):
    from cmrrisk.labelmap import read_labelmap

    row = cohort.rows[1]
    timings = {}
    s = Study.from_row(row, cohort.covariate_columns(), timings=timings)
    assert s.subject == row["subject"] and s.has_cine and s.has_lge and not s.phases
    assert s.ed.source == row["cine_ed"] and s.lge.source == row["lge"]
    assert np.array_equal(s.es_seg, read_labelmap(row["cine_es_seg"], s.es))
    assert np.array_equal(s.lge_seg, read_labelmap(row["lge_seg"], s.lge))
    assert s.covariates == {c: row[c] for c in ("age", "sex", "diabetes")}
    assert s.bsa_m2 is None and "read" in timings
    # without the reference label maps the core segments: None
    bare = Study.from_row({k: v for k, v in row.items() if not k.endswith("_seg")})
    assert bare.ed_seg is None and bare.es_seg is None and bare.lge_seg is None and bare.covariates == {}


def test_body_surface_area_of_a_row():
    assert bsa_of_row({"bsa_m2": "1.9", "height_cm": "180", "weight_kg": "80"}) == 1.9
    assert bsa_of_row({"height_cm": "180", "weight_kg": "80"}) == pytest.approx(np.sqrt(180 * 80 / 3600))
    assert bsa_of_row({"height_cm": "180"}) is None and bsa_of_row({"bsa_m2": "x"}) is None


def test_study_from_a_4d_cine_row_picks_ed_and_es_on_its_label_map(cohort, tmp_path):
    row = cohort.rows[0]
    s = Study.from_row(row)
    frames = [s.es, s.ed, s.es]  # ED (largest LV) is phase 1, ES phases 0 and 2
    cine = Volume(np.stack([f.array for f in frames]), s.ed.ijk_to_ras)
    seg = Volume(np.stack([s.es_seg, s.ed_seg, s.es_seg]).astype(np.uint8), s.ed.ijk_to_ras)
    write_image(cine, str(tmp_path / "cine.nii.gz"))
    write_image(seg, str(tmp_path / "cine_seg.nii.gz"))
    c = Study.from_row({"subject": "c", "cine": str(tmp_path / "cine.nii.gz"),
                        "cine_seg": str(tmp_path / "cine_seg.nii.gz")})
    assert c.phases["ed_phase"] == 1 and c.phases["es_phase"] in (0, 2)
    assert c.phases["segmentation"]["ed"] == "reference (phase 1)"
    assert np.array_equal(c.ed.array, s.ed.array) and np.array_equal(c.ed_seg, s.ed_seg)


def test_a_row_without_images_is_refused_naming_the_subject():
    with pytest.raises(CMRRiskError, match="'x'.*no image"):
        Study.from_row({"subject": "x", "cine_ed": "", "lge": ""})


def test_with_segmentations_copies():
    s = Study(ed=Volume(np.zeros((3, 4, 4)), np.eye(4)))
    lab = np.ones((3, 4, 4), np.uint8)
    t = s.with_segmentations(ed_seg=lab)
    assert t.ed_seg is lab and s.ed_seg is None and t.ed is s.ed
    with pytest.raises(TypeError, match="ed"):
        s.with_segmentations(ed=lab)


def test_image_features_of_a_study_equal_those_of_its_manifest_row(cohort):
    from cmrrisk.features.cohort import image_features, subject_features

    opts = {"radiomics": False, "deep": False}
    row = cohort.rows[0]
    by_row, _ = subject_features(row, opts)
    assert image_features(Study.from_row(row), opts) == by_row


@pytest.mark.parametrize("target", ["cmrrisk.features.cohort:image_features",
                                    "cmrrisk.predict.study:study_table",
                                    "cmrrisk.predict.study:predict_study",
                                    "cmrrisk.explain.core:explain_study",
                                    "cmrrisk.predict.images:subject_tensor"])
def test_study_level_calls_take_one_study(target):
    """No image, segmentation, covariate or BSA argument travels on its own any more."""
    import importlib

    mod, name = target.split(":")
    params = inspect.signature(getattr(importlib.import_module(mod), name)).parameters
    assert "study" in params and not IMAGE_ARGUMENTS & set(params), list(params)


def test_study_from_slicer_nodes(scene, cohort):
    from cmrrisk import labels as L
    from cmrrisk import mrml

    s = Study.from_row(cohort.rows[1])
    ed = mrml.volume_to_node(scene, s.ed, "patient ED")
    es = mrml.volume_to_node(scene, s.es, "patient ES")
    seg = mrml.labels_to_segmentation(scene, s.ed_seg, ed, "ED seg", structures=L.CINE_LABELS)
    got = mrml.study_from_nodes(ed, es, edSegmentationNode=seg, covariates={"age": 61}, bsa=1.8)
    assert got.subject == "patient ED" and got.lge is None and got.es_seg is None
    assert np.allclose(got.ed.array, s.ed.array) and np.allclose(got.ed.ijk_to_ras, s.ed.ijk_to_ras)
    assert np.array_equal(got.ed_seg, s.ed_seg)
    assert got.covariates == {"age": 61} and got.bsa_m2 == 1.8
    assert mrml.study_from_nodes(ed, es, subject="named").subject == "named"
    assert os.path.basename(mrml.study_from_nodes().subject) == "study"
