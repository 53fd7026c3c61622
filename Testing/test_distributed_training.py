"""``train-segmentation`` under torchrun: two CPU processes (gloo) on a tiny ACDC-like folder;
the replicas stay identical, rank 0 writes a complete model directory, and a one-process run
resumes from the two-process checkpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PKG = os.path.join(os.path.dirname(HERE), "CMRRiskExtension")


def _tiny_acdc(root, n=2):
    import nibabel as nib

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:64, 0:64]
    for i in range(1, n + 1):
        folder = os.path.join(root, f"patient{i:03d}")
        os.makedirs(folder)
        with open(os.path.join(folder, "Info.cfg"), "w") as fh:
            fh.write("ED: 1\nES: 2\nGroup: NOR\nHeight: 170\nWeight: 70\nNbFrame: 2\n")
        for frame, r_lv in ((1, 12 + i), (2, 8 + i)):
            lab = np.zeros((64, 64, 4), np.uint8)
            d = np.hypot(yy - 32, xx - 30)
            lab[..., :][d < r_lv + 5] = 2  # myocardium (ACDC 2)
            lab[..., :][d < r_lv] = 3  # LV blood pool (ACDC 3)
            lab[..., :][(np.hypot(yy - 32, xx - 50) < 8) & (d >= r_lv + 5)] = 1  # RV (ACDC 1)
            img = (lab * 60 + rng.normal(0, 10, lab.shape)).astype(np.float32)
            aff = np.diag([1.5, 1.5, 8.0, 1.0])
            base = os.path.join(folder, f"patient{i:03d}_frame{frame:02d}")
            nib.save(nib.Nifti1Image(img, aff), base + ".nii.gz")
            nib.save(nib.Nifti1Image(lab, aff), base + "_gt.nii.gz")


def _torchrun(nproc, data, out, timeout=240):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "cmrrisk", "train-segmentation", "--data", data, "--out", out, "--all",
           "--iterations", "3", "--batch", "4", "--threads", "1"]
    env = dict(os.environ, PYTHONPATH=PKG, OMP_NUM_THREADS="1")
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


def test_two_process_gloo_training_and_resume(tmp_path):
    from cmrrisk import modeldir

    data, out = str(tmp_path / "acdc"), str(tmp_path / "model")
    _tiny_acdc(data)
    r = _torchrun(2, data, out)
    assert r.returncode == 0, r.stderr[-3000:]
    modeldir.verify(out)  # every file present with its checksum
    cfg = json.load(open(os.path.join(out, "config.json")))
    dist = cfg["training"]["distributed"]
    assert dist == {"world_size": 2, "backend": "gloo", "batch_per_process": 2, "replicas_identical": True,
                    "max_weight_difference": 0.0}
    assert cfg["training"]["iterations_done"] == 3
    log = [json.loads(line) for line in open(os.path.join(out, "training_log.jsonl"))]
    assert [rec["iteration"] for rec in log] == [3]  # one writer: rank 0
    import torch

    ck = torch.load(os.path.join(out, "checkpoint.pt"), weights_only=True)
    assert ck["iteration"] == 3 and ck["world_size"] == 2
    weights = modeldir.sha256(os.path.join(out, modeldir.WEIGHTS))
    # the same command on one process resumes from the two-process checkpoint (nothing left to do)
    r1 = _torchrun(1, data, out)
    assert r1.returncode == 0, r1.stderr[-3000:]
    assert "resumed from iteration 3" in r1.stdout
    assert modeldir.sha256(os.path.join(out, modeldir.WEIGHTS)) == weights
