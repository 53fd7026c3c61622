"""The ``train``, ``predict`` and ``evaluate`` subcommands of the ``cmrrisk`` command line.

:func:`add_commands` registers them on the main parser's subparsers; errors are raised as
:class:`~cmrrisk.errors.CMRRiskError` (the command line prints them and exits with status 2).
"""

from __future__ import annotations

import contextlib
import os
import sys

from ..errors import CMRRiskError
from .formatting import fmt
from .models.targets import parse_horizons




def _ci(lo_hi):
    return f"[{fmt(lo_hi[0])}, {fmt(lo_hi[1])}]" if lo_hi else ""


def _threads(n):
    if n:
        import torch

        torch.set_num_threads(int(n))


@contextlib.contextmanager
def _about(manifest: str):
    """Errors about the data (too few events, one class, ...) name the manifest they are about."""
    try:
        yield
    except CMRRiskError as exc:
        text = str(exc)
        if manifest in text or os.path.basename(manifest) in text:
            raise
        raise CMRRiskError(f"{manifest}: {text}") from None


def _yaml(text: str, path: str):
    """A YAML document (PyYAML's safe loader); a syntax error names its line."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise CMRRiskError(f"--params {path}: {where}not valid YAML ({what}).") from None


def read_params_file(path: str) -> dict:
    """``--params FILE``: a JSON object (``.json``) or a YAML mapping (other names)."""
    import json

    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise CMRRiskError(f"--params {path}: cannot read ({exc.strerror or exc}).") from None
    if path.lower().endswith(".json"):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise CMRRiskError(f"--params {path}: not valid JSON ({exc}).") from None
    else:
        data = _yaml(text, path)
    if not isinstance(data, dict):
        raise CMRRiskError(f"--params {path}: give a mapping of parameter names to values, "
                           "e.g. {\"alpha\": 0.5}.")
    return data


def split_assignments(text: str) -> list:
    """``"alpha=0.5, hidden=[64, 64]"`` -> ``["alpha=0.5", "hidden=[64, 64]"]``: comma-separated
    KEY=VALUE items; commas inside brackets or quotes belong to the value."""
    items, depth, quote, cur = [], 0, None, []
    for ch in text or "":
        if quote:
            quote = None if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth = max(0, depth - 1)
        elif ch == "," and depth == 0:
            items.append("".join(cur).strip())
            cur = []
            continue
        cur.append(ch)
    items.append("".join(cur).strip())
    return [i for i in items if i]


def collect_params(model: str | None, endpoint: str, params_file: str | None = None, assignments=()) -> dict:
    """The hyper-parameters of ``params_file`` (JSON or YAML) then of the ``KEY=VALUE``
    ``assignments`` (later wins), validated for the model and parsed to each parameter's type:
    what ``--params FILE --param KEY=VALUE ...`` give, and what the Slicer Predict module sends."""
    from .base import parse_params

    values = dict(read_params_file(params_file)) if params_file else {}
    for item in assignments or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise CMRRiskError(f"--param {item!r}: give KEY=VALUE, e.g. --param alpha=0.5.")
        values[key.strip()] = value.strip()
    return parse_params(model, endpoint, values)


def model_params_from_args(args) -> dict:
    """The hyper-parameters of ``--params FILE`` then ``--param KEY=VALUE`` (later wins),
    validated for the chosen model and parsed to each parameter's type."""
    return collect_params(args.model, args.endpoint, getattr(args, "params", None), getattr(args, "param", None))


def cmd_train(args) -> int:
    from .. import progress
    from .study import train_model

    params = model_params_from_args(args)  # before any work
    _threads(args.threads)
    with _about(args.manifest):
        train_model(args.manifest, args.endpoint, args.out, model=args.model, seed=args.seed,
                    max_epochs=args.max_epochs, cv=args.cv, max_features=args.max_features,
                    cache_dir=args.cache_dir, log=print, params=params, progress=progress.json_progress() if progress.is_json() else None)
    return 0


def cmd_predict(args) -> int:
    from ..modeldir import write_text_atomic
    from .store import load_pipeline
    from .tabular import load_table
    from .validation import needs_image_features

    _threads(args.threads)
    pipe = load_pipeline(args.model_dir)
    table = load_table(args.manifest, pipe.endpoint, need_outcome=False, cache_dir=args.cache_dir,
                       image_features=needs_image_features(pipe))
    df = pipe.predict_frame(table, parse_horizons(args.horizons))
    write_text_atomic(args.out, df.to_csv(float_format="%.6g"))
    print(f"{args.out}: predictions for {len(df)} subjects ({', '.join(df.columns)})")
    return 0


def cmd_evaluate(args) -> int:
    from ..modeldir import write_json
    from .validation import external_validation

    _threads(args.threads)
    horizons = parse_horizons(args.horizons)
    with _about(args.manifest):
        res = external_validation(args.model_dir, args.manifest, n_boot=args.bootstrap, seed=args.seed,
                                  cache_dir=args.cache_dir, horizons=horizons)
    if horizons and "horizons" in res:
        dropped = [h for h in horizons if h not in res["horizons"]]
        if dropped:
            print(f"--horizons {', '.join(f'{h:g}' for h in dropped)}: outside the manifest's follow-up "
                  f"(times {min(res['time_range']):g} to {max(res['time_range']):g}); not evaluated there.",
                  file=sys.stderr)
    if "c_index_harrell" in res:
        print(f"n {res['n']} ({res['n_events']} events)")
        print(f"Harrell C-index   {fmt(res['c_index_harrell'])} {_ci(res.get('c_index_harrell_ci'))}")
        if "c_index_oracle" in res:
            print(f"oracle C-index    {fmt(res['c_index_oracle'])} (the simulation's true log-hazard "
                  "on the same subjects: the best any model could reach)")
        print(f"Uno C-index       {fmt(res['c_index_uno'])} {_ci(res.get('c_index_uno_ci'))} "
              f"(tau {res['uno_tau']:g})")
        print(f"integrated Brier  {fmt(res.get('integrated_brier'))} {_ci(res.get('integrated_brier_ci'))}")
        if res.get("td_auc"):
            print("time-dependent AUC " + ", ".join(f"t={k}: {fmt(v)}" for k, v in res["td_auc"].items()))
        cal = res.get("calibration")
        if cal:
            print(f"calibration at t={cal['horizon']:g}: observed {fmt(cal['observed_overall'])}, "
                  f"predicted {fmt(cal['predicted_overall'])}, slope {fmt(cal['slope'])}")
        rg = res["risk_groups"]
        print("risk groups (low..high): " + ", ".join(f"n {g['n']}" for g in rg["groups"])
              + f"; log-rank p {fmt(rg['logrank_p'], 4)}")
    else:
        print(f"n {res['n']}  accuracy {fmt(res['accuracy'])} {_ci(res.get('accuracy_ci'))}  "
              f"balanced accuracy {fmt(res['balanced_accuracy'])} {_ci(res.get('balanced_accuracy_ci'))}  "
              f"macro AUC {fmt(res.get('auc_macro'))}")
        print("classes: " + ", ".join(res["classes"]))
        for c, row in zip(res["classes"], res["confusion_matrix"]):
            print(f"  {c:>12s}: {row}")
    if args.json:
        write_json(args.json, res)
        print(f"written: {args.json}")
    return 0


def add_commands(subparsers) -> None:
    """Register ``train``, ``predict`` and ``evaluate`` on the ``cmrrisk`` subparsers."""
    from .base import DEFAULTS, model_names

    t = subparsers.add_parser("train", help="train a prognostic (survival) or diagnostic model on a "
                              "cohort manifest (covariates, features table or images)")
    t.add_argument("manifest", help="cohort manifest CSV (subject, covariates and/or image columns, "
                   "time+event or label)")
    t.add_argument("--endpoint", required=True, choices=["survival", "diagnosis"])
    t.add_argument("--model", default=None,
                   help=f"survival: {', '.join(model_names('survival'))} (default "
                   f"{DEFAULTS['survival']}); diagnosis: {', '.join(model_names('diagnosis'))} "
                   f"(default {DEFAULTS['diagnosis']})")
    t.add_argument("--out", required=True, help="model directory to write")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--max-epochs", type=int, default=None, help="cap on training epochs of networks")
    t.add_argument("--cv", type=int, default=5, help="k-fold cross-validation on the manifest before "
                   "the final fit, stored in metrics.json (0: skip; default 5)")
    t.add_argument("--max-features", type=int, default=None, help="keep the K features with the "
                   "strongest univariate association (chosen inside each training fold)")
    t.add_argument("--cache-dir", default=None, help="cache folder for image features (default: "
                   "<manifest>_features_cache beside the manifest)")
    t.add_argument("--param", action="append", default=None, metavar="KEY=VALUE",
                   help="a hyper-parameter of the model, e.g. alpha=0.5 or hidden=[64,64] (repeatable; "
                   "checked before any work; an unknown key is refused with the list of allowed ones)")
    t.add_argument("--params", default=None, metavar="FILE", help="hyper-parameters from a JSON file or a YAML mapping "
                   "(key: value per line); --param entries override it")
    t.add_argument("--threads", type=int, default=None, help="CPU threads for PyTorch")
    t.set_defaults(func=cmd_train)

    p = subparsers.add_parser("predict", help="predict risk / survival / class for a manifest")
    p.add_argument("model_dir", metavar="MODEL_DIR")
    p.add_argument("manifest", metavar="MANIFEST")
    p.add_argument("--out", required=True, help="predictions CSV to write")
    p.add_argument("--horizons", default=None, help="survival: times for survival_at_<t> columns, "
                   "comma-separated (default: quartiles of the training event times)")
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--threads", type=int, default=None)
    p.set_defaults(func=cmd_predict)

    e = subparsers.add_parser("evaluate", help="evaluate a model on a manifest with outcomes "
                              "(external validation) with bootstrap 95%% intervals")
    e.add_argument("model_dir", metavar="MODEL_DIR")
    e.add_argument("manifest", metavar="MANIFEST")
    e.add_argument("--json", default=None, help="write all metrics to this JSON file")
    e.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples (default 200)")
    e.add_argument("--horizons", default=None, help="survival: times for the time-dependent AUC, "
                   "Brier scores and calibration (the middle one), comma-separated, within the "
                   "manifest's follow-up (default: quartiles of the training event times)")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--cache-dir", default=None)
    e.add_argument("--threads", type=int, default=None)
    e.set_defaults(func=cmd_evaluate)
