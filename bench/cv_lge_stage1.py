"""First-stage LGE model per cross-validation fold, for honest two-stage figures.

Trains ``cmrrisk train-segmentation --task lge`` once per fold of ``bench/cv_lge.py`` (the same
seeded, stratified five folds over the 75 EMIDEC cases), holding out exactly that fold's 15 cases
(``--val-subjects``), into ``bench/cv_work/stage1_<tag>_fold<k>/``. Checkpoints every 100
iterations: run the same command again to resume. ``python bench/cv_lge.py --stage1 <tag> ...``
then scores every case with the first stage of its own fold.

    .venv/bin/python bench/cv_lge_stage1.py --tag cineinit --init cine --iterations 2000 --fold 0
"""

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "CMRRiskExtension"))
sys.path.insert(0, str(ROOT / "bench"))

from cv_lge import DATA, N_FOLDS, WORK, folds, stage1_fold_dir  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tag", required=True, help="name of this first-stage design")
    ap.add_argument("--fold", type=int, required=True, choices=range(N_FOLDS))
    ap.add_argument("--iterations", type=int, default=5000)
    ap.add_argument("--lr", type=float, default=0.001)
    ap.add_argument("--init", default=None, help="model to start from (e.g. cine: every layer but the output)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from cmrrisk.datasets import list_emidec
    from cmrrisk.segmentation.train import train

    cases = list_emidec(str(DATA / "emidec"))
    fold_of = folds(cases)
    held = sorted(n for n, f in fold_of.items() if f == args.fold)
    out = stage1_fold_dir(args.tag, args.fold)
    WORK.mkdir(parents=True, exist_ok=True)
    train(str(DATA / "emidec"), str(out), seed=args.seed + args.fold, threads=1, task="lge", init=args.init,
          val_subjects=held, iterations=args.iterations, lr=args.lr)
    print(f"fold {args.fold}: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
