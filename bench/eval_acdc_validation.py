"""The cine development model (bench/devmodels.py) on its 20 held-out ACDC validation subjects, with and without
test-time flips: Dice and HD95 per structure at ED and ES, LVEF/RVEF/volume/mass errors.
Writes bench/results/acdc_validation.json.

    .venv/bin/python bench/eval_acdc_validation.py [--no-tta]
"""

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("CMRRISK_DATA", ROOT.parent / "shared" / "data"))


def main():
    from cmrrisk.modeldir import write_json

    ap = argparse.ArgumentParser()
    ap.add_argument("--no-tta", action="store_true", help="skip the test-time-flip variant")
    args = ap.parse_args()
    from devmodels import use_development_models

    use_development_models()  # held-out figures: the models trained with the validation split (bench/devmodels.py)
    from cmrrisk import modeldir
    from cmrrisk.datasets import list_acdc
    from cmrrisk.segmentation.evaluate import evaluate_acdc
    from cmrrisk.segmentation.infer import Segmenter

    path = modeldir.resolve("cine")
    cfg = modeldir.read_json(os.path.join(path, "config.json"))
    val = set(cfg["training"]["val_subjects"])
    subjects = [s for s in list_acdc(str(DATA / "acdc" / "training")) if s.subject in val]
    out = {"model_sha256": modeldir.read_json(os.path.join(path, "checksums.json"))["model.safetensors"],
           "subjects": sorted(val)}
    for tta in ([False] if args.no_tta else [False, True]):
        res = evaluate_acdc(Segmenter.load("cine", tta=tta), subjects)
        key = "with_test_time_flips" if tta else "plain"
        out[key] = {"summary": res["summary"], "seconds_per_frame_median": res["seconds_per_frame_median"]}
        print(key, json.dumps(res["summary"], indent=1))
    dst = ROOT / "bench" / "results" / "acdc_validation.json"
    write_json(str(dst), out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
