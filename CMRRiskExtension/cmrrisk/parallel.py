"""The engine that runs cohort work: independent tasks (one per subject, or one per model fit)
in this process, or on Dask distributed.

* one worker and no cluster: a plain loop in this process (what the Slicer modules and small
  runs use);
* more workers: an embedded Dask ``LocalCluster`` (one process per worker, one thread each, no
  dashboard unless asked);
* ``scheduler="tcp://HOST:PORT"``: the workers of an existing Dask cluster;
* ``cluster="slurm"`` or ``"pbs"`` with ``jobs=N``: N batch jobs of workers through
  ``dask-jobqueue``.

Tasks are submitted with a bounded number in flight and collected as they finish (progress bar
on stderr). Each worker process keeps what a task loads at module level (the segmentation
models), so a model is loaded once per worker. A task whose worker process dies is retried on
another worker (``allowed_failures`` times); a task that fails for its own reasons is returned
through ``on_crash`` and the others go on.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import threading
import uuid

from .errors import CMRRiskError

#: times a task may be on a worker that dies before it is given up (Dask's allowed-failures)
ALLOWED_FAILURES = 3
#: seconds to wait for an external scheduler to answer
CONNECT_TIMEOUT_S = 10
CLUSTER_TYPES = ("slurm", "pbs")
#: Dask settings of a run without the dashboard
QUIET_CONFIG = {"distributed.worker.profile.enabled": False, "distributed.admin.tick.interval": "1s",
                "distributed.admin.system-monitor.interval": "5s",
                "distributed.worker.memory.monitor-interval": "1s"}
_DASK_DEFAULTS: dict = {}  # Dask's own values of those settings (for a run with the dashboard)

_THREADS_SET = [False]


#: environment of a worker process: the numeric libraries' thread pools (OpenMP, BLAS, ITK)
#: sized before they start; ``{n}`` is the worker's threads
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS")


def _init_worker(threads: int) -> None:
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:  # pragma: no cover
        pass
    if "SimpleITK" in sys.modules:  # imported before the environment could size its pool
        sys.modules["SimpleITK"].ProcessObject.SetGlobalDefaultNumberOfThreads(threads)


def _call(fn, threads, args):
    """Run one task on a worker: the worker's torch threads set once, then ``fn(*args)``."""
    if not _THREADS_SET[0]:
        _init_worker(threads)
        _THREADS_SET[0] = True
    return fn(*args)


def _call_shared(fn, threads, shared, args):
    """:func:`_call` of ``fn(*shared, *args)``: ``shared`` sent to each worker once."""
    return _call(fn, threads, tuple(shared) + tuple(args))


def _warm(modules) -> list:
    """Import ``modules`` in a worker (so that its first task does not pay for them); the names
    that could not be imported."""
    bad = []
    for m in modules:
        try:
            importlib.import_module(m)
        except Exception:  # a missing optional package: the task that needs it will say so
            bad.append(m)
    return bad


async def _warm_later(modules) -> list:
    """:func:`_warm` in a thread of the worker, off its event loop: Dask runs a coroutine
    function without waiting for it (``Client.run(..., wait=False)`` refuses a plain one)."""
    import asyncio

    return await asyncio.get_running_loop().run_in_executor(None, _warm, list(modules))


@contextlib.contextmanager
def thread_limits(n: int | None):
    """Run the enclosed work on ``n`` threads of torch, the BLAS/OpenMP pools and ITK (restored
    afterwards); ``None`` changes nothing. A library not imported yet is not imported here: the
    environment sizes its pool when the work imports it."""
    if n is None:
        yield
        return
    undo = []
    env = {k: os.environ.get(k) for k in THREAD_ENV}
    os.environ.update({k: str(n) for k in THREAD_ENV})
    undo.append(lambda: [os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
                         for k, v in env.items()])
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        old = torch.get_num_threads()
        torch.set_num_threads(n)
        undo.append(lambda: torch.set_num_threads(old))
    if "SimpleITK" in sys.modules:
        po = sys.modules["SimpleITK"].ProcessObject
        old_itk = po.GetGlobalDefaultNumberOfThreads()
        po.SetGlobalDefaultNumberOfThreads(n)
        undo.append(lambda: po.SetGlobalDefaultNumberOfThreads(old_itk))
    try:
        from threadpoolctl import threadpool_limits

        limiter = threadpool_limits(n)
        undo.append(limiter.restore_original_limits)
    except ImportError:  # pragma: no cover
        pass
    try:
        yield
    finally:
        for f in reversed(undo):
            f()


def _unreadable(paths) -> list:
    return [p for p in paths if not os.access(p, os.R_OK)]


def n_workers(workers: int | None, n_jobs: int) -> int:
    return max(1, min(workers or os.cpu_count() or 1, n_jobs or 1))


def parse_shard(spec: str | None):
    """``"I/N"`` -> (I, N) with 1 <= I <= N; None -> None."""
    if spec is None:
        return None
    try:
        i, n = (int(x) for x in str(spec).split("/"))
    except ValueError:
        raise CMRRiskError(f"--shard {spec}: give I/N, this run's shard I of N (e.g. 1/4).") from None
    if n < 1 or not 1 <= i <= n:
        raise CMRRiskError(f"--shard {spec}: give I/N with 1 <= I <= N (shard {i} of {n} does not exist).")
    return i, n


def shard_slice(n_rows: int, shard) -> slice:
    """The contiguous block of ``n_rows`` manifest rows of shard (I, N)."""
    if shard is None:
        return slice(0, n_rows)
    i, n = shard
    return slice((i - 1) * n_rows // n, i * n_rows // n)


class Engine:
    """Where cohort tasks run. Use as a context manager around the work: entering connects to
    (or starts) the cluster, so that an unreachable scheduler or a missing package is reported
    before anything is written; leaving stops what was started here."""

    def __init__(self, workers: int | None = None, scheduler: str | None = None, cluster: str | None = None,
                 jobs: int = 1, dashboard: bool = False, cluster_options: dict | None = None,
                 allowed_failures: int = ALLOWED_FAILURES, verbose: bool = True, threads: int | None = None):
        if cluster is not None and cluster not in CLUSTER_TYPES:
            raise CMRRiskError(f"--cluster {cluster}: give one of {', '.join(CLUSTER_TYPES)}.")
        if cluster is not None and scheduler is not None:
            raise CMRRiskError("--scheduler and --cluster: give one of them (an existing scheduler, or "
                               "a batch-queue cluster to start).")
        if jobs is not None and jobs < 1:
            raise CMRRiskError(f"--jobs {jobs}: give at least 1 (batch jobs of workers).")
        if threads is not None and threads < 1:
            raise CMRRiskError(f"--threads {threads}: give at least 1 (threads of each worker).")
        self.workers, self.scheduler, self.cluster_type = workers, scheduler, cluster
        self.jobs, self.dashboard = jobs or 1, dashboard
        self.cluster_options = dict(cluster_options or {})
        self.allowed_failures = allowed_failures
        self.verbose = verbose
        self.threads = threads
        self.client = None
        self._cluster = None
        self._depth = 0
        self._starting = None  # the thread starting a local cluster in the background
        self._start_error = None
        self._warm_modules: list = []

    # -- what kind of engine
    @property
    def workers_asked(self) -> bool:
        """True when the command asked for workers (``--workers`` above 1, a scheduler or a
        cluster): per-subject work then goes to them even for a few subjects."""
        return bool(self.scheduler or self.cluster_type or (self.workers or 1) > 1)

    @property
    def distributed(self) -> bool:
        """True when tasks go to Dask (a cluster or more than one local worker)."""
        return self.scheduler is not None or self.cluster_type is not None or (self.workers or os.cpu_count() or 1) > 1

    def describe(self) -> dict:
        if self.scheduler:
            return {"engine": "dask", "scheduler": self.scheduler}
        if self.cluster_type:
            return {"engine": "dask-jobqueue", "cluster": self.cluster_type, "jobs": self.jobs}
        n = self.workers or os.cpu_count() or 1
        return {"engine": "dask-local" if n > 1 else "serial", "workers": n}

    def n_slots(self) -> int:
        """Worker threads available (at least 1)."""
        self._join()
        if self.client is None:  # not started yet: what a local cluster would have
            return max(1, self.workers or (os.cpu_count() or 1))
        try:
            info = self.client.scheduler_info(n_workers=-1)
        except TypeError:  # older distributed
            info = self.client.scheduler_info()
        n = sum(w.get("nthreads", 1) for w in info.get("workers", {}).values())
        if n == 0 and self.cluster_type:
            n = self.jobs * int(self.cluster_options.get("cores", 1))
        return max(1, n)

    # -- starting and stopping
    def __enter__(self):
        if self._depth == 0 and (self.scheduler or self.cluster_type):
            self._start()  # a local cluster starts on the first map with more than one task
        elif self._depth == 0 and self.workers is not None and self.workers > 1:
            self.start_in_background()  # asked for workers: they start while the inputs are read
        self._depth += 1
        return self

    def start_in_background(self) -> None:
        """Start the local cluster in a thread of this process, so that the workers come up
        while the caller reads its inputs; the first map waits for it."""
        if self.client is not None or self._starting is not None or not self.distributed:
            return

        def run():
            try:
                self._start()
                if self._warm_modules:
                    self.client.run(_warm_later, list(self._warm_modules), wait=False, on_error="ignore")
            except BaseException as exc:  # given to the caller by _join
                self._start_error = exc

        self._starting = threading.Thread(target=run, name="cmrrisk-engine-start", daemon=True)
        self._starting.start()

    def _join(self) -> None:
        t = self._starting
        if t is not None:
            t.join()
            self._starting = None
            if self._start_error is not None:
                exc, self._start_error = self._start_error, None
                raise exc

    def warm(self, modules) -> None:
        """Have every worker import ``modules`` now (in the background), so that the tasks do
        not wait for them; nothing happens when the tasks run in this process."""
        modules = [m for m in modules if m not in self._warm_modules]
        if not modules:
            return
        self._warm_modules.extend(modules)
        if self._starting is not None:
            if self._starting.is_alive():
                return  # the starting thread warms the workers once they are up
            self._join()
        if self.client is not None:
            self.client.run(_warm_later, modules, wait=False, on_error="ignore")

    def __exit__(self, *exc):
        self._depth -= 1
        if self._depth == 0:
            self.close()
        return False

    def _say(self, msg: str) -> None:
        if self.verbose:
            print(msg, file=sys.stderr, flush=True)

    def _start(self, n_tasks: int | None = None) -> None:
        import dask

        try:
            from distributed import Client
        except ImportError:
            raise CMRRiskError("more than one worker, --scheduler and --cluster need the Dask packages: "
                               "pip install dask distributed (or give --workers 1).") from None
        dask.config.set({"distributed.scheduler.allowed-failures": self.allowed_failures,
                         "distributed.worker.daemon": False})
        if not _DASK_DEFAULTS:
            _DASK_DEFAULTS.update({k: dask.config.get(k) for k in QUIET_CONFIG})
        # without the dashboard nothing is shown: no statistical profiler sampling every task's
        # stack, and the event-loop, system and memory monitors of the local processes woken every
        # second or more rather than every 20-500 ms (on 2 idle workers: 0.3 % of a core, not 4 %)
        dask.config.set(_DASK_DEFAULTS if self.dashboard else QUIET_CONFIG)
        if self.scheduler:
            addr = self.scheduler
            if "://" not in addr:
                addr = "tcp://" + addr
            try:
                self.client = Client(addr, timeout=f"{CONNECT_TIMEOUT_S}s", set_as_default=False)
            except (OSError, TimeoutError) as exc:
                raise CMRRiskError(f"--scheduler {self.scheduler}: no Dask scheduler answered within "
                                   f"{CONNECT_TIMEOUT_S} s ({type(exc).__name__}); start one with "
                                   "`dask scheduler` and its workers with `dask worker ADDRESS`, or leave "
                                   "out --scheduler to run here.") from None
            self._say(f"dask: scheduler {addr}, {len(self.client.scheduler_info().get('workers', {}))} workers"
                      + self._dashboard_text())
        elif self.cluster_type:
            self._cluster = self._jobqueue_cluster()
            self._cluster.scale(jobs=self.jobs)
            self.client = Client(self._cluster, set_as_default=False)
            self._say(f"dask: {self.cluster_type} cluster, {self.jobs} job(s) submitted, scheduler "
                      f"{self._cluster.scheduler_address}" + self._dashboard_text())
        else:
            from distributed import LocalCluster

            n = self.workers or os.cpu_count() or 1
            env = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}) or {})
            env.update({k: str(self.worker_threads(n)) for k in THREAD_ENV})
            # glibc's own trimming: Dask's small threshold made the networks' fits ~1.6x slower
            env.pop("MALLOC_TRIM_THRESHOLD_", None)
            dask.config.set({"distributed.nanny.pre-spawn-environ": env})
            # everything on 127.0.0.1: the scheduler's HTTP server (health routes, and the
            # dashboard when asked) too, on a free port unless the dashboard is wanted
            self._cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                         dashboard_address="127.0.0.1:8787" if self.dashboard else None,
                                         scheduler_kwargs=None if self.dashboard else
                                         {"dashboard_address": "127.0.0.1:0"},
                                         host="127.0.0.1", silence_logs=50)
            self.client = Client(self._cluster, set_as_default=False)
            if self.dashboard:
                self._say(f"dask: {n} local workers" + self._dashboard_text())

    def _dashboard_text(self) -> str:
        link = getattr(self.client, "dashboard_link", None) if self.client is not None else None
        try:
            has = self.client is not None and "dashboard" in self.client.scheduler_info().get("services", {})
        except Exception:  # pragma: no cover
            has = False
        return f"; dashboard {link}" if link and has else ""

    def _jobqueue_cluster(self):
        try:  # optional (batch queues only): imported by name, so that Slicer never asks for it
            dask_jobqueue = importlib.import_module("dask_jobqueue")
        except ImportError:
            raise CMRRiskError(f"--cluster {self.cluster_type} needs the dask-jobqueue package: "
                               "pip install dask-jobqueue==0.9.0 (or use --scheduler with workers you "
                               "start yourself).") from None
        cls = {"slurm": dask_jobqueue.SLURMCluster, "pbs": dask_jobqueue.PBSCluster}[self.cluster_type]
        return cls(**job_options(self.cluster_options, self.dashboard))

    def worker_threads(self, slots: int | None = None) -> int:
        """Threads of each worker: ``threads`` when given, else 1 on a scheduler's or a batch
        queue's workers and this machine's cores shared out among the local workers."""
        if self.threads is not None:
            return self.threads
        if self.cluster_type or self.scheduler:
            return 1
        return max(1, (os.cpu_count() or 1) // max(1, slots or self.workers or os.cpu_count() or 1))

    def close(self) -> None:
        try:
            self._join()
        except BaseException:  # a failed start: nothing to stop
            pass
        if self.client is not None:
            try:
                self.client.close()
            except Exception:  # pragma: no cover
                pass
            self.client = None
        if self._cluster is not None:
            try:
                self._cluster.close()
            except Exception:  # pragma: no cover
                pass
            self._cluster = None

    # -- work
    def check_visible(self, paths, what: str = "input files") -> None:
        """Refuse when a worker cannot read a path that this process can (a path on the client's
        disk only): one line naming the first such file."""
        paths = sorted({os.path.abspath(p) for p in paths if p})
        self._join()
        if self.client is None or not paths:
            return
        if self.cluster_type is None:
            try:
                self.client.wait_for_workers(1, timeout=CONNECT_TIMEOUT_S)
            except Exception:
                raise CMRRiskError(f"--scheduler {self.scheduler}: the scheduler has no workers; start "
                                   "them with `dask worker ADDRESS`.") from None
        missing = self.client.run(_unreadable, paths)
        for worker, bad in sorted(missing.items()):
            if bad:
                raise CMRRiskError(f"{bad[0]}: the Dask worker at {worker} cannot read this file ({len(bad)} of "
                                   f"the {len(paths)} {what} are missing there); put the cohort on a file "
                                   "system the workers share, at the same path.")

    def map(self, fn, jobs: list, desc: str = "tasks", progress=True, on_crash=None,
            unit: str = "subject", threads: int | None = None, shared: tuple = ()) -> dict:
        """``{key: fn(*shared, *args)}`` for ``jobs`` = [(key, args), ...], submitted in the
        order given. ``fn`` must be a module-level function; ``shared``: leading arguments common
        to every task, sent to each worker once (not with every task); ``on_crash(key, exc)``
        gives the result of a task that raised or whose worker died more than
        ``allowed_failures`` times (None: the exception propagates).
        ``progress``: a :class:`cmrrisk.progress.Progress` (updated as tasks finish; a cancel
        stops before the next task is started or collected), True (the command line's bar or
        JSON lines) or False."""
        from .progress import as_progress

        out: dict = {}
        bar = as_progress(progress if jobs else None, desc=desc, unit=unit)
        done = [0]

        def advance(key):
            done[0] += 1
            bar.update(done[0], len(jobs), f"{desc}: {key} done")

        try:
            bar.update(0, len(jobs), desc)
            self._join()
            if not self.distributed or len(jobs) <= 1 and self.client is None:
                with thread_limits(self.threads):
                    for key, args in jobs:
                        out[key] = fn(*shared, *args)
                        advance(key)
                return out
            started_here = self.client is None
            if started_here:
                self._start()
            try:
                self._map_dask(fn, jobs, out, advance, on_crash, threads, shared)
            finally:
                if started_here and self._depth == 0:
                    self.close()
        finally:
            bar.close()
        return out

    def _map_dask(self, fn, jobs, out, advance, on_crash, threads, shared=()):
        from distributed import as_completed

        slots = self.n_slots()
        if threads is None:
            threads = self.worker_threads(slots)
        limit = max(4, 2 * slots)  # tasks in flight: every worker busy, one more queued each
        tag = uuid.uuid4().hex[:8]
        pending = iter(enumerate(jobs))
        keys = {}
        if shared:  # one copy on every worker, the tasks refer to it
            ref = self.client.scatter(list(shared), broadcast=True, hash=False)

        def submit(i, key, args):
            if shared:
                f = self.client.submit(_call_shared, fn, threads, ref, args, key=f"cmrrisk-{tag}-{i}", pure=False)
            else:
                f = self.client.submit(_call, fn, threads, args, key=f"cmrrisk-{tag}-{i}", pure=False)
            keys[f.key] = key
            return f

        first = []
        for i, (key, args) in pending:
            first.append(submit(i, key, args))
            if len(first) >= limit:
                break
        ac = as_completed(first, loop=self.client.loop)
        for f in ac:
            key = keys.pop(f.key)
            try:
                out[key] = f.result()
            except Exception as exc:  # the task raised, or its workers kept dying
                if on_crash is None:
                    raise
                out[key] = on_crash(key, exc)
            f.release()
            nxt = next(pending, None)
            if nxt is not None:
                ac.add(submit(nxt[0], *nxt[1]))
            advance(key)

    def map_ordered(self, fn, arglist: list, desc: str = "fits", progress: bool = False,
                    shared: tuple = (), cost=None) -> list:
        """``[fn(*shared, *args) for args in arglist]``, the calls run as independent tasks; with
        ``cost`` (one number per call), the costliest are submitted first, so that the last
        tasks to finish are short ones and no worker waits long for another."""
        order = list(range(len(arglist)))
        if cost is not None:
            order.sort(key=lambda i: -cost[i])  # stable: equal costs keep their order
        res = self.map(fn, [(i, arglist[i]) for i in order], desc=desc, progress=progress, unit="fit",
                       shared=shared)
        return [res[i] for i in range(len(arglist))]


def job_options(options: dict, dashboard: bool = False) -> dict:
    """Keyword arguments of a dask-jobqueue cluster: one worker process per job with one thread
    per core it asks for."""
    cores = int(options.get("cores") or 1)
    kw = {"cores": cores, "processes": int(options.get("processes") or cores),
          "memory": options.get("memory") or f"{4 * cores}GB",
          "walltime": options.get("walltime") or "04:00:00",
          "scheduler_options": {"dashboard_address": ":8787" if dashboard else None},
          "job_name": "cmrrisk"}
    if options.get("queue"):
        kw["queue"] = options["queue"]
    if options.get("account"):
        kw["account"] = options["account"]
    if options.get("python"):
        kw["python"] = options["python"]
    if options.get("prologue"):
        kw["job_script_prologue"] = list(options["prologue"])
    return kw


def job_script(cluster_type: str, options: dict | None = None, scheduler: str = "tcp://SCHEDULER:8786") -> str:
    """The batch script of one worker job that ``--cluster`` submits (rendered only: nothing
    is started or submitted); ``scheduler`` stands for the address the running command fills in."""
    if cluster_type not in CLUSTER_TYPES:
        raise CMRRiskError(f"--cluster {cluster_type}: give one of {', '.join(CLUSTER_TYPES)}.")
    try:  # optional, as in Engine._jobqueue_cluster
        PBSJob = importlib.import_module("dask_jobqueue.pbs").PBSJob
        SLURMJob = importlib.import_module("dask_jobqueue.slurm").SLURMJob
    except ImportError:
        raise CMRRiskError(f"--cluster {cluster_type} needs the dask-jobqueue package: "
                           "pip install dask-jobqueue==0.9.0.") from None
    kw = job_options(options or {})
    kw.pop("scheduler_options")
    job = {"slurm": SLURMJob, "pbs": PBSJob}[cluster_type](scheduler=scheduler, name="cmrrisk-worker", **kw)
    return job.job_script()


#: the engine used when a caller gives none (set by the command line for the whole command)
_DEFAULT: list = [None]


def default_engine() -> Engine | None:
    return _DEFAULT[0]


def set_default_engine(engine: Engine | None) -> None:
    _DEFAULT[0] = engine


def run_subjects(fn, jobs: list, workers: int | None = None, desc: str = "subjects",
                 progress=True, on_crash=None, engine: Engine | None = None) -> dict:
    """``{key: fn(*args)}`` for ``jobs`` = [(key, args), ...] on ``engine`` (default: the
    command's engine, else ``workers`` local workers; one worker runs in this process). ``fn``
    must be a module-level function (picklable) that handles its own errors; ``on_crash(key,
    exc)`` gives the result for a task whose worker died."""
    if engine is None and workers is None:
        engine = default_engine()
    if engine is None:
        engine = Engine(workers=n_workers(workers, len(jobs)), verbose=False)
    return engine.map(fn, jobs, desc=desc, progress=progress, on_crash=on_crash)


#: a model search on fewer training subjects than this runs in this process unless workers,
#: a scheduler or a cluster were asked for (starting worker processes costs seconds)
MIN_SUBJECTS_FOR_WORKERS = 500


def map_fits(fn, arglist: list, engine: Engine | None = None, size: int | None = None,
             shared: tuple = (), cost=None) -> list:
    """``[fn(*shared, *args) for args in arglist]`` for independent model fits, results in the
    order given: on the command's engine when there is one (with a progress line that states
    the remaining time), else in this process. ``size``: training subjects, to keep small
    searches in this process when the user did not ask for workers; ``shared``: the arguments
    common to every fit (the training data), sent to each worker once; ``cost``: a relative
    cost per fit (the costliest start first)."""
    engine = engine or default_engine()
    if not fits_on_workers(len(arglist), size, engine):
        with thread_limits(engine.threads if engine is not None else None):
            return [fn(*shared, *a) for a in arglist]
    return engine.map_ordered(fn, arglist, desc="model fits", progress=engine.verbose, shared=shared, cost=cost)


def fits_on_workers(n_fits: int, size: int | None = None, engine: Engine | None = None) -> bool:
    """Whether :func:`map_fits` would run ``n_fits`` fits on ``size`` subjects on the workers of
    ``engine`` (default: the command's engine) rather than in this process."""
    engine = engine or default_engine()
    if engine is None or not engine.distributed or n_fits < 2:
        return False
    asked = (engine.client is not None or engine._starting is not None or engine.workers is not None
             or engine.scheduler or engine.cluster_type)
    return bool(asked or size is None or size >= MIN_SUBJECTS_FOR_WORKERS)


def add_engine_arguments(parser, shard: bool = False, threads: bool = True) -> None:
    """The engine options of a cohort command (and ``--shard`` when it can be split; ``threads``
    False: the command has its own ``--threads``, which the engine then uses too)."""
    g = parser.add_argument_group("where the work runs")
    g.add_argument("--workers", type=int, default=None,
                   help="local worker processes (default: all cores; 1: in this process)")
    g.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                   help="run the tasks on the workers of this Dask scheduler")
    g.add_argument("--cluster", default=None, choices=list(CLUSTER_TYPES),
                   help="submit Dask workers as batch jobs (dask-jobqueue); see --jobs, --job-cores, "
                   "--job-memory, --job-walltime, --job-queue, --job-account")
    g.add_argument("--jobs", type=int, default=None, help="batch jobs for --cluster (default 1)")
    g.add_argument("--job-cores", type=int, default=None, help="cores (worker processes) per batch job (default 1)")
    g.add_argument("--job-memory", default=None, help="memory per batch job (default 4GB per core)")
    g.add_argument("--job-walltime", default=None, help="wall time per batch job (default 04:00:00)")
    g.add_argument("--job-queue", default=None, help="queue / partition of the batch jobs")
    g.add_argument("--job-account", default=None, help="account / project charged for the batch jobs")
    if threads:
        g.add_argument("--threads", type=int, default=None,
                       help="threads of each worker (torch, BLAS, ITK); default: the cores shared out among "
                       "the local workers, 1 on a scheduler's or batch workers; with --workers 1, the threads "
                       "of this process")
    g.add_argument("--dashboard", action="store_true", help="serve the Dask dashboard and print its address")
    if shard:
        g.add_argument("--shard", default=None, metavar="I/N",
                       help="process only the I-th of N equal blocks of the manifest's subjects (1 <= I <= N); "
                       "join the outputs with `cmrrisk merge-shards`")


def engine_from_args(args) -> Engine:
    if getattr(args, "jobs", None) is not None and getattr(args, "cluster", None) is None:
        raise CMRRiskError("--jobs: give it with --cluster slurm|pbs (batch jobs of workers).")
    opts = {"cores": getattr(args, "job_cores", None), "memory": getattr(args, "job_memory", None),
            "walltime": getattr(args, "job_walltime", None), "queue": getattr(args, "job_queue", None),
            "account": getattr(args, "job_account", None)}
    return Engine(workers=getattr(args, "workers", None), scheduler=getattr(args, "scheduler", None),
                  cluster=getattr(args, "cluster", None), jobs=getattr(args, "jobs", None) or 1,
                  dashboard=getattr(args, "dashboard", False), cluster_options=opts,
                  threads=getattr(args, "threads", None),
                  verbose=not getattr(args, "quiet", False) or bool(getattr(args, "dashboard", False)))
