"""Run inside a private network namespace (``unshare -n``) by test_engine.py: bring up the
loopback interface, start a ``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1,
run ``cmrrisk features --scheduler`` on a manifest, then start a third worker that cannot see
the manifest's folder (a tmpfs mounted over it in its own mount namespace) and run the command
again. Every process started here is stopped by its process id. Writes a JSON of what happened.

    python dask_cluster_driver.py MANIFEST WORKDIR RESULT_JSON
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

PORT = 8786
ADDRESS = f"tcp://127.0.0.1:{PORT}"


def dask_cmd(*args):
    exe = os.path.join(os.path.dirname(sys.executable), "dask")
    return ([exe] if os.path.exists(exe) else [sys.executable, "-m", "dask"]) + list(args)


def stop(procs):
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)  # its own process group: the worker and its nanny
            p.wait(5)


def wait_workers(n, timeout=60):
    from distributed import Client

    with Client(ADDRESS, timeout="20s") as c:
        c.wait_for_workers(n, timeout=timeout)


def features(manifest, out, cache):
    r = subprocess.run([sys.executable, "-m", "cmrrisk", "features", manifest, "--out", out, "--cache", cache,
                        "--scheduler", ADDRESS, "--no-radiomics", "--no-deep", "--quiet"],
                       capture_output=True, text=True, timeout=120)
    return {"rc": r.returncode, "stdout": r.stdout, "stderr": r.stderr}


def main():
    manifest, work, result = sys.argv[1:4]
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    log = open(os.path.join(work, "dask.log"), "w")
    procs = []
    out = {}
    try:
        common = {"stdout": log, "stderr": subprocess.STDOUT, "start_new_session": True}
        procs.append(subprocess.Popen(dask_cmd("scheduler", "--host", "127.0.0.1", "--port", str(PORT),
                                               "--no-dashboard"), **common))
        worker = ["worker", ADDRESS, "--nthreads", "1", "--nworkers", "1", "--host", "127.0.0.1", "--no-dashboard"]
        for _ in range(2):
            procs.append(subprocess.Popen(dask_cmd(*worker), **common))
        out["pids"] = [p.pid for p in procs]
        wait_workers(2)
        out["shared"] = features(manifest, os.path.join(work, "scheduler.csv"), os.path.join(work, "cache_s"))
        # a worker that cannot see the cohort: the manifest's folder hidden under an empty tmpfs
        folder = os.path.dirname(os.path.abspath(manifest))
        blind = subprocess.Popen(["unshare", "-m", "sh", "-c", f"mount -t tmpfs none '{folder}' && exec "
                                  + " ".join(dask_cmd(*worker))], **common)
        procs.append(blind)
        wait_workers(3)
        out["blind"] = features(manifest, os.path.join(work, "blind.csv"), os.path.join(work, "cache_b"))
    finally:
        stop(procs)
        out["alive_after_stop"] = [p.pid for p in procs if p.poll() is None]
        log.close()
        with open(result, "w") as fh:
            json.dump(out, fh)


if __name__ == "__main__":
    main()
