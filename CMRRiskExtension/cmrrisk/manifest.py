"""Cohort manifests (docs/explanation/architecture.md): one CSV row per subject, paths relative to the
manifest's folder. Dataset adapters turn public datasets into a manifest plus NIfTI volumes.

The generic format (for a user's own cohort)
--------------------------------------------
A CSV file with a header row and one row per subject:

``subject``
    required, unique, non-empty identifier.
image columns (by role), each a path to a NIfTI / NRRD / MHA file or a DICOM folder, relative
to the manifest's folder (absolute paths are accepted), or the DICOMweb address of a series
(``https://SERVER/ROOT/studies/UID/series/UID``, fetched once into a cache:
:mod:`cmrrisk.dicomout.remote`); an empty cell means "not available":
    ``cine_ed``, ``cine_es`` (3D end-diastolic / end-systolic frames), ``cine`` (4D cine;
    ED and ES are then the phases of largest and smallest segmented LV volume), ``lge``
    (3D LGE short-axis stack).
reference segmentations (optional, project labels of cmrrisk.labels, same geometry as the
image): ``cine_ed_seg``, ``cine_es_seg``, ``cine_seg``, ``lge_seg``. A subject without one
is segmented by the bundled model.
outcomes: ``time`` (>= 0) and ``event`` (0 / 1) for time-to-event endpoints; ``label`` for a
diagnostic endpoint.
anthropometrics (optional, used for indexed indices): ``height_cm``, ``weight_kg``, ``bsa_m2``
(when only height and weight are given, BSA is computed with Mosteller's formula).
columns named ``true_*`` hold a simulation's ground truth (``cmrrisk synth``) and are never used
as covariates; any other column is a covariate; numeric ones are used by the prediction models.
"""

from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass, field

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
    the 1 mm spacing is declared, not measured). ``progress``: a
    :class:`cmrrisk.progress.Progress` told each case written."""
    from .datasets import list_emidec, read_emidec_case
    from .progress import as_progress

    progress = as_progress(progress)

    cases = list_emidec(root)
    folder = os.path.dirname(os.path.abspath(out_csv))
    vol_dir = os.path.join(folder, "emidec_volumes")
    s = EMIDEC_DECLARED_SPACING_MM
    affine = np.diag([-s, -s, s, 1.0])  # RAS with ITK-like LPS axes
    if not cases:
        raise CMRRiskError(f"{root}: no EMIDEC cases found.")
    # every case is read (and checked) before anything is written: a bad PNG stops the run
    # with no volume folder half-filled
    read = [(c, *read_emidec_case(c)) for c in cases]
    rows = []
    for n, (c, img, lab) in enumerate(read):
        lge = os.path.join(vol_dir, f"{c.case}_lge.nii.gz")
        write_image(Volume(img.astype(np.float32), affine, c.case), lge)
        row = {"subject": c.case, "lge": os.path.relpath(lge, folder), "lge_seg": "",
               "label": c.group, "spacing_known": 0}
        if lab is not None:
            seg = os.path.join(vol_dir, f"{c.case}_lge_seg.nii.gz")
            write_image(Volume(lab, affine, c.case), seg)
            row["lge_seg"] = os.path.relpath(seg, folder)
        rows.append(row)
        progress.report(n + 1, len(cases), f"{c.case} written")
    if not rows:
        raise CMRRiskError(f"{root}: no EMIDEC cases found.")
    write_csv(out_csv, ["subject", "lge", "lge_seg", "label", "spacing_known"], rows)
    return rows


IMAGE_ROLES = ("cine_ed", "cine_es", "cine", "lge")
SEG_COLUMNS = tuple(f"{r}_seg" for r in IMAGE_ROLES)
PATH_COLUMNS = IMAGE_ROLES + SEG_COLUMNS
OUTCOME_COLUMNS = ("time", "event", "label")
NUMERIC_COLUMNS = ("time", "height_cm", "weight_kg", "bsa_m2")


@dataclass
class Manifest:
    """A validated cohort manifest. ``rows`` hold strings as read, except that path columns are
    resolved to absolute paths (empty string when absent)."""

    path: str
    columns: list
    rows: list = field(default_factory=list)
    #: ``{subject: {column: address}}`` of the image cells that named a DICOMweb series (their
    #: rows hold the local folder the series was fetched into)
    remote: dict = field(default_factory=dict)

    @property
    def folder(self) -> str:
        return os.path.dirname(os.path.abspath(self.path))

    @property
    def subjects(self) -> list:
        return [r["subject"] for r in self.rows]

    @property
    def image_roles(self) -> list:
        return [c for c in IMAGE_ROLES if c in self.columns]

    def covariate_columns(self) -> list:
        """Columns that are neither identifier, path, nor outcome."""
        skip = set(PATH_COLUMNS) | set(OUTCOME_COLUMNS) | {"subject", "seg_labels"}
        return [c for c in self.columns if c not in skip and not c.startswith("true_")]


def _num(v: str):
    try:
        x = float(v)
    except ValueError:
        return None
    return x if math.isfinite(x) else None


def mosteller_bsa(height_cm: float, weight_kg: float) -> float:
    """Body surface area in m2 (Mosteller, N Engl J Med 1987;317:1098)."""
    return math.sqrt(height_cm * weight_kg / 3600.0)


def read_manifest(path: str, require_images: bool = False, check_paths: bool = True, say=None) -> Manifest:
    """Read and validate a manifest; every problem is collected and reported together, each
    naming its line (the header is line 1) and column.

    Image cells holding a DICOMweb series address are checked for their form; with
    ``check_paths`` the series are then fetched into the cache (those not there yet; ``say``, by
    default a line on stderr, is told about each) and the rows point at the local folders."""
    from .dicomout import remote
    if not os.path.isfile(path):
        raise CMRRiskError(f"{path}: no such manifest file.")
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        columns = [c.strip() for c in (reader.fieldnames or [])]
        raw = list(reader)
    problems = []
    if "subject" not in columns:
        raise CMRRiskError(f"{path}: no 'subject' column (columns: {', '.join(columns) or 'none'}); "
                           "the first line must be a header naming the columns.")
    dup = sorted({c for c in columns if columns.count(c) > 1})
    if dup:
        raise CMRRiskError(f"{path}: column(s) {', '.join(dup)} appear more than once in the header.")
    if require_images and not any(c in columns for c in IMAGE_ROLES):
        raise CMRRiskError(f"{path}: no image column; name at least one of {', '.join(IMAGE_ROLES)}.")
    man = Manifest(path, columns)
    folder = man.folder
    seen: dict = {}
    refs = []  # (label, address, row, column) of the DICOMweb series cells
    for n, r in enumerate(raw, start=2):
        row = {c.strip(): (v or "").strip() for c, v in r.items() if c is not None}
        if None in r:
            problems.append(f"line {n}: more cells than header columns")
        sid = row.get("subject", "")
        if not sid:
            problems.append(f"line {n}, column subject: empty subject identifier")
        elif sid in seen:
            problems.append(f"line {n}, column subject: {sid!r} already used on line {seen[sid]}")
        else:
            seen[sid] = n
        for c in PATH_COLUMNS:
            v = row.get(c, "")
            if not v:
                row[c] = ""
                continue
            if remote.is_reference(v):
                if c not in IMAGE_ROLES:
                    problems.append(f"line {n}, column {c}: a DICOMweb address; segmentation columns take "
                                    "a path to a label map")
                    continue
                try:
                    remote.parse_reference(v)
                except CMRRiskError as exc:
                    problems.append(f"line {n}, column {c}: {exc}")
                    continue
                refs.append((f"{path}: line {n}, column {c}", v, row, c))
                continue
            full = v if os.path.isabs(v) else os.path.normpath(os.path.join(folder, v))
            if check_paths and not os.path.exists(full):
                problems.append(f"line {n}, column {c}: {v} does not exist (paths are relative to {folder})")
            row[c] = full
        for c in NUMERIC_COLUMNS:
            v = row.get(c, "")
            if v and _num(v) is None:
                problems.append(f"line {n}, column {c}: {v!r} is not a number")
            elif v and _num(v) < 0:
                problems.append(f"line {n}, column {c}: {v} is negative")
        if row.get("seg_labels", "") not in ("", "cmrrisk", "acdc"):
            problems.append(f"line {n}, column seg_labels: {row['seg_labels']!r} must be cmrrisk or acdc")
        ev = row.get("event", "")
        if ev and ev not in ("0", "1", "0.0", "1.0", "True", "False", "true", "false"):
            problems.append(f"line {n}, column event: {ev!r} must be 0 (censored) or 1 (event)")
        if ("time" in columns) != ("event" in columns):
            pass  # reported once below
        if require_images and not any(row.get(c) for c in IMAGE_ROLES):
            problems.append(f"line {n}: subject {sid!r} has no image in {', '.join(c for c in IMAGE_ROLES if c in columns)}")
        if row.get("cine_ed") and not row.get("cine_es") and not row.get("cine"):
            problems.append(f"line {n}, column cine_es: empty while cine_ed is given; indices need both frames")
        man.rows.append(row)
    if ("time" in columns) != ("event" in columns):
        problems.append("header: 'time' and 'event' go together; give both or neither")
    if not raw:
        problems.append("no subject rows below the header")
    if problems:
        shown = problems[:25]
        more = f"\n  ... and {len(problems) - 25} more" if len(problems) > 25 else ""
        raise CMRRiskError(f"{path}: {len(problems)} problem(s):\n  " + "\n  ".join(shown) + more)
    if refs and check_paths:
        local = remote.fetch([(label, v) for label, v, _, _ in refs], remote.cache_folder(path),
                             say=remote.stderr_say if say is None else say)
        for _, v, row, c in refs:
            row[c] = local[v]
            man.remote.setdefault(row["subject"], {})[c] = v
    return man


def _rel(path: str, folder: str) -> str:
    return os.path.relpath(path, folder)


def acdc_manifest(root: str, out_csv: str) -> list[dict]:
    """Manifest of an ACDC folder (images are referenced where they are, not copied): subject,
    cine_ed, cine_es, cine_ed_seg, cine_es_seg (when present; seg_labels = acdc), label (= Group), height_cm,
    weight_kg, bsa_m2 (Mosteller)."""
    from .datasets import list_acdc

    folder = os.path.dirname(os.path.abspath(out_csv))
    rows = []
    for s in list_acdc(root):
        row = {"subject": s.subject}
        for which in ("ed", "es"):
            img = s.frame_path(which)
            if not os.path.isfile(img):
                raise CMRRiskError(f"{img}: missing {which.upper()} frame named in {s.folder}/Info.cfg.")
            row[f"cine_{which}"] = _rel(img, folder)
        for which in ("ed", "es"):
            gt = s.frame_path(which, gt=True)
            row[f"cine_{which}_seg"] = _rel(gt, folder) if os.path.isfile(gt) else ""
        row["seg_labels"] = "acdc"
        row["label"] = s.group
        row["height_cm"] = "" if s.height_cm is None else s.height_cm
        row["weight_kg"] = "" if s.weight_kg is None else s.weight_kg
        row["bsa_m2"] = (round(mosteller_bsa(s.height_cm, s.weight_kg), 4)
                         if s.height_cm and s.weight_kg else "")
        rows.append(row)
    write_csv(out_csv, ["subject", "cine_ed", "cine_es", "cine_ed_seg", "cine_es_seg", "seg_labels", "label",
                        "height_cm", "weight_kg", "bsa_m2"], rows)
    return rows


def sunnybrook_manifest(root: str, out_csv: str) -> list[dict]:
    """Manifest of the Sunnybrook cine DICOM series: subject, cine (the DICOM folder, a 4D
    series). Its expert contours cover a few images only, so no reference segmentation column
    is written; ``bench/eval_sunnybrook.py`` compares against them."""
    from .image import read_image

    dicoms = os.path.join(root, "dicoms")
    if not os.path.isdir(dicoms):
        raise CMRRiskError(f"{root}: no 'dicoms' folder; give the Sunnybrook folder (dicoms/, contourfiles/).")
    folder = os.path.dirname(os.path.abspath(out_csv))
    rows = []
    for name in sorted(os.listdir(dicoms)):
        d = os.path.join(dicoms, name)
        if not os.path.isdir(d):
            continue
        vol = read_image(d)
        if vol.array.ndim != 4:
            raise CMRRiskError(f"{d}: expected a cine series (several phases), found one phase.")
        rows.append({"subject": name, "cine": _rel(d, folder),
                     "manufacturer": vol.meta.get("manufacturer", ""),
                     "field_strength_t": vol.meta.get("field_strength_t", "")})
    if not rows:
        raise CMRRiskError(f"{dicoms}: no DICOM series folders found.")
    write_csv(out_csv, ["subject", "cine", "manufacturer", "field_strength_t"], rows)
    return rows
