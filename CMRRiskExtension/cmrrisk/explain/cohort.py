"""Explaining many subjects of a manifest: each subject a task, run in this process or on the
cohort engine's workers (:mod:`cmrrisk.parallel`).

A task (:func:`explain_one`) explains one subject and writes its files; it returns what the
command prints (the sentence, the paths, the heatmap's regions) or the subject's error. On a
worker the model directory is loaded once per process and kept for the next subjects
(:func:`pipeline`, keyed by the folder and its checksums); the reference cohort's latent vectors
are computed once by the caller and sent to every worker once.
"""

from __future__ import annotations

import hashlib
import os

from ..errors import CMRRiskError

#: pipelines kept by a worker process: (model folder, checksums digest) -> Pipeline
_PIPELINES: dict = {}
#: at most this many models are kept per process (a long-lived worker serves several runs)
MAX_PIPELINES = 2
#: what a worker imports before its first subject (see :meth:`cmrrisk.parallel.Engine.warm`)
WORKER_MODULES = ["torch", "captum.attr", "cmrrisk.predict.store", "cmrrisk.predict.multiinput",
                  "cmrrisk.explain.core"]


def model_stamp(model_dir: str) -> str:
    """SHA-256 of the model directory's checksums file: it changes when any file of the model
    changes, so a worker never explains with an older model of the same folder."""
    from ..modeldir import CHECKSUMS

    path = os.path.join(model_dir, CHECKSUMS)
    try:
        with open(path, "rb") as fh:
            return hashlib.sha256(fh.read()).hexdigest()
    except OSError as exc:
        raise CMRRiskError(f"{model_dir}: {CHECKSUMS} cannot be read ({exc.strerror or exc}); "
                           "is this a model directory?") from None


def pipeline(model_dir: str, stamp: str):
    """The pipeline of ``model_dir`` (checksums digest ``stamp``), loaded once per process."""
    key = (os.path.abspath(model_dir), stamp)
    if key not in _PIPELINES:
        from ..predict.store import load_pipeline
        from .core import register_models

        register_models()
        while len(_PIPELINES) >= MAX_PIPELINES:
            _PIPELINES.pop(next(iter(_PIPELINES)))
        _PIPELINES[key] = load_pipeline(model_dir)
    return _PIPELINES[key]


def explain_one(model, options: dict, reference, out_dir: str, table, subject: str) -> dict:
    """Explain ``subject`` of ``table`` and write its files to ``out_dir``.

    ``model``: a loaded pipeline, or (model folder, :func:`model_stamp`) for one loaded once per
    process; ``options``: method, k, layer, internal_batch_size, png; ``reference``: the
    reference cohort's :func:`~cmrrisk.explain.core.reference_latents` (None: no similar cases).
    Returns ``{"subject", "text", "paths", "regions"}``, or ``{"subject", "error"}`` when the
    subject could not be explained (its images unreadable, ...)."""
    from .core import explain_subject, write_explanation

    pipe = pipeline(*model) if isinstance(model, tuple) else model
    try:
        e = explain_subject(pipe, table, subject, options["method"], reference=reference, k=options["k"],
                            layer=options["layer"], internal_batch_size=options["internal_batch_size"])
    except CMRRiskError as exc:
        return {"subject": subject, "error": str(exc)}
    except Exception as exc:  # one subject's unexpected failure must not stop the cohort
        return {"subject": subject, "error": f"{type(exc).__name__}: {exc}"}
    paths = write_explanation(e, out_dir, png=options["png"])
    return {"subject": subject, "text": e.text, "paths": paths, "regions": e.image_regions}


def on_workers(engine, n_subjects: int) -> bool:
    """Whether ``n_subjects`` subjects go to the workers of ``engine``: only when workers, a
    scheduler or a cluster were asked for (starting worker processes and loading the model in
    each costs seconds) and there is more than one subject."""
    return engine is not None and n_subjects > 1 and engine.workers_asked


def input_files(model_dir: str, table, subjects) -> list:
    """The files a worker reads: the model directory's and the subjects' images."""
    files = [os.path.join(model_dir, f) for f in sorted(os.listdir(model_dir))
             if os.path.isfile(os.path.join(model_dir, f))]
    wanted = set(subjects)
    for s, row in zip(table.subjects, table.images or []):
        if s in wanted:
            files.extend(p for c, p in row.items() if c != "subject" and p and os.path.exists(p))
    return files


def explain_subjects(pipe, table, subjects: list, options: dict, reference, out_dir: str, engine=None,
                     progress=None, on_result=None) -> list:
    """Explain ``subjects`` of ``table``: results of :func:`explain_one` in subject order.

    In this process (one after another, ``on_result`` called as each is written) unless
    :func:`on_workers` says the engine's workers take them: then each subject is a task, the
    model loaded once per worker and ``reference`` sent to each worker once, and ``on_result`` is
    called for every subject in order once all are done. ``progress``: a
    :class:`cmrrisk.progress.Progress` (a cancel stops before the next subject)."""
    from ..progress import as_progress

    progress = as_progress(progress)
    on_result = on_result or (lambda r: None)
    if not on_workers(engine, len(subjects)):
        out = []
        for i, s in enumerate(subjects):
            progress.update(i, len(subjects), f"explaining {s}")
            r = explain_one(pipe, options, reference, out_dir, table, s)
            on_result(r)
            out.append(r)
        return out
    engine.check_visible(input_files(pipe.model_dir, table, subjects), "model and image files")
    index = {s: i for i, s in enumerate(table.subjects)}
    model = (os.path.abspath(pipe.model_dir), model_stamp(pipe.model_dir))
    jobs = [(s, (table.subset([index[s]]), s)) for s in subjects]
    done = engine.map(explain_one, jobs, desc="explain", progress=progress, unit="subject",
                      on_crash=lambda s, exc: {"subject": s, "error": f"{type(exc).__name__}: {exc}"},
                      shared=(model, options, reference, os.path.abspath(out_dir)))
    out = [_local_paths(done[s], out_dir) for s in subjects]
    for r in out:
        on_result(r)
    return out


def _local_paths(result: dict, out_dir: str) -> dict:
    """A worker's result with its (absolute) paths named as the caller named ``out_dir``."""
    if "paths" not in result:
        return result

    def here(p):
        return os.path.join(out_dir, os.path.basename(p))

    paths = {k: ({c: here(p) for c, p in v.items()} if isinstance(v, dict) else here(v))
             for k, v in result["paths"].items()}
    return dict(result, paths=paths)
