"""What a task's run reports through the worker: on_success() text, and the check before run()."""

import pytest

import pipes
from pipes.scheduler.local import LocalScheduler
from pipes.worker.runner import RunnerOptions
from pipes.worker.worker import Worker, WorkerOptions

pytestmark = pytest.mark.usefixtures("fresh_config")  # an empty config, in tmp_path


def run_worker(tasks, alone, workers=1):
    """Run tasks with the in-process scheduler; returns (worker, scheduler)."""
    scheduler = LocalScheduler()
    options = WorkerOptions(runner=RunnerOptions(workers=workers), alone=alone)
    worker = Worker(scheduler, options)
    worker.add(tasks)
    worker.run()
    return worker, scheduler


@pytest.mark.parametrize("workers", [1, 2])
def test_worker_sets_status_message_from_on_success_when_task_succeeds(tmp_path, workers):
    class Loads(pipes.Task):
        def output(self):
            return pipes.LocalTarget(tmp_path / "loaded")

        def run(self):
            with self.output().open("w") as out:
                out.write("3")

        def on_success(self):
            return "loaded 3 rows"

    task = Loads()
    worker, scheduler = run_worker([task], alone=True, workers=workers)
    assert worker.ran[task.task_id].status == "DONE"
    assert worker.ran[task.task_id].error is None  # the text is a message, not an error
    detail = scheduler.call("task_detail", task_id=task.task_id)
    assert detail["status_message"] == "loaded 3 rows"
    assert detail["error"] is None


def make_pair(tmp_path):
    """First runs before Second and also writes Second's output."""
    runs = tmp_path / "runs.log"

    class Second(pipes.Task):
        def output(self):
            return pipes.LocalTarget(tmp_path / "second")

        def run(self):
            with runs.open("a") as log:
                log.write("Second\n")
            with self.output().open("w") as out:
                out.write("again")

    class First(pipes.Task):
        priority = 10

        def output(self):
            return pipes.LocalTarget(tmp_path / "first")

        def run(self):
            with runs.open("a") as log:
                log.write("First\n")
            for target in (self.output(), Second().output()):
                with target.open("w") as out:
                    out.write("by first")

    return First, Second, runs


def test_worker_skips_run_of_task_made_meanwhile_when_scheduler_is_shared(tmp_path):
    first, second, runs = make_pair(tmp_path)
    worker, _ = run_worker([first(), second()], alone=False)
    assert runs.read_text().split() == ["First"]
    assert worker.ran[second().task_id].status == "DONE"
    assert (tmp_path / "second").read_text() == "by first"


def test_worker_runs_task_without_asking_again_when_scheduler_serves_it_alone(tmp_path):
    first, second, runs = make_pair(tmp_path)
    worker, _ = run_worker([first(), second()], alone=True)
    assert runs.read_text().split() == ["First", "Second"]
    assert (tmp_path / "second").read_text() == "again"
