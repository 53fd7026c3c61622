"""Everything written for one segmented DICOM input: one SEG per segmented frame (ED and ES of a
cine, the stack of an LGE series) and the measurement report, with UIDs derived from the source
series, the model and the frame, so that a re-run gives the same UIDs."""

from __future__ import annotations

import os
import shutil

import numpy as np

from .. import labels as L
from ..errors import CMRRiskError
from .source import Series, copy_frame
from .uids import derived_uid

#: series numbers of the outputs (the source's own series number plus these)
SEG_SERIES_OFFSET = 9000
SR_SERIES_OFFSET = 9100


def dicom_folder_name(stem: str) -> str:
    return f"{stem}_dicom"


def build_outputs(series: Series, labels: np.ndarray, info: dict, structures, algorithm: dict,
                  kind: str) -> dict:
    """{file name: dataset} of the SEG(s) and SR of one input. ``labels``: the label map (phase,
    slice, row, column for a cine; slice, row, column otherwise); ``info``: the input's
    segment.json entry (ED/ES phases, indices, LGE measures); ``kind``: 'cine' or 'lge'."""
    from .seg import build_seg
    from .sr import CINE_GROUPS, LGE_GROUPS, build_sr

    src_uid = series.series_uid
    model_key = (algorithm["name"], algorithm["weights_sha256"])
    seg_series = derived_uid("cmrrisk seg series", src_uid, *model_key)
    base_number = int(series.first.get("SeriesNumber") or 0)
    if labels.ndim == 4:
        frames = {"ed": info["ed_phase"], "es": info["es_phase"]}
    else:
        frames = {"stack": 0}
    segs, numbers, out, evidence = {}, {}, {}, []
    for i, (key, phase) in enumerate(frames.items()):
        arr = labels[phase] if labels.ndim == 4 else labels
        what = {"ed": f"end-diastole (phase {phase + 1})", "es": f"end-systole (phase {phase + 1})",
                "stack": "LGE stack"}[key]
        desc = f"CMRRisk {algorithm['name']} segmentation, {what}"
        sources = copy_frame(series, phase if labels.ndim == 4 else 0)
        evidence.extend(sources)
        seg, nums = build_seg(
            sources, arr.astype(np.uint8), structures,
            algorithm, series_uid=seg_series,
            sop_uid=derived_uid("cmrrisk seg", src_uid, *model_key, key, phase),
            series_number=base_number + SEG_SERIES_OFFSET, instance_number=i + 1, description=desc)
        segs[key], numbers[key] = seg, nums
        out[f"seg_{key}.dcm"] = seg
    if labels.ndim == 4:
        values, groups = dict(info.get("indices") or {}), CINE_GROUPS
    else:
        values, groups = dict(info.get("lge") or {}), LGE_GROUPS
    sr = build_sr(segs, numbers, values, groups, algorithm,
                  series_uid=derived_uid("cmrrisk sr series", src_uid, *model_key),
                  sop_uid=derived_uid("cmrrisk sr", src_uid, *model_key),
                  series_number=base_number + SR_SERIES_OFFSET,
                  description=f"CMRRisk {algorithm['name']} measurements ({kind})",
                  uid_seed=f"{src_uid}/{model_key}", sources=evidence)
    out["sr.dcm"] = sr
    return out


def write_outputs(datasets: dict, folder: str) -> list[str]:
    """Write ``datasets`` into ``folder`` as a whole: built aside under a temporary name, then
    put in place (an earlier result of the same input is replaced)."""
    parent = os.path.dirname(os.path.abspath(folder))
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f".{os.path.basename(folder)}.tmp")
    old = os.path.join(parent, f".{os.path.basename(folder)}.old")
    for p in (tmp, old):
        if os.path.exists(p):
            shutil.rmtree(p)
    os.makedirs(tmp)
    try:
        for name, ds in datasets.items():
            ds.save_as(os.path.join(tmp, name), enforce_file_format=True)
        if os.path.exists(folder):
            if not os.path.isdir(folder) or any(n not in datasets and not n.endswith(".dcm")
                                                for n in os.listdir(folder)):
                raise CMRRiskError(f"{folder}: exists and holds other files; move it away or choose "
                                   "another --out.")
            os.rename(folder, old)
        os.rename(tmp, folder)
    finally:
        for p in (tmp, old):
            if os.path.exists(p):
                shutil.rmtree(p)
    return [os.path.join(folder, n) for n in datasets]


def structures_for(labels: np.ndarray, model_structures) -> tuple:
    """The segments written: the model's structures in label order."""
    return tuple(sorted(int(s) for s in model_structures if int(s) in L.SEGMENTS))
