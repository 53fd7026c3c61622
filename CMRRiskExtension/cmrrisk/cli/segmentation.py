"""The segmentation commands: ``segment``, ``evaluate-segmentation``, ``train-segmentation``
and ``average-segmentation``."""

from __future__ import annotations

import argparse
import json
import os
import sys

from ..errors import CMRRiskError
from .common import fmt, set_threads


def cmd_segment(args) -> int:
    from ..segmentation.pipeline import segment_inputs

    set_threads(args.threads)
    from .. import progress as P

    # the bar (unless --quiet) or, with --progress json, the JSON lines: frames over all inputs
    bar = P.cli_progress(desc="segment", unit="frame", leave=False) if not args.quiet or P.is_json() else None
    options = {"device": args.device, "progress": bar, "tta": args.tta,
               "check_slice_order": not args.keep_slice_order}
    if args.dicomweb:
        from ..dicomout.web import segment_from_server

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
        from ..parallel import engine_from_args

        with engine_from_args(args) as engine:  # --workers N / --scheduler / --cluster: inputs as tasks
            report = segment_inputs(args.inputs, args.out, model=args.model or "cine", dicom=args.dicom,
                                    engine=engine, **options)
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
    from ..modeldir import write_json
    from ..segmentation.evaluate import FAIL_BURDEN_ERROR_PP, FAIL_SCAR_DICE, evaluate_folders

    res = evaluate_folders(args.pred, args.ref, args.ref_labels)
    short = {"LV blood pool": "LV", "LV myocardium": "Myo", "RV blood pool": "RV", "Myocardium (all)": "Myo",
             "Scar + MVO": "Scar", "Microvascular obstruction": "MVO"}
    print("frame: Dice / HD95 mm per structure (LGE frames: Myo = all myocardial labels, Scar = "
          "scar + MVO, scored where the reference has them; scar burden % pred / ref)")
    for f in res["frames"]:
        m = f["metrics"]
        parts = [f"{short.get(k, k)} {fmt(v['dice'])} / {fmt(v['hd95_mm'], 1)}" for k, v in m.items()
                 if "dice" in v]
        if "scar_burden_pct" in m:
            parts.append(f"burden {fmt(m['scar_burden_pct']['pred'], 1)} / {fmt(m['scar_burden_pct']['ref'], 1)}")
        print(f"{f['name']:28s} " + ", ".join(parts))
    if res["subjects"]:
        print(f"\n{'subject':14s} {'LVEDV':>14s} {'LVESV':>14s} {'LVEF %':>14s} {'LV mass g':>14s} {'RVEF %':>14s}   (pred / ref)")
        for s in res["subjects"]:
            p, r = s["indices_pred"], s["indices_ref"]
            print(f"{s['subject']:14s} " + " ".join(
                f"{fmt(p[k], 1):>6s}/{fmt(r[k], 1):<7s}" for k in ("lv_edv_ml", "lv_esv_ml", "lv_ef_pct", "lv_mass_g", "rv_ef_pct")))
    print("\nsummary:")
    for k, v in res["summary"].items():
        print(f"  {k}: " + ", ".join(f"{kk} {fmt(vv)}" for kk, vv in v.items()))
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


def read_subject_list(value):
    """``--val-subjects``: None, a text file with one subject per line, or comma-separated names."""
    if value is None:
        return None
    if os.path.isfile(value):
        with open(value, encoding="utf-8") as f:
            return [line.strip() for line in f if line.strip() and not line.startswith("#")]
    return [v.strip() for v in value.split(",") if v.strip()]


def cmd_train_segmentation(args) -> int:
    from ..segmentation.train import train

    metrics = train(args.data, args.out, seed=args.seed, device=args.device, use_all=args.all,
                    threads=args.threads, task=args.task, iterations=args.iterations, batch=args.batch,
                    lr=args.lr, init=args.init, val_subjects=read_subject_list(args.val_subjects))
    if metrics:
        s = metrics["summary"]
        print(json.dumps({k: s[k] for k in s if k != "n_subjects"}, indent=1))
    return 0


def cmd_average_segmentation(args) -> int:
    from ..segmentation.train import average_models

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


def add_commands(sub) -> None:
    """Add the segmentation commands to the ``cmrrisk`` subparsers."""
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
    from ..parallel import add_engine_arguments

    add_engine_arguments(s, threads=False)  # several inputs as tasks on Dask workers
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
                   help="fine-tune: start from this model's weights (bundled name or folder); a model of "
                   "the other task gives every layer but its output layer (e.g. --task lge --init cine)")
    t.add_argument("--val-subjects", default=None, metavar="LIST",
                   help="hold out exactly these subjects for validation (comma-separated, or a text file "
                   "with one per line) instead of the split drawn from --seed, e.g. one cross-validation fold")
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
