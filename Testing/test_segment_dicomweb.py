"""CMRRisk Segment's "Send to server" and "Import SEG" against a real Orthanc: the module's Logic
stores an exported SEG + SR with credentials from the environment (refused with wrong ones,
nothing stored), and the SEG fetched back imports with the labels exported. Orthanc cannot bind
to one address, so the server and the test that talks to it (Testing/segment_dicomweb_inner.py)
run together inside a private network namespace (Testing/orthanc_server.py)."""

import pytest

from orthanc_server import missing, run_inner_tests

WHY = missing()


@pytest.mark.skipif(WHY is not None, reason=WHY or "")
def test_send_and_import_against_orthanc(tmp_path):
    pytest.importorskip("slicer")
    pytest.importorskip("dicomweb_client")
    pytest.importorskip("highdicom")
    r = run_inner_tests("segment_dicomweb_inner.py", tmp_path / "inner", timeout=900)
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-3000:]
    assert "1 passed" in r.stdout, r.stdout[-3000:]
