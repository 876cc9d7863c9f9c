"""How often pipes calls a task's output(), requires() and complete(): no more than Luigi does.

Luigi 3.8.1 calls output() about 3 times per task on this DAG (scheduling, the dependents'
check at run time, and run() itself), requires() twice and complete() twice. A slow
output() or complete() (a remote listing, a database query) makes every extra call cost.
"""

import collections
import os

import pytest

import pipes

LUIGI_PER_TASK = {"output": 3, "requires": 2, "complete": 2}


pytestmark = pytest.mark.usefixtures("fresh_config")  # an empty config, in tmp_path


def _count(log, what, task):
    # O_APPEND: lines written by the worker and its children never interleave
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, f"{what} {task.task_id}\n".encode())
    finally:
        os.close(fd)


def make_dag(tmp_path, custom_complete):
    """An 11-task DAG: a top task needs 2 middles, each needing 4 leaves; every call is logged."""
    log = tmp_path / "calls.log"
    out = tmp_path / "out"
    out.mkdir()

    class Counted(pipes.Task):
        i = pipes.IntParameter(default=0)

        def output(self):
            _count(log, "output", self)
            return pipes.LocalTarget(out / f"{self.task_family}-{self.i}.txt")

        def run(self):
            with self.output().open("w") as f:
                f.write("x")

    class Leaf(Counted):
        def requires(self):
            _count(log, "requires", self)
            return []

    class Middle(Counted):
        def requires(self):
            _count(log, "requires", self)
            return [Leaf(i=4 * self.i + k) for k in range(4)]

    class Top(Counted):
        def requires(self):
            _count(log, "requires", self)
            return [Middle(i=k) for k in range(2)]

    if custom_complete:
        for cls in (Leaf, Middle, Top):

            def complete(self, _cls=cls):
                _count(log, "complete", self)
                return super(_cls, self).complete()

            cls.complete = complete
    return Top, log


def calls_per_task(log):
    """{method: the most calls any one task got}."""
    counts = collections.Counter(tuple(line.split()) for line in log.read_text().splitlines())
    most = collections.defaultdict(int)
    for (what, _), n in counts.items():
        most[what] = max(most[what], n)
    return dict(most)


@pytest.mark.parametrize("workers", [1, 2])
def test_build_calls_output_and_requires_no_more_than_luigi_when_complete_is_default(
    tmp_path, workers
):
    top, log = make_dag(tmp_path, custom_complete=False)
    assert pipes.build([top()], workers=workers)
    assert len(list((tmp_path / "out").iterdir())) == 11
    per_task = calls_per_task(log)
    assert per_task["output"] <= LUIGI_PER_TASK["output"], per_task
    assert per_task["requires"] <= LUIGI_PER_TASK["requires"], per_task


@pytest.mark.parametrize("workers", [1, 2])
def test_build_calls_complete_no_more_than_luigi_when_complete_is_custom(tmp_path, workers):
    top, log = make_dag(tmp_path, custom_complete=True)
    assert pipes.build([top()], workers=workers)
    assert len(list((tmp_path / "out").iterdir())) == 11
    per_task = calls_per_task(log)
    assert per_task["complete"] <= LUIGI_PER_TASK["complete"], per_task
    assert per_task["output"] <= LUIGI_PER_TASK["output"], per_task
    assert per_task["requires"] <= LUIGI_PER_TASK["requires"], per_task
