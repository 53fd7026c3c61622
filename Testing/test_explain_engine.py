"""``cmrrisk explain --all`` on the cohort engine: the outputs of a 2-worker LocalCluster are
those of the command's own process, a subject whose image is missing fails alone (named, exit
status 1, the others written), an unreachable scheduler stops the command before anything is
written, and a worker process loads a model directory once."""

import contextlib
import io
import json
import os

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("captum")
pytest.importorskip("distributed")

from test_explain import cine_model  # noqa: E402,F401  (the tiny multi-input model fixture)

from cmrrisk import cli  # noqa: E402

EXPLAINED = ["c0", "c3", "broken", "c5", "c6"]


@pytest.fixture(scope="module")
def manifest(cine_model):  # noqa: F811
    """Five subjects of the model's cohort; 'broken' names an ED frame that does not exist."""
    _, train_manifest, d = cine_model
    rows = pd.read_csv(train_manifest, dtype=str).set_index("subject")
    out = []
    for s in EXPLAINED:
        r = rows.loc["c4" if s == "broken" else s].to_dict()
        if s == "broken":
            r["cine_ed"] = "missing_ed_img.nii.gz"
        out.append({"subject": s, **r})
    path = d / "explain_manifest.csv"
    pd.DataFrame(out).to_csv(path, index=False)
    return str(path)


def _run(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(argv)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def runs(cine_model, manifest, tmp_path_factory):  # noqa: F811
    """``explain --all`` in this process (no engine option) and on 2 local workers; which engine
    maps were made, and on a started cluster or not."""
    import cmrrisk.parallel as P

    model_dir = cine_model[0]
    root = tmp_path_factory.mktemp("explain_engine")
    mapped = []
    real_map = P.Engine.map
    res = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(P.Engine, "map", lambda self, fn, jobs, **kw: mapped.append(
            (fn.__name__, len(jobs), self.client is not None)) or real_map(self, fn, jobs, **kw))
        for name, extra in (("here", []), ("workers", ["--workers", "2"])):
            out = root / name
            res[name] = (out, *_run(["--progress", "none", "explain", model_dir, manifest, "--all", "--out", str(out),
                                     "--k", "3", "--threads", "1", "--no-png"] + extra))
    return res, mapped


def _outputs(out):
    from cmrrisk.image import read_image

    got = {}
    for f in sorted(os.listdir(out)):
        p = os.path.join(out, f)
        if f.endswith(".nii.gz"):
            v = read_image(p)
            got[f] = (v.array, v.ijk_to_ras)
        elif f.endswith(".json"):
            got[f] = json.loads(open(p).read())
        else:
            got[f] = open(p, "rb").read()
    return got


def test_two_workers_write_what_one_process_writes(runs):
    res, mapped = runs
    assert mapped == [("explain_one", 5, True)]  # only the --workers 2 run mapped, on a started cluster
    here, there = _outputs(res["here"][0]), _outputs(res["workers"][0])
    assert sorted(here) == sorted(there)
    # per explained subject: 2 heatmaps, the attributions and the explanation
    assert len(here) == 4 * 4 and sum(f.endswith(".nii.gz") for f in here) == 8
    for f, a in here.items():
        b = there[f]
        if f.endswith(".nii.gz"):
            assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]), f
            assert np.abs(a[0]).max() > 0
        else:
            assert a == b, f
    js = here["c3_explanation.json"]
    assert len(js["similar_cases"]) == 3 and js["text"].startswith("Predicted ")
    # the same lines, in subject order, whichever engine ran the subjects
    assert res["here"][2].replace(str(res["here"][0]), "OUT") == res["workers"][2].replace(str(res["workers"][0]), "OUT")
    lines = [ln.split(":")[0] for ln in res["here"][2].splitlines() if not ln.startswith(("  ", "reference"))]
    assert lines == [s for s in EXPLAINED if s != "broken"]


def test_a_subject_with_a_missing_image_fails_alone(runs):
    res, _ = runs
    for name in ("here", "workers"):
        out, code, stdout, stderr = res[name]
        assert code == 1, (name, stderr)
        failed = [ln for ln in stderr.splitlines() if ln.startswith("failed: ")]
        assert len(failed) == 1 and failed[0].startswith("failed: broken: ") and "missing_ed_img" in failed[0]
        assert "1 of 5 subjects could not be explained: broken" in stderr
        assert not [f for f in os.listdir(out) if f.startswith("broken")]
        assert "broken" not in stdout
        assert not [f for f in os.listdir(out) if f.startswith(".")]  # no temporary file left


def test_unreachable_scheduler_is_one_line_and_nothing_written(cine_model, manifest, tmp_path, monkeypatch):  # noqa: F811
    import cmrrisk.parallel as P

    monkeypatch.setattr(P, "CONNECT_TIMEOUT_S", 2)
    out = tmp_path / "ex"
    code, stdout, stderr = _run(["explain", cine_model[0], manifest, "--all", "--out", str(out),
                                 "--scheduler", "tcp://127.0.0.1:9"])
    assert code == 2
    assert stderr.strip().count("\n") == 0 and "--scheduler tcp://127.0.0.1:9" in stderr
    assert "no Dask scheduler" in stderr
    assert not out.exists() and stdout == ""


def test_a_worker_process_loads_a_model_once(cine_model, monkeypatch):  # noqa: F811
    import cmrrisk.predict.store as store
    from cmrrisk.explain import cohort as C

    monkeypatch.setattr(C, "_PIPELINES", {})
    loads = []
    real = store.load_pipeline
    monkeypatch.setattr(store, "load_pipeline", lambda d: loads.append(d) or real(d))
    model_dir = cine_model[0]
    stamp = C.model_stamp(model_dir)
    a = C.pipeline(model_dir, stamp)
    assert C.pipeline(os.path.join(model_dir, ""), stamp) is a and len(loads) == 1
    b = C.pipeline(model_dir, "another model in the same folder")
    assert b is not a and len(loads) == 2
    C.pipeline(model_dir, "a third")
    assert len(C._PIPELINES) == C.MAX_PIPELINES
