"""Inference: a loaded segmentation model applied to 3D frames and 4D cines."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from .. import labels as L
from .. import modeldir
from ..errors import Cancelled, CMRRiskError  # noqa: F401  (Cancelled: raised here, re-exported)
from ..image import Volume
from ..progress import Progress, as_progress
from ..metrics import ed_es_phases
from .network import build_network, fuse_for_inference
from .postprocess import postprocess
from .preprocess import channel_argmax, pad_to_multiple, prepare_frame, resample_slices, stack_neighbours


def _chunked_forward(net, x: torch.Tensor, chunk: int) -> list:
    return [net(x[i:i + chunk]).float() for i in range(0, x.shape[0], chunk)]


_POOL: dict = {}


def _parallel_forward(net, x: torch.Tensor, n: int, chunk: int) -> torch.Tensor:
    """``net`` over the slices of ``x`` split into ``n`` parts run by ``n`` threads with one
    intra-op thread each (see :attr:`Segmenter.PARALLEL_SLICES`)."""
    from concurrent.futures import ThreadPoolExecutor

    pool = _POOL.get(n)
    if pool is None:
        pool = _POOL[n] = ThreadPoolExecutor(n, thread_name_prefix="cmrrisk-slices")
    parts = torch.tensor_split(x, n)
    # autograd modes are per thread: the workers run in the caller's
    inference, grad = torch.is_inference_mode_enabled(), torch.is_grad_enabled()

    def run(part):
        with torch.inference_mode(inference), torch.set_grad_enabled(grad):
            return _chunked_forward(net, part, chunk)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        outs = list(pool.map(run, parts))
    finally:
        torch.set_num_threads(threads)
    return torch.cat([o for part in outs for o in part])


def pick_device(device: str | None) -> torch.device:
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise CMRRiskError("--device cuda: no CUDA GPU is available to PyTorch here; use --device cpu.")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise CMRRiskError(f"device {device!r}: use cpu or cuda.")
    return torch.device(device)


def default_tta(config: dict) -> bool:
    """A model's default for test-time flips (its config's ``inference.test_time_flips``)."""
    return bool((config.get("inference") or {}).get("test_time_flips", False))


#: slice order of each task's training data (ACDC cine stacks run base to apex, EMIDEC LGE
#: stacks apex to base); a model config's ``preprocessing.slice_order`` overrides it
TRAINING_SLICE_ORDER = {"cine": "base_first", "lge": "apex_first"}

#: a stack is taken to be in the other order when the Spearman correlation between slice index
#: and LV area (blood pool + wall) points the other way by more than this (see
#: :func:`slice_order_score`; measured on ACDC and EMIDEC in bench/results/slice_order.json)
SLICE_ORDER_MARGIN = 0.2


#: the direction of the LV long axis from base to apex in RAS coordinates, roughly: the apex
#: points to the patient's left (-R), anterior (+A) and inferior (-S)
LONG_AXIS_RAS = np.array([-1.0, 1.0, -1.0]) / np.sqrt(3.0)
#: a slice normal within this cosine of a scanner axis carries no usable orientation: a true
#: short-axis plane is double-oblique, while headers written without the scanner's orientation
#: (ACDC's NIfTI, the synthetic cohort: diag(-s, -s, dz)) have axis-aligned slices
AXIS_ALIGNED_COS = 0.99
#: |cosine| between the slice normal and :data:`LONG_AXIS_RAS` needed to read the slice order
#: from the geometry (the two Sunnybrook GE cines: 0.96 and 0.98)
GEOMETRY_MIN_COS = 0.5


def slice_order_from_geometry(ijk_to_ras) -> str | None:
    """The slice order of a short-axis stack read from its geometry: ``"base_first"`` when the
    slice index runs toward the apex (:data:`LONG_AXIS_RAS`), ``"apex_first"`` when it runs
    toward the base, None when the geometry cannot tell (no matrix, a slice normal along a
    scanner axis - see :data:`AXIS_ALIGNED_COS` - or one too far from the long axis)."""
    if ijk_to_ras is None:
        return None
    m = np.asarray(ijk_to_ras, dtype=float)
    if m.shape[0] < 3 or m.shape[1] < 3:
        return None
    k = m[:3, 2]
    n = float(np.linalg.norm(k))
    if not np.isfinite(n) or n == 0:
        return None
    k = k / n
    if float(np.abs(k).max()) >= AXIS_ALIGNED_COS:
        return None
    c = float(k @ LONG_AXIS_RAS)
    if abs(c) < GEOMETRY_MIN_COS:
        return None
    return "base_first" if c > 0 else "apex_first"


def slice_order_score(labels: np.ndarray, slice_order: str) -> float:
    """How strongly the LV of a (Z, H, W) label map follows ``slice_order``: the Spearman
    correlation between slice index and LV area (blood pool + myocardium + scar + MVO),
    signed so that +1 is a stack in ``slice_order`` (the LV shrinks toward the apex) and -1 the
    reverse; 0 when fewer than three slices hold LV."""
    from scipy.stats import spearmanr

    area = np.array([np.isin(sl, [L.LV_BLOOD_POOL] + list(L.MYOCARDIAL)).sum() for sl in labels], float)
    if (area > 0).sum() < 3 or area.std() == 0:
        return 0.0
    rho = float(spearmanr(np.arange(len(area)), area).correlation)
    return rho if slice_order == "apex_first" else -rho


@dataclass(frozen=True)
class FramePrediction:
    """What :meth:`Segmenter.predict_frame_detailed` returns: the ``labels`` (Z, H, W) uint8,
    whether the stack was read ``reversed`` for the network, what decided it (``order_source``:
    "geometry", "labels", "caller" or "unchecked", see :meth:`Segmenter.predict_frame`) and the
    heart ``window`` (y0, y1, x0, x1 of the padded network grid) of the pass that produced the
    labels, None when it saw the whole image."""
    labels: np.ndarray
    reversed: bool = False
    order_source: str = "unchecked"
    window: tuple | None = None


@dataclass(frozen=True)
class VolumeSegmentation:
    """What :meth:`Segmenter.segment_detailed` returns: the label ``volume`` (the input's
    geometry), the slice-order decision (``reversed``, ``order_source``; for a 4D cine the one
    decision that held for every phase) and, for a 4D cine, the ED and ES phase indices."""
    volume: Volume
    reversed: bool = False
    order_source: str = "unchecked"
    ed_phase: int | None = None
    es_phase: int | None = None


class Segmenter:
    """A segmentation model ready for inference.

    >>> seg = Segmenter.load("cine")            # bundled model, checksums verified
    >>> labels = seg.segment(volume)             # Volume -> Volume of uint8 labels
    """

    def __init__(self, net: torch.nn.Module, config: dict, model_dir: str, device="cpu",
                 tta: bool | None = None):
        self.config = config
        self.tta = default_tta(config) if tta is None else bool(tta)
        self.model_dir = model_dir
        self.device = pick_device(device) if not isinstance(device, torch.device) else device
        # batch norm folded into the convolutions etc. (same output to float rounding)
        self.net = fuse_for_inference(net.to(self.device).eval())
        if self.device.type == "cpu":
            self.net = self.net.to(memory_format=torch.channels_last)
        pre = config["preprocessing"]
        self.target_spacing = float(pre["target_spacing"])
        self.context = int(pre.get("context", 1))
        self.structures = tuple(int(v) for v in config["labels"].values())
        self.label_values = np.array([0] + list(self.structures), dtype=np.uint8)
        self.load_seconds = 0.0
        #: the slice order of the training stacks, and whether inputs in the other order are
        #: detected and reversed for the network (see :meth:`predict_frame`)
        self.slice_order = pre.get("slice_order") or TRAINING_SLICE_ORDER.get(config.get("task"))
        self.check_slice_order = self.slice_order is not None

    @classmethod
    def load(cls, model: str = "cine", device: str | None = "cpu", tta: bool | None = None) -> "Segmenter":
        """Load a bundled model (name) or a model folder; ``tta``: average over in-plane flips
        (None: the model's default, ``inference.test_time_flips`` in its config)."""
        t0 = time.perf_counter()
        path = modeldir.resolve(model)
        config, state = modeldir.load(path)
        net = build_network(config)
        net.load_state_dict(state)
        obj = cls(net, config, path, device, tta)
        obj.load_seconds = time.perf_counter() - t0
        return obj

    @property
    def name(self) -> str:
        return self.config.get("name", self.model_dir)

    #: slices per network call on the CPU: small batches stay in cache (measured here: 2 slices
    #: at a time ran a 10 x 272 x 272 frame in 0.51 s, all 10 at once in 0.91 s)
    CPU_CHUNK = 2

    #: on the CPU with n > 1 intra-op threads, the slices are split into n parts that n Python
    #: threads run at the same time, each with one intra-op thread (the convolutions release
    #: the GIL): on 2 cores the network then took 0.79 times as long as one pass with 2
    #: intra-op threads (10 x 3 x 272 x 272, interleaved, 7 runs each), and the scores are
    #: those of a one-thread run bit for bit, whatever the number of threads (a slice's scores
    #: do not depend on the batch it is in; tested). Not while forward hooks are registered
    #: (:class:`cmrrisk.features.deep.capture_encoder` collects chunks in order).
    PARALLEL_SLICES = True

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.device.type != "cpu":
            return self.net(x).float()
        x = x.contiguous(memory_format=torch.channels_last)
        n = min(torch.get_num_threads(), x.shape[0])
        if self.PARALLEL_SLICES and n > 1 and not self._hooked():
            return _parallel_forward(self.net, x, n, self.CPU_CHUNK)
        return torch.cat(_chunked_forward(self.net, x, self.CPU_CHUNK))

    def _hooked(self) -> bool:
        cached = getattr(self, "_modules_of", None)
        if cached is None or cached[0] is not self.net:  # (re)built when the network is replaced
            cached = self._modules_of = (self.net, list(self.net.modules()))
        return any(m._forward_hooks or m._forward_pre_hooks for m in cached[1])

    def predict_frame(self, arr: np.ndarray, spacing_xy, post: bool = True,
                      prior: np.ndarray | None = None, reverse: bool | None = None,
                      window_from: np.ndarray | None = None, geometry=None) -> np.ndarray:
        """The labels of :meth:`predict_frame_detailed` (same arguments)."""
        return self.predict_frame_detailed(arr, spacing_xy, post, prior, reverse, window_from, geometry).labels

    def predict_frame_detailed(self, arr: np.ndarray, spacing_xy, post: bool = True,
                               prior: np.ndarray | None = None, reverse: bool | None = None,
                               window_from: np.ndarray | None = None, geometry=None) -> FramePrediction:
        """Segment one (Z, H, W) frame with in-plane spacing (x, y) mm -> (Z, H, W) uint8 labels.

        Slice order: the 2.5D network reads each slice with its neighbours and was trained on
        stacks in one order (``self.slice_order``: cine base first, LGE apex first). With
        ``reverse=None`` (and ``self.check_slice_order``) a stack given the other way round is
        detected and segmented reversed, the labels put back in the input's order. The order is
        read from ``geometry`` (the frame's 4x4 ijk-to-RAS matrix) when that carries a real
        short-axis orientation (:func:`slice_order_from_geometry`), else from the LV area along
        the stack (:func:`slice_order_score` below ``-SLICE_ORDER_MARGIN``; judged on ``prior``
        when given, else on a first segmentation); ``reverse=True`` / ``False`` forces the
        choice. The result tells what was done (``reversed``) and why (``order_source``).

        Heart window: with ``window_from`` (labels of another frame of the same stack, same
        shape) or else ``prior``, the network sees only :meth:`heart_window` around that heart
        (:data:`HEART_WINDOW_MARGIN_MM`; the result's ``window`` is the window used, None for the
        whole image).
        """
        arr = np.asarray(arr)
        if window_from is not None and np.shape(window_from) != arr.shape:
            raise CMRRiskError(f"labels of shape {np.shape(window_from)} given to place the heart do not "
                               f"match the frame's {arr.shape}; they must come from a frame of the "
                               "same cine.")
        window = prior if window_from is None else window_from
        if reverse is None and self.check_slice_order:
            reverse = self.geometry_reverse(geometry)
            source = "labels" if reverse is None else "geometry"
        else:
            source = "caller" if reverse is not None else "unchecked"
        seen: dict = {}
        if reverse is None:
            if prior is not None:
                reverse = self.reads_reversed(prior)
            else:
                seg = self._predict(arr, spacing_xy, post, None, window, seen)
                if not self.reads_reversed(seg):
                    return FramePrediction(seg, False, source, seen.get("window"))
                reverse = True
        if not reverse:
            seg = self._predict(arr, spacing_xy, post, prior, window, seen)
            return FramePrediction(seg, False, source, seen.get("window"))

        def flipped(a):
            return None if a is None else np.ascontiguousarray(np.asarray(a)[::-1])

        seg = np.ascontiguousarray(self._predict(flipped(arr), spacing_xy, post, flipped(prior),
                                                 flipped(window), seen)[::-1])
        return FramePrediction(seg, True, source, seen.get("window"))

    def geometry_reverse(self, ijk_to_ras) -> bool | None:
        """Whether a stack with this geometry must be reversed for the network (its slice order,
        :func:`slice_order_from_geometry`, is not the training order); None when the geometry
        cannot tell or the check is off."""
        order = slice_order_from_geometry(ijk_to_ras) if self.check_slice_order else None
        return None if order is None else order != self.slice_order

    def reads_reversed(self, labels: np.ndarray) -> bool:
        """Whether a stack whose labels are ``labels`` runs the other way than the training
        stacks (the slice-order check of :meth:`predict_frame`)."""
        return bool(self.check_slice_order and labels.shape[0] >= 3
                    and slice_order_score(labels, self.slice_order) < -SLICE_ORDER_MARGIN)

    @torch.inference_mode()
    def _predict(self, arr: np.ndarray, spacing_xy, post: bool = True,
                 prior: np.ndarray | None = None, window_labels: np.ndarray | None = None,
                 seen: dict | None = None) -> np.ndarray:
        """One segmentation of the stack in the order given.

        With ``self.tta`` the softmax of the image and of its two in-plane flips is averaged
        (the flips only around the heart, :meth:`tta_window`; measured effect:
        bench/results/acdc_validation.json).
        ``prior``: the labels of the same slices at end-diastole (same shape), when this frame
        is end-systole of the same cine: LV blood pool and myocardium are then allowed only
        within the end-diastolic LV (blood pool + myocardium) dilated by
        :data:`ES_PRIOR_MARGIN_MM` in-plane (the ventricle contracts inward; both frames come
        from the same breath-hold), so a small systolic LV cannot be mistaken for the RV; and
        when more than :data:`ES_RV_CONFUSION_FRACTION` of the ES LV blood pool then lies on the
        ED RV blood pool, the LV blood pool is refused there too (see :meth:`_apply_es_prior`).
        ``window_labels``: labels (same shape) of another frame of the same stack; the network
        then sees only :meth:`heart_window` around them (put in ``seen["window"]``)."""
        z, h, w = arr.shape
        t = prepare_frame(arr, spacing_xy, self.target_spacing)
        x = stack_neighbours(t, self.context)
        x, (top, left, hh, ww) = pad_to_multiple(x, 16)
        x = x.to(self.device)
        valid = (top, left, hh, ww)
        win = None
        if window_labels is not None and np.shape(window_labels) == arr.shape:
            win = self.heart_window(window_labels, valid, x.shape[-2:])
        if seen is not None:
            seen["window"] = win
        if win is None:
            logits = self._scores(x, valid)
        else:
            y0, y1, x0, x1 = win
            sub_valid = (max(top - y0, 0), max(left - x0, 0),
                         min(top + hh, y1) - max(top, y0), min(left + ww, x1) - max(left, x0))
            sub = self._scores(x[:, :, y0:y1, x0:x1], sub_valid)
            # outside the window: background (probabilities 1 / 0 with flips; otherwise logits
            # that no foreground class can win after interpolation)
            logits = sub.new_zeros((x.shape[0], sub.shape[1]) + tuple(x.shape[-2:]))
            if self.tta:
                logits[:, 0] = 1.0
            else:
                logits[:, 1:] = -1e4
            logits[:, :, y0:y1, x0:x1] = sub
        logits = logits[:, :, top:top + hh, left:left + ww]
        logits = resample_slices(logits, (h, w))
        if prior is not None:
            logits = self._apply_es_prior(logits, prior, spacing_xy)
        idx = channel_argmax(logits).cpu().numpy()
        seg = self.label_values[idx]
        if post:
            seg = postprocess(seg, self.structures)
        return seg

    #: test-time flips are run on the heart's bounding box (union over the slices of every
    #: non-background label of the unflipped pass) widened by this margin (mm) on each side,
    #: not on the whole field of view: the flips then cost a fraction of a pass. None: flip the
    #: whole image. Agreement with whole-image flips: bench/results/tta_window.json.
    TTA_WINDOW_MARGIN_MM: float | None = 30.0

    def tta_window(self, labels: torch.Tensor, valid: tuple[int, int, int, int]):
        """The window (y0, y1, x0, x1) of the padded network grid that the flipped passes see:
        the bounding box of ``labels`` (N, H, W; argmax of the unflipped pass, 0 = background)
        inside ``valid`` (top, left, height, width), widened by :data:`TTA_WINDOW_MARGIN_MM` and
        grown to multiples of 16 within the grid. None when nothing was found (no flips needed
        to place the heart: the unflipped pass stands); the whole grid when
        ``TTA_WINDOW_MARGIN_MM`` is None."""
        _, gh, gw = labels.shape
        if self.TTA_WINDOW_MARGIN_MM is None:
            return 0, gh, 0, gw
        top, left, hh, ww = valid
        fg = labels[:, top:top + hh, left:left + ww] != 0
        if not bool(fg.any()):
            return None
        rows = torch.nonzero(fg.any(0).any(1)).flatten()
        cols = torch.nonzero(fg.any(0).any(0)).flatten()
        return self._grow_window((top + int(rows[0]), top + int(rows[-1]) + 1,
                                  left + int(cols[0]), left + int(cols[-1]) + 1),
                                 (gh, gw), self.TTA_WINDOW_MARGIN_MM)

    def _grow_window(self, box, grid, margin_mm: float, align: bool = False):
        """A box (y0, y1, x0, x1) of the network grid (size ``grid`` = (GH, GW), multiples of
        16) widened by ``margin_mm`` on each side and grown to multiples of 16 inside the grid;
        with ``align`` its edges lie on multiples of 16 (the network's pooling grid)."""
        m = int(np.ceil(margin_mm / self.target_spacing))

        def span(lo, hi, size):
            if align:
                return max(0, (lo - m) // 16 * 16), min(size, -(-(hi + m) // 16) * 16)
            lo, hi = max(0, lo - m), min(size, hi + m)
            need = -(-(hi - lo) // 16) * 16
            if need >= size:
                return 0, size
            grow = need - (hi - lo)
            lo = max(0, lo - grow // 2)
            hi = lo + need
            if hi > size:
                lo, hi = size - need, size
            return lo, hi

        y0, y1 = span(box[0], box[1], grid[0])
        x0, x1 = span(box[2], box[3], grid[1])
        return y0, y1, x0, x1

    #: a frame segmented after another frame of the same cine and slice stack (the ES frame
    #: anchored to ED, every phase of a 4D cine after the first) is run through the network only
    #: on that frame's heart (bounding box of its labels, union over slices) widened by this
    #: margin (mm) on each side; outside it the frame is background. None: always the whole
    #: image. Agreement with whole-image inference: bench/results/heart_window.json.
    HEART_WINDOW_MARGIN_MM: float | None = 30.0

    def heart_window(self, labels: np.ndarray, valid: tuple[int, int, int, int], grid):
        """The window (y0, y1, x0, x1) of the padded network grid (size ``grid``) for a frame
        whose heart is known from ``labels`` (Z, H, W) of another frame of the same stack (image
        grid): their bounding box mapped to the resampled grid, widened by
        :data:`HEART_WINDOW_MARGIN_MM`, with edges on multiples of 16 (the network's pooling
        grid: a window that starts elsewhere changed 3 % of the heart's voxels on ACDC, this
        one 0.5 %). None: the whole image (no labels, the margin is None, or the window would
        cover the whole grid)."""
        if self.HEART_WINDOW_MARGIN_MM is None:
            return None
        fg = np.asarray(labels) != 0
        if fg.ndim != 3 or not fg.any():
            return None
        rows = np.flatnonzero(fg.any(axis=(0, 2)))
        cols = np.flatnonzero(fg.any(axis=(0, 1)))
        h, w = fg.shape[1:]
        top, left, hh, ww = valid
        fy, fx = hh / h, ww / w
        box = (top + int(np.floor(rows[0] * fy)), top + int(np.ceil((rows[-1] + 1) * fy)),
               left + int(np.floor(cols[0] * fx)), left + int(np.ceil((cols[-1] + 1) * fx)))
        # the window starts and ends on the network's 16-pixel pooling grid, so that every
        # pixel inside it is pooled with the same neighbours as in a whole-image pass
        win = self._grow_window(box, tuple(grid), self.HEART_WINDOW_MARGIN_MM, align=True)
        return None if win == (0, grid[0], 0, grid[1]) else win

    def _scores(self, x: torch.Tensor, valid) -> torch.Tensor:
        """Network scores of a padded grid: softmax averaged over flips with ``self.tta``,
        logits otherwise."""
        if self.tta:
            return self._flip_average(x, valid)
        return self._forward(x)

    def _flip_average(self, x: torch.Tensor, valid) -> torch.Tensor:
        """Softmax of the unflipped pass, averaged with the two in-plane flips inside
        :meth:`tta_window` (outside it the unflipped pass stands)."""
        prob = self._forward(x).softmax(1)
        win = self.tta_window(channel_argmax(prob), valid)
        if win is None:
            return prob
        y0, y1, x0, x1 = win
        xc = x[:, :, y0:y1, x0:x1]
        acc = prob[:, :, y0:y1, x0:x1].clone()
        for dim in (2, 3):
            acc += self._forward(xc.flip(dim)).softmax(1).flip(dim)
        prob[:, :, y0:y1, x0:x1] = acc / 3.0
        return prob

    #: how far (mm, in-plane) the end-systolic LV may extend beyond the end-diastolic LV wall
    ES_PRIOR_MARGIN_MM = 10.0
    #: above this share of the end-systolic LV blood pool lying on the end-diastolic RV blood
    #: pool, the ES LV is taken to have swallowed part of the RV (seen in small hyperdynamic
    #: hearts) and the LV blood pool is refused on the ED RV. In the 100 ACDC subjects (training set)
    #: the share was at most 0.10 (reference labels: 0.10, same subject); in the three synthetic
    #: hearts that failed it was 0.26-0.40 (one-off measurement, not in bench/; the effect on
    #: Dice and LVEF is measured by bench/eval_es_anchor.py).
    ES_RV_CONFUSION_FRACTION = 0.2

    def _apply_es_prior(self, scores: torch.Tensor, prior: np.ndarray, spacing_xy) -> torch.Tensor:
        from scipy import ndimage

        prior = np.asarray(prior)
        if prior.shape != (scores.shape[0],) + tuple(scores.shape[2:]):
            raise CMRRiskError(f"end-diastolic labels of shape {prior.shape} do not match the "
                               f"end-systolic frame's {(scores.shape[0],) + tuple(scores.shape[2:])}; "
                               "ED and ES must be frames of the same cine.")
        lv_classes = [i for i, v in enumerate(self.label_values)
                      if v == L.LV_BLOOD_POOL or v in L.MYOCARDIAL]
        sx, sy = float(spacing_xy[0]), float(spacing_xy[1])
        ry = max(1, int(round(self.ES_PRIOR_MARGIN_MM / sy)))
        rx = max(1, int(round(self.ES_PRIOR_MARGIN_MM / sx)))
        yy, xx = np.ogrid[-ry:ry + 1, -rx:rx + 1]
        disk = (yy / ry) ** 2 + (xx / rx) ** 2 <= 1.0
        lv = np.isin(prior, [L.LV_BLOOD_POOL] + list(L.MYOCARDIAL))
        if not lv.any():
            return scores  # nothing to anchor to: leave the frame as it is
        allowed = np.stack([ndimage.binary_dilation(m, disk) if m.any() else m for m in lv])
        out = scores.clone()
        block = torch.from_numpy(~allowed).to(out.device)
        low = torch.finfo(out.dtype).min
        for c in lv_classes:
            out[:, c][block] = low
        # a second check, only where the first left the ES LV blood pool largely on the ED RV:
        # the LV cavity does not move into the RV in systole (in-plane), so such a share means
        # the RV was read as LV; refuse the LV blood pool on the ED RV blood pool then
        rv = torch.from_numpy(prior == L.RV_BLOOD_POOL).to(out.device)
        bp = [i for i, v in enumerate(self.label_values) if v == L.LV_BLOOD_POOL]
        if bp and bool(rv.any()):
            es_lv = channel_argmax(out) == bp[0]
            n_lv = int(es_lv.sum())
            if n_lv and int((es_lv & rv).sum()) > self.ES_RV_CONFUSION_FRACTION * n_lv:
                out[:, bp[0]][rv] = low
        return out

    def segment_phases(self, frames: np.ndarray, spacing_xyz, progress=None,
                       ed_es: tuple[int, int] | None = None, geometry=None):
        """Every phase of a cine (T, Z, H, W): ED is the phase of largest LV blood-pool volume,
        ES the smallest; the ES phase is then segmented again anchored to ED. With ``ed_es``
        (known phase indices) ED is segmented first and ES directly anchored to it. Every phase
        after the first is segmented on the first phase's heart window (:meth:`heart_window`).
        One slice-order decision holds for every phase: from ``geometry`` (ijk-to-RAS) when it
        tells, else judged on the first phase (see :meth:`predict_frame`).
        ``progress``: a :class:`cmrrisk.progress.Progress`, updated before each phase (a cancel
        raises :class:`Cancelled` there).
        Returns (labels (T, Z, H, W), ED index, ES index); :meth:`segment_detailed` also tells
        the slice-order decision."""
        out, ed_t, es_t, _, _ = self._segment_phases(frames, spacing_xyz, progress, ed_es, geometry)
        return out, ed_t, es_t

    def _segment_phases(self, frames, spacing_xyz, progress, ed_es, geometry):
        """:meth:`segment_phases` -> (labels, ED, ES, reversed, order source)."""
        progress = as_progress(progress)
        n = frames.shape[0]
        out = np.zeros(frames.shape, dtype=np.uint8)
        order = list(range(n))
        if ed_es is not None:
            order = [ed_es[0]] + [t for t in order if t != ed_es[0]]
        reverse = None
        source = "unchecked"
        for k, t in enumerate(order):
            progress.update(k, n, f"phase {k + 1}/{n}")
            prior = out[ed_es[0]] if ed_es is not None and t == ed_es[1] and t != ed_es[0] else None
            first = out[order[0]] if k > 0 else None  # the heart of the first phase: its window
            got = self.predict_frame_detailed(frames[t], spacing_xyz[:2], prior=prior, reverse=reverse,
                                              window_from=first, geometry=geometry)
            out[t] = got.labels
            if k == 0:
                reverse, source = got.reversed, got.order_source
        if ed_es is None:
            ed_t, es_t = ed_es_phases(out, spacing_xyz)
            if ed_t != es_t:
                out[es_t] = self.predict_frame_detailed(frames[es_t], spacing_xyz[:2], prior=out[ed_t],
                                                        reverse=reverse).labels
        else:
            ed_t, es_t = ed_es
        progress.report(n, n, f"{n} phase(s) segmented")
        return out, int(ed_t), int(es_t), bool(reverse), source

    def segment(self, vol: Volume, progress: Progress | None = None, prior: np.ndarray | None = None) -> Volume:
        """The label volume of :meth:`segment_detailed` (same arguments)."""
        return self.segment_detailed(vol, progress, prior).volume

    def segment_detailed(self, vol: Volume, progress: Progress | None = None,
                         prior: np.ndarray | None = None,
                         ed_es: tuple[int, int] | None = None) -> VolumeSegmentation:
        """Segment a 3D frame or every phase of a 4D cine (its ES phase anchored to ED, see
        :meth:`segment_phases`; ``ed_es``: the known ED and ES phase indices), the slice order
        read from the volume's geometry when it tells; ``prior``: for the ES frame of a cine
        given as a 3D frame, the labels of its ED frame (see :meth:`predict_frame`). The
        result's volume has the input's geometry; the result also tells the slice-order decision
        (and a cine's ED and ES phases). ``progress``: a :class:`cmrrisk.progress.Progress`,
        updated before each frame (a cancel raises :class:`Cancelled` there)."""
        sx, sy, _ = vol.spacing
        if vol.is_cine:
            if prior is not None:
                raise CMRRiskError("a 4D cine is segmented with its own ED frame as the prior; "
                                   "give ED labels only with a 3D ES frame.")
            out, ed_t, es_t, rev, source = self._segment_phases(vol.array, vol.spacing, progress, ed_es,
                                                                vol.ijk_to_ras)
            return VolumeSegmentation(vol.with_array(out), rev, source, ed_t, es_t)
        if ed_es is not None:
            raise CMRRiskError("ED and ES phase indices are for a 4D cine; this is a 3D frame.")
        progress = as_progress(progress)
        progress.update(0, 1, "frame")
        got = self.predict_frame_detailed(vol.array, (sx, sy), prior=prior, geometry=vol.ijk_to_ras)
        progress.report(1, 1, "frame segmented")
        return VolumeSegmentation(vol.with_array(got.labels), got.reversed, got.order_source)
