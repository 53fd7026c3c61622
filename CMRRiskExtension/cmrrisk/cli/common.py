"""Helpers shared by the command groups of the ``cmrrisk`` command line: number formatting,
PyTorch threads, the checks of every command's arguments before any work, and the one-line
message of an operating-system error."""

from __future__ import annotations

import math
import os

from ..errors import CMRRiskError


def fmt(x, nd=3):
    """A number for a table: integers as they are, others with ``nd`` decimals, none or NaN as "nan"."""
    if isinstance(x, int) and not isinstance(x, bool):
        return str(x)
    return "nan" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{nd}f}"


def set_threads(n):
    """PyTorch's CPU threads, when ``n`` is given."""
    if n:
        import torch

        torch.set_num_threads(int(n))


#: option -> (smallest allowed value, what it means); checked for every command that has it
MINIMUM = {
    "threads": (1, "CPU threads"), "workers": (1, "parallel workers"), "batch": (2, "crops per iteration"),
    "iterations": (1, "training iterations"), "max_epochs": (1, "epochs"), "n": (1, "subjects"),
    "k": (0, "similar subjects (0: none)"), "seed": (0, "random seed"), "bootstrap": (0, "bootstrap resamples"),
    "max_features": (1, "features to keep"), "explain": (0, "subjects to explain"),
    "jobs": (1, "batch jobs of workers"), "job_cores": (1, "cores per batch job"),
}
#: command -> output options and whether each names a folder ("dir") or a file ("file")
OUTPUTS = {
    "segment": {"out": "dir"}, "evaluate-segmentation": {"json": "file"}, "features": {"out": "file"},
    "predict": {"out": "file"}, "evaluate": {"json": "file"}, "manifest": {"out": "file"},
    "train": {"out": "dir"}, "train-segmentation": {"out": "dir"}, "average-segmentation": {"out": "dir"},
    "synth": {"out": "dir"}, "qc": {"out": "dir"}, "explain": {"out": "dir"}, "demo": {"out": "dir"},
    "report": {"out": "file"}, "merge-shards": {"out": "file"}, "merge-qc-shards": {"out": "dir"},
}


#: options that name a command's input files (an output must never be one of them)
INPUTS = ("manifest", "inputs", "shards", "train", "test", "qc", "extra", "reference", "radiomics_params")


def check_arguments(args) -> None:
    """Refuse, before any work, numbers out of range and outputs that cannot be written: an
    existing folder where a file is to be written or the reverse, or a location whose nearest
    existing folder is not writable."""
    for name, (low, what) in MINIMUM.items():
        value = getattr(args, name, None)
        if value is not None and value < low:
            raise CMRRiskError(f"--{name.replace('_', '-')} {value}: give at least {low} ({what}).")
    lr = getattr(args, "lr", None)
    if lr is not None and not (lr > 0 and math.isfinite(lr)):
        raise CMRRiskError(f"--lr {lr}: give a positive learning rate.")
    cv = getattr(args, "cv", None)
    if cv is not None and (cv < 0 or cv == 1 or (cv == 0 and args.command == "demo")):
        raise CMRRiskError(f"--cv {cv}: give at least 2 folds" + (" (or 0: no cross-validation)." if args.command != "demo" else "."))
    inputs = {}
    for name in INPUTS:
        values = getattr(args, name, None)
        for v in values if isinstance(values, list) else [values]:
            if isinstance(v, str) and os.path.isfile(v):
                inputs.setdefault(os.path.abspath(v), f"--{name.replace('_', '-')}" if name not in ("manifest", "inputs") else name)
    for option, kind in OUTPUTS.get(args.command, {}).items():
        path = getattr(args, option, None)
        if not isinstance(path, str) or not path:
            continue
        flag = f"--{option}"
        if kind == "file" and os.path.abspath(path) in inputs:
            raise CMRRiskError(f"{flag} {path}: this is an input of the command ({inputs[os.path.abspath(path)]}); "
                               "write to another file.")
        if args.command == "report" and not path.lower().endswith((".html", ".htm")):
            raise CMRRiskError(f"{flag} {path}: the report is an HTML file; give a name ending in .html.")
        if kind == "file" and os.path.isdir(path):
            raise CMRRiskError(f"{flag} {path}: is a folder; give a file name.")
        if kind == "dir" and os.path.exists(path) and not os.path.isdir(path):
            raise CMRRiskError(f"{flag} {path}: is a file; give a folder.")
        parent = os.path.abspath(path if kind == "dir" else os.path.dirname(os.path.abspath(path)))
        while not os.path.exists(parent):
            parent = os.path.dirname(parent)
        if not os.path.isdir(parent):
            raise CMRRiskError(f"{flag} {path}: {parent} is a file, so nothing can be written below it.")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise CMRRiskError(f"{flag} {path}: no permission to write in {parent}.")


def os_error_message(exc: OSError) -> str:
    """An operating-system error as one line naming the path (the folder, when the file was a
    temporary one that the user never named)."""
    path = exc.filename or ""
    base = os.path.basename(path)
    if base.startswith(".") and ("tmp" in base or base.count(".") >= 2):
        path = os.path.dirname(path) or path
    return f"{path}: {exc.strerror or exc}" if path else str(exc)


def torchrun_setup(args) -> None:
    """Under ``torchrun`` (``WORLD_SIZE`` > 1) every process runs the whole command and only the
    network fits are data-parallel (see :mod:`cmrrisk.predict.multiinput`): the engine must be
    the in-process one on each process (engine workers are refused), and only rank 0 reports
    progress. ``train`` runs this way and ``train-segmentation`` its own way
    (:mod:`cmrrisk.segmentation.train`); other commands are refused."""
    from ..distributed import world_size

    world = world_size()
    if world <= 1:
        return
    if args.command == "train-segmentation":
        return
    if args.command != "train":
        raise CMRRiskError(f"{args.command} does not run under torchrun ({world} processes would each "
                           "do the whole work); start it as one process (its --workers run the tasks "
                           "in parallel).")
    asked = [f"--{k} {v}" for k, v in (("workers", getattr(args, "workers", None)),
                                       ("scheduler", getattr(args, "scheduler", None)),
                                       ("cluster", getattr(args, "cluster", None)))
             if v is not None and not (k == "workers" and v == 1)]
    if asked:
        raise CMRRiskError(f"{', '.join(asked)}: engine workers cannot be combined with torchrun "
                           f"({world} processes); under torchrun each process runs the command itself "
                           "and the network fits are data-parallel. Leave the engine options out, or "
                           "run without torchrun.")
    args.workers = 1  # the in-process engine on every process
    if int(os.environ.get("RANK", "0") or 0) != 0:
        from .. import progress

        progress.set_mode("none")

