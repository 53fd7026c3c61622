"""The cohort commands: ``manifest``, ``features`` and ``merge-shards``."""

from __future__ import annotations

import sys


def cmd_manifest(args) -> int:
    from .. import manifest as M

    make = {"acdc": M.acdc_manifest, "emidec": M.emidec_manifest, "sunnybrook": M.sunnybrook_manifest}
    rows = make[args.dataset](args.folder, args.out)
    print(f"{args.out}: {len(rows)} subjects")
    return 0


def cmd_features(args) -> int:
    from ..features.cohort import write_features
    from ..parallel import engine_from_args, parse_shard

    opts = {"radiomics": not args.no_radiomics, "deep": not args.no_deep,
            "radiomics_params": args.radiomics_params, "device": args.device}
    shard = parse_shard(args.shard)
    with engine_from_args(args) as engine:
        prov = write_features(args.manifest, args.out, cache_dir=args.cache, options=opts,
                              progress=not args.quiet, engine=engine, shard=shard)
    for f in prov["failures"]:
        print(f"failed: {f['subject']}: {f['error']}", file=sys.stderr)
    print(f"{args.out}: {prov['n_subjects'] - prov['n_failed']} subjects, {prov['columns']['n_features']} "
          f"features ({prov['n_computed']} computed, {prov['n_cached']} from cache, {prov['n_failed']} failed); "
          f"provenance: {args.out[:-4] if args.out.lower().endswith('.csv') else args.out}.provenance.json")
    return 0


def cmd_merge_shards(args) -> int:
    from ..features.cohort import merge_shards, provenance_path

    prov = merge_shards(args.shards, args.out)
    print(f"{args.out}: {prov['n_subjects'] - prov['n_failed']} subjects, {prov['columns']['n_features']} features "
          f"from {len(prov['shards'])} shards ({prov['n_failed']} failed); provenance: {provenance_path(args.out)}")
    return 0


def add_commands(sub) -> None:
    """Add the cohort commands to the ``cmrrisk`` subparsers."""
    m = sub.add_parser("manifest", help="turn a public dataset into a cohort manifest")
    m.add_argument("dataset", choices=["acdc", "emidec", "sunnybrook"])
    m.add_argument("folder", help="the dataset's folder")
    m.add_argument("--out", required=True, help="manifest CSV to write (volumes go beside it)")
    m.set_defaults(func=cmd_manifest)

    f = sub.add_parser("features", help="clinical indices, radiomics and deep features of every "
                       "subject of a manifest")
    f.add_argument("manifest", help="cohort manifest CSV (see cmrrisk/manifest.py for the format)")
    f.add_argument("--out", required=True, help="features CSV to write (provenance JSON beside it)")
    f.add_argument("--cache", default=None, help="cache folder of finished subjects "
                   "(default: <out>_cache beside the CSV); a rerun only computes what changed")
    f.add_argument("--radiomics-params", default=None, help="pyradiomics YAML (default: the bundled one)")
    f.add_argument("--no-radiomics", action="store_true", help="skip radiomic features")
    f.add_argument("--no-deep", action="store_true", help="skip deep features")
    f.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    f.add_argument("--quiet", action="store_true", help="no progress bar")
    from ..parallel import add_engine_arguments

    add_engine_arguments(f, shard=True)
    f.set_defaults(func=cmd_features)

    g = sub.add_parser("merge-shards", help="join the features tables of `features --shard I/N` runs into "
                       "the table of a single run")
    g.add_argument("shards", nargs="+", metavar="SHARD_CSV", help="the N shards' features CSVs (provenance "
                   "JSON beside each)")
    g.add_argument("--out", required=True, help="features CSV to write (provenance JSON beside it)")
    g.set_defaults(func=cmd_merge_shards)
