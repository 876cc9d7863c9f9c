"""Backfill ranges (pipes.tools.range) through the real `pipes` command.

Each test writes a task module into tmp_path and runs `pipes --module ... RangeDaily ...` in a
subprocess; every run of a task appends its parameter to runs.log, so a test sees exactly which
instances ran. Listings are counted by wrapping os.scandir in the task module (the process
and its forked children): the range logic itself is the real one.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest
from pipesd_fixtures import wait_for

from pipes.exit_codes import ExitCode

FLOW = '''
import os

import pipes

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")
_scandir = os.scandir


def _counting_scandir(path="."):
    # one line per listing of the output directory, from this process or a forked child
    if os.path.abspath(os.fspath(path)) == DATA:
        with open(os.path.join(HERE, "listings.log"), "a") as log:
            log.write(f"{os.getpid()}\\n")
    return _scandir(path)


os.scandir = _counting_scandir


def ran(what):
    with open(os.path.join(HERE, "runs.log"), "a") as log:
        log.write(f"{what}\\n")


class Day(pipes.Task):
    date = pipes.DateParameter()

    def output(self):
        return pipes.LocalTarget(os.path.join(DATA, f"{self.date}.txt"))

    def run(self):
        ran(self.date)
        with self.output().open("w") as out:
            out.write("x")


class Hour(pipes.Task):
    hour = pipes.DateHourParameter()

    def output(self):
        return pipes.LocalTarget(os.path.join(DATA, f"{self.hour:%Y-%m-%dT%H}.txt"))

    def run(self):
        ran(f"{self.hour:%Y-%m-%dT%H}")
        with self.output().open("w") as out:
            out.write("x")


class Quarter(pipes.Task):
    region = pipes.Parameter()
    minute = pipes.DateMinuteParameter()

    def output(self):
        name = f"{self.region}-{self.minute:%Y-%m-%dT%H%M}.txt"
        return pipes.LocalTarget(os.path.join(DATA, name))

    def run(self):
        ran(f"{self.region} {self.minute:%H%M}")
        with self.output().open("w") as out:
            out.write("x")


class Month(pipes.Task):
    month = pipes.MonthParameter()

    @classmethod
    def bulk_complete(cls, values):
        # luigi's hook: one call for the whole range, which lists the directory itself
        with open(os.path.join(HERE, "bulk.log"), "a") as log:
            log.write(f"{len(list(values))}\\n")
        done = set(os.listdir(DATA)) if os.path.isdir(DATA) else set()
        return [v for v in values if f"{v:%Y-%m}.txt" in done]

    def output(self):
        return pipes.LocalTarget(os.path.join(DATA, f"{self.month:%Y-%m}.txt"))

    def run(self):
        ran(f"{self.month:%Y-%m}")
        with self.output().open("w") as out:
            out.write("x")


class Report(pipes.WrapperTask):
    """No outputs of its own: complete when its day is."""

    date = pipes.DateParameter()

    def requires(self):
        return Day(date=self.date)


class Ping(pipes.Task):
    """No outputs: its own complete() says whether it ran."""

    date = pipes.DateParameter()

    def complete(self):
        return os.path.exists(os.path.join(HERE, f"ping-{self.date}"))

    def run(self):
        ran(f"ping {self.date}")
        open(os.path.join(HERE, f"ping-{self.date}"), "w").close()
'''

QUIET = """
[core]
log_level = INFO
"""


def epoch(text: str, tz: dt.tzinfo = dt.UTC) -> str:
    """Seconds since the epoch of an ISO time in `tz`, as --now takes them."""
    return str(int(dt.datetime.fromisoformat(text).replace(tzinfo=tz).timestamp()))


@pytest.fixture
def flow(tmp_path: Path) -> Path:
    (tmp_path / "flow.py").write_text(FLOW)
    (tmp_path / "pipes.cfg").write_text(QUIET)
    (tmp_path / "data").mkdir()
    return tmp_path


def touch_days(data: Path, start: dt.date, count: int) -> list[str]:
    days = [str(start + dt.timedelta(days=i)) for i in range(count)]
    for day in days:
        (data / f"{day}.txt").write_text("x")
    return days


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_range_daily_runs_exactly_the_20_missing_days_when_10_of_30_exist(flow, run_pipes):
    touch_days(flow / "data", dt.date(2024, 1, 5), 10)  # days 5..14 exist
    args = ["--module", "flow", "RangeDaily", "--of", "Day", "--start", "2024-01-01"]
    args += [
        "--stop",
        "2024-01-31",
        "--now",
        epoch("2024-02-01T12:00"),
        "--tz",
        "UTC",
        "--local-scheduler",
    ]

    result = run_pipes(*args)

    assert result.returncode == ExitCode.OK, result.stderr
    expected = [str(dt.date(2024, 1, d)) for d in [*range(1, 5), *range(15, 31)]]
    assert sorted(lines(flow / "runs.log")) == expected
    assert "Day: 10 of 30 complete, 20 missing (oldest 2024-01-01); requiring 20" in result.stderr
    assert len(list((flow / "data").iterdir())) == 30

    again = run_pipes(*args)
    assert again.returncode == ExitCode.OK, again.stderr
    assert len(lines(flow / "runs.log")) == 20  # nothing ran twice
    assert "Day: 30 of 30 complete, 0 missing" in again.stderr


def test_range_daily_lists_the_output_dir_at_most_twice_over_3650_days(flow, run_pipes):
    start = dt.date(2014, 1, 1)
    days = touch_days(flow / "data", start, 3650)
    missing = days[100:180]  # 80 gaps: more than the 64 that make the worker list, not stat
    for day in missing:
        (flow / "data" / f"{day}.txt").unlink()
    stop = str(start + dt.timedelta(days=3650))

    result = run_pipes(
        "--module", "flow", "RangeDaily", "--of", "Day", "--start", str(start), "--stop", stop,
        "--now", epoch(f"{stop}T06:00"), "--days-back", "4000", "--task-limit", "100",
        "--tz", "UTC", "--local-scheduler", "--log-level", "INFO",
    )  # fmt: skip

    assert result.returncode == ExitCode.OK, result.stderr
    assert sorted(lines(flow / "runs.log")) == missing
    assert "Day: 3570 of 3650 complete, 80 missing (oldest 2014-04-11)" in result.stderr
    listings = lines(flow / "listings.log")
    print(f"listings of the output directory for 3,650 days: {len(listings)}")
    assert 1 <= len(listings) <= 2


def test_range_daily_clips_start_to_days_back_and_says_so(flow, run_pipes):
    result = run_pipes(
        "--module", "flow", "RangeDaily", "--of", "Day", "--start", "2024-01-01",
        "--now", epoch("2024-03-01T12:00"), "--days-back", "3",
        "--tz", "UTC", "--local-scheduler",
    )  # fmt: skip

    assert result.returncode == ExitCode.OK, result.stderr
    assert sorted(lines(flow / "runs.log")) == ["2024-02-28", "2024-02-29", "2024-03-01"]
    assert (
        "RangeDaily: --start 2024-01-01 is older than --days-back allows: checking from 2024-02-28"
        in (result.stderr)
    )


def test_range_monthly_asks_bulk_complete_once_for_the_whole_range(flow, run_pipes):
    for month in ("2023-01", "2023-02", "2023-05"):
        (flow / "data" / f"{month}.txt").write_text("x")

    result = run_pipes(
        "--module", "flow", "RangeMonthly", "--of", "Month", "--start", "2023-01",
        "--stop", "2023-07", "--now", epoch("2023-09-15T00:00"),
        "--tz", "UTC", "--local-scheduler",
    )  # fmt: skip

    assert result.returncode == ExitCode.OK, result.stderr
    assert sorted(lines(flow / "runs.log")) == ["2023-03", "2023-04", "2023-06"]
    assert lines(flow / "bulk.log")[0] == "6"  # one call with all six months
    assert "Month: 3 of 6 complete, 3 missing (oldest 2023-03)" in result.stderr


def test_range_monthly_leaves_out_the_current_month_by_default(flow, run_pipes):
    result = run_pipes(
        "--module", "flow", "RangeMonthly", "--of", "Month", "--months-back", "2",
        "--start", "2000-01", "--now", epoch("2023-09-15T00:00"),
        "--tz", "UTC", "--local-scheduler",
    )  # fmt: skip

    assert result.returncode == ExitCode.OK, result.stderr
    assert sorted(lines(flow / "runs.log")) == ["2023-07", "2023-08"]


def test_range_of_wrapper_tasks_succeeds_and_runs_their_requirements(flow, run_pipes):
    touch_days(flow / "data", dt.date(2024, 1, 1), 2)

    result = run_pipes(
        "--module", "flow", "RangeDaily", "--of", "Report", "--start", "2024-01-01",
        "--stop", "2024-01-05", "--now", epoch("2024-01-10T00:00"),
        "--tz", "UTC", "--local-scheduler",
    )  # fmt: skip

    assert result.returncode == ExitCode.OK, result.stderr
    assert sorted(lines(flow / "runs.log")) == ["2024-01-03", "2024-01-04"]
    assert "Report: 2 of 4 complete, 2 missing (oldest 2024-01-03)" in result.stderr
    assert "unfulfilled" not in result.stderr


def test_range_of_output_less_tasks_asks_each_instance_complete(flow, run_pipes):
    (flow / "ping-2024-01-02").touch()
    args = ["--module", "flow", "RangeDaily", "--of", "Ping", "--start", "2024-01-01"]
    args += [
        "--stop",
        "2024-01-04",
        "--now",
        epoch("2024-01-10T00:00"),
        "--tz",
        "UTC",
        "--local-scheduler",
    ]

    first = run_pipes(*args)
    second = run_pipes(*args)

    assert first.returncode == ExitCode.OK, first.stderr
    assert second.returncode == ExitCode.OK, second.stderr
    assert sorted(lines(flow / "runs.log")) == ["ping 2024-01-01", "ping 2024-01-03"]


def test_range_hourly_takes_now_in_the_local_zone_unless_tz_is_given(flow, run_pipes):
    # 2024-06-01 03:30 UTC is 12:30 in Tokyo: the newest hour checked is the zone's hour
    now = epoch("2024-06-01T03:30")
    args = ["--module", "flow", "RangeHourly", "--of", "Hour", "--hours-back", "2"]
    args += ["--start", "2024-05-01T00", "--now", now, "--local-scheduler"]

    local = run_pipes(*args, env={"TZ": "Asia/Tokyo"})
    assert local.returncode == ExitCode.OK, local.stderr
    assert sorted(lines(flow / "runs.log")) == ["2024-06-01T11", "2024-06-01T12"]

    (flow / "runs.log").unlink()
    utc = run_pipes(*args, "--tz", "UTC", env={"TZ": "Asia/Tokyo"})
    assert utc.returncode == ExitCode.OK, utc.stderr
    assert sorted(lines(flow / "runs.log")) == ["2024-06-01T02", "2024-06-01T03"]


def test_range_by_minutes_steps_by_minutes_interval_with_of_params(flow, run_pipes):
    result = run_pipes(
        "--module", "flow", "RangeByMinutes", "--of", "Quarter", "--of-params", '{"region": "eu"}',
        "--param-name", "minute", "--minutes-interval", "15", "--start", "2024-01-01T1000",
        "--stop", "2024-01-01T1100", "--now", epoch("2024-01-01T12:00"), "--tz", "UTC",
        "--local-scheduler",
    )  # fmt: skip

    assert result.returncode == ExitCode.OK, result.stderr
    assert sorted(lines(flow / "runs.log")) == ["eu 1000", "eu 1015", "eu 1030", "eu 1045"]


def test_range_reverse_with_task_limit_takes_the_newest_gaps(flow, run_pipes):
    result = run_pipes(
        "--module", "flow", "RangeDaily", "--of", "Day", "--start", "2024-01-01",
        "--stop", "2024-01-11", "--reverse", "--task-limit", "3",
        "--now", epoch("2024-02-01T00:00"),
        "--tz", "UTC", "--local-scheduler",
    )  # fmt: skip

    assert result.returncode == ExitCode.OK, result.stderr
    assert sorted(lines(flow / "runs.log")) == ["2024-01-08", "2024-01-09", "2024-01-10"]
    assert "0 of 10 complete, 10 missing (oldest 2024-01-01); requiring 3 (task_limit)" in (
        result.stderr
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--of", "Day"], "RangeDaily needs --start or --stop"),
        (["--of", "Day", "--stop", "2024-01-01"], "without --start needs --reverse"),
        (["--of", "Day", "--start", "2024-02-01", "--stop", "2024-01-01"], "is after --stop"),
        (["--of", "Day", "--start", "2024-01-01", "--tz", "Mars/Base"], "unknown time zone"),
        (["--of", "Day", "--start", "2024-01-01", "--param-name", "dat"], "no parameter 'dat'"),
        (["--of", "Dya", "--start", "2024-01-01"], "no task family named 'Dya'"),
        (
            ["--of", "Day", "--start", "2024-01-01", "--of-params", '{"region": "eu"}'],
            "unknown parameter region for task Day",
        ),
    ],
)
def test_range_bad_parameters_exit_2_with_one_line_error(flow, run_pipes, args, message):
    result = run_pipes("--module", "flow", "RangeDaily", *args, "--local-scheduler")

    assert result.returncode == ExitCode.USAGE
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("pipes: error: ")
    assert message in result.stderr


def test_range_status_message_shows_counts_on_pipesd(flow, pipesd_factory, start_worker):
    touch_days(flow / "data", dt.date(2024, 1, 1), 3)
    daemon = pipesd_factory()
    worker = start_worker(
        "RangeDaily", "--of", "Day", "--start", "2024-01-01", "--stop", "2024-01-06",
        "--now", epoch("2024-02-01T00:00"), url=daemon.url, module="flow",
    )  # fmt: skip

    assert worker.wait() == ExitCode.OK, worker.stderr
    listing = daemon.call("task_list", family="RangeDaily")["tasks"]
    assert [task["status_message"] for task in listing] == [
        "Day: 3 of 5 complete, 2 missing (oldest 2024-01-04); requiring 2"
    ]
    wait_for(lambda: len(lines(flow / "runs.log")) == 2, what="both missing days ran")


def test_range_families_need_no_import_in_the_user_module(tmp_path, run_pipes):
    (tmp_path / "plain.py").write_text(
        "import pipes\n\n\nclass T(pipes.Task):\n    date = pipes.DateParameter()\n"
        "    def output(self):\n        return pipes.LocalTarget(f'out/{self.date}')\n"
        "    def run(self):\n        self.output().open('w').close()\n"
    )
    result = run_pipes(
        "--module", "plain", "RangeDaily", "--of", "T", "--start", "2024-01-01",
        "--stop", "2024-01-03", "--now", epoch("2024-02-01T00:00"),
        "--tz", "UTC", "--local-scheduler",
    )  # fmt: skip

    assert result.returncode == ExitCode.OK, result.stderr
    assert sorted(os.listdir(tmp_path / "out")) == ["2024-01-01", "2024-01-02"]
