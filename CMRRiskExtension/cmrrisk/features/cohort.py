"""``cmrrisk features``: one row of image-derived features per subject of a manifest.

For every subject (in parallel over subjects, one process per core):

1. read its images (``cine_ed`` + ``cine_es``, or a 4D ``cine``; ``lge``);
2. take the reference segmentation of the manifest (``*_seg``) or segment with the bundled
   model (``cine`` / ``lge``); a 4D cine gives ED and ES as the phases of largest and smallest
   LV blood-pool volume;
3. clinical indices (:mod:`.indices`), radiomics (:mod:`.radiomics`), deep features
   (:mod:`.deep`; computed in the same network pass as the segmentation when it segments).

Finished subjects are cached as JSON (one file per subject, keyed by the SHA-256 of its input
files, its row's anthropometrics, the radiomics parameters, the model checksums and the
package version), so that an interrupted or repeated run only computes what changed. One
subject's failure is recorded (provenance JSON and a message) and the others go on.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time

import numpy as np

from .. import __version__, modeldir
from ..errors import CMRRiskError
from ..manifest import IMAGE_ROLES, Manifest, read_manifest, write_csv
from ..progress import Progress, as_progress
from ..study import Study, bsa_of_row

#: bump when the features computed from the same inputs change (invalidates every cache)
FEATURES_VERSION = 5  # 3: model ES segmentations anchored to ED (Segmenter.predict_frame prior);
# 4: stacks in the other slice order than the model's training data are read reversed
# 5: ES LV blood pool refused on the ED RV when it swallowed the RV (Segmenter._apply_es_prior)

#: what a subject row can ask for
DEFAULT_OPTIONS = {"radiomics": True, "deep": True, "radiomics_params": None, "device": "cpu"}

def segmenter(name: str, device: str = "cpu"):
    """The bundled segmenter ``name`` on ``device`` (see :mod:`cmrrisk.segmentation.service`)."""
    from ..segmentation.service import segmenter as load

    return load(name, device)


def model_checksums(names=("cine", "lge")) -> dict:
    """Weights SHA-256 of the bundled models ("+flips", and the window margin of the flipped
    passes, when the model segments with test-time flips by default; for the cine model, whose
    ES frame is segmented on the ED frame's heart window, "+heartwindow<margin>mm"; for both,
    "+geomorder" since the slice order is read from the image geometry when it can be, see
    ``slice_order_from_geometry``), so that features change identity when the segmentations
    would change."""
    from ..segmentation.infer import Segmenter, default_tta

    out = {}
    for n in names:
        d = modeldir.resolve(n)
        out[n] = modeldir.read_json(os.path.join(d, modeldir.CHECKSUMS))[modeldir.WEIGHTS]
        config = modeldir.read_json(os.path.join(d, "config.json"))
        if default_tta(config):
            margin = Segmenter.TTA_WINDOW_MARGIN_MM
            out[n] += "+flips" + (f"-window{margin:g}mm" if margin is not None else "")
        if config.get("task") == "cine" and Segmenter.HEART_WINDOW_MARGIN_MM is not None:
            out[n] += f"+heartwindow{Segmenter.HEART_WINDOW_MARGIN_MM:g}mm"
        out[n] += "+geomorder"
    return out


def settings_record(options: dict, checksums: dict | None = None) -> dict:
    """What decides the features' meaning: segmentation models, features version, options and
    radiomics parameters (the part of the provenance a model compares, see
    :func:`cmrrisk.predict.tabular.feature_settings`)."""
    from . import radiomics as R

    opts = dict(DEFAULT_OPTIONS, **options)
    return {"models": checksums if checksums is not None else model_checksums(),
            "features_version": FEATURES_VERSION,
            "options": {k: v for k, v in opts.items() if k != "radiomics_params"},
            "radiomics_params": R.params_text(opts["radiomics_params"]) if opts["radiomics"] else None}


def _hash_path(h, path: str) -> None:
    if os.path.isdir(path):
        for root, dirs, files in os.walk(path):
            dirs.sort()
            for f in sorted(files):
                _hash_path(h, os.path.join(root, f))
        return
    h.update(os.path.basename(path).encode())
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)


def subject_key(row: dict, options: dict, checksums: dict) -> str:
    """SHA-256 of everything a subject's features depend on."""
    from . import radiomics as R

    h = hashlib.sha256()
    h.update(json.dumps({"version": __version__, "features_version": FEATURES_VERSION, "models": checksums,
                         "options": {k: options[k] for k in ("radiomics", "deep")},
                         "bsa": bsa_of_row(row), "seg_labels": row.get("seg_labels", "")},
                        sort_keys=True).encode())
    if options["radiomics"]:
        h.update(R.params_text(options["radiomics_params"]).encode())
    for c in sorted(row):
        if (c in IMAGE_ROLES or c.endswith("_seg")) and row[c]:
            h.update(c.encode())
            _hash_path(h, row[c])
    return h.hexdigest()


def _segment_and_embed(model: str, image: np.ndarray, spacing_xy, options: dict, timings: dict, tag: str,
                       prior=None, geometry=None):
    """Segment with the bundled model; the deep features come from the same pass. ``prior``:
    the ED labels when ``image`` is the ES frame of the same cine; ``geometry``: the image's
    ijk-to-RAS matrix (slice order, see ``predict_frame``)."""
    from . import deep

    seg_model = segmenter(model, options["device"])
    t0 = time.perf_counter()
    if options["deep"] and seg_model.tta:  # flips average several passes: embed the plain image
        got = seg_model.predict_frame_detailed(image, spacing_xy, prior=prior, geometry=geometry)
        seg = got.labels
        vec = deep.embedding(seg_model, image, seg, spacing_xy, reverse=got.reversed)
    elif options["deep"]:
        with deep.capture_encoder(seg_model) as cap:
            got = seg_model.predict_frame_detailed(image, spacing_xy, prior=prior, geometry=geometry)
        seg = got.labels
        box = deep.resampled_box(seg_model, image.shape, spacing_xy)
        vec = deep.pool(deep.captured_for_frame(got, cap, box), box, seg)
    else:
        seg, vec = seg_model.predict_frame(image, spacing_xy, prior=prior, geometry=geometry), None
    timings[f"segment_{tag}"] = time.perf_counter() - t0
    return seg, vec


def _embed(model: str, image, seg, spacing_xy, options, timings, tag):
    from . import deep

    t0 = time.perf_counter()
    vec = deep.embedding(segmenter(model, options["device"]), image, seg, spacing_xy)
    timings[f"deep_{tag}"] = time.perf_counter() - t0
    return vec


def _stepper(progress: Progress, total: int):
    """``step(message)``: ``progress.update`` with the steps done so far out of ``total``."""
    done = [0]

    def step(message: str) -> None:
        progress.update(done[0], max(1, total), message)
        done[0] += 1

    return step


def image_features(study: Study, options: dict | None = None, timings: dict | None = None,
                   info: dict | None = None, progress: Progress | None = None) -> dict:
    """Features of one subject's images: the ED and ES frames and/or the LGE stack of ``study``
    (:class:`cmrrisk.study.Study`; its body surface area indexes the cine indices). A missing
    segmentation (``None``) is computed with the bundled model; a given one must be a
    project-label array of the image's shape. Used by the cohort runner and by the Slicer
    module.

    ``progress`` (a :class:`cmrrisk.progress.Progress`, optional) is updated before each step
    (segmentation and deep features per image, clinical indices, radiomics per image) and once
    at the end; a cancel raises :class:`cmrrisk.errors.Cancelled` before the next step."""
    from . import indices as I
    from . import radiomics as R

    ed, es, ed_seg, es_seg = study.ed, study.es, study.ed_seg, study.es_seg
    lge, lge_seg, bsa_m2 = study.lge, study.lge_seg, study.bsa_m2
    opts = dict(DEFAULT_OPTIONS, **(options or {}))
    if opts["deep"]:  # torch only when the deep features are asked for
        from . import deep
    timings = {} if timings is None else timings
    info = {} if info is None else info
    info.setdefault("segmentation", {})
    feats: dict = {}
    if (ed is None) != (es is None):
        raise CMRRiskError("cine indices need both the ED and the ES frame.")
    total = 0
    if ed is not None:
        total += sum(1 for s in (ed_seg, es_seg) if s is None or opts["deep"]) + 1 + 2 * bool(opts["radiomics"])
    if lge is not None:
        total += (lge_seg is None or bool(opts["deep"])) + 1 + bool(opts["radiomics"])
    progress = as_progress(progress)
    step = _stepper(progress, total)
    if ed is not None:
        if ed.array.shape != es.array.shape:
            raise CMRRiskError(f"{ed.source} and {es.source}: ED and ES frames differ in shape.")
        phases, segs, vecs = {"ed": ed, "es": es}, {"ed": ed_seg, "es": es_seg}, {}
        for ph, vol in phases.items():
            sp = vol.spacing[:2]
            if segs[ph] is not None:
                if segs[ph].shape != vol.array.shape:
                    raise CMRRiskError(f"{ph.upper()} segmentation shape {segs[ph].shape} differs from "
                                       f"its image {vol.source} {vol.array.shape}.")
                info["segmentation"].setdefault(ph, "reference")
                vecs[ph] = None
                if opts["deep"]:
                    step(f"deep features ({ph.upper()})")
                    vecs[ph] = _embed("cine", vol.array, segs[ph], sp, opts, timings, ph)
            else:
                # ES is anchored to the ED labels (computed above, or the reference)
                step(f"segmentation{' and deep features' if opts['deep'] else ''} ({ph.upper()})")
                prior = segs["ed"] if ph == "es" else None
                segs[ph], vecs[ph] = _segment_and_embed("cine", vol.array, sp, opts, timings, ph, prior,
                                                        vol.ijk_to_ras)
                info["segmentation"][ph] = "model cine" + (" (anchored to ED)" if ph == "es" else "")
        step("clinical indices (cine)")
        t0 = time.perf_counter()
        feats.update(I.cine_indices(segs["ed"], segs["es"], ed.spacing, bsa_m2))
        timings["indices"] = time.perf_counter() - t0
        if opts["radiomics"]:
            t0 = time.perf_counter()
            for ph in ("ed", "es"):
                step(f"radiomics ({ph.upper()})")
                feats.update(R.region_features(phases[ph].array, segs[ph], phases[ph].ijk_to_ras,
                                               R.CINE_REGIONS, ph, opts["radiomics_params"]))
            timings["radiomics_cine"] = time.perf_counter() - t0
        if opts["deep"]:
            for ph in ("ed", "es"):
                feats.update(dict(zip(deep.embedding_names(ph, len(vecs[ph])), vecs[ph].tolist())))
        info["segmentations"] = {"ed": segs["ed"], "es": segs["es"]}
    if lge is not None:
        sp = lge.spacing[:2]
        if lge_seg is not None:
            if lge_seg.shape != lge.array.shape:
                raise CMRRiskError(f"LGE segmentation shape {lge_seg.shape} differs from its image "
                                   f"{lge.source} {lge.array.shape}.")
            info["segmentation"].setdefault("lge", "reference")
            vec = None
            if opts["deep"]:
                step("deep features (LGE)")
                vec = _embed("lge", lge.array, lge_seg, sp, opts, timings, "lge")
        else:
            step(f"segmentation{' and deep features' if opts['deep'] else ''} (LGE)")
            lge_seg, vec = _segment_and_embed("lge", lge.array, sp, opts, timings, "lge",
                                              geometry=lge.ijk_to_ras)
            info["segmentation"]["lge"] = "model lge"
        step("clinical indices (LGE)")
        feats.update(I.lge_indices(lge_seg, lge.spacing))
        if opts["radiomics"]:
            step("radiomics (LGE)")
            t0 = time.perf_counter()
            feats.update(R.region_features(lge.array, lge_seg, lge.ijk_to_ras, R.LGE_REGIONS, "lge",
                                           opts["radiomics_params"]))
            timings["radiomics_lge"] = time.perf_counter() - t0
        if opts["deep"]:
            feats.update(dict(zip(deep.embedding_names("lge", len(vec)), vec.tolist())))
        info.setdefault("segmentations", {})["lge"] = lge_seg
    if ed is None and lge is None:
        raise CMRRiskError("no image: give ED and ES frames, a 4D cine or an LGE stack.")
    progress.report(1, 1, "image features done")
    return {k: (None if v is None or (isinstance(v, float) and not math.isfinite(v)) else v)
            for k, v in feats.items()}


def subject_features(row: dict, options: dict | None = None) -> tuple[dict, dict]:
    """Features of one manifest row (paths absolute). Returns (features, info)."""
    opts = dict(DEFAULT_OPTIONS, **(options or {}))
    timings: dict = {}
    study = Study.from_row(row, device=opts["device"], timings=timings)
    info: dict = {"segmentation": {}}
    if study.phases:
        info["ed_phase"], info["es_phase"] = study.phases["ed_phase"], study.phases["es_phase"]
        info["segmentation"] = dict(study.phases["segmentation"])
    feats = image_features(study, opts, timings, info)
    info.pop("segmentations", None)
    info["seconds"] = {k: round(v, 3) for k, v in timings.items()}
    return feats, info


# --------------------------------------------------------------------------------------------
# cohort level

def worker_modules(opts: dict) -> list:
    """What a subject's features import with options ``opts`` (a worker imports them before its
    first subject)."""
    return (["SimpleITK", "scipy.ndimage", "cmrrisk.features.indices"]
            + (["radiomics.featureextractor", "cmrrisk.features.radiomics"] if opts.get("radiomics") else [])
            + (["cmrrisk.features.deep"] if opts.get("deep") else []))


def _run_one(row: dict, options: dict, key: str, cache_dir: str | None) -> dict:
    t0 = time.perf_counter()
    try:
        feats, info = subject_features(row, options)
    except CMRRiskError as exc:
        return {"subject": row["subject"], "error": str(exc)}
    except Exception as exc:  # one subject's unexpected failure must not stop the cohort
        return {"subject": row["subject"], "error": f"{type(exc).__name__}: {exc}"}
    info["seconds"]["total"] = round(time.perf_counter() - t0, 3)
    rec = {"subject": row["subject"], "key": key, "features": feats, "info": info}
    if cache_dir:
        modeldir.write_json(os.path.join(cache_dir, _cache_name(row["subject"])), rec)
    return rec


def _cache_name(subject: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in subject)
    return f"{safe}-{hashlib.sha1(subject.encode()).hexdigest()[:8]}.json"


def default_cache_dir(out_csv: str) -> str:
    base = out_csv[:-4] if out_csv.lower().endswith(".csv") else out_csv
    return base + "_cache"


def compute_cohort(manifest: str | Manifest, cache_dir: str | None = None, workers: int | None = None,
                   options: dict | None = None, progress=True, subjects=None,
                   engine=None, shard=None) -> tuple[list, dict]:
    """Features of every subject: (records in manifest order, provenance dict). ``progress``:
    True (a bar), False, or a :class:`cmrrisk.progress.Progress` updated per subject (a cancel
    stops before the next subject; finished subjects stay in the cache).

    A record is ``{"subject", "features", "info"}`` or ``{"subject", "error"}``. ``engine``: a
    :class:`cmrrisk.parallel.Engine` (default: ``workers`` local workers); ``shard``: (I, N),
    only the I-th of N contiguous blocks of the manifest's rows."""
    opts = dict(DEFAULT_OPTIONS, **(options or {}))
    if engine is not None:  # the workers import what the subjects need while the manifest is read
        engine.warm(worker_modules(opts))
    man = manifest if isinstance(manifest, Manifest) else read_manifest(manifest, require_images=True)
    if opts["radiomics"]:
        from . import radiomics as R

        R.extractor(opts["radiomics_params"])  # fail early on a bad parameter file
    from ..parallel import shard_slice

    rows = [r for r in man.rows if subjects is None or r["subject"] in set(subjects)]
    rows = rows[shard_slice(len(rows), shard)]
    checksums = model_checksums()
    if engine is not None and engine.client is not None:  # workers must see the images
        engine.check_visible([r[c] for r in rows for c in r if (c in IMAGE_ROLES or c.endswith("_seg")) and r[c]],
                             "image files of the manifest")
    if cache_dir:
        os.makedirs(cache_dir, exist_ok=True)
    records: dict = {}
    todo = []
    for r in rows:
        key = subject_key(r, opts, checksums)
        path = os.path.join(cache_dir, _cache_name(r["subject"])) if cache_dir else None
        if path and os.path.isfile(path):
            try:
                rec = modeldir.read_json(path)
            except (OSError, ValueError):
                rec = None
            if rec and rec.get("key") == key:
                rec["cached"] = True
                records[r["subject"]] = rec
                continue
        todo.append((r, key))
    from ..parallel import n_workers as count_workers
    from ..parallel import run_subjects

    n_workers = count_workers(workers, len(todo)) if engine is None else engine.n_slots()
    t0 = time.perf_counter()
    records.update(run_subjects(_run_one, [(r["subject"], (r, opts, key, cache_dir)) for r, key in todo],
                                n_workers if engine is None else None, "features", progress,
                                on_crash=lambda s, exc: {"subject": s, "error": f"worker crashed: {exc}"},
                                engine=engine))
    wall = time.perf_counter() - t0
    ordered = [records[r["subject"]] for r in rows]
    failures = [{"subject": r["subject"], "error": r["error"]} for r in ordered if "error" in r]
    computed = [r for r in ordered if "features" in r and not r.get("cached")]
    from . import radiomics as R

    prov = {
        "manifest": os.path.abspath(man.path),
        "software": _versions(),
        **settings_record(opts, checksums),
        "radiomics_params_file": os.path.abspath(opts["radiomics_params"] or R.PARAMS_FILE),
        "deep_features": "encoder of the bundled segmentation model (layer down_4, 256 channels), "
                         "heart-weighted average over cells and slices; see cmrrisk/features/deep.py",
        "workers": n_workers,
        "engine": engine.describe() if engine is not None else None,
        "n_subjects": len(rows),
        "n_computed": len(computed),
        "n_cached": sum(1 for r in ordered if r.get("cached")),
        "n_failed": len(failures),
        "wall_seconds": round(wall, 2),
        "seconds_per_subject_wall": round(wall / len(computed), 3) if computed else None,
        "failures": failures,
        "subjects": {r["subject"]: r.get("info", {}) | {"cached": bool(r.get("cached"))}
                     for r in ordered if "features" in r},
    }
    return ordered, prov


def _versions() -> dict:
    v = modeldir.software_versions()
    for mod in ("radiomics", "SimpleITK", "nibabel", "pydicom"):
        try:
            m = __import__(mod)
            v[mod] = getattr(m, "__version__", "?")
        except ImportError:
            pass
    return v


def feature_columns(records: list) -> list:
    """Union of feature names in first-seen order (indices, radiomics, deep as produced)."""
    cols: dict = {}
    for r in records:
        for k in r.get("features", {}):
            cols.setdefault(k, None)
    return list(cols)


def write_features(manifest: str, out_csv: str, cache_dir: str | None = None, workers: int | None = None,
                   options: dict | None = None, progress=True, engine=None, shard=None) -> dict:
    """Compute and write FEATURES.csv (``subject``, the manifest's outcome and covariate columns,
    then features) and ``FEATURES.provenance.json`` beside it. Returns the provenance.
    ``shard`` (I, N): only the I-th block of subjects; :func:`merge_shards` joins the N outputs
    into the table of a single run."""
    man = read_manifest(manifest, require_images=True)
    if cache_dir is None:
        cache_dir = default_cache_dir(out_csv)
    records, prov = compute_cohort(man, cache_dir, workers, options, progress, engine=engine, shard=shard)
    ok = [r for r in records if "features" in r]
    if shard is not None:
        from ..parallel import shard_slice

        block = shard_slice(len(man.rows), shard)
        prov["shard"] = {"index": shard[0], "count": shard[1], "n_manifest_rows": len(man.rows),
                         "rows": [block.start, block.stop]}
    if not ok and shard is None:
        raise CMRRiskError(f"{manifest}: features failed for every subject; first error: "
                           f"{records[0].get('error') if records else 'no subjects'}")
    passthrough = [c for c in man.columns if c not in ("subject", "seg_labels") and c not in IMAGE_ROLES
                   and not c.endswith("_seg")]
    fcols = feature_columns(ok)
    clash = sorted(set(passthrough) & set(fcols))
    if clash:
        raise CMRRiskError(f"{manifest}: column(s) {', '.join(clash)} clash with feature names; rename them.")
    by_subject = {r["subject"]: r for r in man.rows}
    rows = []
    for r in ok:
        row = {"subject": r["subject"]}
        row.update({c: by_subject[r["subject"]].get(c, "") for c in passthrough})
        row.update({c: ("" if r["features"].get(c) is None else repr(float(r["features"][c])))
                    for c in fcols})
        rows.append(row)
    write_csv(out_csv, ["subject"] + passthrough + fcols, rows)
    prov["features_csv"] = os.path.abspath(out_csv)
    prov["columns"] = {"passthrough": passthrough, "n_features": len(fcols)}
    modeldir.write_json(provenance_path(out_csv), prov)
    return prov


def provenance_path(out_csv: str) -> str:
    base = out_csv[:-4] if out_csv.lower().endswith(".csv") else out_csv
    return base + ".provenance.json"


def features_for_manifest(manifest_path: str, cache_dir: str | None = None, workers: int | None = None,
                          progress=True):
    """Image features of a manifest as a pandas DataFrame indexed by ``subject`` (numeric
    columns only; failed subjects are absent and listed in ``df.attrs['failures']``). Finished
    subjects are cached in ``cache_dir`` (default: ``<manifest>_features_cache`` beside the
    manifest), so that train, predict and evaluate on the same cohort compute them once."""
    import pandas as pd

    if cache_dir is None:
        cache_dir = default_cache_dir(manifest_path[:-4] + "_features.csv"
                                      if manifest_path.lower().endswith(".csv") else manifest_path + "_features")
    records, prov = compute_cohort(manifest_path, cache_dir, workers, None, progress)
    ok = [r for r in records if "features" in r]
    df = pd.DataFrame([r["features"] for r in ok], index=pd.Index([r["subject"] for r in ok], name="subject"),
                      columns=feature_columns(ok), dtype=float)
    df.attrs["failures"] = prov["failures"]
    df.attrs["provenance"] = prov
    return df


def merge_shards(shard_csvs: list, out_csv: str) -> dict:
    """Join the features tables of ``cmrrisk features --shard I/N`` runs (all N shards of one
    manifest, with the same settings) into ``out_csv``: the table a single run writes. Each
    shard's provenance JSON must lie beside its CSV. Returns the merged provenance."""
    import csv

    shards = []
    for path in shard_csvs:
        if not os.path.isfile(path):
            raise CMRRiskError(f"{path}: no such features table.")
        pp = provenance_path(path)
        if not os.path.isfile(pp):
            raise CMRRiskError(f"{path}: its provenance {pp} is missing; merge the outputs of "
                               "`cmrrisk features --shard I/N` as they were written.")
        try:
            prov = modeldir.read_json(pp)
        except ValueError:
            raise CMRRiskError(f"{pp}: not valid JSON; rerun that shard.") from None
        if "shard" not in prov:
            raise CMRRiskError(f"{path}: not a shard (written without --shard); nothing to merge.")
        shards.append((path, prov))
    if not shards:
        raise CMRRiskError("merge-shards: give the features tables of the shards.")
    first_path, first = shards[0]
    n = first["shard"]["count"]
    setting_keys = ("models", "features_version", "options", "radiomics_params")  # see settings_record
    by_index = {}
    for path, prov in shards:
        sh = prov["shard"]
        if prov.get("manifest") != first.get("manifest") or sh["count"] != n:
            raise CMRRiskError(f"{path}: shard {sh['index']}/{sh['count']} of {prov.get('manifest')}, but "
                               f"{first_path} is a shard of {n} of {first.get('manifest')}; merge shards of one run.")
        for k in setting_keys:
            if prov.get(k) != first.get(k):
                raise CMRRiskError(f"{path}: computed with other settings ({k}) than {first_path}; rerun the "
                                   "shards with the same options.")
        if sh["index"] in by_index:
            raise CMRRiskError(f"{path}: shard {sh['index']}/{n} given twice (also {by_index[sh['index']][0]}).")
        by_index[sh["index"]] = (path, prov)
    missing = [i for i in range(1, n + 1) if i not in by_index]
    if missing:
        raise CMRRiskError(f"merge-shards: shard(s) {', '.join(f'{i}/{n}' for i in missing)} missing; give all "
                           f"{n} shards' features tables.")
    header, rows, passthrough = [], [], None
    for i in range(1, n + 1):
        path, prov = by_index[i]
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            cols = list(reader.fieldnames or [])
            part = list(reader)
        pt = prov["columns"]["passthrough"]
        if passthrough is None:
            passthrough = pt
            header = ["subject"] + pt
        elif pt != passthrough:
            raise CMRRiskError(f"{path}: its manifest columns differ from {by_index[1][0]}'s.")
        for c in cols:
            if c not in header:
                header.append(c)
        rows.extend(part)
    if not rows:
        raise CMRRiskError(f"{first.get('manifest')}: features failed for every subject of every shard; "
                           "see the shards' provenance files.")
    fcols = header[1 + len(passthrough):]
    write_csv(out_csv, header, [{c: r.get(c, "") for c in header} for r in rows])
    provs = [by_index[i][1] for i in range(1, n + 1)]
    merged = {k: v for k, v in first.items() if k not in ("shard", "wall_seconds", "seconds_per_subject_wall")}
    for k in ("n_subjects", "n_computed", "n_cached", "n_failed"):
        merged[k] = sum(p[k] for p in provs)
    merged["failures"] = [f for p in provs for f in p["failures"]]
    merged["subjects"] = {s: v for p in provs for s, v in p["subjects"].items()}
    merged["shards"] = [{"features_csv": os.path.abspath(by_index[i][0]), "wall_seconds": provs[i - 1]["wall_seconds"],
                         "engine": provs[i - 1].get("engine")} for i in range(1, n + 1)]
    merged["features_csv"] = os.path.abspath(out_csv)
    merged["columns"] = {"passthrough": passthrough, "n_features": len(fcols)}
    modeldir.write_json(provenance_path(out_csv), merged)
    return merged
