"""`cmrrisk average-segmentation`: the weighted average of a model and its fine-tune."""

import json
import os

import pytest
import torch

from cmrrisk import modeldir
from cmrrisk.cli import main
from cmrrisk.errors import CMRRiskError
from cmrrisk.segmentation.train import average_models

import devmodels


@pytest.fixture(scope="module")
def dev(tmp_path_factory) -> str:
    """A model trained with a validation split (the bundled cine model has none since it was
    trained on all subjects): the averages below start from it. The development model when its
    weights are present; otherwise the bundled weights under the development model's config (the
    averaging only needs a model with a split, not these particular weights)."""
    if devmodels.missing_weights("cine") is None:
        return devmodels.development_model("cine")
    _, state = modeldir.load(modeldir.resolve("cine"))
    cfg = modeldir.read_json(os.path.join(devmodels.development_config("cine"), modeldir.CONFIG))
    path = str(tmp_path_factory.mktemp("dev") / "cine_split")
    modeldir.save(path, state, cfg)
    return path


def _shifted_copy(src: str, dst: str, shift: float = 1.0, **config_changes) -> str:
    """A copy of model ``src`` whose floating-point tensors are moved by ``shift``."""
    cfg, state = modeldir.load(modeldir.resolve(src))
    state = {k: (v + shift if v.is_floating_point() else v + 7) for k, v in state.items()}
    cfg = json.loads(json.dumps(cfg))
    for key, value in config_changes.items():
        section, _, field = key.partition("__")
        if field:
            cfg[section][field] = value
        else:
            cfg[section] = value
    modeldir.save(dst, state, cfg)
    return dst


def test_average_is_the_weighted_mean_and_records_both_models(tmp_path, dev):
    other = _shifted_copy(dev, str(tmp_path / "b"), shift=1.0)
    out = str(tmp_path / "avg")
    assert average_models(dev, other, out, weight=0.25) == {}
    cfg_a, state_a = modeldir.load(modeldir.resolve(dev))
    cfg, state = modeldir.load(out)  # checksums verified
    for k, v in state.items():
        if v.is_floating_point():
            assert torch.allclose(v, state_a[k] + 0.25, atol=1e-5), k
        else:  # integer counters come from the second model
            assert torch.equal(v, state_a[k] + 7), k
    first, second = cfg["training"]["averaged_from"]
    assert first["weight"] == 0.75 and second["weight"] == 0.25
    assert first["weights_sha256"] == modeldir.sha256(
        os.path.join(modeldir.resolve(dev), modeldir.WEIGHTS))
    assert second["weights_sha256"] == modeldir.sha256(os.path.join(other, modeldir.WEIGHTS))
    assert cfg["training"]["val_subjects"] == cfg_a["training"]["val_subjects"]
    card = open(os.path.join(out, "MODEL_CARD.md")).read()
    assert "cmrrisk average-segmentation A_DIR B_DIR --weight 0.25" in card
    assert "Not measured" in card


def test_average_with_itself_changes_nothing_and_segments_alike(tmp_path, dev):
    import numpy as np

    from cmrrisk.segmentation.infer import Segmenter

    out = str(tmp_path / "same")
    assert main(["average-segmentation", dev, dev, "--out", out]) == 0
    a = Segmenter.load(dev)
    b = Segmenter.load(out)
    img = np.random.default_rng(0).normal(100, 30, (4, 96, 96)).astype(np.float32)
    assert np.array_equal(a.predict_frame(img, (1.5, 1.5)), b.predict_frame(img, (1.5, 1.5)))


@pytest.mark.parametrize("changes, words", [
    ({"training__val_subjects": ["patient001"]}, "val subjects differ"),
    ({"task": "lge"}, "task differs"),
    ({"preprocessing__target_spacing": 1.0}, "pre-processing differs"),
])
def test_models_that_cannot_be_averaged_are_refused(tmp_path, changes, words, dev):
    other = _shifted_copy(dev, str(tmp_path / "b"), **changes)
    out = tmp_path / "avg"
    with pytest.raises(CMRRiskError, match=words):
        average_models(dev, other, str(out))
    assert not out.exists()


def test_weight_outside_zero_one_is_refused(tmp_path, dev):
    with pytest.raises(CMRRiskError, match="between 0 and 1"):
        average_models(dev, dev, str(tmp_path / "avg"), weight=1.5)
    assert main(["average-segmentation", "cine", "lge", "--out", str(tmp_path / "x")]) != 0


def _all_finetune_of(src: str, dst: str, **extra) -> str:
    """A copy of ``src`` shaped like its `--init --all` fine-tune: every subject of ``src``'s
    split trained on, none held out, initialised from ``src``'s weights."""
    cfg, _ = modeldir.load(modeldir.resolve(src))
    tr = cfg["training"]
    init = {"model": "cine", "weights_sha256": modeldir.sha256(os.path.join(modeldir.resolve(src), modeldir.WEIGHTS)),
            "iterations_before": 1, "train_subjects_before": tr["train_subjects"]}
    changes = {"training__train_subjects": sorted(tr["train_subjects"] + tr["val_subjects"]),
               "training__val_subjects": [], "training__initialised_from": init}
    changes.update(extra)
    return _shifted_copy(src, dst, shift=1.0, **changes)


def test_a_model_and_its_all_subjects_fine_tune_average_without_validation(tmp_path, dev):
    cfg_a, _ = modeldir.load(modeldir.resolve(dev))
    other = _all_finetune_of(dev, str(tmp_path / "b"))
    out = str(tmp_path / "avg")
    assert average_models(dev, other, out, weight=0.5,
                          data="/nonexistent: no validation subjects to read") == {}
    cfg, _ = modeldir.load(out)
    assert cfg["training"]["val_subjects"] == []
    assert sorted(cfg["training"]["train_subjects"]) == sorted(
        cfg_a["training"]["train_subjects"] + cfg_a["training"]["val_subjects"])
    first = cfg["training"]["averaged_from"][0]
    assert first["val_subjects"] == cfg_a["training"]["val_subjects"]
    card = open(os.path.join(out, "MODEL_CARD.md")).read()
    assert "fine-tuned on all subjects from A" in card and "has seen every subject" in card
    assert "Trained on all subjects: no held-out validation figures" in card


def test_an_all_subjects_model_not_fine_tuned_from_the_first_is_refused(tmp_path, dev):
    init = {"model": "other", "weights_sha256": "0" * 64, "iterations_before": 1, "train_subjects_before": []}
    other = _all_finetune_of(dev, str(tmp_path / "b"), training__initialised_from=init)
    with pytest.raises(CMRRiskError, match="train subjects differ"):
        average_models(dev, other, str(tmp_path / "avg"))
    assert not (tmp_path / "avg").exists()
