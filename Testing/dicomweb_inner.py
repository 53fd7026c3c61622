"""DICOMweb round trip against a real Orthanc. Not collected by the normal run: these tests
run inside a private network namespace, started by test_dicomweb_orthanc.py."""

import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

from orthanc_server import PASSWORD, USER, orthanc
from orthanc_server import client as _client
from synthdicom import synthetic_subject, write_series

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {"CMRRISK_DICOMWEB_USER": USER, "CMRRISK_DICOMWEB_PASSWORD": PASSWORD}
REFUSE_SR = """
function ReceivedInstanceFilter(dicom, origin, info)
  return dicom.Modality ~= 'SR'
end
"""


def _upload(client, folder):
    import pydicom

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sets = [pydicom.dcmread(os.path.join(folder, n)) for n in sorted(os.listdir(folder))]
    resp = client.store_instances(sets)
    assert not resp.get("FailedSOPSequence")


def _cli(*args, env=None):
    e = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "CMRRiskExtension"), **(env or {}))
    return subprocess.run([sys.executable, "-m", "cmrrisk", *args], capture_output=True, text=True, env=e)


def _modalities(client, study):
    return sorted(str(s["00080060"]["Value"][0]) for s in client.search_for_series(study_instance_uid=study))


@pytest.fixture(scope="module")
def subject():
    return synthetic_subject(seed=0)


@pytest.fixture
def server(tmp_path):
    with orthanc(tmp_path / "orthanc") as url:
        yield url


def test_round_trip(tmp_path, server, subject):
    client = _client(server)
    folder = tmp_path / "cine"
    study, series = write_series(folder, [subject["ed_img"], subject["es_img"]], subject["spacing"])
    _upload(client, folder)
    out = tmp_path / "out"
    r = _cli("segment", "--dicomweb", server, "--study", study, "--out", str(out), "--stow", "--threads", "1",
             "--quiet", env=ENV)
    assert r.returncode == 0, r.stderr
    assert PASSWORD not in r.stdout + r.stderr + (out / "segment.json").read_text()
    rep = json.loads((out / "segment.json").read_text())
    assert rep["dicomweb"]["series"] == [series] and len(rep["dicomweb"]["stored"]) == 3
    # query back (QIDO-RS): the study now holds the image series, two SEGs in one series, the SR
    assert _modalities(client, study) == ["MR", "SEG", "SR"]
    local = {os.path.basename(f): f for f in rep["inputs"][0]["dicom"]["files"]}
    from cmrrisk.dicomout.seg import read_seg
    from cmrrisk.dicomout.sr import read_measurements

    for name in ("seg_ed.dcm", "seg_es.dcm"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pydicom

            mine = pydicom.dcmread(local[name])
        stored = client.retrieve_instance(study, str(mine.SeriesInstanceUID), str(mine.SOPInstanceUID))
        a, b = read_seg(stored), read_seg(mine)
        assert np.array_equal(a["labels"], b["labels"]) and a["labels"].any()
        assert [s["type"][0] for s in a["segments"]] == ["87612001", "49848007", "87612001"]
    sr_series = [s for s in client.search_for_series(study_instance_uid=study) if s["00080060"]["Value"][0] == "SR"][0]
    sr_uid = sr_series["0020000E"]["Value"][0]
    inst = client.search_for_instances(study, sr_uid)[0]["00080018"]["Value"][0]
    ms = read_measurements(client.retrieve_instance(study, sr_uid, inst))
    codes = {m["code"][0] for m in ms}
    assert {"18026-5", "18148-7", "8811-2", "18087-7"} <= codes
    ef = [m["value"] for m in ms if m["code"][0] == "8811-2"][0]
    assert ef == pytest.approx(rep["inputs"][0]["indices"]["lv_ef_pct"], abs=1e-6)
    # a second run stores the same UIDs: the server does not collect duplicates
    r = _cli("segment", "--dicomweb", server, "--study", study, "--out", str(tmp_path / "out2"), "--stow",
             "--threads", "1", "--quiet", env=ENV)
    assert r.returncode == 0, r.stderr
    assert len(client.search_for_instances(study, sr_uid)) == 1
    assert _modalities(client, study) == ["MR", "SEG", "SR"]


def test_bad_requests(tmp_path, server, subject):
    client = _client(server)
    folder = tmp_path / "cine"
    study, series = write_series(folder, [subject["ed_img"], subject["es_img"]], subject["spacing"])
    _upload(client, folder)
    loc = tmp_path / "loc"
    study2, loc_series = write_series(loc, [subject["ed_img"][:1]], subject["spacing"], study_uid=study,
                                      description="localizer")
    _upload(client, loc)
    out = tmp_path / "out"

    def check(r, *words):
        assert r.returncode == 2, r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
        for w in words:
            assert w in lines[0], lines[0]
        assert not out.exists()
        assert PASSWORD not in r.stderr + r.stdout

    check(_cli("segment", "--dicomweb", server, "--study", "1.2.3.999", "--out", str(out), "--quiet", env=ENV),
          "--study 1.2.3.999", "no such study")
    check(_cli("segment", "--dicomweb", server, "--study", study, "--series", loc_series, "--out", str(out),
               "--quiet", env=ENV), "not a short-axis cine or LGE")
    check(_cli("segment", "--dicomweb", server, "--study", study, "--series", "1.2.3.4", "--out", str(out),
               "--quiet", env=ENV), "--series 1.2.3.4")
    check(_cli("segment", "--dicomweb", server, "--study", study, "--out", str(out), "--quiet",
               env={"CMRRISK_DICOMWEB_USER": USER, "CMRRISK_DICOMWEB_PASSWORD": "wrong"}), "HTTP 401")
    assert _modalities(client, study) == ["MR", "MR"]


def test_refused_stow_leaves_nothing(tmp_path, subject):
    with orthanc(tmp_path / "orthanc", lua=REFUSE_SR) as server:
        client = _client(server)
        folder = tmp_path / "cine"
        study, _series = write_series(folder, [subject["ed_img"], subject["es_img"]], subject["spacing"])
        _upload(client, folder)
        r = _cli("segment", "--dicomweb", server, "--study", study, "--out", str(tmp_path / "out"), "--stow",
                 "--threads", "1", "--quiet", env=ENV)
        assert r.returncode == 2
        last = r.stderr.strip().splitlines()[-1]
        assert "did not keep 1 of 3" in last and "nothing of this result was kept" in last, r.stderr
        assert _modalities(client, study) == ["MR"]  # the SEGs it had accepted were deleted again


def test_manifest_names_series_on_the_server(tmp_path, server, subject):
    """A manifest cell holding a series' DICOMweb address: the series is fetched once into the
    cache and the cohort command gives the table a local DICOM folder gives; a wrong address is
    one line naming the manifest's line and column, with nothing left in the cache."""
    import csv

    client = _client(server)
    folder = tmp_path / "cine"
    study, series = write_series(folder, [subject["ed_img"], subject["es_img"]], subject["spacing"])
    _upload(client, folder)
    cache = tmp_path / "cache"
    env = dict(ENV, CMRRISK_DICOMWEB_CACHE=str(cache))
    tables = {}
    for name, cell in (("local", str(folder)), ("remote", f"{server}/studies/{study}/series/{series}")):
        man = tmp_path / f"{name}.csv"
        man.write_text(f"subject,cine,age\ns1,{cell},60\n")
        r = _cli("features", str(man), "--out", str(tmp_path / f"{name}.csv.features.csv"), "--no-deep",
                 "--workers", "1", "--quiet", env=env)
        assert r.returncode == 0, r.stderr
        with open(tmp_path / f"{name}.csv.features.csv", newline="") as fh:
            tables[name] = list(csv.DictReader(fh))
        if name == "remote":
            assert "fetched 1/1" in r.stderr and PASSWORD not in r.stderr + r.stdout
            assert (cache / study / series / ".complete.json").is_file()
    assert tables["remote"] == tables["local"]
    # the second run reads the cache: nothing fetched
    r = _cli("features", str(tmp_path / "remote.csv"), "--out", str(tmp_path / "again.csv"), "--no-deep",
             "--workers", "1", "--quiet", env=env)
    assert r.returncode == 0 and "fetched" not in r.stderr, r.stderr
    # a series the server does not hold
    bad = tmp_path / "bad.csv"
    bad.write_text(f"subject,cine\ns1,{server}/studies/{study}/series/1.2.3.4\n")
    r = _cli("features", str(bad), "--out", str(tmp_path / "bad_features.csv"), "--quiet", env=env)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "line 2, column cine" in lines[0] and "1.2.3.4" in lines[0], r.stderr
    assert not (cache / study / "1.2.3.4").exists()
    assert [p.name for p in (cache / study).iterdir()] == [series]  # no temporary folder left
    assert not (tmp_path / "bad_features.csv").exists()
