"""Synthetic cohort generator (cmrrisk.synthetic): determinism, labels, geometry, manifest,
truth columns and the known hazard."""

import csv
import json
import os

import numpy as np
import pytest
from scipy import ndimage

from cmrrisk import synthetic as S
from cmrrisk.image import read_image
from cmrrisk.manifest import read_manifest
from cmrrisk.metrics import clinical_indices, scar_burden_pct

N = 2


@pytest.fixture(scope="module")
def cohorts(tmp_path_factory):
    a = tmp_path_factory.mktemp("synth_a")
    b = tmp_path_factory.mktemp("synth_b")
    ma = S.generate_cohort(str(a), n=N, seed=3, progress=False)
    mb = S.generate_cohort(str(b), n=N, seed=3, progress=False)
    return ma, mb


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_same_seed_same_cohort(cohorts):
    ma, mb = cohorts
    with open(ma, "rb") as fa, open(mb, "rb") as fb:
        assert fa.read() == fb.read()
    ja = json.load(open(os.path.join(os.path.dirname(ma), "synthetic.json")))
    jb = json.load(open(os.path.join(os.path.dirname(mb), "synthetic.json")))
    assert ja == jb and ja["seed"] == 3 and ja["n"] == N
    for ra, rb in zip(_rows(ma), _rows(mb)):
        for col in ("cine_ed", "cine_es", "lge", "cine_ed_seg", "cine_es_seg", "lge_seg"):
            va = read_image(os.path.join(os.path.dirname(ma), ra[col]))
            vb = read_image(os.path.join(os.path.dirname(mb), rb[col]))
            assert np.array_equal(va.array, vb.array) and np.allclose(va.ijk_to_ras, vb.ijk_to_ras)
    # the truth-only path gives the same rows as the written cohort
    truth = S.cohort_truth(N, 3)
    for ra, rt in zip(_rows(ma), truth):
        for col in ("age", "sex", "diabetes", "time", "event") + S.TRUE_COLUMNS:
            assert ra[col] == str(rt[col])


def test_other_seed_differs(tmp_path):
    a = S.cohort_truth(2, 3)
    b = S.cohort_truth(2, 4)
    assert [r["true_log_hazard"] for r in a] != [r["true_log_hazard"] for r in b]


def test_manifest_columns_and_validation(cohorts):
    ma, _ = cohorts
    man = read_manifest(ma, require_images=True)
    assert list(man.columns) == list(S.COLUMNS)
    assert len(man.rows) == N
    assert all(c.startswith("true_") for c in S.TRUE_COLUMNS)
    desc = json.load(open(os.path.join(man.folder, "synthetic.json")))
    assert desc["true_columns"] == list(S.TRUE_COLUMNS)
    assert "log h" in desc["hazard_formula"]
    for r in man.rows:
        assert r["sex"] in ("0", "1") and r["diabetes"] in ("0", "1") and r["event"] in ("0", "1")
        assert float(r["time"]) > 0 and 30 <= float(r["age"]) <= 90
    # paths are relative to the manifest's folder
    for r in _rows(ma):
        assert not os.path.isabs(r["cine_ed"])


def test_labels_geometry_and_truth(cohorts):
    ma, _ = cohorts
    man = read_manifest(ma, require_images=True)
    band_rel, cine_band_rel = [], []
    for r in man.rows:
        vols = {c: read_image(r[c]) for c in ("cine_ed", "cine_es", "lge", "cine_ed_seg",
                                              "cine_es_seg", "lge_seg")}
        ref = vols["cine_ed"]
        sx, sy, sz = ref.spacing
        z, h, w = ref.array.shape
        assert 1.35 <= sx <= 1.65 and sx == pytest.approx(sy) and sz in (8.0, 10.0)
        assert 8 <= z <= 10 and 208 <= h <= 240 and 240 <= w <= 256
        # the cine is stored base first (as ACDC), the LGE apex first (as EMIDEC: 75 of 75 stacks,
        # bench/measure_real_appearance.py first_slice_apical); every voxel keeps its world
        # position: LGE slice k lies where cine slice z - 1 - k does
        flip = np.eye(4)
        flip[2, 2], flip[2, 3] = -1.0, z - 1
        for c, v in vols.items():
            assert v.array.shape == ref.array.shape
            want = ref.ijk_to_ras @ flip if c.startswith("lge") else ref.ijk_to_ras
            assert np.allclose(v.ijk_to_ras, want), c
        for c in ("cine_ed", "cine_es", "lge"):
            a = vols[c].array
            assert a.dtype == np.int16 and a.min() >= 0 and a.max() > 100
        ed, es, lge = (vols[c].array for c in ("cine_ed_seg", "cine_es_seg", "lge_seg"))
        # slice order and coverage (ACDC / EMIDEC: every slice holds LV labels, the apical one
        # with LV cavity at ED)
        area = lambda lab: np.isin(lab, (1, 2, 4, 5)).sum((1, 2))
        assert area(ed)[0] > area(ed)[-1] and area(lge)[0] < area(lge)[-1]
        assert (area(ed) > 0).all() and (ed[-1] == 1).any() and (lge[0] == 1).any()
        # same anatomy in world space (the LGE is mid-diastole): the LV overlaps the ED LV
        a, b = np.isin(ed, (1, 2)), np.isin(lge[::-1], (1, 2, 4, 5))
        assert 2 * (a & b).sum() / (a.sum() + b.sum()) > 0.8
        assert set(np.unique(ed)) == {0, 1, 2, 3}
        assert set(np.unique(es)) <= {0, 1, 2, 3} and {1, 2, 3} <= set(np.unique(es))
        assert set(np.unique(lge)) <= {0, 1, 2, 4, 5} and {1, 2} <= set(np.unique(lge))
        ef = clinical_indices(ed, es, (sx, sy, sz))["lv_ef_pct"]
        assert float(r["true_lvef"]) == pytest.approx(ef, abs=1e-3)
        assert 15 <= ef <= 75
        assert float(r["true_scar_burden"]) == pytest.approx(scar_burden_pct(lge), abs=1e-3)
        # cine contrast: bright blood pool, darker myocardium; LGE: nulled remote myocardium
        img = vols["cine_ed"].array
        assert np.median(img[ed == 1]) > 1.8 * np.median(img[ed == 2])
        # LGE as exported by EMIDEC (bench/measure_real_appearance.py): 8-bit phase-sensitive
        # grey levels, nulled remote myocardium near the mid-grey zero level, blood ~15 grey
        # above it, scar about as bright as blood, zero fill outside the field of view
        limg = vols["lge"].array
        assert limg.max() <= 255 and 0.03 <= (limg == 0).mean() <= 0.25
        blood, remote = np.median(limg[lge == 1]), np.median(limg[lge == 2])
        assert 120 <= remote <= 160 and blood - remote >= 8
        if (lge == 4).sum() > 20:
            assert np.median(limg[lge == 4]) >= remote + 0.5 * (blood - remote)
        # version 6: the band just outside the LV epicardium sits between remote and blood
        # (EMIDEC 0.46-0.64 x (blood - remote) above remote over 0-4.5 mm), not 2-3 x brighter
        # than blood as versions 1-5's fat rim
        lv = np.isin(lge, (1, 2, 4, 5))
        dist = np.stack([ndimage.distance_transform_edt(~m) * sx for m in lv])
        band = (dist > 0.5 * sx) & (dist <= 3.0) & (limg > 0)
        rel = (np.median(limg[band]) - remote) / (blood - remote)
        assert 0.3 <= rel <= 0.9, rel
        band_rel.append((limg[band] - remote) / (blood - remote))
        # version 8: the cine band 0-3 mm outside the LV epicardium (away from the RV)
        lvc = np.isin(ed, (1, 2))
        dist_c = np.stack([ndimage.distance_transform_edt(~m) * sx for m in lvc])
        near_rv = np.stack([ndimage.distance_transform_edt(m != 3) * sx < 4.0 for m in ed])
        band_c = (dist_c > 0.5 * sx) & (dist_c <= 3.0) & (ed == 0) & ~near_rv
        myo_c, blood_c = np.median(img[ed == 2]), np.median(img[ed == 1])
        cine_band_rel.append((img[band_c] - myo_c) / (blood_c - myo_c))
        # after the segmentation models' normalisation, intensities sit where the real data's do
        # (ACDC cine blood 0.70, myocardium 0.23; EMIDEC blood 0.74, myocardium 0.65)
        from cmrrisk.segmentation.preprocess import normalize_intensity

        n = normalize_intensity(img)
        assert 0.45 <= np.median(n[ed == 1]) <= 0.92 and 0.1 <= np.median(n[ed == 2]) <= 0.4
        n = normalize_intensity(limg)
        assert 0.55 <= np.median(n[lge == 1]) <= 0.9 and 0.45 <= np.median(n[lge == 2]) <= 0.8
        # RV / LV blood volume at ED: loose bounds around ACDC (median 0.99, IQR 0.76-1.32)
        assert 0.3 <= (ed == 3).sum() / (ed == 1).sum() <= 2.5
        lh = S.log_hazard(float(r["true_lvef"]), float(r["true_scar_burden"]), float(r["age"]),
                          int(r["diabetes"]), int(r["sex"]))
        assert float(r["true_log_hazard"]) == pytest.approx(lh, abs=1e-5)
    # version 7: the band is not uniform around the LV: parts are darker than remote (EMIDEC 14 %
    # of the 0-3 mm band below remote - 0.25 x (blood - remote)); version 6's uniform band gave
    # 0.25 % on these subjects, version 7 12 %
    dark = (np.concatenate(band_rel) < -0.25).mean()
    assert dark >= 0.03, dark
    # version 8: the cine band has dark parts (ACDC ED mid slices: 11 % darker than myocardium -
    # 0.25 x (blood - myocardium)); versions 3-7 had almost none there (a bright lateral fat pad)
    dark_c = (np.concatenate(cine_band_rel) < -0.25).mean()
    assert dark_c >= 0.04, dark_c


def test_default_cohort_oracle_and_hazard():
    rows = S.cohort_truth(60, 0)  # the default cohort of generate_cohort, without images
    t, e, lh = S.rows_time_event(rows)
    c = S.oracle_c_index((t, e, lh))
    assert c > 0.75
    assert 0.3 < e.mean() < 0.9
    lvef = np.array([float(r["true_lvef"]) for r in rows])
    scar = np.array([float(r["true_scar_burden"]) for r in rows])
    assert lvef.min() < 35 and lvef.max() > 60
    assert (scar == 0).any() and scar.max() > 20
    # higher true hazard -> shorter times on average
    hi = lh > np.median(lh)
    assert np.mean(t[hi]) < 0.7 * np.mean(t[~hi])
    assert np.corrcoef(lh, np.log(t))[0, 1] < -0.3


def test_oracle_from_manifest_path(cohorts, tmp_path):
    ma, _ = cohorts
    c = S.oracle_c_index(ma)
    assert np.isnan(c) or 0.0 <= c <= 1.0


def test_cli_registration(tmp_path, capsys):
    import argparse

    parser = argparse.ArgumentParser(prog="cmrrisk")
    sub = parser.add_subparsers(dest="command")
    S.add_commands(sub)
    args = parser.parse_args(["synth", "--out", str(tmp_path / "c"), "--n", "1", "--seed", "5", "--quiet"])
    assert args.func(args) == 0
    assert os.path.isfile(tmp_path / "c" / "manifest.csv")
    assert "oracle C-index" in capsys.readouterr().out


def test_parallel_workers_same_output(cohorts, tmp_path):
    """generate_cohort(workers=2) (spawned processes) writes the same arrays and manifest as the
    sequential path for the same seed."""
    ma, _ = cohorts
    mp = S.generate_cohort(str(tmp_path / "par"), n=N, seed=3, progress=False, workers=2)
    with open(ma, "rb") as fa, open(mp, "rb") as fb:
        assert fa.read() == fb.read()
    ja = json.load(open(os.path.join(os.path.dirname(ma), "synthetic.json")))
    jp = json.load(open(os.path.join(os.path.dirname(mp), "synthetic.json")))
    assert ja == jp
    for ra, rp in zip(_rows(ma), _rows(mp)):
        for col in ("cine_ed", "cine_es", "lge", "cine_ed_seg", "cine_es_seg", "lge_seg"):
            va = read_image(os.path.join(os.path.dirname(ma), ra[col]))
            vp = read_image(os.path.join(os.path.dirname(mp), rp[col]))
            assert np.array_equal(va.array, vp.array) and np.allclose(va.ijk_to_ras, vp.ijk_to_ras)


def test_cli_workers_option(tmp_path):
    import argparse

    parser = argparse.ArgumentParser(prog="cmrrisk")
    sub = parser.add_subparsers(dest="command")
    S.add_commands(sub)
    args = parser.parse_args(["synth", "--out", str(tmp_path / "c"), "--n", "2", "--workers", "2", "--quiet"])
    assert args.workers == 2


def _load_bench(name):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_sim_demo_gap_uses_the_generators_subjects():
    """bench/sim_demo_gap.py rebuilds cohorts from label maps only: its subjects, outcomes and
    true log-hazards must be those of generate_cohort / cohort_truth for the same n and seed, and
    its gap figures must be relative to the oracle of those subjects."""
    mod = _load_bench("sim_demo_gap")
    rows = mod.cohort_rows(20, 5)
    truth = S.cohort_truth(20, 5)
    for a, b in zip(rows, truth):
        assert a["subject"] == b["subject"] and a["event"] == str(b["event"])
        assert a["time"] == pytest.approx(float(b["time"]), abs=1e-3)
        assert a["lv_ef_pct"] == pytest.approx(float(b["true_lvef"]), abs=1e-3)
        assert a["scar_burden_pct"] == pytest.approx(float(b["true_scar_burden"]), abs=1e-3)
        assert a["true_log_hazard"] == pytest.approx(float(b["true_log_hazard"]), abs=1e-5)
    g = mod.gaps(rows, 5, None)
    assert 0.5 <= g["oracle"] <= 1.0
    assert g["formula"] == pytest.approx(0.0, abs=1e-9)  # the formula on the truth is the oracle
    noisy = mod.gaps(rows, 5, {"lvef_sd": 5.0, "scar_bias": 0.0, "scar_sd": 10.0})
    assert noisy["oracle"] == g["oracle"] and noisy["formula"] != 0.0


def test_border_bias_counts_and_ablations_restore_the_generator():
    """bench/eval_border_bias.py: the confusion shares follow the slice thirds (apex-first stacks
    reversed), and every ablation leaves the generator as it found it (the same subject renders
    the same image afterwards)."""
    mod = _load_bench("eval_border_bias")
    ref = np.zeros((3, 4, 4), np.uint8)
    ref[:, 1, 1] = 1
    ref[:, 1, 2] = 2
    ref[:, 2, 2] = 2
    pred = ref.copy()
    pred[0, 1, 2] = 1  # base slice (index 0 of a base-first stack): one myocardium voxel called LV
    c = mod.Counts()
    c.add(pred, ref, apex_first=False)
    s = c.summary()
    assert s["base"]["true_myo_to"]["lv"] == pytest.approx(0.5)
    assert s["apex"]["true_myo_to"]["lv"] == 0.0 and s["apex"]["true_myo_to"]["myo"] == 1.0
    assert s["all"]["pred_lv_from"]["myo"] == pytest.approx(1 / 4)
    assert s["lv_volume_ratio_median"] == pytest.approx(4 / 3)
    assert s["dice_pooled"]["lv"] == pytest.approx(2 * 3 / (3 + 4))
    assert s["dice_pooled"]["myo"] == pytest.approx(2 * 5 / (6 + 5))
    c2 = mod.Counts()
    c2.add(pred, ref, apex_first=True)  # the same voxel now lies in the apical third
    assert c2.summary()["apex"]["true_myo_to"]["lv"] == pytest.approx(0.5)

    def image():
        p = S.draw_subject(np.random.default_rng(3))
        p.update(nz=2, ny=96, nx=96, spacing=1.5, r_endo=20.0)
        return S.render_subject(p, np.random.default_rng(4))["ed_img"]

    before = image()
    for name in mod.ABLATIONS:
        apply, undo = mod.ablated(name)
        apply()
        changed = image()
        undo()
        if name in ("no_trabeculae", "endo_inset_1mm"):
            assert not np.array_equal(changed, before), name
    np.testing.assert_array_equal(image(), before)


def test_sim_model_choice_rules():
    """bench/sim_model_choice.py: the demo's rule takes the higher CV mean; the 1-SD rule keeps
    cox unless deepsurv wins by more than the fold-to-fold SD of the difference."""
    mod = _load_bench("sim_model_choice")
    cv = {"cox": [0.70, 0.75, 0.80, 0.72, 0.78], "deepsurv": [0.74, 0.70, 0.86, 0.75, 0.80]}
    assert mod.choose(cv, "highest_cv") == "deepsurv"
    assert mod.choose(cv, "cox_unless_1sd") == "cox"  # mean difference 0.02, SD 0.04
    clear = {"cox": [0.70, 0.72, 0.74, 0.71, 0.73], "deepsurv": [0.80, 0.81, 0.83, 0.80, 0.82]}
    assert mod.choose(clear, "cox_unless_1sd") == "deepsurv"
    assert mod.choose(cv, "cox_always") == "cox" and mod.choose(cv, "deepsurv_always") == "deepsurv"


def test_restricted_fields_give_the_whole_grid_result(monkeypatch):
    """The generator computes the wall depth and angle on the LV's box (AUX_MARGIN_MM) and the
    trabeculae on the cavity's box, and ellipse in place, to save time: the labels and images
    must be those of the whole-grid computation, bit for bit (a subject with scar and MVO)."""
    rng = np.random.default_rng(0)
    while True:
        p = S.draw_subject(rng)
        if p["scar_target"] > 0 and p["mvo"]:
            break
    p.update(nz=5, ny=112, nx=112)

    # ellipse against its plain formula
    x, y = S.grid(p, 2)
    c, s = np.cos(0.7), np.sin(0.7)
    plain = (((x - 3.0) * c + (y + 2.0) * s) / 20.0) ** 2 + ((-(x - 3.0) * s + (y + 2.0) * c) / 14.0) ** 2
    np.testing.assert_array_equal(S.ellipse(x, y, 3.0, -2.0, 20.0, 14.0, 0.7), plain)

    fast = S.render_subject(p, np.random.default_rng(5))
    monkeypatch.setattr(S.shapes, "AUX_MARGIN_MM", 1e6)  # box = the whole grid
    real_box = S.render._trabeculae_box
    monkeypatch.setattr(S.render, "_trabeculae", lambda p_, a, x_, y_, lab, ph: (
        real_box(p_, a, x_, y_, ph) & (lab == S.L.LV_BLOOD_POOL) if a["r_endo"] > 4
        else np.zeros(x_.shape, bool)))
    whole = S.render_subject(p, np.random.default_rng(5))
    assert (fast["lge"] == S.L.MVO).any() and (fast["lge"] == S.L.SCAR).any()
    for k in ("ed", "es", "lge", "ed_img", "es_img", "lge_img"):
        np.testing.assert_array_equal(fast[k], whole[k], err_msg=k)
    # the box really is smaller than the grid (otherwise this test compares a thing with itself)
    monkeypatch.setattr(S.shapes, "AUX_MARGIN_MM", 20.0)
    lab, aux = S.labels_slice(p, S.shapes._phase_shape(p, "ed"), 5.0, x, y)
    rows, cols = aux["box"]
    assert (rows.stop - rows.start) * (cols.stop - cols.start) < 0.6 * x.size
    assert np.isnan(aux["phi"]).any() and not np.isnan(aux["phi"][lab == S.L.LV_MYOCARDIUM]).any()
