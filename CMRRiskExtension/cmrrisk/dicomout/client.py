"""The DICOMweb client side: connect with the environment's credentials, find series (QIDO-RS),
retrieve them (WADO-RS), store results (STOW-RS, all or nothing), with ``dicomweb-client``.

Credentials come from the environment only, never from the command line, and are never printed:
``CMRRISK_DICOMWEB_TOKEN`` (sent as a bearer token) or ``CMRRISK_DICOMWEB_USER`` with
``CMRRISK_DICOMWEB_PASSWORD`` (HTTP basic authentication).

Storing is all or nothing: when the server refuses any instance of a request, the ones it accepted
are deleted again (where the server allows deleting) and the call fails.

This module imports nothing of the segmentation side, so that cohort manifests can fetch the
series they reference (:mod:`cmrrisk.dicomout.remote`).
"""

from __future__ import annotations

import os
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


def safe_url(url: str) -> str:
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
        raise CMRRiskError(f"--dicomweb {safe_url(url)}: give the server's DICOMweb root as an http(s) URL, "
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


def http_error(url: str, exc, what: str, label: str | None = None) -> CMRRiskError:
    """One line for a failed request; ``label`` starts it (default: ``--dicomweb URL``)."""
    import requests

    label = label or f"--dicomweb {safe_url(url)}"

    if isinstance(exc, requests.exceptions.ConnectionError):
        return CMRRiskError(f"{label}: cannot connect to the server ({what}); check the "
                            "URL and that the server is running.")
    if isinstance(exc, requests.exceptions.Timeout):
        return CMRRiskError(f"{label}: the server did not answer in time ({what}).")
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if status in (401, 403):
        return CMRRiskError(f"{label}: the server refused the credentials (HTTP {status}, "
                            f"{what}); set {ENV_USER}/{ENV_PASSWORD} or {ENV_TOKEN}.")
    return CMRRiskError(f"{label}: {what} failed (HTTP {status or '?'}: "
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
        raise http_error(url, exc, f"search for the series of study {study}") from exc
    if not found:
        raise CMRRiskError(f"--study {study}: no such study on {safe_url(url)} (or it holds no series); "
                           "check the Study Instance UID.")
    rows = [{"series": str(_value(d, "0020000E")), "modality": str(_value(d, "00080060") or ""),
             "description": str(_value(d, "0008103E") or "")} for d in found]
    if series:
        rows = [r for r in rows if r["series"] == series]
        if not rows:
            raise CMRRiskError(f"--series {series}: not in study {study} on {safe_url(url)}; check the "
                               "Series Instance UID.")
        return rows
    return [r for r in rows if r["modality"] not in RESULT_MODALITIES]


def retrieve_series(client, url: str, study: str, series: str, folder: str, label: str | None = None) -> int:
    """Write every instance of the series into ``folder``; the number of instances. ``label``
    starts an error's message (see :func:`http_error`)."""
    import requests

    try:
        instances = client.retrieve_series(study, series)
    except requests.exceptions.RequestException as exc:
        raise http_error(url, exc, f"retrieve series {series}", label) from exc
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
        raise http_error(url, exc, f"read the metadata of series {series}") from exc
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
        err = http_error(url, exc, "store the SEG and SR (STOW-RS)")
        kept = _undo(client, url, datasets)
        raise CMRRiskError(f"{err}{_kept_note(kept)}") from exc
    failed = resp.get("FailedSOPSequence") if resp is not None else None
    if failed:
        kept = _undo(client, url, datasets)
        reasons = sorted({str(f.get("FailureReason", "?")) for f in failed})
        raise CMRRiskError(f"--stow: {safe_url(url)} refused {len(failed)} of {len(datasets)} instances "
                           f"(failure reasons {', '.join(reasons)}){_kept_note(kept)}")
    # some servers accept and then drop an instance (Orthanc's filters answer "filtered out" with
    # success): check that every one can be found
    missing = [d for d in datasets if not _held(client, d)]
    if missing:
        kept = _undo(client, url, datasets)
        raise CMRRiskError(f"--stow: {safe_url(url)} accepted but did not keep {len(missing)} of {len(datasets)} "
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
