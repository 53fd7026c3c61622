"""Cohort manifests (DESIGN.md section 3): one CSV row per subject, paths relative to the
manifest's folder. Dataset adapters turn public datasets into a manifest plus NIfTI volumes."""

from __future__ import annotations

import csv
import io
import os

import numpy as np

from .errors import CMRRiskError
from .image import Volume, write_image
from .modeldir import write_text_atomic

#: EMIDEC crops have no pixel spacing: volumes are written with this spacing and flagged
EMIDEC_DECLARED_SPACING_MM = 1.0


def write_csv(path: str, fieldnames: list, rows: list[dict]) -> None:
    """Write a CSV atomically."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fieldnames)
    w.writeheader()
    w.writerows(rows)
    write_text_atomic(path, buf.getvalue())


def emidec_manifest(root: str, out_csv: str, progress=None) -> list[dict]:
    """One NIfTI LGE volume (slices stacked in slice order) and label map per EMIDEC case, and a
    manifest with columns subject, lge, lge_seg, label (normal / infarct), spacing_known (0:
    the 1 mm spacing is declared, not measured)."""
    from .datasets import list_emidec, read_emidec_case

    cases = list_emidec(root)
    folder = os.path.dirname(os.path.abspath(out_csv))
    vol_dir = os.path.join(folder, "emidec_volumes")
    s = EMIDEC_DECLARED_SPACING_MM
    affine = np.diag([-s, -s, s, 1.0])  # RAS with ITK-like LPS axes
    rows = []
    for n, c in enumerate(cases):
        img, lab = read_emidec_case(c)
        lge = os.path.join(vol_dir, f"{c.case}_lge.nii.gz")
        write_image(Volume(img.astype(np.float32), affine, c.case), lge)
        row = {"subject": c.case, "lge": os.path.relpath(lge, folder), "lge_seg": "",
               "label": c.group, "spacing_known": 0}
        if lab is not None:
            seg = os.path.join(vol_dir, f"{c.case}_lge_seg.nii.gz")
            write_image(Volume(lab, affine, c.case), seg)
            row["lge_seg"] = os.path.relpath(seg, folder)
        rows.append(row)
        if progress:
            progress(n + 1, len(cases))
    if not rows:
        raise CMRRiskError(f"{root}: no EMIDEC cases found.")
    write_csv(out_csv, ["subject", "lge", "lge_seg", "label", "spacing_known"], rows)
    return rows
