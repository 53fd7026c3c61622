"""``cmrrisk train --model multiinput`` in one process and under torchrun on a synthetic cohort.

Runs the same training command (no cross-validation, a fixed number of epochs: ``patience``
equal to ``--epochs`` so that early stopping never ends a run sooner) as

* one process with 1 torch thread,
* one process with 2 torch threads (the same cores as two processes),
* ``torchrun`` with 2 processes of 1 thread each (DistributedDataParallel over gloo),

and records the wall time of each command (``--repeat R``: R interleaved rounds, medians) (start-up, reading and preparing the images, the
fit, writing) and of its final fit alone (``fit_seconds`` in the model's configuration: the
training loop, rank 0's under torchrun). Under torchrun every process prepares the images
itself. The torchrun runs go in a private network namespace
(``unshare -n``, needs root) when possible; otherwise on 127.0.0.1. Writes
``bench/results/multiinput_ddp.json``; the load average before and after each run is recorded
(other work on the machine slows the runs).

    .venv/bin/python bench/bench_multiinput_ddp.py [--n 32] [--epochs 6] [--batch 8] [--width 16] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PKG = os.path.join(ROOT, "CMRRiskExtension")
sys.path.insert(0, PKG)
OUT = os.path.join(ROOT, "bench", "results", "multiinput_ddp.json")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _private() -> bool:
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"):
        return False
    return subprocess.run(["unshare", "-n", "sh", "-c", "ip link set lo up"], capture_output=True).returncode == 0


def _run(nproc, threads, manifest, out, args, epochs):
    train = ["-m", "cmrrisk", "train", manifest, "--endpoint", "survival", "--model", "multiinput",
             "--out", out, "--cv", "0", "--seed", "0", "--max-epochs", str(epochs), "--threads", str(threads),
             "--param", f"width={args.width}", "--param", f"batch_size={args.batch}",
             "--param", f"patience={epochs}"]
    env = dict(os.environ, PYTHONPATH=PKG, OMP_NUM_THREADS=str(threads), GLOO_SOCKET_IFNAME="lo")
    if nproc == 1:
        cmd = [sys.executable, *train]
    else:
        launch = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", str(nproc),
                  "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), *train]
        cmd = (["unshare", "-n", "sh", "-c", "ip link set lo up && exec " + " ".join(map(shlex.quote, launch))]
               if _private() else launch)
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3600)
    secs = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{r.stderr[-3000:]}")
    cfg = json.load(open(os.path.join(out, "config.json")))
    return {"seconds": round(secs, 2), "load_before": round(load0, 2), "load_after": round(os.getloadavg()[0], 2),
            "fit_seconds": cfg["model"]["fit_seconds"], "best_epoch": cfg["model"]["best_epoch"],
            "distributed": cfg["model"].get("distributed")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=32, help="synthetic subjects")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--batch", type=int, default=8, help="total batch (each of 2 processes: half)")
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=1, help="rounds of the three runs, interleaved; medians kept")
    args = ap.parse_args()
    from cmrrisk.synthetic import generate_cohort

    work = tempfile.mkdtemp(prefix="cmrrisk_ddp_bench_")
    try:
        manifest = generate_cohort(os.path.join(work, "cohort"), n=args.n, seed=0, progress=False)
        import statistics

        runs, rounds = {}, []
        for i in range(args.repeat):
            rounds.append({})
            for label, nproc, threads in (("1 process x 1 thread", 1, 1), ("1 process x 2 threads", 1, 2),
                                          ("torchrun 2 processes x 1 thread", 2, 1)):
                rounds[-1][label] = _run(nproc, threads, manifest, os.path.join(work, f"m{nproc}_{threads}_{i}"),
                                         args, args.epochs)
                print(i, label, rounds[-1][label], flush=True)
        for label in rounds[0]:
            runs[label] = dict(rounds[-1][label], **{
                key: statistics.median(r[label][key] for r in rounds) for key in ("seconds", "fit_seconds")})
        one = runs["1 process x 1 thread"]
        ddp = runs["torchrun 2 processes x 1 thread"]
        speedup = {"command": round(one["seconds"] / ddp["seconds"], 2),
                   "final_fit": round(one["fit_seconds"] / ddp["fit_seconds"], 2)}
        res = {"what": "cmrrisk train --endpoint survival --model multiinput --cv 0 on a synthetic cohort "
                       "(cine + LGE with reference label maps), fixed epochs",
               "n_subjects": args.n, "epochs": args.epochs, "batch": args.batch, "width": args.width,
               "cpu_count": os.cpu_count(), "private_network_namespace": _private(),
               "command": "python bench/bench_multiinput_ddp.py " + " ".join(sys.argv[1:]),
               "repeats": args.repeat, "runs": runs, "rounds": rounds,
               "speedup_torchrun_2_over_1_process_median": speedup}
        from cmrrisk import modeldir

        modeldir.write_json(OUT, res)
        print("speed-up of torchrun (2 processes) over 1 process, medians:", speedup)
        print("written", OUT)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
