"""DICOMweb: find and retrieve series (QIDO-RS, WADO-RS), segment them, store the SEG and SR
back (STOW-RS), with ``dicomweb-client``.

The HTTP side (credentials from the environment, QIDO-RS, WADO-RS, STOW-RS) is
:mod:`cmrrisk.dicomout.client`.

Storing is all or nothing: the SEG(s) and SR of an input go in one STOW-RS request; when the
server refuses any of them, the ones it accepted are deleted again (where the server allows
deleting) and the command fails.
"""

from __future__ import annotations

import os
import shutil
import tempfile

from ..errors import CMRRiskError
from .client import classify_remote, connect, find_series, retrieve_series, safe_url, store


def segment_from_server(url: str, study: str, series: str | None, out_dir: str, *, model: str = "auto",
                        stow: bool = False, **segment_options) -> dict:
    """Retrieve the series (one, or every image series of the study that is a short-axis cine or
    LGE), segment them with ``--dicom`` outputs, and with ``stow`` store each input's SEG(s) and
    SR back. Returns the segment report with ``dicomweb`` details."""
    from ..dicom import quiet_pydicom

    with quiet_pydicom():
        return _segment_from_server(url, study, series, out_dir, model, stow, segment_options)


def _segment_from_server(url, study, series, out_dir, model, stow, segment_options) -> dict:
    import pydicom

    from ..segmentation.pipeline import segment_inputs

    client = connect(url)
    rows = find_series(client, url, study, series)
    chosen, skipped = [], []
    for r in rows:
        c = classify_remote(client, url, study, r["series"])
        if c["kind"] in ("cine", "lge"):
            chosen.append((r, c))
        elif series:
            raise CMRRiskError(f"--series {series}: not a short-axis cine or LGE series ({c['reason']}).")
        else:
            skipped.append(f"{r['series']} ({r['modality']} {r['description']!r}: {c['reason']})")
    if not chosen:
        raise CMRRiskError(f"--study {study}: no short-axis cine or LGE series among its {len(rows)} image "
                           f"series ({'; '.join(skipped) or 'none'}).")
    os.makedirs(os.path.dirname(os.path.abspath(out_dir)) or ".", exist_ok=True)
    work = tempfile.mkdtemp(prefix=".cmrrisk-dicomweb-", dir=os.path.dirname(os.path.abspath(out_dir)))
    try:
        folders = []
        for r, _c in chosen:
            folder = os.path.join(work, r["series"])
            retrieve_series(client, url, study, r["series"], folder)
            folders.append(folder)
        report = segment_inputs(folders, out_dir, model=model, dicom=True, require_kind=True,
                                **segment_options)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    stored = []
    if stow:
        # one request for everything, so that a refusal leaves nothing of this run stored
        sets = [pydicom.dcmread(f) for e in report["inputs"] for f in e["dicom"]["files"]]
        stored = store(client, url, sets)
        for e in report["inputs"]:
            e["dicom"]["stored"] = True
    for e in report["inputs"]:
        e["input"] = f"{safe_url(url)} study {study} series {os.path.basename(e['input'])}"
    report["dicomweb"] = {"url": safe_url(url), "study": study,
                          "series": [r["series"] for r, _ in chosen], "skipped": skipped,
                          "stored": stored}
    from .. import modeldir

    modeldir.write_json(os.path.join(out_dir, "segment.json"), report)
    return report


def stow_files(url: str, paths) -> list[str]:
    """Store DICOM files (e.g. one result's SEG(s) and SR) on ``url`` in one STOW-RS request; all
    or nothing. Returns the stored SOP instance UIDs."""
    import pydicom

    datasets = []
    for p in paths:
        try:
            datasets.append(pydicom.dcmread(p))
        except Exception as exc:
            raise CMRRiskError(f"{p}: not a readable DICOM file ({exc}).") from exc
    return store(connect(url), url, datasets)
