"""Which model a held-out benchmark may measure, and on which subjects.

A bundled model trained on all subjects (``--all``) has no held-out subjects left, so the
benchmarks that score real held-out data (ACDC validation, EMIDEC validation, diagnosis, feature
agreement, border bias, slice order, ...) measure its development model instead: the same
network trained with the validation split, in ``bench/models/<task>_split`` (not part of the
extension). While the bundled model still has its own validation split, it is its own
development model and that folder is not needed.

The development models' configs, cards and checksums are in the repository; their weights
(``model.safetensors``) are not. ``make dev-models`` restores them (bench/models/README.md);
without them, :func:`development_model` refuses and the tests that need them skip.
:func:`development_config` needs only the config (the validation subjects).

    from devmodels import held_out, use_development_models
    model_dir, subjects = held_out("cine")   # model folder, set of its validation subjects
    use_development_models()                 # "cine" / "lge" now name the development models
"""

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPLIT_DIR = ROOT / "bench" / "models"


def val_subjects(model_dir: str) -> list:
    """The validation subjects listed in a model folder's config (empty for an `--all` model)."""
    from cmrrisk import modeldir

    return list(modeldir.read_json(os.path.join(model_dir, "config.json"))["training"].get("val_subjects") or [])


def development_config(task: str) -> str:
    """Folder of the model of ``task`` (``cine`` or ``lge``) that was trained with a validation
    split, its weights present or not: the bundled model when it has one, otherwise
    ``bench/models/<task>_split``."""
    from cmrrisk import modeldir
    from cmrrisk.errors import CMRRiskError

    bundled = modeldir.resolve(task)
    if val_subjects(bundled):
        return bundled
    split = SPLIT_DIR / f"{task}_split"
    if not (split / "config.json").is_file():
        raise CMRRiskError(f"the bundled {task} model was trained on all subjects and {split} is "
                           "missing: held-out figures need the model trained with the split.")
    if not val_subjects(str(split)):
        raise CMRRiskError(f"{split}: this model has no validation subjects in its config.")
    return str(split)


def missing_weights(task: str) -> str | None:
    """Why the development model of ``task`` cannot be loaded (its weights are not in the
    repository and were not restored), or None when it can."""
    from cmrrisk import modeldir

    path = Path(development_config(task))
    if (path / modeldir.WEIGHTS).is_file():
        return None
    return (f"{path / modeldir.WEIGHTS} is not present: the development weights are not in the "
            "repository; restore them with `make dev-models` (bench/models/README.md).")


def development_model(task: str) -> str:
    """Folder of the development model of ``task`` (:func:`development_config`), refused with
    a message saying how to restore them when its weights are not present."""
    from cmrrisk.errors import CMRRiskError

    why = missing_weights(task)
    if why:
        raise CMRRiskError(why)
    return development_config(task)


def held_out(task: str) -> tuple:
    """(development model folder, set of its validation subjects)."""
    path = development_model(task)
    return path, set(val_subjects(path))


def use_development_models() -> dict:
    """From now on, in this process, the names ``cine`` and ``lge`` resolve to the development
    models (everything resolves names through ``cmrrisk.modeldir.resolve``: segmenters, feature
    caches, checksums). For benchmarks whose figures are held-out figures; returns
    {name: folder}."""
    from cmrrisk import modeldir

    original = getattr(modeldir.resolve, "bundled_resolve", modeldir.resolve)
    modeldir.resolve = original  # a second call starts from the bundled names again
    chosen = {task: development_model(task) for task in ("cine", "lge")}

    def resolve(model: str) -> str:
        return chosen[model] if model in chosen else original(model)

    resolve.bundled_resolve = original
    resolve.__doc__ = original.__doc__
    modeldir.resolve = resolve
    return chosen
