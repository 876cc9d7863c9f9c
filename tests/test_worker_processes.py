"""The worker's child processes: parallel runs, isolation, timeouts, crashes, logs and signals.

Every test here runs tasks in real child processes; run() reports back through files, since
it does not share memory with the test.
"""

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from pipesd_fixtures import wait_for

import pipes
from pipes import Event
from pipes.scheduler.local import LocalScheduler
from pipes.worker.execute import Execution
from pipes.worker.runner import Runner, RunnerOptions
from pipes.worker.worker import Worker, WorkerOptions

pytestmark = pytest.mark.usefixtures("fresh_config")  # an empty config, in tmp_path


def is_running(pid):
    """Whether a process with this pid exists and is not a zombie waiting to be reaped."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def gone(pid, timeout=5.0):
    """True once the process is gone (polling, since a killed process takes a moment to go)."""
    return wait_for(lambda: not is_running(pid), timeout, fail=False)


def write(target, text="ok"):
    with target.open("w") as f:
        f.write(text)


def pid_in(path):
    return int(Path(path).read_text())


# ----- parallelism and where run() executes --------------------------------------------------


def test_workers_two_run_sleep_tasks_overlapping_in_two_children_when_both_are_ready(tmp_path):
    class OverlapSleeper(pipes.Task):
        n = pipes.IntParameter()

        def output(self):
            return pipes.LocalTarget(tmp_path / f"sleep{self.n}")

        def run(self):
            (tmp_path / f"s{self.n}.pid").write_text(str(os.getpid()))
            (tmp_path / f"s{self.n}.start").write_text(repr(time.time()))
            # sleep until the peer has started (bounded), so a serial run shows no overlap
            wait_for(lambda: (tmp_path / f"s{1 - self.n}.start").exists(), timeout=3, fail=False)
            time.sleep(0.2)  # on purpose: both runs last a while, so a parallel run overlaps
            (tmp_path / f"s{self.n}.end").write_text(repr(time.time()))
            write(self.output())

    class OverlapBoth(pipes.WrapperTask):
        def requires(self):
            return [OverlapSleeper(0), OverlapSleeper(1)]

    assert pipes.build([OverlapBoth()], workers=2)
    s0, e0, s1, e1 = (
        float((tmp_path / f"s{n}.{edge}").read_text()) for n in (0, 1) for edge in ("start", "end")
    )
    assert s0 < e1 and s1 < e0
    pids = {pid_in(tmp_path / f"s{n}.pid") for n in (0, 1)}
    assert len(pids) == 2
    assert os.getpid() not in pids


@pytest.mark.parametrize(
    ("workers", "force", "in_child"),
    [(2, "false", True), (1, "true", True), (1, "false", False)],
    ids=["workers2", "force_multiprocessing", "one_worker_inline"],
)
def test_run_executes_in_child_process_when_workers_above_one_or_forced(
    tmp_path, cfg, workers, force, in_child
):
    cfg.set("worker", "force_multiprocessing", force)

    class WherePid(pipes.Task):
        def output(self):
            return pipes.LocalTarget(tmp_path / "where.pid")

        def run(self):
            write(self.output(), str(os.getpid()))

    assert pipes.build([WherePid()], workers=workers)
    ran_in = pid_in(tmp_path / "where.pid")
    assert (ran_in != os.getpid()) is in_child


# ----- timeouts ---------------------------------------------------------------------------------


def hanging_task_class(tmp_path, worker_timeout):
    """A task that starts a `sleep 1000` grandchild, records both pids, then sleeps forever."""

    class HangsForever(pipes.Task):
        def output(self):
            return pipes.LocalTarget(tmp_path / "never")

        def run(self):
            (tmp_path / "child.pid").write_text(str(os.getpid()))
            grandchild = subprocess.Popen(["sleep", "1000"])
            (tmp_path / "grandchild.pid").write_text(str(grandchild.pid))
            while True:
                time.sleep(0.05)

    HangsForever.worker_timeout = worker_timeout
    timeouts = []

    @HangsForever.event_handler(Event.TIMEOUT)
    def record(task, message):
        timeouts.append((os.getpid(), message))

    return HangsForever, timeouts


def assert_timed_out_and_killed(tmp_path, task_cls, timeouts, result):
    task = task_cls()
    assert not result
    assert result.failed == [task]
    assert result.exit_code == pipes.ExitCode.TASK_FAILED
    assert "timed out" in result.errors[task.task_id]
    child_pid = pid_in(tmp_path / "child.pid")
    grandchild_pid = pid_in(tmp_path / "grandchild.pid")
    assert child_pid != os.getpid()
    assert gone(child_pid), f"child {child_pid} still running"
    assert gone(grandchild_pid), f"grandchild {grandchild_pid} still running"
    # the handler ran in this (the worker's) process: a child could not append to this list
    assert len(timeouts) == 1
    assert timeouts[0][0] == os.getpid()
    assert "timed out" in timeouts[0][1]


def test_timeout_kills_task_and_its_grandchild_when_task_worker_timeout_passes(tmp_path):
    task_cls, timeouts = hanging_task_class(tmp_path, worker_timeout=1)
    result = pipes.build([task_cls()], workers=1)
    assert_timed_out_and_killed(tmp_path, task_cls, timeouts, result)


def test_timeout_kills_task_and_its_grandchild_when_worker_timeout_config_passes(tmp_path, cfg):
    cfg.set("worker", "timeout", "1")
    task_cls, timeouts = hanging_task_class(tmp_path, worker_timeout=None)
    result = pipes.build([task_cls()], workers=1)
    assert_timed_out_and_killed(tmp_path, task_cls, timeouts, result)


def test_timeout_is_retried_by_policy_until_task_is_disabled_when_retry_count_reached(tmp_path):
    class TimesOutEachTry(pipes.Task):
        worker_timeout = 0.5
        retry_count = 2
        retry_delay = 0

        def output(self):
            return pipes.LocalTarget(tmp_path / "never")

        def run(self):
            with (tmp_path / "attempts").open("a") as f:
                f.write("x")
            time.sleep(100)

    scheduler = LocalScheduler()
    worker = Worker(scheduler, WorkerOptions(wait_interval=0.01, keep_alive=True))
    worker.add([TimesOutEachTry()])
    worker.run()
    assert (tmp_path / "attempts").read_text() == "xx"
    [listed] = scheduler.task_list()["tasks"]
    assert listed["status"] == "DISABLED"
    assert listed["failures"] == 2
    assert "timed out" in listed["error"]


# ----- children that die ------------------------------------------------------------------------


def crash_run(tmp_path, crash):
    """A root needing a task that half-writes its output then calls crash(), and a fine task."""
    out_dir = tmp_path / "out"

    class HalfThenCrash(pipes.Task):
        def output(self):
            return pipes.LocalTarget(out_dir / "result.csv")

        def run(self):
            f = self.output().open("w")
            f.write("id,value\n1,")
            f.flush()
            crash()

    class Unaffected(pipes.Task):
        def output(self):
            return pipes.LocalTarget(tmp_path / "unaffected")

        def run(self):
            write(self.output())

    class CrashRoot(pipes.WrapperTask):
        def requires(self):
            return [HalfThenCrash(), Unaffected()]

    failures = []

    @HalfThenCrash.event_handler(Event.PROCESS_FAILURE)
    def record(task, message):
        failures.append((os.getpid(), message))

    result = pipes.build([CrashRoot()], workers=2)
    crashed = HalfThenCrash()
    assert not result
    assert result.exit_code == pipes.ExitCode.TASK_FAILED
    assert result.failed == [crashed]
    assert result.completed == [Unaffected()]
    assert result.upstream_failed == [CrashRoot()]
    assert (tmp_path / "unaffected").exists()
    assert not (out_dir / "result.csv").exists()
    assert not crashed.complete()
    return result.errors[crashed.task_id], failures


def test_child_exit_fails_task_with_exit_code_when_run_calls_os_exit(tmp_path):
    error, failures = crash_run(tmp_path, lambda: os._exit(3))
    assert "exit code 3" in error
    assert len(failures) == 1
    assert failures[0][0] == os.getpid()
    assert "exit code 3" in failures[0][1]


def test_child_crash_fails_task_with_sigsegv_when_run_segfaults(tmp_path):
    def segfault():
        import ctypes  # only the crashing child needs it
        import faulthandler

        faulthandler.disable()  # pytest's handler would dump the child's stack on the terminal
        ctypes.string_at(0)

    error, failures = crash_run(tmp_path, segfault)
    assert "SIGSEGV" in error
    assert len(failures) == 1
    assert "SIGSEGV" in failures[0][1]


# ----- per-task logs and child recycling ----------------------------------------------------------


def test_task_log_dir_receives_run_stdout_and_stderr_instead_of_worker_output(
    tmp_path, write_file, run_pipes
):
    write_file(
        "logmod.py",
        """
        import sys

        import pipes


        class Chatty(pipes.Task):
            def output(self):
                return pipes.LocalTarget("chatty.out")

            def run(self):
                print("MARK-STDOUT from run")
                sys.stderr.write("MARK-STDERR from run\\n")
                with self.output().open("w") as f:
                    f.write("ok")
        """,
    )
    write_file("pipes.cfg", "[worker]\ntask_log_dir = task-logs\n")
    proc = run_pipes("--module", "logmod", "Chatty", "--workers", "2")
    assert proc.returncode == 0, proc.stderr
    logs = list((tmp_path / "task-logs").iterdir())
    assert [p.name for p in logs] == [f"{p.stem}.log" for p in logs]
    [log] = logs
    assert log.stem.startswith("Chatty_")
    text = log.read_text()
    assert "MARK-STDOUT from run" in text
    assert "MARK-STDERR from run" in text
    assert "MARK-" not in proc.stdout
    assert "MARK-" not in proc.stderr


def test_children_are_recycled_when_max_tasks_per_child_is_reached(tmp_path, cfg):
    cfg.set("worker", "max_tasks_per_child", "2")

    class Recycled(pipes.Task):
        n = pipes.IntParameter()

        def output(self):
            return pipes.LocalTarget(tmp_path / f"pid{self.n}")

        def run(self):
            write(self.output(), str(os.getpid()))

    class RecycledAll(pipes.WrapperTask):
        def requires(self):
            return [Recycled(n) for n in range(10)]

    result = pipes.build([RecycledAll()], workers=2)
    assert result
    assert len(result.completed) == 11
    pids = [pid_in(tmp_path / f"pid{n}") for n in range(10)]
    assert os.getpid() not in pids
    assert max(pids.count(pid) for pid in pids) <= 2
    assert len(set(pids)) >= 5


# ----- signals ----------------------------------------------------------------------------------

SLOW_MODULE = """
    import os
    import time
    from pathlib import Path

    import pipes


    class Slow(pipes.Task):
        n = pipes.IntParameter()

        def output(self):
            return pipes.LocalTarget(f"out/slow{self.n}")

        def run(self):
            Path(f"started/{self.n}").write_text(str(os.getpid()))
            time.sleep(SECONDS)
            with self.output().open("w") as f:
                f.write("done")


    class Root(pipes.WrapperTask):
        def requires(self):
            return [Slow(n) for n in range(6)]
"""


def start_pipes(tmp_path, write_file, clean_env, seconds):
    """Start `python -m pipes --module slowmod Root --workers 2` in tmp_path."""
    write_file("slowmod.py", SLOW_MODULE.replace("SECONDS", str(seconds)))
    write_file("pipes.cfg", "[worker]\nwait_interval = 0.1\n")
    (tmp_path / "started").mkdir()
    return subprocess.Popen(
        [sys.executable, "-m", "pipes", "--module", "slowmod", "Root", "--workers", "2"],
        cwd=tmp_path,
        env=clean_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def started(tmp_path):
    return sorted(int(p.name) for p in (tmp_path / "started").iterdir())


def test_sigusr1_lets_running_tasks_finish_and_starts_no_new_ones(tmp_path, write_file, clean_env):
    proc = start_pipes(tmp_path, write_file, clean_env, seconds=1)
    try:
        assert wait_for(lambda: started(tmp_path), timeout=20)
        proc.send_signal(signal.SIGUSR1)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    ran = started(tmp_path)
    assert 1 <= len(ran) <= 2  # at most the two taken before the signal
    for n in ran:
        assert (tmp_path / "out" / f"slow{n}").read_text() == "done"
    assert len(list((tmp_path / "out").iterdir())) == len(ran)
    assert proc.returncode == pipes.ExitCode.NOT_RUN, stderr
    assert f"* {6 - len(ran) + 1} not run" in stdout  # the Slow tasks never started, and Root
    assert "Traceback" not in stderr


def test_sigterm_stops_running_children_and_exits_143_without_traceback(
    tmp_path, write_file, clean_env
):
    proc = start_pipes(tmp_path, write_file, clean_env, seconds=60)
    try:
        assert wait_for(lambda: len(started(tmp_path)) == 2, timeout=20)
        pids = [pid_in(tmp_path / "started" / str(n)) for n in started(tmp_path)]
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=10)  # promptly: the tasks would sleep 60 s
    finally:
        proc.kill()
    assert proc.returncode == pipes.ExitCode.TERMINATED, stderr
    assert "Traceback" not in stderr
    assert "pipes: terminated by SIGTERM" in stderr
    for pid in pids:
        assert gone(pid), f"task child {pid} still running after SIGTERM"
    assert not (tmp_path / "out").exists()


# ----- feedback from run() in a child -------------------------------------------------------------


def test_status_progress_and_tracking_url_from_child_run_are_visible_in_scheduler(tmp_path):
    class TalksFromChild(pipes.Task):
        def output(self):
            return pipes.LocalTarget(tmp_path / "talks.pid")

        def run(self):
            self.set_status_message("step 2 of 3")
            self.set_progress_percentage(66)
            self.set_tracking_url("http://jobs.example/42")
            write(self.output(), str(os.getpid()))

    scheduler = LocalScheduler()
    worker = Worker(scheduler, WorkerOptions(runner=RunnerOptions(workers=2)))
    worker.add([TalksFromChild()])
    worker.run()
    assert pid_in(tmp_path / "talks.pid") != os.getpid()
    [listed] = scheduler.task_list()["tasks"]
    assert listed["task_id"] == TalksFromChild().task_id
    assert listed["status"] == "DONE"
    assert listed["status_message"] == "step 2 of 3"
    assert listed["progress_percentage"] == 66
    assert listed["tracking_url"] == "http://jobs.example/42"


def test_dynamic_dependency_runs_and_feeds_its_output_back_when_run_is_in_a_child(tmp_path):
    class DynLeafInChild(pipes.Task):
        def output(self):
            return pipes.LocalTarget(tmp_path / "leaf")

        def run(self):
            write(self.output(), f"leaf from {os.getpid()}")

    class DynParentInChild(pipes.Task):
        def output(self):
            return pipes.LocalTarget(tmp_path / "parent")

        def run(self):
            leaf = yield DynLeafInChild()
            with leaf.open() as f:
                text = f.read()
            write(self.output(), f"{text}; parent from {os.getpid()}")

    result = pipes.build([DynParentInChild()], workers=2)
    assert result
    assert set(result.completed) == {DynParentInChild(), DynLeafInChild()}
    leaf_text, parent_text = (tmp_path / "parent").read_text().split("; ")
    assert leaf_text == (tmp_path / "leaf").read_text()
    pids = {int(leaf_text.rsplit(" ", 1)[1]), int(parent_text.rsplit(" ", 1)[1])}
    assert os.getpid() not in pids


def test_events_fire_start_success_processing_time_in_order_in_the_child(tmp_path):
    events_file = tmp_path / "events.log"

    class EventfulChild(pipes.Task):
        def output(self):
            return pipes.LocalTarget(tmp_path / "eventful")

        def run(self):
            time.sleep(0.05)  # on purpose: a processing time above zero
            write(self.output())

    def recorder(name):
        def record(task, *args):
            with events_file.open("a") as f:
                f.write(f"{name} {os.getpid()} {task.task_family} {args!r}\n")

        return record

    for name, event in [
        ("start", Event.START),
        ("success", Event.SUCCESS),
        ("time", Event.PROCESSING_TIME),
    ]:
        EventfulChild.event_handler(event)(recorder(name))

    assert pipes.build([EventfulChild()], workers=2)
    lines = [line.split(" ", 3) for line in events_file.read_text().splitlines()]
    assert [line[0] for line in lines] == ["start", "success", "time"]
    assert {line[2] for line in lines} == {"EventfulChild"}
    pids = {int(line[1]) for line in lines}
    assert len(pids) == 1 and os.getpid() not in pids
    seconds = float(lines[2][3].strip("(),"))
    assert seconds >= 0.05


# ----- several fast tasks per child: taking back what a child has not started --------------------


def run_in_children(runner, executions, timeout=30.0):
    """Submit executions and wait for all their outcomes: {task: outcome}."""
    for execution in executions:
        runner.submit(execution)
    outcomes = {}
    deadline = time.monotonic() + timeout
    while runner.busy():
        assert time.monotonic() < deadline, "children did not finish in time"
        outcomes.update((e.task, o) for e, o in runner.wait(0.1))
    return outcomes


def fast_family(tmp_path):
    """Tasks that finish at once, except that task n first waits for the file named in waits/n.

    Each run appends its pid to started/n; the output says whether the wait was released.
    """

    class Quick(pipes.Task):
        n = pipes.IntParameter()

        def output(self):
            return pipes.LocalTarget(tmp_path / "out" / f"q{self.n}")

        def run(self):
            with (tmp_path / "started" / str(self.n)).open("a") as f:
                f.write(f"{os.getpid()}\n")
            wait_file, released = tmp_path / "waits" / str(self.n), True
            if wait_file.exists():
                release = tmp_path / wait_file.read_text()
                released = wait_for(release.exists, timeout=15, fail=False)
            write(self.output(), "released" if released else "gave up")

    for name in ("out", "started", "waits"):
        (tmp_path / name).mkdir()
    return Quick


def learned_runner(task_cls):
    """A Runner with two children that has seen task_cls finish fast, so it sends it in batches."""
    runner = Runner(RunnerOptions(workers=2), on_field=lambda *args: None)
    outcomes = run_in_children(runner, [Execution(task_cls(n=-1))])
    assert [o.status for o in outcomes.values()] == ["DONE"]
    return runner


def test_idle_child_takes_tasks_queued_behind_a_long_one_when_family_is_fast(tmp_path):
    Quick = fast_family(tmp_path)
    (tmp_path / "waits" / "0").write_text("others-done")  # q0 waits for all the others
    runner = learned_runner(Quick)
    tasks = [Quick(n=n) for n in range(12)]
    for task in tasks:
        runner.submit(Execution(task))
    outcomes = {}
    deadline = time.monotonic() + 30
    while runner.busy():
        assert time.monotonic() < deadline
        outcomes.update((e.task, o) for e, o in runner.wait(0.05))
        if all((tmp_path / "out" / f"q{n}").exists() for n in range(1, 12)):
            (tmp_path / "others-done").touch()
    runner.stop()
    assert {t: o.status for t, o in outcomes.items()} == {t: "DONE" for t in tasks}
    # Half the tasks were sent behind q0; q0 saw them all finish, so another child ran them.
    assert (tmp_path / "out" / "q0").read_text() == "released"
    runs = {n: (tmp_path / "started" / str(n)).read_text().split() for n in range(12)}
    assert all(len(pids) == 1 for pids in runs.values())  # none ran twice


def test_finish_up_returns_tasks_children_hold_but_did_not_start_as_pending(tmp_path):
    Quick = fast_family(tmp_path)
    for n in range(10):
        (tmp_path / "waits" / str(n)).write_text("go")
    runner = learned_runner(Quick)
    tasks = [Quick(n=n) for n in range(10)]
    for task in tasks:
        runner.submit(Execution(task))
    outcomes = {}
    outcomes.update((e.task, o) for e, o in runner.wait(0.01))
    # the handshake: both children have claimed a task, and are inside its run(), waiting for "go"
    assert wait_for(lambda: len(runner.running()) == 2)
    assert wait_for(lambda: len(list((tmp_path / "started").iterdir())) == 3)  # n=-1 and 2 more
    runner.finish_up()
    (tmp_path / "go").write_text("go")
    while runner.busy():
        outcomes.update((e.task, o) for e, o in runner.wait(0.1))
    runner.stop()
    started = {int(p.name) for p in (tmp_path / "started").iterdir()} - {-1}
    assert len(started) == 2  # one in each child; the tasks waiting behind them never started
    assert {t.n for t, o in outcomes.items() if o.status == "DONE"} == started
    assert {t.n for t, o in outcomes.items() if o.status == "PENDING"} == set(range(10)) - started
    assert len(outcomes) == 10


def test_done_tasks_are_reported_while_a_long_task_after_them_runs_in_the_same_child(tmp_path):
    Quick = fast_family(tmp_path)
    (tmp_path / "waits" / "3").write_text("go")
    runner = learned_runner(Quick)
    tasks = [Quick(n=n) for n in range(6)]
    for task in tasks:
        runner.submit(Execution(task))
    outcomes, start = {}, time.monotonic()
    while len(outcomes) < 5:
        assert time.monotonic() - start < 5, f"only {sorted(t.n for t in outcomes)} reported"
        outcomes.update((e.task, o) for e, o in runner.wait(0.05))
    assert Quick(n=3) not in outcomes  # still waiting for "go"
    (tmp_path / "go").touch()
    while runner.busy():
        outcomes.update((e.task, o) for e, o in runner.wait(0.1))
    runner.stop()
    assert {t: o.status for t, o in outcomes.items()} == {t: "DONE" for t in tasks}
    assert (tmp_path / "out" / "q3").read_text() == "released"


def test_crash_in_a_batch_fails_only_the_task_that_was_running(tmp_path):
    class Batched(pipes.Task):
        n = pipes.IntParameter()

        def output(self):
            return pipes.LocalTarget(tmp_path / f"b{self.n}")

        def run(self):
            if self.n == 7:
                print("about to die", flush=True)
                os._exit(3)
            write(self.output())

    class BatchedAll(pipes.WrapperTask):
        def requires(self):
            return [Batched(n=n) for n in range(30)]

    result = pipes.build([BatchedAll()], workers=2)
    assert result.failed == [Batched(n=7)]
    assert set(result.completed) == {Batched(n=n) for n in range(30) if n != 7}
    assert "exit code 3" in result.errors[Batched(n=7).task_id]


def test_sigusr1_starts_none_of_the_fast_tasks_children_hold(tmp_path, write_file, clean_env):
    write_file(
        "fastmod.py",
        """
        import os
        import time
        from pathlib import Path

        import pipes


        class Fast(pipes.Task):
            n = pipes.IntParameter()

            def output(self):
                return pipes.LocalTarget(f"out/fast{self.n}")

            def run(self):
                Path(f"started/{self.n}").write_text(str(os.getpid()))
                if self.n >= 20:  # the first ones teach the worker that Fast is fast
                    deadline = time.monotonic() + 20
                    while not Path("go").exists() and time.monotonic() < deadline:
                        time.sleep(0.01)
                with self.output().open("w") as f:
                    f.write("done")


        class FastRoot(pipes.WrapperTask):
            def requires(self):
                return [Fast(n) for n in range(80)]
        """,
    )
    write_file("pipes.cfg", "[worker]\nwait_interval = 0.1\n")
    (tmp_path / "started").mkdir()
    log = tmp_path / "stderr.log"
    with log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pipes", "--module", "fastmod", "FastRoot", "--workers", "2"],
            cwd=tmp_path,
            env=clean_env,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    try:
        blocked = lambda: [n for n in started(tmp_path) if n >= 20]  # noqa: E731
        # the handshake: each child is inside a run() that waits for "go", so none can start
        # another task until then (a child runs one at a time, and both are busy: no stealing)
        assert wait_for(lambda: len(blocked()) == 2, timeout=20)
        before = started(tmp_path)
        proc.send_signal(signal.SIGUSR1)
        # the handshake: the worker logs this in its SIGUSR1 handler as it tells the children
        wait_for(
            lambda: "SIGUSR1: taking no new work" in log.read_text(),
            timeout=10,
            what="the worker to take SIGUSR1",
        )
        (tmp_path / "go").write_text("go")
        stdout, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    stderr = log.read_text()
    assert started(tmp_path) == before
    assert proc.returncode == pipes.ExitCode.NOT_RUN, stderr
    assert f"* {80 - len(before) + 1} not run" in stdout
    assert len(list((tmp_path / "out").iterdir())) == len(before)


# ----- each child-run task's log tail ---------------------------------------------------------


def run_worker(tasks, **runner_options):
    """Run tasks with the in-process scheduler and children; returns the Worker."""
    worker = Worker(LocalScheduler(), WorkerOptions(runner=RunnerOptions(**runner_options)))
    worker.add(tasks)
    worker.run()
    return worker


def test_log_tail_of_failed_child_task_holds_what_it_printed(tmp_path):
    class PrintsThenFails(pipes.Task):
        def output(self):
            return pipes.LocalTarget(tmp_path / "never")

        def run(self):
            for step in range(3):
                print(f"step {step} of the load")
            sys.stderr.write("giving up on row 17\n")
            subprocess.run(["sh", "-c", "echo from a subprocess"], check=True)
            raise ValueError("bad row 17")

    task = PrintsThenFails()
    outcome = run_worker([task], workers=2).ran[task.task_id]
    assert outcome.status == "FAILED"
    tail = outcome.log_tail
    assert tail.startswith("step 0 of the load\nstep 1 of the load\nstep 2 of the load\n")
    assert "giving up on row 17\n" in tail
    assert "from a subprocess\n" in tail


def test_log_tail_of_timed_out_task_holds_what_it_printed_before_the_kill(tmp_path):
    class PrintsThenHangs(pipes.Task):
        worker_timeout = 0.5

        def output(self):
            return pipes.LocalTarget(tmp_path / "never")

        def run(self):
            print("loading part 1", flush=True)
            time.sleep(100)

    task = PrintsThenHangs()
    outcome = run_worker([task], workers=2).ran[task.task_id]
    assert "timed out" in outcome.error
    assert outcome.log_tail == "loading part 1\n"


def test_log_tail_is_the_end_of_long_output_cut_at_a_line_start(tmp_path):
    class Chatty(pipes.Task):
        def output(self):
            return pipes.LocalTarget(tmp_path / "chatty")

        def run(self):
            for i in range(5000):
                print(f"line {i:05d} ééé")  # 16 bytes a line: cuts fall mid-line
            write(self.output())

    task = Chatty()
    outcome = run_worker([task], workers=2).ran[task.task_id]
    assert outcome.status == "DONE"
    lines = outcome.log_tail.splitlines()
    assert lines[-1] == "line 04999 ééé"
    assert lines[0].startswith("line ") and len(lines[0]) == len(lines[-1])
    assert len(outcome.log_tail.encode()) <= 16 * 1024


def test_quiet_child_task_has_no_log_tail(tmp_path):
    class Quiet(pipes.Task):
        def output(self):
            return pipes.LocalTarget(tmp_path / "quiet")

        def run(self):
            write(self.output())

    task = Quiet()
    assert run_worker([task], workers=2).ran[task.task_id].log_tail is None


def test_task_log_dir_keeps_the_file_and_the_tail_is_this_run_only(tmp_path):
    class Twice(pipes.Task):
        def output(self):
            return pipes.LocalTarget(tmp_path / "twice")

        def run(self):
            print(f"run in {os.getpid()}")
            write(self.output())

    task, logs = Twice(), tmp_path / "logs"
    first = run_worker([task], workers=2, log_dir=str(logs)).ran[task.task_id]
    (tmp_path / "twice").unlink()
    second = run_worker([task], workers=2, log_dir=str(logs)).ran[task.task_id]
    kept = (logs / f"{task.task_id}.log").read_text()
    assert kept == first.log_tail + second.log_tail
    assert first.log_tail != second.log_tail and second.log_tail.startswith("run in ")


def test_private_log_files_are_gone_after_the_run_without_task_log_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()

    class Noisy(pipes.Task):
        n = pipes.IntParameter()

        def output(self):
            return pipes.LocalTarget(tmp_path / f"noisy{self.n}")

        def run(self):
            print(f"noise {self.n}")
            if self.n == 3:
                os._exit(1)
            write(self.output())

    tasks = [Noisy(n=n) for n in range(6)]
    worker = run_worker(tasks, workers=2)
    assert worker.ran[Noisy(n=3).task_id].log_tail == "noise 3\n"
    assert worker.ran[Noisy(n=4).task_id].log_tail == "noise 4\n"
    assert list((tmp_path / "tmp").iterdir()) == []


def test_child_task_output_reaches_the_worker_stderr_without_task_log_dir(
    tmp_path, write_file, clean_env
):
    write_file(
        "talky.py",
        """
        import pipes

        class Talky(pipes.Task):
            n = pipes.IntParameter()

            def output(self):
                return pipes.LocalTarget(f"out/talky{self.n}")

            def run(self):
                print(f"talky {self.n} says hello")
                with self.output().open("w") as f:
                    f.write("ok")

        class All(pipes.WrapperTask):
            def requires(self):
                return [Talky(n=n) for n in range(4)]
        """,
    )
    proc = subprocess.run(
        [sys.executable, "-m", "pipes", "--module", "talky", "All", "--workers", "2"],
        cwd=tmp_path,
        env=clean_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    for n in range(4):
        assert f"talky {n} says hello\n" in proc.stderr


def test_children_and_their_processes_stop_when_the_worker_is_killed(
    tmp_path, write_file, clean_env
):
    write_file(
        "stuck.py",
        """
        import os, subprocess, pipes

        class Stuck(pipes.Task):
            n = pipes.IntParameter()

            def output(self):
                return pipes.LocalTarget(f"out/stuck{self.n}")

            def run(self):
                sleeper = subprocess.Popen(["sleep", "300"])
                with open(f"pids/{self.n}", "w") as f:
                    f.write(f"{os.getpid()} {sleeper.pid}")
                sleeper.wait()

        class All(pipes.WrapperTask):
            def requires(self):
                return [Stuck(n=n) for n in range(2)]
        """,
    )
    (tmp_path / "pids").mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipes", "--module", "stuck", "All", "--workers", "2"],
        cwd=tmp_path,
        env=clean_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert wait_for(lambda: len(list((tmp_path / "pids").iterdir())) == 2, timeout=30)
        assert wait_for(lambda: all(p.read_text() for p in (tmp_path / "pids").iterdir()))
        pids = [int(x) for p in (tmp_path / "pids").iterdir() for x in p.read_text().split()]
        proc.kill()  # SIGKILL: the worker gets no chance to clean up
        proc.wait(10)
        assert all(gone(pid) for pid in pids), "a child or its sleep outlived the worker"
    finally:
        proc.kill()


def test_task_log_files_get_no_terminal_escape_codes_when_the_worker_is_on_a_terminal(
    tmp_path, write_file, clean_env
):
    import pty

    write_file(
        "logs.py",
        """
        import logging, pipes

        class Logs(pipes.Task):
            def output(self):
                return pipes.LocalTarget("out/logs")

            def run(self):
                logging.getLogger("logs").warning("a line for the task log")
                with self.output().open("w") as f:
                    f.write("ok")
        """,
    )
    write_file("pipes.cfg", "[worker]\ntask_log_dir = tasklogs\n")
    controller, terminal = pty.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "pipes", "--module", "logs", "Logs", "--workers", "2"],
            cwd=tmp_path,
            env=clean_env,
            stdout=subprocess.PIPE,
            stderr=terminal,
            timeout=60,
        )
        on_terminal = os.read(controller, 65536)
    finally:
        os.close(terminal)
        os.close(controller)
    assert proc.returncode == 0
    assert b"\r\x1b[2K" in on_terminal  # the worker's own lines still clear the progress line
    (log,) = (tmp_path / "tasklogs").iterdir()
    text = log.read_text()
    assert "WARNING logs: a line for the task log" in text and "\x1b" not in text
