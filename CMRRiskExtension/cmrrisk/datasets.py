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


def stratified_split(subjects: list, n_val: int, seed: int):
    """Split into (train, val) with ``n_val`` validation subjects (objects with ``subject`` and
    ``group``) spread over groups in proportion to their size."""
    import numpy as np

    rng = np.random.default_rng(seed)
    groups = sorted({s.group for s in subjects})
    by_group = {g: [s for s in subjects if s.group == g] for g in groups}
    # proportional allocation (largest remainders), at least one per group
    sizes = {g: len(by_group[g]) for g in groups}
    exact = {g: n_val * sizes[g] / len(subjects) for g in groups}
    alloc = {g: max(1, int(exact[g])) for g in groups}
    for g in sorted(groups, key=lambda g: exact[g] - int(exact[g]), reverse=True):
        if sum(alloc.values()) >= n_val:
            break
        alloc[g] += 1
    val = []
    for g in groups:
        members = list(by_group[g])
        rng.shuffle(members)
        val.extend(members[:alloc[g]])
    val_names = {s.subject for s in val}
    train = [s for s in subjects if s.subject not in val_names]
    return train, sorted(val, key=lambda s: s.subject)


#: EMIDEC masks: 0 background, 1 LV cavity, 2 healthy myocardium, 3 infarct, 4 MVO
EMIDEC_TO_PROJECT = {0: 0, 1: 1, 2: 2, 3: 4, 4: 5}


@dataclass
class EmidecCase:
    case: str
    group: str  # "normal" or "infarct"
    images: list
    masks: list

    @property
    def subject(self) -> str:
        return self.case


def list_emidec(root: str) -> list[EmidecCase]:
    """Cases of an EMIDEC folder with ``images/`` and ``masks/`` of ``Case_{N,P}NNN_sliceSSS.png``."""
    img_dir, mask_dir = os.path.join(root, "images"), os.path.join(root, "masks")
    if not os.path.isdir(img_dir):
        raise CMRRiskError(f"{root}: no 'images' folder; give the EMIDEC folder with images/ and masks/.")
    by_case: dict = {}
    for name in sorted(os.listdir(img_dir)):
        m = re.fullmatch(r"(Case_([NP])\d+)_slice(\d+)\.png", name)
        if not m:
            continue
        by_case.setdefault(m.group(1), []).append((int(m.group(3)), name, m.group(2)))
    cases = []
    for case, items in sorted(by_case.items()):
        items.sort()
        masks = [os.path.join(mask_dir, n) for _, n, _ in items]
        cases.append(EmidecCase(case, "normal" if items[0][2] == "N" else "infarct",
                                [os.path.join(img_dir, n) for _, n, _ in items],
                                [m if os.path.isfile(m) else None for m in masks]))
    if not cases:
        raise CMRRiskError(f"{img_dir}: no Case_*_slice*.png images found.")
    return cases


def read_emidec_case(case: EmidecCase):
    """(image (Z, 256, 256) float32, labels (Z, 256, 256) uint8 in project labels or None)."""
    import numpy as np
    from PIL import Image

    from .labels import map_labels

    imgs = []
    for p in case.images:
        try:
            imgs.append(np.asarray(Image.open(p).convert("L"), dtype=np.float32))
        except Exception as exc:
            raise CMRRiskError(f"{p}: cannot read PNG ({exc}).") from exc
    shapes = {a.shape for a in imgs}
    if len(shapes) != 1:
        raise CMRRiskError(f"{case.case}: slices of different sizes {sorted(shapes)}.")
    image = np.stack(imgs)
    if any(m is None for m in case.masks):
        return image, None
    masks = np.stack([np.asarray(Image.open(p)) for p in case.masks])
    try:
        labels = map_labels(masks, EMIDEC_TO_PROJECT)
    except ValueError as exc:
        raise CMRRiskError(f"{case.case}: {exc}") from exc
    return image, labels
