"""The cohort engine (cmrrisk.parallel) on 1 and 2 local workers.

Parts (``--parts``, comma-separated):

* ``overhead``: seconds per task of the engine for tasks that do nothing (a local cluster of
  2 workers, already started), and the start-up of that cluster;
* ``features``: ``cmrrisk features`` on a synthetic cohort (indices and radiomics, bundled
  reference segmentations, no deep features by default) with ``--workers 1`` and ``2``;
  the tables must be identical;
* ``cpu``: CPU seconds per subject of ``features --workers 1`` (marginal cost from 2 and 6
  subjects), the basis of the projection in docs/how-to/cluster.md;
* ``share``: the share of the cores that 1 and 2 busy processes of one scheduling group get,
  and 2 in groups of their own (Linux's autogroup: one fair share per group while other groups
  are busy);
* ``search``: the default survival model (``auto``: 33 candidate sets x 5 folds) trained on
  the SUPPORT training split (DeepSurv HDF5, shared data) on 1 and 2 workers (torch threads 1),
  with its choice and test C-index (Harrell) for each.

Every figure is the median of ``--repeats`` runs (the search: ``--search-repeats``). Other
processes running on the machine at the same time slow the runs and lower the speed-up; the
JSON records the load average before and after each part.

    .venv/bin/python bench/bench_engine.py [--parts overhead,features,search] [--n 16]
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "CMRRiskExtension"))
DATA = os.environ.get("CMRRISK_DATA") or next(
    (d for d in (os.path.join(os.path.dirname(ROOT), "shared", "data"),
                 os.path.join(os.path.dirname(os.path.dirname(ROOT)), "shared", "data")) if os.path.isdir(d)),
    os.path.join(os.path.dirname(ROOT), "shared", "data"))
OUT = os.path.join(ROOT, "bench", "results", "engine.json")


def _noop(i):
    return i


def _children_cpu():
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _autogroup():
    """Linux's autogroup fair share (1: the processes started from one terminal or login together
    get one share of the cores while other groups run, so a second worker adds no CPU under
    contention)."""
    try:
        with open("/proc/sys/kernel/sched_autogroup_enabled") as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        return None


def _load():
    return [round(x, 2) for x in os.getloadavg()]


def overhead(repeats: int, n_tasks: int = 200) -> dict:
    from cmrrisk.parallel import Engine

    starts, per_task = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        with Engine(workers=2, verbose=False) as eng:
            eng.map(_noop, [(0, (0,)), (1, (1,))], progress=False)  # starts the cluster
            t1 = time.perf_counter()
            eng.map(_noop, [(i, (i,)) for i in range(n_tasks)], progress=False)
            t2 = time.perf_counter()
        starts.append(t1 - t0)
        per_task.append((t2 - t1) / n_tasks)
    return {"n_tasks": n_tasks, "local_cluster_start_seconds": round(statistics.median(starts), 3),
            "seconds_per_task": round(statistics.median(per_task), 5),
            "runs": {"start": [round(s, 3) for s in starts], "per_task": [round(s, 5) for s in per_task]}}


def features(n: int, repeats: int, deep: bool) -> dict:
    from cmrrisk.synthetic import generate_cohort

    tmp = tempfile.mkdtemp(prefix="bench_engine_")
    try:
        man = generate_cohort(os.path.join(tmp, "cohort"), n=n, seed=0, progress=False)
        env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "CMRRiskExtension"))
        res = {"n_subjects": n, "deep_features": deep, "radiomics": True,
               "timed": "the whole command (process start to exit); every worker, and the 1-worker run "
                        "in its own process, on 1 thread (--threads 1)",
               "cpu_seconds": "user + system of the command and its worker processes"}
        tables = {}
        for w in (1, 2):
            walls, cpus = [], []
            for r in range(repeats):
                out = os.path.join(tmp, f"f{w}_{r}.csv")
                cmd = [sys.executable, "-m", "cmrrisk", "features", man, "--out", out, "--workers", str(w),
                       "--threads", "1", "--quiet", "--cache", os.path.join(tmp, f"cache{w}_{r}")] + \
                    ([] if deep else ["--no-deep"])
                c0 = _children_cpu()
                t0 = time.perf_counter()
                subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
                walls.append(time.perf_counter() - t0)
                cpus.append(round(_children_cpu() - c0, 1))
                tables[w] = out
            res[f"workers_{w}"] = {"wall_seconds": round(statistics.median(walls), 2),
                                   "runs": [round(x, 2) for x in walls], "cpu_seconds": cpus,
                                   "seconds_per_subject": round(statistics.median(walls) / n, 3)}
        res["speedup_2_over_1"] = round(res["workers_1"]["wall_seconds"] / res["workers_2"]["wall_seconds"], 3)
        res["tables_identical"] = filecmp.cmp(tables[1], tables[2], shallow=False)
        res["command"] = ("cmrrisk features MANIFEST --out F.csv --workers W --threads 1 --quiet"
                          + ("" if deep else " --no-deep"))
        return res
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def cpu_per_subject(n_small: int, n_large: int, deep: bool) -> dict:
    """CPU seconds (user + system, of the command and its children) of ``features --workers 1``
    on n_small and on n_large subjects; the difference per extra subject is the marginal CPU
    cost of one subject, which other processes sharing the cores inflate far less than wall
    time."""
    import resource

    from cmrrisk.synthetic import generate_cohort

    tmp = tempfile.mkdtemp(prefix="bench_engine_cpu_")
    try:
        env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "CMRRiskExtension"))
        cpu = {}
        for n in (n_small, n_large):
            man = generate_cohort(os.path.join(tmp, f"c{n}"), n=n, seed=0, progress=False)
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "cmrrisk", "features", man, "--out", os.path.join(tmp, f"f{n}.csv"),
                            "--workers", "1", "--quiet"] + ([] if deep else ["--no-deep"]),
                           check=True, env=env, stdout=subprocess.DEVNULL)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu[n] = {"cpu_seconds": round(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime, 2),
                      "wall_seconds": round(time.perf_counter() - t0, 2)}
        per = (cpu[n_large]["cpu_seconds"] - cpu[n_small]["cpu_seconds"]) / (n_large - n_small)
        return {"runs": {str(k): v for k, v in cpu.items()}, "deep_features": deep, "radiomics": True,
                "segmentation": "reference label maps of the synthetic cohort (no model pass)",
                "cpu_seconds_per_subject": round(per, 3),
                "cpu_seconds_startup": round(cpu[n_small]["cpu_seconds"] - n_small * per, 2),
                "command": "cmrrisk features MANIFEST --out F.csv --workers 1 --quiet" + ("" if deep else " --no-deep")}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


_BUSY = """
import time
t0 = time.time(); c0 = time.process_time(); x = 0
while time.time() - t0 < {s}:
    x += 1
print(round((time.process_time() - c0) / {s}, 3))
"""


def share(seconds: float = 8.0) -> dict:
    """Share of a core that 1 and 2 busy processes of this scheduling group get, and 2 that each
    start a group of their own (``setsid``: Linux's autogroup gives every group one fair share)."""
    def run(n, own_group):
        procs = [subprocess.Popen([sys.executable, "-c", _BUSY.format(s=seconds)], stdout=subprocess.PIPE,
                                  text=True, preexec_fn=os.setsid if own_group else None) for _ in range(n)]
        return [float(p.communicate()[0]) for p in procs]

    one, two, two_own = run(1, False), run(2, False), run(2, True)
    return {"seconds": seconds, "one_process": one, "two_processes_one_group": two,
            "two_processes_own_groups": two_own,
            "cores_used": {"one": round(sum(one), 2), "two_one_group": round(sum(two), 2),
                           "two_own_groups": round(sum(two_own), 2)},
            "command": "python bench/bench_engine.py --parts share"}


def search(repeats: int, folds: int, save=None, n_train: int | None = None, max_epochs: int | None = None) -> dict:
    import h5py

    import resource

    from cmrrisk.parallel import Engine, set_default_engine
    from cmrrisk.predict.evaluation import evaluate_pipeline
    from cmrrisk.predict.pipeline import Pipeline
    from cmrrisk.predict.survival_ensemble import WORKER_MODULES
    from cmrrisk.predict.tabular import table_from_arrays

    def cpu_now():
        a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime

    path = os.path.join(DATA, "survival", "support_train_test.h5")
    with h5py.File(path, "r") as f:
        (x, t, e), (xt, tt, et) = [tuple(f[g][k][:] for k in ("x", "t", "e")) for g in ("train", "test")]
    if n_train:  # a reduced search: the first n_train training subjects
        x, t, e = x[:n_train], t[:n_train], e[:n_train]
    train = table_from_arrays(x, t, e, source="support:train")
    test = table_from_arrays(xt, tt, et, source="support:test")
    params = {"folds": folds} | ({"max_epochs": max_epochs} if max_epochs else {})
    res = {"data": "SUPPORT (DeepSurv split)" + (f", first {n_train} training subjects" if n_train else ""),
           "n_train": len(x), "n_test": len(xt), "folds": folds,
           "model": "auto (33 candidate sets)" + (f", networks capped at {max_epochs} epochs" if max_epochs else " (default)"),
           "model_params": params,
           "timed": "from entering the engine (a local cluster starts then, in the background) to the "
                    "fitted model; every worker, and the 1-worker run in this process, on 1 thread",
           "cpu_seconds": "user + system of this process and its worker processes over the run"}
    for w in (2, 1):
        walls, choices, cs, cpus = [], [], [], []
        for _ in range(repeats):
            load0 = _load()
            c0 = cpu_now()
            t0 = time.perf_counter()
            with Engine(workers=w, threads=1, verbose=False) as eng:
                eng.warm(WORKER_MODULES)
                set_default_engine(eng)
                try:
                    pipe = Pipeline("survival", "auto", seed=0, model_params=dict(params)).fit(train)
                    walls.append(time.perf_counter() - t0)
                finally:
                    set_default_engine(None)
            cpus.append(round(cpu_now() - c0, 1))
            ev = evaluate_pipeline(pipe, test, n_boot=0, seed=0)
            choices.append("+".join(pipe.model.chosen))
            cs.append(float(ev["c_index_harrell"]))
            print(f"search, {w} worker(s): {walls[-1]:.0f} s, chose {choices[-1]}, test C {cs[-1]:.4f} "
                  f"(load {load0} -> {_load()})", flush=True)
        res[f"workers_{w}"] = {"wall_seconds": round(statistics.median(walls), 1), "runs": [round(s, 1) for s in walls],
                               "cpu_seconds": cpus, "chosen": choices, "test_c_index": cs}
        if save is not None:  # a partial result survives an interrupted run
            save(dict(res, complete=False))
    res["speedup_2_over_1"] = round(res["workers_1"]["wall_seconds"] / res["workers_2"]["wall_seconds"], 3)
    res["same_choice"] = len(set(res["workers_1"]["chosen"] + res["workers_2"]["chosen"])) == 1
    res["same_test_c_index"] = len(set(res["workers_1"]["test_c_index"] + res["workers_2"]["test_c_index"])) == 1
    res["complete"] = True
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", default="overhead,features,search")
    ap.add_argument("--n", type=int, default=16, help="synthetic subjects for the features part")
    ap.add_argument("--deep", action="store_true", help="include deep features (segmentation model pass)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--search-repeats", type=int, default=1)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--search-n", type=int, default=None, help="reduced search: first N training subjects")
    ap.add_argument("--max-epochs", type=int, default=None, help="reduced search: cap the networks' epochs")
    ap.add_argument("--out", default=OUT)
    args = ap.parse_args(argv)
    results = {}
    if os.path.isfile(args.out):  # keep the other parts when rerunning one
        results = json.load(open(args.out))
    results["machine"] = {"cpus": os.cpu_count(), "note": "load averages show other processes sharing the cores",
                          "sched_autogroup": _autogroup()}
    for part in args.parts.split(","):
        load0, t0 = _load(), time.time()
        if part == "overhead":
            r = overhead(args.repeats)
        elif part == "features":
            r = features(args.n, args.repeats, args.deep)
        elif part == "share":
            r = share()
        elif part == "cpu":
            r = cpu_per_subject(2, 6, args.deep)
        elif part == "search":
            def save(partial):
                from cmrrisk.modeldir import write_json

                write_json(args.out, dict(results, search=partial))

            r = search(args.search_repeats, args.folds, save, args.search_n, args.max_epochs)
        else:
            raise SystemExit(f"--parts: unknown part {part!r}")
        r["load_average_before_after"] = [load0, _load()]
        r["command"] = r.get("command", "") or f"python bench/bench_engine.py --parts {part}"
        r["bench_command"] = "python bench/bench_engine.py " + " ".join(argv if argv is not None else sys.argv[1:])
        r["seconds"] = round(time.time() - t0, 1)
        results[part] = r
        from cmrrisk.modeldir import write_json

        write_json(args.out, results)
        print(json.dumps({part: r}, indent=1), flush=True)
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
