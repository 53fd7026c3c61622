"""5-fold cross-validation of LGE scar methods over the 75 EMIDEC cases.

Folds are fixed (seed 0) and stratified: the 50 infarct and 25 normal cases are each shuffled
and dealt in turn, so every fold holds 10 infarct and 5 normal cases. Per test case: Dice of the
whole myocardium, of scar + MVO (infarct cases), of MVO (cases whose reference has MVO), and the
scar burden (% of the myocardium) against the reference; per fold the means; over folds the mean
and SD of the fold means; the pooled per-case figures; the infarct cases with scar Dice below
0.30 and every case listed by :func:`cmrrisk.segmentation.evaluate.lge_failure`.

Methods (``--method``):

* ``current``: the bundled ``lge`` model's own labels. That model was trained on all 75 cases,
  so these figures are optimistic (it has seen every test case); no training.
* ``classic_nsd`` / ``classic_fwhm``: the classic n-SD (3 SD above the remote sector) or
  FWHM-above-remote map inside a myocardium mask (``cmrrisk.segmentation.scar_stage2``), plus
  the first stage's MVO inside that mask; no training.
* ``stage2_net`` / ``stage2_netclassic``: the second-stage network (image + myocardium mask, or
  with the classic maps as two more channels), trained per fold on the four training folds only
  (reference myocardium with random jitter), checkpointed in ``bench/cv_work/`` and resumed.
* ``stage2_net25d``: ``stage2_net`` with 2.5D input (the normalised intensity of the slices below
  and above as two more channels);
* ``stage2_netft``: ``stage2_net`` trained with focal Tversky in place of soft Dice (false
  negatives weighted more than false positives: a loss made for small structures);
* ``stage2_ens``: the fold networks of ``stage2_net`` and ``stage2_netft`` (both trained on the
  same four folds, so still cross-validated) with their probabilities averaged; no training (run
  those two methods first); ``stage2_ens_seeds`` / ``stage2_ens_ft_seeds``: the same with the
  networks of ``stage2_net`` / ``stage2_netft`` and of their ``--repeat 1``;
* ``stage2_net_gated`` / ``stage2_netclassic_gated`` / ``stage2_net25d_gated`` /
  ``stage2_netft_gated`` / ``stage2_ens_gated``: the same fold networks (their finished
  checkpoints; a fold whose network is not trained yet is skipped) fused with the first stage
  (:func:`cmrrisk.segmentation.scar_stage2.fuse`): no scar where the first stage finds none in
  the whole stack, the first stage's MVO kept, scar = stage-2 scar + MVO and first-stage MVO.

Test-time views of the second-stage networks (``--tta``): ``flips`` (the default: the crop as is
and flipped along each in-plane axis, probabilities averaged), ``none``, or ``dihedral`` (the eight
quarter turns and mirrors of the square crop). Any other than ``flips`` only scores the finished
fold networks (no training) and is written as ``lge_cv_<method>_tta-<views>.json``.

``--repeat R`` (R > 0; the trained network methods only) trains the same method again with other
seeds (fold seed + 100 R), written as ``lge_cv_<method>_r<R>.json``: the spread between repeats
is what a design change must beat.

Each method is scored with three myocardium sources:

* ``reference``: the reference myocardium (upper bound of a second stage; the myocardium Dice is
  1 by construction);
* ``bundled``: the bundled ``lge`` model's myocardium and MVO (that first stage has seen the
  test cases; the second stage has not);
* ``heldout15``: only the 15 validation cases of ``bench/models/lge_split``, with that model's
  myocardium and MVO: honest for both stages (``lge_split`` never trained on them and each is
  scored by the second stage of its own fold). Skipped, and said so, when the weights are missing.

With ``--stage1 TAG`` the one source instead is ``cv_TAG``: every case segmented by the first stage
trained without its fold (``bench/cv_lge_stage1.py --tag TAG``), then by the second stage of its
fold: honest for both stages over all 75 cases. With ``--method current`` it scores that first
stage alone.

Resumable per fold: the JSON (bench/results/lge_cv_<method>.json) is rewritten after each fold
and folds already in it are not redone. Single-threaded (torch.set_num_threads(1)).

    .venv/bin/python bench/cv_lge.py --method stage2_net [--iterations 800] [--tta flips]
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "CMRRiskExtension"))
sys.path.insert(0, str(ROOT / "bench"))
DATA = Path(os.environ.get("CMRRISK_DATA", ROOT.parent / "shared" / "data"))
if not (DATA / "emidec").is_dir():
    DATA = Path("/work/shared/data")
WORK = ROOT / "bench" / "cv_work"
N_FOLDS = 5
# options of scar_stage2.train / predict per second-stage network
NETS = {"stage2_net": {}, "stage2_netclassic": {"classic": True}, "stage2_net25d": {"context": True},
        "stage2_netft": {"loss": "focal_tversky"}}
# members share their inputs; "_r<R>": the networks of --repeat R
ENSEMBLES = {"stage2_ens": ("stage2_net", "stage2_netft"), "stage2_ens_seeds": ("stage2_net", "stage2_net_r1"),
             "stage2_ens_ft_seeds": ("stage2_netft", "stage2_netft_r1")}
METHODS = ("current", "classic_nsd", "classic_fwhm") + tuple(NETS) + tuple(ENSEMBLES) + tuple(
    f"{n}_gated" for n in (*NETS, *ENSEMBLES))


def folds(cases) -> list:
    """Fold index per case name: seeded, stratified by group (infarct / normal)."""
    rng = np.random.default_rng(0)
    out = {}
    for group in ("infarct", "normal"):
        names = sorted(c.case for c in cases if c.group == group)
        rng.shuffle(names)
        for i, n in enumerate(names):
            out[n] = i % N_FOLDS
    return out


def stage1(model: str, cases, tag: str) -> dict:
    """{case: stage-1 labels} of ``model`` (default inference), cached in bench/cv_work."""
    from cmrrisk.datasets import read_emidec_case
    from cmrrisk.image import Volume
    from cmrrisk.segmentation.infer import Segmenter

    path = WORK / f"stage1_{tag}.npz"
    cached = dict(np.load(path)) if path.is_file() else {}
    todo = [c for c in cases if c.case not in cached]
    if todo:
        seg = Segmenter.load(model)
        for c in todo:
            img, _ = read_emidec_case(c)
            cached[c.case] = seg.segment(Volume(img, np.eye(4), c.case)).array.astype(np.uint8)
        WORK.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(str(path) + ".tmp.npz", **cached)
        os.replace(str(path) + ".tmp.npz", path)
    return cached


def stage1_fold_dir(tag: str, k: int) -> Path:
    """Where ``bench/cv_lge_stage1.py --tag TAG --fold K`` writes the first stage of fold K."""
    return WORK / f"stage1_{tag}_fold{k}"


def stage1_folds(tag: str, cases, fold_of: dict) -> dict:
    """{case: labels} from the first stage of each case's own fold (``bench/cv_lge_stage1.py --tag
    TAG``; folds whose model is not finished yet are left out), cached per fold model's weights."""
    from cmrrisk import modeldir

    out = {}
    for k in range(N_FOLDS):
        d = stage1_fold_dir(tag, k)
        if not (d / modeldir.WEIGHTS).is_file():
            print(f"--stage1 {tag}: fold {k} has no finished model ({d})", flush=True)
            continue
        digest = modeldir.sha256(str(d / modeldir.WEIGHTS))[:12]
        out.update(stage1(str(d), [c for c in cases if fold_of[c.case] == k], f"{tag}_fold{k}_{digest}"))
    return out


def score(case, group, pred, ref) -> dict:
    from cmrrisk import labels as L
    from cmrrisk.metrics import dice, scar_burden_pct

    row = {"case": case, "group": group,
           "dice_myocardium": dice(np.isin(pred, L.MYOCARDIAL), np.isin(ref, L.MYOCARDIAL)),
           "scar_burden_pred_pct": scar_burden_pct(pred), "scar_burden_ref_pct": scar_burden_pct(ref),
           "mvo_pred": bool((pred == L.MVO).any()), "mvo_ref": bool((ref == L.MVO).any())}
    if group == "infarct":
        row["dice_scar"] = dice(np.isin(pred, L.SCAR_WITH_MVO), np.isin(ref, L.SCAR_WITH_MVO))
    if row["mvo_ref"]:
        row["dice_mvo"] = dice(pred == L.MVO, ref == L.MVO)
    return row


def _mean(v):
    v = [x for x in v if x is not None and np.isfinite(x)]
    return float(np.mean(v)) if v else float("nan")


def summarise(rows: list, fold_of: dict) -> dict:
    from cmrrisk.segmentation.evaluate import FAIL_SCAR_DICE, lge_failure

    out = {"n_cases": len(rows), "n_infarct": sum(r["group"] == "infarct" for r in rows)}
    for key in ("dice_myocardium", "dice_scar", "dice_mvo"):
        per_fold = [_mean([r.get(key) for r in rows if fold_of[r["case"]] == k]) for k in range(N_FOLDS)]
        per_fold = [x for x in per_fold if np.isfinite(x)]
        out[key] = {"mean": _mean([r.get(key) for r in rows]),
                    "fold_means": per_fold,
                    "fold_mean_sd": float(np.std(per_fold, ddof=1)) if len(per_fold) > 1 else float("nan"),
                    "n": sum(r.get(key) is not None for r in rows)}
    err = np.array([r["scar_burden_pred_pct"] - r["scar_burden_ref_pct"] for r in rows], float)
    err = err[np.isfinite(err)]
    out["scar_burden_abs_error_median_pp"] = float(np.median(np.abs(err))) if len(err) else float("nan")
    out["scar_burden_bias_pp"] = float(np.mean(err)) if len(err) else float("nan")
    low = sorted((r["case"], round(r["dice_scar"], 3)) for r in rows
                 if r.get("dice_scar") is not None and r["dice_scar"] < FAIL_SCAR_DICE)
    out["infarct_cases_scar_dice_below_0.30"] = [c for c, _ in low]
    out["n_infarct_cases_scar_dice_below_0.30"] = len(low)
    out["failures"] = [f for f in (lge_failure(r["case"], r.get("dice_scar"), r["scar_burden_pred_pct"],
                                               r["scar_burden_ref_pct"]) for r in rows) if f]
    mvo_ref = [r for r in rows if r["mvo_ref"]]
    out["mvo_found_where_reference_has_it"] = f"{sum(r['mvo_pred'] for r in mvo_ref)} of {len(mvo_ref)}"
    out["mvo_predicted_where_reference_has_none"] = sum(r["mvo_pred"] and not r["mvo_ref"] for r in rows)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--method", required=True, choices=METHODS)
    ap.add_argument("--iterations", type=int, default=800)
    ap.add_argument("--tta", choices=("flips", "none", "dihedral"), default="flips",
                    help="test-time views of the second-stage networks (see above)")
    ap.add_argument("--repeat", type=int, default=0, help="train again with other seeds (see above)")
    ap.add_argument("--folds", default=",".join(str(k) for k in range(N_FOLDS)))
    ap.add_argument("--stage1", default=None, metavar="TAG",
                    help="score with the first stage of each case's own fold instead (bench/cv_lge_stage1.py "
                    "--tag TAG): honest for both stages over all 75 cases; written as lge_cv_<method>_s1-<TAG>.json")
    args = ap.parse_args()
    if args.tta != "flips" and not args.method.startswith("stage2"):
        print(f"--tta {args.tta}: only for the stage2_* methods", file=sys.stderr)
        return 2
    if args.repeat and (args.method not in NETS or args.tta != "flips"):
        print("--repeat: only for the trained network methods, with the default --tta", file=sys.stderr)
        return 2

    import torch

    torch.set_num_threads(1)
    from devmodels import SPLIT_DIR, val_subjects

    from cmrrisk import labels as L
    from cmrrisk import modeldir
    from cmrrisk.datasets import list_emidec, read_emidec_case
    from cmrrisk.segmentation import scar_stage2 as S

    cases = list_emidec(str(DATA / "emidec"))
    fold_of = folds(cases)
    data = {c.case: read_emidec_case(c) for c in cases}
    group = {c.case: c.group for c in cases}
    # the bundled and development first stages: not needed with --stage1 (its own source only)
    bundled = {} if args.stage1 else stage1("lge", cases, "bundled")
    split_dir = SPLIT_DIR / "lge_split"
    held = set(val_subjects(str(split_dir))) if (split_dir / "config.json").is_file() else set()
    split_ok = bool(held) and (split_dir / modeldir.WEIGHTS).is_file()
    split = stage1(str(split_dir), [c for c in cases if c.case in held], "lge_split") if split_ok and not \
        args.stage1 else {}

    name = args.method + ("" if args.tta == "flips" else f"_tta-{args.tta}") + (
        f"_r{args.repeat}" if args.repeat else "") + (f"_s1-{args.stage1}" if args.stage1 else "")
    dst = ROOT / "bench" / "results" / f"lge_cv_{name}.json"
    res = json.loads(dst.read_text()) if dst.is_file() else {}
    if res.get("iterations", args.iterations) != args.iterations and args.method.startswith("stage2"):
        print(f"{dst}: made with --iterations {res['iterations']}; remove it to start again", file=sys.stderr)
        return 2
    res.update({"method": name, "iterations": args.iterations if args.method.startswith("stage2") else None,
                "command": f"python bench/cv_lge.py --method {args.method}"
                + (f" --iterations {args.iterations}" if args.method.startswith("stage2") else "")
                + ("" if args.tta == "flips" else f" --tta {args.tta}")
                + (f" --repeat {args.repeat}" if args.repeat else "")
                + (f" --stage1 {args.stage1}" if args.stage1 else ""),
                "folds_seed": 0, "n_folds": N_FOLDS, "fold_of_case": fold_of,
                "heldout15": sorted(held), "lge_split_weights_present": split_ok})
    res.setdefault("rows", {})
    res.setdefault("seconds", {})
    sources = {"reference": None, "bundled": bundled, "heldout15": split}
    if args.stage1:
        sources = {f"cv_{args.stage1}": stage1_folds(args.stage1, cases, fold_of)}

    for k in [int(x) for x in args.folds.split(",")]:
        if str(k) in res["rows"]:
            print(f"fold {k}: done before", flush=True)
            continue
        t0 = time.perf_counter()
        test = [n for n in sorted(data) if fold_of[n] == k]
        if args.stage1 and not any(n in sources[f"cv_{args.stage1}"] for n in test):
            print(f"fold {k}: its first stage is not trained yet (bench/cv_lge_stage1.py --tag {args.stage1} "
                  f"--fold {k}); skipped", flush=True)
            continue
        net = None
        gated = args.method.endswith("_gated")
        base_method = args.method[: -len("_gated")] if gated else args.method
        members = ENSEMBLES.get(base_method, (base_method,))
        opts = NETS.get(members[0].split("_r")[0], {})
        classic, context = bool(opts.get("classic")), bool(opts.get("context"))
        if args.method.startswith("stage2"):
            ckpt = WORK / (f"{base_method}_it{args.iterations}" + (f"_r{args.repeat}" if args.repeat else "")
                           + f"_fold{k}.pt")
            if gated or args.tta != "flips" or base_method in ENSEMBLES:
                net = []
                for m in members:
                    m, _, r = m.partition("_r")
                    path = WORK / (f"{m}_it{args.iterations}" + (f"_r{r}" if r else "") + f"_fold{k}.pt")
                    st = torch.load(path, weights_only=True) if path.is_file() else {"iteration": 0}
                    if st["iteration"] < args.iterations:
                        print(f"fold {k}: {path.name} not finished; run --method {m} first", flush=True)
                        break
                    net.append(S.ScarNet(S.n_inputs(classic, context)))
                    net[-1].load_state_dict(st["net"])
                    net[-1].eval()
                if len(net) < len(members):
                    continue
            else:
                WORK.mkdir(parents=True, exist_ok=True)
                train = [data[n] for n in sorted(data) if fold_of[n] != k]
                net = S.train(train, str(ckpt), classic=classic, context=context,
                              loss=opts.get("loss", "dice_focal"), iterations=args.iterations,
                              seed=k + 100 * args.repeat,
                              log=lambda m: print(f"fold {k}: {m}", flush=True))
        rows = {}
        for src, s1 in sources.items():
            rows[src] = []
            for n in test:
                img, ref = data[n]
                if s1 is not None and n not in s1:  # heldout15 / --stage1: only the cases they hold
                    continue
                if args.method == "current":
                    if src == "reference":
                        continue
                    pred = s1[n]
                else:
                    stage1_labels = bundled[n] if src == "reference" else s1[n]
                    if src == "reference":  # reference wall, first-stage MVO inside it
                        myo = np.isin(ref, L.MYOCARDIAL)
                        base = np.where(myo, L.LV_MYOCARDIUM, np.where(ref == L.LV_BLOOD_POOL, L.LV_BLOOD_POOL, 0))
                        base[myo & (stage1_labels == L.MVO)] = L.MVO
                        stage1_labels = base.astype(np.uint8)
                    myo = np.isin(stage1_labels, L.MYOCARDIAL)
                    if net is not None:
                        s2 = S.predict(net, img, myo, classic=classic, context=context,
                                       flips=args.tta != "none", rotations=args.tta == "dihedral")
                        if gated:
                            s2 = S.fuse(bundled[n] if src == "reference" else stage1_labels, s2)
                    else:
                        norm, refs = S.normalise(img.astype(np.float32), myo)
                        nsd, fwhm = S.classic_maps(norm, myo, refs)
                        s2 = np.where((nsd if args.method == "classic_nsd" else fwhm) > 0, L.SCAR, 0)
                        s2[myo & (stage1_labels == L.MVO)] = L.MVO
                    pred = S.apply(stage1_labels, s2)
                rows[src].append(score(n, group[n], pred, ref))
        res["rows"][str(k)] = rows
        res["seconds"][str(k)] = round(time.perf_counter() - t0, 1)
        res["summary"] = {src: summarise([r for f in res["rows"].values() for r in f.get(src, [])], fold_of)
                          for src in sources}
        res["folds_done"] = sorted(int(f) for f in res["rows"])
        res["date"] = time.strftime("%Y-%m-%d %H:%M")
        modeldir.write_json(str(dst), res)
        print(f"fold {k} done ({res['seconds'][str(k)]} s): " + json.dumps(
            {src: {"scar": round(v["dice_scar"]["mean"], 3), "myo": round(v["dice_myocardium"]["mean"], 3),
                   "burden_mae": round(v["scar_burden_abs_error_median_pp"], 2)}
             for src, v in res["summary"].items() if v["n_cases"]}), flush=True)
    print(f"written: {dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
