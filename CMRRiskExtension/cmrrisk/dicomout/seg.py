"""Label map <-> BINARY DICOM SEG (highdicom).

:func:`build_seg` makes one SEG of one segmented frame (a cine phase, or an LGE stack) whose
frames reference the source images; :func:`read_seg` turns any SEG (CMRRisk's or another
tool's) back into a label map with its geometry and segment descriptions.
"""

from __future__ import annotations

import warnings

import numpy as np

from .. import __version__
from .. import labels as L
from ..errors import CMRRiskError
from . import codes as C

MANUFACTURER = "CMRRisk"


def segment_description(number: int, label: int, algorithm: dict):
    """The highdicom SegmentDescription of project ``label`` as segment ``number``."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    cat, typ, region = C.SEGMENT_CODES[label]
    name, rgb, _ = L.SEGMENTS[label]
    desc = hd.seg.SegmentDescription(
        segment_number=number, segment_label=name,
        segmented_property_category=C.concept(cat), segmented_property_type=C.concept(typ),
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algorithm_identification(algorithm, codes),
        anatomic_regions=[C.concept(region)] if region else None,
        tracking_uid=None, tracking_id=None)
    # recommended display colour, CIELab scaled to 0..65535
    lab = _rgb_to_dicom_lab(rgb)
    desc.RecommendedDisplayCIELabValue = lab
    return desc


def algorithm_identification(algorithm: dict, codes=None):
    """Model name, version and weights checksum as an AlgorithmIdentificationSequence."""
    import highdicom as hd

    if codes is None:
        from pydicom.sr.codedict import codes
    return hd.AlgorithmIdentificationSequence(
        name=f"CMRRisk {algorithm['name']}"[:64], version=algorithm_version(algorithm),
        family=codes.cid7162.ArtificialIntelligence,
        parameters={"weights_sha256": algorithm["weights_sha256"]})


def algorithm_version(algorithm: dict) -> str:
    """'cmrrisk <version> weights <first 16 hex of the SHA-256>' (a DICOM LO of 64 characters)."""
    return f"cmrrisk {__version__} weights {algorithm['weights_sha256'][:16]}"[:64]


def _rgb_to_dicom_lab(rgb) -> list[int]:
    """sRGB 0..1 -> DICOM CIELab (L*, a*, b* scaled to 0..65535 as in PS3.3 C.10.7.1.1)."""
    def lin(c):
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (lin(float(c)) for c in rgb)
    x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047
    y = 0.2126 * r + 0.7152 * g + 0.0722 * b
    z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883

    def f(t):
        return t ** (1 / 3) if t > 216 / 24389 else (24389 / 27 * t + 16) / 116

    lstar, astar, bstar = 116 * f(y) - 16, 500 * (f(x) - f(y)), 200 * (f(y) - f(z))
    return [int(round(lstar * 65535 / 100)), int(round((astar + 128) * 65535 / 255)),
            int(round((bstar + 128) * 65535 / 255))]


def dicom_lab_to_rgb(lab) -> tuple:
    """DICOM CIELab (0..65535) -> sRGB 0..1."""
    lstar = lab[0] * 100 / 65535
    astar = lab[1] * 255 / 65535 - 128
    bstar = lab[2] * 255 / 65535 - 128
    fy = (lstar + 16) / 116
    fx, fz = fy + astar / 500, fy - bstar / 200

    def finv(t):
        return t ** 3 if t ** 3 > 216 / 24389 else (116 * t - 16) * 27 / 24389

    x, y, z = finv(fx) * 0.95047, finv(fy), finv(fz) * 1.08883
    r = 3.2406 * x - 1.5372 * y - 0.4986 * z
    g = -0.9689 * x + 1.8758 * y + 0.0415 * z
    b = 0.0557 * x - 0.2040 * y + 1.0570 * z

    def gam(c):
        c = min(max(c, 0.0), 1.0)
        return 12.92 * c if c <= 0.0031308 else 1.055 * c ** (1 / 2.4) - 0.055

    return (gam(r), gam(g), gam(b))


def build_seg(sources, labels: np.ndarray, structures, algorithm: dict, *, series_uid: str,
              sop_uid: str, series_number: int, instance_number: int, description: str):
    """A BINARY SEG of ``labels`` (slice, row, column: the order of ``sources``, one dataset per
    slice) with one segment per project label in ``structures`` (numbered 1.. in that order).
    Returns (the SEG dataset, {project label: segment number})."""
    import highdicom as hd

    labels = np.asarray(labels)
    if labels.ndim != 3 or labels.shape[0] != len(sources):
        raise CMRRiskError(f"segmentation of shape {list(labels.shape)} does not match {len(sources)} source images.")
    rows, cols = int(sources[0].Rows), int(sources[0].Columns)
    if labels.shape[1:] != (rows, cols):
        raise CMRRiskError(f"segmentation of {labels.shape[2]} x {labels.shape[1]} pixels does not match the "
                           f"source images' {cols} x {rows}.")
    numbers = {lab: i + 1 for i, lab in enumerate(structures)}
    mask = np.zeros(labels.shape + (len(structures),), dtype=bool)
    for lab, n in numbers.items():
        mask[..., n - 1] = labels == lab
    descs = [segment_description(n, lab, algorithm) for lab, n in numbers.items()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # single-component patient names and the like
        seg = hd.seg.Segmentation(
            source_images=sources, pixel_array=mask,
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY, segment_descriptions=descs,
            series_instance_uid=series_uid, series_number=series_number, sop_instance_uid=sop_uid,
            instance_number=instance_number, manufacturer=MANUFACTURER,
            manufacturer_model_name=f"CMRRisk {algorithm['name']}"[:64],
            software_versions=algorithm_version(algorithm), device_serial_number="none",
            series_description=description[:64], content_label="CMRRISK",
            content_description=description[:64], omit_empty_frames=False)
    # deterministic content: the same input gives the same file
    for a in ("ContentDate", "SeriesDate", "InstanceCreationDate"):
        if a in sources[0] and str(sources[0].get(a) or ""):
            setattr(seg, a, sources[0].get(a))
    return seg, numbers


def segment_label_map(seg) -> dict:
    """{segment number: project label or None} from a SEG's codes."""
    out = {}
    for item in seg.SegmentSequence:
        cat = item.SegmentedPropertyCategoryCodeSequence[0].CodeValue
        typ = item.SegmentedPropertyTypeCodeSequence[0].CodeValue
        region = None
        for attr in ("AnatomicRegionSequence",):
            if attr in item and len(item.get(attr)):
                region = item.get(attr)[0].CodeValue
        if "SegmentedPropertyTypeModifierCodeSequence" in item and region is None:
            region = item.SegmentedPropertyTypeModifierCodeSequence[0].CodeValue
        out[int(item.SegmentNumber)] = C.label_of(cat, typ, region)
    return out


def read_seg(path_or_dataset) -> dict:
    """Any DICOM SEG -> ``{"array": uint16 (slice, row, column) of segment numbers, "labels": the
    same as project labels (0 where a segment's codes are not one of the project's),
    "affine_lps": 4x4 mapping (slice, row, column) indices to LPS mm, "segments": [{"number",
    "name", "rgb", "label" (project label or None), "category", "type"}], "dataset"}``.
    Overlapping segments: the higher segment number wins."""
    import highdicom as hd
    import pydicom

    if isinstance(path_or_dataset, (str, bytes)) or hasattr(path_or_dataset, "__fspath__"):
        try:
            ds = pydicom.dcmread(path_or_dataset)
        except Exception as exc:
            raise CMRRiskError(f"{path_or_dataset}: not a readable DICOM file ({exc}).") from exc
        name = str(path_or_dataset)
    else:
        ds, name = path_or_dataset, "dataset"
    if str(ds.get("SOPClassUID", "")) != "1.2.840.10008.5.1.4.1.1.66.4":
        raise CMRRiskError(f"{name}: not a DICOM Segmentation (SOP class {ds.get('SOPClassUID', 'missing')}).")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        seg = hd.seg.Segmentation.from_dataset(ds, copy=False)
        try:
            vol = seg.get_volume(combine_segments=True, skip_overlap_checks=True)
        except Exception as exc:
            raise CMRRiskError(f"{name}: the segmentation's frames do not form a regular volume ({exc}).") from exc
    labmap = segment_label_map(ds)
    segments = []
    for item in ds.SegmentSequence:
        n = int(item.SegmentNumber)
        rgb = dicom_lab_to_rgb(item.RecommendedDisplayCIELabValue) if "RecommendedDisplayCIELabValue" in item else None
        lab = labmap.get(n)
        if rgb is None and lab in L.SEGMENTS:
            rgb = L.SEGMENTS[lab][1]
        segments.append({
            "number": n, "name": str(item.SegmentLabel), "rgb": rgb, "label": lab,
            "category": tuple(str(item.SegmentedPropertyCategoryCodeSequence[0].get(k, "")) for k in ("CodeValue", "CodingSchemeDesignator", "CodeMeaning")),
            "type": tuple(str(item.SegmentedPropertyTypeCodeSequence[0].get(k, "")) for k in ("CodeValue", "CodingSchemeDesignator", "CodeMeaning")),
        })
    array = np.asarray(vol.array).astype(np.uint16)
    lut = np.zeros(max([s["number"] for s in segments] + [0]) + 1, np.uint8)
    for s in segments:
        if s["label"] is not None:
            lut[s["number"]] = s["label"]
    return {"array": array, "labels": lut[array], "affine_lps": np.asarray(vol.affine, float),
            "segments": segments, "dataset": ds}
