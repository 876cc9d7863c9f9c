"""pipesd's journal under faults and unstorable input: nothing unacknowledged is ever served.

Each test runs a real pipesd. The disk-full and read-only tests put its state file on a
small tmpfs, which needs root (CI runs as root); elsewhere they skip and say why.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pipesd_fixtures import Daemon, wait_for

FAST_PRUNE = """
[scheduler]
worker_disconnect_delay = 0.5
remove_delay = 0.5
"""


def task(task_id: str, **fields: object) -> dict[str, object]:
    """A runnable task as a worker would describe it."""
    return {"task_id": task_id, "family": "T", "module": "m", "params": {}, **fields}


def listed(daemon: Daemon) -> dict[str, str]:
    """task id -> status, as task_list serves it."""
    reply = daemon.post("task_list", {"limit": 10_000})
    assert reply.status == 200, reply.body
    return {t["task_id"]: t["status"] for t in reply.json["tasks"]}


def metric(daemon: Daemon, name: str) -> float:
    text = daemon.get("/metrics").body.decode()
    (value,) = re.findall(rf"^{name} (\S+)$", text, re.MULTILINE)
    return float(value)


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs: a disk that fills up, or turns read-only, on demand."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root and mount(8)")
    where = tmp_path / "fs"
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(where)], check=True)
    yield where
    subprocess.run(["umount", "-l", str(where)], check=True)


def daemon_on(fs: Path, pipesd_factory) -> Daemon:
    daemon = pipesd_factory(start=False)
    daemon.state_path = fs / "state.sqlite"
    daemon.start()
    return daemon


def fill(fs: Path) -> Path:
    """Write a filler file until the filesystem is full."""
    filler = fs / "filler"
    with filler.open("wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError as err:
            assert err.errno == 28, err  # ENOSPC
    return filler


def big_batch(prefix: str, n: int = 300) -> list[dict[str, object]]:
    """Enough tasks that committing them needs pages the full disk does not have."""
    return [task(f"{prefix}{i}", params={"pad": "x" * 400}) for i in range(n)]


def test_failed_commit_serves_nothing_unacknowledged_when_disk_is_full(small_fs, pipesd_factory):
    daemon = daemon_on(small_fs, pipesd_factory)
    assert daemon.post("add_tasks", {"worker": "w", "tasks": [task("kept")]}).status == 200
    filler = fill(small_fs)

    refused = daemon.post("add_tasks", {"worker": "w", "tasks": big_batch("lost")})
    assert refused.status == 503, refused.body
    assert "not applied" in refused.json["error"]
    assert listed(daemon) == {"kept": "PENDING"}  # the refused change is not served
    health = daemon.get("/health")
    assert health.status == 503 and health.json["ok"] is False, health.body
    assert daemon.post("mark_as_done", {"task_id": "kept"}).status == 503
    assert listed(daemon) == {"kept": "PENDING"}

    filler.unlink()  # space returns: the daemon heals without a restart
    wait_for(
        lambda: daemon.post("mark_as_done", {"task_id": "kept"}).status == 200,
        what="a write to succeed once space returned",
    )
    assert daemon.post("add_tasks", {"worker": "w", "tasks": big_batch("new", 20)}).status == 200
    assert daemon.get("/health").status == 200
    served = listed(daemon)
    daemon.kill()
    daemon.start()
    assert listed(daemon) == served
    assert served["kept"] == "DONE" and len(served) == 21
    assert "rebuilding the scheduler from the journal" in daemon.output() or daemon.starts == 2


@pytest.mark.parametrize(
    "body",
    [
        '{"worker": "w", "tasks": [{"task_id": "bad\\ud800", "family": "T"}]}',
        '{"worker": "w", "tasks": [{"task_id": "t", "params": {"p": "\\udce9"}}]}',
        '{"worker": "w", "info": {"host": 18446744073709551616}}',
        '{"worker": "w", "info": {"host": "h\\udfff"}}',
    ],
    ids=["surrogate-task-id", "surrogate-param", "int-past-64-bits", "surrogate-host"],
)
def test_unstorable_text_or_number_gets_400_and_next_write_commits(pipesd, body):
    method = "add_worker" if "info" in body else "add_tasks"
    reply = pipesd.post(method, body.encode())
    assert reply.status == 400, reply.body
    assert "64 bits" in reply.json["error"] or "UTF-8" in reply.json["error"], reply.json

    assert pipesd.post("add_tasks", {"worker": "w", "tasks": [task("after")]}).status == 200
    pipesd.kill()
    pipesd.start()
    assert listed(pipesd) == {"after": "PENDING"}


def test_log_tail_with_undecodable_bytes_is_stored_with_them_replaced(pipesd):
    body = {"worker": "w", "tasks": [task("t")]}
    assert pipesd.post("add_tasks", body).status == 200
    assert pipesd.post("get_work", {"worker": "w"}).json["task"]["task_id"] == "t"
    report = '{"worker": "w", "reports": [{"task_id": "t", "status": "DONE", '
    report += '"log_tail": "opened caf\\udce9.csv\\n"}]}'
    assert pipesd.post("get_work", report.encode()).status == 200

    pipesd.kill()
    pipesd.start()
    detail = pipesd.post("task_detail", {"task_id": "t"}).json
    assert detail["status"] == "DONE"
    assert detail["log"] == "opened caf\ufffd.csv\n"


@pytest.mark.parametrize(
    ("method", "body"),
    [
        ("set_progress_percentage", '{"task_id": "t", "progress": 1e400}'),
        ("add_tasks", '{"worker": "w", "tasks": [{"task_id": "u", "retry_delay": 1e400}]}'),
        ("add_worker", '{"worker": "w", "info": {"load": -1e400}}'),
    ],
)
def test_overflowing_float_gets_400_and_task_views_keep_working(pipesd, method, body):
    assert pipesd.post("add_tasks", {"worker": "w", "tasks": [task("t")]}).status == 200
    reply = pipesd.post(method, body.encode())
    assert reply.status == 400 and "finite" in reply.json["error"], reply.body

    pipesd.kill()
    pipesd.start()
    assert listed(pipesd) == {"t": "PENDING"}
    assert pipesd.post("task_detail", {"task_id": "t"}).status == 200


def test_negative_resource_amount_is_rejected_and_capacity_holds(pipesd):
    assert pipesd.post("update_resource", {"name": "db", "amount": 1}).status == 200
    greedy = task("greedy", resources={"db": -5})
    reply = pipesd.post("add_tasks", {"worker": "w", "tasks": [greedy]})
    assert reply.status == 400 and ">= 0" in reply.json["error"], reply.body
    assert pipesd.post("update_resource", {"name": "db", "amount": -1}).status == 400

    tasks = [task(f"t{i}", resources={"db": 1}) for i in range(2)]
    assert pipesd.post("add_tasks", {"worker": "w", "tasks": tasks}).status == 200
    handed = pipesd.post("get_work", {"worker": "w", "max_tasks": 2}).json["tasks"]
    assert len(handed) == 1  # the capacity of one is not bypassed
    assert listed(pipesd) == {"t0": "RUNNING", "t1": "PENDING"}


def test_pruned_tasks_leave_no_ready_queue_entries_after_many_rounds(pipesd_factory):
    daemon = pipesd_factory(FAST_PRUNE)
    for round_ in range(4):
        worker = f"w{round_}"
        tasks = [task(f"r{round_}-{i}") for i in range(2000)]
        assert daemon.post("add_tasks", {"worker": worker, "tasks": tasks}).status == 200
        done: list[dict[str, object]] = []
        ran = 0
        while True:
            body = {"worker": worker, "max_tasks": 100, "reports": done}
            handed = daemon.post("get_work", body).json["tasks"]
            if not handed:
                break
            ran += len(handed)
            done = [{"task_id": t["task_id"], "status": "DONE"} for t in handed]
        assert ran == 2000

    def all_pruned() -> bool:
        return metric(daemon, "pipes_workers") == 0 and not listed(daemon)

    wait_for(all_pruned, what="every worker and task to be pruned")
    assert metric(daemon, "pipes_ready_queue_entries") == 0


def test_poisoned_journal_with_infinity_loads_and_serves_task_views(pipesd):
    assert pipesd.post("add_tasks", {"worker": "w", "tasks": [task("t")]}).status == 200
    pipesd.kill()
    import sqlite3

    with sqlite3.connect(pipesd.state_path) as db:  # written by a pipesd before the fix
        (data,) = db.execute("SELECT data FROM tasks WHERE task_id = 't'").fetchone()
        record = json.loads(data)
        record["progress_percentage"] = float("inf")
        db.execute("UPDATE tasks SET data = ? WHERE task_id = 't'", (json.dumps(record),))
    pipesd.start()
    assert listed(pipesd) == {"t": "PENDING"}
    assert pipesd.post("task_detail", {"task_id": "t"}).json["progress_percentage"] is None


def test_live_worker_is_kept_through_a_disk_full_outage_longer_than_disconnect_delay(
    small_fs, pipesd_factory
):
    daemon = pipesd_factory("[scheduler]\nworker_disconnect_delay = 1\n", start=False)
    daemon.state_path = small_fs / "state.sqlite"
    daemon.start()
    info = {"host": "h", "pid": 1}
    assert daemon.post("add_worker", {"worker": "a", "info": info}).status == 200
    assert daemon.post("add_tasks", {"worker": "a", "tasks": [task("t")]}).status == 200
    assert daemon.post("get_work", {"worker": "a"}).json["task"]["task_id"] == "t"
    filler = fill(small_fs)
    assert daemon.post("add_tasks", {"worker": "b", "tasks": big_batch("x")}).status == 503
    news = {"worker": "a", "info": {"host": "elsewhere"}}
    assert daemon.post("add_worker", news).status == 503  # new info is a write

    def keep_pinging(seconds: float) -> None:
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            assert daemon.post("ping", {"worker": "a"}).status == 200
            # what a pipes worker's keep-alive sends: the same info again
            assert daemon.post("add_worker", {"worker": "a", "info": info}).status == 200
            time.sleep(0.2)  # a keep-alive's pace; the outage must outlast the delay

    keep_pinging(2.5)
    filler.unlink()
    wait_for(
        lambda: daemon.post("ping", {"worker": "a"}).status == 200
        and daemon.post("add_tasks", {"worker": "a", "tasks": [task("u")]}).status == 200,
        what="writes to resume",
    )
    keep_pinging(1.5)  # several housekeeping rounds (every 0.25 s) prune silent workers
    assert listed(daemon)["t"] == "RUNNING"
    assert [w["worker"] for w in daemon.post("worker_list", {}).json["workers"]] == ["a"]
