"""The sample study: one synthetic subject (ED and ES cine frames, LGE, reference segmentations)
made on this computer by the project's generator (``cmrrisk.synthetic``, seed fixed), so a new
user has something to try the modules on and the self-tests have a known study, with no
download. Inside Slicer it is registered with the SampleData module (category "Cardiac").
"""

from __future__ import annotations

import csv
import os
import tempfile

#: seed of the sample study: the same arrays on every computer
SEED = 7
NAME = "CMRRisk synthetic study"
#: image roles of the sample study, in the order they are added to the scene
ROLES = ("cine_ed", "cine_es", "lge")


def default_folder() -> str:
    return os.path.join(tempfile.gettempdir(), "CMRRiskSampleStudy")


def make_sample_study(folder: str | None = None, seed: int = SEED) -> dict:
    """Generate the sample study under ``folder`` (once; an existing one is reused) and return
    ``{"manifest": path, "subject": id, role: image path, role + "_seg": label path,
    "covariates": {age, sex, diabetes}, "time", "event"}``."""
    from .. import synthetic

    folder = os.path.abspath(folder or default_folder())
    manifest = os.path.join(folder, "manifest.csv")
    if not os.path.isfile(manifest):
        manifest = synthetic.generate_cohort(folder, n=1, seed=seed, progress=False)
    with open(manifest, newline="") as f:
        row = next(csv.DictReader(f))
    out = {"manifest": manifest, "subject": row["subject"],
           "covariates": {k: row[k] for k in ("age", "sex", "diabetes") if k in row},
           "time": float(row["time"]), "event": int(float(row["event"]))}
    for role in ROLES:
        for key in (role, f"{role}_seg"):
            if row.get(key):
                out[key] = os.path.join(folder, row[key])
    return out


def load_sample_study(scene, folder: str | None = None, segmentations: bool = True) -> dict:
    """Add the sample study to ``scene``: ``{role: volume node}`` for cine_ed, cine_es and lge
    and, with ``segmentations``, ``{role + "_seg": segmentation node}`` of the generator's
    reference labels (segments named as CMRRisk names them); ``"study"`` has the files."""
    from .. import labels as L
    from ..image import read_image
    from .bridge import labels_to_segmentation, volume_to_node

    study = make_sample_study(folder)
    nodes = {"study": study}
    for role in ROLES:
        vol = read_image(study[role])
        nodes[role] = volume_to_node(scene, vol, f"{study['subject']} {role}")
        if segmentations and f"{role}_seg" in study:
            lab = read_image(study[f"{role}_seg"]).array.astype("uint8")
            nodes[f"{role}_seg"] = labels_to_segmentation(
                scene, lab, nodes[role], f"{study['subject']} {role} reference segmentation",
                structures=L.LGE_LABELS if role == "lge" else L.CINE_LABELS)
    return nodes


def register_sample_data(thumbnail: str | None = None) -> bool:
    """Register the sample study with Slicer's SampleData module (inside Slicer; False where the
    module is absent). Choosing it generates the study on first use and loads it."""
    try:
        import SampleData
        import slicer
    except ImportError:
        return False

    def load(_source=None):
        return list(n for k, n in load_sample_study(slicer.mrmlScene).items() if k != "study")

    SampleData.SampleDataLogic.registerCustomSampleDataSource(
        category="Cardiac", sampleName=NAME, thumbnailFileName=thumbnail,
        uris=[], fileNames=[], nodeNames=[], customDownloader=load)
    return True
