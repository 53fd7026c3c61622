"""``cmrrisk train --model multiinput`` under torchrun: two CPU processes (gloo) in a private
network namespace train a tiny network on a synthetic cohort (cross-validation folds and the
final fit all data-parallel); rank 0 alone writes one complete model directory, and every
process's replica equals the saved weights after every fit (each process writes the digests of
its weights to CMRRISK_DDP_CHECK). Numbers of processes, models and engine options that cannot
run that way are refused before any work."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

import netns
from test_features import write_manifest, write_subject

HERE = os.path.dirname(os.path.abspath(__file__))
PKG = os.path.join(os.path.dirname(HERE), "CMRRiskExtension")
TRAIN = ["--endpoint", "diagnosis", "--model", "multiinput", "--cv", "2", "--max-epochs", "3",
         "--seed", "3", "--param", "width=4", "--param", "batch_size=4", "--param", "patience=3",
         "--threads", "1"]
#: why the torchrun tests cannot have a private network here (None: they can); asked once
NETNS_UNAVAILABLE = netns.unavailable()


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """12 subjects, two classes that differ in the LV size."""
    d = tmp_path_factory.mktemp("ddp")
    rows = []
    for i in range(12):
        big = i % 2
        sub = write_subject(str(d), f"s{i}", ed_radius=15.0 if big else 9.0, es_radius=12.0 if big else 6.0,
                            seed=i)
        rows.append(dict(subject=f"s{i}", **sub, age=str(40 + i), label="DCM" if big else "NOR"))
    write_manifest(d / "m.csv", rows)
    return d / "m.csv"


@pytest.fixture(scope="module")
def survival_cohort(cohort):
    """The same subjects with follow-up: the larger LVs have their events earlier."""
    import csv

    with open(cohort) as fh:
        rows = list(csv.DictReader(fh))
    rng = np.random.default_rng(1)
    for i, r in enumerate(rows):
        r["time"] = f"{rng.exponential(2.0 if r.pop('label') == 'DCM' else 10.0):.3f}"
        r["event"] = "1" if i % 3 else "0"
    write_manifest(cohort.parent / "s.csv", rows)
    return cohort.parent / "s.csv"


def _torchrun(nproc, manifest, out, check_dir, args=TRAIN, timeout=300):
    """``python -m torch.distributed.run`` of ``cmrrisk train`` inside a network namespace whose
    only interface is ``lo`` (the rendezvous store listens on every interface); stopped by its
    process group on timeout."""
    import shlex

    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", str(nproc),
           "--master_addr", "127.0.0.1", "--master_port", str(netns.free_port()),
           "-m", "cmrrisk", "train", str(manifest), "--out", str(out), *args]
    env = dict(os.environ, PYTHONPATH=PKG, OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME="lo",
               CMRRISK_DDP_CHECK=str(check_dir))
    line = "exec " + " ".join(shlex.quote(c) for c in cmd)
    proc = subprocess.Popen(netns.private_command(line), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the launcher and its workers: their own group
        proc.communicate()
        raise
    return proc.returncode, stdout, stderr


@pytest.mark.skipif(NETNS_UNAVAILABLE is not None, reason=str(NETNS_UNAVAILABLE))
def test_two_process_gloo_training_writes_one_model_with_equal_replicas(cohort, tmp_path):
    from cmrrisk.cli import main
    from cmrrisk.distributed import state_digest
    from cmrrisk import modeldir
    from cmrrisk.predict.store import load_pipeline
    from cmrrisk.predict.tabular import load_table

    out, check = tmp_path / "runs" / "model", tmp_path / "check"
    os.makedirs(tmp_path / "runs")
    rc, stdout, stderr = _torchrun(2, cohort, out, check)
    assert rc == 0, stderr[-3000:]
    # one writer: one model directory, complete, and the progress lines of rank 0 only
    assert os.listdir(tmp_path / "runs") == ["model"]
    modeldir.verify(str(out))
    assert stdout.count("model written") == 1, stdout
    assert stdout.count("2-fold cross-validation") == 1, stdout
    pipe = load_pipeline(str(out))
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model"]["distributed"] == {"world_size": 2, "backend": "gloo", "replicas_identical": True,
                                           "max_weight_difference": 0.0, "batch_per_process": 2}
    table = load_table(str(cohort), "diagnosis", image_features=False)
    p = pipe.predict_proba(table)
    assert p.shape == (12, 2) and np.allclose(p.sum(1), 1.0)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["k"] == 2 and len(metrics["folds"]) == 2

    # each process's weights, after every epoch of every fit (two folds, then the final fit)
    recs = {r: [json.loads(x) for x in (check / f"rank{r}.jsonl").read_text().splitlines()] for r in (0, 1)}
    assert sorted(os.listdir(check)) == ["rank0.jsonl", "rank1.jsonl"]
    assert len(recs[0]) == len(recs[1]) == 3
    for a, b in zip(recs[0], recs[1]):
        assert (a["rank"], b["rank"], a["world_size"]) == (0, 1, 2)
        assert a["epochs"] and a["epochs"] == b["epochs"]  # same stopping epoch, same weights
        assert a["final"] == b["final"]
    assert len({r["final"] for r in recs[0]}) == 3  # three different fits
    # the saved weights are every replica's final weights
    assert state_digest(pipe.model.net.state_dict()) == recs[1][-1]["final"]

    # one process (no torchrun) writes the same set of files, without the distributed record
    single = tmp_path / "single"
    assert main(["train", str(cohort), "--out", str(single), *TRAIN]) == 0
    assert sorted(os.listdir(single)) == sorted(os.listdir(out))
    assert "distributed" not in json.loads((single / "config.json").read_text())["model"]


@pytest.mark.skipif(NETNS_UNAVAILABLE is not None, reason=str(NETNS_UNAVAILABLE))
def test_two_process_survival_network_with_its_events_shared(survival_cohort, tmp_path):
    """The Cox loss: each process's share of a batch weighted by its events (a share without
    any gives no gradient); the replicas still end equal and the model predicts."""
    from cmrrisk.distributed import state_digest
    from cmrrisk.predict.store import load_pipeline
    from cmrrisk.predict.tabular import load_table

    args = ["--endpoint", "survival", "--model", "multiinput", "--cv", "0", "--max-epochs", "3",
            "--param", "width=4", "--param", "batch_size=6", "--threads", "1"]
    out, check = tmp_path / "model", tmp_path / "check"
    rc, stdout, stderr = _torchrun(2, survival_cohort, out, check, args)
    assert rc == 0, stderr[-3000:]
    pipe = load_pipeline(str(out))
    dist = json.loads((out / "config.json").read_text())["model"]["distributed"]
    assert (dist["world_size"], dist["batch_per_process"], dist["max_weight_difference"]) == (2, 3, 0.0)
    finals = [json.loads((check / f"rank{r}.jsonl").read_text().splitlines()[-1])["final"] for r in (0, 1)]
    assert finals[0] == finals[1] == state_digest(pipe.model.net.state_dict())
    table = load_table(str(survival_cohort), "survival", image_features=False)
    s = pipe.predict_survival(table, [1.0, 5.0])
    assert s.shape == (12, 2) and np.all(s[:, 1] <= s[:, 0] + 1e-9)


def test_torchrun_refusals_before_any_work(cohort, tmp_path, monkeypatch, capsys):
    """Under torchrun (WORLD_SIZE 2): a batch the processes cannot share, a model that is not a
    data-parallel network, and engine workers are each refused with one message; nothing is
    written and no process group is joined."""
    from cmrrisk.cli import main

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    cases = [
        (["--model", "multiinput", "--param", "batch_size=5"], "batch_size 5 cannot be shared by the 2 processes"),
        (["--model", "multiinput", "--param", "batch_size=2"], "at least 4"),
        (["--model", "logistic"], "model 'logistic' is not trained data-parallel"),
        (["--model", "multiinput", "--workers", "2"], "--workers 2: engine workers cannot be combined with torchrun"),
    ]
    for extra, text in cases:
        out = tmp_path / "m"
        rc = main(["train", str(cohort), "--endpoint", "diagnosis", "--out", str(out), "--cv", "0", *extra])
        err = capsys.readouterr().err
        assert rc == 2 and text in err, (extra, err)
        assert len(err.strip().splitlines()) == 1
        assert not out.exists()
    rc = main(["predict", str(tmp_path), str(cohort), "--out", str(tmp_path / "p.csv")])
    assert rc == 2 and "does not run under torchrun" in capsys.readouterr().err
    import torch.distributed as dist

    assert not dist.is_initialized()
