"""One subject's explanation: prediction, saliency heatmaps on the subject's own images,
covariate attributions, similar reference subjects and a sentence; and writing it to a folder.

:func:`explain_subject` works on a loaded pipeline (:func:`cmrrisk.predict.store.load_pipeline`)
and a manifest table; :func:`explain_study` on a :class:`cmrrisk.study.Study` in memory (the
Slicer module);
:func:`write_explanation` writes heatmap NIfTI files (exactly the input's shape and affine),
``attributions.csv``, ``explanation.json`` and PNG overlays.
"""

from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from .. import labels as L
from ..errors import CMRRiskError
from ..study import Study
from .attributions import IMAGES, covariate_attributions, feature_values
from .examples import latent, outcomes_of, similar_cases
from .saliency import DEFAULT_LAYER, METHODS, collapse_channels, image_attributions, positive_share
from .text import explanation_text

REGIONS = {"LV blood pool": L.LV_BLOOD_POOL, "LV myocardium": L.LV_MYOCARDIUM, "RV blood pool": L.RV_BLOOD_POOL}


@dataclass
class Explanation:
    subject: str
    endpoint: str
    method: str | None
    prediction: dict
    attributions: list  # [{feature, value, attribution}]
    text: str
    similar: list = field(default_factory=list)
    heatmaps: dict = field(default_factory=dict)  # input column -> Volume (input's geometry)
    images: dict = field(default_factory=dict)  # input column -> Volume (the explained image)
    segmentations: dict = field(default_factory=dict)  # input column -> labels (Z, Y, X)
    image_regions: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    model: str = ""  # the explained model, as named in figure titles

    def to_json(self) -> dict:
        return _finite({"subject": self.subject, "endpoint": self.endpoint, "method": self.method,
                "prediction": self.prediction, "text": self.text, "attributions": self.attributions,
                "similar_cases": self.similar, "image_regions": self.image_regions,
                "heatmaps": sorted(self.heatmaps), "notes": self.notes})


def _finite(obj):
    """NaN / infinite floats -> None (strict JSON)."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return float(obj) if np.isfinite(obj) else None
    return obj


def register_models():
    """Register the model kinds that explanation may meet (the multi-input image model)."""
    from ..predict import multiinput  # noqa: F401  (registers the multi-input model)


def heart_share(heat: np.ndarray, seg: np.ndarray, dilate: int = 5) -> float:
    """Share of the positive heatmap inside the heart labels (1-3) dilated in-plane by ``dilate``
    voxels."""
    heart = np.asarray(seg) > 0
    if dilate:
        st = np.zeros((3, 3, 3), bool)
        st[1] = ndimage.generate_binary_structure(2, 1)
        heart = ndimage.binary_dilation(heart, st, iterations=int(dilate))
    return positive_share(heat, heart)


def region_shares(heat: np.ndarray, seg: np.ndarray) -> dict:
    h = np.clip(heat, 0, None)
    tot = h.sum()
    if tot <= 0:
        return {}
    return {name: float(h[np.asarray(seg) == v].sum() / tot) for name, v in REGIONS.items()}


def subject_rows(table) -> list:
    """Per-subject image rows of a manifest table, with the manifest's ``seg_labels`` (the
    label convention of reference segmentations) added when the manifest has that column."""
    rows = [dict(r) for r in (table.images or [{} for _ in table.subjects])]
    src = getattr(table, "source", "")
    if src and os.path.isfile(src):
        import pandas as pd

        raw = pd.read_csv(src, dtype=str, keep_default_na=False, skipinitialspace=True)
        raw.columns = [str(c).strip() for c in raw.columns]
        if "seg_labels" in raw.columns and "subject" in raw.columns:
            conv = {s.strip(): v.strip() for s, v in zip(raw["subject"], raw["seg_labels"])}
            for s, r in zip(table.subjects, rows):
                if conv.get(s):
                    r["seg_labels"] = conv[s]
    return rows


def _prediction(pipe, x, images=None) -> tuple:
    model = pipe.model
    kw = {} if images is None else {"images": images}
    if pipe.endpoint == "diagnosis":
        p = model.predict_proba(x, **kw)[0]
        t = int(np.argmax(p))
        return {"endpoint": "diagnosis", "predicted": pipe.classes[t], "probability": float(p[t]),
                "probabilities": {c: float(v) for c, v in zip(pipe.classes, p)}}, t
    r = float(model.predict_risk(x, **kw)[0])
    out = {"endpoint": "survival", "risk": r}
    cut = (getattr(pipe, "training", {}) or {}).get("risk_cutpoints")
    if cut:
        from ..predict.models.targets import risk_group

        out["risk_group"] = risk_group(cut, r)
    return out, None


def reference_latents(pipe, reference_table) -> dict:
    """Latent vectors and outcomes of reference (training) subjects, for :func:`similar_cases`."""
    register_models()
    x = pipe.preprocessor.transform(reference_table)
    imgs = None
    if pipe.model.uses_inputs:
        imgs = pipe.model.images(subject_rows(reference_table))
    return {"subjects": list(reference_table.subjects), "latent": latent(pipe.model, x, imgs),
            "outcomes": outcomes_of(reference_table, pipe.endpoint)}


def load_reference(pipe, reference: str | None = None):
    """The reference table: ``reference`` (a manifest path) or the model's training manifest
    when it is still where it was; None when neither is available."""
    from ..predict.tabular import load_table
    from ..predict.validation import needs_image_features

    path = reference or (getattr(pipe, "training", {}) or {}).get("manifest")
    if not path:
        return None
    if not os.path.isfile(path):
        if reference:
            raise CMRRiskError(f"{reference}: reference manifest not found.")
        return None
    return load_table(path, pipe.endpoint, need_outcome=True, image_features=needs_image_features(pipe))


def _explain(pipe, subject, x, values, method, tensor=None, geom=None, vols=None, segs=None,
             reference=None, k=5, layer=DEFAULT_LAYER, exclude=None, **kw) -> Explanation:
    model = pipe.model
    if getattr(model, "uses_lge", False):
        raise CMRRiskError("explanations of multi-input models with an LGE branch are not implemented "
                           "yet; explain a model trained without it (model_params use_lge=False).")
    names = list(pipe.preprocessor.feature_names)
    images = None if tensor is None else tensor[None]
    pred, target = _prediction(pipe, x, images)
    notes = []
    heat_vols, regions = {}, {}
    rows = []
    if images is not None:
        from ..predict.images import CHANNELS, from_grid

        if method not in METHODS:
            raise CMRRiskError(f"--method {method!r}: choose one of {', '.join(METHODS)}.")
        net = model.net
        cov_method = "gradshap" if method == "gradshap" else "ig"
        joint, cov_attr = image_attributions(net, images, x, target, cov_method, layer=layer,
                                             with_covariates=True, **kw)
        if method == cov_method:
            heat = joint
        else:
            heat = image_attributions(net, images, x, target, method, layer=layer, **kw)
        img_total = float(joint.sum())
        if cov_attr is not None and pipe.endpoint == "diagnosis":
            # joint attributions are of the logit; report covariates on the probability scale
            cov_attr = covariate_attributions(model, x, pipe.endpoint, target, images, cov_method)
        elif cov_attr is None:
            cov_attr = np.zeros((1, 0), np.float32)
        if pipe.endpoint == "diagnosis":
            # the image block's share on the probability scale: probability minus probability
            # with the images replaced by the all-zero baseline
            p0 = model.predict_proba(x, images=np.zeros_like(images))[0, target]
            img_total = pred["probability"] - float(p0)
        for col, phase in (("cine_ed", "ed_"), ("cine_es", "es_")):
            if col not in vols:
                continue
            ch = [i for i, c in enumerate(CHANNELS) if c.startswith(phase)]
            grid = collapse_channels(heat, ch)[0] if heat.ndim == 5 else heat[0]
            vol = vols[col]
            arr = from_grid(grid, geom).astype(np.float32)
            heat_vols[col] = _like(vol, arr)
            if col in segs and segs[col] is not None:
                regions[col] = region_shares(arr, segs[col])
                regions[col]["heart_dilated_5"] = heart_share(arr, segs[col], 5)
        rows.append({"feature": IMAGES, "value": None, "attribution": img_total})
    else:
        if method not in (None, "auto", "kernelshap", "ig", "gradshap") and method in METHODS:
            notes.append(f"model {model.name!r} has no image input: method {method!r} does not apply; "
                         "covariate attributions by KernelShap.")
        cov_attr = covariate_attributions(model, x, pipe.endpoint, target, None, "kernelshap")
    for nm, v, a in zip(names, values, cov_attr[0].tolist()):
        rows.append({"feature": nm, "value": v, "attribution": float(a)})
    similar = []
    if reference is not None:
        ref = reference if isinstance(reference, dict) else reference_latents(pipe, reference)
        q = latent(model, x, images)[0]
        similar = similar_cases(q, ref["latent"], ref["subjects"], ref["outcomes"], k,
                                exclude=exclude if exclude is not None else [subject])
    else:
        notes.append("no reference cohort (training manifest not found): no similar cases.")
    first = next(iter(regions.values()), {})
    text = explanation_text(pred, rows, image_regions={n: first[n] for n in REGIONS if n in first},
                            similar=similar)
    return Explanation(subject, pipe.endpoint, method if images is not None else "kernelshap", pred, rows,
                       text, similar, heat_vols, dict(vols or {}), dict(segs or {}), regions, notes,
                       model_label(pipe))


def model_label(pipe) -> str:
    """How figures name a prediction model: its kind and, when loaded from disk, its folder."""
    name = str(getattr(pipe, "model_name", "") or getattr(pipe.model, "name", "") or "model")
    folder = getattr(pipe, "model_dir", None)
    return f"{name} ({os.path.basename(os.path.normpath(folder))})" if folder else name


def _like(vol, arr):
    from ..image import Volume

    if vol.is_cine:
        return Volume(arr, vol.ijk_to_ras.copy(), vol.source)
    if vol.array.shape == arr.shape:
        return vol.with_array(arr)
    return Volume(arr, vol.ijk_to_ras.copy(), vol.source)


def explain_subject(pipe, table, subject: str, method: str = "ig", reference=None, k: int = 5,
                    layer: str = DEFAULT_LAYER, **kw) -> Explanation:
    """Explain one subject of ``table`` (a :class:`~cmrrisk.predict.tabular.Table`).

    ``reference``: a Table of reference subjects with outcomes, a precomputed
    :func:`reference_latents` dict, or None (no similar cases).
    """
    register_models()
    if subject not in table.subjects:
        raise CMRRiskError(f"{table.source}: subject {subject!r} not found "
                           f"(first subjects: {', '.join(table.subjects[:5])}).")
    i = table.subjects.index(subject)
    sub = table.subset([i])
    x = pipe.preprocessor.transform(sub)
    values = feature_values(sub, pipe.preprocessor.feature_names)
    if not pipe.model.uses_inputs:
        return _explain(pipe, subject, x, values, method, reference=reference, k=k, layer=layer, **kw)
    from ..predict.images import load_cine_pair, subject_tensor

    row = subject_rows(table)[i]
    try:
        ed, es, s_ed, s_es, _ = load_cine_pair(row)
    except CMRRiskError as exc:
        raise CMRRiskError(f"{table.source}: subject {subject!r}: {exc}") from exc
    tensor, geom = subject_tensor(Study(subject, ed, es, ed_seg=s_ed, es_seg=s_es), pipe.model.grid)
    # a 4D cine (column ``cine``) gives heatmaps on its ED and ES frames' 3D grid
    vols = {"cine_ed": ed, "cine_es": es}
    segs = {"cine_ed": s_ed, "cine_es": s_es}
    return _explain(pipe, subject, x, values, method, tensor, geom, vols, segs, reference, k, layer, **kw)


def explain_study(pipe, study: Study, method: str = "ig", reference=None, k: int = 5,
                  device: str | None = None, progress=None, **kw) -> Explanation:
    """Explain the prediction for ``study`` (a :class:`cmrrisk.study.Study`: ED and ES frames,
    missing segmentations from the bundled cine model; an LGE stack for a model over LGE image
    features; its covariates). The study's input row is built as for a prediction
    (:func:`cmrrisk.predict.study.study_table`: image features computed from the volumes when the
    model uses them; covariates not given imputed).

    Optional: ``device`` (where the segmentation network runs) and ``progress`` (a
    :class:`cmrrisk.progress.Progress`: image features in 0..0.6 of it, then segmentation for an
    image model, then the attributions, then the end; a cancel raises
    :class:`cmrrisk.errors.Cancelled` before the next step)."""
    from ..predict.study import study_table
    from ..progress import as_progress

    progress = as_progress(progress)
    register_models()
    table, notes = study_table(pipe, study, device=device, progress=progress.part(0.0, 0.6))
    subject, ed, es = study.subject, study.ed, study.es
    x = pipe.preprocessor.transform(table)
    values = feature_values(table, pipe.preprocessor.feature_names)
    if not pipe.model.uses_inputs:
        progress.fraction(0.7, "attributions")
        e = _explain(pipe, subject, x, values, method, reference=reference, k=k, **kw)
    else:
        from ..predict.images import subject_tensor
        from ..segmentation.service import segment_ed_es

        r = segment_ed_es(ed, es, study.ed_seg, study.es_seg, device=device or "cpu",  # ES anchored to ED
                          progress=progress.part(0.62, 0.7))
        segs = {"cine_ed": r.ed, "cine_es": r.es}
        tensor, geom = subject_tensor(study.with_segmentations(ed_seg=r.ed, es_seg=r.es), pipe.model.grid)
        progress.fraction(0.7, f"image saliency ({method}) and attributions")
        e = _explain(pipe, subject, x, values, method, tensor, geom, {"cine_ed": ed, "cine_es": es}, segs,
                     reference, k, **kw)
    e.notes.extend(notes)
    progress.report(1, 1, "explanation done")
    return e


# ------------------------------------------------------------------------------------- writing

def _write_bytes_atomic(path: str, data: bytes) -> None:
    from ..modeldir import write_bytes_atomic

    write_bytes_atomic(path, data)


#: colours of the segmentation contours in the PNG overlays (project labels, cmrrisk.labels)
#: (drawn in this order: the LV blood pool's edge over the myocardium's inner edge)
CONTOUR_COLOURS = {L.LV_MYOCARDIUM: "#39ff14", L.LV_BLOOD_POOL: "#00e5ff", L.RV_BLOOD_POOL: "#4d7cff",
                   L.SCAR: "#ffd400", L.MVO: "#ff40ff"}


def heart_crop(shape, seg: np.ndarray | None = None, heat: np.ndarray | None = None,
               margin: float = 0.25, min_size: int = 32) -> tuple:
    """In-plane window (y0, y1, x0, x1) around the heart for the PNG overlays: the bounding box
    of the segmentation over all slices (of the positive heatmap when there is no
    segmentation), grown by ``margin`` of its size on each side, made square and at least
    ``min_size`` voxels, kept inside the image. The whole plane when neither marks anything."""
    h, w = int(shape[-2]), int(shape[-1])
    mask = None
    if seg is not None and np.asarray(seg).shape[-2:] == (h, w) and (np.asarray(seg) > 0).any():
        mask = np.asarray(seg) > 0
    elif heat is not None and np.asarray(heat).shape[-2:] == (h, w) and (np.asarray(heat) > 0).any():
        hp = np.clip(np.asarray(heat, float), 0, None)
        mask = hp > 0.05 * hp.max()
    if mask is None:
        return 0, h, 0, w
    plane = mask.reshape(-1, h, w).any(0)
    ys, xs = np.nonzero(plane.any(1))[0], np.nonzero(plane.any(0))[0]
    cy, cx = (ys[0] + ys[-1] + 1) / 2, (xs[0] + xs[-1] + 1) / 2
    side = max(ys[-1] + 1 - ys[0], xs[-1] + 1 - xs[0]) * (1 + 2 * margin)
    side = int(round(min(max(side, min_size), max(h, w))))

    def span(c, n):
        size = min(side, n)
        lo = int(round(c - size / 2))
        lo = min(max(lo, 0), n - size)
        return lo, lo + size

    (y0, y1), (x0, x1) = span(cy, h), span(cx, w)
    return y0, y1, x0, x1


def overlay_png(image: np.ndarray, heat: np.ndarray, title: str = "", max_slices: int = 6,
                seg: np.ndarray | None = None) -> bytes:
    """A PNG of the slices with the most positive attribution, cropped to the heart
    (:func:`heart_crop`): per slice, the image in grey with the segmentation contours (top row)
    and the positive heatmap over the image with the same contours (bottom row), a colour bar
    of the attribution and ``title`` (matplotlib, Agg canvas; no pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    h = np.clip(heat, 0, None)
    if seg is not None and np.asarray(seg).shape != np.asarray(image).shape:
        seg = None  # a segmentation on another grid cannot be drawn over this image
    per_slice = h.reshape(h.shape[0], -1).sum(1)
    order = [int(z) for z in np.argsort(-per_slice) if per_slice[z] > 0][:max_slices]
    order = sorted(order) or [int(image.shape[0] // 2)]
    y0, y1, x0, x1 = heart_crop(image.shape, seg, h)
    vmax = float(h.max()) or 1.0
    lo, hi = np.percentile(image[:, y0:y1, x0:x1], [1, 99])
    hi = hi if hi > lo else lo + 1
    n = len(order)
    panel = 2.4
    width, height = panel * n + 1.6, 2 * panel + 0.7  # inches: panels, row labels, colour bar and its label
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(2, n + 1, width_ratios=[1] * n + [0.08], left=0.3 / width, right=1 - 0.75 / width,
                            bottom=0.02, top=1 - 0.55 / height, wspace=0.04, hspace=0.1)
    shown = None
    for j, z in enumerate(order):
        for row in (0, 1):
            ax = fig.add_subplot(grid[row, j])
            ax.imshow(image[z, y0:y1, x0:x1], cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
            if row == 1:
                shown = ax.imshow(np.ma.masked_less_equal(h[z, y0:y1, x0:x1], 0.05 * vmax), cmap="hot",
                                  vmin=0, vmax=vmax, alpha=0.6, interpolation="nearest")
            if seg is not None:
                s = np.asarray(seg)[z, y0:y1, x0:x1]
                for label, colour in CONTOUR_COLOURS.items():
                    if (s == label).any():
                        ax.contour(s == label, levels=[0.5], colors=[colour], linewidths=1.0)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(f"slice {z}", fontsize=10)
        if j == 0:
            fig.axes[-2].set_ylabel("image" + (" + segmentation" if seg is not None else ""), fontsize=9)
            fig.axes[-1].set_ylabel("attribution", fontsize=9)
    cax = fig.add_subplot(grid[1, n])
    fig.colorbar(shown, cax=cax).set_label("positive attribution", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=11)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _file_stem(subject: str) -> str:
    """A subject identifier as a file-name stem: characters other than letters, digits, '.', '_'
    and '-' become '_', leading dots go, so that an identifier like '../x' or 'site/p02' cannot
    write outside the output folder or into a subfolder."""
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", str(subject)).lstrip(".")
    return stem or "subject"


def write_explanation(expl: Explanation, out_dir: str, png: bool = True) -> dict:
    """Write heatmaps ``<subject>_<column>_<method>.nii.gz``, ``<subject>_attributions.csv``,
    ``<subject>_explanation.json`` and ``<subject>_<column>_<method>.png``; returns the paths."""
    import pandas as pd

    from ..image import write_image
    from ..modeldir import write_json, write_text_atomic

    os.makedirs(out_dir, exist_ok=True)
    paths = {"heatmaps": {}, "png": {}}
    if png:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            png = False
            expl.notes.append("matplotlib is not installed: no PNG overlays (pip install matplotlib).")
    for col, vol in expl.heatmaps.items():
        p = os.path.join(out_dir, f"{_file_stem(expl.subject)}_{col}_{expl.method}.nii.gz")
        write_image(vol, p)
        paths["heatmaps"][col] = p
        if png and col in expl.images:
            q = os.path.join(out_dir, f"{_file_stem(expl.subject)}_{col}_{expl.method}.png")
            model = f" | model {expl.model}" if expl.model else ""
            _write_bytes_atomic(q, overlay_png(expl.images[col].array, vol.array,
                                               f"{expl.subject}{model} | {col} | {expl.method}",
                                               seg=expl.segmentations.get(col)))
            paths["png"][col] = q
    df = pd.DataFrame(expl.attributions, columns=["feature", "value", "attribution"])
    df["abs_rank"] = df["attribution"].abs().rank(ascending=False, method="first").astype(int)
    paths["attributions"] = os.path.join(out_dir, f"{_file_stem(expl.subject)}_attributions.csv")
    write_text_atomic(paths["attributions"], df.to_csv(index=False, float_format="%.6g"))
    paths["explanation"] = os.path.join(out_dir, f"{_file_stem(expl.subject)}_explanation.json")
    js = expl.to_json()
    js["files"] = {"heatmaps": {k: os.path.basename(v) for k, v in paths["heatmaps"].items()},
                   "attributions": os.path.basename(paths["attributions"]),
                   "png": {k: os.path.basename(v) for k, v in paths["png"].items()}}
    write_json(paths["explanation"], js)
    return paths
