"""Segmentation speed on this machine: seconds per 10-slice 256x256 cine frame (--model cine)
or per EMIDEC LGE stack (--model lge).

Pre- and post-processing are included (Segmenter.segment on a Volume), model load is timed
separately; the model's default inference is timed, and the other setting of test-time flips
too (flips run on a window around the heart, `Segmenter.tta_window`), and plain inference with
the network as trained (batch normalisation not folded into the convolutions, i.e. without
`network.fuse_for_inference`), and plain inference with the slices run one chunk after the
other with all intra-op threads (``Segmenter.PARALLEL_SLICES`` off), alternating run by run so that all four see the same machine. One warm-up
run each, then --repeats timed runs; medians.
Writes bench/results/segment_speed_<model>.json.

    .venv/bin/python bench/bench_segment.py [--model cine|lge] [--repeats 7] [--threads N] [--device cpu]
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("CMRRISK_DATA", ROOT.parent / "shared" / "data"))


def test_frame():
    """A real ACDC frame brought to 10 x 256 x 256 (crop/pad), or a phantom if data is absent."""
    from cmrrisk.image import Volume, read_image

    path = DATA / "acdc" / "training" / "patient001" / "patient001_frame01.nii.gz"
    if path.is_file():
        vol = read_image(str(path))
        a = vol.array.astype(np.float32)
        out = np.zeros((10, 256, 256), np.float32)
        z, y, x = min(10, a.shape[0]), min(256, a.shape[1]), min(256, a.shape[2])
        out[:z, :y, :x] = a[:z, :y, :x]
        m = vol.ijk_to_ras.copy()
        return Volume(out, m, str(path)), f"{path.name} cropped/padded to 10x256x256"
    z, yy, xx = np.mgrid[0:10, 0:256, 0:256]
    r = np.hypot(yy - 128, xx - 128)
    img = np.where(r < 20, 300.0, np.where(r < 28, 90.0, 40.0)).astype(np.float32)
    return Volume(img, np.diag([1.5, 1.5, 8.0, 1.0])), "synthetic phantom 10x256x256 (no ACDC data)"


def lge_stack():
    """The first EMIDEC infarct case (PNG slices stacked, 1 mm declared), or a phantom."""
    from cmrrisk.image import Volume

    root = DATA / "emidec"
    if root.is_dir():
        from cmrrisk.datasets import list_emidec, read_emidec_case

        case = next(c for c in list_emidec(str(root)) if c.group == "infarct")
        img, _ = read_emidec_case(case)
        return Volume(img, np.eye(4), case.case), f"EMIDEC {case.case} ({img.shape[0]}x256x256)"
    z, yy, xx = np.mgrid[0:8, 0:256, 0:256]
    r = np.hypot(yy - 128, xx - 128)
    img = np.where(r < 20, 120.0, np.where(r < 28, 30.0, 60.0)).astype(np.float32)
    return Volume(img, np.eye(4)), "synthetic phantom 8x256x256 (no EMIDEC data)"


def unfused_plain(model: str, device: str):
    """A plain (no flips) segmenter whose network is the one built from the weights, without
    the inference-time fusion that Segmenter applies."""
    from cmrrisk import modeldir
    from cmrrisk.segmentation.infer import Segmenter
    from cmrrisk.segmentation.network import build_network

    seg = Segmenter.load(model, device=device, tta=False)
    _, state = modeldir.load(seg.model_dir)
    net = build_network(seg.config)
    net.load_state_dict(state)
    net = net.to(seg.device).eval()
    if seg.device.type == "cpu":
        net = net.to(memory_format=torch.channels_last)
    seg.net = net
    return seg


def main():
    from cmrrisk.modeldir import write_json

    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="cine", choices=["cine", "lge"])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=None, help="default bench/results/segment_speed_<model>.json")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from cmrrisk.segmentation.infer import Segmenter

    loads = []
    for _ in range(3):
        t0 = time.perf_counter()
        seg = Segmenter.load(args.model, device=args.device)
        loads.append(time.perf_counter() - t0)
    vol, desc = test_frame() if args.model == "cine" else lge_stack()
    out = args.out or str(ROOT / "bench" / "results" / f"segment_speed_{args.model}.json")
    other = Segmenter.load(args.model, device=args.device, tta=not seg.tta)
    unfused = unfused_plain(args.model, args.device)
    sequential = Segmenter.load(args.model, device=args.device, tta=False)
    sequential.PARALLEL_SLICES = False
    times, other_times, unfused_times, seq_times = [], [], [], []
    for model in (seg, other, unfused, sequential):  # warm-up
        model.segment(vol)
    for _ in range(args.repeats):
        for model, dst in ((seg, times), (other, other_times), (unfused, unfused_times),
                           (sequential, seq_times)):
            t0 = time.perf_counter()
            model.segment(vol)
            dst.append(time.perf_counter() - t0)
    flips, plain = (times, other_times) if seg.tta else (other_times, times)
    res = {
        "benchmark": f"{args.model} segmentation of one volume, pre/post-processing included",
        "model": args.model,
        "input": desc,
        "spacing_mm": [round(s, 4) for s in vol.spacing],
        "device": args.device,
        "torch_threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "repeats": args.repeats,
        "seconds_per_frame_median": statistics.median(times),
        "seconds_per_frame_all": [round(t, 4) for t in times],
        "test_time_flips": seg.tta,
        "seconds_per_frame_median_without_flips": statistics.median(plain),
        "seconds_per_frame_median_with_flips": statistics.median(flips),
        "seconds_per_frame_median_without_flips_unfused_network": statistics.median(unfused_times),
        "fused_over_unfused_plain": round(statistics.median(plain) / statistics.median(unfused_times), 3),
        "seconds_per_frame_median_without_flips_sequential_slices": statistics.median(seq_times),
        "parallel_over_sequential_slices_plain": round(statistics.median(plain) / statistics.median(seq_times), 3),
        "flips_window_margin_mm": Segmenter.TTA_WINDOW_MARGIN_MM,
        "model_load_seconds_median": statistics.median(loads),
        "goal_seconds_per_frame": 1.0 if args.model == "cine" else None,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    os.makedirs(os.path.dirname(out), exist_ok=True)
    write_json(str(out), res)
    print(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
