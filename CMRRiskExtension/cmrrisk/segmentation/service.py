"""The one place that loads the bundled segmenters and segments a subject's cine.

* :func:`segmenter`: a loaded :class:`~cmrrisk.segmentation.infer.Segmenter`, cached per
  process by (model, device, test-time flips, slice-order check), so that every caller in a
  process (a command, or a Dask worker's tasks) shares one copy of the weights.
* :func:`segment_frame`: one 3D frame (ES anchored to ED when ``prior`` is given).
* :func:`segment_ed_es`: the ED and ES frames of a cine; ED first, then ES anchored to the ED
  labels (the reference ED labels when given). Reference labels are kept as given.
* :func:`segment_cine`: every phase of a 4D cine, ED and ES phases found on the labels.

Each returns a small result object telling what was done (model or reference, slice order),
taken from the segmenter's own result (``Segmenter.segment_detailed``), never from attributes
that another call on the same segmenter could change.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

_CACHE: dict = {}


def segmenter(model: str = "cine", device: str = "cpu", tta: bool | None = None, check_slice_order: bool = True):
    """The segmenter of model ``model`` (a bundled name or a model folder) on ``device`` with
    ``tta`` (None: the model's default) and the slice-order check on or off, loaded once per
    process for each such combination."""
    from .infer import Segmenter

    key = (model, device or "cpu", tta, bool(check_slice_order))
    if key not in _CACHE:
        m = Segmenter.load(model, device=device or "cpu", tta=tta)
        m.check_slice_order = m.check_slice_order and bool(check_slice_order)  # never on for a model without an order
        _CACHE[key] = m
    return _CACHE[key]


@dataclass(frozen=True)
class FrameResult:
    """One segmented frame: ``labels`` (uint8, the image's shape), ``source`` ("model cine",
    "model lge" or "reference"), ``anchored`` (segmented with the ED labels as prior), and for a
    model segmentation whether the stack was read reversed and what decided it (see
    ``Segmenter.predict_frame``)."""
    labels: np.ndarray
    source: str
    anchored: bool = False
    reversed: bool = False
    order_source: str = "unchecked"


@dataclass(frozen=True)
class EdEsResult:
    """The ED and ES labels of a cine, with how each was obtained (``frames['ed']`` /
    ``frames['es']``: :class:`FrameResult`)."""
    frames: dict = field(default_factory=dict)

    @property
    def ed(self) -> np.ndarray:
        return self.frames["ed"].labels

    @property
    def es(self) -> np.ndarray:
        return self.frames["es"].labels

    @property
    def sources(self) -> dict:
        return {ph: r.source for ph, r in self.frames.items()}


@dataclass(frozen=True)
class CineResult:
    """Every phase of a 4D cine: ``labels`` (T, Z, H, W), the ED and ES phase indices."""
    labels: np.ndarray
    ed_phase: int
    es_phase: int
    source: str
    reversed: bool = False
    order_source: str = "unchecked"


def segment_frame(vol, model: str = "cine", device: str = "cpu", prior: np.ndarray | None = None) -> FrameResult:
    """Segment the 3D Volume ``vol`` with bundled model ``model``; ``prior``: the ED labels when
    ``vol`` is the ES frame of the same cine (ES anchored to ED)."""
    got = segmenter(model, device).segment_detailed(vol, prior=prior)
    return FrameResult(np.asarray(got.volume.array), f"model {model}", prior is not None, got.reversed,
                       got.order_source)


def segment_ed_es(ed, es, ed_labels: np.ndarray | None = None, es_labels: np.ndarray | None = None,
                  model: str = "cine", device: str = "cpu", progress=None) -> EdEsResult:
    """The ED and ES labels of a cine given as two 3D Volumes: each given label array is kept
    (source "reference"); the others are segmented, ED first, then ES anchored to the ED labels.
    ``progress`` (a :class:`cmrrisk.progress.Progress`) is updated before each model
    segmentation (message "segmentation (ED)" or "(ES)"; a cancel stops there)."""
    from ..progress import as_progress

    progress = as_progress(progress)
    todo = [ph for ph, given in (("ed", ed_labels), ("es", es_labels)) if given is None]
    frames = {}
    for ph, vol, given in (("ed", ed, ed_labels), ("es", es, es_labels)):
        if given is not None:
            frames[ph] = FrameResult(np.asarray(given), "reference")
            continue
        progress.update(todo.index(ph), len(todo), f"segmentation ({ph.upper()})")
        frames[ph] = segment_frame(vol, model, device, prior=frames["ed"].labels if ph == "es" else None)
    return EdEsResult(frames)


def segment_cine(cine, model: str = "cine", device: str = "cpu") -> CineResult:
    """Every phase of the 4D Volume ``cine`` (ED and ES phases of largest and smallest LV blood
    pool; ES segmented again anchored to ED, see ``Segmenter.segment_phases``)."""
    got = segmenter(model, device).segment_detailed(cine)
    return CineResult(np.asarray(got.volume.array), got.ed_phase, got.es_phase, f"model {model}", got.reversed,
                      got.order_source)
