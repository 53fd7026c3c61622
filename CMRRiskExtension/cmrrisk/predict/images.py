"""Image inputs of the multi-input network: a subject's ED/ES cine frames and their segmentations
resampled onto a fixed, heart-centred grid, and the way back (for heatmaps).

Grid: ``slices`` short-axis slices (evenly spaced from the most basal to the most apical slice
that holds heart labels at ED; a slice is repeated when the stack has fewer), each ``size`` x
``size`` pixels of ``spacing`` mm, centred on the centroid of the ED heart labels (LV blood pool,
myocardium, RV). Channels: ED image, ES image (each scaled to [0, 1] between its volume's 0.5
and 99.5 percentiles), one-hot ED labels (LV, myocardium, RV), one-hot ES labels.
Segmentations come from the manifest (``cine_ed_seg`` / ``cine_es_seg``, ``seg_labels``) or,
when absent, from the bundled cine model.
"""

from __future__ import annotations

import copy
import os
from collections import OrderedDict

import numpy as np
from scipy import ndimage

from .. import labels as L
from ..errors import CMRRiskError
from ..study import Study

GRID = {"spacing": 1.5, "size": 80, "slices": 8}
CHANNELS = ["ed_image", "es_image", "ed_lv", "ed_myo", "ed_rv", "es_lv", "es_myo", "es_rv"]
#: channels of the optional LGE branch: the LGE image and one-hot myocardium (healthy + scar + MVO),
#: scar (scar + MVO) and MVO, on the same kind of grid centred on the LGE stack's own heart labels
LGE_CHANNELS = ["lge_image", "lge_myo", "lge_scar", "lge_mvo"]


def _normalise(a: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(a, [0.5, 99.5])
    return np.zeros_like(a, np.float32) if hi - lo < 1e-6 else np.clip((a - lo) / (hi - lo), 0, 1).astype(np.float32)


def load_cine_pair(row: dict):
    """(ed Volume, es Volume, ed labels, es labels, sources) of a manifest row (absolute paths):
    the row's cine read by :meth:`cmrrisk.study.Study.from_row`, frames without a label map
    segmented by the service (ES anchored to ED)."""
    from ..segmentation.service import segment_ed_es

    if not (row.get("cine_ed") and row.get("cine_es")) and not row.get("cine"):
        raise CMRRiskError(f"subject {row.get('subject')!r}: the multi-input model needs cine_ed + cine_es or cine.")
    study = Study.from_row({k: v for k, v in row.items() if k not in ("lge", "lge_seg")})
    if study.phases:  # the ED and ES phases of a 4D cine, labelled when they were found
        return study.ed, study.es, study.ed_seg, study.es_seg, dict(study.phases["segmentation"])
    r = segment_ed_es(study.ed, study.es, study.ed_seg, study.es_seg)
    return study.ed, study.es, r.ed, r.es, r.sources


def grid_geometry(ed_seg: np.ndarray, spacing_xyz, grid: dict = GRID) -> dict:
    """Where the grid lies in the original image: chosen slice indices and in-plane centre."""
    heart = ed_seg > 0
    zs = np.nonzero(heart.any(axis=(1, 2)))[0]
    if zs.size == 0:
        raise CMRRiskError("no heart labels in the ED segmentation; cannot place the image grid.")
    slices = np.rint(np.linspace(zs.min(), zs.max(), grid["slices"])).astype(int)
    cy, cx = ndimage.center_of_mass(heart)[1:]
    return {"slices": slices.tolist(), "centre_yx": [float(cy), float(cx)],
            "spacing_xy": [float(spacing_xyz[0]), float(spacing_xyz[1])], "shape": list(ed_seg.shape),
            "grid": dict(grid)}


def _sample_coords(geom: dict):
    g = geom["grid"]
    n = g["size"]
    off = (np.arange(n) - (n - 1) / 2.0) * g["spacing"]
    cy, cx = geom["centre_yx"]
    sx, sy = geom["spacing_xy"]
    yy, xx = np.meshgrid(cy + off / sy, cx + off / sx, indexing="ij")
    return yy, xx


def to_grid(array: np.ndarray, geom: dict, order: int) -> np.ndarray:
    """(Z, Y, X) -> (slices, size, size) on the grid (bilinear for images, nearest for labels)."""
    yy, xx = _sample_coords(geom)
    return np.stack([ndimage.map_coordinates(array[z].astype(np.float32), [yy, xx], order=order,
                                             mode="constant", cval=0.0) for z in geom["slices"]])


def from_grid(values: np.ndarray, geom: dict) -> np.ndarray:
    """(slices, size, size) grid values -> (Z, Y, X) on the original image (bilinear in-plane;
    zero outside the grid and on slices the grid did not use; repeated slices averaged)."""
    g = geom["grid"]
    n = g["size"]
    z_, y_, x_ = geom["shape"]
    cy, cx = geom["centre_yx"]
    sx, sy = geom["spacing_xy"]
    yy, xx = np.meshgrid(np.arange(y_), np.arange(x_), indexing="ij")
    py = (yy - cy) * sy / g["spacing"] + (n - 1) / 2.0
    px = (xx - cx) * sx / g["spacing"] + (n - 1) / 2.0
    out = np.zeros((z_, y_, x_), np.float32)
    count = np.zeros(z_, np.int32)
    for k, z in enumerate(geom["slices"]):
        out[z] += ndimage.map_coordinates(values[k].astype(np.float32), [py, px], order=1, mode="constant", cval=0.0)
        count[z] += 1
    nz = count > 0
    out[nz] /= count[nz][:, None, None]
    return out


def subject_tensor(study, grid: dict = GRID):
    """(slices, channels, size, size) float32 array and its geometry, from the ED and ES frames
    and their label maps of ``study`` (:class:`cmrrisk.study.Study`; all four required)."""
    ed, es, ed_seg, es_seg = study.ed, study.es, study.ed_seg, study.es_seg
    if ed is None or es is None or ed_seg is None or es_seg is None:
        raise CMRRiskError(f"{study.subject}: the image model needs the ED and ES frames and their label maps.")
    geom = grid_geometry(ed_seg, ed.spacing, grid)
    chans = [to_grid(_normalise(ed.array), geom, 1), to_grid(_normalise(es.array), geom, 1)]
    for seg in (ed_seg, es_seg):
        lab = to_grid(seg, geom, 0)
        chans += [(lab == v).astype(np.float32) for v in (L.LV_BLOOD_POOL, L.LV_MYOCARDIUM, L.RV_BLOOD_POOL)]
    return np.stack(chans, axis=1).astype(np.float32), geom


#: subject tensors already prepared in this process, reused while their files are unchanged:
#: cross-validation prepares the same training subjects once per fold and again for the final
#: fit (the demo: 4 times). Only rows whose segmentations come from files are kept (their
#: tensor depends on nothing else); key: the kind, every input file's path, modification time
#: and size, ``seg_labels`` and the grid. Least recently used entries go beyond CACHE_BYTES.
_CACHE: OrderedDict = OrderedDict()
CACHE_BYTES = 512 * 2 ** 20
#: columns that make up a cine row's tensor, by how the row gives its cine
CINE_KEY_COLUMNS = (("cine_ed", "cine_es", "cine_ed_seg", "cine_es_seg"), ("cine", "cine_seg"))
LGE_KEY_COLUMNS = (("lge", "lge_seg"),)


def cache_key(row: dict, kind: str, grid: dict):
    """The cache key of a row (None: not cacheable, e.g. a segmentation left to the model or
    a file that cannot be read, whose error the normal path then reports)."""
    choices = CINE_KEY_COLUMNS if kind == "cine" else LGE_KEY_COLUMNS
    cols = next((c for c in choices if row.get(c[0])), None)
    if cols is None or not all(row.get(c) for c in cols):
        return None
    files = []
    for c in cols:
        try:
            st = os.stat(row[c])
        except OSError:
            return None
        files.append((os.path.abspath(row[c]), st.st_mtime_ns, st.st_size))
    return kind, tuple(files), str(row.get("seg_labels") or ""), tuple(sorted(grid.items()))


def clear_cache():
    _CACHE.clear()


def _cached(row: dict, kind: str, grid: dict, one):
    key = cache_key(row, kind, grid)
    if key is not None and key in _CACHE:
        _CACHE.move_to_end(key)
        x, g = _CACHE[key]
        return x, copy.deepcopy(g)
    x, g = one(row)
    if key is not None and x.nbytes <= CACHE_BYTES:
        _CACHE[key] = (x, copy.deepcopy(g))
        while sum(v[0].nbytes for v in _CACHE.values()) > CACHE_BYTES:
            _CACHE.popitem(last=False)
    return x, g


def _prepare(inputs: list, one, desc: str, progress, kind: str, grid: dict):
    """Stack ``one(row) -> (tensor, geometry)`` over rows (through the cache); errors name the
    subject. ``progress``: True (a bar), False, or a :class:`cmrrisk.progress.Progress`."""
    from ..progress import as_progress

    xs, geoms = [], []
    with as_progress(progress, desc=desc, unit="subject", leave=False) as bar:
        for i, row in enumerate(inputs):
            bar.update(i, len(inputs), f"{desc}: {row.get('subject')}")
            try:
                x, g = _cached(row, kind, grid, one)
            except CMRRiskError as exc:
                raise CMRRiskError(f"subject {row.get('subject')!r}: {exc}") from exc
            xs.append(x)
            geoms.append(g)
        bar.report(len(inputs), len(inputs), desc)
    return np.stack(xs), geoms


def prepare(inputs: list, grid: dict = GRID, progress=False):
    """Cine tensors (n, slices, channels, size, size) and geometries for manifest rows."""
    def one(row):
        ed, es, s_ed, s_es, _ = load_cine_pair(row)
        return subject_tensor(Study(str(row.get("subject", "study")), ed, es, ed_seg=s_ed, es_seg=s_es), grid)

    return _prepare(inputs, one, "images", progress, "cine", grid)


def load_lge(row: dict):
    """(LGE Volume, labels, source) of a manifest row: the reference ``lge_seg`` or the bundled
    lge model's segmentation."""
    from ..image import read_image
    from ..labelmap import read_labelmap
    from ..segmentation.service import segment_frame

    if not row.get("lge"):
        raise CMRRiskError(f"subject {row.get('subject')!r}: no LGE image (column lge).")
    vol = read_image(row["lge"], allow_4d=False)
    if row.get("lge_seg"):
        return vol, read_labelmap(row["lge_seg"], vol, row.get("seg_labels", "")), "reference"
    r = segment_frame(vol, "lge")
    return vol, r.labels, r.source


def lge_tensor(vol, seg, grid: dict = GRID):
    """(slices, 4, size, size) float32 LGE tensor and its geometry."""
    geom = grid_geometry(seg, vol.spacing, grid)
    lab = to_grid(seg, geom, 0)
    chans = [to_grid(_normalise(vol.array), geom, 1),
             np.isin(lab, L.MYOCARDIAL).astype(np.float32),
             np.isin(lab, L.SCAR_WITH_MVO).astype(np.float32),
             (lab == L.MVO).astype(np.float32)]
    return np.stack(chans, axis=1).astype(np.float32), geom


def prepare_lge(inputs: list, grid: dict = GRID, progress=False):
    """LGE tensors (n, slices, 4, size, size) and geometries for manifest rows."""
    def one(row):
        vol, seg, _ = load_lge(row)
        return lge_tensor(vol, seg, grid)

    return _prepare(inputs, one, "LGE images", progress, "lge", grid)
