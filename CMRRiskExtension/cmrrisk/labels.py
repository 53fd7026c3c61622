"""Project-wide label convention (docs/explanation/architecture.md) and mappings from public datasets."""

BACKGROUND = 0
LV_BLOOD_POOL = 1
LV_MYOCARDIUM = 2
RV_BLOOD_POOL = 3
SCAR = 4
MVO = 5

#: label value -> (segment name, RGB colour 0..1, terminology type (code value, scheme, meaning)).
#: Codes: SNOMED CT (SCT) body structures as in DICOM CID 7152 (Left/Right Ventricle) and
#: "Myocardium structure"; DICOM DCM 122113 "Scarred Myocardium" (CID 3704). MVO has no standard
#: code that we could verify, so it carries a private code; DICOM reserves coding-scheme
#: designators that begin with "99" for private schemes (PS3.16 section 8), hence 99CMRRISK.
SEGMENTS = {
    LV_BLOOD_POOL: ("LV blood pool", (0.863, 0.294, 0.294),
                    ("87878005", "SCT", "Left ventricle")),
    LV_MYOCARDIUM: ("LV myocardium", (0.902, 0.780, 0.392),
                    ("74281007", "SCT", "Myocardium structure")),
    RV_BLOOD_POOL: ("RV blood pool", (0.392, 0.588, 0.863),
                    ("53085002", "SCT", "Right ventricle")),
    SCAR: ("Myocardial scar", (0.95, 0.95, 0.95),
           ("122113", "DCM", "Scarred Myocardium")),
    MVO: ("Microvascular obstruction", (0.35, 0.10, 0.45),
          ("mvo", "99CMRRISK", "Microvascular obstruction")),
}

#: terminology category per label: DICOM CID 7150 "Anatomical Structure" (SCT 91723000) for the
#: cavities and myocardium, "Morphologically Abnormal Structure" (SCT 49755003) for scar and MVO
ANATOMY = ("91723000", "SCT", "Anatomical Structure")
ABNORMAL = ("49755003", "SCT", "Morphologically Abnormal Structure")
CATEGORY = {LV_BLOOD_POOL: ANATOMY, LV_MYOCARDIUM: ANATOMY, RV_BLOOD_POOL: ANATOMY,
            SCAR: ABNORMAL, MVO: ABNORMAL}


def terminology_string(label: int) -> str:
    """Slicer's serialised terminology entry (context~category~type~modifier~anatomic context~
    region~region modifier, each code as scheme^value^meaning)."""
    c = CATEGORY[label]
    t = SEGMENTS[label][2]
    return ("Segmentation category and type - CMRRisk"
            f"~{c[1]}^{c[0]}^{c[2]}~{t[1]}^{t[0]}^{t[2]}~^^~Anatomic codes - DICOM master list~^^~^^")


CINE_LABELS = (LV_BLOOD_POOL, LV_MYOCARDIUM, RV_BLOOD_POOL)
LGE_LABELS = (LV_BLOOD_POOL, LV_MYOCARDIUM, SCAR, MVO)
#: everything that is LV wall: healthy myocardium, scar, MVO
MYOCARDIAL = (LV_MYOCARDIUM, SCAR, MVO)
#: scar as counted for scar burden: infarct including MVO
SCAR_WITH_MVO = (SCAR, MVO)

#: ACDC: 0 background, 1 RV blood pool, 2 LV myocardium, 3 LV blood pool
ACDC_TO_PROJECT = {0: BACKGROUND, 1: RV_BLOOD_POOL, 2: LV_MYOCARDIUM, 3: LV_BLOOD_POOL}


def map_labels(array, mapping):
    """Return a uint8 copy of ``array`` with every value v replaced by ``mapping[v]``.

    Raises ValueError naming any value that the mapping does not cover.
    """
    import numpy as np

    values = np.unique(array)
    unknown = [int(v) for v in values if int(v) not in mapping]
    if unknown:
        raise ValueError(f"label values {unknown} are not in the mapping {sorted(mapping)}")
    lut = np.zeros(max(int(values.max()), max(mapping)) + 1, dtype=np.uint8)
    for k, v in mapping.items():
        lut[k] = v
    return lut[array.astype(np.int64)]
