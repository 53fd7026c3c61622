"""DICOMweb against a real Orthanc (with its DICOMweb plugin): upload, fetch, segment, store SEG
and SR, query back; bad requests. Orthanc cannot bind to one address, so the server and the
tests that talk to it (Testing/dicomweb_inner.py) run together inside a private network
namespace; this test starts them there and reports their result."""

import os
import shlex
import sys

import pytest

from orthanc_server import missing, run_in_private_network

HERE = os.path.dirname(os.path.abspath(__file__))
WHY = missing()


@pytest.mark.skipif(WHY is not None, reason=WHY or "")
def test_dicomweb_against_orthanc(tmp_path):
    pytest.importorskip("dicomweb_client")
    pytest.importorskip("highdicom")
    cmd = " ".join(shlex.quote(a) for a in (
        sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-p", "no:warnings",
        "--basetemp", str(tmp_path / "inner"), os.path.join(HERE, "dicomweb_inner.py")))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(os.path.dirname(HERE), "CMRRiskExtension"), HERE]))
    r = run_in_private_network(f"cd {shlex.quote(HERE)} && {cmd}", capture_output=True, text=True, env=env,
                               timeout=1500)
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-3000:]
    assert " passed" in r.stdout and "3 passed" in r.stdout, r.stdout[-3000:]
