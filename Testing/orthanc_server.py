"""A throw-away Orthanc with its DICOMweb plugin for the DICOMweb tests.

Orthanc 1.10 cannot bind to one address, so it must only ever run inside a private network
namespace (``unshare -n`` with ``lo`` up): :func:`run_in_private_network` runs a command there,
and the tests that talk to Orthanc run inside it (see test_dicomweb_orthanc.py). The server
listens on a free port with HTTP only, remote access off, the DICOM server off, storage in a
temporary folder, and is stopped by its own process id.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
import urllib.request

import netns

ORTHANC = shutil.which("Orthanc") or ("/usr/sbin/Orthanc" if os.path.exists("/usr/sbin/Orthanc") else None)
PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"
USER, PASSWORD = "cmrrisk-test", "Orthanc-test-pw-4711"


def missing() -> str | None:
    """Why an Orthanc test cannot run here (None when it can)."""
    if not ORTHANC:
        return "Orthanc is not installed (Debian: apt-get install orthanc orthanc-dicomweb)"
    if not os.path.exists(PLUGIN):
        return f"the Orthanc DICOMweb plugin is not installed ({PLUGIN}; Debian: orthanc-dicomweb)"
    return netns.unavailable()


def run_in_private_network(cmd: str, **kw):
    """``cmd`` (a shell line) inside a new network namespace whose only interface is ``lo``."""
    return netns.run_private(cmd, **kw)


@contextlib.contextmanager
def orthanc(folder, lua: str | None = None, timeout: float = 60):
    """Start Orthanc with its storage and configuration in ``folder``; yield its DICOMweb root
    URL; stop it by its process id. Basic authentication with :data:`USER` / :data:`PASSWORD`."""
    folder = str(folder)
    os.makedirs(folder, exist_ok=True)
    port = netns.free_port()
    cfg = {"Name": "cmrrisk-test", "StorageDirectory": os.path.join(folder, "db"),
           "IndexDirectory": os.path.join(folder, "db"), "HttpPort": port, "DicomServerEnabled": False,
           "RemoteAccessAllowed": False, "AuthenticationEnabled": True, "RegisteredUsers": {USER: PASSWORD},
           "SslEnabled": False, "HttpsVerifyPeers": False, "Plugins": [PLUGIN],
           "DicomWeb": {"Enable": True, "Root": "/dicom-web/"}, "StableAge": 1}
    if lua:
        path = os.path.join(folder, "filter.lua")
        with open(path, "w") as f:
            f.write(lua)
        cfg["LuaScripts"] = [path]
    cfg_path = os.path.join(folder, "orthanc.json")
    with open(cfg_path, "w") as f:
        json.dump(cfg, f)
    log = open(os.path.join(folder, "orthanc.log"), "w")
    proc = subprocess.Popen([ORTHANC, cfg_path], stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        mgr = urllib.request.HTTPPasswordMgrWithDefaultRealm()
        mgr.add_password(None, base, USER, PASSWORD)
        opener = urllib.request.build_opener(urllib.request.HTTPBasicAuthHandler(mgr))
        t0 = time.monotonic()
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"Orthanc exited with {proc.returncode}; see {log.name}")
            try:
                with opener.open(f"{base}/system", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() - t0 > timeout:
                raise RuntimeError(f"Orthanc did not answer /system within {timeout} s; see {log.name}")
            time.sleep(0.2)
        yield f"{base}/dicom-web"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def client(url: str):
    """A DICOMweb client of the test server, made by the project's own ``connect`` with the test
    credentials in the environment (as a user would give them)."""
    from unittest import mock

    from cmrrisk.dicomout.client import connect

    with mock.patch.dict(os.environ, {"CMRRISK_DICOMWEB_USER": USER, "CMRRISK_DICOMWEB_PASSWORD": PASSWORD}):
        return connect(url)


def run_inner_tests(inner_file: str, basetemp, timeout: float):
    """Run the pytest file ``inner_file`` (beside this one) together with its Orthanc inside a
    private network namespace; returns the finished process (stdout, stderr, return code)."""
    import shlex
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    cmd = " ".join(shlex.quote(a) for a in (
        sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-p", "no:warnings",
        "--basetemp", str(basetemp), os.path.join(here, inner_file)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(os.path.dirname(here), "CMRRiskExtension"), here]))
    return run_in_private_network(f"cd {shlex.quote(here)} && {cmd}", capture_output=True, text=True, env=env,
                                  timeout=timeout)
