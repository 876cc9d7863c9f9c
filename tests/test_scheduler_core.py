"""The scheduler core as a state machine: driven directly with explicit times, no I/O."""

from dataclasses import asdict

import pytest

from pipes.exceptions import BadRequest
from pipes.scheduler import views
from pipes.scheduler.core import Scheduler
from pipes.scheduler.model import Policy, Refused, Status, TaskSpec


def spec(task_id, deps=(), **fields):
    return TaskSpec.from_dict({"task_id": task_id, "family": "F", "deps": list(deps), **fields})


def finish(sched, worker, task_id, status="DONE", now=1.0, **fields):
    sched.add_tasks(worker, [spec(task_id, status=status, **fields)], now)


def drain(sched, worker, now=1.0):
    """Run everything the worker can get, in order; returns the ids."""
    order = []
    while (work := sched.get_work(worker, now)) is not None:
        order.append(work.task_id)
        finish(sched, worker, work.task_id, now=now)
    return order


def test_get_work_hands_shared_task_to_one_worker_when_two_add_it():
    sched = Scheduler()
    sched.add_tasks("w1", [spec("a")], 0.0)
    sched.add_tasks("w2", [spec("a")], 0.0)
    assert sched.get_work("w1", 1.0).task_id == "a"
    assert sched.get_work("w2", 1.0) is None
    assert sched.tasks["a"].status == Status.RUNNING


def test_get_work_skips_task_whose_dependency_is_not_done():
    sched = Scheduler()
    sched.add_tasks("w", [spec("b", deps=["a"]), spec("a")], 0.0)
    assert drain(sched, "w") == ["a", "b"]


def test_get_work_gives_nothing_when_dependency_failed():
    sched = Scheduler()
    sched.add_tasks("w", [spec("b", deps=["a"]), spec("a")], 0.0)
    assert sched.get_work("w", 1.0).task_id == "a"
    finish(sched, "w", "a", status="FAILED", error="boom")
    assert sched.get_work("w", 2.0) is None
    assert sched.tasks["a"].error == "boom"
    assert asdict(sched.outlook("w", 2.0)) == {
        "pending": 1,
        "ready": 0,
        "running": 0,
        "running_elsewhere": 0,
        "waiting_for_retry": 1,
    }


def test_get_work_never_gives_task_to_worker_that_did_not_add_it():
    sched = Scheduler()
    sched.add_tasks("w1", [spec("a")], 0.0)
    sched.add_worker("w2", {}, 0.0)
    assert sched.get_work("w2", 1.0) is None
    sched.add_worker("helper", {"assistant": True}, 0.0)
    assert sched.get_work("helper", 1.0).task_id == "a"


def test_get_work_never_gives_external_task():
    sched = Scheduler()
    sched.add_tasks("w", [spec("b", deps=["ext"]), spec("ext", runnable=False)], 0.0)
    assert sched.get_work("w", 1.0) is None
    finish(sched, "other", "ext")  # the data lands and someone reports it
    assert sched.get_work("w", 2.0).task_id == "b"


def test_get_work_orders_by_priority_then_insertion():
    sched = Scheduler()
    sched.add_tasks(
        "w", [spec("low"), spec("high", priority=10), spec("low2"), spec("mid", priority=5)], 0
    )
    assert drain(sched, "w") == ["high", "mid", "low", "low2"]


def test_priority_of_dependent_lifts_its_dependencies():
    sched = Scheduler()
    sched.add_tasks(
        "w", [spec("other", priority=5), spec("dep"), spec("urgent", deps=["dep"], priority=9)], 0
    )
    assert drain(sched, "w") == ["dep", "urgent", "other"]
    assert sched.tasks["dep"].priority == 9


def test_resources_cap_concurrent_tasks():
    sched = Scheduler(resources={"db": 1})
    sched.add_tasks("w", [spec(i, resources={"db": 1}) for i in "abc"] + [spec("free")], 0)
    first = sched.get_work("w", 1.0).task_id
    assert sched.get_work("w", 1.0).task_id == "free"
    assert sched.get_work("w", 1.0) is None  # the others wait for db
    finish(sched, "w", first)
    assert sched.get_work("w", 2.0).task_id in {"a", "b", "c"} - {first}


def test_resource_missing_from_config_counts_as_one():
    sched = Scheduler()
    sched.add_tasks("w", [spec("a", resources={"gpu": 1}), spec("b", resources={"gpu": 1})], 0)
    assert sched.get_work("w", 1.0) is not None
    assert sched.get_work("w", 1.0) is None


def test_failed_task_returns_to_pending_after_retry_delay():
    sched = Scheduler(Policy(retry_delay=10))
    sched.add_tasks("w", [spec("a")], 0)
    sched.get_work("w", 1.0)
    finish(sched, "w", "a", status="FAILED", now=1.0)
    assert sched.get_work("w", 5.0) is None
    work = sched.get_work("w", 11.0)
    assert work.task_id == "a" and len(work.task.failures) == 1


def test_task_is_disabled_after_retry_count_failures_in_window():
    sched = Scheduler(Policy(retry_delay=0, disable_window=100, disable_persist=1000))
    sched.add_tasks("w", [spec("a", retry_count=2)], 0)
    for now in (1.0, 2.0):
        assert sched.get_work("w", now).task_id == "a"
        finish(sched, "w", "a", status="FAILED", now=now)
    assert sched.tasks["a"].status == Status.DISABLED
    assert sched.get_work("w", 500.0) is None
    assert sched.get_work("w", 1003.0).task_id == "a"


def test_done_task_reported_pending_again_blocks_dependents():
    sched = Scheduler()
    sched.add_tasks("w", [spec("a", status="DONE"), spec("b", deps=["a"])], 0)
    sched.add_tasks("w2", [spec("a")], 0.5)  # w2 finds a's output gone
    assert sched.tasks["a"].status == Status.PENDING
    assert sched.get_work("w", 1.0) is None  # b waits for a again
    assert sched.get_work("w2", 1.0).task_id == "a"
    finish(sched, "w2", "a", now=2.0)
    assert sched.get_work("w", 3.0).task_id == "b"


def test_running_task_with_new_deps_waits_for_them():
    sched = Scheduler()
    sched.add_tasks("w", [spec("a")], 0)
    assert sched.get_work("w", 1.0).task_id == "a"
    sched.add_tasks("w", [spec("dyn")], 1.5)
    sched.add_tasks("w", [TaskSpec.from_dict({"task_id": "a", "new_deps": ["dyn"]})], 1.5)
    assert sched.tasks["a"].status == Status.PENDING
    assert drain(sched, "w", 2.0) == ["dyn", "a"]


def test_status_changes_are_recorded_as_events():
    sched = Scheduler()
    sched.add_tasks("w", [spec("a")], 0)
    sched.get_work("w", 1.0)
    finish(sched, "w", "a", now=2.0)
    events = [(e.task_id, e.status, e.time) for e in sched.take_changes().events]
    assert events == [("a", Status.RUNNING, 1.0), ("a", Status.DONE, 2.0)]
    assert sched.take_changes().events == []


def test_set_task_field_shows_in_task_list():
    sched = Scheduler()
    sched.add_tasks("w", [spec("a"), spec("b")], 0)
    sched.set_task_field("a", "status_message", "half way", 1.0)
    listed = views.task_list(sched, views.TaskQuery(search="a"))
    assert listed["total"] == 1 and listed["tasks"][0]["status_message"] == "half way"
    with pytest.raises(Refused, match="cannot set task field 'priority'"):
        sched.set_task_field("a", "priority", 3, 1.0)
    with pytest.raises(Refused, match="unknown task id 'zzz'"):
        sched.set_task_field("zzz", "status_message", "x", 1.0)


def test_task_list_filters_and_paginates():
    sched = Scheduler()
    sched.add_tasks("w", [spec(f"t{i}") for i in range(10)] + [spec("d", status="DONE")], 0)
    query = views.TaskQuery(status="PENDING", sort="task_id", limit=3, offset=3)
    page = views.task_list(sched, query)
    assert page["total"] == 10
    assert [t["task_id"] for t in page["tasks"]] == ["t3", "t4", "t5"]
    assert views.task_list(sched, views.TaskQuery(status="DONE"))["total"] == 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "must be a JSON object"),
        ({}, "'task_id' must be a non-empty string"),
        ({"task_id": 3}, "'task_id' must be a non-empty string"),
        ({"task_id": "a", "status": "RUNNING"}, "cannot report status RUNNING"),
        ({"task_id": "a", "status": "NOPE"}, "unknown status 'NOPE'"),
        ({"task_id": "a", "deps": "b"}, "'deps' has the wrong type"),
        ({"task_id": "a", "deps": [1]}, "'deps' must be a list of task ids"),
        ({"task_id": "a", "params": {"x": 1}}, "'params' must map strings to str"),
        ({"task_id": "a", "priority": "high"}, "'priority' has the wrong type"),
        ({"task_id": "a", "colour": "red"}, "unknown task field 'colour'"),
    ],
)
def test_task_spec_rejects_malformed_task_with_clear_message(body, message):
    with pytest.raises(Refused, match=message):
        TaskSpec.from_dict(body)


def test_empty_worker_id_is_rejected_before_state_changes():
    sched = Scheduler()
    with pytest.raises(Refused, match="worker id"):
        sched.add_tasks("", [spec("a")], 0)
    assert sched.tasks == {}


def test_get_work_hands_in_reports_and_takes_several_tasks_in_one_call():
    from pipes.scheduler.memory_store import MemoryStore
    from pipes.scheduler.service import Service

    service = Service(Scheduler(), MemoryStore(), lambda: 1.0)
    tasks = [{"task_id": f"t{i}", "priority": 5 if i < 3 else 1} for i in range(5)]
    tasks.append({"task_id": "after", "deps": ["t0"], "priority": 9})
    service.call("add_tasks", {"worker": "w", "tasks": tasks})
    first = service.call("get_work", {"worker": "w", "running": [], "max_tasks": 10})
    assert [t["task_id"] for t in first["tasks"]] == ["t0"]  # lifted to 9 by "after"
    done_t0 = [{"task_id": "t0", "status": "DONE"}]
    body = {"worker": "w", "running": [], "max_tasks": 10, "reports": done_t0}
    second = service.call("get_work", body)
    assert [t["task_id"] for t in second["tasks"]] == ["after"]
    assert service.core.tasks["t0"].status == Status.DONE
    third = service.call("get_work", {"worker": "w", "running": ["after"], "max_tasks": 10})
    assert [t["task_id"] for t in third["tasks"]] == ["t1", "t2"]  # same priority only
    with pytest.raises(BadRequest, match="max_tasks"):
        service.call("get_work", {"worker": "w", "max_tasks": 0})


def test_tasks_of_the_same_workers_share_one_stakeholder_set():
    sched = Scheduler(Policy(worker_disconnect_delay=10))
    sched.add_tasks("w1", [spec("a"), spec("b")], 0)
    sched.add_tasks("w2", [spec("a"), spec("b")], 0)
    a, b = sched.tasks["a"], sched.tasks["b"]
    assert a.stakeholders == {"w1", "w2"} and a.stakeholders is b.stakeholders
    assert a.workers is b.workers
    sched.ping("w2", 20)
    sched.prune(20)  # w1 is gone
    assert a.stakeholders == {"w2"} and a.stakeholders is b.stakeholders
