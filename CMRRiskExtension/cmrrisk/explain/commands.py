"""The ``explain`` subcommand of the ``cmrrisk`` command line.

``cmrrisk explain MODEL_DIR MANIFEST --subject ID --out DIR [--method ig|gradcam|gradshap|occlusion]``
writes, for the subject: one heatmap NIfTI per explained input volume (same shape and affine as
that input), ``<subject>_attributions.csv``, ``<subject>_explanation.json`` (prediction, text,
similar cases) and PNG overlays. ``--subject`` may be repeated; ``--all`` explains every subject.
"""

from __future__ import annotations

import sys

from ..errors import CMRRiskError


def cmd_explain(args) -> int:
    from .. import progress
    from ..parallel import default_engine
    from ..predict.store import load_pipeline
    from ..predict.tabular import load_table
    from ..predict.validation import needs_image_features
    from .cohort import explain_subjects, on_workers
    from .core import load_reference, reference_latents, register_models
    from .saliency import METHODS

    engine = default_engine()  # the command's engine (--workers, --scheduler, --cluster)
    register_models()
    if args.threads:
        import torch

        torch.set_num_threads(int(args.threads))
    pipe = load_pipeline(args.model_dir)
    table = load_table(args.manifest, pipe.endpoint, need_outcome=False,
                       image_features=needs_image_features(pipe))
    subjects = list(table.subjects) if args.all else list(args.subject or [])
    if not subjects:
        raise CMRRiskError("give --subject ID (repeatable) or --all.")
    unknown = [s for s in subjects if s not in set(table.subjects)]
    if unknown:  # checked before any subject is explained: nothing is written then
        raise CMRRiskError(f"{args.manifest}: no subject {', '.join(repr(s) for s in unknown)} "
                           f"(the manifest has {len(table.subjects)} subjects, e.g. {', '.join(list(table.subjects)[:3])}).")
    if args.method not in METHODS:
        raise CMRRiskError(f"--method {args.method!r}: choose one of {', '.join(METHODS)}.")
    if args.method == "gradcam" and not pipe.model.uses_inputs:
        raise CMRRiskError(f"--method gradcam: Grad-CAM needs a convolutional image model (multiinput); "
                           f"{args.model_dir} is a '{pipe.model_name}' model over table columns: use "
                           f"{', '.join(m for m in METHODS if m != 'gradcam')}.")
    reference = None
    if args.k > 0:
        ref_table = load_reference(pipe, args.reference)
        if ref_table is not None:
            print(f"reference cohort: {ref_table.source} ({len(ref_table)} subjects)")
            reference = reference_latents(pipe, ref_table)  # once, here; sent to each worker once
        else:
            print("no reference cohort (the training manifest is not where it was; give --reference): "
                  "no similar cases")
    if on_workers(engine, len(subjects)):  # results come at the end: a bar (or JSON lines) meanwhile
        steps = progress.cli_progress(desc="explain", unit="subject")
    else:  # the per-subject lines below are the human-readable progress; --progress json adds events
        steps = progress.json_progress() if progress.is_json() else progress.Progress()
    options = {"method": args.method, "k": args.k, "layer": args.layer,
               "internal_batch_size": args.internal_batch_size, "png": not args.no_png}
    results = explain_subjects(pipe, table, subjects, options, reference, args.out, engine=engine,
                               progress=steps, on_result=_print_result)
    failed = [r["subject"] for r in results if "error" in r]
    if failed:
        print(f"{len(failed)} of {len(subjects)} subjects could not be explained: {', '.join(failed)}",
              file=sys.stderr)
        return 1
    return 0


def _print_result(r: dict) -> None:
    """The lines of one subject: its sentence and files, or its error on standard error."""
    s = r["subject"]
    if "error" in r:
        print(f"failed: {s}: {r['error']}", file=sys.stderr)
        return
    print(f"{s}: {r['text']}")
    for col, p in r["paths"]["heatmaps"].items():
        reg = r["regions"].get(col, {})
        extra = f" (positive attribution inside the heart dilated by 5 voxels: " \
                f"{100 * reg['heart_dilated_5']:.0f} %)" if "heart_dilated_5" in reg else ""
        print(f"  heatmap {col}: {p}{extra}")
    print(f"  attributions: {r['paths']['attributions']}\n  explanation: {r['paths']['explanation']}")


def add_commands(subparsers) -> None:
    """Register ``explain`` on the ``cmrrisk`` subparsers."""
    from .saliency import DEFAULT_LAYER, METHODS

    p = subparsers.add_parser("explain", help="explain a model's prediction for subjects: saliency "
                              "heatmaps, covariate attributions, similar cases, a sentence")
    p.add_argument("model_dir", metavar="MODEL_DIR")
    p.add_argument("manifest", metavar="MANIFEST")
    p.add_argument("--subject", action="append", help="subject to explain (repeatable)")
    p.add_argument("--all", action="store_true", help="explain every subject of the manifest")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--method", default="ig", choices=list(METHODS),
                   help="image saliency method (default ig: in bench/bench_explain_sanity.py it kept the "
                   "most attribution on the scar / the heart; gradcam is coarser)")
    p.add_argument("--layer", default=DEFAULT_LAYER, help=f"Grad-CAM layer (default {DEFAULT_LAYER})")
    p.add_argument("--k", type=int, default=5, help="number of similar reference subjects (0: none)")
    p.add_argument("--reference", default=None, help="manifest of reference subjects with outcomes "
                   "(default: the model's training manifest)")
    p.add_argument("--internal-batch-size", type=int, default=16,
                   help="Integrated Gradients: path points per forward pass (bounds memory)")
    p.add_argument("--no-png", action="store_true", help="skip the PNG overlays")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for PyTorch")
    p.set_defaults(func=cmd_explain)
