"""One way to run a function over a cohort's subjects: in this process (one worker) or in
``spawn``-started worker processes (one per core by default), with a progress bar
(:func:`cmrrisk.progress.progress_bar`)."""

from __future__ import annotations

import os
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed


def _init_worker(threads: int) -> None:
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:  # pragma: no cover
        pass


def n_workers(workers: int | None, n_jobs: int) -> int:
    return max(1, min(workers or os.cpu_count() or 1, n_jobs or 1))


def run_subjects(fn, jobs: list, workers: int | None = None, desc: str = "subjects",
                 progress: bool = True, on_crash=None) -> dict:
    """``{key: fn(*args)}`` for ``jobs`` = [(key, args), ...]. ``fn`` must be a module-level
    function (picklable) that handles its own errors; ``on_crash(key, exc)`` gives the result for
    a worker process that died. Worker processes get an equal share of the cores as torch
    threads."""
    n = n_workers(workers, len(jobs))
    out: dict = {}
    bar = None
    if progress and jobs:
        from .progress import progress_bar

        bar = progress_bar(total=len(jobs), unit="subject", desc=desc, file=sys.stderr)
    try:
        if n == 1:
            for key, args in jobs:
                out[key] = fn(*args)
                if bar is not None:
                    bar.update(1)
        else:
            import multiprocessing as mp

            threads = max(1, (os.cpu_count() or 1) // n)
            with ProcessPoolExecutor(n, mp_context=mp.get_context("spawn"),
                                     initializer=_init_worker, initargs=(threads,)) as ex:
                futs = {ex.submit(fn, *args): key for key, args in jobs}
                for f in as_completed(futs):
                    try:
                        out[futs[f]] = f.result()
                    except Exception as exc:  # a crashed worker process
                        if on_crash is None:
                            raise
                        out[futs[f]] = on_crash(futs[f], exc)
                    if bar is not None:
                        bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return out
