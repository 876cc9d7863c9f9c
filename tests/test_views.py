"""The status page's views: indexes, sorting, upstream-failed, overview, log tails."""

import random
from dataclasses import asdict

import pytest

from pipes.exceptions import BadRequest
from pipes.scheduler import views
from pipes.scheduler.core import Scheduler
from pipes.scheduler.memory_store import MemoryStore
from pipes.scheduler.model import Policy, Status, TaskSpec
from pipes.scheduler.service import Service
from pipes.scheduler.store import SqliteStore, record_from_json, record_to_json


def spec(task_id, family="F", deps=(), **fields):
    body = {"task_id": task_id, "family": family, "deps": list(deps), **fields}
    return TaskSpec.from_dict(body)


def ids(page):
    return [t["task_id"] for t in page["tasks"]]


def brute_force(sched, status=None, family=None):
    return {
        t.task_id
        for t in sched.tasks.values()
        if t.known
        and (status is None or t.status == status)
        and (family is None or t.family == family)
    }


def random_step(sched, rng, step, now):
    """One random change: an add, a get_work, a report, a prune, a tick or an action."""
    worker = f"w{rng.randrange(3)}"
    task_id = f"t{rng.randrange(80)}"
    family = f"F{int(task_id[1:]) % 4}"
    known = task_id in sched.tasks and sched.tasks[task_id].known
    choice = rng.randrange(6)
    if choice == 0:
        deps = {f"t{rng.randrange(80)}" for _ in range(rng.randrange(3))} - {task_id}
        sched.add_tasks(worker, [spec(task_id, family, sorted(deps))], now)
    elif choice == 1:
        sched.get_work(worker, now)
    elif choice == 2 and known:
        status = rng.choice(["DONE", "FAILED", "PENDING"])
        sched.add_tasks(worker, [spec(task_id, family, status=status)], now)
    elif choice == 3 and step % 50 == 0:
        sched.prune(now + 30)  # workers vanish, orphans go
    elif choice == 4:
        sched.tick(now)
    elif choice == 5 and known and sched.tasks[task_id].status != Status.RUNNING:
        sched.mark_as_done(task_id, now)


def test_indexes_follow_every_kind_of_change():
    """Random adds, reports, actions, retries and pruning: the indexes agree with a full scan."""
    rng = random.Random(7)
    sched = Scheduler(Policy(retry_delay=5, remove_delay=1, worker_disconnect_delay=10))
    for step in range(600):
        random_step(sched, rng, step, float(step))
        for status in Status:
            assert sched.index.by_status[status] == brute_force(sched, status), status
        for fam in ("F0", "F1", "F2", "F3"):
            expected = brute_force(sched, family=fam)
            assert sched.index.by_family.get(fam, set()) == expected
            counted = sum(sched.index.family_counts.get(fam, {}).values())
            assert counted == len(expected)
        for worker in list(sched.workers):
            assert asdict(sched.outlook(worker, float(step))) == brute_force_outlook(sched, worker)
    assert sum(len(s) for s in sched.index.by_status.values()) > 20  # the walk did build up
    restored = Scheduler()
    records = [record_from_json(t.task_id, record_to_json(t)) for t in sched.tasks.values()]
    restored.restore([r for r in records if sched.tasks[r.task_id].known], {}, 600.0)
    for worker in list(restored.workers):
        assert asdict(restored.outlook(worker, 600.0)) == brute_force_outlook(restored, worker)
    assert restored.index.counts() == sched.index.counts()


def brute_force_outlook(sched, worker):
    """outlook() as a walk over every task of the worker."""
    counts = dict.fromkeys(("pending", "ready", "running", "running_elsewhere"), 0)
    counts["waiting_for_retry"] = 0
    for task_id in sched.workers[worker].tasks:
        task = sched.tasks[task_id]
        if task.status == Status.PENDING:
            counts["pending"] += 1
            ready = task.unfinished == 0 and worker in task.workers and sched._fits(task)
            counts["ready"] += ready
        elif task.status in (Status.RUNNING, Status.BATCH_RUNNING):
            counts["running"] += 1
            counts["running_elsewhere"] += task.worker_running != worker
        elif task.status == Status.FAILED:
            counts["waiting_for_retry"] += 1
    return counts


def test_task_list_sorts_pages_and_counts_families():
    sched = Scheduler()
    for i in range(30):
        sched.add_tasks("w", [spec(f"t{i:02d}", "A" if i % 3 else "B", priority=i % 5)], i)
    sched.add_tasks("w", [spec("t05", "A", status="DONE")], 100)
    newest = views.task_list(sched, views.TaskQuery(limit=3))
    assert ids(newest) == ["t05", "t29", "t28"]  # default: most recently updated first
    page = views.task_list(
        sched, views.TaskQuery(status="PENDING", sort="task_id", limit=5, offset=5)
    )
    assert ids(page) == ["t06", "t07", "t08", "t09", "t10"]
    assert page["total"] == 29 and page["offset"] == 5 and page["limit"] == 5
    assert page["families"] == [{"family": "A", "count": 19}, {"family": "B", "count": 10}]
    by_priority = views.task_list(sched, views.TaskQuery(family="B", sort="-priority", limit=2))
    assert [t["priority"] for t in by_priority["tasks"]] == [4, 4]
    assert by_priority["total"] == 10
    found = views.task_list(sched, views.TaskQuery(search="T2", sort="-task_id"))
    assert ids(found) == [f"t{i}" for i in range(29, 19, -1)]  # case-insensitive


def test_service_rejects_unknown_sort_and_status():
    service = Service(Scheduler(), MemoryStore(), lambda: 1.0)
    with pytest.raises(BadRequest, match="unknown sort 'colour'"):
        service.call("task_list", {"sort": "colour"})
    with pytest.raises(BadRequest, match="unknown status 'LATE'"):
        service.call("task_list", {"status": "LATE"})


def test_upstream_failed_follows_pending_dependents_only():
    sched = Scheduler()
    sched.add_tasks("w", [spec("root"), spec("mid", deps=["root"]), spec("top", deps=["mid"])], 0)
    sched.add_tasks("w", [spec("other", deps=["ok"]), spec("ok")], 0)
    assert views.upstream_failed(sched) == set()
    work = sched.get_work("w", 1)
    assert work is not None
    sched.add_tasks("w", [spec(work.task_id, status="FAILED", error="boom")], 2)
    failed = work.task_id
    expected = {"mid", "top"} if failed == "root" else {"other"}
    assert views.upstream_failed(sched) == expected
    page = views.task_list(sched, views.TaskQuery(status=views.UPSTREAM_FAILED))
    assert set(ids(page)) == expected
    sched.forgive_failures(failed, 3)
    assert views.upstream_failed(sched) == set()  # the cache follows the change


def test_overview_counts_failures_and_timeline():
    service = Service(Scheduler(), MemoryStore(), lambda: 3600.0)
    core = service.core
    tasks = [{"task_id": f"t{i}", "family": "F"} for i in range(5)]
    tasks.append({"task_id": "late", "family": "G", "deps": ["t0"]})
    service.call("add_tasks", {"worker": "w", "tasks": tasks})
    error = "Traceback (most recent call last):\n  File x\nValueError: bad <input>\n"
    core.add_tasks("w", [spec("t0", status="FAILED", error=error)], 3500.0)
    core.add_tasks("w", [spec("t1", status="DONE")], 3590.0)
    core.add_tasks("w", [spec("t2", status="DONE")], 3599.0)
    overview = service.call("overview", {})
    assert overview["counts"]["FAILED"] == 1 and overview["counts"]["DONE"] == 2
    assert overview["counts"]["PENDING"] == 3 and overview["counts"]["UPSTREAM_FAILED"] == 1
    assert overview["total"] == 6
    assert overview["recent_failures"][0]["error_line"] == "ValueError: bad <input>"
    assert overview["workers"] == {"live": 1, "total": 1}
    timeline = overview["timeline"]
    assert len(timeline["done"]) == 60 and sum(timeline["done"]) == 2
    # one bucket per minute, the last one holding `now` (minute 60): both DONE in minute 59
    assert timeline["done"][-2:] == [2, 0] and timeline["failed"][-3:] == [1, 0, 0]
    assert timeline["start"] == 3600 - 59 * 60


@pytest.mark.parametrize("store_kind", ["memory", "sqlite"])
def test_log_tail_is_kept_by_the_store_and_shown_in_task_detail(tmp_path, store_kind):
    store = MemoryStore() if store_kind == "memory" else SqliteStore(str(tmp_path / "s.db"))
    if store_kind == "sqlite":
        store.open()
    service = Service(Scheduler(), store, lambda: 1.0)
    service.call("add_tasks", {"worker": "w", "tasks": [{"task_id": "a"}]})
    assert service.call("task_detail", {"task_id": "a"})["log"] is None
    long_log = "x" * 100_000 + "last line\n"
    report = {"task_id": "a", "status": "FAILED", "error": "boom", "log_tail": long_log}
    service.call("get_work", {"worker": "w", "reports": [report]})
    log = service.call("task_detail", {"task_id": "a"})["log"]
    assert log.endswith("last line\n") and len(log) == 64 * 1024
    if store_kind == "sqlite":
        store.close()
        reopened = SqliteStore(str(tmp_path / "s.db"))
        reopened.open()
        assert reopened.log("a") == log  # durable across a restart
        reopened.close()


@pytest.mark.parametrize(
    "sort", ["updated", "-updated", "family", "-priority", "task_id", "-task_id", "status"]
)
def test_first_pages_and_deep_pages_agree_with_one_full_sort(sort):
    """Early pages come from a heap, later ones from a full sort: one order either way."""
    rng = random.Random(sort)
    sched = Scheduler()
    for i in range(400):
        task = spec(f"t{rng.randrange(10**6):06d}x{i}", f"F{rng.randrange(3)}", priority=i % 4)
        sched.add_tasks("w", [task], float(rng.randrange(5)))  # many ties on updated
    field, descending = sort.removeprefix("-"), sort.startswith("-")
    records = sorted(sched.tasks.values(), key=lambda t: t.task_id, reverse=descending)
    records.sort(key=lambda t: getattr(t, field), reverse=descending)
    expected = [t.task_id for t in records]
    got = []
    for offset in range(0, 400, 20):
        got += ids(views.task_list(sched, views.TaskQuery(sort=sort, limit=20, offset=offset)))
    assert got == expected


def test_a_costly_derived_answer_is_reused_for_ten_times_its_cost_despite_changes():
    ticks = iter(range(1000))

    def clock() -> float:  # 1 s per look
        return float(next(ticks))

    sched = Scheduler()
    sched.add_tasks("w", [spec("a"), spec("b", deps=["a"])], 0)
    sched.add_tasks("w", [spec("a", status="FAILED")], 1)
    assert views.upstream_failed(sched, clock) == {"b"}  # took "1 s": reused for up to 10 s
    sched.forgive_failures("a", 2)
    assert views.upstream_failed(sched, clock) == {"b"}  # stale on purpose
    for _ in range(8):
        views.upstream_failed(sched, clock)  # each look is one more second
    assert views.upstream_failed(sched, clock) == set()  # 10 s on: computed again


def test_deep_pages_follow_changes_when_sorting_is_cheap():
    sched = Scheduler()
    sched.add_tasks("w", [spec(f"t{i:03d}") for i in range(100)], 0)
    deep = views.TaskQuery(sort="task_id", limit=10, offset=90)
    assert ids(views.task_list(sched, deep))[-1] == "t099"
    sched.add_tasks("w", [spec("t100")], 1)
    assert ids(views.task_list(sched, deep)) == [f"t{i:03d}" for i in range(90, 100)]
    last = views.TaskQuery(sort="task_id", limit=10, offset=100)
    assert ids(views.task_list(sched, last)) == ["t100"]  # a new query: sorted afresh
    done = views.TaskQuery(status="DONE", sort="task_id", limit=10, offset=0)
    assert views.task_list(sched, done)["tasks"] == []
