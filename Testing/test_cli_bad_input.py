"""Bad input on the command line (found by a bad-input audit of every subcommand): a clear error
naming the file or option, exit status 2, no traceback, and nothing lost or half-written."""

import csv
import os

import nibabel as nib
import numpy as np
import pytest

from cmrrisk.cli import main
from cmrrisk.cli.common import os_error_message


def _covariates(path, n=30, seed=0):
    rng = np.random.default_rng(seed)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["subject", "time", "event", "age", "x"])
        for i in range(n):
            w.writerow([f"S{i:03d}", f"{rng.exponential(5):.3f}", int(rng.random() < 0.6),
                        int(rng.integers(40, 80)), f"{rng.normal():.3f}"])
    return str(path)


def _labels(path, arr):
    nib.save(nib.Nifti1Image(np.asarray(arr), np.diag([1.5, 1.5, 8.0, 1.0])), str(path))


def _run(argv, capsys):
    code = main(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def _lv_labels():
    lab = np.zeros((32, 32, 4), np.uint8)  # x, y, z as NIfTI stores it
    lab[10:20, 10:20] = 1
    lab[8:22, 8:10] = 2
    return lab


def test_model_output_never_replaces_a_folder_of_other_files(tmp_path, capsys):
    """`train` / `average-segmentation` save by replacing the output folder: a folder holding
    anything else (here the input manifest itself and a note) is refused before any work, and
    left as it was."""
    victim = tmp_path / "victim"
    victim.mkdir()
    manifest = _covariates(victim / "cov.csv")
    (victim / "notes.txt").write_text("keep me")
    before = sorted(os.listdir(victim))
    code, err = _run(["train", manifest, "--endpoint", "survival", "--model", "cox", "--cv", "0",
                      "--out", str(victim)], capsys)
    assert code == 2 and "would delete them" in err and "cov.csv" in err
    code, err = _run(["average-segmentation", "cine", "cine", "--out", str(victim)], capsys)
    assert code == 2 and "would delete them" in err
    assert sorted(os.listdir(victim)) == before and (victim / "notes.txt").read_text() == "keep me"
    # a model directory may be overwritten, and a new folder is fine
    model = tmp_path / "model"
    assert main(["train", manifest, "--endpoint", "survival", "--model", "cox", "--cv", "0", "--out", str(model)]) == 0
    assert main(["train", manifest, "--endpoint", "survival", "--model", "cox", "--cv", "0", "--out", str(model)]) == 0
    # ... but not when the user has put files of their own into it
    (model / "my_notes.txt").write_text("keep me")
    code, err = _run(["train", manifest, "--endpoint", "survival", "--model", "cox", "--cv", "0",
                      "--out", str(model)], capsys)
    assert code == 2 and "my_notes.txt" in err and (model / "my_notes.txt").read_text() == "keep me"


@pytest.mark.parametrize("argv, needle", [
    (["synth", "--n", "0", "--out", "{tmp}/s"], "--n 0: give at least 1"),
    (["synth", "--seed", "-1", "--out", "{tmp}/s"], "--seed -1: give at least 0"),
    (["train-segmentation", "--data", "{tmp}", "--out", "{tmp}/s", "--batch", "0"], "--batch 0: give at least 2"),
    (["train-segmentation", "--data", "{tmp}", "--out", "{tmp}/s", "--lr", "-1"], "--lr -1.0: give a positive"),
    (["train-segmentation", "--data", "{tmp}", "--out", "{tmp}/s", "--iterations", "0"], "--iterations 0"),
    (["train", "{cov}", "--endpoint", "survival", "--out", "{tmp}/s", "--threads", "-1"], "--threads -1"),
    (["train", "{cov}", "--endpoint", "survival", "--out", "{tmp}/s", "--cv", "1"], "--cv 1: give at least 2 folds"),
    (["train", "{cov}", "--endpoint", "survival", "--out", "{tmp}/s", "--max-features", "-1"], "--max-features -1"),
    (["train", "{cov}", "--endpoint", "survival", "--out", "{tmp}/s", "--max-epochs", "0"], "--max-epochs 0"),
    (["demo", "--cv", "1", "--out", "{tmp}/s"], "--cv 1"),
    (["qc", "{cov}", "--out", "{tmp}/s", "--workers", "0"], "--workers 0"),
])
def test_out_of_range_numbers_are_refused_before_any_work(tmp_path, capsys, argv, needle):
    cov = _covariates(tmp_path / "cov.csv")
    argv = [a.format(tmp=tmp_path, cov=cov) for a in argv]
    code, err = _run(argv, capsys)
    assert code == 2 and needle in err
    assert not (tmp_path / "s").exists()


def test_outputs_that_cannot_be_written_are_refused_before_the_work(tmp_path, capsys, monkeypatch):
    a_file = tmp_path / "afile"
    a_file.write_text("")
    lab = tmp_path / "f_seg.nii.gz"
    _labels(lab, _lv_labels())
    code, err = _run(["segment", str(lab), "--out", str(a_file)], capsys)
    assert code == 2 and "is a file; give a folder" in err
    code, err = _run(["evaluate-segmentation", "--pred", str(tmp_path), "--ref", str(tmp_path),
                      "--json", str(tmp_path)], capsys)
    assert code == 2 and "is a folder; give a file name" in err
    code, err = _run(["features", str(lab), "--out", str(a_file / "x.csv")], capsys)
    assert code == 2 and "is a file, so nothing can be written below it" in err
    ro = tmp_path / "ro"
    ro.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if os.path.abspath(p) == str(ro) else real_access(p, mode))
    code, err = _run(["segment", str(lab), "--out", str(ro / "out")], capsys)
    assert code == 2 and f"no permission to write in {ro}" in err


def test_os_errors_name_the_folder_not_a_temporary_file():
    exc = PermissionError(13, "Permission denied", "/data/out/.good_seg.tsxmvyxj.nii.gz")
    assert os_error_message(exc) == "/data/out: Permission denied"
    exc = FileNotFoundError(2, "No such file or directory", "/data/in/x.nii.gz")
    assert os_error_message(exc) == "/data/in/x.nii.gz: No such file or directory"


def test_evaluate_segmentation_refuses_non_label_maps_and_self_reference(tmp_path, capsys):
    pred, ref = tmp_path / "pred", tmp_path / "ref"
    pred.mkdir()
    ref.mkdir()
    _labels(pred / "f_seg.nii.gz", _lv_labels())
    # the prediction folder given as the reference: each file would be its own reference (Dice 1)
    code, err = _run(["evaluate-segmentation", "--pred", str(pred), "--ref", str(pred)], capsys)
    assert code == 2 and "its own reference" in err
    bad = _lv_labels()
    bad[0, 0, 0] = 7
    _labels(ref / "f_gt.nii.gz", bad)
    code, err = _run(["evaluate-segmentation", "--pred", str(pred), "--ref", str(ref)], capsys)
    assert code == 2 and "f_gt.nii.gz" in err and "[7]" in err
    code, err = _run(["evaluate-segmentation", "--pred", str(pred), "--ref", str(ref), "--ref-labels", "acdc"], capsys)
    assert code == 2 and "f_gt.nii.gz" in err and "ACDC labels are 0-3" in err
    _labels(ref / "f_gt.nii.gz", _lv_labels())
    img = np.random.default_rng(0).normal(100, 20, (32, 32, 4)).astype(np.float32)
    _labels(pred / "f_seg.nii.gz", img)  # an intensity image given as the prediction
    code, err = _run(["evaluate-segmentation", "--pred", str(pred), "--ref", str(ref)], capsys)
    assert code == 2 and "f_seg.nii.gz" in err and "looks like an image" in err
    _labels(pred / "f_seg.nii.gz", _lv_labels())
    assert main(["evaluate-segmentation", "--pred", str(pred), "--ref", str(ref)]) == 0


def test_predict_refuses_to_overwrite_its_manifest_and_names_a_damaged_model_file(tmp_path, capsys):
    cov = _covariates(tmp_path / "cov.csv")
    model = tmp_path / "m"
    assert main(["train", cov, "--endpoint", "survival", "--model", "cox", "--cv", "0", "--out", str(model)]) == 0
    before = open(cov).read()
    code, err = _run(["predict", str(model), cov, "--out", cov], capsys)
    assert code == 2 and "is an input of the command (manifest)" in err and open(cov).read() == before
    code, err = _run(["features", cov, "--out", cov], capsys)
    assert code == 2 and "is an input" in err and open(cov).read() == before
    code, err = _run(["report", "--model", str(model), "--test", cov, "--out", cov], capsys)
    assert code == 2 and "is an input of the command (--test)" in err and open(cov).read() == before
    code, err = _run(["report", "--model", str(model), "--out", str(tmp_path / "r.txt")], capsys)
    assert code == 2 and "ending in .html" in err
    (model / "checksums.json").write_text("{not json")
    code, err = _run(["predict", str(model), cov, "--out", str(tmp_path / "p.csv")], capsys)
    assert code == 2 and "checksums.json: not valid JSON" in err
    assert not (tmp_path / "p.csv").exists()


def test_train_segmentation_checks_init_and_data_first_and_leaves_no_empty_folder(tmp_path, capsys):
    out = tmp_path / "seg_model"
    code, err = _run(["train-segmentation", "--data", str(tmp_path / "nowhere"), "--out", str(out)], capsys)
    assert code == 2 and "no such folder" in err and not out.exists()
    (tmp_path / "data").mkdir()
    code, err = _run(["train-segmentation", "--data", str(tmp_path / "data"), "--out", str(out),
                      "--init", str(tmp_path / "no_model")], capsys)
    assert code == 2 and "no_model" in err and not out.exists()
    code, err = _run(["train-segmentation", "--data", str(tmp_path / "data"), "--out", str(out)], capsys)
    assert code == 2 and not out.exists()  # no subjects: refused, and the folder it made is gone
    code, err = _run(["average-segmentation", "cine", "cine", "--out", str(tmp_path / "avg"),
                      "--data", str(tmp_path / "nowhere")], capsys)
    assert code == 2 and "--data" in err and not (tmp_path / "avg").exists()


def test_synth_builds_the_cohort_aside_and_never_mixes_it_with_other_files(tmp_path, capsys, monkeypatch):
    from cmrrisk import synthetic as S

    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("x")
    code, err = _run(["synth", "--n", "1", "--out", str(other), "--quiet"], capsys)
    assert code == 2 and "keep.txt" in err and os.listdir(other) == ["keep.txt"]

    out = tmp_path / "cohort"
    real = S.cohort._subject

    def failing(i, ss, out_dir):
        if i == 1:
            raise RuntimeError("disk full")
        return real(i, ss, out_dir)

    monkeypatch.setattr(S.cohort, "_subject", failing)
    with pytest.raises(RuntimeError):
        S.generate_cohort(str(out), n=2, seed=0, progress=False)
    assert not out.exists() and os.listdir(tmp_path) == ["other"]  # no partial folder anywhere
    monkeypatch.setattr(S.cohort, "_subject", real)
    man = S.generate_cohort(str(out), n=1, seed=0, progress=False)
    assert man == str(out / "manifest.csv") and (out / "synthetic.json").is_file()
    S.generate_cohort(str(out), n=1, seed=1, progress=False)  # a previous cohort is replaced whole
    assert (out / "manifest.csv").is_file() and sorted(os.listdir(tmp_path)) == ["cohort", "other"]
    (out / "my_features.csv").write_text("the user's own file")
    code, err = _run(["synth", "--n", "1", "--out", str(out), "--quiet"], capsys)
    assert code == 2 and "my_features.csv" in err and (out / "my_features.csv").is_file()


def test_emidec_manifest_reads_every_case_before_writing_any(tmp_path, capsys):
    from PIL import Image

    root = tmp_path / "emidec"
    for d in ("images", "masks"):
        (root / d).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for case in ("Case_N001", "Case_N002", "Case_P003"):
        for sl in range(2):
            Image.fromarray(rng.integers(0, 255, (64, 64), dtype=np.uint8)).save(root / "images" / f"{case}_slice{sl:03d}.png")
            Image.fromarray(np.zeros((64, 64), np.uint8)).save(root / "masks" / f"{case}_slice{sl:03d}.png")
    (root / "images" / "Case_P003_slice001.png").write_bytes(b"\x89PNG broken")
    out = tmp_path / "m" / "manifest.csv"
    code, err = _run(["manifest", "emidec", str(root), "--out", str(out)], capsys)
    assert code == 2 and "Case_P003" in err
    assert not out.exists() and not (tmp_path / "m" / "emidec_volumes").exists()


def test_explain_checks_every_subject_and_the_method_before_writing(tmp_path, capsys):
    cov = _covariates(tmp_path / "cov.csv")
    model = tmp_path / "m"
    assert main(["train", cov, "--endpoint", "survival", "--model", "cox", "--cv", "0", "--out", str(model)]) == 0
    out = tmp_path / "ex"
    code, err = _run(["explain", str(model), cov, "--subject", "S001", "--subject", "NOPE", "--out", str(out)], capsys)
    assert code == 2 and "'NOPE'" in err and not out.exists()
    code, err = _run(["explain", str(model), cov, "--subject", "S001", "--method", "gradcam", "--out", str(out)], capsys)
    assert code == 2 and "Grad-CAM needs" in err and not out.exists()


def test_manifest_header_repeats_and_semicolons_are_named(tmp_path, capsys):
    dup = tmp_path / "dup.csv"
    dup.write_text("subject,time,event,age,age\nA,1,1,50,60\nB,2,0,55,61\nC,3,1,70,62\n")
    code, err = _run(["train", str(dup), "--endpoint", "survival", "--out", str(tmp_path / "m")], capsys)
    assert code == 2 and "column(s) age appear more than once" in err
    semi = tmp_path / "semi.csv"
    semi.write_text("subject;time;event;age\nA;1;1;50\n")
    code, err = _run(["train", str(semi), "--endpoint", "survival", "--out", str(tmp_path / "m")], capsys)
    assert code == 2 and "comma-separated" in err and not (tmp_path / "m").exists()


def test_errors_about_the_data_name_the_manifest(tmp_path, capsys):
    no_events = tmp_path / "no_events.csv"
    no_events.write_text("subject,time,event,age\n" + "".join(f"S{i},{i + 1},0,{50 + i}\n" for i in range(12)))
    code, err = _run(["train", str(no_events), "--endpoint", "survival", "--model", "cox", "--out",
                      str(tmp_path / "m")], capsys)
    assert code == 2 and str(no_events) in err and "event" in err


def test_explanation_files_stay_in_the_output_folder_whatever_the_subject_id():
    from cmrrisk.explain.core import _file_stem

    assert _file_stem("../../escape") == "_.._escape" and "/" not in _file_stem("site/p02")
    assert _file_stem("SYN001") == "SYN001" and _file_stem("patient-7.b") == "patient-7.b"
    assert _file_stem("...") == "subject"


def test_size_mismatch_is_stated_in_the_files_own_order(tmp_path, capsys):
    pred, ref = tmp_path / "pred", tmp_path / "ref"
    pred.mkdir()
    ref.mkdir()
    _labels(pred / "f_seg.nii.gz", np.zeros((32, 24, 4), np.uint8))  # x, y, z as written
    _labels(ref / "f_gt.nii.gz", np.zeros((32, 24, 5), np.uint8))
    code, err = _run(["evaluate-segmentation", "--pred", str(pred), "--ref", str(ref)], capsys)
    assert code == 2 and "size 32 x 24 x 4 differs" in err and "32 x 24 x 5" in err
