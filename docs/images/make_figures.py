"""Make the README's two pictures from a synthetic cohort with CMRRisk's own code.

    PYTHONPATH=CMRRiskExtension python docs/images/make_figures.py [--out docs/images]

1. ``segmentation.png``: one synthetic subject's cine ED frame and LGE stack (mid slice),
   segmented by the bundled ``cine`` and ``lge`` models, with the labels' contours.
2. ``saliency.png``: an Integrated Gradients heatmap (``cmrrisk explain``'s default method) of
   a small multi-input survival network trained on a 24-subject synthetic cohort, over the ED
   frame of a test subject, cropped to the heart.

The network is deliberately small (a picture, not a validated model); the figures of the
bundled models are in docs/validation.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "CMRRiskExtension"))


def _crop_box(mask: np.ndarray, margin: int = 14):
    ys, xs = np.nonzero(mask)
    y0, y1 = max(ys.min() - margin, 0), min(ys.max() + margin + 1, mask.shape[0])
    x0, x1 = max(xs.min() - margin, 0), min(xs.max() + margin + 1, mask.shape[1])
    return slice(y0, y1), slice(x0, x1)


def _mid_slice(labels: np.ndarray) -> int:
    area = (labels > 0).reshape(labels.shape[0], -1).sum(1)
    idx = np.nonzero(area)[0]
    return int(idx[len(idx) // 2])


def _contours(ax, labels, structures):
    from cmrrisk import labels as L

    order = sorted(structures, key=lambda v: v != L.LV_MYOCARDIUM)  # the myocardium first, the cavities over it
    for value in order:
        mask = (labels == value).astype(float)
        if mask.any():
            ax.contour(mask, levels=[0.5], colors=[L.SEGMENTS[value][1]], linewidths=1.4)


def segmentation_figure(subject_dir: str, path: str) -> None:
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    from cmrrisk import labels as L
    from cmrrisk.image import read_image
    from cmrrisk.segmentation.infer import Segmenter

    panels = []
    for role, model, structures in (("cine_ed", "cine", L.CINE_LABELS), ("lge", "lge", L.LGE_LABELS)):
        vol = read_image(os.path.join(subject_dir, f"{role}.nii.gz"))
        seg = Segmenter.load(model).segment(vol).array
        z = _mid_slice(seg)
        box = _crop_box(seg[z] > 0)
        panels.append((role, model, structures, vol.array[z][box], seg[z][box]))
    fig, axes = plt.subplots(1, 2, figsize=(7.0, 3.6), dpi=110)
    for ax, (role, model, structures, img, lab) in zip(axes, panels):
        ax.imshow(img, cmap="gray", interpolation="bilinear")
        _contours(ax, lab, structures)
        ax.set_title(f"{'cine ED' if role == 'cine_ed' else 'LGE'}: bundled '{model}' model", fontsize=9)
        ax.axis("off")
    handles = [Line2D([], [], color=L.SEGMENTS[v][1], lw=2, label=L.SEGMENTS[v][0])
               for v in (L.LV_BLOOD_POOL, L.LV_MYOCARDIUM, L.RV_BLOOD_POOL, L.SCAR, L.MVO)]
    fig.legend(handles=handles, loc="lower center", ncol=5, fontsize=7, frameon=False)
    fig.suptitle("Synthetic subject SYN003 (cmrrisk synth, seed 0)", fontsize=10)
    fig.tight_layout(rect=(0, 0.07, 1, 0.95))
    fig.savefig(path, facecolor="white")
    plt.close(fig)


def saliency_figure(manifest: str, subject: str, path: str) -> None:
    import matplotlib.pyplot as plt

    from cmrrisk import labels as L
    from cmrrisk.explain.core import _models, explain_subject
    from cmrrisk.predict.pipeline import Pipeline
    from cmrrisk.predict.tabular import load_table

    _models()
    table = load_table(manifest, "survival", image_features=False)
    train = table.subset([i for i, s in enumerate(table.subjects) if s != subject])
    pipe = Pipeline("survival", "multiinput", seed=0,
                    model_params={"width": 8, "max_epochs": 20, "batch_size": 8, "use_lge": False}).fit(train)
    expl = explain_subject(pipe, table, subject, method="ig")
    img = expl.images["cine_ed"].array
    heat = expl.heatmaps["cine_ed"].array
    seg = expl.segmentations["cine_ed"]
    z = int(np.argmax(np.abs(heat).reshape(heat.shape[0], -1).sum(1) * ((seg > 0).reshape(seg.shape[0], -1).any(1))))
    box = _crop_box(seg[z] > 0)
    im, h, lab = img[z][box], heat[z][box], seg[z][box]
    vmax = float(np.percentile(np.abs(h), 99.5)) or 1.0
    fig, axes = plt.subplots(1, 2, figsize=(7.0, 3.6), dpi=110)
    axes[0].imshow(im, cmap="gray", interpolation="bilinear")
    _contours(axes[0], lab, L.CINE_LABELS)
    axes[0].set_title(f"{subject} cine ED, slice {z}", fontsize=9)
    axes[1].imshow(im, cmap="gray", interpolation="bilinear")
    shown = np.ma.masked_where(np.abs(h) < 0.05 * vmax, h)
    mappable = axes[1].imshow(shown, cmap="RdBu_r", vmin=-vmax, vmax=vmax, alpha=0.75, interpolation="bilinear")
    _contours(axes[1], lab, (L.LV_MYOCARDIUM,))
    axes[1].set_title("Integrated Gradients (red: raises the risk)", fontsize=9)
    for ax in axes:
        ax.axis("off")
    bar = fig.colorbar(mappable, ax=axes[1], fraction=0.046, pad=0.04)
    bar.ax.tick_params(labelsize=7)
    bar.ax.yaxis.get_offset_text().set_fontsize(7)
    bar.set_label("attribution", fontsize=8)
    fig.suptitle("Saliency of a small multi-input survival network (synthetic cohort, 23 training subjects)",
                 fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    fig.savefig(path, facecolor="white")
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "images"))
    ap.add_argument("--n", type=int, default=24, help="synthetic subjects (default 24)")
    args = ap.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import torch

    torch.set_num_threads(1)
    from cmrrisk.synthetic import generate_cohort

    with tempfile.TemporaryDirectory() as work:
        manifest = generate_cohort(os.path.join(work, "cohort"), n=args.n, seed=0, progress=False)
        folder = os.path.dirname(manifest)
        os.makedirs(args.out, exist_ok=True)
        segmentation_figure(os.path.join(folder, "SYN003"), os.path.join(args.out, "segmentation.png"))
        saliency_figure(manifest, "SYN003", os.path.join(args.out, "saliency.png"))
    for name in ("segmentation.png", "saliency.png"):
        p = os.path.join(args.out, name)
        print(f"{p}: {os.path.getsize(p) // 1024} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
