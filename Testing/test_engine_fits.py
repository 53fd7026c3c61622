"""Model fits as engine tasks: the ``auto`` search (candidate x fold fits, the chosen set's
members and a forest's blocks of trees) gives the same model on 2 local workers as in this
process, the data sent to each worker once and the costliest fits started first."""

from __future__ import annotations

import numpy as np
import pytest

from cmrrisk.parallel import Engine, set_default_engine, thread_limits
from cmrrisk.predict.models.targets import SurvivalTarget
from cmrrisk.predict.survival import RandomSurvivalForest
from cmrrisk.predict.survival_ensemble import AutoSurvival, fit_cost


def _data(n=240, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    t = rng.exponential(np.exp(-x[:, 0] + 0.5 * x[:, 1]))
    c = rng.exponential(1.5, size=n)
    return x, SurvivalTarget(np.minimum(t, c), (t <= c).astype(int))


CANDS = [["cox"], ["rsf"], ["coxboost_d2", "deepsurv"], ["rsf", "cox"]]


def _fit(engine):
    x, y = _data()
    set_default_engine(engine)
    try:
        return AutoSurvival(seed=0, candidates=CANDS, folds=3, max_epochs=2).fit(x, y), x
    finally:
        set_default_engine(None)


def _record_maps(monkeypatch):
    """``Engine.map`` calls from now on, as (task function, number of tasks, whether the engine
    had a started cluster once the call returned: the tasks went to its workers)."""
    import cmrrisk.parallel as P

    mapped = []
    real_map = P.Engine.map

    def recording(self, fn, jobs, **kw):
        out = real_map(self, fn, jobs, **kw)
        mapped.append((fn.__name__, len(jobs), self.client is not None))
        return out

    monkeypatch.setattr(P.Engine, "map", recording)
    return mapped


def test_search_on_two_workers_is_the_serial_search(monkeypatch):
    serial, x = _fit(None)
    mapped = _record_maps(monkeypatch)
    with Engine(workers=2, verbose=False, threads=1) as eng:
        par, _ = _fit(eng)
        assert eng.client is not None  # the fits did go to the workers
    # the candidate x fold fits were mapped on the started cluster
    assert ("_member_fold_risks", len(CANDS) * 3, True) in mapped, mapped
    assert all(on_cluster for _, _, on_cluster in mapped), mapped
    assert par.cv_scores == serial.cv_scores and par.chosen == serial.chosen
    np.testing.assert_array_equal(par.predict_risk(x), serial.predict_risk(x))


def test_forest_blocks_on_workers_are_the_forest_grown_here():
    x, y = _data(150, seed=2)
    here = RandomSurvivalForest(seed=3, n_trees=60).fit(x, y)
    with Engine(workers=2, verbose=False) as eng:
        set_default_engine(eng)
        try:
            there = RandomSurvivalForest(seed=3, n_trees=60).fit(x, y)
        finally:
            set_default_engine(None)
    a, b = here.state()[0], there.state()[0]
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_map_sends_shared_arguments_and_submits_costliest_first(monkeypatch):
    import distributed

    submitted, scattered = [], []
    real_submit, real_scatter = distributed.Client.submit, distributed.Client.scatter

    def submit(self, func, *args, **kw):
        submitted.append(args[-1])  # the task's own arguments (the last positional one)
        return real_submit(self, func, *args, **kw)

    def scatter(self, data, *args, **kw):
        scattered.append((data, kw.get("broadcast")))
        return real_scatter(self, data, *args, **kw)

    monkeypatch.setattr(distributed.Client, "submit", submit)
    monkeypatch.setattr(distributed.Client, "scatter", scatter)
    with Engine(workers=2, verbose=False) as eng:
        out = eng.map_ordered(_scaled, [(1,), (2,), (3,)], shared=(np.arange(3),), cost=[1, 3, 2])
    assert [o.tolist() for o in out] == [[0, 1, 2], [0, 2, 4], [0, 3, 6]]
    assert submitted == [(2,), (3,), (1,)]  # costliest first; each task carries only its own argument
    assert len(scattered) == 1 and scattered[0][1] is True  # the shared array: one broadcast
    assert len(scattered[0][0]) == 1 and scattered[0][0][0].tolist() == [0, 1, 2]
    assert fit_cost("rsf", {"min_samples_leaf": 5}) > fit_cost("coxboost", {}) > fit_cost("cox", {})


def _scaled(v, k):
    return v * k


def test_thread_limits_restore_torch_threads():
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    with thread_limits(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def _without_seconds(res):
    return {**res, "folds": [{k: v for k, v in f.items() if k != "seconds"} for f in res["folds"]]}


def test_cross_validation_folds_on_two_workers_are_the_serial_folds(monkeypatch):
    from cmrrisk.predict.tabular import table_from_arrays
    from cmrrisk.predict.validation import cross_validate

    x, y = _data(120, seed=4)
    surv = table_from_arrays(x, y.time, y.event)
    label = np.where(x[:, 0] + 0.3 * x[:, 2] > 0, "a", "b")
    diag = table_from_arrays(x, label=label)
    here = [cross_validate(surv, "survival", "cox", k=3), cross_validate(diag, "diagnosis", "logistic", k=3)]
    mapped = _record_maps(monkeypatch)
    with Engine(workers=2, verbose=False) as eng:
        set_default_engine(eng)
        try:
            there = [cross_validate(surv, "survival", "cox", k=3),
                     cross_validate(diag, "diagnosis", "logistic", k=3)]
        finally:
            set_default_engine(None)
        assert eng.client is not None  # the folds did go to the workers
    # both cross-validations mapped their 3 folds on the started cluster
    assert [m for m in mapped if m[1] == 3 and m[2]] and all(on for _, _, on in mapped), mapped
    assert len([m for m in mapped if m[1] == 3]) >= 2, mapped
    assert [_without_seconds(r) for r in there] == [_without_seconds(r) for r in here]
    assert there[1]["pooled_out_of_fold"] == here[1]["pooled_out_of_fold"]


def test_segment_inputs_on_two_workers_are_the_serial_outputs(tmp_path, monkeypatch):
    """``segment --workers 2``: each input a task (a worker loads the model once); label maps
    byte for byte and the report's entries (less the timings) those of one process."""
    import json
    import os

    from cmrrisk import cli
    from cmrrisk.synthetic import generate_cohort

    generate_cohort(str(tmp_path / "c"), n=3, seed=5, progress=False)
    inputs = [str(tmp_path / "c" / s / "cine_ed.nii.gz") for s in ("SYN001", "SYN002", "SYN003")]
    # distinct output names: the inputs share a file name
    for i, p in enumerate(inputs):
        os.rename(p, p.replace("cine_ed", f"ed{i}"))
        inputs[i] = p.replace("cine_ed", f"ed{i}")
    import cmrrisk.parallel as P

    mapped = []
    real_map = P.Engine.map
    monkeypatch.setattr(P.Engine, "map", lambda self, fn, jobs, **kw: mapped.append((fn.__name__, len(jobs),
                                                                                     self.client is not None))
                        or real_map(self, fn, jobs, **kw))
    outs = {}
    for w in ("1", "2"):
        out = tmp_path / f"out{w}"
        assert cli.main(["segment", *inputs, "--out", str(out), "--workers", w, "--threads", "1", "--quiet"]) == 0
        outs[w] = out
    assert mapped == [("segment_one", 3, True)]  # only --workers 2 mapped, on a started cluster
    for i in range(3):
        a, b = (open(outs[w] / f"ed{i}_seg.nii.gz", "rb").read() for w in ("1", "2"))
        assert a == b

    def entries(out):
        rep = json.loads((out / "segment.json").read_text())
        return [{k: v for k, v in e.items() if not k.startswith("seconds") and k != "output"} for e in rep["inputs"]]

    assert entries(outs["2"]) == entries(outs["1"])
