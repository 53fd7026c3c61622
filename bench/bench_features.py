"""Speed of `cmrrisk features` per subject on this machine: ED + ES segmentation with the bundled
model (deep features from the same pass), clinical indices, radiomics (bundled parameters).

Runs the cohort runner on N ACDC subjects without reference segmentations and without cache,
with all cores (one worker process per core), `--repeats` times; reports the median wall time per
subject (target: <= 5 s on 2 cores) and the per-step breakdown (median over
subjects of the worker's own timings). Writes bench/results/features_speed.json.

    .venv/bin/python bench/bench_features.py [--subjects 10] [--repeats 3] [--workers N]
"""

import argparse
import csv
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("CMRRISK_DATA", ROOT.parent / "shared" / "data")) / "acdc" / "training"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--subjects", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, default=None, help="default: all cores")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "features_speed.json"))
    args = ap.parse_args()
    if not DATA.is_dir():
        print(f"ACDC not found at {DATA}", file=sys.stderr)
        return 1
    from cmrrisk import modeldir
    from cmrrisk.features.cohort import compute_cohort
    from cmrrisk.manifest import acdc_manifest

    runs, steps = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        full = os.path.join(tmp, "acdc.csv")
        acdc_manifest(str(DATA), full)
        with open(full) as fh:
            rows = list(csv.DictReader(fh))
        # every 10th subject: all five groups; reference segmentations removed
        pick = rows[::max(1, len(rows) // args.subjects)][:args.subjects]
        small = os.path.join(tmp, "bench.csv")
        with open(small, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            for r in pick:
                w.writerow(dict(r, cine_ed_seg="", cine_es_seg=""))
        for rep in range(args.repeats):
            records, prov = compute_cohort(small, cache_dir=None, workers=args.workers, progress=False)
            if prov["n_failed"]:
                print(prov["failures"], file=sys.stderr)
                return 1
            runs.append({"wall_seconds": prov["wall_seconds"], "workers": prov["workers"],
                         "seconds_per_subject": prov["wall_seconds"] / len(records)})
            for r in records:
                for k, v in r["info"]["seconds"].items():
                    steps.setdefault(k, []).append(v)
            print(f"repeat {rep + 1}: {prov['wall_seconds']:.1f} s for {len(records)} subjects "
                  f"({prov['wall_seconds'] / len(records):.2f} s/subject, {prov['workers']} workers)", flush=True)
    res = {
        "what": "cmrrisk features on ACDC subjects segmented by the bundled cine model "
                "(ED+ES segmentation, deep features, indices, radiomics); wall time includes "
                "starting the worker processes",
        "subjects": [r["subject"] for r in pick],
        "cpu_count": os.cpu_count(),
        "repeats": runs,
        "median_seconds_per_subject": statistics.median(r["seconds_per_subject"] for r in runs),
        "median_step_seconds_in_worker": {k: statistics.median(v) for k, v in steps.items()},
        "software": modeldir.software_versions(),
    }
    modeldir.write_json(args.out, res)
    print(json.dumps({k: res[k] for k in ("median_seconds_per_subject", "median_step_seconds_in_worker")}, indent=1))
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
