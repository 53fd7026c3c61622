"""The ``cmrrisk`` command line.

Errors caused by the input print one message naming the file and exit with status 2.
The commands live in their groups' modules (``segmentation.py``, ``cohort.py`` here; the
prediction, QC, explanation, synthetic-data, demo and report commands in their packages);
``common.py`` holds the checks every command's arguments go through.
"""

from __future__ import annotations

import argparse
import sys

from .. import __version__
from ..errors import CMRRiskError
from .cohort import add_commands as add_cohort_commands
from .common import check_arguments, os_error_message, torchrun_setup
from .segmentation import add_commands as add_segmentation_commands


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cmrrisk", description="CMRRisk: cardiac MRI segmentation, "
                                "features, prognostic models and explanations.")
    p.add_argument("--version", action="version", version=f"cmrrisk {__version__}")
    p.add_argument("--progress", default="bar", choices=["bar", "json", "none"],
                   help="progress output: the commands' own bars (default), 'json' (one JSON object "
                   "per line on standard output: event, fraction, message; see cmrrisk/progress.py) "
                   "for programs that start cmrrisk, or none")
    sub = p.add_subparsers(dest="command", required=True)

    add_segmentation_commands(sub)  # segment, evaluate-segmentation, train-segmentation, average-segmentation
    add_cohort_commands(sub)  # manifest, features, merge-shards
    from ..predict.commands import add_commands

    add_commands(sub)  # train, predict, evaluate
    from ..qc import add_commands as add_qc_commands

    add_qc_commands(sub)  # qc
    from ..explain.commands import add_commands as add_explain_commands

    add_explain_commands(sub)  # explain
    from ..synthetic import add_commands as add_synth_commands

    add_synth_commands(sub)  # synth
    from ..demo import add_commands as add_demo_commands

    add_demo_commands(sub)  # demo
    from ..report import add_commands as add_report_commands

    add_report_commands(sub)  # report
    from ..parallel import add_engine_arguments

    for name in ENGINE_COMMANDS:  # their cohort tasks and model fits run on the engine
        add_engine_arguments(sub.choices[name], threads=False)  # they have their own --threads
    return p


#: commands whose subject loops and model fits run on the engine set for the whole command
ENGINE_COMMANDS = ("train", "predict", "evaluate", "explain")


def main(argv=None) -> int:
    from .. import progress

    args = build_parser().parse_args(argv)
    progress.set_mode(args.progress)
    try:
        check_arguments(args)
        torchrun_setup(args)
        if args.command in ENGINE_COMMANDS:
            from ..parallel import engine_from_args, set_default_engine

            with engine_from_args(args) as engine:
                if args.command in ("train", "evaluate"):  # the model fits' imports, on the workers
                    from ..predict.survival_ensemble import WORKER_MODULES

                    engine.warm(WORKER_MODULES)
                elif args.command == "explain" and engine.workers_asked:  # torch and captum
                    from ..explain.cohort import WORKER_MODULES

                    engine.warm(WORKER_MODULES)
                set_default_engine(engine)
                try:
                    status = args.func(args)
                finally:
                    set_default_engine(None)
        else:
            status = args.func(args)
        progress.done(status or 0)
        return status
    except CMRRiskError as exc:
        print(f"cmrrisk {args.command}: error: {exc}", file=sys.stderr)
        progress.error(exc)
        return 2
    except OSError as exc:  # a file or folder that cannot be read or written
        print(f"cmrrisk {args.command}: error: {os_error_message(exc)}", file=sys.stderr)
        progress.error(os_error_message(exc))
        return 2
    except KeyboardInterrupt:
        print(f"cmrrisk {args.command}: interrupted", file=sys.stderr)
        return 130

