"""One subject's study as data: :class:`Study`.

A ``Study`` holds what the feature, prediction and explanation code needs of one subject: the
ED and ES cine frames and the LGE stack (:class:`cmrrisk.image.Volume`, each optional), their
label maps (project labels, the image's shape; ``None``: the bundled model segments it), the
covariates ({column: value}) and the body surface area. It is built

* from a cohort manifest row: :meth:`Study.from_row` (paths absolute, as
  :func:`cmrrisk.manifest.read_manifest` gives them);
* from Slicer nodes: :func:`cmrrisk.mrml.study_from_nodes` (the bridge);
* directly: ``Study(ed=ed, es=es, covariates={"age": 61})``.

What is *done* with a study lives elsewhere: :func:`cmrrisk.features.cohort.image_features`
(its features), :mod:`cmrrisk.predict.study` (its prediction: a table row and a risk; that
module is named after what it predicts for, this one after what a study is) and
:func:`cmrrisk.explain.core.explain_study`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from .errors import CMRRiskError
from .image import Volume


@dataclass
class Study:
    """One subject's images, label maps, covariates and body surface area (see the module)."""

    subject: str = "study"
    ed: Volume | None = None
    es: Volume | None = None
    lge: Volume | None = None
    ed_seg: np.ndarray | None = None
    es_seg: np.ndarray | None = None
    lge_seg: np.ndarray | None = None
    covariates: dict = field(default_factory=dict)
    bsa_m2: float | None = None
    #: how the ED and ES frames were chosen from a 4D cine, when they were (:meth:`from_row`):
    #: ``ed_phase``, ``es_phase`` and ``segmentation`` ({"ed"/"es": source}); empty otherwise
    phases: dict = field(default_factory=dict)

    @property
    def has_cine(self) -> bool:
        return self.ed is not None and self.es is not None

    @property
    def has_lge(self) -> bool:
        return self.lge is not None

    @property
    def has_images(self) -> bool:
        return self.ed is not None or self.es is not None or self.lge is not None

    def with_segmentations(self, **segs) -> "Study":
        """A copy with label maps replaced, e.g. ``study.with_segmentations(ed_seg=a, es_seg=b)``."""
        unknown = sorted(set(segs) - {"ed_seg", "es_seg", "lge_seg"})
        if unknown:
            raise TypeError(f"not a segmentation of a study: {', '.join(unknown)}")
        return replace(self, **segs)

    @classmethod
    def from_row(cls, row: dict, covariate_columns=None, device: str = "cpu",
                 timings: dict | None = None) -> "Study":
        """The study of one manifest row (paths absolute): ``cine_ed`` + ``cine_es`` frames or a
        4D ``cine`` (its ED and ES phases found on its label map ``cine_seg``, else on the
        bundled model's segmentation of every phase, on ``device``), ``lge``, the ``*_seg``
        label maps (``seg_labels``: their label convention), the body surface area
        (``bsa_m2``, else Mosteller's from ``height_cm`` and ``weight_kg``) and the covariates
        of ``covariate_columns`` (default: none). ``timings`` (optional) gets the seconds spent
        reading (``read``) and segmenting a 4D cine (``segment_cine``)."""
        import time

        from .image import read_image
        from .labelmap import read_labelmap

        timings = {} if timings is None else timings
        conv = row.get("seg_labels", "")
        study = cls(subject=str(row.get("subject", "study")), bsa_m2=bsa_of_row(row),
                    covariates={c: row.get(c) for c in (covariate_columns or [])})
        t0 = time.perf_counter()
        if row.get("cine_ed") and row.get("cine_es"):
            study.ed = read_image(row["cine_ed"], allow_4d=False)
            study.es = read_image(row["cine_es"], allow_4d=False)
            if study.ed.array.shape != study.es.array.shape:
                raise CMRRiskError(f"{row['cine_ed']} and {row['cine_es']}: ED and ES frames differ in shape.")
            if row.get("cine_ed_seg"):
                study.ed_seg = read_labelmap(row["cine_ed_seg"], study.ed, conv)
            if row.get("cine_es_seg"):
                study.es_seg = read_labelmap(row["cine_es_seg"], study.es, conv)
        elif row.get("cine"):
            cine = read_image(row["cine"])
            if not cine.is_cine:
                raise CMRRiskError(f"{row['cine']}: column cine needs a 4D cine (several phases); "
                                   "use cine_ed / cine_es for single frames.")
            if row.get("cine_seg"):
                from .metrics import ed_es_phases

                all_seg, src = read_labelmap(row["cine_seg"], cine, conv), "reference"
                ed_t, es_t = ed_es_phases(all_seg, cine.spacing)
            else:
                from .segmentation.service import segment_cine

                t1 = time.perf_counter()
                r = segment_cine(cine, device=device)
                all_seg, ed_t, es_t = r.labels, r.ed_phase, r.es_phase
                timings["segment_cine"] = time.perf_counter() - t1
                src = "model cine"
            study.phases = {"ed_phase": ed_t, "es_phase": es_t,
                            "segmentation": {"ed": f"{src} (phase {ed_t})", "es": f"{src} (phase {es_t})"}}
            study.ed, study.es = cine.frame(ed_t), cine.frame(es_t)
            study.ed_seg, study.es_seg = all_seg[ed_t], all_seg[es_t]
        if row.get("lge"):
            study.lge = read_image(row["lge"], allow_4d=False)
            if row.get("lge_seg"):
                study.lge_seg = read_labelmap(row["lge_seg"], study.lge, conv)
        timings["read"] = time.perf_counter() - t0
        if not study.has_images:
            raise CMRRiskError(f"subject {row.get('subject')!r}: no image (give cine_ed + cine_es, cine or lge).")
        return study


def bsa_of_row(row: dict) -> float | None:
    """Body surface area (m2) of a manifest row: ``bsa_m2``, else Mosteller's formula from
    ``height_cm`` and ``weight_kg``; None when neither is given as a positive number."""
    from .manifest import mosteller_bsa

    def num(c):
        try:
            x = float(row.get(c, "") or "nan")
        except ValueError:
            return None
        return x if math.isfinite(x) and x > 0 else None

    b = num("bsa_m2")
    if b:
        return b
    hgt, wgt = num("height_cm"), num("weight_kg")
    return mosteller_bsa(hgt, wgt) if hgt and wgt else None
