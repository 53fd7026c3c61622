"""ACDC diagnosis (5 groups) with the default diagnosis model, honestly validated.

Training: the ACDC subjects that the cine development model (bench/devmodels.py) was trained on, with their reference
segmentations (features from `cmrrisk features`). Test: the held-out validation subjects of the
cine model, WITHOUT reference segmentations: they are segmented by that model, as a new
patient would be. Reports 5-fold cross-validation on the training subjects (everything inside
the folds) and test accuracy / balanced accuracy with bootstrap 95 % CIs; with --multiinput also
the multi-input image network. Writes bench/results/acdc_diagnosis.json.

    .venv/bin/python bench/eval_acdc_diagnosis.py [--multiinput] [--max-epochs 150] [--work DIR]
"""

import argparse
import csv
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("CMRRISK_DATA", ROOT.parent / "shared" / "data")) / "acdc" / "training"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--work", default="/tmp/cmrrisk-acdc-diagnosis", help="manifests and feature caches")
    ap.add_argument("--multiinput", action="store_true", help="also train the multi-input image network")
    ap.add_argument("--max-epochs", type=int, default=150)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "acdc_diagnosis.json"))
    args = ap.parse_args()
    from devmodels import use_development_models

    use_development_models()  # held-out figures: the models trained with the validation split (bench/devmodels.py)
    if not DATA.is_dir():
        print(f"ACDC not found at {DATA}", file=sys.stderr)
        return 1
    from cmrrisk import modeldir
    from cmrrisk.features.cohort import write_features
    from cmrrisk.manifest import acdc_manifest
    from cmrrisk.predict.evaluation import diagnosis_report
    from cmrrisk.predict.pipeline import Pipeline
    from cmrrisk.predict.tabular import load_table
    from cmrrisk.predict.validation import cross_validate

    os.makedirs(args.work, exist_ok=True)
    cfg = modeldir.read_json(os.path.join(modeldir.resolve("cine"), "config.json"))
    val = set(cfg["training"]["val_subjects"])
    full = os.path.join(args.work, "acdc.csv")
    acdc_manifest(str(DATA), full)
    with open(full) as fh:
        rows = list(csv.DictReader(fh))
    cols = list(rows[0])
    paths = {}
    for name, keep, strip in (("train", lambda r: r["subject"] not in val, False),
                              ("test", lambda r: r["subject"] in val, True)):
        p = os.path.join(args.work, f"{name}.csv")
        with open(p, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=cols)
            w.writeheader()
            for r in rows:
                if keep(r):
                    w.writerow(dict(r, cine_ed_seg="", cine_es_seg="") if strip else r)
        paths[name] = p
    t0 = time.perf_counter()
    feats = {}
    for name in ("train", "test"):
        feats[name] = os.path.join(args.work, f"{name}_features.csv")
        write_features(paths[name], feats[name], progress=True)
    t_feat = time.perf_counter() - t0
    train = load_table(feats["train"], "diagnosis")
    test = load_table(feats["test"], "diagnosis")
    res = {"what": "ACDC 5-group diagnosis; train = cine model's training subjects (reference "
                   "segmentations), test = its held-out validation subjects segmented by the cine development model (bench/devmodels.py)",
           "n_train": len(train), "n_test": len(test), "feature_seconds": round(t_feat, 1), "models": {}}
    models = [("auto", {})]
    if args.multiinput:
        models.append(("multiinput", {"max_epochs": args.max_epochs}))
    for name, params in models:
        t1 = time.perf_counter()
        if name == "multiinput":
            tr_t = load_table(paths["train"], "diagnosis", image_features=False)
            te_t = load_table(paths["test"], "diagnosis", image_features=False)
            cv = None
        else:
            tr_t, te_t = train, test
            cv = cross_validate(tr_t, "diagnosis", name, k=5, seed=0)["summary"]
        pipe = Pipeline("diagnosis", name, seed=0, model_params=params).fit(tr_t)
        rep = diagnosis_report(pipe.target(te_t).y, pipe.predict_proba(te_t), pipe.classes, n_boot=1000, seed=0)
        entry = {"test": rep, "cv_train": cv, "seconds": round(time.perf_counter() - t1, 1)}
        if getattr(pipe.model, "chosen", None):
            entry["chosen"] = pipe.model.chosen
            entry["inner_cv"] = pipe.model.cv_scores
        res["models"][name] = entry
        print(f"{name}: test accuracy {rep['accuracy']:.3f} (95% CI {rep['accuracy_ci'][0]:.3f}-"
              f"{rep['accuracy_ci'][1]:.3f}), balanced {rep['balanced_accuracy']:.3f}"
              + (f"; 5-fold CV on train {cv['accuracy']['mean']:.3f}" if cv else "")
              + (f"; chose {entry['chosen']}" if "chosen" in entry else ""), flush=True)
    modeldir.write_json(args.out, res)
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
