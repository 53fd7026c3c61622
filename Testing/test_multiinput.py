"""The multi-input image network (`--model multiinput`): the heart-centred image grid and its
inverse, training on a small synthetic cohort where the class is visible only in the images,
save/load through a model directory, and the CLI."""

import json
import os

import numpy as np
import pytest

from test_features import AFFINE, SPACING, phantom, write_manifest, write_subject

from cmrrisk import labels as L


def test_grid_is_centred_on_the_heart_and_maps_back():
    from cmrrisk.image import Volume
    from cmrrisk.predict.images import GRID, from_grid, subject_tensor
    from cmrrisk.study import Study

    img, lab = phantom(12.0, noise=5.0)
    vol = Volume(img, AFFINE)
    x, geom = subject_tensor(Study(ed=vol, es=vol, ed_seg=lab, es_seg=lab))
    assert x.shape == (GRID["slices"], 8, GRID["size"], GRID["size"])
    # one-hot channels: the LV blood pool sits in the middle of the grid
    lv = x[:, 2]
    c = (GRID["size"] - 1) / 2
    yy, xx = np.nonzero(lv[3] > 0.5)
    assert abs(yy.mean() - c) < 6 and abs(xx.mean() - c) < 10  # RV pulls the heart centroid aside
    # the LV channel mapped back lands on the LV of the original image
    back = from_grid(lv, geom)
    assert back.shape == lab.shape
    inside = back[lab == L.LV_BLOOD_POOL].mean()
    outside = back[(lab == 0)].mean()
    assert inside > 0.8 and outside < 0.05
    # slices that the grid did not use stay zero
    unused = sorted(set(range(lab.shape[0])) - set(geom["slices"]))
    assert all(back[z].max() == 0 for z in unused)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """24 subjects, two classes that differ only in the LV size (the covariate is noise)."""
    d = tmp_path_factory.mktemp("mi")
    rows = []
    rng = np.random.default_rng(0)
    for i in range(24):
        big = i % 2
        sub = write_subject(str(d), f"s{i}", ed_radius=15.0 if big else 9.0,
                            es_radius=12.0 if big else 6.0, seed=i)
        rows.append(dict(subject=f"s{i}", **sub, noise=f"{rng.normal():.3f}",
                         label="DCM" if big else "NOR"))
    write_manifest(d / "m.csv", rows)
    return d


def test_multiinput_learns_from_images_and_round_trips(cohort, tmp_path):
    from cmrrisk.predict.pipeline import Pipeline
    from cmrrisk.predict.store import load_pipeline, save_pipeline
    from cmrrisk.predict.tabular import load_table

    table = load_table(str(cohort / "m.csv"), "diagnosis", image_features=False)
    assert list(table.covariates.columns) == ["noise"]
    pipe = Pipeline("diagnosis", "multiinput", seed=0,
                    model_params={"max_epochs": 25, "width": 4, "patience": 25}).fit(table)
    p = pipe.predict_proba(table)
    acc = float(np.mean(np.array(pipe.classes)[p.argmax(1)] == table.label))
    assert acc >= 0.9, acc
    save_pipeline(pipe, str(tmp_path / "model"))
    again = load_pipeline(str(tmp_path / "model"))
    np.testing.assert_allclose(again.predict_proba(table), p, rtol=1e-5, atol=1e-6)
    cfg = json.loads((tmp_path / "model" / "config.json").read_text())
    assert cfg["model_name"] == "multiinput"


def test_multiinput_survival_loss_orders_risk(cohort):
    """Survival: larger LV -> earlier events; the network's risk must rank them higher."""
    import csv

    from cmrrisk.predict.pipeline import Pipeline
    from cmrrisk.predict.tabular import load_table

    with open(cohort / "m.csv") as fh:
        rows = list(csv.DictReader(fh))
    rng = np.random.default_rng(1)
    for r in rows:
        big = r["label"] == "DCM"
        r["time"] = f"{rng.exponential(2.0 if big else 10.0):.3f}"
        r["event"] = "1"
        del r["label"]
    write_manifest(cohort / "s.csv", rows)
    table = load_table(str(cohort / "s.csv"), "survival", image_features=False)
    pipe = Pipeline("survival", "multiinput", seed=0,
                    model_params={"max_epochs": 20, "width": 4, "patience": 20}).fit(table)
    risk = pipe.predict_risk(table)
    big = np.array([r["subject"] for r in rows])[[i % 2 == 1 for i in range(len(rows))]]
    is_big = np.isin(table.subjects, big)
    assert risk[is_big].mean() > risk[~is_big].mean()
    s = pipe.predict_survival(table, [1.0, 5.0])
    assert s.shape == (len(rows), 2) and np.all(s[:, 1] <= s[:, 0] + 1e-9)


def test_cli_train_multiinput_uses_manifest_covariates_not_image_features(cohort, tmp_path):
    from cmrrisk.cli import main

    out = tmp_path / "mi"
    rc = main(["train", str(cohort / "m.csv"), "--endpoint", "diagnosis", "--model", "multiinput",
               "--out", str(out), "--cv", "0", "--max-epochs", "3"])
    assert rc == 0
    assert json.loads((out / "feature_names.json").read_text()) == ["noise"]
    rc = main(["predict", str(out), str(cohort / "m.csv"), "--out", str(tmp_path / "p.csv")])
    assert rc == 0
    assert (tmp_path / "p.csv").read_text().splitlines()[0].startswith("subject,predicted,p_DCM,p_NOR")


def test_multiinput_lge_branch(tmp_path):
    """Every subject has an LGE stack: the network grows an LGE branch; the class depends on the
    scar only (cine frames identical in both classes)."""
    from cmrrisk.image import Volume, write_image
    from cmrrisk.predict.pipeline import Pipeline
    from cmrrisk.predict.store import load_pipeline, save_pipeline
    from cmrrisk.predict.tabular import load_table

    rows = []
    for i in range(20):
        scar = i % 2
        sub = write_subject(str(tmp_path), f"s{i}", 12.0, 8.0, seed=i)
        img, lab = phantom(12.0, noise=5.0, seed=100 + i)
        img = np.where(lab == L.LV_MYOCARDIUM, 20.0, img)  # nulled myocardium
        if scar:
            zz, yy, xx = np.mgrid[:lab.shape[0], :lab.shape[1], :lab.shape[2]]
            wedge = (lab == L.LV_MYOCARDIUM) & (xx > 40)
            lab[wedge] = L.SCAR
            img[wedge] = 280.0
        write_image(Volume(img.astype(np.float32), AFFINE), str(tmp_path / f"s{i}_lge.nii.gz"))
        write_image(Volume(lab, AFFINE), str(tmp_path / f"s{i}_lge_seg.nii.gz"))
        rows.append(dict(subject=f"s{i}", **sub, lge=f"s{i}_lge.nii.gz", lge_seg=f"s{i}_lge_seg.nii.gz",
                         age=str(50 + i), label="MI" if scar else "NOR"))
    write_manifest(tmp_path / "m.csv", rows)
    table = load_table(str(tmp_path / "m.csv"), "diagnosis", image_features=False)
    pipe = Pipeline("diagnosis", "multiinput", seed=0,
                    model_params={"max_epochs": 15, "width": 4, "patience": 15, "batch_size": 4}).fit(table)
    assert pipe.model.uses_lge and pipe.model.net.cnn_lge is not None
    p = pipe.predict_proba(table)
    assert np.mean(np.array(pipe.classes)[p.argmax(1)] == table.label) >= 0.85
    save_pipeline(pipe, str(tmp_path / "model"))
    again = load_pipeline(str(tmp_path / "model"))
    np.testing.assert_allclose(again.predict_proba(table), p, rtol=1e-5, atol=1e-6)
    for r in rows:
        r["lge"] = ""
        r["lge_seg"] = ""
    write_manifest(tmp_path / "no_lge.csv", rows)
    with pytest.raises(Exception, match="LGE"):
        again.predict_proba(load_table(str(tmp_path / "no_lge.csv"), "diagnosis", image_features=False))


def test_prepared_tensors_are_reused_until_a_file_changes(tmp_path, monkeypatch):
    """Cross-validation prepares the same subjects once per fold: the second time comes from
    the in-process cache, equal to a fresh preparation; a rewritten file, another grid or a
    row without segmentation files is prepared again."""
    from cmrrisk.image import Volume, write_image
    from cmrrisk.predict import images as I

    I.clear_cache()
    rows = []
    for i in range(3):
        sub = write_subject(str(tmp_path), f"c{i}", seed=i)
        rows.append({"subject": f"c{i}", **{k: str(tmp_path / v) for k, v in sub.items()}})
    calls = []
    real = I.load_cine_pair
    monkeypatch.setattr(I, "load_cine_pair", lambda row: calls.append(row["subject"]) or real(row))
    x1, g1 = I.prepare(rows)
    assert calls == ["c0", "c1", "c2"]
    x2, g2 = I.prepare(rows[1:])
    assert calls == ["c0", "c1", "c2"]  # nothing loaded again
    np.testing.assert_array_equal(x2, x1[1:])
    assert g2 == g1[1:]
    g2[0]["slices"].append(99)  # callers get their own geometry
    assert I.prepare(rows[1:2])[1][0] == g1[1]
    # a changed file is read again, and the tensor follows it
    img, lab = phantom(14.0, noise=5.0, seed=7)
    write_image(Volume(img, AFFINE), rows[0]["cine_ed"])
    st = os.stat(rows[0]["cine_ed"])
    os.utime(rows[0]["cine_ed"], ns=(st.st_atime_ns, st.st_mtime_ns + 10 ** 9))
    x3, _ = I.prepare(rows[:1])
    assert calls[-1] == "c0" and not np.array_equal(x3[0], x1[0])
    I.clear_cache()
    np.testing.assert_array_equal(I.prepare(rows[:1])[0], x3)
    # another grid, and rows whose labels would come from the model, are not taken from the cache
    n = len(calls)
    I.prepare(rows[:1], dict(I.GRID, size=64))
    assert len(calls) == n + 1
    assert I.cache_key({k: v for k, v in rows[0].items() if not k.endswith("_seg")}, "cine", I.GRID) is None
    assert I.cache_key(dict(rows[0], cine_es_seg=str(tmp_path / "missing.nii.gz")), "cine", I.GRID) is None
    I.clear_cache()


def test_multiinput_survival_loss_is_the_cox_partial_likelihood():
    """The network's survival loss (pycox's cox_ph_loss) is the negative Cox partial
    log-likelihood per event, computed here by hand on distinct times; no event -> 0, not NaN."""
    import torch

    from cmrrisk.predict.multiinput import MultiInputSurvival

    rng = np.random.default_rng(3)
    t = rng.permutation(np.arange(1.0, 9.0))
    e = np.array([1, 0, 1, 1, 0, 1, 0, 1], float)
    f = rng.normal(size=8)
    m = MultiInputSurvival.__new__(MultiInputSurvival)
    m._t, m._e = t, e
    ix = np.arange(8)
    got = float(m._loss(torch.tensor(f, dtype=torch.float64)[:, None], ix))
    want = -sum(f[i] - np.log(np.exp(f[t >= t[i]]).sum()) for i in range(8) if e[i]) / e.sum()
    assert got == pytest.approx(want, rel=1e-6)
    # risk ordered like the event times lowers the loss
    assert float(m._loss(torch.tensor(-t)[:, None], ix)) < float(m._loss(torch.tensor(t)[:, None], ix))
    m._e = np.zeros(8)
    out = torch.tensor(f, requires_grad=True)[:, None]
    z = m._loss(out, ix)
    assert float(z.detach()) == 0.0
    z.backward()
