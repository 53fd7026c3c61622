"""``cmrrisk demo`` (``make demo``): the four-step pipeline end to end on the synthetic cohort.

Steps (each printed with its time):

1. **cohort**: :func:`cmrrisk.synthetic.generate_cohort` (cine ED/ES and LGE volumes with
   ground-truth labels, covariates, event times from a known hazard);
2. **QC**: :func:`cmrrisk.qc.cohort_qc` on the cohort (volume, variety, veracity);
3. **split**: train / test, stratified by event (seeded); the generator's ``true_*`` columns
   and label maps are kept out of every model input;
4. **segmentation** of every cine ED/ES (bundled ``cine`` model) and LGE volume (bundled ``lge``
   model); Dice against the generator's labels;
5. **features** (clinical indices, radiomics, deep features) from the model segmentations;
6. **models**, each with k-fold cross-validation on the training split, then fitted on all of it:
   ``cox`` (penalised Cox on covariates + clinical indices: the regression baseline),
   ``deepsurv`` (the same inputs, a pycox CoxPH network) and ``multiinput`` (a network over the
   cine ED/ES images, segmentations and covariates); ``--models`` adds ``auto`` (the default
   survival model of ``cmrrisk train``, on covariates + every image feature: slower);
7. **explanations** (integrated gradients) of the image model for three test subjects (highest,
   median and lowest predicted risk), heatmaps as NIfTI and PNG, and a Slicer scene (``.mrb``)
   per explained subject with the images, segmentations, heatmaps and tables;
8. **evaluation and report**: every model evaluated once on the test split (bootstrap CIs) by
   :func:`cmrrisk.report.write_report` (the code of ``cmrrisk evaluate``), which writes
   ``report.html``; its figures go into ``tables/evaluation_<model>.json`` and ``metrics.json``.
   The *best* model is chosen from cross-validation on the training split alone, before the
   test split is looked at: the regression baseline ``cox`` unless another model beats it by more
   than the fold-to-fold spread (:func:`choose_best`); the oracle C-index is Harrell's C of the
   generator's true log-hazard on the same test subjects.

A previous demo output in ``OUT`` is moved aside (``OUT.previous``) while the new one is built;
a failed or interrupted run removes what it wrote and puts the previous output back, so no
half-written output is left behind. A folder that is not a demo output is never touched.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import sys
import time

import numpy as np

from . import labels as L
from .errors import CMRRiskError
from .progress import Progress
from .manifest import write_csv

MARKER = ".cmrrisk-demo"
CLINICAL = ("age", "sex", "diabetes")
#: clinical indices given to the Cox baseline (with the clinical covariates)
INDEX_COLUMNS = ("lv_ef_pct", "lv_edv_ml", "lv_esv_ml", "lv_mass_g", "rv_ef_pct", "scar_burden_pct", "mvo_ml")
#: models the demo can train; the default set leaves out ``auto`` (its inner model selection
#: multiplies the fits: minutes on 2 cores)
MODELS = ("cox", "deepsurv", "auto", "multiinput")
DEFAULT_MODELS = ("cox", "deepsurv", "multiinput")


class _Steps:
    """Numbered progress lines with times, on stderr."""

    def __init__(self, total: int, quiet: bool = False):
        self.total, self.n, self.quiet = total, 0, quiet
        self.t_start = time.perf_counter()
        self.t0 = None
        self.name = None
        self.seconds: dict = {}

    def start(self, name: str, what: str) -> None:
        self.end()
        self.n += 1
        self.name, self.t0 = name, time.perf_counter()
        if not self.quiet:
            print(f"[{self.n}/{self.total}] {what}", file=sys.stderr, flush=True)

    def end(self) -> None:
        if self.name is not None:
            s = time.perf_counter() - self.t0
            self.seconds[self.name] = round(s, 1)
            if not self.quiet:
                print(f"      {self.name}: {s:.0f} s (total {time.perf_counter() - self.t_start:.0f} s)",
                      file=sys.stderr, flush=True)
            self.name = None

    def say(self, msg: str) -> None:
        if not self.quiet:
            print(f"      {msg}", file=sys.stderr, flush=True)


def _read_rows(path: str) -> list:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def split_subjects(rows: list, test_fraction: float, seed: int) -> tuple[list, list]:
    """Train / test subject lists, stratified by event, reproducible for a seed."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for ev in ("1", "0"):
        group = [r["subject"] for r in rows if str(r["event"]).strip() == ev]
        rng.shuffle(group)
        k = int(round(test_fraction * len(group)))
        test += group[:k]
        train += group[k:]
    order = {r["subject"]: i for i, r in enumerate(rows)}
    return sorted(train, key=order.get), sorted(test, key=order.get)


# ---- step 4: segmentation (module-level, runs in worker processes)

def _segmenter(name: str):
    """The bundled model with its default inference, as ``cmrrisk segment`` runs it (lge:
    test-time flips on the heart's window, about 1.9 plain passes; cine: plain)."""
    from .segmentation.service import segmenter

    return segmenter(name, "cpu")


def _dice_rows(pred: np.ndarray, ref: np.ndarray, role: str) -> dict:
    from .metrics import dice

    if role == "lge":
        out = {"lv": dice(pred == L.LV_BLOOD_POOL, ref == L.LV_BLOOD_POOL),
               "myo": dice(np.isin(pred, L.MYOCARDIAL), np.isin(ref, L.MYOCARDIAL))}
        if np.isin(ref, L.SCAR_WITH_MVO).any():
            out["scar"] = dice(np.isin(pred, L.SCAR_WITH_MVO), np.isin(ref, L.SCAR_WITH_MVO))
        return out
    return {"lv": dice(pred == L.LV_BLOOD_POOL, ref == L.LV_BLOOD_POOL), "myo": dice(pred == L.LV_MYOCARDIUM, ref == L.LV_MYOCARDIUM),
            "rv": dice(pred == L.RV_BLOOD_POOL, ref == L.RV_BLOOD_POOL)}


def segment_subject(subject: str, images: dict, truths: dict, out_dir: str) -> dict:
    """Segment one subject's cine ED/ES and LGE with the bundled models; Dice vs the truth."""
    from .image import read_image, write_image
    from .segmentation.service import segment_frame

    res = {"subject": subject, "paths": {}, "dice": {}, "seconds": {}}
    try:
        os.makedirs(out_dir, exist_ok=True)
        labels = {}
        # ED before ES: the ES frame is segmented anchored to the ED labels (as in features)
        for role in sorted(images, key=lambda r: (r != "cine_ed", r)):
            path = images[role]
            vol = read_image(path, allow_4d=False)
            t0 = time.perf_counter()
            r = segment_frame(vol, "lge" if role == "lge" else "cine",
                              prior=labels.get("cine_ed") if role == "cine_es" else None)
            seg = vol.with_array(r.labels)
            labels[role] = r.labels
            res["seconds"][role] = round(time.perf_counter() - t0, 3)
            out = os.path.join(out_dir, f"{role}_seg.nii.gz")
            write_image(seg.with_array(seg.array.astype(np.uint8)), out)
            res["paths"][role] = out
            if truths.get(role):
                ref = np.asarray(read_image(truths[role], allow_4d=False).array)
                res["dice"][role] = _dice_rows(np.asarray(seg.array), ref, role)
    except Exception as exc:  # reported per subject; the demo stops with the message
        res["error"] = f"{type(exc).__name__}: {exc}"
    return res


def _dice_summary(results: list) -> dict:
    per: dict = {}
    for r in results:
        for role, d in r["dice"].items():
            for s, v in d.items():
                per.setdefault(f"{role}_{s}", []).append(v)
    summary = {k: float(np.mean(v)) for k, v in sorted(per.items())}
    every = [v for vals in per.values() for v in vals]
    return {"mean": float(np.mean(every)) if every else None, "per_structure": summary,
            "n_subjects": len(results),
            "definition": "mean over subjects and structures of the Dice of the bundled models' "
                          "segmentations against the generator's label maps: cine ED and ES (LV blood "
                          "pool, LV myocardium, RV blood pool), LGE (LV blood pool, whole myocardium, "
                          "scar + MVO on subjects with scar); each model's default inference (test_time_flips)",
            "test_time_flips": {name: _segmenter(name).tta for name in ("cine", "lge")}}


# ---- the demo


def gap_decomposition(truth_rows: list, feature_rows: dict, test_ids: list) -> dict:
    """Where the distance between the oracle and a model comes from, on the test split.

    ``truth_rows``: the cohort manifest's rows (with the generator's ``true_*`` columns and the
    covariates); ``feature_rows``: subject -> row of the features table (measured from the
    model segmentations). ``c_index_formula_on_measured`` is Harrell's C of the generator's own
    hazard formula evaluated with the *measured* LVEF and scar burden (and the true covariates):
    what a model that knew the formula exactly would reach with these segmentations. So
    ``c_index_oracle - c_index_formula_on_measured`` is the part of the gap due to measurement
    (segmentation) error, and the rest of a model's gap is due to estimating the model from the
    training split. Also the measurement errors of LVEF and scar burden (percentage points)."""
    from . import synthetic
    from .predict.evaluation import harrell

    by_id = {r["subject"]: r for r in truth_rows}
    rows = [by_id[s] for s in test_ids]
    t = np.array([float(r["time"]) for r in rows])
    e = np.array([int(r["event"]) for r in rows])
    true_ef = np.array([float(r["true_lvef"]) for r in rows])
    true_scar = np.array([float(r["true_scar_burden"]) for r in rows])
    ef = np.array([float(feature_rows[s]["lv_ef_pct"]) for s in test_ids])
    scar = np.array([float(feature_rows[s]["scar_burden_pct"]) for s in test_ids])
    measured = np.array([synthetic.log_hazard(ef[i], scar[i], float(r["age"]), float(r["diabetes"]),
                                              float(r["sex"])) for i, r in enumerate(rows)])
    oracle = float(harrell(t, e, np.array([float(r["true_log_hazard"]) for r in rows])))
    formula = float(harrell(t, e, measured))

    def err(meas, true):
        d = meas - true
        return {"mae_pp": float(np.mean(np.abs(d))), "bias_pp": float(np.mean(d)),
                "max_abs_pp": float(np.max(np.abs(d))), "r": float(np.corrcoef(meas, true)[0, 1])}

    return {"c_index_oracle": oracle, "c_index_formula_on_measured": formula,
            "measurement_part": oracle - formula, "lvef_error": err(ef, true_ef),
            "scar_burden_error": err(scar, true_scar), "n_test": len(test_ids),
            "definition": "c_index_formula_on_measured: Harrell's C of the generator's hazard formula "
                          "with the measured LVEF and scar burden (segmentations of the bundled models) "
                          "and the true covariates; measurement_part = oracle minus it"}


def _prepare_out(out: str) -> tuple[str, str | None]:
    """Create ``out`` (marked as a demo output); a previous demo output there is moved aside to
    ``OUT.previous`` until the new run has finished. Returns (out, previous or None)."""
    out = os.path.abspath(out)
    if os.path.exists(out) and not os.path.isfile(os.path.join(out, MARKER)) and (
            not os.path.isdir(out) or os.listdir(out)):
        raise CMRRiskError(f"{out}: exists and is not a previous demo output (no {MARKER} file); "
                           "choose another --out or remove it.")
    previous = out + ".previous"
    if os.path.exists(previous):
        if os.path.exists(out):
            shutil.rmtree(previous)  # left by an interrupted run that had already started anew
        else:
            os.replace(previous, out)  # restore before replacing it again below
    if os.path.isdir(out) and os.listdir(out):
        os.replace(out, previous)
    else:
        previous = None
        if os.path.isdir(out):
            os.rmdir(out)
    os.makedirs(out)
    with open(os.path.join(out, MARKER), "w") as fh:
        fh.write("written by cmrrisk demo; the next run replaces this folder\n")
    return out, previous


#: demo settings of the image network: a cine-only branch (explanations cover cine models) and
#: a short schedule so that cross-validation fits in the demo's time (--max-epochs overrides)
MULTIINPUT_PARAMS = {"use_lge": False, "max_epochs": 15}
#: cross-validation folds of the image network at most (each fold is a full network training)
MULTIINPUT_MAX_FOLDS = 3


def _train(manifest: str, name: str, model_dir: str, cv: int, seed: int, cache_dir: str,
           max_epochs: int | None, max_features: int | None = None) -> dict:
    from .predict.base import get_class
    from .predict.pipeline import Pipeline
    from .predict.store import save_pipeline
    from .predict.tabular import load_table
    from .predict.validation import cross_validate

    image_model = get_class(name, "survival").uses_inputs
    table = load_table(manifest, "survival", cache_dir=cache_dir, image_features=not image_model)
    params = dict(MULTIINPUT_PARAMS) if name == "multiinput" else {}
    if max_epochs:
        params["max_epochs"] = max_epochs
    t0 = time.perf_counter()
    metrics = cross_validate(table, "survival", name, k=cv, seed=seed, max_features=max_features,
                             model_params=params)
    metrics["seconds"] = round(time.perf_counter() - t0, 1)
    pipe = Pipeline("survival", name, seed=seed, max_features=max_features, model_params=params).fit(table)
    save_pipeline(pipe, model_dir, metrics)
    chosen = getattr(pipe.model, "chosen", None)
    return {"cv": metrics["summary"], "n_inputs": int(table.covariates.shape[1]),
            "cv_fold_c": [f.get("c_index_harrell") for f in metrics.get("folds", [])],
            "chosen": list(chosen) if chosen else None, "seconds": round(time.perf_counter() - t0, 1)}


BEST_MODEL_RULE = ("the regression baseline cox, unless another model's mean cross-validated Harrell "
                   "C-index on the training split exceeds cox's by more than one SD over folds of the "
                   "per-fold difference (same folds; models cross-validated on other folds: by more "
                   "than sqrt(SD_model^2 + SD_cox^2)); among such models the highest mean")


def choose_best(trained: dict) -> str:
    """The demo's best model from training cross-validation only (:data:`BEST_MODEL_RULE`).
    Chosen on 40 simulated cohorts that no demo used (``bench/sim_model_choice.py``): it kept
    ``cox`` where DeepSurv won the CV by less than the fold-to-fold spread, and came closer to
    the oracle than taking the highest CV mean. Without ``cox``, the highest CV mean."""
    def mean(m):
        return trained[m]["cv"].get("c_index_harrell", {}).get("mean", -1.0)

    if "cox" not in trained:
        return max(trained, key=mean)
    base = [c for c in trained["cox"].get("cv_fold_c") or [] if c is not None]
    clear = []
    for m in trained:
        folds = [c for c in trained[m].get("cv_fold_c") or [] if c is not None]
        if m == "cox" or len(folds) < 2 or len(base) < 2:
            continue
        if len(folds) == len(base):
            diff = np.asarray(folds) - np.asarray(base)
            spread = float(np.std(diff, ddof=1))
        else:
            spread = float(np.hypot(np.std(folds, ddof=1), np.std(base, ddof=1)))
        if mean(m) - mean("cox") > spread:
            clear.append(m)
    return max(clear, key=mean) if clear else "cox"


def run_demo(out: str = "demo-output", n: int = 100, seed: int = 0, test_fraction: float = 0.3,
             cv: int = 5, n_explain: int = 3, workers: int | None = None, max_epochs: int | None = None,
             bootstrap: int = 200, models=DEFAULT_MODELS, quiet: bool = False) -> dict:
    """Run the demo into ``out``; returns metrics.json's content. On failure or interruption what
    it wrote is removed and a previous complete output in ``out`` is restored."""
    if n < 20:
        raise CMRRiskError(f"--n {n}: the demo needs at least 20 subjects (train/test split and "
                           "cross-validation).")
    if not 0.1 <= test_fraction <= 0.5:
        raise CMRRiskError(f"--test-fraction {test_fraction}: choose a value between 0.1 and 0.5.")
    unknown = [m for m in models if m not in MODELS]
    if unknown or "cox" not in models:
        raise CMRRiskError(f"--models {','.join(models)}: choose among {', '.join(MODELS)}; cox (the "
                           "baseline) is always needed.")
    root, previous = _prepare_out(out)
    try:
        metrics = _run(root, n, seed, test_fraction, cv, n_explain, workers, max_epochs, bootstrap,
                       models, quiet)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)  # no half-written output is left behind
        if previous:
            os.replace(previous, root)  # the last complete output comes back
        raise
    if previous:
        shutil.rmtree(previous, ignore_errors=True)
    return metrics


def _run(root, n, seed, test_fraction, cv, n_explain, workers, max_epochs, bootstrap, models,
         quiet) -> dict:
    from . import qc as qc_mod
    from . import synthetic
    from .features.cohort import write_features
    from .modeldir import write_json
    from .parallel import run_subjects
    from . import report as report_mod

    steps = _Steps(8, quiet)
    d = {k: os.path.join(root, k) for k in ("cohort", "qc", "work", "tables", "models", "heatmaps", "scenes")}
    for p in d.values():
        os.makedirs(p, exist_ok=True)

    # 1. cohort
    steps.start("cohort", f"synthetic cohort: {n} subjects (seed {seed})")
    cohort_manifest = synthetic.generate_cohort(d["cohort"], n=n, seed=seed, progress=False,
                                                workers=workers or os.cpu_count())
    rows = _read_rows(cohort_manifest)
    with open(os.path.join(d["cohort"], "synthetic.json")) as fh:
        synth_desc = json.load(fh)

    # 2. QC (reference label maps: the veracity checks of the generator's own output)
    steps.start("qc", "cohort QC (volume, variety, veracity)")
    qc_rep = qc_mod.cohort_qc(cohort_manifest, d["qc"], segment=True, workers=workers, progress=not quiet)
    st = qc_rep["volume"]["status"]
    steps.say(f"{st['ok']} ok, {st['flag']} flagged, {st['exclude']} excluded")
    excluded = {s["subject"] for s in qc_rep["veracity"]["subjects"] if s["status"] == "exclude"}

    # 3. split
    steps.start("split", f"train / test split (test fraction {test_fraction}, stratified by event)")
    usable = [r for r in rows if r["subject"] not in excluded]
    train_ids, test_ids = split_subjects(usable, test_fraction, seed)
    event = {r["subject"]: r["event"] == "1" for r in usable}
    steps.say(f"train {len(train_ids)} subjects ({sum(event[s] for s in train_ids)} events), "
              f"test {len(test_ids)} ({sum(event[s] for s in test_ids)} events)")

    # 4. segmentation with the bundled models
    steps.start("segmentation", "segmentation of cine ED/ES and LGE with the bundled models")
    cdir = d["cohort"]
    jobs = []
    for r in usable:
        images = {role: os.path.join(cdir, r[role]) for role in ("cine_ed", "cine_es", "lge")}
        truths = {role: os.path.join(cdir, r[f"{role}_seg"]) for role in ("cine_ed", "cine_es", "lge")}
        jobs.append((r["subject"], (r["subject"], images, truths,
                                    os.path.join(d["work"], "segmentations", r["subject"]))))
    seg_res = run_subjects(segment_subject, jobs, workers=workers, desc="segment", progress=not quiet)
    failed = {k: v["error"] for k, v in seg_res.items() if "error" in v}
    if failed:
        k = next(iter(failed))
        raise CMRRiskError(f"segmentation failed for {len(failed)} subject(s); {k}: {failed[k]}")
    seg_results = [seg_res[r["subject"]] for r in usable]
    dice = _dice_summary(seg_results)
    steps.say(f"Dice mean {dice['mean']:.3f}: " + ", ".join(f"{k} {v:.3f}" for k, v in dice["per_structure"].items()))
    structs = sorted(dice["per_structure"])  # "<role>_<structure>", e.g. cine_ed_myo
    write_csv(os.path.join(d["tables"], "segmentation_dice.csv"), ["subject"] + structs,
               [{"subject": r["subject"], **{f"{role}_{st}": f"{v:.4f}" for role, dd in r["dice"].items()
                                             for st, v in dd.items()}}
                for r in seg_results])

    # model-input manifests: images + model segmentations + covariates + outcome; no truth
    cols = ["subject", "cine_ed", "cine_es", "lge", "cine_ed_seg", "cine_es_seg", "lge_seg",
            *CLINICAL, "time", "event"]
    by_id = {r["subject"]: r for r in usable}

    def image_row(s):
        r = by_id[s]
        row = {c: r[c] for c in ("subject", *CLINICAL, "time", "event")}
        for role in ("cine_ed", "cine_es", "lge"):
            row[role] = os.path.join(cdir, r[role])
            row[f"{role}_seg"] = seg_res[s]["paths"][role]
        return row

    man = {"all": os.path.join(d["work"], "all_images.csv")}
    write_csv(man["all"], cols, [image_row(s) for s in train_ids + test_ids])

    # 5. features
    steps.start("features", "features: clinical indices, radiomics, deep features")
    cache = os.path.join(d["work"], "features_cache")
    feats_csv = os.path.join(d["tables"], "features.csv")
    prov = write_features(man["all"], feats_csv, cache_dir=cache, workers=workers, progress=not quiet)
    steps.say(f"{prov['columns']['n_features']} features per subject")
    feature_failures = {f["subject"]: f["error"] for f in prov["failures"]}
    for subj, err in feature_failures.items():
        steps.say(f"{subj}: features failed, subject left out of the models: {err}")
    train_ids = [s for s in train_ids if s not in feature_failures]
    test_ids = [s for s in test_ids if s not in feature_failures]
    for part, ids in (("train", train_ids), ("test", test_ids)):
        man[part] = os.path.join(d["work"], f"{part}_images.csv")
        write_csv(man[part], cols, [image_row(s) for s in ids])
    frows = {r["subject"]: r for r in _read_rows(feats_csv)}
    idx_cols = [c for c in INDEX_COLUMNS if c in next(iter(frows.values()))]
    for part, ids in (("train", train_ids), ("test", test_ids)):
        man[f"{part}_clinical"] = os.path.join(d["work"], f"{part}_clinical.csv")
        write_csv(man[f"{part}_clinical"], ["subject", *CLINICAL, *idx_cols, "time", "event"],
                   [{c: frows[s][c] for c in ("subject", *CLINICAL, *idx_cols, "time", "event")} for s in ids])

    # 6. models with cross-validation on the training split
    steps.start("models", f"models with {cv}-fold cross-validation on the training split "
                          f"({min(cv, MULTIINPUT_MAX_FOLDS)}-fold for multiinput): {', '.join(models)}")
    trained = {}
    inputs = {"cox": "clinical", "deepsurv": "clinical", "auto": "images", "multiinput": "images"}
    descr = {"cox": "penalised Cox regression on the clinical covariates and clinical indices "
                    f"({', '.join(CLINICAL + tuple(idx_cols))}): the regression baseline",
             "deepsurv": "DeepSurv (pycox CoxPH network) on the clinical covariates and clinical indices",
             "auto": "default survival model (cross-validation inside the training data chooses among "
                     "Cox, CoxBoost, DeepSurv and ensembles) on covariates + every image feature",
             "multiinput": "multi-input network: cine ED/ES images with segmentation channels + "
                           "covariates, Cox partial likelihood"}
    for name in models:
        t0 = time.perf_counter()
        mdir = os.path.join(d["models"], name)
        k = min(cv, MULTIINPUT_MAX_FOLDS) if name == "multiinput" else cv
        trained[name] = _train(man["train_clinical" if inputs[name] == "clinical" else "train"], name,
                               mdir, k, seed, cache, max_epochs)
        trained[name]["cv_folds"] = k
        trained[name]["description"] = descr[name]
        c = trained[name]["cv"].get("c_index_harrell", {})
        steps.say(f"{name}: CV C-index {c.get('mean', float('nan')):.3f} (SD {c.get('sd', float('nan')):.3f})"
                  + (f"; chose {'+'.join(trained[name]['chosen'])}" if trained[name]["chosen"] else "")
                  + f" [{time.perf_counter() - t0:.0f} s]")

    # the oracle and the best model (by training CV) are fixed before the test split is evaluated
    gap = gap_decomposition(rows, frows, test_ids)
    oracle = gap["c_index_oracle"]
    best = choose_best(trained)

    # 7. explanations + Slicer scenes
    explained = []
    if n_explain and "multiinput" in models:
        steps.start("explanations", f"explanations (integrated gradients) for {n_explain} test subjects, "
                                    "Slicer scenes")
        images = {s: {role: os.path.join(cdir, by_id[s][role]) for role in ("cine_ed", "cine_es", "lge")}
                  for s in test_ids}
        explained = _explain(d, os.path.join(d["models"], "multiinput"), man, test_ids, n_explain, frows,
                             images, seg_res, steps)
    else:
        steps.start("explanations", "explanations skipped (no multiinput model or --explain 0)")

    # 8. evaluation on the test split (inside the report: the code of `cmrrisk evaluate`) + metrics
    steps.start("report", "evaluation on the test split (bootstrap CIs), report.html, metrics.json")
    extra = {
        "data_source": (f"Synthetic cohort of {n} subjects generated by cmrrisk.synthetic "
                        f"(version {synth_desc.get('version')}, seed {seed}): cine ED/ES and LGE "
                        "short-axis volumes with ground-truth labels; event times drawn from a known "
                        f"hazard: {synth_desc.get('hazard_formula')}. The oracle C-index is Harrell's "
                        "C of the true log-hazard on the same test subjects. Segmentations, features "
                        "and models use only the images and covariates (never the generator's truth)."),
        "synthetic": True,
        "metrics": {"c_index_oracle (test split)": round(oracle, 4),
                    "C-index of the hazard formula on the measured LVEF and scar burden (test split)":
                        round(gap["c_index_formula_on_measured"], 4),
                    "LVEF measurement error, mean absolute (pp)": round(gap["lvef_error"]["mae_pp"], 2),
                    "scar burden measurement error, mean absolute (pp)":
                        round(gap["scar_burden_error"]["mae_pp"], 2),
                    "best model (cox unless another model beats it in training CV by more than the "
                    "fold-to-fold SD)": best,
                    "segmentation_dice_mean": round(dice["mean"], 4),
                    **{f"Dice {k}": round(v, 4) for k, v in dice["per_structure"].items()}},
        "notes": [f"{m}: {trained[m]['description']}" for m in models],
    }
    mdirs = {m: os.path.join(d["models"], m) for m in models}
    rep = report_mod.write_report(
        os.path.join(root, "report.html"), models=list(mdirs.values()), train_manifest=man["train"],
        test_manifest=man["test"], qc=d["qc"],
        explanations=[os.path.join(d["heatmaps"], e["subject"]) for e in explained] or None, extra=extra,
        title="CMRRisk demo: synthetic cohort", n_boot=bootstrap, seed=seed, cache_dir=cache,
        progress=None if quiet else Progress.printing(steps.say),
        model_manifests={mdirs[m]: {"train": man["train_clinical"], "test": man["test_clinical"]}
                         for m in models if inputs[m] == "clinical"})
    by_dir = {os.path.normpath(r["model_dir"]): r["test"] for r in rep["models"]}
    evals = {m: {k: v for k, v in by_dir[os.path.normpath(mdirs[m])].items() if k != "predictions"}
             for m in models}
    for name in models:
        write_json(os.path.join(d["tables"], f"evaluation_{name}.json"), evals[name])
        steps.say(f"{name}: test C-index {evals[name]['c_index_harrell']:.3f} "
                  f"(95% CI {evals[name]['c_index_harrell_ci'][0]:.3f}-{evals[name]['c_index_harrell_ci'][1]:.3f})")
    steps.say(f"oracle C-index on the test split {oracle:.3f}; best model by training CV: {best} "
              f"(test C-index {evals[best]['c_index_harrell']:.3f})")
    steps.say(f"the hazard formula on the measured LVEF and scar burden: C-index "
              f"{gap['c_index_formula_on_measured']:.3f} (measurement errors: LVEF "
              f"{gap['lvef_error']['mae_pp']:.2f} pp, scar burden {gap['scar_burden_error']['mae_pp']:.2f} pp "
              "mean absolute)")
    metrics = {
        "c_index_oracle": oracle,
        "c_index_best": evals[best]["c_index_harrell"],
        "best_model": best,
        "best_model_rule": BEST_MODEL_RULE,
        "c_index_cox": evals["cox"]["c_index_harrell"],
        "segmentation_dice_mean": dice["mean"],
        "segmentation_dice": dice,
        "models": {m: {"description": trained[m]["description"], "inputs": trained[m]["n_inputs"],
                       "cv_folds": trained[m]["cv_folds"], "train_seconds": trained[m]["seconds"],
                       "chosen": trained[m]["chosen"], "cv": trained[m]["cv"],
                       "cv_fold_c": trained[m]["cv_fold_c"],
                       "test": {k: evals[m].get(k) for k in ("n", "n_events", "c_index_harrell",
                                                              "c_index_harrell_ci", "c_index_uno",
                                                              "c_index_uno_ci", "integrated_brier",
                                                              "integrated_brier_ci", "td_auc_mean")}}
                   for m in models},
        "gap_best_to_oracle": oracle - evals[best]["c_index_harrell"],
        "gap_decomposition": gap,
        "n_subjects": n, "n_train": len(train_ids), "n_test": len(test_ids), "seed": seed,
        "excluded_by_qc": sorted(excluded),
        "left_out_features_failed": feature_failures,
        "synthetic": {"version": synth_desc.get("version"), "hazard_formula": synth_desc.get("hazard_formula"),
                      "oracle_c_index_whole_cohort": synth_desc.get("oracle_c_index")},
        "explained_subjects": [e["subject"] for e in explained],
    }
    steps.end()
    metrics["seconds"] = dict(steps.seconds, total=round(time.perf_counter() - steps.t_start, 1))
    write_json(os.path.join(root, "metrics.json"), metrics)

    if not quiet:
        print(f"demo written: {root} (report.html, metrics.json, tables/, heatmaps/, scenes/) in "
              f"{metrics['seconds']['total']:.0f} s", file=sys.stderr)
    return metrics


def _explain(d: dict, model_dir: str, man: dict, test_ids: list, k: int, frows: dict, images: dict,
             seg_res: dict, steps: _Steps) -> list:
    from .explain.core import register_models, explain_subject, reference_latents, write_explanation
    from .predict.store import load_pipeline
    from .predict.tabular import load_table

    register_models()
    pipe = load_pipeline(model_dir)
    test = load_table(man["test"], "survival", need_outcome=False, image_features=False)
    train = load_table(man["train"], "survival", need_outcome=True, image_features=False)
    reference = reference_latents(pipe, train)
    pred = pipe.predict_frame(test)
    order = pred["risk"].sort_values(ascending=False).index.tolist()
    picks = [order[0], order[len(order) // 2], order[-1]][:k] if k <= 3 else \
        [order[int(round(i * (len(order) - 1) / (k - 1)))] for i in range(k)]
    out = []
    for s in dict.fromkeys(picks):
        e = explain_subject(pipe, test, s, "ig", reference=reference, k=5)
        paths = write_explanation(e, os.path.join(d["heatmaps"], s))
        steps.say(f"{s}: {e.text}")
        scene_path = os.path.join(d["scenes"], f"{s}.mrb")
        try:
            _scene(scene_path, s, e, pred.loc[s].to_dict(), frows.get(s, {}), images[s], seg_res[s]["paths"])
        except ImportError as exc:  # slicer-core is installed by `make setup`; not by pip extras
            steps.say(f"{s}: no Slicer scene ({exc}); install slicer-core (pip install slicer-core) "
                      "to write .mrb files outside Slicer")
            scene_path = None
        out.append({"subject": s, "risk": float(pred.loc[s, "risk"]), "text": e.text,
                    "files": paths, "scene": scene_path})
    return out


def _scene(path: str, subject: str, expl, prediction: dict, features: dict, images: dict,
           seg_paths: dict) -> None:
    """One subject's Slicer study: images, model segmentations, heatmaps, tables -> .mrb."""
    from .features.tables import feature_rows
    from .image import read_image
    from .mrml.scene import write_study_mrb

    vols = {role: expl.images.get(role) or read_image(p, allow_4d=False) for role, p in images.items()}
    segs = {role: np.asarray(read_image(p, allow_4d=False).array).astype(np.uint8)
            for role, p in seg_paths.items()}
    rows = expl.attributions
    fvals = {k: (None if v in ("", None) else float(v)) for k, v in features.items()
             if k not in ("subject", "time", "event", *CLINICAL)}
    tables = {
        "attributions": {"feature": [r["feature"] for r in rows],
                         "value": ["" if r["value"] is None else str(r["value"]) for r in rows],
                         "attribution": [float(r["attribution"]) for r in rows]},
        "prediction": {"quantity": list(prediction), "value": [float(v) for v in prediction.values()]},
        "features": feature_rows(fvals),
    }
    write_study_mrb(path, subject, vols, segs, dict(expl.heatmaps), tables, method=expl.method,
                    attributes={"attributions": {"CMRRisk.explanation": expl.text}})


def cmd_demo(args) -> int:
    models = tuple(m.strip() for m in args.models.split(",") if m.strip())
    m = run_demo(args.out, n=args.n, seed=args.seed, test_fraction=args.test_fraction, cv=args.cv,
                 n_explain=args.explain, workers=args.workers, max_epochs=args.max_epochs,
                 bootstrap=args.bootstrap, models=models, quiet=args.quiet)
    print(json.dumps({k: m[k] for k in ("c_index_oracle", "c_index_best", "best_model", "c_index_cox",
                                        "segmentation_dice_mean")}, indent=2))
    return 0


def add_commands(subparsers) -> None:
    """Register ``demo`` on the ``cmrrisk`` subparsers."""
    p = subparsers.add_parser("demo", help="the whole pipeline on a generated synthetic cohort: QC, "
                              "segmentation, features, models with CV, evaluation, explanations, report")
    p.add_argument("--out", default="demo-output", help="output folder (default demo-output; a previous "
                   "demo output there is replaced)")
    p.add_argument("--n", type=int, default=100, help="subjects (default 100)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--test-fraction", type=float, default=0.3, help="held-out test share (default 0.3)")
    p.add_argument("--cv", type=int, default=5, help="cross-validation folds on the training split (default 5)")
    p.add_argument("--explain", type=int, default=3, help="test subjects to explain (default 3)")
    p.add_argument("--models", default=",".join(DEFAULT_MODELS),
                   help=f"models to train, among {','.join(MODELS)} (default {','.join(DEFAULT_MODELS)})")
    p.add_argument("--max-epochs", type=int, default=None, help="cap on training epochs of networks")
    p.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples for CIs (default 200)")
    p.add_argument("--workers", type=int, default=None, help="parallel subjects (default: all cores)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=cmd_demo)
