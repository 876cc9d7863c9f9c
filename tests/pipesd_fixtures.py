"""Real `pipesd` daemons and `pipes` worker processes for the daemon tests.

`pipesd_factory` starts the real console script on a free 127.0.0.1 port with its state file and
config in tmp_path and waits for GET /health; every daemon it started is killed at teardown.
`start_worker` runs `pipes --module MODULE TASK --scheduler-url URL` with cwd=tmp_path, where
the test wrote its task module and a pipes.cfg for the workers.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pipes.rpc import RemoteScheduler, RetryPolicy

BIN = Path(sys.executable).parent
PIPESD_SCRIPT = BIN / "pipesd"
PIPES_SCRIPT = BIN / "pipes"

# Worker settings that keep the daemon tests fast: short waits, frequent pings, patient RPC.
# no_lock: these tests start identical workers on one host on purpose, for pipesd to de-duplicate.
WORKER_CONFIG = """
[core]
log_level = WARNING
rpc_retry_seconds = 40
rpc_connect_seconds = 5
no_lock = true

[worker]
wait_interval = 0.1
ping_interval = 0.3
"""

# Task families used by the tests. Every run appends "<task_id> <pid>" to runs.log, so a
# test can count how often each task ran and where. Small O_APPEND writes do not interleave.
FLOWS_MODULE = '''
import os
import time

import pipes


def log_line(path, line):
    with open(path, "a") as out:
        out.write(line + "\\n")


class Shared(pipes.Task):
    """A task several roots need; sleeps so that two workers overlap on it."""

    n = pipes.IntParameter()
    sleep = pipes.FloatParameter(default=0.15)

    def output(self):
        return pipes.LocalTarget(f"out/shared-{self.n}.txt")

    def run(self):
        log_line("runs.log", f"{self.task_id} {os.getpid()}")
        time.sleep(self.sleep)
        with self.output().open("w") as out:
            out.write(str(os.getpid()))


class Top(pipes.Task):
    """One worker's own root over a set of Shared tasks (first..last inclusive)."""

    name = pipes.Parameter()
    first = pipes.IntParameter(default=0)
    last = pipes.IntParameter(default=5)

    def requires(self):
        return [Shared(n=i) for i in range(self.first, self.last + 1)]

    def output(self):
        return pipes.LocalTarget(f"out/top-{self.name}.txt")

    def run(self):
        log_line("runs.log", f"{self.task_id} {os.getpid()}")
        with self.output().open("w") as out:
            out.write("ok")


class DbTask(pipes.Task):
    """Holds the global `db` resource while it runs; records when it held it."""

    tag = pipes.Parameter()
    n = pipes.IntParameter()
    sleep = pipes.FloatParameter(default=0.12)
    resources = {"db": 1}

    def output(self):
        return pipes.LocalTarget(f"out/db-{self.tag}-{self.n}.txt")

    def run(self):
        start = time.time()
        open(f"started-db-{self.tag}-{self.n}.flag", "a").close()
        time.sleep(self.sleep)
        end = time.time()
        log_line("spans.log", f"{self.task_id} {start!r} {end!r}")
        with self.output().open("w") as out:
            out.write("ok")


class DbBatch(pipes.WrapperTask):
    tag = pipes.Parameter()
    count = pipes.IntParameter(default=4)
    sleep = pipes.FloatParameter(default=0.12)

    def requires(self):
        return [DbTask(tag=self.tag, n=i, sleep=self.sleep) for i in range(self.count)]


class Slow(pipes.Task):
    """Hangs on its first attempt (after creating started.flag); later attempts finish."""

    def output(self):
        return pipes.LocalTarget("out/slow.txt")

    def run(self):
        log_line("runs.log", f"{self.task_id} {os.getpid()}")
        first = not os.path.exists("started.flag")
        open("started.flag", "a").close()
        if first:
            time.sleep(120)
        with self.output().open("w") as out:
            out.write(str(os.getpid()))


class Step(pipes.Task):
    """A chain: Step(n) needs Step(n - 1); each step takes `sleep` seconds."""

    n = pipes.IntParameter()
    sleep = pipes.FloatParameter(default=0.25)

    def requires(self):
        return [Step(n=self.n - 1, sleep=self.sleep)] if self.n > 0 else []

    def output(self):
        return pipes.LocalTarget(f"out/step-{self.n}.txt")

    def run(self):
        log_line("runs.log", f"{self.task_id} {os.getpid()}")
        time.sleep(self.sleep)
        with self.output().open("w") as out:
            out.write("ok")


class Twin(pipes.Task):
    """Another root over the same chain, so two workers share every Step."""

    name = pipes.Parameter()
    n = pipes.IntParameter()
    sleep = pipes.FloatParameter(default=0.25)

    def requires(self):
        return Step(n=self.n, sleep=self.sleep)

    def output(self):
        return pipes.LocalTarget(f"out/twin-{self.name}.txt")

    def run(self):
        log_line("runs.log", f"{self.task_id} {os.getpid()}")
        with self.output().open("w") as out:
            out.write("ok")
'''


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_is_free(port: int) -> bool:
    """True when a new socket may bind 127.0.0.1:port (nothing listens on it)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def pid_alive(pid: int) -> bool:
    """True while `pid` is a running process (a zombie counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def clean_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """os.environ without PIPES_* settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIPES_")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra or {})
    return env


@dataclass
class Reply:
    """An HTTP answer: status, raw body and the body parsed as JSON (None if it is not)."""

    status: int
    body: bytes
    headers: dict[str, str]

    @property
    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


def http_request(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> Reply:
    """One request on a fresh connection to 127.0.0.1:port."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return Reply(response.status, response.read(), dict(response.getheaders()))
    finally:
        conn.close()


@dataclass
class Daemon:
    """One pipesd: where it listens, its files, and its current process (if running)."""

    workdir: Path
    port: int
    state_path: Path
    config_path: Path
    env: dict[str, str]
    token: str | None = None
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def stderr_path(self) -> Path:
        return self.workdir / f"pipesd-{self.starts}.err"

    def command(self, *extra: str) -> list[str]:
        """The pipesd command line for this daemon."""
        return [
            str(PIPESD_SCRIPT),
            "--port",
            str(self.port),
            "--state-path",
            str(self.state_path),
            "--config",
            str(self.config_path),
            "--log-level",
            "warning",
            *extra,
        ]

    def start(self, *extra: str, wait: bool = True) -> subprocess.Popen[bytes]:
        """Start pipesd (again), by default waiting until /health answers."""
        assert self.proc is None or self.proc.poll() is not None, "pipesd already running"
        self.starts += 1
        with self.stderr_path.open("wb") as err:
            self.proc = subprocess.Popen(
                self.command(*extra),
                cwd=self.workdir,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=subprocess.STDOUT,
            )
        self.procs.append(self.proc)
        if wait:
            self.wait_healthy()
        return self.proc

    def wait_healthy(self, timeout: float = 20.0) -> None:
        """Wait for GET /health to answer 200; fail with pipesd's output if it died."""
        give_up = time.monotonic() + timeout
        while time.monotonic() < give_up:
            if self.proc is not None and self.proc.poll() is not None:
                pytest.fail(
                    f"pipesd exited with {self.proc.returncode} before answering /health:\n"
                    + self.stderr_path.read_text(errors="replace")
                )
            try:
                if self.get("/health", timeout=1.0).status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        pytest.fail(f"pipesd did not answer /health on port {self.port} within {timeout}s")

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        """SIGKILL (kill -9) and reap."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def output(self) -> str:
        """What the current (or last) pipesd process wrote to stdout/stderr."""
        return self.stderr_path.read_text(errors="replace")

    # ----- talking to it --------------------------------------------------------------------

    def scheduler(self, token: str | None = None, deadline: float = 20.0) -> RemoteScheduler:
        """The real HTTP client, with the daemon's token unless another is given."""
        retry = RetryPolicy(deadline=deadline, timeout=10.0)
        return RemoteScheduler(self.url, token=token or self.token, retry=retry)

    def call(self, method: str, **body: Any) -> dict[str, Any]:
        """One RPC through RemoteScheduler.call."""
        return self.scheduler().call(method, **body)

    def post(
        self,
        method: str,
        body: bytes | dict[str, Any] | list[Any] | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 10.0,
    ) -> Reply:
        """POST /api/v1/<method> with raw bytes (or JSON-encoded `body`)."""
        data = body if isinstance(body, bytes) else json.dumps(body or {}).encode()
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        return http_request(self.port, "POST", f"/api/v1/{method}", data, all_headers, timeout)

    def get(self, path: str, timeout: float = 10.0) -> Reply:
        """GET a path."""
        return http_request(self.port, "GET", path, timeout=timeout)

    def cleanup(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


DaemonFactory = Callable[..., Daemon]


def new_daemon(
    workdir: Path,
    config: str = "",
    env: dict[str, str] | None = None,
    token: str | None = None,
) -> Daemon:
    """A Daemon (not yet started) living in workdir, with `config` (dedented) as --config."""
    if not PIPESD_SCRIPT.exists():
        pytest.fail(f"no pipesd console script at {PIPESD_SCRIPT}: run `pip install -e .`")
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "pipesd.cfg"
    config_path.write_text(textwrap.dedent(config).lstrip("\n"))
    return Daemon(
        workdir=workdir,
        port=free_port(),
        state_path=workdir / "state.sqlite",
        config_path=config_path,
        env=clean_environment(env),
        token=token,
    )


@pytest.fixture
def pipesd_factory(tmp_path: Path) -> Iterator[DaemonFactory]:
    """make(config="", start=True, args=(), env=None, name="pipesd", token=None) -> Daemon.

    `config` is the text of the file passed with --config. The daemon's cwd is its own
    directory under tmp_path, so the workers' tmp_path/pipes.cfg is not read by it. `token`
    is what Daemon.call sends. Every daemon is killed at teardown.
    """
    daemons: list[Daemon] = []

    def make(
        config: str = "",
        *,
        start: bool = True,
        args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
        name: str = "pipesd",
        token: str | None = None,
    ) -> Daemon:
        daemon = new_daemon(tmp_path / name, config, env, token)
        daemons.append(daemon)
        if start:
            daemon.start(*args)
        return daemon

    yield make
    for daemon in daemons:
        daemon.cleanup()


@pytest.fixture
def pipesd(pipesd_factory: DaemonFactory) -> Daemon:
    """One running pipesd with default settings."""
    return pipesd_factory()


@dataclass
class WorkerProcess:
    """A `pipes` command running in the background, its output going to files."""

    proc: subprocess.Popen[bytes]
    out_path: Path
    err_path: Path

    def wait(self, timeout: float = 60.0) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            pytest.fail(f"worker {self.proc.args} still running after {timeout}s:\n{self.stderr}")

    @property
    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    @property
    def stdout(self) -> str:
        return self.out_path.read_text(errors="replace")


@pytest.fixture
def flows(tmp_path: Path) -> Path:
    """tmp_path with flows.py (the test task families) and a fast pipes.cfg for workers."""
    (tmp_path / "flows.py").write_text(FLOWS_MODULE)
    (tmp_path / "pipes.cfg").write_text(WORKER_CONFIG)
    return tmp_path


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """start(TASK, *args, url=URL, module="flows", env=None) -> WorkerProcess, cwd=tmp_path.

    Workers still running at teardown are killed.
    """
    started: list[WorkerProcess] = []
    counter = iter(range(1_000_000))

    def start(
        task: str,
        *args: str,
        url: str | None,
        module: str = "flows",
        env: dict[str, str] | None = None,
    ) -> WorkerProcess:
        if not PIPES_SCRIPT.exists():
            pytest.fail(f"no pipes console script at {PIPES_SCRIPT}: run `pip install -e .`")
        index = next(counter)
        command = [str(PIPES_SCRIPT), "--module", module, task, *args]
        if url is not None:
            command += ["--scheduler-url", url]
        out_path = tmp_path / f"worker-{index}.out"
        err_path = tmp_path / f"worker-{index}.err"
        with out_path.open("wb") as out, err_path.open("wb") as err:
            proc = subprocess.Popen(
                command,
                cwd=tmp_path,
                env=clean_environment(env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
            )
        worker = WorkerProcess(proc, out_path, err_path)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        if worker.proc.poll() is None:
            worker.proc.kill()
            worker.proc.wait(10)


def wait_for(
    predicate: Callable[[], bool], timeout: float = 30.0, what: str = "", fail: bool = True
) -> bool:
    """Poll until predicate() is true (then True); after `timeout` seconds fail naming `what`,
    or, with fail=False (inside a task, where giving up is an outcome), return False."""
    give_up = time.monotonic() + timeout
    while time.monotonic() < give_up:
        if predicate():
            return True
        time.sleep(0.05)  # the poll interval
    if fail:
        pytest.fail(f"timed out after {timeout}s waiting for {what or predicate}")
    return False


def run_counts(log: Path) -> dict[str, list[str]]:
    """task id -> pids that ran it, from a runs.log."""
    runs: dict[str, list[str]] = {}
    if log.exists():
        for line in log.read_text().splitlines():
            task_id, pid = line.rsplit(" ", 1)
            runs.setdefault(task_id, []).append(pid)
    return runs
