"""pipes.build end to end with the in-process scheduler: outcomes, failures, workers."""

import sys
import time

import pytest
from pipesd_fixtures import wait_for

import pipes
from pipes.exceptions import UsageError
from pipes.scheduler.local import LocalScheduler
from pipes.target import TEMP_MARKER
from pipes.worker.worker import Worker, WorkerOptions

pytestmark = pytest.mark.usefixtures("fresh_config")  # an empty config, in tmp_path


def write(target, text="ok"):
    with target.open("w") as f:
        f.write(text)


def interval(directory, name):
    start = float((directory / f"{name}.start").read_text())
    end = float((directory / f"{name}.end").read_text())
    return start, end


def make_chain(tmp_path):
    """Leaf -> Middle -> Top, each writing a file and counting its runs."""

    class Counted(pipes.Task):
        def output(self):
            return pipes.LocalTarget(tmp_path / f"{self.task_family}.out")

        def run(self):
            with (tmp_path / "runs.log").open("a") as log:
                log.write(self.task_family + "\n")
            write(self.output())

    class ChainLeaf(Counted):
        pass

    class ChainMiddle(Counted):
        def requires(self):
            return ChainLeaf()

    class ChainTop(Counted):
        def requires(self):
            return ChainMiddle()

    return ChainLeaf, ChainMiddle, ChainTop


# ----- results -----------------------------------------------------------------------------------


def test_build_result_is_truthy_and_lists_completed_tasks_when_all_succeed(tmp_path):
    leaf, middle, top = make_chain(tmp_path)
    result = pipes.build([top()])
    assert result
    assert result.status == "SUCCESS"
    assert result.exit_code == pipes.ExitCode.OK
    assert result.scheduling_succeeded
    assert set(result.completed) == {leaf(), middle(), top()}
    assert result.already_done == []
    assert result.failed == []
    assert (tmp_path / "runs.log").read_text().split() == ["ChainLeaf", "ChainMiddle", "ChainTop"]
    assert "SUCCESS" in result.summary_text()


def test_build_does_nothing_when_run_again_after_success(tmp_path):
    _, _, top = make_chain(tmp_path)
    assert pipes.build([top()])
    again = pipes.build([top()])
    assert again
    assert again.already_done == [top()]
    assert again.completed == []
    assert len((tmp_path / "runs.log").read_text().split()) == 3  # nothing ran twice


def test_build_runs_only_missing_part_when_some_outputs_exist(tmp_path):
    leaf, middle, top = make_chain(tmp_path)
    write(middle().output())
    result = pipes.build([top()])
    assert result
    assert result.completed == [top()]
    assert result.already_done == [middle()]
    assert leaf().task_id not in result.outcomes  # a complete task's requirements are not walked


def test_build_raises_usage_error_when_given_non_task_or_zero_workers(tmp_path):
    _, _, top = make_chain(tmp_path)
    with pytest.raises(UsageError, match="takes Task instances"):
        pipes.build([top, "x"])
    with pytest.raises(UsageError, match="at least 1"):
        pipes.build([top()], workers=0)


def test_build_reads_worker_count_from_config_when_not_given(tmp_path, cfg):
    cfg.set("core", "workers", "2")

    class CfgPair(pipes.Task):
        n = pipes.IntParameter()

        def output(self):
            return pipes.LocalTarget(tmp_path / f"cfg{self.n}")

        def run(self):
            (tmp_path / f"cfg{self.n}.start").write_text("")
            ok = wait_for((tmp_path / f"cfg{1 - self.n}.start").exists, timeout=5, fail=False)
            (tmp_path / f"cfg{self.n}.ok").write_text(str(ok))  # run() is in a child process
            write(self.output())

    class CfgBoth(pipes.WrapperTask):
        def requires(self):
            return [CfgPair(0), CfgPair(1)]

    assert pipes.build([CfgBoth()])
    assert [(tmp_path / f"cfg{n}.ok").read_text() for n in (0, 1)] == ["True", "True"]


# ----- failures ----------------------------------------------------------------------------------


def test_build_failure_in_one_branch_still_completes_the_other_branch(tmp_path):
    class BranchOk(pipes.Task):
        def output(self):
            return pipes.LocalTarget(tmp_path / "ok")

        def run(self):
            write(self.output())

    class BranchBad(pipes.Task):
        def output(self):
            return pipes.LocalTarget(tmp_path / "bad")

        def run(self):
            raise ValueError("disk on fire")

    class BranchAfterBad(pipes.Task):
        def requires(self):
            return BranchBad()

        def output(self):
            return pipes.LocalTarget(tmp_path / "after")

        def run(self):
            write(self.output())

    class BranchRoot(pipes.WrapperTask):
        def requires(self):
            return [BranchAfterBad(), BranchOk()]

    result = pipes.build([BranchRoot()])
    assert not result
    assert result.status == "FAILED"
    assert result.exit_code == pipes.ExitCode.TASK_FAILED
    assert result.completed == [BranchOk()]
    assert result.failed == [BranchBad()]
    assert set(result.upstream_failed) == {BranchAfterBad(), BranchRoot()}
    error = result.errors[BranchBad().task_id]
    assert "Traceback (most recent call last)" in error
    assert "ValueError: disk on fire" in error
    assert (tmp_path / "ok").exists()
    assert not (tmp_path / "after").exists()
    assert "FAILED (exit 3)" in result.summary_text()


def test_build_reports_on_failure_text_as_the_error_when_it_returns_one(tmp_path):
    seen = []

    class Explains(pipes.Task):
        def output(self):
            return pipes.LocalTarget(tmp_path / "explains")

        def run(self):
            raise KeyError("id")

        def on_failure(self, exception):
            seen.append(exception)
            return "the upstream feed was empty"

    result = pipes.build([Explains()])
    assert not result
    assert result.errors[Explains().task_id] == "the upstream feed was empty"
    assert len(seen) == 1 and isinstance(seen[0], KeyError)


def test_build_fails_task_when_run_returns_without_writing_output(tmp_path):
    class Forgetful(pipes.Task):
        def output(self):
            return pipes.LocalTarget(tmp_path / "never-written.txt")

        def run(self):
            pass

    result = pipes.build([Forgetful()])
    assert not result
    assert result.failed == [Forgetful()]
    error = result.errors[Forgetful().task_id]
    assert "returned but its outputs are missing" in error
    assert "never-written.txt" in error


def test_build_fails_only_the_task_when_run_calls_sys_exit(tmp_path):
    class Exits(pipes.Task):
        def output(self):
            return pipes.LocalTarget(tmp_path / "exits")

        def run(self):
            sys.exit(4)

    class AfterExit(pipes.Task):
        def output(self):
            return pipes.LocalTarget(tmp_path / "after-exit")

        def run(self):
            write(self.output())

    class ExitRoot(pipes.WrapperTask):
        def requires(self):
            return [Exits(), AfterExit()]

    result = pipes.build([ExitRoot()])  # would end the test process if SystemExit escaped
    assert not result
    assert result.failed == [Exits()]
    assert result.completed == [AfterExit()]
    assert "SystemExit: 4" in result.errors[Exits().task_id]


def test_build_leaves_no_output_or_temp_file_when_run_raises_mid_write(tmp_path):
    out_dir = tmp_path / "out"

    class HalfWriter(pipes.Task):
        def output(self):
            return pipes.LocalTarget(out_dir / "result.csv")

        def run(self):
            with self.output().open("w") as f:
                f.write("id,value\n1,")
                f.flush()
                assert any(TEMP_MARKER in p.name for p in out_dir.iterdir())
                raise RuntimeError("crashed halfway")

    result = pipes.build([HalfWriter()])
    assert not result
    assert "RuntimeError: crashed halfway" in result.errors[HalfWriter().task_id]
    assert list(out_dir.iterdir()) == []
    assert not HalfWriter().complete()
    assert not pipes.build([HalfWriter()])  # still incomplete, so it runs (and fails) again


# ----- scheduling errors and missing data ------------------------------------------------------


def test_build_marks_only_broken_tasks_when_requires_or_complete_raise(tmp_path):
    class Fine(pipes.Task):
        def output(self):
            return pipes.LocalTarget(tmp_path / "fine")

        def run(self):
            write(self.output())

    class RequiresRaises(pipes.Task):
        def requires(self):
            raise LookupError("no such partition")

    class CompleteRaises(pipes.Task):
        def complete(self):
            raise OSError("metastore down")

    class RequiresNonTask(pipes.Task):
        def requires(self):
            return [Fine(), "not a task"]

    class BrokenRoot(pipes.WrapperTask):
        def requires(self):
            return [RequiresRaises(), CompleteRaises(), RequiresNonTask(), Fine()]

    result = pipes.build([BrokenRoot()])
    assert not result
    assert not result.scheduling_succeeded
    assert result.status == "SCHEDULING_FAILED"
    assert result.exit_code == pipes.ExitCode.SCHEDULING_ERROR
    assert set(result.scheduling_errors) == {RequiresRaises(), CompleteRaises(), RequiresNonTask()}
    assert result.completed == [Fine()]
    assert result.upstream_failed == [BrokenRoot()]
    assert "LookupError: no such partition" in result.errors[RequiresRaises().task_id]
    assert "OSError: metastore down" in result.errors[CompleteRaises().task_id]
    assert "'not a task'" in result.errors[RequiresNonTask().task_id]
    assert "not a Task" in result.errors[RequiresNonTask().task_id]


def test_build_reports_missing_external_and_upstream_missing_dependents(tmp_path):
    class RawFeed(pipes.ExternalTask):
        def output(self):
            return pipes.LocalTarget(tmp_path / "feed.csv")

    class Cleaned(pipes.Task):
        def requires(self):
            return RawFeed()

        def output(self):
            return pipes.LocalTarget(tmp_path / "clean.csv")

        def run(self):
            write(self.output())

    result = pipes.build([Cleaned()])
    assert not result
    assert result.status == "MISSING_EXTERNAL"
    assert result.exit_code == pipes.ExitCode.MISSING_EXTERNAL
    assert result.missing_external == [RawFeed()]
    assert result.upstream_missing == [Cleaned()]
    assert "upstream data missing" in result.summary_text()
    assert not (tmp_path / "clean.csv").exists()

    (tmp_path / "feed.csv").write_text("a,b\n")
    again = pipes.build([Cleaned()])
    assert again
    assert again.already_done == [RawFeed()]
    assert again.completed == [Cleaned()]


def test_build_treats_externalized_task_as_missing_data_not_as_work(tmp_path):
    class Producer(pipes.Task):
        def output(self):
            return pipes.LocalTarget(tmp_path / "produced")

        def run(self):
            write(self.output())

    class Consumer(pipes.Task):
        def requires(self):
            return pipes.externalize(Producer())

        def output(self):
            return pipes.LocalTarget(tmp_path / "consumed")

        def run(self):
            write(self.output())

    result = pipes.build([Consumer()])
    assert result.missing_external == [Producer()]
    assert not (tmp_path / "produced").exists()
    assert pipes.build([Producer()])
    assert pipes.build([Consumer()]).completed == [Consumer()]


# ----- dynamic dependencies --------------------------------------------------------------------


def make_dynamic_child(tmp_path):
    class DynChild(pipes.Task):
        n = pipes.IntParameter()

        def output(self):
            return pipes.LocalTarget(tmp_path / f"child{self.n}")

        def run(self):
            write(self.output(), f"c{self.n}")

    return DynChild


def test_build_runs_yielded_tasks_and_sends_their_outputs_back(tmp_path):
    child = make_dynamic_child(tmp_path)

    class DynParent(pipes.Task):
        def output(self):
            return pipes.LocalTarget(tmp_path / "parent")

        def run(self):
            one = yield child(1)
            many = yield [child(2), child(3)]
            named = yield {"x": child(4)}
            texts = [one.open().read(), *(t.open().read() for t in many), named["x"].open().read()]
            write(self.output(), ",".join(texts))

    result = pipes.build([DynParent()])
    assert result
    assert (tmp_path / "parent").read_text() == "c1,c2,c3,c4"
    assert set(result.completed) == {DynParent(), child(1), child(2), child(3), child(4)}


def test_build_leaves_parent_not_run_when_yielded_task_fails(tmp_path):
    class DynFails(pipes.Task):
        def output(self):
            return pipes.LocalTarget(tmp_path / "dyn-fails")

        def run(self):
            raise ValueError("child broke")

    class DynWaits(pipes.Task):
        def output(self):
            return pipes.LocalTarget(tmp_path / "dyn-waits")

        def run(self):
            yield DynFails()
            write(self.output())

    result = pipes.build([DynWaits()])
    assert not result
    assert result.failed == [DynFails()]
    assert result.upstream_failed == [DynWaits()]
    assert result.exit_code == pipes.ExitCode.TASK_FAILED
    assert not (tmp_path / "dyn-waits").exists()


def test_build_does_not_suspend_parent_when_yielded_task_is_already_complete(tmp_path):
    child = make_dynamic_child(tmp_path)
    write(child(7).output(), "ready")

    class DynNoWait(pipes.Task):
        def output(self):
            return pipes.LocalTarget(tmp_path / "nowait")

        def run(self):
            target = yield child(7)
            write(self.output(), target.open().read())

    result = pipes.build([DynNoWait()])
    assert result
    assert (tmp_path / "nowait").read_text() == "ready"
    assert result.completed == [DynNoWait()]
    assert child(7).task_id not in result.outcomes  # never handed to the scheduler


def test_build_fails_parent_when_run_yields_something_that_is_not_a_task(tmp_path):
    class DynYieldsJunk(pipes.Task):
        def output(self):
            return pipes.LocalTarget(tmp_path / "junk")

        def run(self):
            yield "not a task"

    result = pipes.build([DynYieldsJunk()])
    assert result.failed == [DynYieldsJunk()]
    assert "not a Task" in result.errors[DynYieldsJunk().task_id]


# ----- resources, priority, workers, retries ------------------------------------------------------


def test_build_never_overlaps_tasks_sharing_a_resource_of_amount_one(tmp_path, cfg):
    cfg.set("resources", "db", "1")

    class UsesDb(pipes.Task):
        n = pipes.IntParameter()
        resources = {"db": 1}

        def output(self):
            return pipes.LocalTarget(tmp_path / f"db{self.n}")

        def run(self):
            (tmp_path / f"db{self.n}.start").write_text(repr(time.time()))
            time.sleep(0.15)  # on purpose: long enough that an overlap would show
            (tmp_path / f"db{self.n}.end").write_text(repr(time.time()))
            write(self.output())

    class DbBoth(pipes.WrapperTask):
        def requires(self):
            return [UsesDb(0), UsesDb(1)]

    assert pipes.build([DbBoth()], workers=2)
    (s0, e0), (s1, e1) = interval(tmp_path, "db0"), interval(tmp_path, "db1")
    assert e0 <= s1 or e1 <= s0


def test_build_overlaps_tasks_sharing_a_resource_when_config_allows_two(tmp_path, cfg):
    cfg.set("resources", "db", "2")

    class UsesDbTwice(pipes.Task):
        n = pipes.IntParameter()
        resources = {"db": 1}

        def output(self):
            return pipes.LocalTarget(tmp_path / f"db2-{self.n}")

        def run(self):
            (tmp_path / f"db2-{self.n}.start").write_text("")
            ok = wait_for((tmp_path / f"db2-{1 - self.n}.start").exists, timeout=5, fail=False)
            (tmp_path / f"db2-{self.n}.ok").write_text(str(ok))  # run() is in a child process
            write(self.output())

    class DbTwiceBoth(pipes.WrapperTask):
        def requires(self):
            return [UsesDbTwice(0), UsesDbTwice(1)]

    assert pipes.build([DbTwiceBoth()], workers=2)
    assert [(tmp_path / f"db2-{n}.ok").read_text() for n in (0, 1)] == ["True", "True"]


def test_build_runs_two_tasks_at_once_when_workers_is_two(tmp_path):
    class Sleeper(pipes.Task):
        n = pipes.IntParameter()

        def output(self):
            return pipes.LocalTarget(tmp_path / f"sleep{self.n}")

        def run(self):
            (tmp_path / f"s{self.n}.start").write_text(repr(time.time()))
            # returns as soon as the other task has started, so it never waits when parallel
            peer = tmp_path / f"s{1 - self.n}.start"
            peer_started = wait_for(peer.exists, timeout=5, fail=False)
            time.sleep(0.05)  # on purpose: both runs last a while, so a parallel run overlaps
            (tmp_path / f"s{self.n}.end").write_text(repr(time.time()))
            if peer_started:
                write(self.output())

    class SleepBoth(pipes.WrapperTask):
        def requires(self):
            return [Sleeper(0), Sleeper(1)]

    assert pipes.build([SleepBoth()], workers=2)
    (s0, e0), (s1, e1) = interval(tmp_path, "s0"), interval(tmp_path, "s1")
    assert s0 < e1 and s1 < e0


def test_build_runs_higher_priority_first_when_one_worker(tmp_path):
    class Ranked(pipes.Task):
        name = pipes.Parameter()

        def output(self):
            return pipes.LocalTarget(tmp_path / self.name)

        def run(self):
            with (tmp_path / "order.log").open("a") as log:
                log.write(self.name + "\n")
            write(self.output())

    class RankLow(Ranked):
        priority = 1

    class RankHigh(Ranked):
        priority = 100

    class RankMid(Ranked):
        priority = 50

    class RankAll(pipes.WrapperTask):
        def requires(self):
            return [RankLow(name="low"), RankHigh(name="high"), RankMid(name="mid"),
                    Ranked(name="none")]

    assert pipes.build([RankAll()], workers=1)
    assert (tmp_path / "order.log").read_text().split() == ["high", "mid", "low", "none"]


def test_build_runs_dependency_of_high_priority_task_before_lower_priority_work(tmp_path):
    class Logged(pipes.Task):
        def output(self):
            return pipes.LocalTarget(tmp_path / self.task_family)

        def run(self):
            with (tmp_path / "order.log").open("a") as log:
                log.write(self.task_family + "\n")
            write(self.output())

    class LiftedDep(Logged):
        priority = 0

    class UrgentParent(Logged):
        priority = 100

        def requires(self):
            return LiftedDep()

    class MiddlePriority(Logged):
        priority = 50

    assert pipes.build([MiddlePriority(), UrgentParent()], workers=1)
    order = (tmp_path / "order.log").read_text().split()
    assert order == ["LiftedDep", "UrgentParent", "MiddlePriority"]


def test_build_retries_failed_task_until_it_succeeds_when_retry_delay_is_zero(tmp_path, cfg):
    cfg.set("worker", "keep_alive", "true")
    cfg.set("worker", "wait_interval", "0.01")

    class Flaky(pipes.Task):
        retry_count = 5
        retry_delay = 0

        def output(self):
            return pipes.LocalTarget(tmp_path / "flaky")

        def run(self):
            attempts = tmp_path / "attempts"
            count = int(attempts.read_text()) + 1 if attempts.exists() else 1
            attempts.write_text(str(count))
            if count < 3:
                raise RuntimeError(f"attempt {count}")
            write(self.output())

    result = pipes.build([Flaky()])
    assert result
    assert (tmp_path / "attempts").read_text() == "3"
    assert result.completed == [Flaky()]


def test_build_stops_retrying_when_task_is_disabled_after_retry_count_failures(tmp_path, cfg):
    cfg.set("worker", "keep_alive", "true")
    cfg.set("worker", "wait_interval", "0.01")

    class AlwaysFails(pipes.Task):
        retry_count = 2
        retry_delay = 0

        def output(self):
            return pipes.LocalTarget(tmp_path / "never")

        def run(self):
            with (tmp_path / "fail-attempts").open("a") as f:
                f.write("x")
            raise RuntimeError("nope")

    scheduler = LocalScheduler()
    worker = Worker(scheduler, WorkerOptions(wait_interval=0.01, keep_alive=True))
    worker.add([AlwaysFails()])
    worker.run()
    assert (tmp_path / "fail-attempts").read_text() == "xx"
    [listed] = scheduler.task_list()["tasks"]
    assert listed["status"] == "DISABLED"
    assert listed["failures"] == 2
    assert "RuntimeError: nope" in listed["error"]


# ----- feedback to the scheduler -----------------------------------------------------------------


def test_status_message_and_progress_set_in_run_are_visible_in_scheduler(tmp_path):
    class Talks(pipes.Task):
        def output(self):
            return pipes.LocalTarget(tmp_path / "talks")

        def run(self):
            self.set_status_message("step 2 of 3")
            self.set_progress_percentage(66)
            self.set_tracking_url("http://jobs.example/42")
            write(self.output())

    scheduler = LocalScheduler()
    worker = Worker(scheduler)
    worker.add([Talks()])
    worker.run()
    [listed] = scheduler.task_list()["tasks"]
    assert listed["task_id"] == Talks().task_id
    assert listed["status"] == "DONE"
    assert listed["status_message"] == "step 2 of 3"
    assert listed["progress_percentage"] == 66
    assert listed["tracking_url"] == "http://jobs.example/42"


def test_walk_asks_bulk_complete_once_for_all_tasks_of_a_class(tmp_path):
    asked = []

    class Daily(pipes.Task):
        day = pipes.IntParameter()

        @classmethod
        def bulk_complete(cls, parameter_tuples):
            asked.append(sorted(parameter_tuples))
            return [d for d in parameter_tuples if d % 2 == 0]

        def output(self):
            return pipes.LocalTarget(tmp_path / f"day{self.day}")

        def run(self):
            write(self.output())

    class Month(pipes.WrapperTask):
        def requires(self):
            return [Daily(day=d) for d in range(6)]

    result = pipes.build([Month()])
    assert asked[0] == [0, 1, 2, 3, 4, 5]
    assert sorted(t.day for t in result.already_done if isinstance(t, Daily)) == [0, 2, 4]
    assert sorted(t.day for t in result.completed if isinstance(t, Daily)) == [1, 3, 5]
