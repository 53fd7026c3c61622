"""Cohort tables for prediction: loading and validating a manifest, and preprocessing.

A manifest (docs/explanation/architecture.md) has one row per subject: ``subject``, optional image columns
(``cine_ed``, ``cine_es``, ``cine``, ``lge`` and ``*_seg``), covariate columns, and outcome columns
(``time`` and ``event`` for time-to-event endpoints, ``label`` for diagnostic endpoints).

:func:`load_table` turns a manifest into a :class:`Table`: the covariates (numeric columns, and
text columns treated as categories), plus image features from
:func:`cmrrisk.features.cohort.features_for_manifest` when the manifest names images. Every problem
is reported with the manifest's line number, the subject and the column.

:class:`Preprocessor` is fitted on training rows only (median imputation, optional one-hot
encoding of categories, removal of constant columns, optional univariate feature selection,
standardisation) and is stored as plain JSON in the model directory.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, field

import numpy as np

from ..errors import CMRRiskError

SUBJECT = "subject"
TIME = "time"
EVENT = "event"
LABEL = "label"
OUTCOME_COLUMNS = (TIME, EVENT, LABEL)
IMAGE_COLUMNS = ("cine_ed", "cine_es", "cine", "lge")
#: manifest columns that describe the images rather than the subject (never covariates)
IMAGE_METADATA = ("seg_labels",)
#: a text column with more distinct values than this is not treated as a category
MAX_CATEGORIES = 20
ENDPOINTS = ("survival", "diagnosis")


def _is_image_column(name: str) -> bool:
    return name in IMAGE_COLUMNS or name.endswith("_seg")


@dataclass
class Table:
    """Subjects, their covariates (a pandas DataFrame indexed by subject) and outcomes."""

    source: str
    subjects: list
    covariates: "object"  # pandas.DataFrame, columns numeric (float) or categorical (object)
    time: np.ndarray | None = None
    event: np.ndarray | None = None
    label: np.ndarray | None = None  # strings
    image_columns: list = field(default_factory=list)
    feature_columns: list = field(default_factory=list)  # columns that came from images
    lines: list = field(default_factory=list)  # CSV line number of each subject
    feature_provenance: dict = field(default_factory=dict)  # how image features were computed
    images: list = field(default_factory=list)  # per subject {image column: absolute path}

    def __len__(self):
        return len(self.subjects)

    def subset(self, idx) -> "Table":
        idx = np.asarray(idx)
        pick = lambda a: None if a is None else np.asarray(a)[idx]  # noqa: E731
        return Table(self.source, [self.subjects[i] for i in idx], self.covariates.iloc[idx],
                     pick(self.time), pick(self.event), pick(self.label), list(self.image_columns),
                     list(self.feature_columns), [self.lines[i] for i in idx] if self.lines else [],
                     dict(self.feature_provenance),
                     [self.images[i] for i in idx] if self.images else [])

    def require(self, endpoint: str) -> None:
        """Raise unless the outcome columns of ``endpoint`` are present."""
        if endpoint not in ENDPOINTS:
            raise CMRRiskError(f"endpoint {endpoint!r}: choose one of {', '.join(ENDPOINTS)}.")
        if endpoint == "survival" and (self.time is None or self.event is None):
            raise CMRRiskError(f"{self.source}: a survival endpoint needs the columns '{TIME}' and "
                               f"'{EVENT}' (0 censored, 1 event); add them to the manifest.")
        if endpoint == "diagnosis" and self.label is None:
            raise CMRRiskError(f"{self.source}: a diagnosis endpoint needs a '{LABEL}' column.")


def _where(path, line, subject, column):
    s = f"{path} line {line}"
    if subject:
        s += f" (subject {subject})"
    return s + f", column '{column}'"


def _parse_float(v):
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x


def load_table(manifest: str, endpoint: str | None = None, need_outcome: bool = True,
               cache_dir: str | None = None, features=None, image_features: bool = True) -> Table:
    """Read and validate a manifest CSV.

    ``endpoint`` ('survival' or 'diagnosis') checks its outcome columns when ``need_outcome``.
    ``features`` (a DataFrame indexed by subject) replaces the image feature extraction, for tests
    and for callers that computed features already; ``image_features=False`` ignores the image
    columns (for a model that was trained on covariates only).
    """
    import pandas as pd

    if not os.path.isfile(manifest):
        raise CMRRiskError(f"{manifest}: manifest not found.")
    try:
        raw = pd.read_csv(manifest, dtype=str, keep_default_na=False, skipinitialspace=True)
    except Exception as exc:  # pandas' parser errors name the line
        raise CMRRiskError(f"{manifest}: not a readable CSV ({exc}).") from exc
    raw.columns = [str(c).strip() for c in raw.columns]
    if SUBJECT not in raw.columns:
        hint = ""
        if len(raw.columns) == 1 and (";" in raw.columns[0] or "\t" in raw.columns[0]):
            hint = " The file seems to use ';' or tabs between columns: save it as comma-separated CSV."
        raise CMRRiskError(f"{manifest}: no '{SUBJECT}' column (columns: {', '.join(raw.columns)}); "
                           "the first row must name the columns, one of them 'subject'." + hint)
    # pandas renames a repeated column ('age', 'age.1'): look at the header as written
    with open(manifest, newline="", encoding="utf-8-sig", errors="replace") as fh:
        header = [str(c).strip() for c in next(csv.reader(fh), [])]
    dup = [c for c in set(header) if header.count(c) > 1]
    if dup:
        raise CMRRiskError(f"{manifest}: column(s) {', '.join(sorted(dup))} appear more than once.")
    if len(raw) == 0:
        raise CMRRiskError(f"{manifest}: no subjects (only a header).")
    lines = list(range(2, len(raw) + 2))
    subjects = [s.strip() for s in raw[SUBJECT]]
    seen = {}
    problems = []
    for line, s in zip(lines, subjects):
        if not s:
            problems.append(f"{_where(manifest, line, None, SUBJECT)}: empty subject identifier")
        elif s in seen:
            problems.append(f"{_where(manifest, line, s, SUBJECT)}: subject repeated "
                            f"(first on line {seen[s]})")
        else:
            seen[s] = line

    time = event = label = None
    if endpoint is not None and endpoint not in ENDPOINTS:
        raise CMRRiskError(f"endpoint {endpoint!r}: choose one of {', '.join(ENDPOINTS)}.")
    want_surv = need_outcome and endpoint == "survival"
    want_label = need_outcome and endpoint == "diagnosis"
    if TIME in raw.columns and EVENT in raw.columns and endpoint != "diagnosis":
        time = np.full(len(raw), np.nan)
        event = np.zeros(len(raw), dtype=int)
        for i, (line, s) in enumerate(zip(lines, subjects)):
            tv, ev = raw[TIME].iloc[i].strip(), raw[EVENT].iloc[i].strip()
            if not tv and not ev and not want_surv:
                continue
            t = _parse_float(tv)
            if t is None or not math.isfinite(t) or t < 0:
                problems.append(f"{_where(manifest, line, s, TIME)}: {tv!r} is not a follow-up time "
                                "(a number >= 0)")
            else:
                time[i] = t
            e = _parse_float(ev)
            if e not in (0.0, 1.0):
                problems.append(f"{_where(manifest, line, s, EVENT)}: {ev!r} is not 0 (censored) or "
                                "1 (event)")
            else:
                event[i] = int(e)
    elif want_surv:
        missing = [c for c in (TIME, EVENT) if c not in raw.columns]
        raise CMRRiskError(f"{manifest}: a survival endpoint needs the column(s) "
                           f"{', '.join(repr(c) for c in missing)}; add them (time >= 0, event 0/1).")
    if LABEL in raw.columns:
        label = np.array([v.strip() for v in raw[LABEL]], dtype=object)
        if want_label:
            for line, s, v in zip(lines, subjects, label):
                if not v:
                    problems.append(f"{_where(manifest, line, s, LABEL)}: empty diagnostic label")
    elif want_label:
        raise CMRRiskError(f"{manifest}: a diagnosis endpoint needs a '{LABEL}' column.")

    image_cols = [c for c in raw.columns if c in IMAGE_COLUMNS] if image_features else []
    # ``true_*`` columns hold a simulation's ground truth (cmrrisk synth): never model inputs
    cov_names = [c for c in raw.columns if c != SUBJECT and c not in OUTCOME_COLUMNS
                 and c not in IMAGE_METADATA and not _is_image_column(c) and not c.startswith("true_")]
    cov = {}
    for c in cov_names:
        vals = [v.strip() for v in raw[c]]
        nums = [_parse_float(v) if v and v.lower() not in ("na", "nan") else math.nan for v in vals]
        bad = [i for i, (v, x) in enumerate(zip(vals, nums)) if x is None]
        filled = [v for v in vals if v and v.lower() not in ("na", "nan")]
        if not bad:
            arr = np.array(nums, dtype=float)
            inf = [i for i in range(len(arr)) if np.isinf(arr[i])]
            for i in inf:
                problems.append(f"{_where(manifest, lines[i], subjects[i], c)}: infinite value")
            cov[c] = arr
        elif len(bad) == len(filled):  # a text column: categories
            levels = sorted(set(filled))
            if len(levels) > MAX_CATEGORIES:
                problems.append(f"{manifest}, column '{c}': {len(levels)} distinct text values; a "
                                f"category may have at most {MAX_CATEGORIES}. Remove the column or "
                                "make it numeric.")
            cov[c] = np.array([v if v and v.lower() not in ("na", "nan") else None for v in vals],
                              dtype=object)
        else:  # mostly numbers with some text: name the offending cells
            for i in bad[:10]:
                problems.append(f"{_where(manifest, lines[i], subjects[i], c)}: {vals[i]!r} is not a "
                                "number (leave the cell empty for a missing value)")
            if len(bad) > 10:
                problems.append(f"{manifest}, column '{c}': {len(bad) - 10} more non-numeric cells")
    if problems:
        raise CMRRiskError(f"{manifest}: {len(problems)} problem(s):\n  " + "\n  ".join(problems))

    covariates = pd.DataFrame(cov, index=pd.Index(subjects, name=SUBJECT), columns=cov_names)
    feature_cols, provenance = [], {}
    if image_cols:
        if features is None:
            features = _image_features(manifest, cache_dir)
        missing = [(line, s) for line, s in zip(lines, subjects) if s not in features.index]
        if missing:
            why = features.attrs.get("failures") if hasattr(features, "attrs") else None
            raise CMRRiskError(f"{manifest}: no image features for {len(missing)} subject(s): "
                               + ", ".join(f"line {line} ({s})" for line, s in missing[:10])
                               + (f"; failures: {why}" if why else "")
                               + ". Fix or remove these rows.")
        clash = [c for c in features.columns if c in covariates.columns]
        if clash:
            raise CMRRiskError(f"{manifest}: covariate column(s) {', '.join(clash)} have the same "
                               "name as image features; rename them.")
        provenance = feature_settings(getattr(features, "attrs", {}).get("provenance") or {})
        feats = features.loc[subjects].astype(float)
        feature_cols = [str(c) for c in feats.columns]
        covariates = pd.concat([covariates, feats.set_axis(feature_cols, axis=1)], axis=1)
    if covariates.shape[1] == 0:
        raise CMRRiskError(f"{manifest}: no covariate or image columns to predict from (columns: "
                           f"{', '.join(raw.columns)}).")
    folder = os.path.dirname(os.path.abspath(manifest))
    all_images = [c for c in raw.columns if c in IMAGE_COLUMNS or c.endswith("_seg")]
    meta = [c for c in IMAGE_METADATA if c in raw.columns]
    images = [{SUBJECT: subjects[i],
               **{c: os.path.join(folder, raw[c].iloc[i].strip()) for c in all_images
                  if raw[c].iloc[i].strip()},
               **{c: raw[c].iloc[i].strip() for c in meta}}
              for i in range(len(raw))] if all_images else []
    return Table(manifest, subjects, covariates, time, event, label, image_cols, feature_cols, lines,
                 provenance, images)


def feature_settings(provenance: dict) -> dict:
    """The parts of an image-feature provenance record that change the features' meaning."""
    import hashlib

    out = {k: provenance[k] for k in ("features_version", "options", "models") if k in provenance}
    if provenance.get("radiomics_params"):
        out["radiomics_params_sha256"] = hashlib.sha256(
            str(provenance["radiomics_params"]).encode()).hexdigest()
    return json_safe(out)


def json_safe(obj):
    import json

    return json.loads(json.dumps(obj, default=str))


def _image_features(manifest, cache_dir):
    try:
        from ..features.cohort import features_for_manifest
    except ImportError as exc:
        raise CMRRiskError(f"{manifest}: the manifest names images, but image feature extraction "
                           f"(cmrrisk.features.cohort) is not available ({exc}); use a manifest "
                           "with covariates or a features table instead.") from exc
    return features_for_manifest(manifest, cache_dir=cache_dir)


def table_from_arrays(x, time=None, event=None, label=None, names=None, subjects=None,
                      source="<arrays>") -> Table:
    """A :class:`Table` from numeric arrays (benchmarks and tests)."""
    import pandas as pd

    x = np.asarray(x, dtype=float)
    names = names or [f"x{j}" for j in range(x.shape[1])]
    subjects = subjects or [f"s{i:05d}" for i in range(len(x))]
    df = pd.DataFrame(x, index=pd.Index(subjects, name=SUBJECT), columns=names)
    return Table(source, list(subjects), df,
                 None if time is None else np.asarray(time, float),
                 None if event is None else np.asarray(event, int),
                 None if label is None else np.asarray(label, dtype=object),
                 lines=list(range(2, len(x) + 2)))


# --------------------------------------------------------------------------- preprocessing

class Preprocessor:
    """Fitted on training rows only; turns covariates into a float32 matrix.

    Steps: one-hot encoding of text columns (levels seen in training, first level dropped),
    median imputation, removal of constant columns, optional univariate selection of the
    ``max_features`` strongest columns (|Cox score z| for survival, ANOVA F for diagnosis),
    standardisation (training mean and standard deviation).
    """

    def __init__(self, max_features: int | None = None):
        self.max_features = max_features
        self.params: dict | None = None

    # the training table's columns and their kinds
    def fit(self, table: Table, endpoint: str | None = None) -> "Preprocessor":
        df = table.covariates
        kinds, levels = {}, {}
        for c in df.columns:
            if df[c].dtype == object:
                kinds[c] = "categorical"
                levels[c] = sorted({v for v in df[c] if v is not None})
            else:
                kinds[c] = "numeric"
        self.params = {"columns": list(df.columns), "kinds": kinds, "levels": levels,
                       "image_columns": list(table.image_columns),
                       "feature_columns": list(table.feature_columns),
                       "feature_settings": dict(table.feature_provenance),
                       "max_features": self.max_features}
        names, x = self._expand(df)
        med = np.nanmedian(np.where(np.isnan(x).all(0, keepdims=True), 0.0, x), axis=0)
        x = np.where(np.isnan(x), med, x)
        sd = x.std(0)
        keep = [j for j in range(x.shape[1]) if sd[j] > 1e-12]
        if not keep:
            raise CMRRiskError(f"{table.source}: every covariate is constant over the training "
                               "subjects; nothing to learn from.")
        if self.max_features and len(keep) > self.max_features:
            score = _univariate_scores(x[:, keep], table, endpoint)
            order = np.argsort(-score, kind="stable")[: self.max_features]
            keep = [keep[j] for j in sorted(order)]
        self.params.update({
            "expanded": names, "median": med.tolist(), "selected": [names[j] for j in keep],
            "mean": x[:, keep].mean(0).tolist(), "std": x[:, keep].std(0).tolist()})
        return self

    def _expand(self, df):
        p = self.params
        cols, names = [], []
        for c in p["columns"]:
            if p["kinds"][c] == "numeric":
                cols.append(df[c].to_numpy(dtype=float))
                names.append(c)
            else:
                v = df[c].to_numpy(dtype=object)
                for lev in p["levels"][c][1:]:
                    col = np.array([np.nan if a is None else float(a == lev) for a in v])
                    cols.append(col)
                    names.append(f"{c}={lev}")
        return names, np.column_stack(cols) if cols else np.zeros((len(df), 0))

    @property
    def feature_names(self) -> list:
        return list(self.params["selected"])

    def _covariates(self, table: Table):
        """The table's covariates; image-feature columns of training that no subject here has
        (e.g. scar texture when no scar was found) are added as missing (imputed as in training)."""
        df = table.covariates
        absent = [c for c in self.params.get("feature_columns", []) if c not in df.columns]
        if absent and table.image_columns:
            df = df.copy()
            for c in absent:
                df[c] = np.nan
        return df

    def check(self, table: Table, df=None) -> None:
        """Refuse a table whose columns or kinds do not match the training table (``df``: its
        covariates from :meth:`_covariates`, when the caller has them)."""
        p = self.params
        df = self._covariates(table) if df is None else df
        missing = [c for c in p["columns"] if c not in df.columns]
        problems = []
        if missing:
            problems.append(f"missing column(s) the model was trained with: {', '.join(missing[:20])}"
                            + (f" and {len(missing) - 20} more" if len(missing) > 20 else ""))
        if p.get("image_columns") and not table.image_columns:
            problems.append("the model uses image features (columns "
                            f"{', '.join(p['image_columns'])}) but the manifest names no images")
        for c in p["columns"]:
            if c in df.columns:
                kind = "categorical" if df[c].dtype == object else "numeric"
                if kind != p["kinds"][c]:
                    problems.append(f"column '{c}' is {kind} here but was {p['kinds'][c]} in training")
                elif kind == "categorical":
                    new = sorted({v for v in df[c] if v is not None} - set(p["levels"][c]))
                    if new:
                        problems.append(f"column '{c}' has value(s) {', '.join(new)} not seen in "
                                        f"training ({', '.join(p['levels'][c])})")
        want, got = p.get("feature_settings") or {}, table.feature_provenance or {}
        if want and got and want != got:
            diff = sorted(k for k in set(want) | set(got) if want.get(k) != got.get(k))
            problems.append("the image features were computed with other settings than in training "
                            f"(differing: {', '.join(diff)})")
        if problems:
            raise CMRRiskError(f"{table.source}: does not match the model's inputs: "
                               + "; ".join(problems) + ".")

    def transform(self, table: Table) -> np.ndarray:
        df = self._covariates(table)
        self.check(table, df)
        p = self.params
        names, x = self._expand(df)
        med = np.asarray(p["median"])
        x = np.where(np.isnan(x), med, x)
        idx = [names.index(n) for n in p["selected"]]
        x = (x[:, idx] - np.asarray(p["mean"])) / np.asarray(p["std"])
        return x.astype(np.float32)

    def to_json(self) -> dict:
        return dict(self.params)

    @classmethod
    def from_json(cls, d: dict) -> "Preprocessor":
        p = cls(d.get("max_features"))
        p.params = dict(d)
        return p


def _univariate_scores(x, table, endpoint):
    if endpoint == "survival":
        return np.abs(cox_score_z(x, table.time, table.event))
    if endpoint == "diagnosis":
        from sklearn.feature_selection import f_classif

        f, _ = f_classif(x, table.label.astype(str))
        return np.nan_to_num(f)
    raise CMRRiskError("feature selection needs an endpoint")


def cox_score_z(x, time, event):
    """Per column, the score-test z statistic of a univariate Cox model at beta = 0 (Breslow)."""
    order = np.argsort(time, kind="stable")
    t, e, xs = np.asarray(time)[order], np.asarray(event)[order], x[order]
    n = len(t)
    # risk set of each subject: all with time >= its time
    first = np.searchsorted(t, t, side="left")
    at_risk = n - first
    csum = np.cumsum(xs[::-1], axis=0)[::-1]
    csum2 = np.cumsum((xs ** 2)[::-1], axis=0)[::-1]
    mean = csum[first] / at_risk[:, None]
    var = csum2[first] / at_risk[:, None] - mean ** 2
    ev = e > 0
    u = ((xs - mean)[ev]).sum(0)
    v = var[ev].sum(0)
    return u / np.sqrt(np.maximum(v, 1e-12))
