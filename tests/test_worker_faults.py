"""Worker faults: 5xx answers, hung complete() checks, SIGTERM, stray processes, bad bytes.

Each test runs the real `pipes` command (and, where the fault involves it, a real `pipesd`)
in a subprocess, with its task module written to tmp_path.
"""

from __future__ import annotations

import errno
import http.server
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from pipesd_fixtures import clean_environment, pid_alive, wait_for

from pipes import ExitCode
from pipes.exceptions import BadRequest
from pipes.rpc import RemoteScheduler, RetryPolicy

PIPES = [sys.executable, "-m", "pipes"]


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def start_pipes(tmp_path: Path, *args: str, env: dict[str, str] | None = None):
    """`python -m pipes ARGS` in tmp_path, in the background, output to files."""
    out = (tmp_path / "pipes.out").open("wb")
    err = (tmp_path / "pipes.err").open("wb")
    with out, err:
        return subprocess.Popen(
            [*PIPES, *args],
            cwd=tmp_path,
            env=clean_environment(env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
        )


def finish(proc: subprocess.Popen, timeout: float) -> int:
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
        pytest.fail(f"{proc.args} still running {timeout}s later")


def output(tmp_path: Path) -> tuple[str, str]:
    return (
        (tmp_path / "pipes.out").read_text(errors="replace"),
        (tmp_path / "pipes.err").read_text(errors="replace"),
    )


# ----- 5xx from the daemon is retried ------------------------------------------------------------


class _Flaky(http.server.ThreadingHTTPServer):
    """Answers `failures` requests with 503 (the daemon's journal cannot take writes), then
    forwards requests to the real pipesd at `upstream`, so workers see a recovering daemon."""

    daemon_threads = True

    def __init__(self, upstream: int, failures: int, status: int, prefix: str) -> None:
        super().__init__(("127.0.0.1", 0), _FlakyHandler)
        self.upstream = upstream
        self.failures = failures
        self.status = status
        self.prefix = prefix  # only paths starting with it fail
        self.answered: list[int] = []
        self.lock = threading.Lock()


class _FlakyHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Flaky

    def log_message(self, format, *args):  # quiet
        pass

    def _answer(self, method: str) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.server.lock:
            fail = self.path.startswith(self.server.prefix) and self.server.failures > 0
            if fail:
                self.server.failures -= 1
        if fail:
            status = self.server.status
            data = json.dumps({"error": "the state journal cannot take writes"}).encode()
        else:
            import http.client

            conn = http.client.HTTPConnection("127.0.0.1", self.server.upstream, timeout=30)
            headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
            conn.request(method, self.path, body=body or None, headers=headers)
            reply = conn.getresponse()
            status, data = reply.status, reply.read()
            conn.close()
        with self.server.lock:
            self.server.answered.append(status)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self._answer("GET")

    def do_POST(self):
        self._answer("POST")


@pytest.fixture
def flaky(pipesd):
    servers = []

    def make(failures: int, status: int = 503, prefix: str = "/api/") -> _Flaky:
        server = _Flaky(pipesd.port, failures, status, prefix)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.shutdown()
        server.server_close()


SMALL_FLOW = """
    import pipes


    class Leaf(pipes.Task):
        n = pipes.IntParameter()

        def output(self):
            return pipes.LocalTarget(f"out/leaf{self.n}")

        def run(self):
            with open("runs.log", "a") as log:
                log.write(f"{self.n}\\n")
            with self.output().open("w") as f:
                f.write("ok")


    class Root(pipes.WrapperTask):
        def requires(self):
            return [Leaf(n) for n in range(4)]
"""

FAST_CONFIG = """
    [core]
    log_level = WARNING
    rpc_retry_seconds = 40
    no_lock = true

    [worker]
    wait_interval = 0.1
    ping_interval = 0.3
"""


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_worker_retries_5xx_and_runs_every_task_once_when_daemon_recovers(
    tmp_path, pipesd, flaky, status
):
    write(tmp_path, "flow.py", SMALL_FLOW)
    write(tmp_path, "pipes.cfg", FAST_CONFIG)
    proxy = flaky(failures=4, status=status)
    url = f"http://127.0.0.1:{proxy.server_address[1]}"
    proc = start_pipes(tmp_path, "--module", "flow", "Root", "--scheduler-url", url)
    code = finish(proc, 60)
    _, stderr = output(tmp_path)
    assert code == ExitCode.OK, stderr
    assert proxy.answered.count(status) == 4
    assert f"answered HTTP {status}" in stderr  # each retry is logged as a warning
    assert sorted((tmp_path / "runs.log").read_text().split()) == ["0", "1", "2", "3"]
    tasks = pipesd.call("task_list", status="DONE")
    assert len(tasks["tasks"]) == 5


def test_worker_gives_up_with_exit_8_when_5xx_lasts_past_rpc_retry_seconds(tmp_path, pipesd, flaky):
    write(tmp_path, "flow.py", SMALL_FLOW)
    config = FAST_CONFIG.replace("rpc_retry_seconds = 40", "rpc_retry_seconds = 1")
    write(tmp_path, "pipes.cfg", config)
    proxy = flaky(failures=10_000)
    url = f"http://127.0.0.1:{proxy.server_address[1]}"
    proc = start_pipes(tmp_path, "--module", "flow", "Root", "--scheduler-url", url)
    code = finish(proc, 60)
    _, stderr = output(tmp_path)
    assert code == ExitCode.SCHEDULER_UNAVAILABLE, stderr
    assert "pipes: error: scheduler answered HTTP 503" in stderr
    assert "cannot take writes" in stderr
    assert len(proxy.answered) > 2  # retried before giving up
    assert "Traceback" not in stderr


def test_worker_starts_and_retries_when_health_answers_503_at_first_contact(
    tmp_path, pipesd, flaky
):
    write(tmp_path, "flow.py", SMALL_FLOW)
    write(tmp_path, "pipes.cfg", FAST_CONFIG)
    proxy = flaky(failures=4, prefix="/")  # /health first: the journal is read-only for a while
    url = f"http://127.0.0.1:{proxy.server_address[1]}"
    proc = start_pipes(tmp_path, "--module", "flow", "Root", "--scheduler-url", url)
    code = finish(proc, 60)
    _, stderr = output(tmp_path)
    assert code == ExitCode.OK, stderr
    assert f"scheduler {url} is unhealthy (HTTP 503" in stderr
    assert sorted((tmp_path / "runs.log").read_text().split()) == ["0", "1", "2", "3"]


def test_client_does_not_retry_4xx_when_daemon_rejects_a_call(pipesd, flaky):
    proxy = flaky(failures=0)
    client = RemoteScheduler(
        f"http://127.0.0.1:{proxy.server_address[1]}", retry=RetryPolicy(deadline=30)
    )
    with pytest.raises(BadRequest):
        client.call("no_such_method")
    assert proxy.answered == [400]


SLEEPER = """
    import time
    from pathlib import Path

    import pipes


    class Sleeper(pipes.Task):
        def output(self):
            return pipes.LocalTarget("out/sleeper")

        def run(self):
            Path("started").touch()
            time.sleep(60)
"""


@pytest.mark.parametrize("retry_seconds", [1, 40])
def test_sigterm_exits_143_when_the_daemon_cannot_take_the_last_reports(
    tmp_path, pipesd, flaky, retry_seconds
):
    write(tmp_path, "sleeper.py", SLEEPER)
    config = FAST_CONFIG.replace("rpc_retry_seconds = 40", f"rpc_retry_seconds = {retry_seconds}")
    write(tmp_path, "pipes.cfg", config + "force_multiprocessing = true\n")
    proxy = flaky(failures=0)
    url = f"http://127.0.0.1:{proxy.server_address[1]}"
    proc = start_pipes(tmp_path, "--module", "sleeper", "Sleeper", "--scheduler-url", url)
    try:
        wait_for(lambda: (tmp_path / "started").exists(), 30, "the task to start")
        with proxy.lock:
            proxy.failures = 10**9  # from now on the journal takes no writes
        proc.send_signal(signal.SIGTERM)
        if retry_seconds > 1:  # a second SIGTERM ends the retrying at once
            wait_for(lambda: "for /api/v1/add_tasks" in output(tmp_path)[1], 10, "a retry")
            proc.send_signal(signal.SIGTERM)
        code = finish(proc, 10)
    finally:
        proc.kill()
    _, stderr = output(tmp_path)
    assert code == ExitCode.TERMINATED, stderr
    assert "pipes: terminated by SIGTERM" in stderr
    assert "Traceback" not in stderr
    if retry_seconds == 1:
        assert "could not hand this worker's last reports to the scheduler" in stderr


def _mount_tmpfs(path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs for the daemon's state needs root")
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(path)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")


def _fill(path: Path) -> None:
    """Take every free byte of the filesystem at path, so the journal's next write fails."""
    with (path / "ballast").open("wb", buffering=0) as ballast:
        try:
            while True:
                ballast.write(b"\0" * 4096)
        except OSError as err:  # full, as intended
            assert err.errno == errno.ENOSPC, err


FAULT_FLOW = """
    import time
    from pathlib import Path

    import pipes


    class Step(pipes.Task):
        n = pipes.IntParameter()

        def output(self):
            return pipes.LocalTarget(f"out/step{self.n}")

        def run(self):
            with open("runs.log", "a") as log:
                log.write(f"{self.n}\\n")
            Path(f"started/{self.n}").touch()
            while Path("hold").exists():  # the test holds the first tasks while writes fail
                time.sleep(0.05)
            with self.output().open("w") as f:
                f.write("x" * 20000)


    class Root(pipes.WrapperTask):
        def requires(self):
            return [Step(n) for n in range(8)]
"""


def test_workers_wait_out_a_full_state_disk_and_finish_every_task_once(
    tmp_path, pipesd_factory, start_worker
):
    state_dir = tmp_path / "state"
    _mount_tmpfs(state_dir)
    try:
        daemon = pipesd_factory(start=False)
        daemon.state_path = state_dir / "state.sqlite"
        daemon.start()
        write(tmp_path, "flow.py", FAULT_FLOW)
        write(tmp_path, "pipes.cfg", FAST_CONFIG)
        (tmp_path / "started").mkdir()
        (tmp_path / "hold").touch()
        workers = [
            start_worker("Root", "--workers", "2", url=daemon.url, module="flow") for _ in range(2)
        ]
        wait_for(lambda: len(list((tmp_path / "started").iterdir())) >= 4, 30, "4 running tasks")
        _fill(state_dir)
        (tmp_path / "hold").unlink()  # the running tasks end while nothing can be written
        wait_for(lambda: any("answered HTTP 5" in w.stderr for w in workers), 30, "a 5xx")
        time.sleep(1.0)  # a while of failing writes: the workers must keep retrying
        (state_dir / "ballast").unlink()
        codes = [w.wait(90) for w in workers]
        assert codes == [ExitCode.OK, ExitCode.OK], [w.stderr for w in workers]
        runs = (tmp_path / "runs.log").read_text().split()
        assert sorted(runs) == [str(n) for n in range(8)]  # each ran exactly once
        statuses = {t["status"] for t in daemon.call("task_list")["tasks"]}
        assert statuses == {"DONE"}
    finally:
        for proc in daemon.procs:
            proc.kill()
            proc.wait(10)
        subprocess.run(["umount", "-l", str(state_dir)], check=False)


# ----- complete() that hangs -------------------------------------------------------------------

HANGING_CHECK = """
    import time
    from pathlib import Path

    import pipes


    class Hangs(pipes.Task):
        n = pipes.IntParameter()

        def complete(self):
            Path(f"checking{self.n}").touch()
            time.sleep(3600)
            return True


    class Fine(pipes.Task):
        def output(self):
            return pipes.LocalTarget("out/fine")

        def run(self):
            with self.output().open("w") as f:
                f.write("ok")


    class Root(pipes.WrapperTask):
        def requires(self):
            return [Hangs(0), Hangs(1), Fine()]
"""


@pytest.mark.parametrize("concurrency", [1, 4])
def test_hung_complete_is_a_scheduling_error_naming_the_timeout_when_check_timeout_passes(
    tmp_path, concurrency
):
    write(tmp_path, "hang.py", HANGING_CHECK)
    write(
        tmp_path,
        "pipes.cfg",
        f"""
        [worker]
        check_complete_timeout = 1
        check_complete_concurrency = {concurrency}
        """,
    )
    proc = start_pipes(tmp_path, "--module", "hang", "Root", "--local-scheduler")
    code = finish(proc, 30)  # the check would sleep an hour
    stdout, stderr = output(tmp_path)
    assert code == ExitCode.SCHEDULING_ERROR, stderr
    for n in (0, 1):
        task = f"Hangs(n={n})"
        reason = f"complete() of {task} did not return within 1s ([worker] check_complete_timeout)"
        assert f"- {task}: {reason}" in stdout
        assert f"cannot schedule {task}: {reason}" in stderr
    assert "Traceback" not in stderr
    assert (tmp_path / "out" / "fine").read_text() == "ok"  # the rest of the graph still ran


@pytest.mark.parametrize("look", ["deps", "--dry-run"])
def test_dependency_views_finish_and_name_the_hung_check_when_check_timeout_passes(
    tmp_path, look
):
    write(tmp_path, "hang.py", HANGING_CHECK)
    write(tmp_path, "pipes.cfg", "[worker]\ncheck_complete_timeout = 1\n")
    args = ["deps", "--module", "hang", "Root"] if look == "deps" else ["--module", "hang", "Root"]
    proc = start_pipes(tmp_path, *args, *(["--dry-run"] if look == "--dry-run" else []))
    code = finish(proc, 30)  # each check would sleep an hour
    stdout, stderr = output(tmp_path)
    assert code == 0, stderr
    assert "Traceback" not in stderr
    if look == "deps":
        assert "[error: CompletionTimeout: complete() of Hangs(n=0) did not return" in stdout
    else:
        assert "cannot be scheduled (2):\n  - Hangs(n=0)\n  - Hangs(n=1)" in stdout
        assert "  - Fine()" in stdout  # would run


@pytest.mark.parametrize(
    ("sig", "code", "line"),
    [
        (signal.SIGINT, ExitCode.INTERRUPTED, "pipes: interrupted"),
        (signal.SIGTERM, ExitCode.TERMINATED, "pipes: terminated by SIGTERM"),
    ],
)
@pytest.mark.parametrize("concurrency", [1, 4])
def test_signal_ends_the_run_promptly_when_a_complete_check_hangs(
    tmp_path, sig, code, line, concurrency
):
    write(tmp_path, "hang.py", HANGING_CHECK)
    write(tmp_path, "pipes.cfg", f"[worker]\ncheck_complete_concurrency = {concurrency}\n")
    proc = start_pipes(tmp_path, "--module", "hang", "Root", "--local-scheduler")
    try:
        wait_for(lambda: (tmp_path / "checking0").exists(), 30, "complete() to start")
        proc.send_signal(sig)
        assert finish(proc, 10) == code  # the default 600 s check timeout is far off
    finally:
        proc.kill()
    _, stderr = output(tmp_path)
    assert line in stderr
    assert "Traceback" not in stderr


# ----- SIGTERM leaves no temporary files -------------------------------------------------------

SLOW_WRITER = """
    import os
    import time
    from pathlib import Path

    import pipes


    class SlowWrite(pipes.Task):
        n = pipes.IntParameter()

        def output(self):
            return pipes.LocalTarget(f"out/slow{self.n}.txt")

        def run(self):
            with self.output().open("w") as f:
                f.write("first half\\n")
                f.flush()
                Path(f"started/{self.n}").write_text(str(os.getpid()))
                time.sleep(60)
                f.write("second half\\n")


    class Root(pipes.WrapperTask):
        def requires(self):
            return [SlowWrite(0), SlowWrite(1)]
"""


@pytest.mark.parametrize(
    "workers",
    [
        pytest.param(("--workers", "1"), id="in-process"),
        pytest.param(("--workers", "2"), id="children"),
    ],
)
def test_sigterm_removes_running_tasks_temporary_files_and_publishes_nothing(tmp_path, workers):
    write(tmp_path, "slow.py", SLOW_WRITER)
    write(tmp_path, "pipes.cfg", "[worker]\nwait_interval = 0.1\n")
    (tmp_path / "started").mkdir()
    proc = start_pipes(tmp_path, "--module", "slow", "Root", "--local-scheduler", *workers)
    try:
        expected = 1 if workers[1] == "1" else 2
        wait_for(lambda: len(list((tmp_path / "started").iterdir())) == expected, 30, "writes")
        temps = [p.name for p in (tmp_path / "out").iterdir()]
        assert len(temps) == expected and all("-pipes-tmp-" in name for name in temps), temps
        proc.send_signal(signal.SIGTERM)
        code = finish(proc, 15)  # promptly: the tasks would sleep 60 s
    finally:
        proc.kill()
    _, stderr = output(tmp_path)
    assert code == ExitCode.TERMINATED, stderr
    assert list((tmp_path / "out").iterdir()) == []  # no temporary file, no final output
    assert "Traceback" not in stderr


# ----- a process that leaves the group survives a timeout, without the worker's sockets --------

DAEMONIZES = """
    import os
    import time
    from pathlib import Path

    import pipes


    class Daemonizes(pipes.Task):
        worker_timeout = 2

        def output(self):
            return pipes.LocalTarget("out/never")

        def run(self):
            if os.fork() == 0:  # first fork: leave the process group and session
                os.setsid()
                if os.fork() == 0:  # second fork: an orphan in its own session
                    Path("stray.pid").write_text(str(os.getpid()))
                    time.sleep(120)
                    os._exit(0)
                os._exit(0)
            Path("task.pid").write_text(str(os.getpid()))
            time.sleep(120)
"""


def _sockets_of(pid: int) -> list[str]:
    fd_dir = Path(f"/proc/{pid}/fd")
    found = []
    for fd in fd_dir.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:"):
            found.append(f"{fd.name} -> {target}")
    return found


def _worker_links(pid: int, worker) -> list[str]:
    """The stray's descriptors on the worker's stderr file or on pipes (to the worker's child)."""
    found = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("pipe:") or target == str(worker.err_path):
            found.append(f"{fd.name} -> {target}")
    return found


def test_timeout_message_names_the_stray_that_left_the_group_and_it_holds_no_scheduler_socket(
    tmp_path, pipesd, start_worker
):
    write(tmp_path, "daemonizes.py", DAEMONIZES)
    write(tmp_path, "pipes.cfg", FAST_CONFIG)
    worker = start_worker("Daemonizes", url=pipesd.url, module="daemonizes")
    stray = None
    try:
        wait_for(lambda: (tmp_path / "stray.pid").exists(), 30, "the stray process")
        wait_for(lambda: (tmp_path / "stray.pid").read_text() != "", 5, "its pid")
        stray = int((tmp_path / "stray.pid").read_text())
        wait_for(lambda: (tmp_path / "task.pid").exists(), 30, "the task process")
        task_pid = int((tmp_path / "task.pid").read_text())
        assert _sockets_of(stray) == []  # the worker's scheduler connection was closed in it
        assert _worker_links(stray, worker) == []  # nor its stderr or pipes to the child
        code = worker.wait(60)
        assert code == ExitCode.TASK_FAILED, worker.stderr
        assert pid_alive(stray)  # it left the group: the timeout did not reach it
        assert not pid_alive(task_pid)
        [task] = pipesd.call("task_list")["tasks"]
        error = task["error"]
        assert error.startswith(f"timed out after 2s; killed process group {task_pid} ("), error
        assert f"1 process left the group (setsid) and was not killed: pid {stray}" in error, error
        assert "its processes were killed" not in error
    finally:
        if stray is not None and pid_alive(stray):
            os.kill(stray, signal.SIGKILL)


# ----- undecodable bytes in what a task prints -------------------------------------------------

LATIN1_NAMES = """
    import os
    import sys

    import pipes


    class PrintsLatin1(pipes.Task):
        def output(self):
            return pipes.LocalTarget("out/never")

        def run(self):
            name = os.fsdecode(b"caf\\xe9")  # under LC_ALL=C: 'caf\\udce9'
            os.write(1, b"raw caf\\xe9\\n")
            print("printed", name)
            sys.stdout.flush()
            self.set_status_message(f"reading {name}")
            raise RuntimeError(f"cannot parse {name}")
"""


@pytest.mark.parametrize("in_child", [False, True], ids=["in-process", "child"])
def test_undecodable_bytes_a_task_prints_reach_task_detail_replaced_under_lc_all_c(
    tmp_path, pipesd, start_worker, in_child
):
    write(tmp_path, "latin1.py", LATIN1_NAMES)
    write(tmp_path, "pipes.cfg", FAST_CONFIG + f"force_multiprocessing = {in_child}\n")
    env = {"LC_ALL": "C", "LANG": "C"}
    worker = start_worker("PrintsLatin1", url=pipesd.url, module="latin1", env=env)
    assert worker.wait(60) == ExitCode.TASK_FAILED, worker.stderr
    [task] = pipesd.call("task_list")["tasks"]
    assert task["status"] == "FAILED", task
    detail = pipesd.call("task_detail", task_id=task["task_id"])
    log = detail["log"]
    assert "printed caf\ufffd" in log, log
    if in_child:  # raw bytes on fd 1 are only seen from a child
        assert "raw caf\ufffd" in log, log
    assert "cannot parse caf\ufffd" in detail["error"]
    assert detail["status_message"] == "reading caf\ufffd"
    for text in (log, detail["error"], detail["status_message"]):
        assert not any("\ud800" <= ch <= "\udfff" for ch in text)


TIMES_OUT_WRITING = """
    import os
    import subprocess
    import time
    from pathlib import Path

    import pipes


    class TimesOut(pipes.Task):
        worker_timeout = 1

        def output(self):
            return pipes.LocalTarget("out/result.txt")

        def run(self):
            stubborn = subprocess.Popen(["sh", "-c", "trap '' TERM; exec sleep 1000"])
            Path("stubborn.pid").write_text(str(stubborn.pid))
            with self.output().open("w") as f:
                f.write("half")
                f.flush()
                time.sleep(60)
"""


def test_timeout_removes_the_tasks_temporary_file_and_kills_what_ignores_sigterm(tmp_path):
    write(tmp_path, "timesout.py", TIMES_OUT_WRITING)
    proc = start_pipes(tmp_path, "--module", "timesout", "TimesOut", "--local-scheduler")
    code = finish(proc, 30)
    stdout, stderr = output(tmp_path)
    assert code == ExitCode.TASK_FAILED, stderr
    assert "- TimesOut(): timed out after 1s; killed process group " in stdout
    assert list((tmp_path / "out").iterdir()) == []  # the task unwound on SIGTERM
    stubborn = int((tmp_path / "stubborn.pid").read_text())
    wait_for(lambda: not pid_alive(stubborn), 5, "the process that ignores SIGTERM to die")
