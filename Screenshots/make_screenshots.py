"""Make the Extensions Index screenshots from the sample study (cmrrisk.mrml.sampledata): the
modules' outputs drawn with matplotlib, because the Slicer application cannot run where they are
made. Run from the repository root:

    PYTHONPATH=CMRRiskExtension python Screenshots/make_screenshots.py [--out Screenshots]

1. segmentation-overlay.png: the bundled cine model's segmentation of the sample study's ED frame
2. indices-table.png: the clinical indices of its ED and ES segmentations (CMRRisk Segment's table)
3. heatmap.png: a Grad-CAM heatmap of a small multi-input survival model over the ED frame
4. survival-curve.png: that model's predicted survival curve for the sample study

The small model is trained here on 12 synthetic subjects (the sample study is the first of them,
same seed), only to show what the outputs look like: its figures are not results.
"""

import argparse
import os
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "CMRRiskExtension"))


def _save(fig, path):
    fig.savefig(path, dpi=80)
    import matplotlib.pyplot as plt

    plt.close(fig)
    print(f"{path}: {os.path.getsize(path)} bytes")


def _crop(labels, margin=12):
    ys, xs = np.nonzero(labels)
    return (slice(max(0, ys.min() - margin), ys.max() + margin), slice(max(0, xs.min() - margin), xs.max() + margin))


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=os.path.join(ROOT, "Screenshots"))
    args = parser.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd
    import torch

    from cmrrisk import labels as L
    from cmrrisk import synthetic
    from cmrrisk.explain.core import register_models, explain_subject
    from cmrrisk.image import read_image
    from cmrrisk.metrics import clinical_indices
    from cmrrisk.mrml.sampledata import SEED
    from cmrrisk.predict.pipeline import Pipeline
    from cmrrisk.predict.study import predict_study
    from cmrrisk.study import Study
    from cmrrisk.predict.tabular import load_table
    from cmrrisk.segmentation.infer import Segmenter

    torch.set_num_threads(1)
    torch.manual_seed(0)
    work = tempfile.mkdtemp(prefix="cmrrisk-screenshots-")
    manifest = synthetic.generate_cohort(os.path.join(work, "cohort"), n=12, seed=SEED, progress=False)
    rows = pd.read_csv(manifest)
    row = rows.iloc[0]  # the sample study (the first subject of the same seed)
    folder = os.path.dirname(manifest)
    ed, es = (read_image(os.path.join(folder, row[c])) for c in ("cine_ed", "cine_es"))

    # 1. segmentation overlay
    seg = Segmenter.load("cine")
    ed_lab, es_lab = seg.segment(ed).array, seg.segment(es).array
    z = int(np.argmax((ed_lab == L.LV_BLOOD_POOL).sum(axis=(1, 2))))
    box = _crop(ed_lab[z])
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.imshow(ed.array[z][box], cmap="gray")
    overlay = np.zeros(ed_lab[z][box].shape + (4,))
    for value in L.CINE_LABELS:
        name, color, _ = L.SEGMENTS[value]
        overlay[ed_lab[z][box] == value] = (*color, 0.45)
        ax.plot([], [], color=color, lw=6, label=name)
    ax.imshow(overlay)
    ax.legend(loc="lower right", fontsize=7, framealpha=0.8)
    ax.set_title(f"CMRRisk Segment: sample study, ED slice {z}", fontsize=9)
    ax.axis("off")
    fig.tight_layout()
    _save(fig, os.path.join(args.out, "segmentation-overlay.png"))

    # 2. clinical indices table
    indices = clinical_indices(ed_lab, es_lab, ed.spacing)
    units = {"ml": "mL", "pct": "%", "g": "g"}
    cells = [[k, f"{float(v):.1f}", units.get(k.rsplit('_', 1)[-1], "")] for k, v in indices.items()]
    fig, ax = plt.subplots(figsize=(4.5, 0.25 * len(cells) + 0.8))
    ax.axis("off")
    table = ax.table(cellText=cells, colLabels=["index", "value", "unit"], loc="center", cellLoc="left")
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    ax.set_title("CMRRisk Segment: clinical indices (ED and ES)", fontsize=9)
    fig.tight_layout()
    _save(fig, os.path.join(args.out, "indices-table.png"))

    # 3-4. a small multi-input survival model: heatmap and predicted survival curve
    register_models()
    data = load_table(manifest, "survival", image_features=False)
    pipe = Pipeline("survival", "multiinput", seed=0,
                    model_params={"width": 4, "max_epochs": 3, "batch_size": 4, "use_lge": False}).fit(data)
    expl = explain_subject(pipe, data, row["subject"], "gradcam", None, 0)
    heat = expl.heatmaps["cine_ed"].array
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.imshow(ed.array[z][box], cmap="gray")
    h = heat[z][box]
    ax.imshow(np.ma.masked_less(h, 0.05 * max(1e-12, float(h.max()))), cmap="hot", alpha=0.5)
    ax.set_title("CMRRisk Predict: Grad-CAM heatmap over ED", fontsize=9)
    ax.axis("off")
    fig.tight_layout()
    _save(fig, os.path.join(args.out, "heatmap.png"))

    covariates = {k: row[k] for k in ("age", "sex", "diabetes")}
    res = predict_study(pipe, Study(row["subject"], ed, es, covariates=covariates))
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    ax.step(res["curve"]["time"], res["curve"]["survival"], where="post")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("time")
    ax.set_ylabel("predicted event-free survival")
    ax.set_title(f"CMRRisk Predict: {row['subject']} (risk group {res.get('risk_group', '-')})", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    _save(fig, os.path.join(args.out, "survival-curve.png"))


if __name__ == "__main__":
    main()
