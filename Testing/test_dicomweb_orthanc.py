"""DICOMweb against a real Orthanc (with its DICOMweb plugin): upload, fetch, segment, store SEG
and SR, query back; bad requests. Orthanc cannot bind to one address, so the server and the
tests that talk to it (Testing/dicomweb_inner.py) run together inside a private network
namespace; this test starts them there and reports their result."""

import pytest

from orthanc_server import missing, run_inner_tests

WHY = missing()


@pytest.mark.skipif(WHY is not None, reason=WHY or "")
def test_dicomweb_against_orthanc(tmp_path):
    pytest.importorskip("dicomweb_client")
    pytest.importorskip("highdicom")
    r = run_inner_tests("dicomweb_inner.py", tmp_path / "inner", timeout=1500)
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-3000:]
    assert " passed" in r.stdout and "4 passed" in r.stdout, r.stdout[-3000:]
