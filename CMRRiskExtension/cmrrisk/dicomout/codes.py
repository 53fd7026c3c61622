"""Coded concepts of the DICOM outputs.

Segment codes (DICOM CID 7150 categories, SNOMED CT types): LV and RV blood pool are
Tissue / Blood in the left / right ventricle; LV myocardium is Anatomical Structure / Left
Ventricle Myocardium; scar is Morphologically Abnormal Structure / Scar tissue. Microvascular
obstruction and the measurements without a code we could verify carry codes of the project's
private scheme: DICOM reserves coding-scheme designators beginning with "99" for private schemes
(PS3.16 section 8).
"""

from __future__ import annotations

from .. import labels as L

PRIVATE_SCHEME = "99CMRRISK"

TISSUE = ("85756007", "SCT", "Tissue")
BLOOD = ("87612001", "SCT", "Blood")
ANATOMICAL_STRUCTURE = ("91723000", "SCT", "Anatomical Structure")
ABNORMAL_STRUCTURE = ("49755003", "SCT", "Morphologically Abnormal Structure")
LEFT_VENTRICLE = ("87878005", "SCT", "Left ventricle")
RIGHT_VENTRICLE = ("53085002", "SCT", "Right ventricle")
LV_MYOCARDIUM = ("49848007", "SCT", "Left Ventricle Myocardium")
SCAR_TISSUE = ("12402003", "SCT", "Scar tissue")
MVO = ("MVO", PRIVATE_SCHEME, "Microvascular obstruction")

#: project label -> (category, type, anatomic region or None)
SEGMENT_CODES = {
    L.LV_BLOOD_POOL: (TISSUE, BLOOD, LEFT_VENTRICLE),
    L.LV_MYOCARDIUM: (ANATOMICAL_STRUCTURE, LV_MYOCARDIUM, None),
    L.RV_BLOOD_POOL: (TISSUE, BLOOD, RIGHT_VENTRICLE),
    L.SCAR: (ABNORMAL_STRUCTURE, SCAR_TISSUE, LV_MYOCARDIUM),
    L.MVO: (ABNORMAL_STRUCTURE, MVO, LV_MYOCARDIUM),
}

#: measurements: key -> (code, unit code)
ML = ("mL", "UCUM", "milliliter")
GRAM = ("g", "UCUM", "gram")
PERCENT = ("%", "UCUM", "percent")
MEASUREMENTS = {
    "lv_edv_ml": (("18026-5", "LN", "Left ventricular end diastolic volume"), ML),
    "lv_esv_ml": (("18148-7", "LN", "Left ventricular end systolic volume"), ML),
    "lv_ef_pct": (("8811-2", "LN", "Left ventricular Ejection fraction by MRI"), PERCENT),
    "lv_mass_g": (("18087-7", "LN", "Left ventricular Mass"), GRAM),
    "rv_edv_ml": (("RVEDV", PRIVATE_SCHEME, "Right ventricular end diastolic volume"), ML),
    "rv_esv_ml": (("RVESV", PRIVATE_SCHEME, "Right ventricular end systolic volume"), ML),
    "rv_ef_pct": (("RVEF", PRIVATE_SCHEME, "Right ventricular ejection fraction"), PERCENT),
    "scar_ml": (("118565006", "SCT", "Volume"), ML),
    "scar_burden_pct": (("SCARBURDEN", PRIVATE_SCHEME, "Scar burden (scar and MVO share of LV myocardium)"), PERCENT),
    "mvo_ml": (("118565006", "SCT", "Volume"), ML),
}


def concept(code):
    """A highdicom CodedConcept from (value, scheme, meaning)."""
    from highdicom.sr import CodedConcept

    return CodedConcept(code[0], code[1], code[2])


def label_of(category_code: str, type_code: str, region_code: str | None = None) -> int | None:
    """The project label of a segment's codes (code values only), or None when unknown."""
    for lab, (_c, t, r) in SEGMENT_CODES.items():
        if t[0] != type_code:
            continue
        if t is BLOOD and (r is None or r[0] != region_code):
            continue  # blood is told apart by its region (left or right ventricle)
        return lab
    return None
