"""`pipes schedule` as a real foreground process starting real `pipes` runs.

The schedule files use cronsim's optional leading seconds field, so "every two seconds"
stands in for "every minute" and a test takes seconds, not minutes. Tasks that must overlap
wait for a `release` file the test writes: every wait is on a log line or a file.
"""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pipesd_fixtures import clean_environment, wait_for

from pipes.exit_codes import ExitCode

JOBS = '''
import os
import time

import pipes


def log(*words):
    with open("runs.log", "a") as out:
        out.write(" ".join(str(w) for w in words) + "\\n")


class Tick(pipes.Task):
    """Runs every time it is started: it is never complete."""

    def complete(self):
        return False

    def run(self):
        log("start", os.getpid())


class Hold(pipes.Task):
    """Keeps running until the test writes the file `release`."""

    def complete(self):
        return False

    def run(self):
        log("start", os.getpid())
        while not os.path.exists("release"):
            time.sleep(0.05)
        log("end", os.getpid())


class Boom(pipes.Task):
    def complete(self):
        return False

    def run(self):
        raise RuntimeError("boom")
'''


def job_table(name: str, cron: str, task: str, overlap: str = "skip") -> str:
    return f"""
[job.{name}]
cron = "{cron}"
module = "jobs"
task = "{task}"
overlap = "{overlap}"
args = ["--local-scheduler", "--log-level", "WARNING"]
"""


class ScheduleProcess:
    """A running `pipes schedule`; its log (and its runs' output) goes to schedule.err."""

    def __init__(self, proc: subprocess.Popen[bytes], err: Path) -> None:
        self.proc = proc
        self.err = err

    @property
    def log(self) -> str:
        return self.err.read_text(errors="replace")

    def count(self, text: str) -> int:
        return self.log.count(text)

    def wait_log(self, text: str, times: int = 1, timeout: float = 30.0) -> None:
        wait_for(lambda: self.count(text) >= times, timeout, f"{times} x {text!r} in\n{self.log}")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)


@pytest.fixture
def start_schedule(tmp_path: Path) -> Iterator[Callable[..., ScheduleProcess]]:
    """start(toml_text, *args) -> ScheduleProcess with cwd=tmp_path and jobs.py there."""
    (tmp_path / "jobs.py").write_text(JOBS)
    started: list[ScheduleProcess] = []

    def start(schedule: str, *args: str) -> ScheduleProcess:
        (tmp_path / "schedule.toml").write_text(schedule)
        err = tmp_path / "schedule.err"
        with err.open("wb") as stderr:
            proc = subprocess.Popen(
                [sys.executable, "-m", "pipes", "schedule", "schedule.toml", *args],
                cwd=tmp_path,
                env=clean_environment(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        started.append(ScheduleProcess(proc, err))
        return started[-1]

    yield start
    for schedule in started:
        if schedule.proc.poll() is None:
            schedule.proc.kill()
            schedule.proc.wait(10)


def run_lines(tmp_path: Path) -> list[str]:
    path = tmp_path / "runs.log"
    return path.read_text().splitlines() if path.exists() else []


def test_schedule_runs_a_recurring_job_twice_each_its_own_process(tmp_path, start_schedule):
    schedule = start_schedule(job_table("tick", "*/2 * * * * *", "Tick"))

    schedule.wait_log("job tick: run pid", times=2)
    code = schedule.stop()

    assert code == ExitCode.OK, schedule.log
    starts = [line for line in run_lines(tmp_path) if line.startswith("start")]
    assert len(starts) >= 2
    assert len(set(starts)) == len(starts)  # each run is a new process
    assert schedule.count("job tick: started run pid") >= 2
    assert schedule.count("ended: exit 0 (OK)") >= 2
    assert "stopped" in schedule.log


def test_schedule_skip_policy_skips_a_run_due_while_the_last_one_runs(tmp_path, start_schedule):
    schedule = start_schedule(job_table("hold", "* * * * * *", "Hold", overlap="skip"))

    schedule.wait_log("job hold: skipped the run due at", times=2)
    assert [line.split()[0] for line in run_lines(tmp_path)] == ["start"]  # no second run
    assert schedule.count("job hold: started run pid") == 1

    (tmp_path / "release").touch()
    schedule.wait_log("ended: exit 0 (OK)")
    schedule.wait_log("job hold: started run pid", times=2)  # the next due run starts again
    assert schedule.stop() == ExitCode.OK
    lines = run_lines(tmp_path)
    assert lines[:2] == [f"start {lines[0].split()[1]}", f"end {lines[0].split()[1]}"]


def test_schedule_queue_policy_starts_one_run_right_after_the_last(tmp_path, start_schedule):
    schedule = start_schedule(job_table("hold", "* * * * * *", "Hold", overlap="queue"))

    schedule.wait_log("queued: starts when it ends")
    schedule.wait_log("already has a run queued")  # two due runs while it runs: one queued
    assert schedule.count("job hold: started run pid") == 1

    (tmp_path / "release").touch()
    schedule.wait_log("job hold: started run pid", times=2)
    wait_for(lambda: len(run_lines(tmp_path)) >= 3, what="the queued run's start")
    assert schedule.stop() == ExitCode.OK
    lines = run_lines(tmp_path)
    first = lines[0].split()[1]
    assert lines[:3] == [f"start {first}", f"end {first}", lines[2]]
    assert lines[2].startswith("start") and lines[2] != lines[0]


def test_schedule_logs_a_failed_runs_exit_code(tmp_path, start_schedule):
    schedule = start_schedule(job_table("boom", "*/2 * * * * *", "Boom"))

    schedule.wait_log("job boom: run pid")

    assert schedule.stop() == ExitCode.OK
    assert f"ended: exit {ExitCode.TASK_FAILED} (TASK_FAILED)" in schedule.log


def test_schedule_list_prints_the_next_minutes_of_an_every_minute_job(tmp_path, run_pipes):
    (tmp_path / "schedule.toml").write_text(job_table("tick", "* * * * *", "Tick"))

    result = run_pipes("schedule", "schedule.toml", "--list")

    assert result.returncode == ExitCode.OK, result.stderr
    header, times = result.stdout.splitlines()
    assert header.startswith("tick: * * * * * (overlap skip): pipes --module jobs Tick")
    runs = [dt.datetime.fromisoformat(t) for t in times.removeprefix("  next: ").split(", ")]
    assert [b - a for a, b in zip(runs, runs[1:], strict=False)] == [dt.timedelta(minutes=1)] * 2
    assert all(run.second == 0 for run in runs)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (job_table("bad", "61 * * * *", "Tick"), "[job.bad]: cron = '61 * * * *': Bad minute"),
        (job_table("bad", "* * * *", "Tick"), "Wrong number of fields"),
        (job_table("bad", "* * * * *", "Tick", overlap="later"), "is not 'skip' or 'queue'"),
        ('[job.bad]\ncron = "* * * * *"\ntask = "Tick"\nparms = {}\n', "(did you mean params?)"),
        ('[job.bad]\ncron = "* * * * *"\n', "task must be a non-empty string"),
        ("[other]\n", "unknown top-level key 'other'"),
        ('tz = "Mars/Base"\n' + job_table("a", "* * * * *", "Tick"), "not a known time zone"),
        ("[job.bad\n", "schedule.toml: "),
    ],
)
def test_schedule_bad_file_exits_2_with_one_line_error(tmp_path, run_pipes, text, message):
    (tmp_path / "schedule.toml").write_text(text)

    result = run_pipes("schedule", "schedule.toml")

    assert result.returncode == ExitCode.USAGE, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("pipes: error: ")
    assert message in result.stderr


def test_schedule_missing_file_exits_2_naming_it(run_pipes):
    result = run_pipes("schedule", "nope.toml")

    assert result.returncode == ExitCode.USAGE
    assert (
        result.stderr
        == "pipes: error: cannot read schedule file nope.toml: No such file or directory\n"
    )


def test_schedule_without_cronsim_names_the_extra(tmp_path, run_pipes):
    (tmp_path / "schedule.toml").write_text(job_table("tick", "* * * * *", "Tick"))
    # a module of that name first on sys.path that fails as a missing install does
    (tmp_path / "cronsim.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'cronsim'\")\n"
    )

    result = run_pipes("schedule", "schedule.toml")

    assert result.returncode == ExitCode.ERROR
    assert result.stderr.count("\n") == 1, result.stderr
    assert "pip install 'pipes[schedule]'" in result.stderr


def test_schedule_shows_next_run_and_last_result_on_the_status_page(
    tmp_path, start_schedule, pipesd_factory
):
    daemon = pipesd_factory()
    schedule = start_schedule(
        job_table("tick", "*/2 * * * * *", "Tick"), "--scheduler-url", daemon.url
    )
    schedule.wait_log("ended: exit 0 (OK)")

    def message() -> str:
        tasks = daemon.call("task_list", family="PipesSchedule")["tasks"]
        return tasks[0]["status_message"] or "" if tasks else ""

    wait_for(lambda: "last: exit 0 (OK)" in message(), what="the last result on pipesd")
    assert "next run 20" in message()
    assert schedule.stop() == ExitCode.OK
    listing = daemon.call("task_list", family="PipesSchedule")["tasks"]
    assert [task["params"]["name"] for task in listing] == ["tick"]
