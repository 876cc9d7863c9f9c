"""Shared helpers of the daemon benchmarks: start a real pipesd or luigid, read its memory.

Not a benchmark itself. Each daemon runs as a subprocess on a free port of 127.0.0.1, with
its state file, config and log in a fresh temp dir (its working directory, so no config
file of the repo or the user is picked up).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PIPESD = Path(sys.executable).parent / "pipesd"  # the console script of this venv
LUIGI_VENV = HERE / ".luigi-venv" / "bin"
LUIGI_PYTHON = LUIGI_VENV / "python"
LUIGID = LUIGI_VENV / "luigid"

# Long liveness delays so that filler workers that never ping keep their tasks during a
# fill that takes minutes (both daemons drop silent workers after 60 s by default).
PIPES_CONFIG = """\
[scheduler]
worker_disconnect_delay = 86400
remove_delay = 86400
"""
LUIGI_CONFIG = """\
[scheduler]
worker_disconnect_delay = 86400
remove_delay = 86400
record_task_history = false
"""


@dataclass
class Daemon:
    """A running daemon: its process, URL and temp dir."""

    name: str
    proc: subprocess.Popen[bytes]
    host: str
    port: int
    workdir: Path

    @property
    def url(self) -> str:
        """Base URL of the daemon."""
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        """The daemon's process id (the Python interpreter itself)."""
        return self.proc.pid

    def rss(self) -> int:
        """Resident set size of the daemon process, in bytes (VmRSS)."""
        return proc_status_kb(self.pid, "VmRSS") * 1024

    def hwm(self) -> int:
        """Peak resident set size of the daemon process, in bytes (VmHWM)."""
        return proc_status_kb(self.pid, "VmHWM") * 1024

    def log_tail(self, chars: int = 2000) -> str:
        """The end of the daemon's output, for error messages."""
        text = ""
        for path in sorted(self.workdir.glob("*.log")) + sorted(self.workdir.glob("*.out")):
            text += f"--- {path.name}\n" + path.read_text(errors="replace")[-chars:]
        return text


def proc_status_kb(pid: int, key: str) -> int:
    """A kB figure from /proc/PID/status (VmRSS, VmHWM, ...)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {key} in /proc/{pid}/status")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _wait_ready(daemon: Daemon, path: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if daemon.proc.poll() is not None:
            raise SystemExit(
                f"{daemon.name} exited with {daemon.proc.returncode}:\n{daemon.log_tail()}"
            )
        try:
            conn = http.client.HTTPConnection(daemon.host, daemon.port, timeout=2)
            conn.request("GET", path)
            conn.getresponse().read()
            conn.close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{daemon.name} did not answer {path} within {timeout}s:\n{daemon.log_tail()}")


def _stop(daemon: Daemon) -> None:
    if daemon.proc.poll() is None:
        daemon.proc.send_signal(signal.SIGTERM)
        try:
            daemon.proc.wait(30)
        except subprocess.TimeoutExpired:
            daemon.proc.kill()
            daemon.proc.wait()


def tree_pipesd_command(tree: Path) -> list[str]:
    """This venv's python running pipesd from the checkout at `tree` (e.g. a git worktree of an
    older commit): that tree goes first on sys.path, and the process refuses to start if
    `pipes` still comes from elsewhere."""
    code = (
        "import sys; sys.path.insert(0, TREE); import pipes; "
        "from pathlib import Path; "
        "sys.exit(f'pipes imported from {pipes.__file__}, not from {TREE}') "
        "if not Path(pipes.__file__).resolve().is_relative_to(Path(TREE).resolve()) else None; "
        "from pipes.cli import pipesd_main; pipesd_main()"
    ).replace("TREE", repr(str(tree)))
    return [sys.executable, "-c", code]


@contextlib.contextmanager
def pipesd(
    log_level: str | None = None, base: str | None = None, tree: Path | None = None
) -> Iterator[Daemon]:
    """A fresh pipesd (the venv's console script, or the checkout at `tree` run by this venv's
    python) with its SQLite state in a temp dir."""
    with tempfile.TemporaryDirectory(prefix="pipes-bench-pipesd-", dir=base) as tmp:
        work = Path(tmp)
        (work / "pipesd.cfg").write_text(PIPES_CONFIG)
        port = free_port()
        command = [str(PIPESD)] if PIPESD.exists() else [
            sys.executable, "-c", "from pipes.cli import pipesd_main; pipesd_main()"
        ]  # fmt: skip
        if tree is not None:
            command = tree_pipesd_command(tree)
        argv = [
            *command,
            "--address", "127.0.0.1",
            "--port", str(port),
            "--state-path", str(work / "state.sqlite"),
            "--logdir", str(work),
            "--config", str(work / "pipesd.cfg"),
        ]  # fmt: skip
        if log_level:
            argv += ["--log-level", log_level]
        with open(work / "pipesd.out", "wb") as out:
            proc = subprocess.Popen(argv, cwd=work, stdout=out, stderr=subprocess.STDOUT)
        daemon = Daemon("pipesd", proc, "127.0.0.1", port, work)
        try:
            _wait_ready(daemon, "/health", 30)
            yield daemon
        finally:
            _stop(daemon)


@contextlib.contextmanager
def luigid(base: str | None = None) -> Iterator[Daemon]:
    """A fresh luigid from benchmarks/.luigi-venv (made by `make bench-luigi`)."""
    if not LUIGID.exists():
        raise SystemExit("luigi venv missing: run `make bench-luigi` first")
    with tempfile.TemporaryDirectory(prefix="pipes-bench-luigid-", dir=base) as tmp:
        work = Path(tmp)
        (work / "luigi.cfg").write_text(LUIGI_CONFIG)
        port = free_port()
        argv = [
            str(LUIGID),
            "--address", "127.0.0.1",
            "--port", str(port),
            "--state-path", str(work / "state.pickle"),
        ]  # fmt: skip
        env = {**os.environ, "LUIGI_CONFIG_PATH": str(work / "luigi.cfg")}
        with open(work / "luigid.log", "wb") as out:
            proc = subprocess.Popen(argv, cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT)
        daemon = Daemon("luigid", proc, "127.0.0.1", port, work)
        try:
            _wait_ready(daemon, "/api/ping", 30)
            yield daemon
        finally:
            _stop(daemon)


def _metrics_text(daemon: Daemon) -> str:
    conn = http.client.HTTPConnection(daemon.host, daemon.port, timeout=10)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    return text


def method_seconds(daemon: Daemon, method: str) -> tuple[float, int]:
    """pipesd's own (total seconds, calls) of one RPC method so far, from /metrics: the
    handler's time (validation, scheduler, store), without HTTP and JSON encoding."""
    values = {}
    for line in _metrics_text(daemon).splitlines():
        name, _, value = line.partition(" ")
        if name in (
            f'pipes_rpc_seconds_sum{{method="{method}"}}',
            f'pipes_rpc_seconds_count{{method="{method}"}}',
        ):
            values[name.split("{")[0]] = float(value)
    return values.get("pipes_rpc_seconds_sum", 0.0), int(values.get("pipes_rpc_seconds_count", 0))


def get_work_metrics(daemon: Daemon) -> dict:
    """pipesd's own get_work figures from /metrics: {'count', 'mean'} (mean in seconds, the
    handler's time: validation, scheduler and SQLite commit, without HTTP)."""
    total, count = method_seconds(daemon, "get_work")
    return {"count": count, "mean": total / count if count else None}


def task_id(family: str, *params: object) -> str:
    """A task id shaped like pipes' and luigi's: Family_firstparams_hash."""
    text = "_".join(str(p) for p in params)
    digest = hashlib.md5(f"{family}({text})".encode()).hexdigest()[:10]
    return f"{family}_{text[:40]}_{digest}"


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) of values, nearest-rank."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def summary(values: list[float]) -> tuple[float, float, float]:
    """(median, p99, max) of values."""
    return statistics.median(values), percentile(values, 99), max(values)


def fmt_time(seconds: float) -> str:
    """A duration with a sensible unit."""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} us"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def verdict(value: float, target: float, lower_is_better: bool = True) -> str:
    """'meets' / 'MISSES' the target."""
    ok = value < target if lower_is_better else value >= target
    return "meets target" if ok else "MISSES target"
