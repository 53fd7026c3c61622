"""Series on a DICOMweb server named in a cohort manifest.

An image cell of a manifest (``cine``, ``cine_ed``, ``cine_es``, ``lge``) may hold the DICOMweb
address of a series instead of a path::

    https://pacs.example.org/dicom-web/studies/<StudyInstanceUID>/series/<SeriesInstanceUID>

(the series' WADO-RS resource: the server's DICOMweb root, then ``/studies/UID/series/UID``).
:func:`fetch` retrieves each such series once into a cache folder and the manifest row then
points at that local DICOM folder, so every cohort command (features, qc, predict, evaluate,
explain) reads it as it reads a folder on disk. A series already in the cache (complete: its
marker file written after the last instance) is not fetched again; a fetch that fails leaves no
folder behind. Credentials come from the environment as for ``segment --dicomweb``
(:mod:`cmrrisk.dicomout.client`).

The cache is ``$CMRRISK_DICOMWEB_CACHE`` when set, else ``.cmrrisk-dicomweb/`` beside the
manifest; when a Dask cluster runs the cohort, put it on a file system the workers share.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile

from ..errors import CMRRiskError

ENV_CACHE = "CMRRISK_DICOMWEB_CACHE"
#: the marker of a complete series in the cache
COMPLETE = ".complete.json"
_UID = r"[0-9]+(?:\.[0-9]+)*"
_REF = re.compile(rf"^(?P<root>https?://[^?#]+?)/studies/(?P<study>{_UID})/series/(?P<series>{_UID})/?$")


def is_reference(cell: str) -> bool:
    """True when a manifest cell names a DICOMweb series (http or https) rather than a path."""
    return cell.lower().startswith(("http://", "https://"))


def parse_reference(cell: str) -> tuple[str, str, str]:
    """(DICOMweb root, study UID, series UID) of a series address; CMRRiskError saying the
    expected form otherwise."""
    from urllib.parse import urlsplit

    u = urlsplit(cell)
    if u.username or u.password:
        raise CMRRiskError("the address holds a user name or password; give credentials in the environment "
                           "(CMRRISK_DICOMWEB_USER / CMRRISK_DICOMWEB_PASSWORD or CMRRISK_DICOMWEB_TOKEN) instead.")
    m = _REF.match(cell)
    if not m or not u.hostname:
        raise CMRRiskError("not a DICOMweb series address; write it as "
                           "https://SERVER/DICOMWEB-ROOT/studies/STUDY-UID/series/SERIES-UID "
                           "(UIDs of digits and dots).")
    return m.group("root"), m.group("study"), m.group("series")


def cache_folder(manifest_path: str) -> str:
    """Where fetched series are kept for the manifest at ``manifest_path``."""
    env = os.environ.get(ENV_CACHE)
    if env:
        return os.path.abspath(env)
    return os.path.join(os.path.dirname(os.path.abspath(manifest_path)), ".cmrrisk-dicomweb")


def local_folder(cache: str, study: str, series: str) -> str:
    return os.path.join(cache, study, series)


def is_cached(cache: str, study: str, series: str) -> bool:
    return os.path.isfile(os.path.join(local_folder(cache, study, series), COMPLETE))


def fetch(refs: list, cache: str, say=None) -> dict:
    """Retrieve every series of ``refs`` (``[(label, address), ...]``; ``label`` starts an error's
    message, e.g. ``"cohort.csv: line 3, column lge"``) that is not complete in ``cache``.
    Returns ``{address: local folder}``. ``say(message)`` is told about each series fetched."""
    from .client import connect, retrieve_series, safe_url

    out, clients, todo = {}, {}, []
    for label, address in refs:
        if address in out:
            continue
        root, study, series = parse_reference(address)
        out[address] = local_folder(cache, study, series)
        if not is_cached(cache, study, series):
            todo.append((label, address, root, study, series))
    for n, (label, address, root, study, series) in enumerate(todo, start=1):
        if root not in clients:
            clients[root] = connect(root)
        dest = out[address]
        parent = os.path.dirname(dest)
        try:
            os.makedirs(parent, exist_ok=True)
        except OSError as exc:
            raise CMRRiskError(f"{label}: cannot create the DICOMweb cache folder {parent} ({exc.strerror}); "
                               f"set {ENV_CACHE} to a writable folder.") from None
        tmp = tempfile.mkdtemp(prefix=f".{series}-", dir=parent)
        try:
            count = retrieve_series(clients[root], root, study, series, tmp,
                                    label=f"{label}: {safe_url(address)}")
            if count == 0:
                raise CMRRiskError(f"{label}: {safe_url(address)}: the server returned no instances for this series.")
            with open(os.path.join(tmp, COMPLETE), "w", encoding="utf-8") as fh:
                json.dump({"address": safe_url(address), "instances": count}, fh)
            if os.path.isdir(dest):  # an older, incomplete copy
                shutil.rmtree(dest)
            os.replace(tmp, dest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if say is not None:
            say(f"fetched {n}/{len(todo)}: {safe_url(address)} ({count} instances) -> {dest}")
    return out


def stderr_say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
