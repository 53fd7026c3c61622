"""``cmrrisk segment``: many inputs, one model load, label maps with the inputs' geometry and a
``segment.json`` report.

Every input is read and validated before anything is written, so a bad input stops the run
with a message naming it and leaves the output folder untouched. Each output file is written
under a temporary name and renamed when complete.
"""

from __future__ import annotations

import os
import time

import numpy as np

from .. import modeldir
from ..errors import CMRRiskError
from ..image import Volume, read_image, stem, write_image
from ..labels import CINE_LABELS, SCAR
from ..metrics import clinical_indices, ed_es_phases, lge_measures, volumes_ml
from .infer import Segmenter
from .quality import frame_flags

#: inputs whose arrays together stay under this size are kept in memory between validation
#: and segmentation; larger batches are read twice instead
KEEP_IN_MEMORY_BYTES = 2 * 1024**3


def output_name(path: str) -> str:
    return f"{stem(path)}_seg.nii.gz"


def summarize_result(vol: Volume, seg: Volume, structures=CINE_LABELS) -> dict:
    """Volumes, flags and (for a cine) ED/ES indices of one segmented input."""
    sp = vol.spacing
    info: dict = {}
    if seg.is_cine:
        lv = [volumes_ml(seg.array[t], sp)["lv_ml"] for t in range(seg.array.shape[0])]
        ed, es = ed_es_phases(seg.array, sp)
        info["lv_volume_ml_per_phase"] = [round(v, 2) for v in lv]
        info["ed_phase"], info["es_phase"] = ed, es
        info["indices"] = clinical_indices(seg.array[ed], seg.array[es], sp)
        flags = {}
        for t in range(seg.array.shape[0]):
            for f in frame_flags(seg.array[t], sp, structures):
                flags.setdefault(f, []).append(t)
        info["flags"] = [f"{f} (phases {v})" for f, v in flags.items()]
    else:
        info["volumes_ml"] = volumes_ml(seg.array, sp)
        if SCAR in structures:
            info["lge"] = lge_measures(seg.array, sp, image=vol.array, ijk_to_ras=vol.ijk_to_ras)
        info["flags"] = frame_flags(seg.array, sp, structures)
    return info


#: how a segmentation's ``order_source`` reads in :func:`slice_order_note`
ORDER_SOURCES = {"geometry": "order read from the image geometry",
                 "labels": "order judged from the LV area along the stack",
                 "caller": "order chosen by the caller"}


def slice_order_note(seg_model: Segmenter, result) -> str:
    """What a segmentation by ``seg_model`` did with the slice order, for reports; ``result``: its
    :class:`~cmrrisk.segmentation.infer.VolumeSegmentation` (or anything with ``reversed`` and
    ``order_source``)."""
    if not seg_model.check_slice_order:
        return "as given (not checked)"
    trained = seg_model.slice_order.replace("_", " ")
    how = ORDER_SOURCES.get(result.order_source, "")
    how = f"; {how}" if how else ""
    if result.reversed:
        other = "base first" if seg_model.slice_order == "apex_first" else "apex first"
        return f"reversed for the model (stack given {other}; the model was trained {trained}{how})"
    return f"as given ({trained}, as in training{how})"


#: ``--model auto``: the series kind (see :func:`cmrrisk.dicom.classify_volume`) -> bundled model
AUTO_MODELS = {"cine": "cine", "lge": "lge"}


def choose_model(vol: Volume, path: str) -> tuple:
    """(model name, reason) for ``--model auto``; :class:`CMRRiskError` when the kind is unknown."""
    from ..dicom import classify_volume

    c = classify_volume(vol)
    if c["kind"] not in AUTO_MODELS:
        raise CMRRiskError(f"{path}: --model auto cannot tell whether this is a cine or an LGE image "
                           f"({c['reason']}); give --model cine or --model lge.")
    return AUTO_MODELS[c["kind"]], c["reason"]


def segment_inputs(inputs: list[str], out_dir: str, model: str = "cine", device: str = "cpu",
                   progress=True, tta: bool | None = None, check_slice_order: bool = True,
                   dicom: bool = False, require_kind: bool = False, engine=None) -> dict:
    """Segment every input with ``model`` (a bundled name, a model folder, or ``auto``: cine or
    lge per input from its DICOM headers or name, see :func:`choose_model`).

    ``dicom``: every input must be a DICOM folder; each also gets ``<name>_dicom/`` with one DICOM
    SEG per segmented frame and a measurement report (see :mod:`cmrrisk.dicomout`).
    ``require_kind``: refuse an input that its headers do not show to be a cine or LGE series.
    ``progress``: True (a bar of the frames), False, or a :class:`cmrrisk.progress.Progress`
    (its cancel is asked before each frame). ``engine``: a :class:`cmrrisk.parallel.Engine` whose
    workers segment the inputs as tasks (each worker loads a model once; progress by input),
    used when it was asked for workers, a scheduler or a cluster."""
    from .. import progress as P

    if not inputs:
        raise CMRRiskError("no input given; name one or more images or DICOM folders.")
    names = {}
    for p in inputs:
        n = output_name(p)
        if n in names:
            raise CMRRiskError(f"{p} and {names[n]} would both be written as {n}; "
                               "segment them into different --out folders.")
        names[n] = p

    # validate everything before writing anything
    cache: dict[str, Volume] = {}
    chosen: dict[str, tuple] = {}
    sources: dict = {}
    total = 0
    for p in inputs:
        if dicom and not os.path.isdir(p):
            raise CMRRiskError(f"{p}: --dicom needs a folder of DICOM files (the SEG references the "
                               "source images); this is a file.")
        v = read_image(p)
        if require_kind:
            from ..dicom import classify_volume

            c = classify_volume(v)
            if c["kind"] not in AUTO_MODELS:
                raise CMRRiskError(f"{p}: not a short-axis cine or LGE series ({c['reason']}).")
        chosen[p] = choose_model(v, p) if model == "auto" else (model, None)
        if dicom:
            from ..dicomout.source import load_series

            sources[p] = load_series(p, v.array.shape)
        total += v.array.nbytes
        if total <= KEEP_IN_MEMORY_BYTES:
            cache[p] = v
    models: dict[str, Segmenter] = {}
    for name, _ in chosen.values():
        if name not in models:
            models[name] = Segmenter.load(name, device=device, tta=tta)
            models[name].check_slice_order = models[name].check_slice_order and check_slice_order
    seg_model = models[chosen[inputs[0]][0]]

    def _model_info(m):
        return {
            "name": m.name,
            "directory": m.model_dir,
            "weights_sha256": modeldir.read_json(os.path.join(m.model_dir, modeldir.CHECKSUMS))[modeldir.WEIGHTS],
            "load_seconds": round(m.load_seconds, 3),
            "test_time_flips": m.tta,
            # the flipped passes see the heart's bounding box widened by this margin (None: the
            # whole image); see Segmenter.tta_window
            "test_time_flips_window_margin_mm": m.TTA_WINDOW_MARGIN_MM if m.tta else None,
            # later phases of a 4D cine (and its re-segmented ES phase) are run on the first
            # phase's heart widened by this margin (None: whole image); Segmenter.heart_window
            "heart_window_margin_mm": m.HEART_WINDOW_MARGIN_MM,
            "slice_order_trained": m.slice_order,
            "slice_order_checked": m.check_slice_order,
        }

    n_frames = sum((cache[p].array.shape[0] if cache[p].is_cine else 1) if p in cache else 1 for p in inputs)
    report = {
        "model": _model_info(seg_model),
        "device": str(seg_model.device),
        "inputs": [],
    }
    if model == "auto":
        report["model_selection"] = "auto"
        report["models"] = {name: _model_info(m) for name, m in models.items()}
    os.makedirs(out_dir, exist_ok=True)
    # each input a task on the workers asked for; a worker loads each model it needs once
    if engine is not None and engine.workers_asked and len(inputs) > 1:
        engine.check_visible(inputs, "inputs")
        jobs = [(i, (p, out_dir, (chosen[p][0], device, tta, models[chosen[p][0]].check_slice_order),
                     chosen[p][1], dicom)) for i, p in enumerate(inputs)]
        done = engine.map(segment_one, jobs, desc="segment", progress=progress, unit="input")
        report["inputs"] = [done[i] for i in range(len(inputs))]
    else:
        bar = P.as_progress(progress, desc="segment", unit="frame", leave=False)
        bar.update(0, n_frames, "segment")
        frames_done = [0]
        try:
            for p in inputs:
                done = [0]

                def step(i, n, _msg, _done=done, _name=os.path.basename(p)):
                    frames_done[0] += i - _done[0]
                    _done[0] = i
                    bar.update(frames_done[0], n_frames, f"{_name}: frame {i}/{n}")

                report["inputs"].append(segment_one(p, out_dir, models[chosen[p][0]], chosen[p][1], dicom,
                                                    cache.pop(p, None), sources.pop(p, None),
                                                    P.Progress(step, bar.cancelled)))
        finally:
            bar.close()
    modeldir.write_json(os.path.join(out_dir, "segment.json"), report)
    return report


def segment_one(p: str, out_dir: str, seg_model, reason, dicom: bool, vol: Volume | None = None,
                series=None, progress=None) -> dict:
    """Segment input ``p`` and write ``<out>/<name>_seg.nii.gz`` (and its DICOM outputs):
    the input's entry of ``segment.json``. ``seg_model``: a :class:`Segmenter`, or the arguments
    (name, device, tta, slice order checked) of :func:`cmrrisk.segmentation.service.segmenter`,
    which loads it once per process for all its tasks."""
    if not isinstance(seg_model, Segmenter):
        from .service import segmenter

        seg_model = segmenter(*seg_model)
    vol = vol or read_image(p)
    if dicom and series is None:
        from ..dicomout.source import load_series

        series = load_series(p, vol.array.shape)
    t0 = time.perf_counter()
    result = seg_model.segment_detailed(vol, progress=progress)
    seg = result.volume
    secs = time.perf_counter() - t0
    out_path = os.path.join(out_dir, output_name(p))
    write_image(seg.with_array(seg.array.astype(np.uint8)), out_path)
    n = vol.array.shape[0] if vol.is_cine else 1
    entry = {
        "input": os.path.abspath(p),
        "output": os.path.abspath(out_path),
        "shape": list(vol.array.shape),
        "spacing_mm": [round(s, 5) for s in vol.spacing],
        "kind": "cine" if vol.is_cine else "frame",
        "model": seg_model.name,
        **({"model_selected_because": reason} if reason else {}),
        "seconds": round(secs, 3),
        "seconds_per_frame": round(secs / n, 3),
        "slice_order": slice_order_note(seg_model, result),
    }
    if vol.meta:
        entry["metadata"] = {k: v for k, v in vol.meta.items() if k not in ("trigger_times_ms", "instance_numbers")}
    entry.update(summarize_result(vol, seg, seg_model.structures))
    if dicom:
        try:
            entry["dicom"] = _write_dicom(series, seg, entry, seg_model, out_dir, p)
        except BaseException:
            os.remove(out_path)  # no label map without its DICOM outputs
            raise
    return entry


def _write_dicom(series, seg: Volume, entry: dict, seg_model: Segmenter, out_dir: str, path: str) -> dict:
    """The DICOM SEG(s) and SR of one input into ``<out>/<name>_dicom/``."""
    from ..dicomout.write import build_outputs, dicom_folder_name, write_outputs

    algorithm = {"name": seg_model.name, "weights_sha256": modeldir.read_json(
        os.path.join(seg_model.model_dir, modeldir.CHECKSUMS))[modeldir.WEIGHTS]}
    from ..dicom import quiet_pydicom

    kind = "cine" if seg.is_cine else ("lge" if SCAR in seg_model.structures else "frame")
    folder = os.path.join(out_dir, dicom_folder_name(stem(path)))
    with quiet_pydicom():  # the source's non-conforming values were reported once as repairs
        datasets = build_outputs(series, seg.array.astype(np.uint8), entry, seg_model.structures,
                                 algorithm, kind)
        files = write_outputs(datasets, folder)
    return {"folder": os.path.abspath(folder), "files": [os.path.abspath(f) for f in files],
            "repairs": series.repairs,
            "sop_instance_uids": {k: str(d.SOPInstanceUID) for k, d in datasets.items()}}
