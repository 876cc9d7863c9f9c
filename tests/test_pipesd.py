"""The pipesd daemon against real processes: de-duplication, resources, worker and daemon
crashes, restarts, --background, bad input, auth, state files and the operator API.

Every test starts a real `pipesd` on a free 127.0.0.1 port (see pipesd_fixtures) and, where
it needs them, real `pipes` worker processes with cwd=tmp_path.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from pipesd_fixtures import (
    PIPESD_SCRIPT,
    Reply,
    clean_environment,
    free_port,
    http_request,
    pid_alive,
    port_is_free,
    run_counts,
    wait_for,
)

from pipes import ExitCode
from pipes.exceptions import BadRequest, RPCError

FAST_SCHEDULER = """
[scheduler]
retry_delay = 0
worker_disconnect_delay = 10
"""


def task_ids(daemon, **filters) -> dict[str, str]:
    """task id -> status of every task the daemon knows (matching the filters)."""
    listing = daemon.scheduler().task_list(limit=1000, **filters)
    assert listing["total"] == len(listing["tasks"])
    return {t["task_id"]: t["status"] for t in listing["tasks"]}


def one_line_error(stderr: str, prog: str) -> str:
    """The single `prog: error: ...` line of stderr, which is its last line; no traceback.

    Log lines before it (e.g. RPC retry warnings) are allowed; a second error line is not.
    """
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr, stderr
    errors = [line for line in lines if line.startswith(f"{prog}: error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], stderr
    return errors[0]


# ----- de-duplication and resources -----------------------------------------------------------


def test_overlapping_dags_run_each_shared_task_once_when_two_workers_add_them(
    flows, pipesd_factory, start_worker
):
    daemon = pipesd_factory(FAST_SCHEDULER)
    a = start_worker("Top", "--name", "a", "--first", "0", "--last", "5", url=daemon.url)
    b = start_worker("Top", "--name", "b", "--first", "2", "--last", "7", url=daemon.url)
    assert a.wait() == 0, a.stderr
    assert b.wait() == 0, b.stderr

    runs = run_counts(flows / "runs.log")
    shared = {t: pids for t, pids in runs.items() if t.startswith("Shared")}
    assert len(shared) == 8, runs
    assert all(len(pids) == 1 for pids in shared.values()), runs
    tops = {t: pids for t, pids in runs.items() if t.startswith("Top")}
    assert len(tops) == 2 and all(len(pids) == 1 for pids in tops.values()), runs
    assert (flows / "out" / "top-a.txt").exists() and (flows / "out" / "top-b.txt").exists()
    statuses = task_ids(daemon)
    assert len(statuses) == 10 and set(statuses.values()) == {"DONE"}, statuses


def test_resource_caps_concurrency_when_two_workers_run_tasks_needing_it(
    flows, pipesd_factory, start_worker
):
    daemon = pipesd_factory(FAST_SCHEDULER + "\n[resources]\ndb = 1\n")
    a = start_worker("DbBatch", "--tag", "a", "--workers", "2", url=daemon.url)
    b = start_worker("DbBatch", "--tag", "b", "--workers", "2", url=daemon.url)
    assert a.wait() == 0, a.stderr
    assert b.wait() == 0, b.stderr

    spans = sorted(
        (float(start), float(end), task)
        for task, start, end in (
            line.split() for line in (flows / "spans.log").read_text().splitlines()
        )
    )
    assert len(spans) == 8, spans
    for (_, end, task), (start, _, later) in zip(spans, spans[1:], strict=False):
        assert end <= start, f"{task} and {later} held db at the same time"
    resources = daemon.call("resource_list")["resources"]
    assert {"name": "db", "total": 1, "used": 0} in resources


def test_worker_waits_for_resource_when_another_workers_task_holds_it(
    flows, pipesd_factory, start_worker
):
    daemon = pipesd_factory(FAST_SCHEDULER + "\n[resources]\ndb = 1\n")
    a = start_worker("DbBatch", "--tag", "a", "--count", "1", "--sleep", "2", url=daemon.url)
    wait_for(lambda: (flows / "started-db-a-0.flag").exists(), what="a to hold db")
    b = start_worker("DbBatch", "--tag", "b", "--count", "1", url=daemon.url)
    assert a.wait() == 0, a.stderr
    assert b.wait() == 0, b.stdout + b.stderr
    assert (flows / "out" / "db-b-0.txt").exists()


# ----- worker crash ---------------------------------------------------------------------------


def test_task_is_retried_on_another_worker_when_its_worker_is_killed_mid_task(
    flows, pipesd_factory, start_worker
):
    daemon = pipesd_factory(
        """
        [scheduler]
        worker_disconnect_delay = 2
        retry_delay = 0
        """
    )
    (flows / "pipes.cfg").write_text(
        (flows / "pipes.cfg").read_text() + "keep_alive = true\nwait_interval = 0.2\n"
    )
    first = start_worker("Slow", url=daemon.url)
    wait_for(lambda: (flows / "started.flag").exists(), what="Slow to start on the first worker")
    second = start_worker("Slow", url=daemon.url)
    wait_for(
        lambda: len(daemon.call("worker_list")["workers"]) == 2,
        what="the second worker to register",
    )
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait(10)

    assert second.wait(60) == 0, second.stderr
    assert (flows / "out" / "slow.txt").read_text() == str(second.proc.pid)
    runs = run_counts(flows / "runs.log")
    assert list(runs.values()) == [[str(first.proc.pid), str(second.proc.pid)]], runs
    (slow_id,) = runs
    detail = daemon.call("task_detail", task_id=slow_id)
    history = [entry["status"] for entry in detail["history"]]
    assert history.index("FAILED") < len(history) - 1 and history[-1] == "DONE", history
    assert detail["status"] == "DONE"


# ----- daemon crash and restart ---------------------------------------------------------------


def test_run_completes_and_nothing_is_lost_when_daemon_is_killed_and_restarted(
    flows, pipesd_factory, start_worker
):
    daemon = pipesd_factory(FAST_SCHEDULER)
    worker = start_worker("Step", "--n", "7", url=daemon.url)
    wait_for(lambda: (flows / "out" / "step-2.txt").exists(), what="step 2 to finish")
    daemon.kill()  # waits for the process to end
    time.sleep(0.3)  # on purpose: an outage the worker must ride out, not a synchronisation
    daemon.start()
    # the restart remembers the worker (steps 4..7 still take it a second)
    (info,) = [w["info"] for w in daemon.call("worker_list")["workers"]]
    assert info["pid"] == worker.proc.pid and info["host"] == socket.gethostname()

    assert worker.wait(60) == 0, worker.stderr
    runs = run_counts(flows / "runs.log")
    assert len(runs) == 8 and all(t.startswith("Step_") for t in runs), runs
    assert all(len(pids) == 1 for pids in runs.values()), runs

    before = task_ids(daemon)
    histories = {t: daemon.call("task_detail", task_id=t)["history"] for t in before}
    daemon.kill()
    daemon.start()
    after = task_ids(daemon)
    assert after == before
    assert set(after.values()) == {"DONE"} and len(after) == 8, after
    for task_id in after:
        history = daemon.call("task_detail", task_id=task_id)["history"]
        assert history, task_id
        assert history == histories[task_id]
        assert [h["status"] for h in history][-2:] == ["RUNNING", "DONE"], history
        assert {h["host"] for h in history} == {socket.gethostname()}, history
    assert daemon.call("worker_list")["workers"] == []  # it said stop_worker as it ended


def test_workers_reconnect_and_finish_when_daemon_restarts_with_sigterm(
    flows, pipesd_factory, start_worker
):
    daemon = pipesd_factory(FAST_SCHEDULER)
    a = start_worker("Twin", "--name", "a", "--n", "6", url=daemon.url)
    b = start_worker("Twin", "--name", "b", "--n", "6", url=daemon.url)
    wait_for(lambda: (flows / "out" / "step-1.txt").exists(), what="step 1 to finish")
    assert daemon.stop() == 0, daemon.output()
    time.sleep(0.5)  # on purpose: an outage the workers must ride out, not a synchronisation
    daemon.start()

    assert a.wait(60) == 0, a.stderr
    assert b.wait(60) == 0, b.stderr
    runs = run_counts(flows / "runs.log")
    assert len(runs) == 9, runs
    assert all(len(pids) == 1 for pids in runs.values()), runs
    assert set(task_ids(daemon).values()) == {"DONE"}


# ----- --background -----------------------------------------------------------------------------


def test_background_daemon_writes_pidfile_and_stops_on_sigterm(pipesd_factory):
    daemon = pipesd_factory("", start=False)
    pidfile = daemon.workdir / "pipesd.pid"
    logdir = daemon.workdir / "logs"
    logdir.mkdir()  # pipesd does not create it (test_pipesd_hostile: a missing one is refused)
    launcher = subprocess.run(
        daemon.command("--background", "--pidfile", str(pidfile), "--logdir", str(logdir)),
        cwd=daemon.workdir,
        env=daemon.env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert launcher.returncode == 0, launcher.stderr
    wait_for(lambda: pidfile.exists() and pidfile.read_text().strip() != "", what="pidfile")
    pid = int(pidfile.read_text().strip())
    try:
        assert pid_alive(pid)
        daemon.wait_healthy()
        assert daemon.get("/health").json["ok"] is True
        assert daemon.call("task_list")["total"] == 0
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not pid_alive(pid), timeout=15, what=f"pipesd {pid} to exit")
    finally:
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
    wait_for(lambda: port_is_free(daemon.port), timeout=10, what="the port to be free")
    assert (logdir / "pipesd.log").exists()
    assert sorted(p.name for p in logdir.iterdir()) == ["pipesd.log", "pipesd.out"]


def test_background_is_refused_with_one_line_error_when_logdir_is_missing(pipesd_factory):
    daemon = pipesd_factory("", start=False)
    result = subprocess.run(
        daemon.command("--background"),
        cwd=daemon.workdir,
        env=daemon.env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == ExitCode.USAGE
    assert "--logdir" in one_line_error(result.stderr, "pipesd")


# ----- bad input --------------------------------------------------------------------------------


def _seed(daemon) -> None:
    """Two tasks, one DONE, so that 'state unchanged' has something to compare."""
    s = daemon.scheduler()
    s.add_tasks("seed", [{"task_id": "A", "family": "A"}, {"task_id": "B", "deps": ["A"]}])
    s.add_task("seed", {"task_id": "A", "status": "DONE"})


def _state(daemon) -> tuple[int, dict[str, int], list[dict]]:
    listing = daemon.call("task_list")
    counts = daemon.call("counts")
    return listing["total"], counts, listing["tasks"]


BAD_REQUESTS = [
    # (method, raw body, expected status, words the error must contain)
    ("add_tasks", b'{"worker": "w", "tasks": [', 400, ["malformed JSON"]),
    ("task_list", b"\xff\xfe\x00garbage", 400, ["malformed JSON"]),
    ("task_list", b"[1, 2]", 400, ["task_list", "JSON object"]),
    ("task_list", b'"just a string"', 400, ["JSON object"]),
    ("task_list", b'{"limit": "ten"}', 400, ["'limit'", "wrong type"]),
    ("task_list", b'{"limit": true}', 400, ["'limit'", "wrong type"]),
    ("get_work", b'{"worker": 7}', 400, ["'worker'", "wrong type"]),
    ("get_work", b"{}", 400, ["missing field 'worker'"]),
    ("get_work", b'{"worker": ""}', 400, ["worker id"]),
    ("get_work", b'{"worker": "w", "running": [1]}', 400, ["running"]),
    ("ping", b'{"worker": "w", "colour": "red"}', 400, ["unknown field 'colour'"]),
    ("frobnicate", b"{}", 400, ["unknown method 'frobnicate'"]),
    ("add_tasks", b'{"worker": "w", "tasks": [{"task_id": 5}]}', 400, ["task_id"]),
    ("add_tasks", b'{"worker": "w", "tasks": [{"task_id": "X", "colour": 1}]}', 400, ["colour"]),
    (
        "add_tasks",
        b'{"worker": "w", "tasks": [{"task_id": "C"}, {"task_id": "D", "status": "RUNNING"}]}',
        400,
        ["RUNNING"],
    ),
    ("add_tasks", b'{"worker": "w", "tasks": [{"task_id": "E", "deps": [1]}]}', 400, ["deps"]),
    ("add_task", b'{"worker": "w", "task": {"task_id": "F", "status": "BOGUS"}}', 400, ["BOGUS"]),
    ("task_detail", b'{"task_id": "no-such-task"}', 400, ["unknown task id 'no-such-task'"]),
    ("mark_as_done", b'{"task_id": "no-such-task"}', 400, ["unknown task id 'no-such-task'"]),
    ("forgive_failures", b'{"task_id": "A"}', 400, ["DONE"]),
    ("graph", b'{"task_id": "nope"}', 400, ["unknown task id 'nope'"]),
    ("update_resource", b'{"name": "db", "amount": -1}', 400, ["db", ">= 0"]),
    ("set_progress_percentage", b'{"task_id": "A", "progress": "half"}', 400, ["progress"]),
    ("set_progress_percentage", b'{"task_id": "A", "progress": NaN}', 400, ["NaN"]),
    (
        "add_tasks",
        b'{"worker": "w", "tasks": [{"task_id": "G", "retry_delay": -Infinity}]}',
        400,
        ["Infinity"],
    ),
]


def test_bad_rpc_body_gets_4xx_json_error_and_keeps_state(pipesd_factory):
    daemon = pipesd_factory("[scheduler]\nmax_body_mb = 1\n")
    _seed(daemon)
    before = _state(daemon)
    for method, body, status, words in BAD_REQUESTS:
        reply = daemon.post(method, body)
        assert reply.status == status, (method, body, reply.status, reply.body)
        assert reply.headers.get("Content-Type", "").startswith("application/json")
        error = reply.json["error"]
        assert isinstance(error, str)
        for word in words:
            assert word in error, (method, body, error)

    reply = daemon.get("/api/v1/task_list")
    assert reply.status == 405 and "POST" in reply.json["error"]
    reply = daemon.get("/api/v1/x")
    assert reply.status == 405 and isinstance(reply.json["error"], str)
    reply = daemon.get("/no/such/path")
    assert reply.status == 404 and "/no/such/path" in reply.json["error"]
    reply = daemon.post("task_list", b" " * (1024 * 1024 + 10) + b"{}")
    assert reply.status == 413 and "larger than" in reply.json["error"]

    assert _state(daemon) == before
    assert daemon.get("/health").status == 200


def _chunked_post(port: int, path: str, pieces) -> Reply:
    """POST with Transfer-Encoding: chunked (no Content-Length for the server to check)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        headers = {"Content-Type": "application/json"}
        conn.request("POST", path, body=iter(pieces), headers=headers, encode_chunked=True)
        response = conn.getresponse()
        return Reply(response.status, response.read(), dict(response.getheaders()))
    finally:
        conn.close()


@pytest.mark.parametrize("transfer", ["content-length", "chunked"])
def test_oversize_body_gets_413_json_error_when_over_max_body_mb(pipesd_factory, transfer):
    daemon = pipesd_factory("[scheduler]\nmax_body_mb = 1\n")
    _seed(daemon)
    before = _state(daemon)
    big = json.dumps({"search": "x" * (1536 * 1024)}).encode()
    try:
        if transfer == "chunked":
            pieces = [big[i : i + 65536] for i in range(0, len(big), 65536)]
            reply = _chunked_post(daemon.port, "/api/v1/task_list", pieces)
        else:
            reply = daemon.post("task_list", big)
    except OSError as err:
        pytest.fail(f"connection dropped instead of a 4xx JSON answer: {err!r}")
    finally:
        assert daemon.get("/health").status == 200
        assert _state(daemon) == before
    assert reply.status == 413, reply.status
    assert "larger than 1048576 bytes" in reply.json["error"]
    small = _chunked_post(daemon.port, "/api/v1/task_list", [b'{"limit"', b": 1}"])
    assert small.status == 200 and small.json["total"] == 2


def test_deeply_nested_json_body_gets_400_json_error(pipesd):
    _seed(pipesd)
    before = _state(pipesd)
    depth = 100_000
    reply = pipesd.post("task_list", b"[" * depth + b"]" * depth)
    assert pipesd.get("/health").status == 200
    assert _state(pipesd) == before
    assert reply.status == 400, (reply.status, reply.body)
    assert "JSON" in reply.json["error"]
    assert "Traceback" not in pipesd.output()


def test_daemon_keeps_serving_when_graph_is_asked_for_a_huge_depth(pipesd):
    _seed(pipesd)
    # The graph is computed on the daemon's one IOLoop thread: work that grew with the depth
    # would hold that thread, and neither this reply nor the /health after it would come.
    try:
        reply = pipesd.post("graph", {"task_id": "B", "depth": 10**12}, timeout=10)
    except TimeoutError:
        pytest.fail("pipesd did not answer a graph request with a huge depth within 10 s")
    assert reply.status == 200, (reply.status, reply.body)
    assert sorted(node["task_id"] for node in reply.json["nodes"]) == ["A", "B"]
    assert pipesd.get("/health", timeout=5).status == 200


# ----- auth ---------------------------------------------------------------------------------------


def test_rpc_needs_bearer_token_when_auth_token_is_set(flows, pipesd_factory, start_worker):
    daemon = pipesd_factory("[scheduler]\nauth_token = s3cret\n", token="s3cret")
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cretx"}):
        for method in ("task_list", "add_tasks", "get_work"):
            reply = daemon.post(method, {"worker": "w", "tasks": []}, headers=headers)
            assert reply.status == 401, (method, headers)
            assert "token" in reply.json["error"]
    ok = daemon.post("task_list", {}, headers={"Authorization": "Bearer s3cret"})
    assert ok.status == 200 and ok.json["total"] == 0
    assert daemon.get("/health").status == 200

    refused = start_worker("Shared", "--n", "1", url=daemon.url)
    assert refused.wait() == ExitCode.SCHEDULER_UNAVAILABLE
    assert "401" in one_line_error(refused.stderr, "pipes")
    assert not (flows / "out" / "shared-1.txt").exists()

    worker = start_worker("Shared", "--n", "1", url=daemon.url, env={"PIPES_AUTH_TOKEN": "s3cret"})
    assert worker.wait() == 0, worker.stderr
    assert list(task_ids(daemon).values()) == ["DONE"]


def test_read_only_calls_need_no_token_when_public_read_is_set(pipesd_factory):
    daemon = pipesd_factory(
        "[scheduler]\nauth_token = s3cret\npublic_read = true\n", token="s3cret"
    )
    for method in ("task_list", "counts", "worker_list", "resource_list"):
        assert daemon.post(method, {}).status == 200, method
    for method, body in (
        ("add_tasks", {"worker": "w", "tasks": [{"task_id": "T"}]}),
        ("pause", {}),
        ("update_resource", {"name": "db", "amount": 3}),
    ):
        reply = daemon.post(method, body)
        assert reply.status == 401, method
    assert daemon.post("task_list", {}).json["total"] == 0
    assert daemon.call("is_paused") == {"paused": False}


def test_daemon_takes_token_from_env_when_pipes_auth_token_is_set(pipesd_factory):
    daemon = pipesd_factory("", env={"PIPES_AUTH_TOKEN": "fromenv"}, token="fromenv")
    assert daemon.post("task_list", {}).status == 401
    assert daemon.call("task_list")["total"] == 0


# ----- state file ---------------------------------------------------------------------------------


def _garbage(path: Path) -> None:
    path.write_bytes(bytes(range(256)) * 64)


def _foreign_sqlite(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
        db.execute("INSERT INTO customers VALUES (1, 'ada')")
    db.close()


def _newer_format(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        db.execute("INSERT INTO meta VALUES ('format', '99')")
    db.close()


def _corrupt_row(path: Path) -> None:
    """A real pipesd state file, written by pipesd itself, with one task row garbled."""
    port = free_port()
    env = clean_environment()
    proc = subprocess.Popen(
        [str(PIPESD_SCRIPT), "--port", str(port), "--state-path", str(path)],
        env=env,
        cwd=path.parent,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: _answers(port), timeout=20, what="pipesd to start")
        body = json.dumps({"worker": "w", "tasks": [{"task_id": "T"}]}).encode()
        headers = {"Content-Type": "application/json"}
        assert http_request(port, "POST", "/api/v1/add_tasks", body, headers).status == 200
    finally:
        proc.terminate()
        proc.wait(10)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE tasks SET data = '{not json' WHERE task_id = 'T'")
    db.close()


def _answers(port: int) -> bool:
    try:
        return http_request(port, "GET", "/health", timeout=1).status == 200
    except OSError:
        return False


@pytest.mark.parametrize(
    "spoil, words",
    [
        pytest.param(_garbage, ["unreadable"], id="garbage"),
        pytest.param(_foreign_sqlite, ["not a pipesd state file"], id="foreign"),
        pytest.param(_newer_format, ["format 99"], id="newer"),
        pytest.param(_corrupt_row, ["corrupt"], id="corrupt-row"),
    ],
)
def test_pipesd_refuses_to_start_with_one_line_error_when_state_file_is_bad(
    pipesd_factory, spoil, words
):
    daemon = pipesd_factory("", start=False)
    spoil(daemon.state_path)
    proc = daemon.start(wait=False)
    assert proc.wait(30) != 0
    line = one_line_error(daemon.output(), "pipesd")
    assert str(daemon.state_path) in line
    for word in words:
        assert word in line, line
    assert port_is_free(daemon.port)


@pytest.mark.parametrize(
    "spoil",
    [
        pytest.param(_garbage, id="garbage"),
        pytest.param(_foreign_sqlite, id="foreign"),
        pytest.param(_newer_format, id="newer"),
        pytest.param(_corrupt_row, id="corrupt-row"),
    ],
)
def test_state_file_error_names_reset_state_when_pipesd_refuses_it(pipesd_factory, spoil):
    daemon = pipesd_factory("", start=False)
    spoil(daemon.state_path)
    assert daemon.start(wait=False).wait(30) != 0
    assert "--reset-state" in one_line_error(daemon.output(), "pipesd")


@pytest.mark.parametrize(
    "spoil",
    [
        pytest.param(_garbage, id="garbage"),
        pytest.param(_foreign_sqlite, id="foreign"),
        pytest.param(_newer_format, id="newer"),
        pytest.param(_corrupt_row, id="corrupt-row"),
    ],
)
def test_pipesd_leaves_state_file_untouched_when_it_refuses_it(pipesd_factory, spoil):
    daemon = pipesd_factory("", start=False)
    spoil(daemon.state_path)
    original = daemon.state_path.read_bytes()
    siblings = sorted(p.name for p in daemon.workdir.iterdir())
    assert daemon.start(wait=False).wait(30) != 0
    assert daemon.state_path.read_bytes() == original
    now = sorted(p.name for p in daemon.workdir.iterdir() if not p.name.startswith("pipesd-"))
    assert now == [s for s in siblings if not s.startswith("pipesd-")]


def test_second_pipesd_is_refused_when_state_file_is_in_use(pipesd_factory):
    first = pipesd_factory("")
    first.call("add_tasks", worker="w", tasks=[{"task_id": "T"}])
    second = pipesd_factory("", start=False, name="second")
    second.state_path = first.state_path
    assert second.start(wait=False).wait(30) != 0
    line = one_line_error(second.output(), "pipesd")
    assert str(first.state_path) in line and "in use" in line, line
    assert task_ids(first) == {"T": "PENDING"}


def test_pipesd_exits_2_with_one_line_error_when_port_is_taken(pipesd, pipesd_factory):
    other = pipesd_factory("", start=False, name="other")
    other.port = pipesd.port
    assert other.start(wait=False).wait(30) == ExitCode.USAGE
    line = one_line_error(other.output(), "pipesd")
    assert f"127.0.0.1:{pipesd.port}" in line, line
    assert pipesd.get("/health").status == 200


@pytest.mark.parametrize(
    "args, words",
    [
        (("--log-level", "chatty"), ["CHATTY"]),
        (("--port", "eighty"), ["--port", "eighty"]),
        (("--no-such-flag",), ["--no-such-flag"]),
    ],
)
def test_pipesd_exits_2_with_one_line_error_when_command_line_is_bad(pipesd_factory, args, words):
    daemon = pipesd_factory("", start=False)
    assert daemon.start(*args, wait=False).wait(30) == ExitCode.USAGE
    line = one_line_error(daemon.output(), "pipesd")
    for word in words:
        assert word in line, line
    assert not daemon.state_path.exists()


def test_reset_state_starts_empty_when_state_file_is_corrupt(pipesd_factory):
    daemon = pipesd_factory("", start=False)
    _garbage(daemon.state_path)
    daemon.start("--reset-state")
    listed = daemon.call("task_list")
    assert listed["total"] == 0 and listed["tasks"] == []
    daemon.call("add_tasks", worker="w", tasks=[{"task_id": "T"}])
    daemon.kill()
    daemon.start()
    assert task_ids(daemon) == {"T": "PENDING"}


# ----- unreachable scheduler -------------------------------------------------------------------


@pytest.mark.parametrize("where", ["flag", "config"])
def test_worker_exits_8_with_one_line_error_when_scheduler_is_unreachable(
    flows, start_worker, where
):
    url = f"http://127.0.0.1:{free_port()}"
    config = flows / "pipes.cfg"
    text = config.read_text().replace("rpc_connect_seconds = 5", "rpc_connect_seconds = 1")
    if where == "config":
        text = text.replace("[core]", f"[core]\nscheduler_url = {url}")
    config.write_text(text)
    if where == "config":
        worker = start_worker("Shared", "--n", "3", url=None)
    else:
        worker = start_worker("Shared", "--n", "3", url=url)
    assert worker.wait(30) == ExitCode.SCHEDULER_UNAVAILABLE
    line = one_line_error(worker.stderr, "pipes")
    assert url in line and "cannot reach" in line, line
    assert not (flows / "out" / "shared-3.txt").exists()
    assert not (flows / "runs.log").exists()


# ----- metrics and operator API --------------------------------------------------------------


def _metric(text: str, name: str) -> dict[str, float]:
    """label-set -> value for one metric family of a Prometheus text page."""
    values = {}
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}(\{{[^}}]*\}})? (\S+)", line)
        if match:
            values[match.group(1) or ""] = float(match.group(2))
    return values


def test_metrics_count_done_tasks_when_a_run_finishes(flows, pipesd, start_worker):
    worker = start_worker("Top", "--name", "m", "--first", "0", "--last", "3", url=pipesd.url)
    assert worker.wait() == 0, worker.stderr
    reply = pipesd.get("/metrics")
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("text/plain")
    text = reply.body.decode()
    tasks = _metric(text, "pipes_tasks")
    assert tasks['{status="DONE"}'] == 5 == pipesd.call("task_list", status="DONE")["total"]
    assert tasks['{status="PENDING"}'] == 0
    assert _metric(text, "pipes_get_work_seconds_count")[""] >= 1
    assert _metric(text, "pipes_paused")[""] == 0
    assert _metric(text, "pipes_workers")[""] == len(pipesd.call("worker_list")["workers"])


def _abc(daemon):
    """A <- B <- C (B needs A, C needs B) added by worker w1 on host h1."""
    s = daemon.scheduler()
    s.add_worker("w1", {"host": "h1"})
    s.add_tasks(
        "w1",
        [
            {"task_id": "A", "family": "Fam", "params": {"x": "1"}},
            {"task_id": "B", "family": "Fam", "deps": ["A"], "priority": 5},
            {"task_id": "C", "family": "Other", "deps": ["B"], "retry_count": 1},
        ],
    )
    return s


def test_pause_stops_handing_out_work_until_unpause_when_called_over_rpc(pipesd):
    s = _abc(pipesd)
    assert task_ids(pipesd, family="Fam") == {"A": "PENDING", "B": "PENDING"}
    assert task_ids(pipesd, search="C") == {"C": "PENDING"}
    pipesd.call("pause")
    assert pipesd.call("is_paused") == {"paused": True}
    assert s.get_work("w1") is None
    workers = pipesd.call("worker_list")["workers"]
    assert [(w["worker"], w["running"], w["info"]["host"]) for w in workers] == [("w1", [], "h1")]
    pipesd.kill()
    pipesd.start()
    assert pipesd.call("is_paused") == {"paused": True}  # a setting that survives kill -9
    assert s.get_work("w1") is None
    pipesd.call("unpause")
    work = s.get_work("w1")
    assert work["task_id"] == "A" and work["priority"] == 5  # lifted by its dependent B
    assert [(w["worker"], w["running"]) for w in pipesd.call("worker_list")["workers"]] == [
        ("w1", ["A"])
    ]
    with pytest.raises(BadRequest, match="running"):
        pipesd.call("mark_as_done", task_id="A")


def test_history_records_worker_host_when_daemon_was_killed_before_the_next_call(pipesd):
    s = _abc(pipesd)
    pipesd.kill()
    pipesd.start()
    # a worker's main loop asks for work before its keep-alive thread pings again
    assert s.get_work("w1")["task_id"] == "A"
    history = pipesd.call("task_detail", task_id="A")["history"]
    assert [(h["status"], h["host"]) for h in history] == [("RUNNING", "h1")]


def test_operator_actions_clear_failures_and_release_dependents_when_called_over_rpc(
    pipesd_factory,
):
    daemon = pipesd_factory("[scheduler]\nretry_delay = 3600\n")
    s = _abc(daemon)
    assert s.get_work("w1")["task_id"] == "A"
    # A fails: FAILED with a retry far away; forgive_failures makes it PENDING again.
    s.add_task("w1", {"task_id": "A", "status": "FAILED", "error": "boom"})
    detail = daemon.call("task_detail", task_id="A")
    assert detail["status"] == "FAILED" and detail["error"] == "boom" and detail["failures"] == 1
    assert detail["retry_at"] is not None
    assert s.get_work("w1") is None
    with pytest.raises(BadRequest, match="not DISABLED"):
        daemon.call("re_enable_task", task_id="A")
    daemon.call("forgive_failures", task_id="A")
    detail = daemon.call("task_detail", task_id="A")
    assert detail["status"] == "PENDING" and detail["failures"] == 0
    with pytest.raises(BadRequest, match="not FAILED or DISABLED"):
        daemon.call("forgive_failures", task_id="A")

    # mark_as_done releases the dependent B, which get_work then hands out.
    daemon.call("mark_as_done", task_id="A")
    assert s.get_work("w1")["task_id"] == "B"
    s.add_task("w1", {"task_id": "B", "status": "DONE"})

    # C has retry_count 1: one failure disables it; re_enable_task brings it back.
    assert s.get_work("w1")["task_id"] == "C"
    s.add_task("w1", {"task_id": "C", "status": "FAILED", "error": "bad"})
    assert task_ids(daemon)["C"] == "DISABLED"
    assert s.get_work("w1") is None
    daemon.call("re_enable_task", task_id="C")
    assert task_ids(daemon) == {"A": "DONE", "B": "DONE", "C": "PENDING"}
    assert s.get_work("w1")["task_id"] == "C"


def test_graph_and_task_detail_show_neighbours_and_history_when_tasks_ran(pipesd):
    s = _abc(pipesd)
    for task_id in ("A", "B"):
        assert s.get_work("w1")["task_id"] == task_id
        s.add_task("w1", {"task_id": task_id, "status": "DONE"})
    graph = pipesd.call("graph", task_id="B", depth=1)
    assert {n["task_id"]: (n["status"], n["distance"]) for n in graph["nodes"]} == {
        "A": ("DONE", 1),
        "B": ("DONE", 0),
        "C": ("PENDING", 1),
    }
    assert sorted((e["from"], e["to"]) for e in graph["edges"]) == [("B", "A"), ("C", "B")]
    assert graph["truncated"] is False
    assert {n["task_id"] for n in pipesd.call("graph", task_id="A", depth=0)["nodes"]} == {"A"}
    detail = pipesd.call("task_detail", task_id="B")
    assert detail["deps"] == [{"task_id": "A", "family": "Fam", "status": "DONE"}]
    assert detail["dependents"] == [{"task_id": "C", "family": "Other", "status": "PENDING"}]
    assert detail["stakeholders"] == ["w1"]
    assert [h["status"] for h in detail["history"]] == ["RUNNING", "DONE"]
    assert detail["history"][0]["worker"] == "w1" and detail["history"][0]["host"] == "h1"
    assert pipesd.call("task_detail", task_id="A")["params"] == {"x": "1"}


def test_update_resource_changes_capacities_durably_when_called_over_rpc(pipesd_factory):
    daemon = pipesd_factory("[resources]\ndb = 2\n")
    expected = {"resources": [{"name": "db", "total": 2, "used": 0}]}
    assert daemon.call("resource_list") == expected
    daemon.call("update_resource", name="db", amount=5)
    daemon.call("update_resource", name="gpu", amount=1)
    daemon.call("update_resource", name="gpu", amount=None)
    daemon.call("update_resource", name="net", amount=0)
    daemon.kill()
    daemon.start()
    assert daemon.call("resource_list")["resources"] == [
        {"name": "db", "total": 5, "used": 0},
        {"name": "net", "total": 0, "used": 0},
    ]


def test_resource_at_zero_holds_tasks_back_until_update_resource_raises_it(pipesd_factory):
    daemon = pipesd_factory("[resources]\nnet = 0\n")
    s = daemon.scheduler()
    s.add_tasks("w", [{"task_id": "N", "resources": {"net": 1}}, {"task_id": "M"}])
    assert s.get_work("w")["task_id"] == "M"
    assert s.get_work("w", running=["M"]) is None
    daemon.call("update_resource", name="net", amount=1)
    assert s.get_work("w", running=["M"])["task_id"] == "N"
    assert daemon.call("resource_list")["resources"] == [{"name": "net", "total": 1, "used": 1}]


def test_task_list_pages_and_filters_when_many_tasks_are_known(pipesd):
    s = pipesd.scheduler()
    s.add_tasks(
        "w", [{"task_id": f"T{i:03}", "family": "Even" if i % 2 else "Odd"} for i in range(250)]
    )
    everything = s.task_list(limit=1000)
    assert everything["total"] == 250 and len(everything["tasks"]) == 250
    page = s.task_list(limit=100, offset=200)
    assert page["total"] == 250 and len(page["tasks"]) == 50
    assert s.task_list(family="Even")["total"] == 125
    assert s.task_list(search="T01")["total"] == 10
    assert s.task_list(status="DONE")["total"] == 0


def test_dependent_waits_while_its_done_dependency_is_reported_unknown(pipesd):
    s = pipesd.scheduler()
    s.add_tasks("w1", [{"task_id": "A"}, {"task_id": "D", "deps": ["A"]}])
    assert s.get_work("w1")["task_id"] == "A"
    s.add_task("w1", {"task_id": "A", "status": "DONE"})
    # another worker's complete() check on A raised: it reports A as UNKNOWN ...
    s.add_tasks("w2", [{"task_id": "A", "status": "UNKNOWN", "error": "flaky fs"}])
    assert s.get_work("w1") is None, "D handed out while its dependency A is UNKNOWN"
    # ... and a later walk finds A's output again.
    s.add_tasks("w2", [{"task_id": "A", "status": "DONE"}])
    assert task_ids(pipesd) == {"A": "DONE", "D": "PENDING"}
    assert (s.get_work("w1") or {}).get("task_id") == "D"


def test_pruned_failed_task_causes_no_error_when_its_retry_time_comes(pipesd_factory):
    daemon = pipesd_factory(
        """
        [scheduler]
        worker_disconnect_delay = 1
        remove_delay = 0.5
        retry_delay = 3
        """
    )
    s = daemon.scheduler()
    s.add_tasks("gone", [{"task_id": "T"}])
    assert s.get_work("gone")["task_id"] == "T"
    s.add_task("gone", {"task_id": "T", "status": "FAILED", "error": "boom"})
    # "gone" never pings: it is dropped after 1 s, T (orphaned) removed 0.5 s later,
    # and T's retry time comes at 3 s.
    wait_for(lambda: daemon.call("task_list")["total"] == 0, timeout=10, what="T pruned")
    time.sleep(3.5)  # on purpose: past T's retry time (3 s), which the daemon must survive
    assert daemon.post("get_work", {"worker": "other"}).status == 200
    assert daemon.post("prune", {}).status == 200
    assert "Traceback" not in daemon.output(), daemon.output()


def test_task_list_stays_strict_json_when_a_client_sends_nan(pipesd):
    s = pipesd.scheduler()
    s.add_tasks("w", [{"task_id": "T"}])
    reply = pipesd.post("set_progress_percentage", b'{"task_id": "T", "progress": NaN}')
    listing = pipesd.post("task_list", {})

    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    assert 400 <= reply.status < 500 or reply.status == 200
    json.loads(listing.body, parse_constant=refuse)


def test_client_raises_rpc_error_when_daemon_answers_401(pipesd_factory):
    daemon = pipesd_factory("[scheduler]\nauth_token = s3cret\n")
    with pytest.raises(RPCError, match="401"):
        daemon.scheduler().task_list()
