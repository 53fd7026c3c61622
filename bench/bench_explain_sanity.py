"""Sanity benchmark of the saliency methods. Writes bench/results/explain_sanity.json.

1. Synthetic LGE-like localisation: a small multi-input network learns "scar / no scar" from
   slices where the label depends only on a bright blob in the myocardium; for held-out scar
   subjects, the share of positive attribution inside the blob (and inside the blob dilated by
   2 pixels), per method; model-randomisation test (Adebayo et al. 2018): Spearman rank
   correlation of |map| between the trained and a randomised network.
2. ACDC (when ../shared/data/acdc/training exists): a multi-input diagnosis model (5 classes;
   ED/ES images + reference segmentations, height, weight, BSA) is trained on the subjects that
   are NOT in the cine development model's validation list (bench/devmodels.py), for ``--epochs`` epochs (fewer than the
   default 150, to fit the time budget); for the held-out validation subjects: accuracy, and per
   method the share of positive attribution inside the heart (labels 1-3) dilated in-plane by 5
   voxels, on the original ED and ES images; randomisation test; permutation importance.

    .venv/bin/python bench/bench_explain_sanity.py [--epochs 40] [--max-val 20] [--skip-acdc]
        [--save-model DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "CMRRiskExtension"))
sys.path.insert(0, os.path.join(ROOT, "Testing"))

DATA = os.environ.get("CMRRISK_DATA", os.path.join(os.path.dirname(ROOT), "shared", "data"))
METHODS = ["gradcam", "ig", "gradshap", "occlusion"]


def _stats(v):
    v = np.asarray([x for x in v if x == x], float)
    if not len(v):
        return None
    return {"mean": float(v.mean()), "sd": float(v.std()), "min": float(v.min()), "max": float(v.max()), "n": len(v)}


def synthetic(seed=0, n_train=256, n_test=60):
    from scipy import ndimage
    from test_explain import lge_like

    from cmrrisk.explain.saliency import collapse_channels, image_attributions, positive_share, randomisation_test
    from cmrrisk.predict.base import DiagnosisTarget
    from cmrrisk.predict.multiinput import MultiInputDiagnosis

    t0 = time.time()
    x, _, y = lge_like(n_train, seed=seed)
    m = MultiInputDiagnosis(seed=seed, width=8, max_epochs=15, patience=100, batch_size=16, dropout=0.1, lr=3e-3)
    m.fit(np.zeros((n_train, 0), np.float32), DiagnosisTarget(y, ["none", "scar"]), images=x)
    xt, mt, yt = lge_like(n_test, seed=seed + 100)
    acc = float((m.predict_proba(np.zeros((n_test, 0), np.float32), images=xt).argmax(1) == yt).mean())
    pos = np.nonzero(yt)[0]
    out = {"n_train": n_train, "n_test": n_test, "n_scar_test": int(len(pos)), "accuracy": acc,
           "image_size": int(xt.shape[-1]), "scar_radius_px": 5.0, "train_seconds": round(time.time() - t0, 1),
           "methods": {}}
    for meth in METHODS:
        t1 = time.time()
        a = collapse_channels(image_attributions(m.net, xt[pos], None, 1, meth, window=8, stride=4))[:, 0]
        inside = [positive_share(a[j], mt[i]) for j, i in enumerate(pos)]
        dil = [positive_share(a[j], ndimage.binary_dilation(mt[i], iterations=2)) for j, i in enumerate(pos)]
        rnd = randomisation_test(m.net, xt[pos[:10]], None, 1, meth, seed=0, n_random=5, window=8, stride=4)
        out["methods"][meth] = {"share_inside_scar": _stats(inside), "share_inside_scar_dilated_2px": _stats(dil),
                                "randomisation_spearman": _stats(rnd["spearman"]),
                                "seconds": round(time.time() - t1, 1)}
        print(f"synthetic {meth}: inside scar {np.nanmean(inside):.3f}, dilated {np.nanmean(dil):.3f}, "
              f"randomisation rho {rnd['spearman_mean']:.3f}", flush=True)
    out["scar_area_fraction"] = float(mt[pos].mean())
    return out


def acdc(epochs, max_val, seed=0, save_model=None):
    from cmrrisk.explain.attributions import permutation_importance
    from cmrrisk.explain.core import _models, explain_subject, reference_latents, subject_rows
    from cmrrisk.explain.saliency import randomisation_test
    from cmrrisk.manifest import acdc_manifest
    from cmrrisk.predict.pipeline import Pipeline
    from cmrrisk.predict.tabular import load_table

    _models()
    root = os.path.join(DATA, "acdc", "training")
    tmp = tempfile.mkdtemp(prefix="explain_bench_")
    manifest = os.path.join(tmp, "acdc.csv")
    acdc_manifest(root, manifest)
    table = load_table(manifest, "diagnosis", image_features=False)
    # the manifest's seg_labels (ACDC label convention) go with every image row, so that training
    # and explanation read the reference segmentations the same way
    table.images = subject_rows(table)
    from devmodels import held_out

    val = held_out("cine")[1]  # the cine development model's validation subjects (bench/devmodels.py)
    tr = [i for i, s in enumerate(table.subjects) if s not in val]
    te = [i for i, s in enumerate(table.subjects) if s in val][:max_val]
    train, test = table.subset(tr), table.subset(te)
    t0 = time.time()
    pipe = Pipeline("diagnosis", "multiinput", seed=seed, model_params={"max_epochs": epochs}).fit(train)
    train_s = time.time() - t0
    if save_model:
        from cmrrisk.predict.store import save_pipeline

        save_pipeline(pipe, save_model)
    print(f"ACDC: trained on {len(tr)} subjects, {epochs} epochs (best {pipe.model.best_epoch}) in {train_s:.0f} s",
          flush=True)
    x = pipe.preprocessor.transform(test)
    imgs = pipe.model.images(test.images)
    proba = pipe.model.predict_proba(x, images=imgs)
    y = np.array([pipe.classes.index(v) for v in test.label])
    acc = float((proba.argmax(1) == y).mean())
    print(f"ACDC held-out accuracy {acc:.3f} (n={len(te)})", flush=True)
    ref = reference_latents(pipe, train)
    res = {"n_train": len(tr), "n_val": len(te), "epochs": epochs, "best_epoch": pipe.model.best_epoch,
           "train_seconds": round(train_s, 1), "val_accuracy": acc, "classes": pipe.classes,
           "covariates": pipe.preprocessor.feature_names, "methods": {}, "per_subject": {}}
    for meth in METHODS:
        t1 = time.time()
        shares = {"cine_ed": [], "cine_es": []}
        for s in test.subjects:
            e = explain_subject(pipe, test, s, meth, reference=ref, k=5)
            for col in shares:
                shares[col].append(e.image_regions[col]["heart_dilated_5"])
            res["per_subject"].setdefault(s, {})[meth] = {c: e.image_regions[c]["heart_dilated_5"] for c in shares}
            if meth == "gradcam":
                res["per_subject"][s]["text"] = e.text
                res["per_subject"][s]["similar_labels"] = [c["label"] for c in e.similar]
                res["per_subject"][s]["label"] = str(test.label[test.subjects.index(s)])
        rnd = randomisation_test(pipe.model.net, imgs[:8], x[:8], proba[:8].argmax(1), meth, seed=0, n_random=3)
        res["methods"][meth] = {"heart_dilated_5_ed": _stats(shares["cine_ed"]),
                                "heart_dilated_5_es": _stats(shares["cine_es"]),
                                "subjects_ed_at_least_60pct": int(np.sum(np.asarray(shares["cine_ed"]) >= 0.6)),
                                "randomisation_spearman": _stats(rnd["spearman"]),
                                "seconds": round(time.time() - t1, 1)}
        print(f"ACDC {meth}: heart+5 ED {np.nanmean(shares['cine_ed']):.3f} "
              f"(min {np.nanmin(shares['cine_ed']):.3f}), ES {np.nanmean(shares['cine_es']):.3f}; "
              f"randomisation rho {rnd['spearman_mean']:.3f}; {time.time() - t1:.0f} s", flush=True)
    same = [np.mean([lab == v["label"] for lab in v["similar_labels"]]) for v in res["per_subject"].values()
            if "similar_labels" in v]
    res["similar_cases_same_label_share"] = float(np.mean(same))
    res["permutation_importance"] = permutation_importance(pipe.model, x, y, pipe.preprocessor.feature_names,
                                                           "diagnosis", images=imgs, n_repeats=5, seed=seed)
    return res


def main(argv=None):
    import torch

    from cmrrisk.modeldir import write_json

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--max-val", type=int, default=20)
    ap.add_argument("--skip-acdc", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--save-model", default=None, help="also save the ACDC model directory here")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "explain_sanity.json"))
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    t0 = time.time()
    out = {"command": "bench/bench_explain_sanity.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "threads": a.threads, "synthetic_lge": synthetic()}
    write_json(a.out, out)
    if not a.skip_acdc and os.path.isdir(os.path.join(DATA, "acdc", "training")):
        out["acdc"] = acdc(a.epochs, a.max_val, save_model=a.save_model)
    out["seconds"] = round(time.time() - t0, 1)
    write_json(a.out, out)
    print(f"written: {a.out}")


if __name__ == "__main__":
    main()
