"""bench/devmodels.py: held-out benchmarks measure the model trained with the validation split,
never a bundled model trained on all subjects."""

import json
import os
import shutil

import pytest

from cmrrisk import modeldir
from cmrrisk.errors import CMRRiskError

import devmodels


def _config(path):
    return modeldir.read_json(os.path.join(path, "config.json"))


def _copy_without_split(src, dst):
    shutil.copytree(src, dst)
    cfg = _config(dst)
    cfg["training"]["train_subjects"] = cfg["training"]["train_subjects"] + cfg["training"]["val_subjects"]
    cfg["training"]["val_subjects"] = []
    with open(os.path.join(dst, "config.json"), "w") as f:
        json.dump(cfg, f)
    return dst


def test_development_model_falls_back_and_refuses(tmp_path, monkeypatch):
    bundled = devmodels.development_config("cine")  # whatever the repository holds now
    assert _config(bundled)["training"]["val_subjects"]
    all_data = _copy_without_split(bundled, str(tmp_path / "all"))
    split_dir = tmp_path / "split"
    monkeypatch.setattr(devmodels, "SPLIT_DIR", split_dir)
    real_resolve = modeldir.resolve
    monkeypatch.setattr(modeldir, "resolve", lambda m: all_data if m == "cine" else real_resolve(m))
    with pytest.raises(CMRRiskError, match="trained on all subjects"):
        devmodels.development_model("cine")
    split = split_dir / "cine_split"
    shutil.copytree(bundled, split, ignore=shutil.ignore_patterns(modeldir.WEIGHTS))
    # config without weights: its validation subjects are readable, the model is refused
    assert devmodels.development_config("cine") == str(split)
    assert "make dev-models" in devmodels.missing_weights("cine")
    with pytest.raises(CMRRiskError, match="make dev-models"):
        devmodels.development_model("cine")
    shutil.copy(os.path.join(real_resolve("cine"), modeldir.WEIGHTS), split / modeldir.WEIGHTS)
    assert devmodels.missing_weights("cine") is None
    assert devmodels.development_model("cine") == str(split)
    path, val = devmodels.held_out("cine")
    assert val == set(_config(bundled)["training"]["val_subjects"])
    # a split folder without validation subjects is refused too
    _copy_without_split(bundled, str(tmp_path / "nosplit"))
    shutil.rmtree(split)
    shutil.copytree(tmp_path / "nosplit", split)
    with pytest.raises(CMRRiskError, match="no validation subjects"):
        devmodels.development_config("cine")


@pytest.mark.parametrize("task", ["cine", "lge"])
def test_repository_development_models_are_honest(task, monkeypatch):
    """The development model's split is disjoint; a bundled model trained on all subjects
    descends from it (its --init weights are the development model's, by the SHA-256 in the
    development model's checksums.json) and was trained on its validation subjects too;
    use_development_models() swaps the names and nothing else (needs the development weights)."""
    dev = devmodels.development_config(task)
    tr = _config(dev)["training"]
    assert tr["val_subjects"] and not set(tr["val_subjects"]) & set(tr["train_subjects"])
    bundled = modeldir.resolve(task)
    dev_sha = modeldir.read_json(os.path.join(dev, modeldir.CHECKSUMS))[modeldir.WEIGHTS]
    if dev != bundled:
        btr = _config(bundled)["training"]
        assert not btr["val_subjects"]
        assert set(tr["val_subjects"]) | set(tr["train_subjects"]) <= set(btr["train_subjects"])
        assert btr["initialised_from"]["weights_sha256"] == dev_sha
    why = devmodels.missing_weights(task)
    if why:
        pytest.skip(why)
    modeldir.verify(dev)  # the restored weights are the ones the checksums name
    monkeypatch.setattr(modeldir, "resolve", modeldir.resolve)  # undone after the test
    chosen = devmodels.use_development_models()
    assert modeldir.resolve(task) == chosen[task] == dev
    assert devmodels.use_development_models() == chosen  # a second call does not stack
    from cmrrisk.segmentation.infer import Segmenter

    assert Segmenter.load(task, tta=False).config["training"]["val_subjects"] == tr["val_subjects"]


def test_model_card_of_an_all_subjects_fine_tune():
    """The card says what an --all fine-tune of a split model is: no held-out subjects, started
    from a model trained on a subset, whose card has the validation figures."""
    from cmrrisk.segmentation.train import model_card

    cfg = _config(devmodels.development_config("cine"))
    tr = cfg["training"]
    before = list(tr["train_subjects"])
    cfg["training"] = dict(tr, train_subjects=before + tr["val_subjects"], val_subjects=[],
                           averaged_from=None,
                           initialised_from={"model": "cine", "weights_sha256": "ab" * 32,
                                             "iterations_before": 5000, "train_subjects_before": before})
    card = model_card(cfg, {})
    n = len(before) + len(tr["val_subjects"])
    assert f"{n} subjects for training (ED and ES frames): all of them, none held out (`--all`)." in card
    assert f"iterations on {len(before)} of these subjects" in card and "--all`" in card
    assert "held out for validation" not in card and "same training subjects" not in card
    assert "its card has the figures" in card
    cfg["training"]["initialised_from"]["train_subjects_before"] = cfg["training"]["train_subjects"]
    assert "the same training subjects" in model_card(cfg, {})
