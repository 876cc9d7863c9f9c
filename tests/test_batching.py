"""Batch tasks: pending tasks of one family that differ only in batch parameters run as one."""

import pipes
from pipes.scheduler.core import Scheduler
from pipes.scheduler.model import Status, TaskSpec


def batch_spec(task_id, day, region="eu", **fields):
    return TaskSpec.from_dict(
        {
            "task_id": task_id,
            "family": "Load",
            "deps": [],
            "params": {"day": day, "region": region},
            "batch_params": ["day"],
            **fields,
        }
    )


def test_get_work_hands_siblings_out_as_one_batch():
    sched = Scheduler()
    sched.add_tasks("w", [batch_spec(f"t{d}", f"2024-01-0{d}") for d in (1, 2, 3)], 0)
    work = sched.get_work("w", 1.0)
    assert sorted(work.batch.task_ids) == ["t1", "t2", "t3"]
    assert sorted(work.batch.params["day"]) == ["2024-01-01", "2024-01-02", "2024-01-03"]
    assert {sched.tasks[t].status for t in ("t1", "t2", "t3")} == {Status.BATCH_RUNNING}
    assert sched.get_work("w", 1.0) is None


def test_batch_never_mixes_other_parameters_and_respects_max_size():
    sched = Scheduler()
    specs = [batch_spec(f"eu{d}", f"2024-01-0{d}", max_batch_size=2) for d in (1, 2, 3)]
    specs.append(batch_spec("us1", "2024-01-01", region="us", max_batch_size=2))
    sched.add_tasks("w", specs, 0)
    first = sched.get_work("w", 1.0).batch.task_ids
    assert len(first) == 2 and all(t.startswith("eu") for t in first)
    second = sched.get_work("w", 1.0)
    third = sched.get_work("w", 1.0)
    singles = {second.task_id, third.task_id}
    assert second.batch is None and third.batch is None
    assert singles == {"us1", ({"eu1", "eu2", "eu3"} - set(first)).pop()}


def test_batch_holds_resources_once_and_failure_fails_every_member():
    sched = Scheduler(resources={"db": 1})
    sched.add_tasks(
        "w", [batch_spec(f"t{d}", f"2024-01-0{d}", resources={"db": 1}) for d in (1, 2)], 0
    )
    work = sched.get_work("w", 1.0)
    assert sched.resources_used() == {"db": 1}
    failed = [
        TaskSpec.from_dict({"task_id": t, "status": "FAILED", "error": "x"})
        for t in work.batch.task_ids
    ]
    sched.add_tasks("w", failed, 2.0)
    assert {sched.tasks[t].status for t in ("t1", "t2")} == {Status.FAILED}
    assert sched.resources_used() == {}


def test_lost_batch_reply_is_handed_out_again_whole():
    sched = Scheduler()
    sched.add_tasks("w", [batch_spec(f"t{d}", f"2024-01-0{d}") for d in (1, 2)], 0)
    first = sched.get_work("w", 1.0)
    again = sched.get_work("w", 2.0, running=[])
    assert sorted(again.batch.task_ids) == sorted(first.batch.task_ids)


def test_build_runs_batchable_tasks_once_with_merged_parameter(tmp_path):
    runs = tmp_path / "runs.log"

    class Export(pipes.Task):
        items = pipes.Parameter(batch_method=",".join)

        def output(self):
            return [pipes.LocalTarget(tmp_path / f"{item}.txt") for item in self.items.split(",")]

        def run(self):
            with runs.open("a") as log:
                log.write(self.items + "\n")
            for target in self.output():
                with target.open("w") as out:
                    out.write("ok")

    class ExportAll(pipes.WrapperTask):
        def requires(self):
            return [Export(items=name) for name in ("a", "b", "c")]

    result = pipes.build([ExportAll()])
    assert result, result.summary_text()
    lines = runs.read_text().splitlines()
    assert len(lines) == 1 and sorted(lines[0].split(",")) == ["a", "b", "c"]
    assert all((tmp_path / f"{n}.txt").exists() for n in "abc")
    assert len(result.completed) == 4
