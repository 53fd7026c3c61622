"""``cmrrisk train --param KEY=VALUE`` / ``--params FILE`` (JSON, or a YAML mapping): a model's hyper-parameters from the
command line, checked before any work, recorded in the model directory and the report."""

import json

import numpy as np

from test_predict import _survival_manifest


def _main(argv, capsys):
    from cmrrisk.cli import main

    rc = main(argv)
    return rc, capsys.readouterr()


def test_misspelt_param_exits_2_before_any_work(tmp_path, capsys):
    out = tmp_path / "model"
    # the manifest does not even exist: the parameter is refused first
    rc, cap = _main(["train", str(tmp_path / "missing.csv"), "--endpoint", "survival", "--model", "cox",
                     "--out", str(out), "--param", "alhpa=5"], capsys)
    assert rc == 2
    err = cap.err.strip().splitlines()
    assert len(err) == 1 and "'alhpa'" in err[0] and "allowed: alpha" in err[0], cap.err
    assert not out.exists()
    rc, cap = _main(["train", str(tmp_path / "missing.csv"), "--endpoint", "survival", "--model", "deepsurv",
                     "--out", str(out), "--param", "dropout=1.5"], capsys)
    assert rc == 2 and "'dropout'" in cap.err and "[0, 1)" in cap.err
    rc, cap = _main(["train", str(tmp_path / "missing.csv"), "--endpoint", "survival", "--out", str(out),
                     "--param", "alpha"], capsys)
    assert rc == 2 and "KEY=VALUE" in cap.err


def test_param_alpha_trains_with_alpha_5_and_is_recorded(tmp_path, capsys):
    from cmrrisk.predict.base import SurvivalTarget
    from cmrrisk.predict.store import load_pipeline
    from cmrrisk.predict.survival import CoxPH

    train = _survival_manifest(tmp_path / "train.csv", 120, 0)
    out = tmp_path / "model"
    rc, cap = _main(["train", train, "--endpoint", "survival", "--model", "cox", "--out", str(out),
                     "--cv", "0", "--param", "alpha=5"], capsys)
    assert rc == 0, cap.err
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["params"] == {"alpha": 5.0}
    assert config["hyperparameters"] == {"alpha": 5.0}
    assert "alpha=5.0" in (out / "MODEL_CARD.md").read_text()
    # the stored coefficients are those of a Cox fit with alpha 5 on the same preprocessed data
    pipe = load_pipeline(str(out))
    from cmrrisk.predict.tabular import load_table

    table = load_table(train, "survival")
    x = pipe.preprocessor.transform(table)
    ref = CoxPH(alpha=5.0).fit(x, SurvivalTarget(table.time, table.event))
    np.testing.assert_allclose(pipe.model.coef, ref.coef, rtol=1e-6)
    assert not np.allclose(CoxPH().fit(x, SurvivalTarget(table.time, table.event)).coef, ref.coef)


def test_params_file_json_and_yaml_with_param_overriding(tmp_path, capsys):
    train = _survival_manifest(tmp_path / "train.csv", 120, 0)
    (tmp_path / "p.yaml").write_text("# hyper-parameters\nalpha: 2  # stronger penalty\n")
    (tmp_path / "n.yml").write_text("hidden: [64, 64]\ndropout: 0.3\nlog_duration: yes\n")
    (tmp_path / "p.json").write_text('{"alpha": 0.5}')
    (tmp_path / "bad.json").write_text('{"alpha": ')
    (tmp_path / "list.yaml").write_text("- alpha\n")
    out = tmp_path / "m1"
    rc, cap = _main(["train", train, "--endpoint", "survival", "--model", "cox", "--out", str(out), "--cv", "0",
                     "--params", str(tmp_path / "p.yaml")], capsys)
    assert rc == 0, cap.err
    assert json.loads((out / "config.json").read_text())["model"]["params"] == {"alpha": 2.0}
    out = tmp_path / "m2"
    rc, cap = _main(["train", train, "--endpoint", "survival", "--model", "cox", "--out", str(out), "--cv", "0",
                     "--params", str(tmp_path / "p.json"), "--param", "alpha=3"], capsys)
    assert rc == 0, cap.err
    assert json.loads((out / "config.json").read_text())["hyperparameters"] == {"alpha": 3.0}
    from cmrrisk.predict.commands import read_params_file

    assert read_params_file(str(tmp_path / "n.yml")) == {"hidden": [64, 64], "dropout": 0.3, "log_duration": True}
    # block YAML: nested values (the auto model's candidate sets) read as YAML reads them
    (tmp_path / "auto.yaml").write_text("folds: 3\ncandidates:\n  - [cox]\n  - - cox\n    - coxboost\n")
    assert read_params_file(str(tmp_path / "auto.yaml")) == {"folds": 3, "candidates": [["cox"], ["cox", "coxboost"]]}
    (tmp_path / "nested.yaml").write_text("alpha:\n  value: 2\n")
    (tmp_path / "broken.yaml").write_text("alpha: 2\nhidden: [64, 64\n")
    for bad, words in (("bad.json", "not valid JSON"), ("list.yaml", "give a mapping"),
                       ("nested.yaml", "'alpha'"), ("broken.yaml", "line 3: not valid YAML"),
                       ("none.yaml", "cannot read")):
        rc, cap = _main(["train", train, "--endpoint", "survival", "--model", "cox", "--out", str(tmp_path / "m3"),
                         "--params", str(tmp_path / bad)], capsys)
        assert rc == 2 and words in cap.err and len(cap.err.strip().splitlines()) == 1, cap.err
    assert not (tmp_path / "m3").exists()


def test_logic_level_training_takes_a_dict_of_parameters(tmp_path):
    import pytest

    from cmrrisk.errors import CMRRiskError
    from cmrrisk.predict.base import parameter_table
    from cmrrisk.predict.study import train_model

    train = _survival_manifest(tmp_path / "train.csv", 120, 0)
    with pytest.raises(CMRRiskError, match="'alhpa'"):
        train_model(train, "survival", str(tmp_path / "x"), model="cox", cv=0, params={"alhpa": 5})
    res = train_model(train, "survival", str(tmp_path / "m"), model="cox", cv=0, params={"alpha": "5"})
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert res["model"] == "cox" and config["model"]["params"]["alpha"] == 5.0
    assert parameter_table("cox", "survival") == [{"name": "alpha", "default": 0.1,
                                                  "allowed": "a number in [0, inf)"}]


def test_report_shows_the_parameters_set(tmp_path, capsys):
    train = _survival_manifest(tmp_path / "train.csv", 120, 0)
    out = tmp_path / "model"
    assert _main(["train", train, "--endpoint", "survival", "--model", "cox", "--out", str(out), "--cv", "0",
                  "--param", "alpha=5"], capsys)[0] == 0
    rc, cap = _main(["report", "--model", str(out), "--out", str(tmp_path / "r.html")], capsys)
    assert rc == 0, cap.err
    text = (tmp_path / "r.html").read_text()
    assert "Hyper-parameters set at training" in text and "alpha=5.0" in text
