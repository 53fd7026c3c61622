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


def algorithm_info(model: str) -> dict:
    """{"name", "weights_sha256"} of a bundled model name or a model folder."""
    from .. import modeldir

    path = modeldir.resolve(model)
    checksums = modeldir.read_json(os.path.join(path, modeldir.CHECKSUMS))
    config = os.path.join(path, "config.json")
    name = modeldir.read_json(config).get("name") if os.path.isfile(config) else None
    return {"name": str(name or os.path.basename(os.path.normpath(path))),
            "weights_sha256": checksums[modeldir.WEIGHTS]}


def export_frames(source_folder: str, frames: dict, algorithm: dict, out_folder: str,
                  source_geometry=None) -> dict:
    """DICOM SEG(s) and SR of label maps made outside ``cmrrisk segment`` (e.g. edited in
    Slicer), on the grid of the DICOM series in ``source_folder``.

    ``frames``: ``{"ed": (phase, labels), "es": (phase, labels)}`` for a cine, or
    ``{"stack": labels}`` for an LGE (or other single-phase) series; labels are (slice, row,
    column) project-label arrays. ``source_geometry``: the IJK-to-RAS matrix the labels were
    made on, checked against the series. Returns {"folder", "files", "repairs", "info"}."""
    from ..image import read_image
    from ..metrics import clinical_indices, lge_measures, volumes_ml
    from .source import load_series

    vol = read_image(source_folder)
    frame_shape = vol.array.shape[1:] if vol.is_cine else vol.array.shape
    if source_geometry is not None and not np.allclose(np.asarray(source_geometry), vol.ijk_to_ras, atol=1e-3):
        raise CMRRiskError(f"{source_folder}: the segmentation's grid is not this series' grid; export on "
                           "the volume loaded from this DICOM series.")
    series = load_series(source_folder, vol.array.shape)
    sp = vol.spacing
    if "stack" in frames:
        if vol.is_cine:
            raise CMRRiskError(f"{source_folder}: a cine series; give its ED and ES segmentations.")
        labels = np.asarray(frames["stack"]).astype(np.uint8)
        _check_shape(labels, frame_shape, source_folder)
        from ..dicom import classify_volume

        lge = classify_volume(vol)["kind"] == "lge" or bool(set(np.unique(labels).tolist()) & {L.SCAR, L.MVO})
        structures = L.LGE_LABELS if lge else L.CINE_LABELS
        info = {"lge": lge_measures(labels, sp, image=vol.array, ijk_to_ras=vol.ijk_to_ras)} if lge else \
            {"volumes_ml": volumes_ml(labels, sp)}
        kind = "lge" if lge else "frame"
    else:
        if not vol.is_cine or set(frames) != {"ed", "es"}:
            raise CMRRiskError(f"{source_folder}: give 'ed' and 'es' (phase, labels) of a cine series.")
        labels = np.zeros((vol.array.shape[0],) + tuple(frame_shape), np.uint8)
        info = {}
        for key in ("ed", "es"):
            phase, arr = frames[key]
            if not 0 <= int(phase) < vol.array.shape[0]:
                raise CMRRiskError(f"{key.upper()} phase {phase} is outside the cine (0..{vol.array.shape[0] - 1}).")
            arr = np.asarray(arr).astype(np.uint8)
            _check_shape(arr, frame_shape, source_folder)
            labels[int(phase)] = arr
            info[f"{key}_phase"] = int(phase)
        if info["ed_phase"] == info["es_phase"]:
            raise CMRRiskError("ED and ES are the same phase; give two different phases.")
        info["indices"] = clinical_indices(labels[info["ed_phase"]], labels[info["es_phase"]], sp)
        structures, kind = L.CINE_LABELS, "cine"
    from ..dicom import quiet_pydicom

    with quiet_pydicom():  # the source's non-conforming values are reported as repairs
        datasets = build_outputs(series, labels, info, structures, algorithm, kind)
        files = write_outputs(datasets, out_folder)
    return {"folder": os.path.abspath(out_folder), "files": files, "repairs": series.repairs, "info": info}


def _check_shape(labels, frame_shape, folder):
    if tuple(labels.shape) != tuple(frame_shape):
        raise CMRRiskError(f"{folder}: segmentation of shape {list(labels.shape)} does not match the series' "
                           f"{list(frame_shape)} (slices, rows, columns).")
