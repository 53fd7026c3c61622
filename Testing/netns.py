"""A private network namespace for the tests that start servers or process groups: inside
``unshare -n`` with only ``lo`` up, nothing a test starts can be reached from outside, whatever
interface it listens on."""

from __future__ import annotations

import shutil
import socket
import subprocess


def unavailable() -> str | None:
    """Why a private network namespace cannot be made here (None when it can)."""
    if not shutil.which("unshare") or not shutil.which("ip"):
        return "unshare or ip (util-linux, iproute2) not available for a private network namespace"
    r = subprocess.run(["unshare", "-n", "sh", "-c", "ip link set lo up"], capture_output=True, text=True)
    if r.returncode != 0:
        return f"cannot create a private network namespace ({(r.stderr or '').strip()[:120]})"
    return None


def private_command(line: str) -> list:
    """The argument list that runs the shell ``line`` inside a new network namespace whose only
    interface is ``lo`` (brought up first). Begin ``line`` with ``exec`` for the command to
    replace the shell (its process id, signals and exit status then are the command's own)."""
    return ["unshare", "-n", "sh", "-c", f"ip link set lo up && {line}"]


def run_private(line: str, **kw) -> subprocess.CompletedProcess:
    """:func:`subprocess.run` of :func:`private_command` (``kw`` passed on)."""
    return subprocess.run(private_command(line), **kw)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
