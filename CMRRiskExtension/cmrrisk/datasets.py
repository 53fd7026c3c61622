"""Readers for public datasets (ACDC) used for training and evaluation."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from .errors import CMRRiskError


@dataclass
class AcdcSubject:
    subject: str
    folder: str
    group: str
    ed_frame: int
    es_frame: int
    height_cm: float | None
    weight_kg: float | None

    def frame_path(self, which: str, gt: bool = False) -> str:
        f = self.ed_frame if which == "ed" else self.es_frame
        return os.path.join(self.folder, f"{self.subject}_frame{f:02d}{'_gt' if gt else ''}.nii.gz")


def read_info_cfg(path: str) -> dict:
    info = {}
    with open(path) as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            if ":" not in line:
                raise CMRRiskError(f"{path}, line {n}: expected 'Key: value', got {line.strip()!r}.")
            k, v = line.split(":", 1)
            info[k.strip()] = v.strip()
    return info


def list_acdc(root: str) -> list[AcdcSubject]:
    """Subjects under an ACDC folder (``root`` may be the ``training`` folder or its parent)."""
    if not os.path.isdir(root):
        raise CMRRiskError(f"{root}: no such folder; give the ACDC 'training' folder.")
    if os.path.isdir(os.path.join(root, "training")):
        root = os.path.join(root, "training")
    subjects = []
    for name in sorted(os.listdir(root)):
        folder = os.path.join(root, name)
        cfg = os.path.join(folder, "Info.cfg")
        if not re.fullmatch(r"patient\d+", name) or not os.path.isfile(cfg):
            continue
        info = read_info_cfg(cfg)
        try:
            s = AcdcSubject(name, folder, info.get("Group", ""), int(info["ED"]), int(info["ES"]),
                            float(info["Height"]) if "Height" in info else None,
                            float(info["Weight"]) if "Weight" in info else None)
        except (KeyError, ValueError) as exc:
            raise CMRRiskError(f"{cfg}: missing or invalid ED/ES/Height/Weight ({exc}).") from exc
        subjects.append(s)
    if not subjects:
        raise CMRRiskError(f"{root}: no ACDC subjects (patientNNN/Info.cfg) found.")
    return subjects


def stratified_split(subjects: list[AcdcSubject], n_val: int, seed: int):
    """Split into (train, val) with ``n_val`` validation subjects spread evenly over groups."""
    import numpy as np

    rng = np.random.default_rng(seed)
    groups = sorted({s.group for s in subjects})
    by_group = {g: [s for s in subjects if s.group == g] for g in groups}
    val = []
    per = n_val // len(groups)
    rest = n_val - per * len(groups)
    for i, g in enumerate(groups):
        members = list(by_group[g])
        rng.shuffle(members)
        k = per + (1 if i < rest else 0)
        val.extend(members[:k])
    val_names = {s.subject for s in val}
    train = [s for s in subjects if s.subject not in val_names]
    return train, sorted(val, key=lambda s: s.subject)
