"""DICOMweb: find and retrieve series (QIDO-RS, WADO-RS), segment them, store the SEG and SR
back (STOW-RS), with ``dicomweb-client``.

Credentials come from the environment only, never from the command line, and are never printed:
``CMRRISK_DICOMWEB_TOKEN`` (sent as a bearer token) or ``CMRRISK_DICOMWEB_USER`` with
``CMRRISK_DICOMWEB_PASSWORD`` (HTTP basic authentication).

Storing is all or nothing: the SEG(s) and SR of an input go in one STOW-RS request; when the
server refuses any of them, the ones it accepted are deleted again (where the server allows
deleting) and the command fails.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings

from ..errors import CMRRiskError

ENV_TOKEN = "CMRRISK_DICOMWEB_TOKEN"
ENV_USER = "CMRRISK_DICOMWEB_USER"
ENV_PASSWORD = "CMRRISK_DICOMWEB_PASSWORD"
#: seconds to wait for the server (connect, read)
TIMEOUT = (10, 300)
#: attempts per request (busy servers answer 429 / 503 now and then), 0.5 s and 1 s apart
RETRY_ATTEMPTS = 3
#: series that are results, not images
RESULT_MODALITIES = ("SEG", "SR", "RTSTRUCT", "PR", "KO", "DOC")


def _safe_url(url: str) -> str:
    """The URL without any user:password part (for messages)."""
    from urllib.parse import urlsplit, urlunsplit

    u = urlsplit(url)
    host = u.hostname or ""
    if u.port:
        host = f"{host}:{u.port}"
    return urlunsplit((u.scheme, host, u.path, "", ""))


def connect(url: str):
    """A DICOMwebClient for ``url`` with the credentials of the environment."""
    from dicomweb_client import DICOMwebClient
    from urllib.parse import urlsplit

    u = urlsplit(url)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise CMRRiskError(f"--dicomweb {_safe_url(url)}: give the server's DICOMweb root as an http(s) URL, "
                           "e.g. https://pacs.example.org/dicom-web.")
    if u.username or u.password:
        raise CMRRiskError("--dicomweb: the URL holds a user name or password; give credentials in the "
                           f"environment ({ENV_USER} / {ENV_PASSWORD} or {ENV_TOKEN}) instead.")
    headers, auth = {}, None
    token = os.environ.get(ENV_TOKEN)
    user, password = os.environ.get(ENV_USER), os.environ.get(ENV_PASSWORD)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    elif user or password:
        if not (user and password):
            raise CMRRiskError(f"{ENV_USER} and {ENV_PASSWORD}: set both (or neither) for basic authentication.")
        auth = (user, password)
    client = DICOMwebClient(url.rstrip("/"), headers=headers or None, permissive_uid=True, timeout=TIMEOUT)
    _http(client).auth = auth
    # dicomweb-client retries every failed request (a refused connection too) five times with
    # waits of 2, 4, 8 and 16 s; a server that is down should be reported in seconds
    client.set_http_retry_params(retry=True, max_attempts=RETRY_ATTEMPTS, wait_exponential_multiplier=250)
    return client


def _http_error(url: str, exc, what: str) -> CMRRiskError:
    import requests

    if isinstance(exc, requests.exceptions.ConnectionError):
        return CMRRiskError(f"--dicomweb {_safe_url(url)}: cannot connect to the server ({what}); check the "
                            "URL and that the server is running.")
    if isinstance(exc, requests.exceptions.Timeout):
        return CMRRiskError(f"--dicomweb {_safe_url(url)}: the server did not answer in time ({what}).")
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if status in (401, 403):
        return CMRRiskError(f"--dicomweb {_safe_url(url)}: the server refused the credentials (HTTP {status}, "
                            f"{what}); set {ENV_USER}/{ENV_PASSWORD} or {ENV_TOKEN}.")
    return CMRRiskError(f"--dicomweb {_safe_url(url)}: {what} failed (HTTP {status or '?'}: "
                        f"{str(exc).splitlines()[0][:200]}).")


def _value(d: dict, tag: str):
    v = d.get(tag, {}).get("Value")
    return v[0] if v else None


def find_series(client, url: str, study: str, series: str | None) -> list[dict]:
    """[{"series": UID, "modality", "description"}] of the image series to segment."""
    import requests

    try:
        found = client.search_for_series(study_instance_uid=study)
    except requests.exceptions.RequestException as exc:
        raise _http_error(url, exc, f"search for the series of study {study}") from exc
    if not found:
        raise CMRRiskError(f"--study {study}: no such study on {_safe_url(url)} (or it holds no series); "
                           "check the Study Instance UID.")
    rows = [{"series": str(_value(d, "0020000E")), "modality": str(_value(d, "00080060") or ""),
             "description": str(_value(d, "0008103E") or "")} for d in found]
    if series:
        rows = [r for r in rows if r["series"] == series]
        if not rows:
            raise CMRRiskError(f"--series {series}: not in study {study} on {_safe_url(url)}; check the "
                               "Series Instance UID.")
        return rows
    return [r for r in rows if r["modality"] not in RESULT_MODALITIES]


def retrieve_series(client, url: str, study: str, series: str, folder: str) -> int:
    """Write every instance of the series into ``folder``; the number of instances."""
    import requests

    try:
        instances = client.retrieve_series(study, series)
    except requests.exceptions.RequestException as exc:
        raise _http_error(url, exc, f"retrieve series {series}") from exc
    os.makedirs(folder, exist_ok=True)
    for i, ds in enumerate(instances):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds.save_as(os.path.join(folder, f"{i:05d}.dcm"), enforce_file_format=False)
    return len(instances)


def classify_remote(client, url: str, study: str, series: str) -> dict:
    """cine / lge / unknown of a remote series from its metadata (no pixel data fetched)."""
    import requests
    from pydicom import Dataset

    from ..dicom import quiet_pydicom, classify_series, meta_from_headers

    try:
        meta = client.retrieve_series_metadata(study, series)
    except requests.exceptions.RequestException as exc:
        raise _http_error(url, exc, f"read the metadata of series {series}") from exc
    with quiet_pydicom():
        datasets = [Dataset.from_json(m) for m in meta]
        if not datasets:
            return {"kind": "unknown", "reason": "no instances"}
        return classify_series(meta_from_headers(datasets))


def store(client, url: str, datasets: list) -> list[str]:
    """Store ``datasets`` in one STOW-RS request; all or nothing. Returns their SOP instance UIDs."""
    import requests

    uids = [str(d.SOPInstanceUID) for d in datasets]
    try:
        resp = client.store_instances(datasets=datasets)
    except requests.exceptions.RequestException as exc:
        err = _http_error(url, exc, "store the SEG and SR (STOW-RS)")
        kept = _undo(client, url, datasets)
        raise CMRRiskError(f"{err}{_kept_note(kept)}") from exc
    failed = resp.get("FailedSOPSequence") if resp is not None else None
    if failed:
        kept = _undo(client, url, datasets)
        reasons = sorted({str(f.get("FailureReason", "?")) for f in failed})
        raise CMRRiskError(f"--stow: {_safe_url(url)} refused {len(failed)} of {len(datasets)} instances "
                           f"(failure reasons {', '.join(reasons)}){_kept_note(kept)}")
    # some servers accept and then drop an instance (Orthanc's filters answer "filtered out" with
    # success): check that every one can be found
    missing = [d for d in datasets if not _held(client, d)]
    if missing:
        kept = _undo(client, url, datasets)
        raise CMRRiskError(f"--stow: {_safe_url(url)} accepted but did not keep {len(missing)} of {len(datasets)} "
                           f"instances ({', '.join(str(d.SOPInstanceUID) for d in missing)}){_kept_note(kept)}")
    return uids


def _held(client, d) -> bool:
    import requests

    try:
        return bool(client.search_for_instances(str(d.StudyInstanceUID), str(d.SeriesInstanceUID),
                                                search_filters={"SOPInstanceUID": str(d.SOPInstanceUID)}))
    except requests.exceptions.RequestException:
        return False


def _kept_note(kept: list) -> str:
    if not kept:
        return "; nothing of this result was kept on the server."
    return (f"; the server kept {len(kept)} instance(s) it had accepted and would not delete them "
            f"({', '.join(kept)}); delete them on the server.")


def _undo(client, url: str, datasets) -> list[str]:
    """Delete whatever of ``datasets`` the server holds; the SOP instance UIDs it still holds.

    DICOMweb DELETE first; Orthanc (whose DICOMweb plugin has no DELETE) through its REST API,
    found as the parent of the DICOMweb root."""
    import requests

    kept = []
    for d in datasets:
        study, series, sop = str(d.StudyInstanceUID), str(d.SeriesInstanceUID), str(d.SOPInstanceUID)
        try:
            if not client.search_for_instances(study, series, search_filters={"SOPInstanceUID": sop}):
                continue
        except requests.exceptions.RequestException:
            kept.append(sop)
            continue
        try:
            client.delete_instance(study, series, sop)
            continue
        except Exception:
            pass
        if not _orthanc_delete(client, url, sop):
            kept.append(sop)
    return kept


def _http(client):
    """The requests HTTP client a DICOMwebClient sends through (it makes its own; the library
    has no public accessor): credentials go onto it, and Orthanc's REST calls reuse it."""
    return client._session


def _orthanc_delete(client, url: str, sop: str) -> bool:
    base = url.rstrip("/").rsplit("/", 1)[0]
    http = _http(client)
    try:
        system = http.get(f"{base}/system", timeout=TIMEOUT)
        if system.status_code != 200 or "DicomAet" not in system.json():
            return False
        found = http.post(f"{base}/tools/lookup", data=sop, timeout=TIMEOUT).json()
        ids = [f["ID"] for f in found if f.get("Type") == "Instance"]
        return bool(ids) and all(http.delete(f"{base}/instances/{i}", timeout=TIMEOUT).status_code == 200
                                 for i in ids)
    except Exception:
        return False


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
        e["input"] = f"{_safe_url(url)} study {study} series {os.path.basename(e['input'])}"
    report["dicomweb"] = {"url": _safe_url(url), "study": study,
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
