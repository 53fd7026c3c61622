"""The measurement report (DICOM SR, TID 1500) of one segmented input: each measurement in a
volumetric ROI group that references the SEG segment it was measured on, units in UCUM."""

from __future__ import annotations

import warnings

from .. import labels as L
from . import codes as C
from .seg import MANUFACTURER

#: cine: (frame key, label, measurement keys) -> one group per segment of the ED / ES SEG
CINE_GROUPS = (
    ("ed", L.LV_BLOOD_POOL, ("lv_edv_ml", "lv_ef_pct")),
    ("es", L.LV_BLOOD_POOL, ("lv_esv_ml",)),
    ("ed", L.LV_MYOCARDIUM, ("lv_mass_g",)),
    ("ed", L.RV_BLOOD_POOL, ("rv_edv_ml", "rv_ef_pct")),
    ("es", L.RV_BLOOD_POOL, ("rv_esv_ml",)),
)
#: LGE: the stack's SEG
LGE_GROUPS = (
    ("stack", L.SCAR, ("scar_ml", "scar_burden_pct")),
    ("stack", L.MVO, ("mvo_ml",)),
)


def build_sr(segs: dict, numbers: dict, values: dict, groups, algorithm: dict, *, series_uid: str,
             sop_uid: str, series_number: int, description: str, uid_seed: str, sources=()):
    """``segs``: {frame key: SEG dataset}; ``numbers``: {frame key: {label: segment number}};
    ``values``: {measurement key: number}; ``sources``: the source images the SEGs reference
    (the report's evidence with the SEGs). Measurements whose value is missing (None / NaN)
    are left out; a group without measurements is left out."""
    import math

    import highdicom as hd
    from pydicom.sr.codedict import codes

    from .seg import algorithm_version
    from .uids import derived_uid

    algo = hd.sr.AlgorithmIdentification(name=f"CMRRisk {algorithm['name']}"[:64],
                                          version=algorithm_version(algorithm))
    groups_out = []
    for key, label, names in groups:
        if key not in segs or label not in numbers.get(key, {}):
            continue
        ms = []
        for name in names:
            v = values.get(name)
            if v is None or (isinstance(v, float) and not math.isfinite(v)):
                continue
            code, unit = C.MEASUREMENTS[name]
            ms.append(hd.sr.Measurement(name=C.concept(code), value=float(v), unit=C.concept(unit),
                                        algorithm_id=algo))
        if not ms:
            continue
        seg = segs[key]
        ref = hd.sr.ReferencedSegment.from_segmentation(seg, numbers[key][label])
        seg_name = L.SEGMENTS[label][0]
        tracking = hd.sr.TrackingIdentifier(
            uid=derived_uid(uid_seed, "tracking", key, label),
            identifier=f"{seg_name} ({key.upper() if key != 'stack' else 'LGE'})")
        _cat, typ, region = C.SEGMENT_CODES[label]
        sites = [hd.sr.FindingSite(C.concept(region))] if region else None
        groups_out.append(hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=tracking, referenced_segment=ref, finding_type=C.concept(typ),
            finding_sites=sites, algorithm_id=algo, measurements=ms))
    device = hd.sr.DeviceObserverIdentifyingAttributes(
        uid=derived_uid("cmrrisk device", algorithm["name"], algorithm["weights_sha256"]),
        name=f"CMRRisk {algorithm['name']}"[:64], manufacturer_name=MANUFACTURER,
        model_name=algorithm_version(algorithm))
    context = hd.sr.ObservationContext(observer_device_context=hd.sr.ObserverContext(
        observer_type=codes.DCM.Device, observer_identifying_attributes=device))
    report = hd.sr.MeasurementReport(observation_context=context,
                                     procedure_reported=codes.SCT.MagneticResonanceImagingOfHeart,
                                     imaging_measurements=groups_out or None)
    evidence = list(segs.values()) + list(sources)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sr = hd.sr.Comprehensive3DSR(
            evidence=evidence, content=report[0], series_instance_uid=series_uid,
            series_number=series_number, sop_instance_uid=sop_uid, instance_number=1,
            manufacturer=MANUFACTURER, is_complete=True, series_description=description[:64])
    first = next(iter(segs.values()))
    for a in ("ContentDate", "SeriesDate", "InstanceCreationDate"):
        if str(first.get(a) or ""):
            setattr(sr, a, first.get(a))
    return sr


def read_measurements(sr) -> list[dict]:
    """[{"code": (value, scheme), "meaning", "value", "unit", "segment": (SEG SOP instance UID,
    segment number)}] from a measurement report written by :func:`build_sr` (or any TID 1500
    report with volumetric groups that reference segments)."""
    out = []

    def walk(items, seg_ref=None):
        for it in items:
            ref = seg_ref
            if "ContentSequence" in it:
                for c in it.ContentSequence:
                    if c.get("ValueType") == "IMAGE" and "ReferencedSOPSequence" in c:
                        r = c.ReferencedSOPSequence[0]
                        if "ReferencedSegmentNumber" in r:
                            ref = (str(r.ReferencedSOPInstanceUID), int(r.ReferencedSegmentNumber))
            if it.get("ValueType") == "NUM":
                cn = it.ConceptNameCodeSequence[0]
                mv = it.MeasuredValueSequence[0]
                out.append({"code": (str(cn.CodeValue), str(cn.CodingSchemeDesignator)),
                            "meaning": str(cn.CodeMeaning), "value": float(mv.NumericValue),
                            "unit": str(mv.MeasurementUnitsCodeSequence[0].CodeValue),
                            "unit_scheme": str(mv.MeasurementUnitsCodeSequence[0].CodingSchemeDesignator),
                            "segment": seg_ref})
            if "ContentSequence" in it:
                walk(it.ContentSequence, ref)

    walk(sr.ContentSequence)
    return out
