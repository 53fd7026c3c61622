"""Python packages the modules need inside Slicer: find the missing ones and install them on
first use, after the user agrees (never at import time). torch comes through the PyTorch
extension's ``PyTorchUtils``; packages that only a Slicer extension provides (radiomics from
SlicerRadiomics) are named, not pip-installed."""

from __future__ import annotations

import importlib.util

#: import name -> the Slicer extension that provides it
FROM_EXTENSIONS = {"radiomics": "SlicerRadiomics"}


def missing(required: dict, also=("torch",)) -> list:
    """Import names of ``also`` + ``required`` (import name -> pip requirement) that are absent."""
    return [name for name in list(also) + list(required) if importlib.util.find_spec(name) is None]


def ensure(required: dict, also=("torch",)) -> bool:
    """Ask, then install what is missing; True when everything is importable afterwards."""
    import slicer

    absent = missing(required, also)
    if not absent:
        return True
    from_ext = [n for n in absent if n in FROM_EXTENSIONS]
    if from_ext:
        slicer.util.errorDisplay("Install the " + ", ".join(sorted({FROM_EXTENSIONS[n] for n in from_ext}))
                                 + " extension(s) from the Extensions Manager and restart Slicer.")
        return False
    if not slicer.util.confirmOkCancelDisplay(
            "CMRRisk needs these Python packages, which are not installed in this Slicer: "
            + ", ".join(absent) + ".\n\nInstall them now (internet connection needed)?",
            "CMRRisk: install dependencies"):
        return False
    if "torch" in absent:
        try:
            import PyTorchUtils  # from the PyTorch extension
        except ImportError:
            slicer.util.errorDisplay("Install the PyTorch extension from the Extensions Manager "
                                     "first, then restart Slicer.")
            return False
        if PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=True) is None:
            return False
    with slicer.util.WaitCursor():
        for name in absent:
            if name in required:
                slicer.util.pip_install(required[name])
    return not missing(required, also)
