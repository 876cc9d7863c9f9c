"""pipesd's HTTP transport under hostile input (issue 9, items 6, 7, 8, 10 and 14).

Every test talks to a real `pipesd` process: dense and huge bodies, floods of half-sent
requests at a low file-descriptor limit, OPTIONS, cross-site requests from a page in headless
Chromium, DNS-rebinding Host names, and starts that must fail without leaving files behind.
"""

from __future__ import annotations

import http.server
import json
import logging
import os
import re
import resource
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pipesd_fixtures import Daemon, http_request, wait_for
from status_fixtures import browser  # noqa: F401 -- the fixture

from pipes.server.app import READ_ONLY
from pipes.server.listener import RepeatFilter

DOCS = Path(__file__).parent.parent / "docs"
JSON = {"Content-Type": "application/json"}


def one_line_error(stderr: str) -> str:
    """The single `pipesd: error: ...` line of stderr, with no traceback."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1 and lines[0].startswith("pipesd: error: "), stderr
    return lines[0]


def seed_failed_task(daemon: Daemon, task_id: str = "Victim") -> None:
    daemon.call("add_worker", worker="w1", info={})
    daemon.call("add_task", worker="w1", task={"task_id": task_id, "status": "FAILED"})
    assert daemon.call("task_detail", task_id=task_id)["status"] == "FAILED"


def proc_status(pid: int, field: str) -> int:
    """A number (kB for memory) from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def open_sockets(pid: int) -> int:
    """How many sockets the process holds open."""
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            count += os.readlink(fd).startswith("socket:")
        except OSError:
            continue  # closed while we looked
    return count


# ----- item 8: OPTIONS --------------------------------------------------------------------------


def test_options_on_rpc_method_gets_405_json_without_cors_when_token_is_set(pipesd_factory):
    daemon = pipesd_factory("[scheduler]\nauth_token = s3cret\n", token="s3cret")
    headers = {"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"}
    for path in ("/api/v1/pause", "/api/v1/task_list", "/api/v1/nosuch"):
        reply = http_request(daemon.port, "OPTIONS", path, headers=headers)
        assert reply.status == 405, (path, reply.status, reply.body)
        assert "POST" in reply.json["error"] and reply.headers["Allow"] == "POST"
        assert not any(h.lower().startswith("access-control") for h in reply.headers), reply.headers
    assert daemon.call("is_paused") == {"paused": False}
    assert "Traceback" not in daemon.output() and " 500 " not in daemon.output()


# ----- item 10: cross-site requests, plain HTTP -------------------------------------------------


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
def test_rpc_post_without_json_content_type_gets_415_and_changes_nothing(pipesd, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    reply = http_request(pipesd.port, "POST", "/api/v1/pause", b"{}", headers)
    assert reply.status == 415 and "application/json" in reply.json["error"]
    assert pipesd.call("is_paused") == {"paused": False}
    typed = {"Content-Type": "application/json; charset=utf-8"}
    assert http_request(pipesd.port, "POST", "/api/v1/is_paused", b"{}", typed).status == 200


def test_rpc_post_from_other_origin_gets_403_and_changes_nothing(pipesd):
    for origin in (
        "http://evil.example",
        f"http://127.0.0.1:{pipesd.port + 1}",
        f"https://evil.example:{pipesd.port}",
        "null",
    ):
        reply = pipesd.post("pause", {}, headers={"Origin": origin})
        assert reply.status == 403 and "Origin" in reply.json["error"], (origin, reply.body)
    assert pipesd.call("is_paused") == {"paused": False}
    same = pipesd.post("is_paused", {}, headers={"Origin": f"http://127.0.0.1:{pipesd.port}"})
    assert same.status == 200 and same.json == {"paused": False}


def test_duplicate_json_key_gets_400_and_failed_task_stays_failed(pipesd):
    seed_failed_task(pipesd)
    body = b'{"task_id": "nonesuch", "task_id": "Victim"}'
    reply = pipesd.post("mark_as_done", body)
    assert reply.status == 400 and "duplicate key 'task_id'" in reply.json["error"]
    nested = (
        b'{"worker": "w1", "task": {"task_id": "Victim", "status": "FAILED", "status": "DONE"}}'
    )
    assert pipesd.post("add_task", nested).status == 400
    assert pipesd.call("task_detail", task_id="Victim")["status"] == "FAILED"


def test_foreign_host_name_gets_421_on_every_path_unless_allowed(pipesd_factory):
    daemon = pipesd_factory("[scheduler]\nallowed_hosts = pipes.example, Other.Example\n")
    port = daemon.port
    for host in (f"evil.example:{port}", "evil.example", f"127.0.0.1.evil.example:{port}"):
        for method, path in (("GET", "/health"), ("GET", "/"), ("POST", "/api/v1/pause")):
            reply = http_request(port, method, path, b"{}", {**JSON, "Host": host})
            assert reply.status == 421, (host, path, reply.status)
            assert "allowed_hosts" in reply.json["error"]
    assert daemon.call("is_paused") == {"paused": False}
    good = ("localhost", f"127.0.0.1:{port}", f"[::1]:{port}", f"pipes.example:{port}")
    for host in (*good, "other.example", socket.gethostname(), "10.1.2.3:8082"):
        reply = http_request(port, "POST", "/api/v1/is_paused", b"{}", {**JSON, "Host": host})
        assert reply.status == 200, (host, reply.body)


def test_docs_list_every_public_read_method():
    text = (DOCS / "pipesd.md").read_text()
    (bullet,) = re.findall(r"\*\*public_read\.\*\*(.*?)(?:\n- |\n\n)", text, re.S)
    assert set(re.findall(r"`(\w+)`", bullet)) - {"true"} >= READ_ONLY, bullet


# ----- item 10: cross-site requests from a browser ----------------------------------------------

ATTACK_PAGE = """<!doctype html>
<html><body>
<form id="pause" method="POST" action="{url}/api/v1/pause" enctype="text/plain" target="f1">
  <input name='{{"x":"' value='"}}'>
</form>
<form id="done" method="POST" action="{url}/api/v1/mark_as_done" enctype="text/plain" target="f2">
  <input name='{{"task_id":"nonesuch","task_id":"Victim","x":"' value='"}}'>
</form>
<iframe name="f1"></iframe><iframe name="f2"></iframe>
<script>
  fetch("{url}/api/v1/pause", {{method: "POST", mode: "no-cors", body: "{{}}"}});
  fetch("{url}/api/v1/mark_as_done",
        {{method: "POST", mode: "no-cors", body: '{{"task_id":"Victim"}}'}});
  document.getElementById("pause").submit();
  document.getElementById("done").submit();
</script>
</body></html>
"""


@pytest.fixture
def attacker_site(pipesd) -> Iterator[str]:
    """A page on another origin (another port) that tries to pause pipesd and fix a task."""
    page = ATTACK_PAGE.format(url=pipesd.url).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/attack.html"
    server.shutdown()
    server.server_close()


def test_page_on_other_origin_cannot_pause_or_mark_done_in_chromium(
    pipesd,
    attacker_site,
    browser,  # noqa: F811 -- the fixture
):
    seed_failed_task(pipesd)
    context = browser.new_context()
    tab = context.new_page()
    answers: list[tuple[str, int]] = []
    tab.on("response", lambda r: answers.append((r.url, r.status)) if "/api/v1/" in r.url else None)
    tab.goto(attacker_site)
    # Handshake: the browser has had every one of the four requests answered. Playwright
    # delivers events only while it is called, so wait inside the page, not in time.sleep.
    give_up = time.monotonic() + 20
    while len(answers) < 4 and time.monotonic() < give_up:
        tab.wait_for_timeout(50)
    assert len(answers) == 4, answers
    context.close()
    assert {status for _, status in answers} <= {403, 415}, answers
    assert sorted(url.rsplit("/", 1)[1] for url, _ in answers) == [
        "mark_as_done",
        "mark_as_done",
        "pause",
        "pause",
    ]
    assert pipesd.call("is_paused") == {"paused": False}
    assert pipesd.call("task_detail", task_id="Victim")["status"] == "FAILED"


# ----- item 6: dense and huge bodies -----------------------------------------------------------


def test_dense_json_body_gets_413_without_being_parsed(pipesd):
    body = b"[" + b"{}," * (5 * 1024 * 1024) + b"{}]"  # 15 MiB, 5M objects, under the byte limit
    assert len(body) < 16 * 1024 * 1024
    reply = pipesd.post("task_list", body, timeout=60)
    assert reply.status == 413 and "JSON items" in reply.json["error"], reply.body
    # Parsed, these objects would take ~450 MB (the issue saw 1.6 GiB for 57 MiB).
    peak_mb = proc_status(pipesd.proc.pid, "VmHWM") / 1024
    assert peak_mb < 200, f"pipesd peaked at {peak_mb:.0f} MB"
    strings = b"[" + b'"ab",' * (3 * 1024 * 1024) + b'"ab"]'
    reply = pipesd.post("task_list", strings, timeout=60)
    assert reply.status == 413 and "JSON items" in reply.json["error"]
    assert pipesd.get("/health").status == 200


def test_max_body_bytes_comes_from_option_then_config(pipesd_factory):
    by_config = pipesd_factory("[scheduler]\nmax_body_bytes = 2000\n", name="config")
    by_option = pipesd_factory(
        "[scheduler]\nmax_body_bytes = 2000\n", args=("--max-body-bytes", "1000"), name="option"
    )
    body = json.dumps({"search": "x" * 1400}).encode()
    assert by_config.post("task_list", body).status == 200
    reply = by_option.post("task_list", body)
    assert reply.status == 413 and "larger than 1000 bytes" in reply.json["error"]


def test_max_json_items_comes_from_config(pipesd_factory):
    daemon = pipesd_factory("[scheduler]\nmax_json_items = 100\n")
    assert daemon.post("task_list", {"search": "a," * 500}).status == 200  # commas in a string
    reply = daemon.post(
        "add_tasks", {"worker": "w", "tasks": [{"task_id": str(i)} for i in range(60)]}
    )
    assert reply.status == 413 and "more than 100 JSON items" in reply.json["error"]


def realistic_specs(count: int) -> list[dict]:
    """add_tasks specs as a worker sends them, each with params and dependencies."""
    return [
        {
            "task_id": f"Ingest_2024-01-01_table{i}_{i:032x}",
            "family": "Ingest",
            "module": "pipelines.warehouse.ingest",
            "params": {"date": "2024-01-01", "table": f"table{i}", "source": "s3://bucket/raw/x"},
            "status": "PENDING",
            "runnable": True,
            "priority": 0,
            "resources": {"db": 1},
            "deps": [f"Extract_{j}_{i:032x}" for j in range(3)],
            "retry_count": 3,
            "retry_delay": 60.0,
        }
        for i in range(count)
    ]


def test_default_limits_take_the_biggest_calls_a_worker_makes(pipesd):
    scheduler = pipesd.scheduler()
    scheduler.add_worker("w1", {"host": "h", "pid": 1})
    specs = realistic_specs(2000)  # worker.ADD_BATCH
    assert len(json.dumps(specs)) > 900_000
    scheduler.add_tasks("w1", specs)
    # Reports carrying 16 KiB log tails of non-ASCII text: JSON escapes each character to 6 bytes.
    tail = "é☃" * 8 * 1024
    reports = [
        {"task_id": spec["task_id"], "status": "FAILED", "error": "boom", "log_tail": tail}
        for spec in specs[:40]
    ]
    body = {"worker": "w1", "running": [], "reports": reports}
    assert len(json.dumps(body)) > 3_500_000
    assert pipesd.post("get_work", body, timeout=60).status == 200
    assert pipesd.call("counts")["FAILED"] == 40


def test_huge_body_being_sent_does_not_stall_health_or_get_work(pipesd):
    pipesd.call("add_worker", worker="w1", info={})
    limit = 16 * 1024 * 1024
    body = b" " * (limit - 2) + b"{}"
    with socket.create_connection(("127.0.0.1", pipesd.port), timeout=30) as slow:
        head = (
            f"POST /api/v1/task_list HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        slow.sendall(head.encode() + body[: limit // 2])
        # Half the body is in; the daemon must still answer other clients promptly.
        for _ in range(3):
            assert pipesd.get("/health", timeout=5).status == 200
            assert pipesd.post("get_work", {"worker": "w1"}, timeout=5).status == 200
        slow.sendall(body[limit // 2 :])
        answer = slow.makefile("rb").read1(4096)
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]


# ----- item 7: descriptor exhaustion ------------------------------------------------------------


def start_with_fd_limit(daemon: Daemon, soft: int, hard: int) -> None:
    """Start the daemon's pipesd with RLIMIT_NOFILE set in the child, then wait for /health."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    daemon.starts += 1
    with daemon.stderr_path.open("wb") as err:
        daemon.proc = subprocess.Popen(
            daemon.command(),
            cwd=daemon.workdir,
            env=daemon.env,
            stdin=subprocess.DEVNULL,
            stdout=err,
            stderr=subprocess.STDOUT,
            preexec_fn=limit,
        )
    daemon.procs.append(daemon.proc)
    daemon.wait_healthy()


def half_sent(port: int, count: int) -> list[socket.socket]:
    """Connections that each send part of a request's headers and then nothing."""
    opened = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(b"POST /api/v1/pause HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty")
        opened.append(sock)
    return opened


def test_half_sent_requests_at_low_fd_limit_neither_stop_health_nor_spin(pipesd_factory):
    daemon = pipesd_factory("[scheduler]\nheader_timeout = 2\n", start=False)
    start_with_fd_limit(daemon, 256, 256)
    pid = daemon.proc.pid
    baseline = open_sockets(pid)  # listening socket, the event loop's own socket pair
    flood = half_sent(daemon.port, 400)  # more than the daemon has descriptors
    try:
        before = cpu_seconds(pid)
        for _ in range(5):
            assert daemon.get("/health", timeout=5).status == 200
        assert daemon.call("is_paused") == {"paused": False}
        assert open_sockets(pid) <= 256
        started = time.monotonic()
        time.sleep(1.0)  # a window to measure CPU use in; the handshakes above came first
        spent = cpu_seconds(pid) - before
        window = time.monotonic() - started
        assert spent < 0.5 * window + 0.3, f"pipesd used {spent:.2f}s of CPU in {window:.2f}s"
        # header_timeout closes what is left of the flood: back to the listening socket alone.
        wait_for(
            lambda: open_sockets(pid) <= baseline, timeout=15, what="half-sent connections closed"
        )
    finally:
        for sock in flood:
            sock.close()
    assert daemon.get("/health").status == 200
    log = daemon.output()
    assert len(log) < 16 * 1024, log[-2000:]
    assert "Traceback" not in log


def closed_by_peer(sock: socket.socket) -> bool:
    """True when the daemon closed the connection: EOF, or a reset (it had unread bytes)."""
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_connections_beyond_max_connections_evict_the_oldest_idle_one(pipesd_factory):
    daemon = pipesd_factory("[scheduler]\nmax_connections = 20\n")
    baseline = open_sockets(daemon.proc.pid)
    flood = half_sent(daemon.port, 60)
    try:
        for _ in range(3):
            assert daemon.get("/health", timeout=5).status == 200
        assert open_sockets(daemon.proc.pid) <= 20 + baseline
        assert closed_by_peer(flood[0])  # the oldest half-sent connection was closed
    finally:
        for sock in flood:
            sock.close()


def test_slow_body_and_idle_keep_alive_connections_are_closed_after_their_timeouts(
    pipesd_factory,
):
    daemon = pipesd_factory("[scheduler]\nbody_timeout = 0.5\nidle_timeout = 1\n")
    slow = socket.create_connection(("127.0.0.1", daemon.port), timeout=10)
    idle = socket.create_connection(("127.0.0.1", daemon.port), timeout=10)
    try:
        head = "POST /api/v1/is_paused HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        head += "Content-Type: application/json\r\n"
        slow.sendall(f"{head}Content-Length: 100\r\n\r\n{{".encode())
        idle.sendall(f"{head}Content-Length: 2\r\n\r\n{{}}".encode())
        assert b'"paused":false' in idle.recv(4096)  # served; now it idles, kept alive
        started = time.monotonic()
        assert closed_by_peer(slow)  # the body never came: closed after body_timeout
        assert time.monotonic() - started < 5
        assert closed_by_peer(idle)  # no next request: closed after idle_timeout
        assert time.monotonic() - started >= 0.9
        assert daemon.get("/health").status == 200
    finally:
        slow.close()
        idle.close()


def test_soft_fd_limit_is_raised_to_the_hard_limit_at_start(pipesd_factory):
    daemon = pipesd_factory(start=False)
    start_with_fd_limit(daemon, 256, 4096)
    limits = Path(f"/proc/{daemon.proc.pid}/limits").read_text()
    (line,) = [line for line in limits.splitlines() if line.startswith("Max open files")]
    assert line.split()[3:5] == ["4096", "4096"], line


# ----- /health and the store ----------------------------------------------------------------------


def test_health_reports_store_ok_while_the_journal_takes_writes(pipesd):
    reply = pipesd.get("/health")
    assert reply.status == 200 and reply.json == {"ok": True, "api_version": 1, "store": "ok"}


# ----- item 14: failed starts --------------------------------------------------------------------


def run_pipesd(daemon: Daemon, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        daemon.command(*extra),
        cwd=daemon.workdir,
        env=daemon.env,
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize("mode", ["foreground", "background"])
def test_missing_logdir_exits_2_with_one_line_error_and_leaves_no_file(pipesd_factory, mode):
    daemon = pipesd_factory(start=False)
    before = sorted(p.name for p in daemon.workdir.iterdir())
    extra = ("--background",) if mode == "background" else ()
    result = run_pipesd(daemon, "--logdir", str(daemon.workdir / "nope"), *extra)
    assert result.returncode == 2, result
    assert "log directory" in one_line_error(result.stderr) and "nope" in result.stderr
    assert sorted(p.name for p in daemon.workdir.iterdir()) == before


@pytest.mark.parametrize("mode", ["foreground", "background"])
def test_failed_start_on_busy_port_leaves_no_state_file(pipesd_factory, mode):
    busy = pipesd_factory(name="busy")
    daemon = pipesd_factory(start=False)
    daemon.port = busy.port
    (daemon.workdir / "logs").mkdir()
    before = sorted(p.name for p in daemon.workdir.iterdir())
    extra = ("--background", "--logdir", "logs") if mode == "background" else ()
    result = run_pipesd(daemon, *extra)
    assert result.returncode == 2, result
    assert "Address already in use" in one_line_error(result.stderr)
    assert sorted(p.name for p in daemon.workdir.iterdir()) == before
    assert not any((daemon.workdir / "logs").iterdir())


def test_failed_start_on_live_pidfile_leaves_no_state_file(pipesd_factory):
    daemon = pipesd_factory(start=False)
    (daemon.workdir / "logs").mkdir()
    pidfile = daemon.workdir / "pipesd.pid"
    pidfile.write_text(f"{os.getpid()}\n")  # a live process: this test's
    before = sorted(p.name for p in daemon.workdir.iterdir())
    result = run_pipesd(daemon, "--background", "--logdir", "logs", "--pidfile", str(pidfile))
    assert result.returncode == 2, result
    assert "already running" in one_line_error(result.stderr)
    assert sorted(p.name for p in daemon.workdir.iterdir()) == before
    assert not any((daemon.workdir / "logs").iterdir())


def test_repeated_accept_errors_log_one_line_with_a_count(caplog):
    repeat = RepeatFilter(interval=3600)
    log = logging.getLogger("pipes.test.repeat")
    log.addFilter(repeat)
    with caplog.at_level(logging.WARNING, logger="pipes.test.repeat"):
        for n in range(500):
            log.warning("cannot accept connections: %s (%d open)", "Too many open files", n)
        log.warning("another message")
        repeat.interval = 0  # the interval is over: the next one says how many were left out
        log.warning("cannot accept connections: %s (%d open)", "Too many open files", 500)
    assert [r.getMessage() for r in caplog.records] == [
        "cannot accept connections: Too many open files (0 open)",
        "another message",
        "cannot accept connections: Too many open files (500 open)"
        " (and 499 more like it since the last one)",
    ]
