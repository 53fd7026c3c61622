"""The cohort engine (cmrrisk.parallel): a real embedded LocalCluster, a real ``dask scheduler``
with two ``dask worker`` processes in a private network namespace, a worker that dies, shards
merged back into one table, rendered batch scripts, and the bad-input refusals."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import netns
from cmrrisk import cli
from cmrrisk.parallel import Engine, job_script, parse_shard, shard_slice

HERE = os.path.dirname(os.path.abspath(__file__))
PKG = os.path.join(os.path.dirname(HERE), "CMRRiskExtension")
FAST = ["--no-radiomics", "--no-deep", "--quiet"]
NETNS_UNAVAILABLE = netns.unavailable()


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    from cmrrisk.synthetic import generate_cohort

    root = tmp_path_factory.mktemp("engine")
    man = generate_cohort(str(root / "cohort"), n=3, seed=3, progress=False)
    single = str(root / "single.csv")
    assert cli.main(["features", man, "--out", single, "--workers", "1"] + FAST) == 0
    return man, single, root


def _read(path):
    with open(path, "rb") as fh:
        return fh.read()


def test_local_cluster_and_shards_give_the_single_run_table(cohort, tmp_path):
    """One embedded LocalCluster: the features table of a single run, then a task whose worker
    dies (retried: no task lost) and a task that fails for its own reasons (reported)."""
    import cloudpickle

    from cmrrisk.features.cohort import write_features

    man, single, _ = cohort
    out = str(tmp_path / "local.csv")
    with Engine(workers=2, verbose=False) as eng:
        prov = write_features(man, out, options={"radiomics": False, "deep": False}, progress=False, engine=eng)
        assert _read(out) == _read(single)
        assert prov["engine"] == {"engine": "dask-local", "workers": 2} and prov["n_computed"] == 3
        cloudpickle.register_pickle_by_value(sys.modules[__name__])
        crashed = []
        res = eng.map(_crash_once, [(i, (i, str(tmp_path))) for i in range(8)], progress=False,
                      on_crash=lambda k, exc: crashed.append((k, str(exc))) or "failed")
    assert os.path.exists(tmp_path / "crashed2")  # the worker did die
    assert res == {i: ("failed" if i == 4 else i * i) for i in range(8)}
    assert crashed == [(4, "subject 4 is bad")]  # the subject's own failure, reported; no other
    parts = []
    for i in (1, 2, 3):
        parts.append(str(tmp_path / f"shard{i}.csv"))
        assert cli.main(["features", man, "--out", parts[-1], "--workers", "1", "--shard", f"{i}/3"] + FAST) == 0
    merged = str(tmp_path / "merged.csv")
    assert cli.main(["merge-shards", parts[2], parts[0], parts[1], "--out", merged]) == 0
    assert _read(merged) == _read(single)
    # a missing shard is named, and nothing is written
    assert cli.main(["merge-shards", parts[0], parts[2], "--out", str(tmp_path / "m2.csv")]) == 2
    assert not os.path.exists(tmp_path / "m2.csv")


def _imported(name):
    return name in sys.modules


def test_warm_imports_on_the_workers():
    """``Engine.warm``: every worker imports the modules in the background (the workers of a
    local cluster start without them)."""
    import time

    name = "cmrrisk.explain.cohort"
    with Engine(workers=2, verbose=False) as eng:
        eng._join()  # the workers up, before anything asks them to import it
        before = eng.client.run(_imported, name)
        assert len(before) == 2 and not any(before.values()), before  # so it is warm that imports it
        eng.warm([name])
        seen = {}
        for _ in range(600):  # until both workers have imported it (the import itself takes ms)
            seen = eng.client.run(_imported, name)
            if len(seen) == 2 and all(seen.values()):
                break
            time.sleep(0.1)
    assert len(seen) == 2 and all(seen.values()), seen


def test_shard_blocks_cover_every_row_once():
    for n_rows in (0, 1, 5, 17):
        for n in (1, 2, 3, 7):
            rows = [r for i in range(1, n + 1) for r in range(n_rows)[shard_slice(n_rows, (i, n))]]
            assert rows == list(range(n_rows))
    assert parse_shard("2/5") == (2, 5)


def _crash_once(i, mark_dir):
    """Task ``i``; task 2's first attempt kills its worker process."""
    mark = os.path.join(mark_dir, f"crashed{i}")
    if i == 2 and not os.path.exists(mark):
        open(mark, "w").close()
        os._exit(1)
    if i == 4:
        raise ValueError("subject 4 is bad")
    return i * i


@pytest.mark.skipif(NETNS_UNAVAILABLE is not None, reason=str(NETNS_UNAVAILABLE))
def test_external_scheduler_and_workers_in_private_network(cohort, tmp_path):
    man, single, _ = cohort
    env = dict(os.environ, PYTHONPATH=PKG)
    result = tmp_path / "result.json"
    subprocess.run(["unshare", "-n", sys.executable, os.path.join(HERE, "dask_cluster_driver.py"), man,
                    str(tmp_path), str(result)], env=env, check=True, timeout=240)
    r = json.loads(result.read_text())
    assert r["alive_after_stop"] == []
    assert r["shared"]["rc"] == 0, r["shared"]["stderr"]
    assert _read(tmp_path / "scheduler.csv") == _read(single)
    # a worker that cannot see the cohort: one line, exit 2, nothing written
    assert r["blind"]["rc"] == 2
    err = r["blind"]["stderr"].strip().splitlines()
    assert len(err) == 1 and "cannot read this file" in err[0] and "Dask worker" in err[0], err
    assert not os.path.exists(tmp_path / "blind.csv") and not os.path.exists(tmp_path / "cache_b")


def test_job_scripts_rendered():
    s = job_script("slurm", {"cores": 4, "memory": "16GB", "walltime": "02:00:00", "queue": "cpu",
                             "account": "cmr"})
    assert "#SBATCH --cpus-per-task=4" in s and "#SBATCH -p cpu" in s and "#SBATCH -A cmr" in s
    assert "#SBATCH -t 02:00:00" in s and "tcp://SCHEDULER:8786" in s and "--nthreads 1" in s
    assert "--nworkers 4" in s
    p = job_script("pbs", {"cores": 2, "queue": "long"})
    assert "#PBS -q long" in p and "ncpus=2" in p and "#PBS -l walltime=04:00:00" in p
    assert "distributed.cli.dask_worker" in p


def _one_error_line(capsys, *words):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and all(w in err[0] for w in words), err


def test_bad_engine_input(cohort, tmp_path, monkeypatch, capsys):
    import cmrrisk.parallel as P

    man = cohort[0]
    out = tmp_path / "f.csv"
    base = ["features", man, "--out", str(out)] + FAST
    assert cli.main(base + ["--shard", "3/2"]) == 2
    _one_error_line(capsys, "--shard 3/2")
    assert cli.main(base + ["--shard", "a"]) == 2
    _one_error_line(capsys, "--shard a")
    monkeypatch.setattr(P, "CONNECT_TIMEOUT_S", 2)
    assert cli.main(base + ["--scheduler", "tcp://127.0.0.1:9"]) == 2
    _one_error_line(capsys, "--scheduler tcp://127.0.0.1:9", "no Dask scheduler")
    monkeypatch.setitem(sys.modules, "dask_jobqueue", None)  # the package absent
    assert cli.main(base + ["--cluster", "slurm", "--jobs", "2"]) == 2
    _one_error_line(capsys, "--cluster slurm", "dask-jobqueue")
    assert cli.main(base + ["--jobs", "2"]) == 2
    _one_error_line(capsys, "--jobs")
    assert not os.path.exists(out) and not os.path.exists(tmp_path / "f_cache")
    assert os.listdir(tmp_path) == []
