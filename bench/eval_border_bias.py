"""Where the development models' (bench/devmodels.py) myocardium errors go, on real data and on the synthetic cohort
(the synthetic Dice target; the cause, not the threshold).

For every slice third (base / mid / apex) it counts, over all subjects, the reference
myocardium voxels by predicted class (``true_myo_to``: LV blood pool, myocardium, RV, background)
and the predicted LV blood pool voxels by reference class (``pred_lv_from``), with the median
predicted / reference LV volume and the Dice of each structure over all voxels pooled. A model that agrees with the annotation convention of its
training data calls about as much reference myocardium "LV blood pool" on held-out real subjects
as on synthetic ones; a larger share on the synthetic images means that their endocardial border
is drawn (or rendered) where the model does not expect it.

* cine: the 20 held-out ACDC subjects of the cine development model against ``--n`` synthetic
  subjects (seed ``--seed``), ED and ES (ES anchored to the ED prediction, as in the pipeline);
* lge: the 15 held-out EMIDEC cases of the lge development model (default test-time flips) against
  the synthetic LGE stacks (myocardium = healthy + scar + MVO).

``--ablate NAME,...`` also runs the synthetic cine with one generator property changed at a time
(see ``ABLATIONS``) to find which property, if any, moves the synthetic border bias.

    .venv/bin/python bench/eval_border_bias.py [--n 12] [--seed 0] [--ablate all] [--out PATH]

Writes bench/results/border_bias.json.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "CMRRiskExtension"))
DATA = Path(os.environ.get("CMRRISK_DATA", ROOT.parent / "shared" / "data"))
CLASSES = ("background", "lv", "myo", "rv")
LEVELS = ("base", "mid", "apex")

#: one generator property changed at a time (values replace those drawn per subject)
ABLATIONS = {
    "no_trabeculae": {"trabeculae_max_mm": 0.0},
    "no_papillary_no_trabeculae": {"no_cavity_muscle": True},
    "blur_0.8mm": {"blur_mm": 0.8},
    "blur_1.8mm": {"blur_mm": 1.8},
    "snr_x3": {"snr_factor": 3.0},
    "blood_ratio_2.2": {"blood_ratio": 2.2},
    "blood_ratio_3.5": {"blood_ratio": 3.5},
    "spacing_1.1mm": {"spacing": 1.1},
    "spacing_1.8mm": {"spacing": 1.8},
    "wall_x0.8": {"wall_factor": 0.8},
    # the rendered cavity edge moved inside the labelled endocardium (muscle intensity in the
    # pixels of the 2x supersampled grid within inset_mm of the cavity border: one such pixel,
    # 0.68-0.83 mm, at the generator's spacings): another annotation convention, not a property
    # that bench/measure_real_appearance.py shows to be more realistic
    "endo_inset_1mm": {"endo_inset_mm": 1.0},
    "endo_inset_1mm_no_trabeculae": {"endo_inset_mm": 1.0, "trabeculae_max_mm": 0.0},
    "endo_inset_1mm_blur_1.0mm": {"endo_inset_mm": 1.0, "blur_mm": 1.0},
}


class Counts:
    """Confusion counts (reference class x predicted class) per slice third."""

    def __init__(self):
        self.c = np.zeros((3, 4, 4))
        self.lv_ratio = []

    def add(self, pred, ref, apex_first: bool):
        nz = ref.shape[0]
        for k in range(nz):
            lvl = min(2, int(3 * k / nz))
            lvl = 2 - lvl if apex_first else lvl
            idx = ref[k].astype(np.int64) * 4 + pred[k].astype(np.int64)
            self.c[lvl] += np.bincount(idx.ravel(), minlength=16).reshape(4, 4)
        self.lv_ratio.append(float((pred == 1).sum()) / max(float((ref == 1).sum()), 1.0))

    def summary(self) -> dict:
        out = {}
        for name, m in [("all", self.c.sum(0))] + list(zip(LEVELS, self.c)):
            out[name] = {"true_myo_to": {c: float(m[2, j] / max(m[2].sum(), 1)) for j, c in enumerate(CLASSES)},
                         "pred_lv_from": {c: float(m[j, 1] / max(m[:, 1].sum(), 1)) for j, c in enumerate(CLASSES)}}
        m = self.c.sum(0)
        out["dice_pooled"] = {c: float(2 * m[j, j] / max(m[j].sum() + m[:, j].sum(), 1))
                              for j, c in enumerate(CLASSES) if j and m[j].sum()}
        out["lv_volume_ratio_median"] = float(np.median(self.lv_ratio)) if self.lv_ratio else None
        return out


def _cine_pair(cine, counts, ed_img, ed_ref, es_img, es_ref):
    ed = cine.predict_frame(ed_img.array.astype(np.float32), ed_img.spacing[:2])
    es = cine.predict_frame(es_img.array.astype(np.float32), es_img.spacing[:2], prior=ed)
    counts["ed"].add(ed, ed_ref, False)
    counts["es"].add(es, es_ref, False)


def acdc_cine(cine, subjects):
    from cmrrisk import labels as L
    from cmrrisk.image import read_image

    counts = {"ed": Counts(), "es": Counts()}
    for s in subjects:
        refs = [L.map_labels(read_image(s.frame_path(ph, gt=True)).array, L.ACDC_TO_PROJECT) for ph in ("ed", "es")]
        _cine_pair(cine, counts, read_image(s.frame_path("ed")), refs[0], read_image(s.frame_path("es")), refs[1])
    return counts


def _lge_labels(a):
    from cmrrisk import labels as L

    out = np.zeros(a.shape, np.uint8)
    out[a == L.LV_BLOOD_POOL] = 1
    out[np.isin(a, L.MYOCARDIAL)] = 2
    return out


def synthetic(cine, lge, n, seed, with_lge=True):
    from cmrrisk.image import read_image
    from cmrrisk.manifest import read_manifest
    from cmrrisk.synthetic import APEX_FIRST, generate_cohort

    counts = {"ed": Counts(), "es": Counts(), "lge": Counts()}
    with tempfile.TemporaryDirectory() as tmp:
        man = read_manifest(generate_cohort(tmp, n=n, seed=seed, progress=False), require_images=True)
        for r in man.rows:
            _cine_pair(cine, counts, read_image(r["cine_ed"]), read_image(r["cine_ed_seg"]).array,
                       read_image(r["cine_es"]), read_image(r["cine_es_seg"]).array)
            if with_lge:
                v = read_image(r["lge"])
                p = lge.predict_frame(v.array.astype(np.float32), v.spacing[:2])
                counts["lge"].add(_lge_labels(p), _lge_labels(read_image(r["lge_seg"]).array), APEX_FIRST["lge"])
    return counts


def emidec_lge(lge, cases):
    from cmrrisk.datasets import read_emidec_case
    from cmrrisk.image import Volume

    counts = Counts()
    for c in cases:
        img, ref = read_emidec_case(c)
        pred = lge.segment(Volume(img, np.eye(4), c.case)).array
        counts.add(_lge_labels(pred), _lge_labels(ref), True)  # EMIDEC stacks are stored apex first
    return counts


def ablated(name):
    """Context manager-like pair (apply, undo) for one ablation of the generator."""
    import cmrrisk.synthetic as S

    spec = ABLATIONS[name]
    saved = {"draw": S.draw_subject, "trab": S._trabeculae, "trab_c": dict(S.TRABECULAE)}

    def draw(rng):
        p = saved["draw"](rng)
        for k in ("blur_mm", "blood_ratio", "spacing"):
            if k in spec:
                p[k] = spec[k]
        if "snr_factor" in spec:
            p["snr"] *= spec["snr_factor"]
        if "wall_factor" in spec:
            p["wall"] *= spec["wall_factor"]
        return p

    def apply():
        S.draw_subject = draw
        if "trabeculae_max_mm" in spec:
            S.TRABECULAE["max_mm"] = spec["trabeculae_max_mm"]
        if spec.get("no_cavity_muscle"):
            S._trabeculae = lambda p, a, x, y, lab, phase: np.zeros(x.shape, bool)
        if "endo_inset_mm" in spec:
            from scipy import ndimage

            def trab(p, a, x, y, lab, phase):
                cav = lab == 1
                step = float(x[0, 1] - x[0, 0])
                edge = cav & (ndimage.distance_transform_edt(cav) * step <= spec["endo_inset_mm"])
                return saved["trab"](p, a, x, y, lab, phase) | edge
            S._trabeculae = trab

    def undo():
        S.draw_subject, S._trabeculae = saved["draw"], saved["trab"]
        S.TRABECULAE.clear()
        S.TRABECULAE.update(saved["trab_c"])

    return apply, undo


def _line(tag, s):
    a = s["all"]
    return (f"{tag:32s} true myo -> LV {a['true_myo_to']['lv']:.3f}  bg {a['true_myo_to']['background']:.3f}  "
            f"RV {a['true_myo_to']['rv']:.3f} | pred LV from myo {a['pred_lv_from']['myo']:.3f} | "
            f"LV volume ratio {s['lv_volume_ratio_median']:.2f} | Dice (pooled) "
            + " ".join(f"{k} {v:.3f}" for k, v in s["dice_pooled"].items()))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ablate", default="", help="comma-separated names of ABLATIONS, or 'all'")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "border_bias.json"))
    args = ap.parse_args()
    from devmodels import use_development_models

    use_development_models()  # held-out figures: the models trained with the validation split (bench/devmodels.py)
    from cmrrisk import modeldir
    from cmrrisk.datasets import list_acdc, list_emidec
    from cmrrisk.segmentation.infer import Segmenter
    from cmrrisk.synthetic import VERSION

    names = list(ABLATIONS) if args.ablate == "all" else [a for a in args.ablate.split(",") if a]
    unknown = [a for a in names if a not in ABLATIONS]
    if unknown:
        ap.error(f"--ablate {','.join(unknown)}: unknown; choose among {', '.join(ABLATIONS)} or 'all'")
    t0 = time.time()
    cine, lge = Segmenter.load("cine"), Segmenter.load("lge")
    out = {"command": "python bench/eval_border_bias.py " + " ".join(sys.argv[1:]), "n_synthetic": args.n,
           "seed": args.seed, "generator_version": VERSION,
           "models": {m: modeldir.read_json(str(Path(modeldir.resolve(m)) / modeldir.CHECKSUMS))[modeldir.WEIGHTS]
                      for m in ("cine", "lge")}}
    val_cine = set(modeldir.read_json(str(Path(modeldir.resolve("cine")) / "config.json"))["training"]["val_subjects"])
    val_lge = set(modeldir.read_json(str(Path(modeldir.resolve("lge")) / "config.json"))["training"]["val_subjects"])
    acdc = [s for s in list_acdc(str(DATA / "acdc" / "training")) if s.subject in val_cine] \
        if (DATA / "acdc" / "training").is_dir() else []
    emidec = [c for c in list_emidec(str(DATA / "emidec")) if c.case in val_lge] if (DATA / "emidec").is_dir() else []
    if acdc:
        c = acdc_cine(cine, acdc)
        out["acdc_heldout"] = {"n": len(acdc), **{ph: c[ph].summary() for ph in ("ed", "es")}}
        for ph in ("ed", "es"):
            print(_line(f"ACDC held-out {ph}", out["acdc_heldout"][ph]), flush=True)
    else:
        print(f"ACDC not found under {DATA}: real cine figures skipped", file=sys.stderr)
    if emidec:
        out["emidec_heldout"] = {"n": len(emidec), "lge": emidec_lge(lge, emidec).summary()}
        print(_line("EMIDEC held-out lge", out["emidec_heldout"]["lge"]), flush=True)
    else:
        print(f"EMIDEC not found under {DATA}: real LGE figures skipped", file=sys.stderr)
    c = synthetic(cine, lge, args.n, args.seed)
    out["synthetic"] = {ph: c[ph].summary() for ph in ("ed", "es", "lge")}
    for ph in ("ed", "es", "lge"):
        print(_line(f"synthetic {ph}", out["synthetic"][ph]), flush=True)
    out["ablations"] = {}
    for name in names:
        apply, undo = ablated(name)
        apply()
        try:
            c = synthetic(cine, lge, args.n, args.seed, with_lge=False)
        finally:
            undo()
        out["ablations"][name] = {"change": ABLATIONS[name], **{ph: c[ph].summary() for ph in ("ed", "es")}}
        for ph in ("ed", "es"):
            print(_line(f"{name} {ph}", out["ablations"][name][ph]), flush=True)
    out["seconds"] = round(time.time() - t0, 1)
    modeldir.write_json(args.out, out)
    print(f"written: {args.out} ({out['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
