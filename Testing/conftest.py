"""Shared fixtures: the public data folder (tests skip without it), a real MRML scene from
slicer-core, and the bundled model."""

import os
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "bench") not in sys.path:  # bench/devmodels.py: which model is held out from what
    sys.path.insert(0, str(ROOT / "bench"))
DATA = Path(os.environ.get("CMRRISK_DATA", ROOT.parent / "shared" / "data"))
ACDC = DATA / "acdc" / "training"
SUNNYBROOK = DATA / "sunnybrook" / "dicoms"

needs_acdc = pytest.mark.skipif(not ACDC.is_dir(), reason=f"ACDC data not found at {ACDC} "
                                "(../shared/data exists on development machines and in CI only)")
needs_sunnybrook = pytest.mark.skipif(not SUNNYBROOK.is_dir(), reason=f"Sunnybrook DICOM data not "
                                      f"found at {SUNNYBROOK}")


def acdc_frame(subject: str, which: str = "ed", gt: bool = False) -> str:
    from cmrrisk.datasets import list_acdc

    s = next(s for s in list_acdc(str(ACDC)) if s.subject == subject)
    return s.frame_path(which, gt)


def validation_subjects(task: str = "cine"):
    """The validation subjects of the development split (bench/devmodels.py): never seen by the
    model trained with that split; the bundled model saw them when it was trained on all
    subjects (its config then lists none), so tests on them detect a broken model, not accuracy."""
    from devmodels import development_config, val_subjects

    return val_subjects(development_config(task))



@pytest.fixture
def scene():
    """A real MRML scene that behaves like Slicer's (docs/explanation/architecture.md)."""
    slicer = pytest.importorskip("slicer")
    from cmrrisk.mrml.scene import new_scene

    sc = new_scene()
    slicer.mrmlScene = sc
    yield sc
    sc.Clear(1)


def _import_module_file(folder: str, name: str):
    """A scripted module file imported with minimal stand-ins for the Qt-based
    ScriptedLoadableModule base classes (which slicer-core lacks). The Logic runs unchanged."""
    slicer = pytest.importorskip("slicer")
    if "slicer.ScriptedLoadableModule" not in sys.modules:
        stub = types.ModuleType("slicer.ScriptedLoadableModule")

        class _Base:
            def __init__(self, *args, **kwargs):
                pass

        for base in ("ScriptedLoadableModule", "ScriptedLoadableModuleWidget",
                     "ScriptedLoadableModuleLogic", "ScriptedLoadableModuleTest"):
            setattr(stub, base, type(base, (_Base,), {}))
        sys.modules["slicer.ScriptedLoadableModule"] = stub
        slicer.ScriptedLoadableModule = stub
    path = str(ROOT / folder)
    if path not in sys.path:
        sys.path.insert(0, path)
    import importlib

    return importlib.import_module(name)


@pytest.fixture(scope="session")
def segment_module():
    """The real CMRRiskSegment.py (see _import_module_file)."""
    return _import_module_file("CMRRiskSegment", "CMRRiskSegment")


@pytest.fixture(scope="session")
def predict_module():
    """The real CMRRiskPredict.py (see _import_module_file)."""
    return _import_module_file("CMRRiskPredict", "CMRRiskPredict")


@pytest.fixture(scope="session")
def segmenter():
    from cmrrisk.segmentation.infer import Segmenter

    return Segmenter.load("cine")
