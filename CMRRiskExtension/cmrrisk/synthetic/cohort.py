"""The cohort: subjects written to disk with a manifest and ``synthetic.json``, the oracle C-index, ``cmrrisk synth``."""

from __future__ import annotations

import csv
import json
import os
import sys

import numpy as np

from ..progress import as_progress
from .model import COLUMNS, HAZARD, TRUE_COLUMNS, VERSION, draw_subject, hazard_formula, log_hazard
from .shapes import RVEF_SHIFT, RV_SHAPE, TERRITORIES, subject_labels
from .render import (APEX_FIRST, CINE_EPI_BAND, CINE_NOISE_FACTOR, LGE_EPI_RIM, LGE_TEXTURE, REFERENCE, TRABECULAE,
    affine, affine_apex_first, render_subject)


# ----------------------------------------------------------------------------- cohort

def _event_time(rng, lh):
    h = HAZARD
    u = rng.random()
    t = (-np.log(u) / (h["weibull_scale_per_year"] * np.exp(lh))) ** (1.0 / h["weibull_shape"])
    admin = rng.uniform(*h["admin_censoring_years"])
    drop = rng.exponential(1.0 / h["dropout_rate_per_year"])
    c = min(admin, drop)
    return (float(t), 1) if t <= c else (float(c), 0)


def _subject(i: int, ss: np.random.SeedSequence, out_dir: str | None) -> dict:
    """One subject's manifest row; images and label maps are written only with ``out_dir``."""
    from ..metrics import clinical_indices, scar_burden_pct

    sid = f"SYN{i + 1:03d}"
    r_par, r_img, r_out = (np.random.default_rng(s) for s in ss.spawn(3))
    p = draw_subject(r_par)
    res = render_subject(p, r_img) if out_dir else subject_labels(p, 1)
    sp = (p["spacing"], p["spacing"], p["dz"])
    ef = clinical_indices(res["ed"], res["es"], sp)["lv_ef_pct"]
    scar = scar_burden_pct(res["lge"])
    lh = log_hazard(ef, scar, p["age"], p["diabetes"], p["sex"])
    t, ev = _event_time(r_out, lh)
    row = {"subject": sid}
    if out_dir:
        from ..image import Volume, write_image

        for role, key in (("cine_ed", "ed"), ("cine_es", "es"), ("lge", "lge")):
            rel_img, rel_seg = f"{sid}/{role}.nii.gz", f"{sid}/{role}_seg.nii.gz"
            img, lab = res[key + "_img"], res[key].astype(np.uint8)
            aff = affine(p)
            if APEX_FIRST[role]:
                img, lab, aff = img[::-1].copy(), lab[::-1].copy(), affine_apex_first(p)
            write_image(Volume(img, aff), os.path.join(out_dir, rel_img))
            write_image(Volume(lab, aff), os.path.join(out_dir, rel_seg))
            row[role], row[role + "_seg"] = rel_img, rel_seg
    row.update({"age": f"{p['age']:.1f}", "sex": p["sex"], "diabetes": p["diabetes"],
                "time": f"{t:.4f}", "event": ev, "true_lvef": f"{ef:.4f}",
                "true_scar_burden": f"{scar:.4f}", "true_log_hazard": f"{lh:.6f}"})
    return row


def cohort_truth(n: int = 60, seed: int = 0) -> list:
    """The manifest rows of :func:`generate_cohort` (same ``n``, ``seed``) without writing images:
    covariates, outcome and true_* values (label maps are built in memory to measure LVEF and
    scar burden)."""
    return [_subject(i, ss, None) for i, ss in enumerate(np.random.SeedSequence(seed).spawn(n))]


def _progress_line(i, n, row) -> str:
    return (f"synth {i}/{n}: {row['subject']} LVEF {float(row['true_lvef']):.1f} % scar "
            f"{float(row['true_scar_burden']):.1f} % "
            f"{'event' if row['event'] else 'censored'} at {float(row['time']):.2f} y")


def generate_cohort(out_dir: str, n: int = 60, seed: int = 0, progress=True,
                    workers: int | None = None) -> str:
    """Write ``n`` synthetic subjects, ``manifest.csv`` and ``synthetic.json`` under ``out_dir``;
    return the manifest's path. The same ``seed`` gives the same arrays and tables.
    ``progress``: True prints a line per subject on stderr (a progress bar with several
    workers); a :class:`cmrrisk.progress.Progress` is updated per subject (its cancel stops
    before the next subject; nothing is left in ``out_dir`` then).
    ``workers``: None or 1 generates the subjects in this process; more generates them in that
    many ``spawn``-started processes (:func:`cmrrisk.parallel.run_subjects`). Every subject draws
    from its own child of ``SeedSequence(seed)``, so the output is identical either way."""
    import shutil
    import tempfile

    from ..errors import CMRRiskError

    if n < 1:
        raise ValueError("n must be at least 1")
    if seed < 0:
        raise ValueError("seed must be 0 or more")
    final = os.path.abspath(out_dir)
    if os.path.exists(final) and not os.path.isdir(final):
        raise CMRRiskError(f"{out_dir}: is a file; give a folder for the cohort.")
    if os.path.isdir(final):
        from ..modeldir import refuse_other_files

        refuse_other_files(out_dir, set(os.listdir(final)) - _cohort_files(final), "a synthetic cohort",
                           "a previous synthetic cohort with nothing added to it")
    parent = os.path.dirname(final)
    os.makedirs(parent, exist_ok=True)
    # built under a temporary name beside the target, renamed when complete: a failure leaves
    # nothing half-written (the manifest's paths are relative, so they hold after the rename)
    work = tempfile.mkdtemp(prefix=f".{os.path.basename(final)}.partial-", dir=parent)
    try:
        man = _generate(work, n, seed, progress, workers)
        if os.path.isdir(final) and os.listdir(final):  # a previous cohort: replaced whole
            old = tempfile.mkdtemp(prefix=f".{os.path.basename(final)}.old-", dir=parent)
            os.rmdir(old)
            os.replace(final, old)
            os.replace(work, final)
            shutil.rmtree(old)
        else:
            if os.path.isdir(final):
                os.rmdir(final)
            os.replace(work, final)
        os.chmod(final, 0o755)  # mkdtemp makes 0700
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return os.path.join(final, os.path.basename(man))


def _cohort_files(folder: str) -> set:
    """What a cohort written by :func:`generate_cohort` holds at its top level: ``manifest.csv``,
    ``synthetic.json`` and one folder per subject of its manifest (empty when ``folder`` is not
    such a cohort)."""
    man = os.path.join(folder, "manifest.csv")
    if not (os.path.isfile(man) and os.path.isfile(os.path.join(folder, "synthetic.json"))):
        return set()
    with open(man, newline="") as fh:
        subjects = {r.get("subject", "") for r in csv.DictReader(fh)}
    return {"manifest.csv", "synthetic.json"} | {s for s in subjects if s and os.path.isdir(os.path.join(folder, s))}


def _generate(out_dir: str, n: int, seed: int, progress, workers) -> str:
    """:func:`generate_cohort` into ``out_dir`` (an empty folder)."""
    from ..manifest import write_csv

    seqs = np.random.SeedSequence(seed).spawn(n)
    if workers is not None and workers > 1 and n > 1:
        from ..parallel import run_subjects

        jobs = [(i, (i, ss, out_dir)) for i, ss in enumerate(seqs)]
        done = run_subjects(_subject, jobs, workers=workers, desc="synth", progress=progress)
        rows = [done[i] for i in range(n)]
    else:
        own = None if progress is None or isinstance(progress, bool) else as_progress(progress)
        rows = []
        for i, ss in enumerate(seqs):
            if own is not None:
                own.update(i, n, f"subject {i + 1}/{n}")
            row = _subject(i, ss, out_dir)
            rows.append(row)
            if own is None and progress:
                print(_progress_line(i + 1, n, row), file=sys.stderr, flush=True)
        if own is not None:
            own.update(n, n, f"{n} subjects")
    man = os.path.join(out_dir, "manifest.csv")
    write_csv(man, list(COLUMNS), rows)
    desc = {
        "generator": "cmrrisk.synthetic", "version": VERSION, "seed": seed, "n": n,
        "labels": {"0": "background", "1": "LV blood pool", "2": "LV myocardium",
                   "3": "RV blood pool (cine only)", "4": "scar (LGE)", "5": "MVO (LGE)"},
        "hazard": dict(HAZARD), "hazard_formula": hazard_formula(),
        "time_unit": "years",
        "true_columns": list(TRUE_COLUMNS),
        "true_columns_note": "generator truth: exclude true_* columns from model inputs",
        "covariates": {"age": "N(62, 11) clipped 30-90", "sex": "1 male (p 0.7)",
                       "diabetes": "p 0.25 + 0.004 (age - 60)"},
        "scar": {"prevalence": 0.65, "target_burden_pct": "U(3, 40)", "territories": TERRITORIES,
                 "transmurality": "U(0.3, 1)", "mvo": "p 0.4 when transmurality > 0.6",
                 "lge_enhancement": "scar = blood + U(-3, 6) grey; blood = remote + U(12, 21) grey "
                                    "(EMIDEC: scar - blood +2, blood - remote +15)"},
        "lvef_target": "clip(63 - 0.7 scar + N(0, 9), 20, 70); measured on the label maps",
        "geometry": {"in_plane_mm": [1.35, 1.65], "slice_mm": [8, 10], "slices": [8, 10],
                     "matrix_rows": [208, 240], "matrix_columns": [240, 256],
                     "lv_r_endo_mm": "clip(28.3 + 0.2 (55 - LVEF target) + N(0, 3), 21, 40)", "affine": "diag(-s, -s, dz) (ACDC orientation)",
                     "slice_0": "base (cine); apex (LGE, stored apex first as EMIDEC)",
                     "ed_endocardial_apex_beyond_last_slice_mm": [0.2, 3.0],
                     "long_axis_shortening": "ES only: 1 - 0.25 (1 - in-plane factor)"},
        "image": {"supersampling": 2, "blur_mm": {"cine": [1.1, 1.6], "lge": 1.0}, "cine_noise": "Rician",
                  "lung_gap_mm": [6, 18], "atrial_blood_radius_mm": [15, 24],
                  "cine_epicardial_band": {"mm_outside_lv": f"0 to {CINE_EPI_BAND['width_mm']}",
                                           "level_times_blood_minus_myocardium": CINE_EPI_BAND["level"],
                                           "level_spread_around_the_lv": CINE_EPI_BAND["spread"],
                                           "share_redrawn_per_slice": CINE_EPI_BAND["slice_share"]},
                  "body_semi_axes_mm": [[200, 250], [125, 145]],
                  "cine_snr": [18 * CINE_NOISE_FACTOR, 35 * CINE_NOISE_FACTOR],
                  "blood_to_myocardium": [2.2, 3.5], "cine_fat_to_blood": [1.2, 1.45],
                  "cine_rv_to_lv_blood": [0.74, 0.86], "coil_shading": "smooth multiplicative",
                  "papillary_radius": "0.22 x ED cavity radius + 1.5 mm (constant between phases)",
                  "trabeculation": {"kind": "radial spikes inside the labelled cavity (blood pool), "
                                            "density falling with depth", **TRABECULAE},
                  "lge": {"kind": "phase-sensitive, 8-bit grey levels as exported by EMIDEC",
                          "offset_grey": [130, 143], "remote_minus_offset": [0, 10],
                          "blood_minus_remote": [12, 21], "scar_minus_blood": [-3, 6],
                          "mvo": "remote + U(0.4, 0.8) (scar - remote)", "fat_minus_offset": [65, 90],
                          "lung_minus_offset": [-42, -20], "noise_sd_grey": [1.1, 1.6],
                          "myocardial_texture": {"sd_times_blood_minus_remote": LGE_TEXTURE["sd"],
                                                 "smoothing_px_of_2x_grid": LGE_TEXTURE["smooth_px"]},
                          "epicardial_band": {"mm_outside_lv": f"0 to {LGE_EPI_RIM['width_mm']} "
                                                                f"(+{LGE_EPI_RIM['lateral_mm']} laterally)",
                                              "level_times_blood_minus_remote": LGE_EPI_RIM["level"],
                                              "level_spread_around_the_lv": LGE_EPI_RIM["spread"],
                                              "share_redrawn_per_slice": LGE_EPI_RIM["slice_share"]},
                          "zero_fill_fraction": [0.05, 0.19]}},
        "rv": {"shape": dict(RV_SHAPE), "rvef_target": f"N(52, 8) clipped 30-70, minus {RVEF_SHIFT}"},
        "slice_order": {"stored_apex_first": dict(APEX_FIRST),
                        "note": "cine slice 0 is the base (as ACDC, 34 of 34 measured frames); the LGE "
                                "(image and labels) is stored apex first (as EMIDEC, 75 of 75 stacks) "
                                "with an index-to-RAS matrix that keeps every voxel's world position"},
        "reference_measurements": REFERENCE,
        "reference_script": "bench/measure_real_appearance.py -> bench/results/real_vs_synthetic_appearance.json",
        "oracle_c_index": oracle_c_index(rows_time_event(rows)),
    }
    with open(os.path.join(out_dir, "synthetic.json"), "w") as fh:
        json.dump(desc, fh, indent=2, sort_keys=True)
    return man


def rows_time_event(rows):
    return (np.array([float(r["time"]) for r in rows]), np.array([int(r["event"]) for r in rows]),
            np.array([float(r["true_log_hazard"]) for r in rows]))


def oracle_c_index(manifest) -> float:
    """Harrell's C of the true log hazard: a manifest path, or a (time, event, log_hazard) tuple."""
    from ..predict.evaluation import harrell_or_nan

    if isinstance(manifest, (str, os.PathLike)):
        with open(manifest, newline="") as fh:
            rows = list(csv.DictReader(fh))
        t, e, lh = rows_time_event(rows)
    else:
        t, e, lh = manifest
    return harrell_or_nan(t, e, lh)


# ----------------------------------------------------------------------------- CLI

def cmd_synth(args) -> int:
    man = generate_cohort(args.out, n=args.n, seed=args.seed, progress=not args.quiet,
                          workers=args.workers)
    print(f"{man}: {args.n} subjects (seed {args.seed}); oracle C-index {oracle_c_index(man):.3f}")
    return 0


def add_commands(subparsers) -> None:
    """Register ``synth`` on the ``cmrrisk`` subparsers."""
    s = subparsers.add_parser("synth", help="write a synthetic CMR cohort (cine ED/ES, LGE, labels, "
                              "covariates, event times from a known hazard) and its manifest")
    s.add_argument("--out", required=True, help="output folder")
    s.add_argument("--n", type=int, default=60, help="number of subjects (default 60)")
    s.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    s.add_argument("--workers", type=int, default=None,
                   help="parallel worker processes (default: 1, in this process); the output does not "
                        "depend on it")
    s.add_argument("--quiet", action="store_true", help="no per-subject progress lines")
    s.set_defaults(func=cmd_synth)
