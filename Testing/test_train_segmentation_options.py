"""`train-segmentation --val-subjects` (a given validation fold) and `--init` from a model of the
other task (every layer but the output layer)."""

import json
from types import SimpleNamespace

import pytest
import torch

from cmrrisk import modeldir
from cmrrisk.cli import main
from cmrrisk.errors import CMRRiskError
from cmrrisk.segmentation.network import build_network
from cmrrisk.segmentation.train import _given_split, _load_init

from conftest import DATA

EMIDEC = DATA / "emidec"
needs_emidec = pytest.mark.skipif(not EMIDEC.is_dir(), reason=f"EMIDEC data not found at {EMIDEC}")


def _subjects(n=12):
    return [SimpleNamespace(subject=f"S{i:02d}", group="a" if i % 2 else "b") for i in range(n)]


def test_given_split_holds_out_exactly_the_named_subjects():
    train, val = _given_split(_subjects(), ["S03", "S01", "S03", " S07 "], "DATA", use_all=False)
    assert [s.subject for s in val] == ["S01", "S03", "S07"]
    assert {s.subject for s in train} == {f"S{i:02d}" for i in range(12)} - {"S01", "S03", "S07"}


@pytest.mark.parametrize("names, use_all, words", [
    (["S01", "S99"], False, ["'S99'", "DATA"]),
    (["S01"], True, ["--all"]),
    ([f"S{i:02d}" for i in range(8)], False, ["too few"]),
    ([], False, ["none to validate"]),
])
def test_given_split_refuses_unknown_names_and_impossible_splits(names, use_all, words):
    with pytest.raises(CMRRiskError) as e:
        _given_split(_subjects(), names, "DATA", use_all=use_all)
    assert all(w in str(e.value) for w in words), str(e.value)


def test_init_from_the_other_task_takes_every_tensor_but_the_output_layer():
    cine_cfg, cine_state = modeldir.load(modeldir.resolve("cine"))
    lge_cfg, _ = modeldir.load(modeldir.resolve("lge"))
    torch.manual_seed(0)
    net = build_network(lge_cfg)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    new = _load_init(net, "cine", cine_cfg, cine_state, lge_cfg, "lge")
    assert new == ["final_conv.bias", "final_conv.weight"]
    after = net.state_dict()
    for k, v in after.items():
        if k in new:
            assert torch.equal(v, before[k])  # left as initialised
        else:
            assert torch.equal(v, cine_state[k].to(v.dtype)), k


def test_init_whose_network_differs_in_more_than_the_output_is_refused():
    cine_cfg, cine_state = modeldir.load(modeldir.resolve("cine"))
    lge_cfg, _ = modeldir.load(modeldir.resolve("lge"))
    wider = json.loads(json.dumps(lge_cfg))
    wider["network"]["features"] = [8, 16, 32, 64, 128, 8]
    with pytest.raises(CMRRiskError, match="more than its output layer"):
        _load_init(build_network(wider), "cine", cine_cfg, cine_state, wider, "lge")
    same_task = json.loads(json.dumps(cine_cfg))
    same_task["network"]["out_channels"] = 5
    with pytest.raises(CMRRiskError, match="network differs"):
        _load_init(build_network(same_task), "cine", cine_cfg, cine_state, same_task, "cine")


@needs_emidec
def test_cli_unknown_validation_subject_is_refused_before_training(tmp_path, capsys):
    out = tmp_path / "m"
    code = main(["train-segmentation", "--task", "lge", "--data", str(EMIDEC), "--out", str(out),
                 "--val-subjects", "Case_P002,Case_X999", "--iterations", "2"])
    err = capsys.readouterr().err
    assert code == 2 and "Case_X999" in err and not out.exists()


@needs_emidec
def test_cli_trains_with_a_given_fold_from_the_cine_model(tmp_path, capsys):
    fold = ["Case_N020", "Case_N027", "Case_P002", "Case_P005", "Case_P011"]
    listing = tmp_path / "fold.txt"
    listing.write_text("# fold 0\n" + "\n".join(fold) + "\n")
    out = tmp_path / "m"
    code = main(["train-segmentation", "--task", "lge", "--data", str(EMIDEC), "--out", str(out),
                 "--val-subjects", str(listing), "--init", "cine", "--iterations", "2", "--batch", "2",
                 "--threads", "1"])
    assert code == 0, capsys.readouterr().err
    cfg, _ = modeldir.load(str(out))
    tr = cfg["training"]
    assert tr["val_subjects"] == fold and not set(fold) & set(tr["train_subjects"])
    assert tr["initialised_from"]["task"] == "cine"
    assert tr["initialised_from"]["new_tensors"] == ["final_conv.bias", "final_conv.weight"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert sorted(s["case"] for s in metrics["subjects"]) == fold
    card = (out / "MODEL_CARD.md").read_text()
    assert "--init cine --val-subjects " + ",".join(fold) in card
