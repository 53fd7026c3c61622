"""Model directories on disk (docs/explanation/architecture.md).

A model directory holds ``model.safetensors`` (weights only, never a pickled object),
``config.json`` (network, preprocessing, labels, training summary, software versions),
optional ``metrics.json`` and ``MODEL_CARD.md``, and ``checksums.json`` with the SHA-256 of
every other file. :func:`verify` refuses a directory whose files do not match their checksums.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import tempfile

from .errors import CMRRiskError

CHECKSUMS = "checksums.json"
WEIGHTS = "model.safetensors"
CONFIG = "config.json"

BUNDLED_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "models")


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


#: packages whose version can change a model's numbers (features, networks, fitted models):
#: import name -> distribution name. Every model directory records the versions present.
MODEL_DEFINING = {"torch": "torch", "monai": "monai", "radiomics": "pyradiomics",
                  "sksurv": "scikit-survival", "pycox": "pycox"}


class VersionWarning(UserWarning):
    """A model directory is used under other versions of its model-defining packages."""


def _installed_version(module: str):
    """Version of an importable package, without importing it when its metadata tells."""
    import importlib.metadata
    import importlib.util

    if importlib.util.find_spec(module) is None:
        return None
    names = {"radiomics": ("pyradiomics", "pyradiomics-bhklab"), "sksurv": ("scikit-survival",)}
    for dist in names.get(module, (MODEL_DEFINING.get(module, module),)):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    try:
        return getattr(__import__(module), "__version__", None)
    except Exception:  # pragma: no cover - a broken install
        return None


def software_versions() -> dict:
    """Python, numpy, cmrrisk and every model-defining package present (:data:`MODEL_DEFINING`)."""
    import numpy

    out = {"python": platform.python_version(), "numpy": numpy.__version__}
    for module in MODEL_DEFINING:
        v = _installed_version(module)
        if v is not None:
            out[module] = v
    from . import __version__

    out["cmrrisk"] = __version__
    return out


def version_differences(recorded: dict) -> list:
    """[(package, version recorded, version installed)] of the model-defining packages whose
    installed version differs from the one a model directory recorded (packages absent on
    either side are not compared: a model that needs one says so when it is used)."""
    out = []
    for module, dist in MODEL_DEFINING.items():
        was = (recorded or {}).get(module)
        now = _installed_version(module)
        # the local part ("+cpu", "+cu126") names the build, not the code: not compared
        if was and now and str(was).split("+")[0] != str(now).split("+")[0]:
            out.append((dist, str(was), str(now)))
    return out


def version_warning(model_dir: str, config: dict):
    """The warning message for a model directory used under other package versions, or None."""
    diffs = version_differences(config.get("software") or {})
    if not diffs:
        return None
    return (f"{model_dir}: made with " + ", ".join(f"{d} {was}" for d, was, _ in diffs) + "; installed: "
            + ", ".join(f"{d} {now}" for d, _, now in diffs) + ". Features and predictions can differ "
            "from the model's validation figures; install those versions, or retrain the model.")


def resolve(model: str) -> str:
    """A model name of a bundled model (``cine``) or a path to a model directory."""
    if os.path.isdir(model):
        return os.path.abspath(model)
    bundled = os.path.join(BUNDLED_DIR, model)
    if os.path.isdir(bundled):
        return bundled
    names = sorted(d for d in os.listdir(BUNDLED_DIR) if os.path.isdir(os.path.join(BUNDLED_DIR, d)))
    raise CMRRiskError(f"model {model!r}: not a model directory and not a bundled model "
                       f"(bundled: {', '.join(names) or 'none'}).")


def write_checksums(model_dir: str) -> dict:
    sums = {}
    for name in sorted(os.listdir(model_dir)):
        p = os.path.join(model_dir, name)
        if name != CHECKSUMS and os.path.isfile(p) and not name.startswith("."):
            sums[name] = sha256(p)
    write_json(os.path.join(model_dir, CHECKSUMS), sums)
    return sums


def _keep_on_replace(name: str) -> bool:
    """Files that :func:`save` carries over from an existing model directory (training
    checkpoints and logs)."""
    return name.startswith("checkpoint") or name.endswith(".log") or name.endswith(".jsonl")


def check_output(model_dir: str) -> None:
    """Refuse, before any work, an output path that :func:`save` must not replace: an existing
    file, or a folder that holds anything but the files of an earlier model (those listed in its
    ``checksums.json``), training checkpoints and logs. Saving replaces the whole folder, so
    anything else there would be lost."""
    if os.path.exists(model_dir) and not os.path.isdir(model_dir):
        raise CMRRiskError(f"{model_dir}: exists and is not a folder; give a new folder (or an existing "
                           "model directory) for the model.")
    if not os.path.isdir(model_dir):
        return
    ours = {CHECKSUMS}
    if os.path.isfile(os.path.join(model_dir, CHECKSUMS)):  # an earlier model: its own files may go
        sums = read_json(os.path.join(model_dir, CHECKSUMS))
        ours |= set(sums) if isinstance(sums, dict) else set()
    refuse_other_files(model_dir, [n for n in os.listdir(model_dir) if n not in ours and not _keep_on_replace(n)],
                       "a model", "an existing model directory to overwrite")


def refuse_other_files(folder: str, other, what: str, instead: str) -> None:
    """Raise when ``other`` (names in ``folder`` that are not ``what``'s own) is not empty: the
    folder is about to be replaced whole, which would delete them."""
    other = sorted(other)
    if other:
        shown = ", ".join(other[:3]) + (f" and {len(other) - 3} more" if len(other) > 3 else "")
        raise CMRRiskError(f"{folder}: this folder holds files that are not {what}'s ({shown}); writing "
                           f"{what} replaces the folder and would delete them. Give a new or empty folder, "
                           f"or {instead}.")


def verify(model_dir: str) -> None:
    path = os.path.join(model_dir, CHECKSUMS)
    if not os.path.isfile(path):
        raise CMRRiskError(f"{model_dir}: no {CHECKSUMS}; not a CMRRisk model directory.")
    sums = read_json(path)
    if not isinstance(sums, dict):
        raise CMRRiskError(f"{path}: expected a JSON object of file name -> SHA-256; reinstall or retrain the model.")
    for name, expected in sums.items():
        p = os.path.join(model_dir, name)
        if not os.path.isfile(p):
            raise CMRRiskError(f"{p}: listed in {CHECKSUMS} but missing; reinstall or retrain the model.")
        got = sha256(p)
        if got != expected:
            raise CMRRiskError(f"{p}: SHA-256 {got[:12]}... does not match {CHECKSUMS} "
                               f"({expected[:12]}...); the file is corrupt or was changed.")
    for required in (WEIGHTS, CONFIG):
        if required not in sums:
            raise CMRRiskError(f"{model_dir}: {required} missing from {CHECKSUMS}.")


def load(model_dir: str):
    """Verify checksums and return (config dict, state dict of tensors). Weights stored in half
    precision (float16 or bfloat16, e.g. the bundled segmentation models) come back as float32;
    other dtypes as stored."""
    import torch
    from safetensors.torch import load_file

    verify(model_dir)
    config = read_json(os.path.join(model_dir, CONFIG))
    message = version_warning(model_dir, config)
    if message:
        import warnings

        warnings.warn(message, VersionWarning, stacklevel=2)
    state = load_file(os.path.join(model_dir, WEIGHTS))
    half = (torch.float16, torch.bfloat16)
    return config, {k: v.float() if v.dtype in half else v for k, v in state.items()}


def store_half(model_dir: str) -> dict:
    """Rewrite a model directory's weights with every floating-point tensor stored as float16
    (half the file size; :func:`load` casts them back to float32) and its checksums; returns the
    new checksums. Other files stay as they are. For the bundled segmentation models, whose
    segmentations float16 storage does not change (bench/eval_half_precision.py)."""
    import torch
    from safetensors.torch import load_file, save_file

    verify(model_dir)
    path = os.path.join(model_dir, WEIGHTS)
    state = load_file(path)
    half = {k: (v.to(torch.float16) if v.is_floating_point() else v).contiguous() for k, v in state.items()}
    fd, tmp = tempfile.mkstemp(prefix="." + WEIGHTS + ".", dir=model_dir)
    os.close(fd)
    try:
        save_file(half, tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return write_checksums(model_dir)


def save(model_dir: str, state_dict: dict, config: dict, extra_files: dict | None = None) -> None:
    """Write a complete model directory atomically (built in a temporary folder, then renamed)."""
    from safetensors.torch import save_file

    check_output(model_dir)
    parent = os.path.dirname(os.path.abspath(model_dir))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".model-", dir=parent)
    try:
        save_file({k: v.detach().cpu().contiguous() for k, v in state_dict.items()},
                  os.path.join(tmp, WEIGHTS))
        write_json(os.path.join(tmp, CONFIG), config)
        for name, content in (extra_files or {}).items():
            p = os.path.join(tmp, name)
            if isinstance(content, (dict, list)):
                write_json(p, content)
            else:
                with open(p, "w") as f:
                    f.write(content)
        for name in os.listdir(tmp):
            os.chmod(os.path.join(tmp, name), 0o644)
        write_checksums(tmp)
        os.chmod(tmp, 0o755)  # mkdtemp makes 0700; a model directory must be readable by all
        if os.path.isdir(model_dir):
            # keep files that are not part of the model (e.g. training checkpoints)
            old = tempfile.mkdtemp(prefix=".old-", dir=parent)
            os.rmdir(old)
            for name in os.listdir(model_dir):
                if _keep_on_replace(name):
                    shutil.move(os.path.join(model_dir, name), os.path.join(tmp, name))
            os.replace(model_dir, old)
            os.replace(tmp, model_dir)
            shutil.rmtree(old)
        else:
            os.replace(tmp, model_dir)
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp)


def read_json(path: str):
    """A JSON file's content; invalid JSON is a :class:`CMRRiskError` that names the file."""
    with open(path, encoding="utf-8") as f:
        try:
            return json.load(f)
        except (ValueError, UnicodeDecodeError) as exc:
            raise CMRRiskError(f"{path}: not valid JSON ({exc}); if it belongs to a model directory, "
                               "reinstall or retrain the model.") from None


def write_bytes_atomic(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` under a temporary name in the same folder, then rename, so
    that readers never see a half-written file."""
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_text_atomic(path: str, text: str) -> None:
    """:func:`write_bytes_atomic` of UTF-8 text (newlines written as given)."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json(path: str, obj) -> None:
    """Write JSON atomically."""
    write_text_atomic(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def _json_default(o):
    import numpy as np

    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o)}")
