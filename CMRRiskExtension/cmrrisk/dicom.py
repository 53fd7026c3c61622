"""DICOM folders read with pydicom: series grouping, cine short-axis recognition, 4D geometry.

A folder must hold one image series. Files are grouped by SeriesInstanceUID (taken as a plain
string, so non-conforming UIDs are accepted). Slices are ordered along the slice normal
(ImagePositionPatient projected on the cross product of the ImageOrientationPatient cosines);
a location holding several images with different TriggerTime is a cine, whose phases are sorted
by TriggerTime. The result is a :class:`~cmrrisk.image.Volume` of shape (phase, slice, row, col)
for a cine, or (slice, row, col) otherwise.

:func:`classify_series` / :func:`classify_volume` tell a cine from an LGE series (trigger times,
InversionTime, description keywords) so that ``cmrrisk segment --model auto`` picks the model.
"""

from __future__ import annotations

import os
import warnings
from collections import defaultdict

import numpy as np

from .errors import CMRRiskError
from .volume import Volume, geometry_matrix, lps_to_ras

POSITION_TOLERANCE_MM = 0.1


class quiet_pydicom:
    """Accept non-conforming values (e.g. invalid UIDs) without warnings while we read."""

    def __enter__(self):
        import logging

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", UserWarning)
        self._logger = logging.getLogger("pydicom")
        self._level = self._logger.level
        self._logger.setLevel(logging.ERROR)
        return self

    def __exit__(self, *exc):
        self._logger.setLevel(self._level)
        self._w.__exit__(*exc)
        return False


def _files(folder: str) -> list[str]:
    out = []
    for root, _dirs, names in os.walk(folder):
        for n in sorted(names):
            if n.startswith("."):
                continue
            out.append(os.path.join(root, n))
    return sorted(out)


def read_headers(folder: str):
    import pydicom

    headers = []
    for path in _files(folder):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                ds = pydicom.dcmread(path, stop_before_pixels=True)
            except Exception:
                continue  # not a DICOM file (e.g. DICOMDIR helper files, notes)
        if "PixelData" not in ds and not hasattr(ds, "Rows"):
            continue
        headers.append((path, ds))
    return headers


def list_series(folder: str) -> dict:
    """{series key: [file paths]} for every image series in ``folder``."""
    groups = defaultdict(list)
    with quiet_pydicom():
        for path, ds in read_headers(folder):
            groups[_series_key(ds)].append(path)
    return dict(groups)


def _series_key(ds) -> str:
    uid = ds.get("SeriesInstanceUID")
    if uid:
        return str(uid)
    return f"series {ds.get('SeriesNumber', '?')} {ds.get('SeriesDescription', '')}".strip()


def _short(paths, n=4) -> str:
    names = [os.path.basename(p) for p in paths]
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


def read_dicom_folder(folder: str) -> Volume:
    """Read the single image series in ``folder`` as a 3D stack or a 4D cine."""
    with quiet_pydicom():
        return _read_dicom_folder(folder)


def _read_dicom_folder(folder: str) -> Volume:
    import pydicom

    headers = read_headers(folder)
    if not headers:
        raise CMRRiskError(f"{folder}: no readable DICOM image files in this folder.", code="unreadable")
    groups = defaultdict(list)
    for path, ds in headers:
        groups[_series_key(ds)].append((path, ds))
    if len(groups) > 1:
        desc = "; ".join(f"{k} ({len(v)} files, e.g. {_short([p for p, _ in v], 2)})"
                         for k, v in groups.items())
        raise CMRRiskError(f"{folder}: holds {len(groups)} series ({desc}); put each series in "
                           "its own folder.", code="mixed_series")
    items = next(iter(groups.values()))

    for path, ds in items:
        for tag in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "Rows", "Columns"):
            if ds.get(tag) is None:
                raise CMRRiskError(f"{path}: DICOM tag {tag} is missing; cannot place the image in space.", code="unreadable")

    sizes = defaultdict(list)
    for path, ds in items:
        sizes[(int(ds.Rows), int(ds.Columns))].append(path)
    if len(sizes) > 1:
        desc = "; ".join(f"{r}x{c}: {_short(p)}" for (r, c), p in sizes.items())
        raise CMRRiskError(f"{folder}: images of different sizes in one series ({desc}).", code="inconsistent_matrix")

    orients = defaultdict(list)
    for path, ds in items:
        key = tuple(np.round(np.asarray(ds.ImageOrientationPatient, float), 3))
        orients[key].append(path)
    if len(orients) > 1:
        desc = "; ".join(f"{list(k)}: {_short(p)}" for k, p in orients.items())
        raise CMRRiskError(f"{folder}: images with different orientations in one series ({desc}).", code="inconsistent_orientation")

    spacings = {tuple(np.round(np.asarray(ds.PixelSpacing, float), 4)) for _, ds in items}
    if len(spacings) > 1:
        raise CMRRiskError(f"{folder}: images with different pixel spacings {sorted(spacings)}.", code="inconsistent_spacing")

    iop = np.asarray(items[0][1].ImageOrientationPatient, float)
    row_dir, col_dir = iop[:3], iop[3:]
    normal = np.cross(row_dir, col_dir)
    if np.linalg.norm(normal) < 1e-6:
        raise CMRRiskError(f"{items[0][0]}: ImageOrientationPatient {list(iop)} is degenerate.", code="degenerate_geometry")
    normal /= np.linalg.norm(normal)

    # group by location along the normal
    proj = [(float(np.dot(np.asarray(ds.ImagePositionPatient, float), normal)), path, ds)
            for path, ds in items]
    proj.sort(key=lambda t: t[0])
    locations: list[list] = []
    for d, path, ds in proj:
        if locations and abs(d - locations[-1][0][0]) <= POSITION_TOLERANCE_MM:
            locations[-1].append((d, path, ds))
        else:
            locations.append([(d, path, ds)])

    n_phases = max(len(loc) for loc in locations)
    is_cine = n_phases > 1
    if is_cine:
        for loc in locations:
            tts = [ds.get("TriggerTime") for _, _, ds in loc]
            if any(t is None for t in tts):
                missing = [p for (_, p, ds) in loc if ds.get("TriggerTime") is None]
                raise CMRRiskError(f"{folder}: several images at one slice location but no "
                                   f"TriggerTime in {_short(missing)}; cannot order the phases.", code="cine_phases")
            seen = defaultdict(list)
            for _, p, ds in loc:
                seen[round(float(ds.TriggerTime), 3)].append(p)
            dups = {t: ps for t, ps in seen.items() if len(ps) > 1}
            if dups:
                t, ps = next(iter(dups.items()))
                raise CMRRiskError(f"{folder}: duplicate phase: TriggerTime {t} appears "
                                   f"{len(ps)} times at slice {loc[0][0]:.2f} mm ({_short(ps)}).", code="cine_phases")
            loc.sort(key=lambda e: float(e[2].TriggerTime))
    for loc in locations:
        if len(loc) != n_phases:
            raise CMRRiskError(
                f"{folder}: slice at {loc[0][0]:.2f} mm along the normal has {len(loc)} phases, "
                f"others have {n_phases} (files {_short([p for _, p, _ in loc])}); phases are "
                "missing or the folder mixes series.", code="cine_phases")

    positions = np.array([loc[0][0] for loc in locations])
    if len(positions) > 1:
        gaps = np.diff(positions)
        dz = float(np.median(gaps))
        if np.max(np.abs(gaps - dz)) > 0.1 * dz + 0.01:
            raise CMRRiskError(f"{folder}: slice positions are not evenly spaced (gaps "
                               f"{np.round(gaps, 2).tolist()} mm); a slice may be missing.", code="slice_gap")
    else:
        dz = float(items[0][1].get("SpacingBetweenSlices") or items[0][1].get("SliceThickness") or 1.0)

    rows, cols = next(iter(sizes))
    arr = np.zeros((n_phases, len(locations), rows, cols), dtype=np.float32)
    for z, loc in enumerate(locations):
        for t, (_, path, _) in enumerate(loc):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    ds = pydicom.dcmread(path)
                    px = ds.pixel_array.astype(np.float32)
                except Exception as exc:
                    raise CMRRiskError(f"{path}: cannot decode pixel data ({exc}).", code="unreadable") from exc
            slope = float(ds.get("RescaleSlope", 1) or 1)
            inter = float(ds.get("RescaleIntercept", 0) or 0)
            arr[t, z] = px * slope + inter

    ps = np.asarray(items[0][1].PixelSpacing, float)  # (row spacing = y, column spacing = x)
    first = locations[0][0][2]
    origin = np.asarray(first.ImagePositionPatient, float)
    direction = np.stack([row_dir, col_dir, normal], axis=1)
    m = lps_to_ras(geometry_matrix((ps[1], ps[0], dz), origin, direction))

    meta = meta_from_headers([ds for _, ds in items])
    meta["n_phases"] = n_phases
    meta["instance_numbers"] = [[int(e[2].get("InstanceNumber", -1) or -1) for e in loc]
                                for loc in locations]  # [slice][phase]
    time_spacing = None
    if is_cine:
        tt = np.array([[float(e[2].TriggerTime) for e in loc] for loc in locations])
        meta["trigger_times_ms"] = np.round(tt.mean(0), 3).tolist()
        time_spacing = float(np.median(np.diff(tt.mean(0)))) if n_phases > 1 else None
        vol_arr = arr
    else:
        vol_arr = arr[0]
    return Volume(vol_arr, m, folder, time_spacing, meta)


# ----------------------------------------------------------------------------- series kind

def _float_or_none(v):
    try:
        return float(v) if v not in (None, "") else None
    except (TypeError, ValueError):
        return None


def meta_from_headers(datasets) -> dict:
    """Series metadata (vendor, field strength, description, protocol and sequence names,
    inversion time, number of phases per slice location) from pydicom datasets of one series."""
    ds0 = datasets[0]
    ms = ds0.get("MagneticFieldStrength")
    st = ds0.get("SliceThickness")
    return {
        "manufacturer": str(ds0.get("Manufacturer", "")),
        "model": str(ds0.get("ManufacturerModelName", "")),
        "field_strength_t": float(ms) if ms else None,
        "series_description": str(ds0.get("SeriesDescription", "")),
        "protocol_name": str(ds0.get("ProtocolName", "")),
        "sequence_name": str(ds0.get("SequenceName", "")),
        "inversion_time_ms": _float_or_none(ds0.get("InversionTime")),
        "series_uid": _series_key(ds0),
        "slice_thickness_mm": float(st) if st else None,
        "n_files": len(datasets),
        "n_phases": _phases_per_location(datasets),
    }


def _phases_per_location(datasets) -> int:
    """Largest number of distinct TriggerTime values at one slice location (1 without them)."""
    by_loc = defaultdict(set)
    for ds in datasets:
        ipp, iop = ds.get("ImagePositionPatient"), ds.get("ImageOrientationPatient")
        if ipp is None or iop is None:
            loc = None
        else:
            iop = np.asarray(iop, float)
            loc = round(float(np.dot(np.asarray(ipp, float), np.cross(iop[:3], iop[3:]))), 1)
        tt = ds.get("TriggerTime")
        by_loc[loc].add(round(float(tt), 3) if tt not in (None, "") else None)
    return max((len(v) for v in by_loc.values()), default=1)


#: words in SeriesDescription / ProtocolName / SequenceName (or a file or node name) that mark
#: late gadolinium enhancement; matched as whole words after splitting on non-letters/digits
LGE_WORDS = ("LGE", "DE", "MDE", "DHE", "PSIR", "VIABILITY", "DELAYED", "DELAYEDENHANCEMENT",
             "LATEGAD", "LATEGADOLINIUM")
#: phrases matched in the text with separators removed
LGE_PHRASES = ("DELAYEDENHANCEMENT", "DELAYEDENH", "LATEGAD", "LATEENHANCEMENT", "VIABILITY", "PSIR")
CINE_WORDS = ("CINE", "SSFP", "TRUFI", "TRUEFISP", "FIESTA", "BTFE", "BSSFP")
#: T1 mapping and TI scout (Look-Locker) series carry inversion times but are not LGE images
NOT_LGE_PHRASES = ("MOLLI", "T1MAP", "TISCOUT", "LOOKLOCKER", "TIFINDER", "T1MAPPING")


def _words(text: str):
    import re

    up = str(text or "").upper()
    return set(re.split(r"[^A-Z0-9]+", up)) - {""}, re.sub(r"[^A-Z0-9]+", "", up)


def classify_text(text: str) -> dict:
    """'lge' / 'cine' / 'unknown' from keywords in a description or a file / node name."""
    words, flat = _words(text)
    for p in NOT_LGE_PHRASES:
        if p in flat:
            return {"kind": "unknown", "excluded": True,
                    "reason": f"'{text}' names a T1-mapping / TI-scout series ({p})"}
    hit = sorted(words & set(LGE_WORDS)) or [p for p in LGE_PHRASES if p in flat]
    if hit:
        return {"kind": "lge", "reason": f"LGE keyword {hit[0]!r} in '{text}'"}
    hit = sorted(words & set(CINE_WORDS))
    if hit:
        return {"kind": "cine", "reason": f"cine keyword {hit[0]!r} in '{text}'"}
    return {"kind": "unknown", "reason": f"no cine or LGE keyword in '{text}'"}


def classify_series(meta: dict) -> dict:
    """Whether a DICOM series (its :func:`meta_from_headers` dict, or a Volume's ``meta``) is a
    cine or an LGE acquisition. Rules, in order:

    1. several TriggerTime values at one slice location -> ``cine``;
    2. a T1-mapping / TI-scout name (MOLLI, T1 map, TI scout, Look-Locker) -> ``unknown``;
    3. an LGE keyword (LGE, DE, MDE, PSIR, delayed enhancement, late gad, viability...) in
       SeriesDescription, ProtocolName or SequenceName -> ``lge``;
    4. a single phase and an InversionTime -> ``lge``;
    5. a cine keyword (cine, SSFP, TrueFISP, FIESTA, bTFE) -> ``cine``;
    6. otherwise ``unknown``.

    Returns ``{"kind": ..., "reason": ...}``.
    """
    n_phases = meta.get("n_phases")
    if n_phases is None and meta.get("trigger_times_ms"):
        n_phases = len(meta["trigger_times_ms"])
    if n_phases and int(n_phases) > 1:
        return {"kind": "cine", "reason": f"{int(n_phases)} trigger times per slice location"}
    fields = [(k, meta.get(k)) for k in ("series_description", "protocol_name", "sequence_name")
              if meta.get(k)]
    found = [(k, classify_text(v)) for k, v in fields]
    for k, c in found:
        if c.get("excluded"):
            return {"kind": "unknown", "reason": f"{k}: {c['reason']}"}
    for k, c in found:
        if c["kind"] == "lge":
            return {"kind": "lge", "reason": f"{k}: {c['reason']}"}
    if meta.get("inversion_time_ms") is not None:
        return {"kind": "lge", "reason": f"single phase with InversionTime {meta['inversion_time_ms']:g} ms"}
    for k, c in found:
        if c["kind"] == "cine":
            return {"kind": "cine", "reason": f"{k}: {c['reason']}"}
    return {"kind": "unknown", "reason": "single phase, no InversionTime and no cine/LGE keyword in "
            "SeriesDescription, ProtocolName or SequenceName"}


def classify_files(paths) -> dict:
    """:func:`classify_series` of the DICOM files ``paths`` (headers only)."""
    import pydicom

    datasets = []
    with quiet_pydicom():
        for p in paths:
            try:
                datasets.append(pydicom.dcmread(p, stop_before_pixels=True))
            except Exception as exc:
                raise CMRRiskError(f"{p}: cannot read DICOM header ({exc}).") from exc
        if not datasets:
            raise CMRRiskError("no DICOM files given to classify.")
        return classify_series(meta_from_headers(datasets))


def classify_volume(vol: Volume, name: str | None = None) -> dict:
    """Cine or LGE for an image: a 4D image is a cine; otherwise its DICOM metadata
    (:func:`classify_series`) decide, then keywords in ``name`` (default: the source's file or
    folder name). ``{"kind", "reason"}``; ``kind`` is 'unknown' when nothing tells."""
    if vol.is_cine:
        return {"kind": "cine", "reason": f"4D image with {vol.array.shape[0]} phases"}
    reasons = []
    if vol.meta and any(k in vol.meta for k in ("series_description", "protocol_name", "n_phases",
                                                "inversion_time_ms")):
        c = classify_series(vol.meta)
        if c["kind"] != "unknown":
            return c
        reasons.append(c["reason"])
    if name is None and vol.source:
        from .volume import stem

        name = stem(vol.source)
    if name:
        c = classify_text(name)
        if c["kind"] != "unknown":
            return {"kind": c["kind"], "reason": f"name: {c['reason']}"}
        reasons.append(c["reason"])
    return {"kind": "unknown", "reason": "; ".join(reasons) or "3D image without metadata"}
