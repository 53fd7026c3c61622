"""Manifest image cells that hold a series' DICOMweb address (cmrrisk.dicomout.remote): the form
checked with the line and column named, a series already in the cache read without the server,
an unreachable server one clear error with nothing left in the cache. The fetch from a real
server is tested against Orthanc (Testing/dicomweb_inner.py)."""

import json
import os

import pytest

from cmrrisk.errors import CMRRiskError
from cmrrisk.manifest import read_manifest

STUDY, SERIES = "1.2.826.0.1.3680043.8.498.1", "1.2.826.0.1.3680043.8.498.1.2"
#: nothing listens on the discard port: a fetch from it fails at once
DEAD = "http://127.0.0.1:9/dicom-web"


def _manifest(tmp_path, cell, column="cine"):
    p = tmp_path / "m.csv"
    p.write_text(f"subject,{column}\ns1,{cell}\n")
    return str(p)


@pytest.mark.parametrize("cell, words", [
    (f"{DEAD}/studies/{STUDY}", "not a DICOMweb series address"),
    (f"{DEAD}/studies/{STUDY}/series/abc", "not a DICOMweb series address"),
    (f"http://user:pw@127.0.0.1:9/dicom-web/studies/{STUDY}/series/{SERIES}", "user name or password"),
])
def test_bad_addresses_name_line_and_column(tmp_path, cell, words):
    with pytest.raises(CMRRiskError) as e:
        read_manifest(_manifest(tmp_path, cell))
    msg = str(e.value)
    assert "line 2, column cine" in msg and words in msg
    assert "pw" not in msg.replace("password", "")
    assert not (tmp_path / ".cmrrisk-dicomweb").exists()


def test_segmentation_columns_take_paths(tmp_path):
    with pytest.raises(CMRRiskError, match="line 2, column lge_seg: a DICOMweb address"):
        read_manifest(_manifest(tmp_path, f"{DEAD}/studies/{STUDY}/series/{SERIES}", "lge_seg"))


def test_without_path_checks_the_address_stays(tmp_path):
    cell = f"{DEAD}/studies/{STUDY}/series/{SERIES}"
    man = read_manifest(_manifest(tmp_path, cell), check_paths=False)
    assert man.rows[0]["cine"] == cell and man.remote == {}


def test_cached_series_is_read_without_the_server(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    folder = cache / STUDY / SERIES
    folder.mkdir(parents=True)
    (folder / ".complete.json").write_text(json.dumps({"instances": 0}))
    monkeypatch.setenv("CMRRISK_DICOMWEB_CACHE", str(cache))
    cell = f"{DEAD}/studies/{STUDY}/series/{SERIES}"
    said = []
    man = read_manifest(_manifest(tmp_path, cell), require_images=True, say=said.append)
    assert man.rows[0]["cine"] == str(folder)
    assert man.remote == {"s1": {"cine": cell}} and said == []


def test_default_cache_is_beside_the_manifest(tmp_path, monkeypatch):
    from cmrrisk.dicomout.remote import cache_folder

    monkeypatch.delenv("CMRRISK_DICOMWEB_CACHE", raising=False)
    assert cache_folder(str(tmp_path / "m.csv")) == str(tmp_path / ".cmrrisk-dicomweb")


def test_unreachable_server_is_one_error_and_leaves_nothing(tmp_path, monkeypatch):
    pytest.importorskip("dicomweb_client")
    cache = tmp_path / "cache"
    monkeypatch.setenv("CMRRISK_DICOMWEB_CACHE", str(cache))
    with pytest.raises(CMRRiskError) as e:
        read_manifest(_manifest(tmp_path, f"{DEAD}/studies/{STUDY}/series/{SERIES}"), require_images=True)
    msg = str(e.value)
    assert msg.startswith(f"{tmp_path / 'm.csv'}: line 2, column cine: ") and "cannot connect" in msg
    assert not os.path.exists(cache / STUDY / SERIES)
    assert list((cache / STUDY).iterdir()) == []
