"""``cmrrisk report``: a self-contained TRIPOD+AI-style HTML report of one or several models."""

import argparse
import base64
import html
import json
import re

import numpy as np
import pytest

N = 120


def _write_survival(path_train, path_test, seed=0):
    """Exponential event times from a known log-hazard 0.04 (age - 60) + 0.9 x1 (x2 is noise);
    independent exponential censoring; some ages missing; a vendor-like text column."""
    rng = np.random.default_rng(seed)
    age = rng.normal(60, 10, N)
    x1, x2 = rng.normal(size=N), rng.normal(size=N)
    sex = np.where(rng.random(N) < 0.5, "F", "M")
    lp = 0.04 * (age - 60) + 0.9 * x1
    t_ev = rng.exponential(3.0 / np.exp(lp))
    t_c = rng.exponential(5.0, N)
    time, event = np.minimum(t_ev, t_c), (t_ev <= t_c).astype(int)
    head = "subject,age,x1,x2,sex,time,event,true_lp"
    rows = [f"s{i:03d},{'' if i % 15 == 0 else f'{age[i]:.1f}'},{x1[i]:.4f},{x2[i]:.4f},{sex[i]},"
            f"{time[i]:.4f},{event[i]},{lp[i]:.4f}" for i in range(N)]
    path_train.write_text("\n".join([head] + rows[:80]) + "\n")
    path_test.write_text("\n".join([head] + rows[80:]) + "\n")
    return [f"s{i:03d}" for i in range(80, N)]


def _write_diagnosis(path_train, path_test, seed=1):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, N)
    x = np.eye(3)[y] * 1.8 + rng.normal(size=(N, 3))
    names = np.array(["DCM", "HCM", "NOR"])[y]
    head = "subject,a,b,c,label"
    rows = [f"d{i:03d},{x[i, 0]:.3f},{x[i, 1]:.3f},{x[i, 2]:.3f},{names[i]}" for i in range(N)]
    path_train.write_text("\n".join([head] + rows[:80]) + "\n")
    path_test.write_text("\n".join([head] + rows[80:]) + "\n")


def _cli(argv):
    from cmrrisk.cli import main

    assert main(argv) == 0, argv


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    d = tmp_path_factory.mktemp("report")
    train, test = d / "train.csv", d / "test.csv"
    test_subjects = _write_survival(train, test)
    _cli(["train", str(train), "--endpoint", "survival", "--model", "cox", "--out", str(d / "cox"), "--cv", "3"])
    _cli(["train", str(train), "--endpoint", "survival", "--model", "cox", "--max-features", "2",
          "--out", str(d / "cox_sel"), "--cv", "3", "--seed", "1"])
    dtrain, dtest = d / "dtrain.csv", d / "dtest.csv"
    _write_diagnosis(dtrain, dtest)
    _cli(["train", str(dtrain), "--endpoint", "diagnosis", "--model", "logistic", "--out", str(d / "logit"),
          "--cv", "3"])
    # an explanation folder from the real 'cmrrisk explain', plus one PNG overlay
    _cli(["explain", str(d / "cox"), str(test), "--subject", test_subjects[0], "--out", str(d / "expl"), "--k", "3"])
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(1, 1))
    FigureCanvasAgg(fig)
    fig.add_subplot(1, 1, 1).imshow(np.eye(4))
    fig.savefig(d / "expl" / f"{test_subjects[0]}_cine_ed_ig.png", format="png")
    return {"dir": d, "train": str(train), "test": str(test), "cox": str(d / "cox"), "cox_sel": str(d / "cox_sel"),
            "dtrain": str(dtrain), "dtest": str(dtest), "logit": str(d / "logit"), "expl": str(d / "expl"),
            "test_subjects": test_subjects}


def _qc_json(path, manifest, subjects, excluded):
    """A qc.json built with the QC module's own summaries (two vendors, one excluded subject)."""
    from cmrrisk import qc
    from cmrrisk.manifest import read_manifest

    results = []
    for k, s in enumerate(subjects):
        checks = [qc.check("nan_voxels", qc.EXCLUDE, "image has NaN voxels", "cine_ed")] if s == excluded else []
        results.append({"subject": s, "checks": checks, "status": qc.status_of(checks),
                        "images": {"cine_ed": {"readable": True, "manufacturer": ["Siemens", "GE"][k % 2],
                                               "field_strength_t": 1.5, "in_plane_mm": 1.4, "n_slices": 10}}})
    rep = {"manifest": manifest, "volume": qc.volume_summary(read_manifest(manifest, check_paths=False), results),
           "variety": qc.variety_summary(results), "veracity": qc.veracity_summary(results),
           "images": {r["subject"]: r["images"] for r in results}}
    path.write_text(json.dumps(rep))
    return str(path)


def _strip_images(text):
    return re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "IMG", text)


# ----------------------------------------------------------------------------------- survival

def test_survival_report_is_self_contained_and_matches_evaluate(cohort, tmp_path):
    from cmrrisk.predict.validation import external_validation
    from cmrrisk.report import ITEMS, write_report

    excluded = cohort["test_subjects"][3]
    qc_path = _qc_json(tmp_path / "qc.json", cohort["test"], cohort["test_subjects"], excluded)
    out = tmp_path / "report.html"
    extra = {"data_source": "Simulated cohort <script>alert(1)</script>", "synthetic": True,
             "metrics": {"c_index_oracle": 0.81, "segmentation": {"dice_mean": 0.9}}, "notes": ["demo run"]}
    res = write_report(str(out), [cohort["cox"], cohort["cox_sel"]], train_manifest=cohort["train"],
                       test_manifest=cohort["test"], qc=qc_path, explanations=[cohort["expl"]], extra=extra,
                       n_boot=30, seed=0, progress=None)
    text = out.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    # one self-contained file: figures embedded, nothing fetched from elsewhere
    assert text.count('<img src="data:image/png;base64,') >= 3  # calibration, Kaplan-Meier, explanation overlay
    for bad in ('src="http', "href=\"http", "<script", "<link", "url("):
        assert bad not in text, bad
    for name in ("calibration_test", "km_test"):
        b64 = res["figures"][name]
        assert base64.b64decode(b64)[:8] == b"\x89PNG\r\n\x1a\n"
        assert f'<img src="data:image/png;base64,{b64}"' in text
    # caller text is escaped
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    # the TRIPOD+AI item headings
    for key in ("summary", "data", "prep", "outcome", "predictors", "sample", "missing", "methods", "output",
                "participants", "development", "performance", "fairness", "explanations", "extra",
                "limitations", "software", "todo"):
        assert f'<h2 id="{key}">{html.escape(ITEMS[key])}</h2>' in text, key

    # the printed test metrics are those of 'cmrrisk evaluate' (same evaluation, same bootstrap)
    for label, model in (("cox", cohort["cox"]), ("cox_sel", cohort["cox_sel"])):
        ev = external_validation(model, cohort["test"], n_boot=30, seed=0)
        got = next(m for m in res["models"] if m["label"] == label)["test"]
        assert got["c_index_harrell"] == ev["c_index_harrell"]
        assert got["c_index_harrell_ci"] == ev["c_index_harrell_ci"]
        assert got["integrated_brier"] == ev["integrated_brier"]
        lo, hi = ev["c_index_harrell_ci"]
        assert f"{ev['c_index_harrell']:.3f} ({lo:.3f}-{hi:.3f})" in text
        lo, hi = ev["c_index_uno_ci"]
        assert f"{ev['c_index_uno']:.3f} ({lo:.3f}-{hi:.3f})" in text
        assert f"{ev['calibration']['slope']:.2f}" in text
        # Kaplan-Meier curves drawn from the same risk groups as the log-rank test
        groups = ev["risk_groups"]["groups"]
        curves = got["km_curves"]
        assert [c["n"] for c in curves] == [g["n"] for g in groups]
        assert sum(c["n"] for c in curves) == ev["n"] == 40
        assert [c["n_events"] for c in curves] == [g["n_events"] for g in groups]
    # a strong predictor: the high-risk group fares worse than the low-risk group
    cv = res["models"][0]["test"]["km_curves"]
    t_mid = float(np.median(res["models"][0]["test"]["predictions"]["time"]))

    def surv_at(c, t):
        return c["survival"][int(np.searchsorted(c["times"], t, side="right")) - 1]

    assert surv_at(cv[0], t_mid) > surv_at(cv[-1], t_mid) + 0.2

    # participants and sample size
    d = res["train"]
    assert d["n"] == 80 and d["covariates"]["age"]["missing"] == sum(1 for i in range(80) if i % 15 == 0)
    assert f"{d['survival']['n_events']} ({100.0 * d['survival']['n_events'] / 80:.0f} %)" in text
    assert "true_lp" in text and "never used as predictors" in text
    # QC: counts, the reason, and the excluded subject who is still in the test manifest
    assert "nan_voxels" in text and "image has NaN voxels" in text
    assert any(excluded in lim and "test manifest" in lim for lim in res["limitations"])
    assert any("synthetic" in lim for lim in res["limitations"])
    assert any("fewer than the 100" in lim for lim in res["limitations"])
    # subgroups by the vendor of the QC report and by sex
    rows = res["subgroups"]["cox"]
    assert {r["variable"] for r in rows} >= {"sex", "vendor (QC)"}
    assert sum(r["n"] for r in rows if r["variable"] == "vendor (QC)") == 40
    # explanations: the generated sentence and the overlay
    ex = json.loads(next((cohort["dir"] / "expl").glob("*_explanation.json")).read_text())
    assert html.escape(ex["text"]) in text
    # caller metrics in a key/value table
    assert "c_index_oracle" in text and "segmentation.dice_mean" in text and "0.81" in text
    # the Cox model is given in full (coefficients per SD)
    assert "hazard ratio per SD" in text
    assert res["models"][0]["cv"]["k"] == 3
    assert res["models"][0]["apparent"] is None  # with a test manifest, no apparent evaluation by default


def test_report_without_test_data_says_so(cohort, tmp_path):
    from cmrrisk.report import write_report

    out = tmp_path / "cv_only.html"
    res = write_report(str(out), cohort["cox"], n_boot=10, progress=None)
    text = out.read_text(encoding="utf-8")
    assert "only the cross-validation results stored in the model directories are available" in text
    assert res["figures"] == {} and "<img" not in text
    cv = json.loads((cohort["dir"] / "cox" / "metrics.json").read_text())["summary"]["c_index_harrell"]
    assert f"{cv['mean']:.3f} (SD {cv['sd']:.3f})" in text
    assert any("not externally validated" in lim for lim in res["limitations"])
    assert res["models"][0]["test"] is None

    # with the development manifest: apparent performance, labelled as such
    out2 = tmp_path / "apparent.html"
    res2 = write_report(str(out2), [cohort["cox"]], train_manifest=cohort["train"], n_boot=10, progress=None)
    text2 = out2.read_text(encoding="utf-8")
    assert set(res2["figures"]) == {"calibration_apparent", "km_apparent"}
    assert "APPARENT" in text2 and "optimistic" in text2
    assert res2["models"][0]["apparent"]["n"] == 80


# ---------------------------------------------------------------------------------- diagnosis

def test_diagnosis_report(cohort, tmp_path):
    from cmrrisk.predict.validation import external_validation
    from cmrrisk.report import write_report

    out = tmp_path / "diag.html"
    res = write_report(str(out), [cohort["logit"]], train_manifest=cohort["dtrain"], test_manifest=cohort["dtest"],
                       n_boot=20, progress=None)
    text = out.read_text(encoding="utf-8")
    ev = external_validation(cohort["logit"], cohort["dtest"], n_boot=20, seed=0)
    lo, hi = ev["balanced_accuracy_ci"]
    assert f"{ev['balanced_accuracy']:.3f} ({lo:.3f}-{hi:.3f})" in text
    lo, hi = ev["accuracy_ci"]
    assert f"{ev['accuracy']:.3f} ({lo:.3f}-{hi:.3f})" in text
    assert set(res["figures"]) == {"roc_test", "confusion_test"}
    assert text.count('<img src="data:image/png;base64,') == 2
    assert '<h2 id="imbalance">' in text and "Kaplan-Meier" not in _strip_images(text).split('id="performance"')[1]
    # confusion matrix rows in the HTML table
    for c, row in zip(ev["classes"], ev["confusion_matrix"]):
        assert "<tr><td>" + c + "</td>" + "".join(f"<td>{v}</td>" for v in row) + "</tr>" in text
    assert "coefficient: DCM" in text  # the full logistic model


# ------------------------------------------------------------------------------------- errors

def test_report_errors_name_the_file(cohort, tmp_path):
    from cmrrisk.errors import CMRRiskError
    from cmrrisk.report import write_report

    out = str(tmp_path / "r.html")
    missing = str(tmp_path / "no_such_model")
    with pytest.raises(CMRRiskError, match=re.escape(missing)):
        write_report(out, [cohort["cox"], missing], progress=None)
    with pytest.raises(CMRRiskError, match="different endpoints") as e:
        write_report(out, [cohort["cox"], cohort["logit"]], progress=None)
    assert cohort["logit"] in str(e.value) and "diagnosis" in str(e.value)
    no_outcome = tmp_path / "no_outcome.csv"
    no_outcome.write_text("subject,age,x1,x2,sex\na,60,0,0,F\n")
    with pytest.raises(CMRRiskError, match=re.escape(str(no_outcome)) + ".*time, event"):
        write_report(out, cohort["cox"], test_manifest=str(no_outcome), progress=None)
    with pytest.raises(CMRRiskError, match="qc.json"):
        write_report(out, cohort["cox"], qc=str(tmp_path), progress=None)
    empty = tmp_path / "empty_expl"
    empty.mkdir()
    with pytest.raises(CMRRiskError, match=re.escape(str(empty))):
        write_report(out, cohort["cox"], explanations=[str(empty)], progress=None)
    assert not (tmp_path / "r.html").exists()


def test_cli_report(cohort, tmp_path, capsys):
    from cmrrisk.errors import CMRRiskError
    from cmrrisk.report import add_commands

    p = argparse.ArgumentParser(prog="cmrrisk")
    add_commands(p.add_subparsers(dest="command", required=True))
    out = tmp_path / "cli.html"
    extra = tmp_path / "extra.json"
    extra.write_text(json.dumps({"data_source": "from the CLI"}))
    args = p.parse_args(["report", "--model", cohort["cox"], "--model", cohort["cox_sel"], "--test", cohort["test"],
                         "--explanations", cohort["expl"], "--extra", str(extra), "--out", str(out),
                         "--bootstrap", "10", "--title", "My cohort"])
    assert args.func(args) == 0
    text = out.read_text(encoding="utf-8")
    assert "<title>My cohort</title>" in text and "from the CLI" in text
    assert "cox: test Harrell's C" in capsys.readouterr().out
    args = p.parse_args(["report", "--model", str(tmp_path / "nope"), "--out", str(tmp_path / "x.html")])
    with pytest.raises(CMRRiskError, match="nope"):
        args.func(args)
