"""Python packages the modules need inside Slicer: find the missing ones and install them on
first use, after the user agrees (never at import time). Each module lists its packages with
lower bounds in ``Resources/requirements.txt`` (:func:`read_requirements`); they are installed
with ``slicer.packaging.pip_ensure`` where Slicer has it (5.11 and later), with
``slicer.util.pip_install`` otherwise. torch comes only through the PyTorch extension's
``PyTorchUtils`` (never from pip, which would replace it); packages that only a Slicer extension
provides (radiomics from SlicerRadiomics) are named, not pip-installed."""

from __future__ import annotations

import importlib
import importlib.util

#: import name -> the Slicer extension that provides it
FROM_EXTENSIONS = {"radiomics": "SlicerRadiomics"}

#: torch versions the pinned monai accepts (monai 1.6.1 requires torch>=2.8.0); asked of
#: PyTorchUtils so that installing monai afterwards does not replace its torch
TORCH_REQUIREMENT = ">=2.8.0"


def read_requirements(path: str) -> dict:
    """``requirements.txt`` -> {import name: requirement}. The import name is the package name
    with ``-`` as ``_`` unless the line's comment says ``# import: NAME``."""
    import re

    out = {}
    with open(path, encoding="utf-8") as f:
        for raw in f:
            line, _, comment = raw.partition("#")
            line = line.strip()
            if not line:
                continue
            name = re.match(r"[A-Za-z0-9_.\-]+", line).group(0)
            m = re.search(r"import:\s*([A-Za-z0-9_.]+)", comment)
            out[m.group(1) if m else name.replace("-", "_").lower()] = line
    return out


def cuda_available() -> bool:
    """Whether torch is installed and sees a CUDA GPU (the device choice offers "cuda" only then)."""
    if importlib.util.find_spec("torch") is None:
        return False
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:  # a broken CUDA set-up: CPU only
        return False


def devices() -> list:
    """The devices a module offers: "cpu", and "cuda" when torch sees a GPU."""
    return ["cpu", "cuda"] if cuda_available() else ["cpu"]


def missing(required: dict, also=("torch",)) -> list:
    """Import names of ``also`` + ``required`` (import name -> pip requirement) that are absent."""
    importlib.invalidate_caches()  # see packages installed since the last look
    return [name for name in list(also) + list(required) if importlib.util.find_spec(name) is None]


def ensure(required: dict, also=("torch",), status=None) -> bool:
    """Ask once, then install what is missing; True when everything is importable afterwards.

    ``status(message)`` (optional) receives a line for the module's status label whenever the
    answer is False (declined, an extension to install first, or an installation that failed),
    so that nothing fails silently. Errors of pip or PyTorchUtils are shown and reported, not
    raised."""
    import slicer

    def refuse(message):
        if status is not None:
            status(message)
        return False

    absent = missing(required, also)
    if not absent:
        return True
    from_ext = [n for n in absent if n in FROM_EXTENSIONS]
    if from_ext:
        message = ("Install the " + ", ".join(sorted({FROM_EXTENSIONS[n] for n in from_ext}))
                   + " extension(s) from the Extensions Manager and restart Slicer.")
        slicer.util.errorDisplay(message)
        return refuse(message)
    if not slicer.util.confirmOkCancelDisplay(
            "CMRRisk needs these Python packages, which are not installed in this Slicer: "
            + ", ".join(absent) + ".\n\nInstall them now (internet connection needed)?",
            "CMRRisk: install dependencies"):
        return refuse("Not run: the Python packages " + ", ".join(absent) + " are missing "
                      "(installation declined).")
    try:
        if "torch" in absent:
            try:
                import PyTorchUtils  # from the PyTorch extension
            except ImportError:
                message = "Install the PyTorch extension from the Extensions Manager first, then restart Slicer."
                slicer.util.errorDisplay(message)
                return refuse(message)
            # the user has agreed above: no second question
            if PyTorchUtils.PyTorchUtilsLogic().installTorch(
                    askConfirmation=False, torchVersionRequirement=TORCH_REQUIREMENT) is None:
                return refuse("PyTorch was not installed (see the Python console); nothing was run.")
        pip = [required[name] for name in absent if name in required]
        packaging = getattr(slicer, "packaging", None)
        if pip and packaging is not None and hasattr(packaging, "pip_ensure"):
            # Slicer 5.11+: one call checks, installs with progress and offers a restart when an
            # imported package was updated (the user agreed above: no second question)
            packaging.pip_ensure(pip, prompt_install=False, requester="CMRRisk")
        elif pip:
            with slicer.util.WaitCursor():
                for req in pip:
                    slicer.util.pip_install(req)
    except Exception as exc:  # pip or network failure: shown, not lost in the console
        message = f"Installing {', '.join(absent)} failed: {exc}"
        slicer.util.errorDisplay(message)
        return refuse(message)
    still = missing(required, also)
    if still:
        message = ("Still missing after installation: " + ", ".join(still)
                   + ". Restart Slicer and try again; see the Python console for pip's messages.")
        slicer.util.errorDisplay(message)
        return refuse(message)
    return True
