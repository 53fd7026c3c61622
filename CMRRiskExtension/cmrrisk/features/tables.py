"""Long-format description of a subject's features (one row per feature) for Slicer tables and
reports: feature, region, phase, class, value."""

from __future__ import annotations

from .radiomics import feature_class

_REGIONS = ("lv_myo", "lv_bp", "rv_bp", "scar")

#: clinical index -> (region, phase)
_INDEX_PLACES = {
    "lv_edv": ("lv_bp", "ed"), "lv_esv": ("lv_bp", "es"), "lv_sv": ("lv_bp", "ed-es"),
    "lv_ef": ("lv_bp", "ed-es"), "lv_mass": ("lv_myo", "ed"), "lv_max_wall_thickness": ("lv_myo", "ed"),
    "rv_edv": ("rv_bp", "ed"), "rv_esv": ("rv_bp", "es"), "rv_ef": ("rv_bp", "ed-es"),
    "scar_burden": ("scar", "lge"), "scar": ("scar", "lge"), "mvo": ("scar", "lge"),
    "lge_myocardium": ("lv_myo", "lge"), "lv_mean_wall_thickness": ("lv_myo", "ed"),
    "lv_wall_thickness_sd": ("lv_myo", "ed"), "lv_max_wall_thickness_es": ("lv_myo", "es"),
    "lv_mean_wall_thickness_es": ("lv_myo", "es"), "lv_wall_thickening": ("lv_myo", "ed-es"),
    "lv_myo_es": ("lv_myo", "es"), "rv_lv_edv": ("rv_bp", "ed"), "rv_lv_esv": ("rv_bp", "es"),
    "lv_mass_edv": ("lv_myo", "ed"),
}


def describe(name: str) -> tuple:
    """(region, phase, class) of a feature name of ``cmrrisk features``."""
    if name.startswith("deep_"):
        return "heart", name.split("_")[1], "deep"
    for region in _REGIONS:
        prefix = region + "_"
        if name.startswith(prefix) and "_original_" in name:
            phase = name[len(prefix):].split("_", 1)[0]
            return region, phase, "radiomics " + feature_class(name)
    for key in sorted(_INDEX_PLACES, key=len, reverse=True):
        if name.startswith(key + "_"):
            region, phase = _INDEX_PLACES[key]
            return region, phase, "clinical"
    return "", "", "other"


def feature_rows(features: dict) -> dict:
    """Columns (feature, region, phase, class, value) for :func:`cmrrisk.mrml.add_table`;
    missing values become NaN."""
    cols = {"feature": [], "region": [], "phase": [], "class": [], "value": []}
    for name, value in features.items():
        region, phase, cls = describe(name)
        cols["feature"].append(name)
        cols["region"].append(region)
        cols["phase"].append(phase)
        cols["class"].append(cls)
        cols["value"].append(float("nan") if value is None else float(value))
    return cols
