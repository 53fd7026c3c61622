"""Radiomic features (pyradiomics) per region and phase.

Parameters come from ``radiomics_params.yaml`` beside this file (bundled, documented there):
texture per slice (``force2D``; CMR slices are 5-10 mm thick) averaged over slices, shape in 3D;
in-plane resampling to 1.5 mm; whole-image z-score normalisation (x100) and 32 fixed bins
(arbitrary MR units); classes shape, firstorder, glcm, glrlm, glszm, gldm, ngtdm on the
original image. Feature names keep pyradiomics' (``original_glcm_Contrast``) and are prefixed
by region and phase: ``lv_myo_ed_original_glcm_Contrast``.

Regions (project labels): ``lv_myo`` (LV myocardium; on LGE all myocardial labels), ``lv_bp``
(LV blood pool), ``rv_bp`` (RV blood pool), ``scar`` (scar + MVO, LGE). A region smaller than
``minimumROISize`` voxels is skipped (its columns are missing for that subject and appear as
empty cells in a cohort table).
"""

from __future__ import annotations

import logging
import os

import numpy as np

from .. import labels as L
from ..errors import CMRRiskError

PARAMS_FILE = os.path.join(os.path.dirname(__file__), "radiomics_params.yaml")

#: region name -> labels of a cine label map
CINE_REGIONS = {"lv_myo": (L.LV_MYOCARDIUM,), "lv_bp": (L.LV_BLOOD_POOL,), "rv_bp": (L.RV_BLOOD_POOL,)}
#: region name -> labels of an LGE label map
LGE_REGIONS = {"lv_myo": tuple(L.MYOCARDIAL), "scar": tuple(L.SCAR_WITH_MVO)}

_EXTRACTORS: dict = {}


def available() -> bool:
    try:
        import radiomics  # noqa: F401
    except ImportError:
        return False
    return True


def extractor(params: str | None = None):
    """A pyradiomics extractor for ``params`` (default: the bundled file), cached per path."""
    path = os.path.abspath(params or PARAMS_FILE)
    if path in _EXTRACTORS:
        return _EXTRACTORS[path]
    if not os.path.isfile(path):
        raise CMRRiskError(f"{path}: no such radiomics parameter file.")
    try:
        from radiomics import featureextractor
    except ImportError as exc:
        raise CMRRiskError("radiomic features need pyradiomics: pip install pyradiomics-bhklab==3.1.4 "
                           "(in Slicer: install the SlicerRadiomics extension).") from exc
    logging.getLogger("radiomics").setLevel(logging.ERROR)
    try:
        ex = featureextractor.RadiomicsFeatureExtractor(path)
    except Exception as exc:  # pykwalify validation errors and YAML errors
        raise CMRRiskError(f"{path}: invalid radiomics parameter file ({exc}).") from exc
    # no diagnostics_* entries (image hashes, ROI statistics): they are discarded anyway;
    # without them the radiomics of 4 synthetic demo subjects (cine ED, ES, LGE; interleaved
    # run) took 0.76 times as long, with identical features
    # (Testing/test_features.py)
    ex.addProvenance(False)
    _EXTRACTORS[path] = ex
    return ex


def feature_class(name: str) -> str:
    """'lv_myo_ed_original_glcm_Contrast' -> 'glcm'."""
    parts = name.split("_original_", 1)
    return parts[1].split("_", 1)[0] if len(parts) == 2 else ""


def region_features(image: np.ndarray, seg: np.ndarray, ijk_to_ras: np.ndarray, regions: dict,
                    phase: str, params: str | None = None) -> dict:
    """Features of every region of ``regions`` (name -> labels) in one (Z, Y, X) image,
    named ``<region>_<phase>_<pyradiomics name>``."""
    from ..image import to_sitk

    ex = extractor(params)
    min_size = int(ex.settings.get("minimumROISize") or 1)
    img = to_sitk(image.astype(np.float32), ijk_to_ras)
    out = {}
    for region, labs in regions.items():
        mask = np.isin(seg, labs)
        if mask.sum() < min_size:
            continue
        m = to_sitk(mask.astype(np.uint8), ijk_to_ras)
        try:
            res = ex.execute(img, m, label=1)
        except (ValueError, RuntimeError) as exc:
            if "too small" in str(exc) or "dimensions" in str(exc):
                # smaller than minimumROISize / minimumROIDimensions after pyradiomics' own
                # resampling (e.g. a few voxels of scar): no texture for it, as for an absent region
                continue
            raise CMRRiskError(f"radiomics of region {region} ({phase}) failed: {exc}") from exc
        for k, v in res.items():
            if k.startswith("diagnostics_"):  # only when a caller turned provenance back on
                continue
            out[f"{region}_{phase}_{k}"] = _real(v)
    return out


def _real(v) -> float:
    """A pyradiomics value as float; a complex value (pyradiomics' shape eigenvalues of a
    degenerate mask, e.g. a flat or one-slice region) becomes NaN unless it is real."""
    a = np.asarray(v)
    if np.iscomplexobj(a):
        return float(a.real) if abs(float(a.imag)) < 1e-12 else float("nan")
    return float(a)


def params_text(params: str | None = None) -> str:
    with open(params or PARAMS_FILE) as fh:
        return fh.read()
