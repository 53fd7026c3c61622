"""The ``report`` subcommand of the ``cmrrisk`` command line."""

from __future__ import annotations

import json


from ..errors import CMRRiskError
from .build import write_report
from .format import with_ci


# ------------------------------------------------------------------------------ command line

def cmd_report(args) -> int:
    from .. import progress

    if args.threads:
        import torch

        torch.set_num_threads(int(args.threads))
    extra = None
    if args.extra:
        try:
            with open(args.extra) as f:
                extra = json.load(f)
        except (OSError, ValueError) as exc:
            raise CMRRiskError(f"{args.extra}: not a readable JSON file ({exc}).") from exc
        if not isinstance(extra, dict):
            raise CMRRiskError(f"{args.extra}: must hold a JSON object (keys: data_source, metrics, notes, ...).")
    expl = [e for group in (args.explanations or []) for e in (group if isinstance(group, list) else [group])]
    res = write_report(args.out, args.model, train_manifest=args.train, test_manifest=args.test, qc=args.qc,
                       explanations=expl, extra=extra, title=args.title, n_boot=args.bootstrap, seed=args.seed,
                       cache_dir=args.cache_dir, progress=progress.json_progress() if progress.is_json() else progress.Progress.printing(print))
    for m in res["models"]:
        r = m.get("test") or m.get("apparent")
        if r is None:
            continue
        what = "test" if m.get("test") else "apparent"
        if res["endpoint"] == "survival":
            print(f"{m['label']}: {what} Harrell's C {with_ci(r, 'c_index_harrell')}")
        else:
            print(f"{m['label']}: {what} balanced accuracy {with_ci(r, 'balanced_accuracy')}")
    print(f"limitations: {len(res['limitations'])}; figures: {len(res['figures'])}")
    return 0


def add_commands(subparsers) -> None:
    """Register ``report`` on the ``cmrrisk`` subparsers."""
    p = subparsers.add_parser("report", help="TRIPOD+AI-style HTML report of one or several models: data, QC, "
                              "participants, predictors, validation, discrimination, calibration, Kaplan-Meier, "
                              "explanations, limitations")
    p.add_argument("--model", action="append", required=True, metavar="MODEL_DIR",
                   help="model directory from 'cmrrisk train' (repeat for several models of one endpoint)")
    p.add_argument("--train", default=None, metavar="MANIFEST", help="development manifest (participants, outcomes)")
    p.add_argument("--test", default=None, metavar="MANIFEST",
                   help="held-out or external manifest with outcomes; every model is evaluated on it")
    p.add_argument("--qc", default=None, metavar="QC", help="qc.json of 'cmrrisk qc', or its folder")
    p.add_argument("--explanations", nargs="+", action="append", default=None, metavar="DIR",
                   help="output folder(s) of 'cmrrisk explain'")
    p.add_argument("--extra", default=None, metavar="JSON", help="JSON object with more facts to show "
                   "(data_source text, metrics, notes, synthetic: true)")
    p.add_argument("--out", required=True, metavar="REPORT.html", help="HTML file to write")
    p.add_argument("--title", default=None)
    p.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples for 95%% intervals (default 200)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache-dir", default=None, help="image feature cache (as for 'cmrrisk evaluate')")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for PyTorch")
    p.set_defaults(func=cmd_report)
