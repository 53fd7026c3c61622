"""The ``cmrrisk`` command line.

Errors caused by the input print one message naming the file and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

from . import __version__
from .errors import CMRRiskError


def _fmt(x, nd=3):
    if isinstance(x, int) and not isinstance(x, bool):
        return str(x)
    return "nan" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{nd}f}"


def cmd_segment(args) -> int:
    from .segmentation.pipeline import segment_inputs

    _threads(args.threads)
    options = {"device": args.device, "progress": not args.quiet, "tta": args.tta,
               "check_slice_order": not args.keep_slice_order}
    if args.dicomweb:
        from .dicomout.web import segment_from_server

        if args.inputs:
            raise CMRRiskError(f"--dicomweb: give no INPUT ({args.inputs[0]}); the series come from the server "
                               "(--study, --series).")
        if not args.study:
            raise CMRRiskError("--dicomweb needs --study UID (and optionally --series UID).")
        report = segment_from_server(args.dicomweb, args.study, args.series, args.out,
                                     model=args.model or "auto", stow=args.stow, **options)
    else:
        for flag in ("study", "series", "stow"):
            if getattr(args, flag):
                raise CMRRiskError(f"--{flag} needs --dicomweb URL.")
        if not args.inputs:
            raise CMRRiskError("no input given; name one or more images or DICOM folders (or --dicomweb URL --study UID).")
        report = segment_inputs(args.inputs, args.out, model=args.model or "cine", dicom=args.dicom, **options)
    for e in report["inputs"]:
        for r in (e.get("dicom") or {}).get("repairs", []):
            print(f"{os.path.basename(e['input'])}: repaired in the DICOM outputs' copies: {r}", file=sys.stderr)
        flags = ", ".join(e["flags"]) or "none"
        chosen = f"model {e['model']}: {e['model_selected_because']}; " if "model_selected_because" in e else ""
        print(f"{e['output']}  ({chosen}{e['seconds_per_frame']:.2f} s/frame; flags: {flags})")
        if e.get("dicom"):
            print(f"{e['dicom']['folder']}  (DICOM SEG and SR: {', '.join(os.path.basename(f) for f in e['dicom']['files'])})")
    if report.get("dicomweb", {}).get("stored"):
        print(f"stored on {report['dicomweb']['url']}: {len(report['dicomweb']['stored'])} instances (SEG and SR)")
    print(f"report: {os.path.join(args.out, 'segment.json')}")
    return 0


def cmd_evaluate_segmentation(args) -> int:
    from .modeldir import write_json
    from .segmentation.evaluate import FAIL_BURDEN_ERROR_PP, FAIL_SCAR_DICE, evaluate_folders

    res = evaluate_folders(args.pred, args.ref, args.ref_labels)
    short = {"LV blood pool": "LV", "LV myocardium": "Myo", "RV blood pool": "RV", "Myocardium (all)": "Myo",
             "Scar + MVO": "Scar", "Microvascular obstruction": "MVO"}
    print("frame: Dice / HD95 mm per structure (LGE frames: Myo = all myocardial labels, Scar = "
          "scar + MVO, scored where the reference has them; scar burden % pred / ref)")
    for f in res["frames"]:
        m = f["metrics"]
        parts = [f"{short.get(k, k)} {_fmt(v['dice'])} / {_fmt(v['hd95_mm'], 1)}" for k, v in m.items()
                 if "dice" in v]
        if "scar_burden_pct" in m:
            parts.append(f"burden {_fmt(m['scar_burden_pct']['pred'], 1)} / {_fmt(m['scar_burden_pct']['ref'], 1)}")
        print(f"{f['name']:28s} " + ", ".join(parts))
    if res["subjects"]:
        print(f"\n{'subject':14s} {'LVEDV':>14s} {'LVESV':>14s} {'LVEF %':>14s} {'LV mass g':>14s} {'RVEF %':>14s}   (pred / ref)")
        for s in res["subjects"]:
            p, r = s["indices_pred"], s["indices_ref"]
            print(f"{s['subject']:14s} " + " ".join(
                f"{_fmt(p[k], 1):>6s}/{_fmt(r[k], 1):<7s}" for k in ("lv_edv_ml", "lv_esv_ml", "lv_ef_pct", "lv_mass_g", "rv_ef_pct")))
    print("\nsummary:")
    for k, v in res["summary"].items():
        print(f"  {k}: " + ", ".join(f"{kk} {_fmt(vv)}" for kk, vv in v.items()))
    fails = res.get("lge_failures") or []
    if fails:
        print(f"\nLGE cases where the scar is unsafe (scar Dice < {FAIL_SCAR_DICE:.2f} or scar-burden "
              f"error > {FAIL_BURDEN_ERROR_PP:g} points): {len(fails)}")
        for f in fails:
            print(f"  {f['name']:26s} " + "; ".join(f["reasons"]))
    if res["missing_reference"]:
        print(f"no reference for: {', '.join(res['missing_reference'])}", file=sys.stderr)
    if args.json:
        write_json(args.json, res)
        print(f"written: {args.json}")
    return 0


def cmd_train_segmentation(args) -> int:
    from .segmentation.train import train

    metrics = train(args.data, args.out, seed=args.seed, device=args.device, use_all=args.all,
                    threads=args.threads, task=args.task, iterations=args.iterations, batch=args.batch,
                    lr=args.lr, init=args.init)
    if metrics:
        s = metrics["summary"]
        print(json.dumps({k: s[k] for k in s if k != "n_subjects"}, indent=1))
    return 0


def cmd_average_segmentation(args) -> int:
    from .segmentation.train import average_models

    if args.data is not None and not os.path.isdir(args.data):
        raise CMRRiskError(f"--data {args.data}: no such folder (the training data of the two models, to "
                           "measure the average on their validation subjects).")
    metrics = average_models(args.first, args.second, args.out, weight=args.weight, data=args.data,
                             device=args.device)
    if metrics:
        s = metrics["summary"]
        print(json.dumps({k: s[k] for k in s if k != "n_subjects"}, indent=1))
    print(f"averaged model written to {args.out}")
    return 0


def _threads(n):
    if n:
        import torch

        torch.set_num_threads(int(n))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cmrrisk", description="CMRRisk: cardiac MRI segmentation, "
                                "features, prognostic models and explanations.")
    p.add_argument("--version", action="version", version=f"cmrrisk {__version__}")
    p.add_argument("--progress", default="bar", choices=["bar", "json", "none"],
                   help="progress output: the commands' own bars (default), 'json' (one JSON object "
                   "per line on standard output: event, fraction, message; see cmrrisk/progress.py) "
                   "for programs that start cmrrisk, or none")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("segment", help="segment cine frames, 4D cines, LGE stacks or DICOM folders")
    s.add_argument("inputs", nargs="*", metavar="INPUT",
                   help="NIfTI/NRRD/MHA 3D frame or 4D cine, or a folder with one DICOM series")
    s.add_argument("--out", required=True, help="output folder for <name>_seg.nii.gz and segment.json")
    s.add_argument("--model", default=None,
                   help="bundled model name (cine, lge), model directory, or 'auto': cine or lge per "
                   "input from its DICOM headers (trigger times, InversionTime, description) or "
                   "LGE/cine keywords in its name (default: cine; auto with --dicomweb)")
    s.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    s.add_argument("--threads", type=int, default=None, help="CPU threads for PyTorch")
    s.add_argument("--tta", action=argparse.BooleanOptionalAction, default=None,
                   help="average the image and its two in-plane flips; the flipped passes see only the "
                   "heart's bounding box from the unflipped pass widened by 30 mm (slower than a plain "
                   "pass; see the README); default: the model's own setting (on for lge, off for cine)")
    s.add_argument("--keep-slice-order", action="store_true",
                   help="do not reverse a stack that runs the other way than the model's training data "
                   "(cine base to apex, LGE apex to base; read from the image geometry when it holds a real "
                   "short-axis orientation, else judged from the LV area along the stack); "
                   "segment.json's slice_order says what was done")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.add_argument("--dicom", action="store_true",
                   help="DICOM folder inputs also get <name>_dicom/ with one DICOM SEG per segmented frame "
                   "(ED and ES of a cine, the LGE stack) and a DICOM SR measurement report")
    s.add_argument("--dicomweb", metavar="URL", default=None,
                   help="segment series fetched from this DICOMweb server (WADO-RS) instead of INPUTs; "
                   "implies --dicom; credentials from CMRRISK_DICOMWEB_USER/_PASSWORD or _TOKEN")
    s.add_argument("--study", metavar="UID", default=None,
                   help="with --dicomweb: the study; without --series, every short-axis cine or LGE series in it")
    s.add_argument("--series", metavar="UID", default=None, help="with --dicomweb: the one series to segment")
    s.add_argument("--stow", action="store_true",
                   help="with --dicomweb: store the SEG(s) and SR back on the server (STOW-RS, one request; "
                   "nothing is kept if the server refuses any)")
    s.set_defaults(func=cmd_segment)

    e = sub.add_parser("evaluate-segmentation", help="Dice, HD95, volumes and clinical indices "
                       "of predicted vs reference label maps")
    e.add_argument("--pred", required=True, help="folder with <name>_seg.nii.gz predictions")
    e.add_argument("--ref", required=True, help="folder (searched recursively) with references")
    e.add_argument("--ref-labels", default="cmrrisk", choices=["cmrrisk", "acdc"],
                   help="label convention of the references (acdc: 1 RV, 2 myocardium, 3 LV)")
    e.add_argument("--json", help="write all results to this JSON file")
    e.set_defaults(func=cmd_evaluate_segmentation)

    t = sub.add_parser("train-segmentation", help="train a segmentation model (cine on ACDC, "
                       "LGE on EMIDEC)")
    t.add_argument("--data", required=True, help="ACDC training folder (patientNNN/Info.cfg, frames, "
                   "_gt) for --task cine; EMIDEC folder (images/, masks/) for --task lge")
    t.add_argument("--task", default="cine", choices=["cine", "lge"])
    t.add_argument("--out", required=True, help="model directory to write (checkpoints resume)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    t.add_argument("--iterations", type=int, default=None,
                   help="training iterations (default 8000 for cine, 2000 for lge)")
    t.add_argument("--batch", type=int, default=None, help="crops per iteration (default 16)")
    t.add_argument("--threads", type=int, default=None, help="CPU threads for PyTorch")
    t.add_argument("--lr", type=float, default=None, help="peak learning rate (default 2e-3)")
    t.add_argument("--init", default=None, metavar="MODEL_DIR",
                   help="fine-tune: start from this model's weights (same task; bundled name or folder)")
    t.add_argument("--all", action="store_true", help="train on all subjects (no validation split)")
    t.set_defaults(func=cmd_train_segmentation)
    a = sub.add_parser("average-segmentation", help="average the weights of a segmentation model "
                       "and its fine-tune (same task, network and training split)")
    a.add_argument("first", metavar="A", help="first model (bundled name or folder)")
    a.add_argument("second", metavar="B", help="second model, e.g. A fine-tuned with --init A")
    a.add_argument("--weight", type=float, default=0.5,
                   help="share of B in the average (default 0.5: the midpoint)")
    a.add_argument("--data", default=None, help="the training data folder: measure the average on "
                   "the split's validation subjects and put the figures in the model card")
    a.add_argument("--out", required=True, help="model directory to write")
    a.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    a.set_defaults(func=cmd_average_segmentation)
    m = sub.add_parser("manifest", help="turn a public dataset into a cohort manifest")
    m.add_argument("dataset", choices=["acdc", "emidec", "sunnybrook"])
    m.add_argument("folder", help="the dataset's folder")
    m.add_argument("--out", required=True, help="manifest CSV to write (volumes go beside it)")
    m.set_defaults(func=cmd_manifest)

    f = sub.add_parser("features", help="clinical indices, radiomics and deep features of every "
                       "subject of a manifest")
    f.add_argument("manifest", help="cohort manifest CSV (see cmrrisk/manifest.py for the format)")
    f.add_argument("--out", required=True, help="features CSV to write (provenance JSON beside it)")
    f.add_argument("--cache", default=None, help="cache folder of finished subjects "
                   "(default: <out>_cache beside the CSV); a rerun only computes what changed")
    f.add_argument("--radiomics-params", default=None, help="pyradiomics YAML (default: the bundled one)")
    f.add_argument("--no-radiomics", action="store_true", help="skip radiomic features")
    f.add_argument("--no-deep", action="store_true", help="skip deep features")
    f.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    f.add_argument("--quiet", action="store_true", help="no progress bar")
    from .parallel import add_engine_arguments

    add_engine_arguments(f, shard=True)
    f.set_defaults(func=cmd_features)

    g = sub.add_parser("merge-shards", help="join the features tables of `features --shard I/N` runs into "
                       "the table of a single run")
    g.add_argument("shards", nargs="+", metavar="SHARD_CSV", help="the N shards' features CSVs (provenance "
                   "JSON beside each)")
    g.add_argument("--out", required=True, help="features CSV to write (provenance JSON beside it)")
    g.set_defaults(func=cmd_merge_shards)

    from .predict.commands import add_commands

    add_commands(sub)  # train, predict, evaluate
    from .qc import add_commands as add_qc_commands

    add_qc_commands(sub)  # qc
    from .explain.commands import add_commands as add_explain_commands

    add_explain_commands(sub)  # explain
    from .synthetic import add_commands as add_synth_commands

    add_synth_commands(sub)  # synth
    from .demo import add_commands as add_demo_commands

    add_demo_commands(sub)  # demo
    from .report import add_commands as add_report_commands

    add_report_commands(sub)  # report
    from .parallel import add_engine_arguments

    for name in ENGINE_COMMANDS:  # their cohort tasks and model fits run on the engine
        add_engine_arguments(sub.choices[name])
    return p


#: commands whose subject loops and model fits run on the engine set for the whole command
ENGINE_COMMANDS = ("train", "predict", "evaluate", "explain")


def cmd_manifest(args) -> int:
    from . import manifest as M

    make = {"acdc": M.acdc_manifest, "emidec": M.emidec_manifest, "sunnybrook": M.sunnybrook_manifest}
    rows = make[args.dataset](args.folder, args.out)
    print(f"{args.out}: {len(rows)} subjects")
    return 0


def cmd_features(args) -> int:
    from .features.cohort import write_features

    from .parallel import engine_from_args, parse_shard

    opts = {"radiomics": not args.no_radiomics, "deep": not args.no_deep,
            "radiomics_params": args.radiomics_params, "device": args.device}
    shard = parse_shard(args.shard)
    with engine_from_args(args) as engine:
        prov = write_features(args.manifest, args.out, cache_dir=args.cache, options=opts,
                              progress=not args.quiet, engine=engine, shard=shard)
    for f in prov["failures"]:
        print(f"failed: {f['subject']}: {f['error']}", file=sys.stderr)
    print(f"{args.out}: {prov['n_subjects'] - prov['n_failed']} subjects, {prov['columns']['n_features']} "
          f"features ({prov['n_computed']} computed, {prov['n_cached']} from cache, {prov['n_failed']} failed); "
          f"provenance: {args.out[:-4] if args.out.lower().endswith('.csv') else args.out}.provenance.json")
    return 0


def cmd_merge_shards(args) -> int:
    from .features.cohort import merge_shards, provenance_path

    prov = merge_shards(args.shards, args.out)
    print(f"{args.out}: {prov['n_subjects'] - prov['n_failed']} subjects, {prov['columns']['n_features']} features "
          f"from {len(prov['shards'])} shards ({prov['n_failed']} failed); provenance: {provenance_path(args.out)}")
    return 0


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
    "report": {"out": "file"}, "merge-shards": {"out": "file"},
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


def _os_error_message(exc: OSError) -> str:
    """An operating-system error as one line naming the path (the folder, when the file was a
    temporary one that the user never named)."""
    path = exc.filename or ""
    base = os.path.basename(path)
    if base.startswith(".") and ("tmp" in base or base.count(".") >= 2):
        path = os.path.dirname(path) or path
    return f"{path}: {exc.strerror or exc}" if path else str(exc)


def main(argv=None) -> int:
    from . import progress

    args = build_parser().parse_args(argv)
    progress.set_mode(args.progress)
    try:
        check_arguments(args)
        if args.command in ENGINE_COMMANDS:
            from .parallel import engine_from_args, set_default_engine

            with engine_from_args(args) as engine:
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
        print(f"cmrrisk {args.command}: error: {_os_error_message(exc)}", file=sys.stderr)
        progress.error(_os_error_message(exc))
        return 2
    except KeyboardInterrupt:
        print(f"cmrrisk {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
