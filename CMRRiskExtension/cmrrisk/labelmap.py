"""Reading label maps (segmentations) beside their images: the file is read as an image
(:func:`cmrrisk.image.read_image`), checked against the image it labels, mapped from its
labelling convention to the project's labels (:mod:`cmrrisk.labels`) and checked to hold only
those labels."""

from __future__ import annotations

import numpy as np

from .errors import CMRRiskError
from .labels import ACDC_TO_PROJECT, map_labels

#: the manifest's ``seg_labels`` column -> mapping to the project's labels (None: already them)
SEG_LABEL_CONVENTIONS = {"cmrrisk": None, "acdc": ACDC_TO_PROJECT}


def read_labelmap(path: str, like, convention: str = "") -> np.ndarray:
    """The label map at ``path`` as a uint8 array of project labels. ``like``: the Volume it
    labels (same shape required); ``convention``: a key of :data:`SEG_LABEL_CONVENTIONS`
    (empty: the project's own labels)."""
    from .image import read_image, size_text

    seg = read_image(path)
    if seg.array.shape != like.array.shape:
        raise CMRRiskError(f"{path}: segmentation size {size_text(seg.array.shape)} differs from its image "
                           f"{like.source} {size_text(like.array.shape)} (columns x rows x slices).", code="seg_shape_mismatch")
    arr = np.rint(seg.array).astype(np.int16)
    mapping = SEG_LABEL_CONVENTIONS.get(convention or "cmrrisk", "bad")
    if mapping == "bad":
        raise CMRRiskError(f"seg_labels {convention!r}: use one of {', '.join(SEG_LABEL_CONVENTIONS)}.")
    if mapping:
        arr = map_labels(arr, mapping)
    if arr.min() < 0 or arr.max() > 5:
        raise CMRRiskError(f"{path}: labels {int(arr.min())}..{int(arr.max())} are outside the project's "
                           "0-5 (0 background, 1 LV blood pool, 2 LV myocardium, 3 RV blood pool, 4 scar, 5 MVO); "
                           "set the manifest's seg_labels column if they "
                           "follow another convention.")
    return arr.astype(np.uint8)
