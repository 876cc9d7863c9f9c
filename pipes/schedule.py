"""`pipes schedule`: a foreground loop that starts `pipes` runs at the times a schedule file gives.

For containers and hosts without cron. Each job in the TOML file has a cron expression
(parsed by cronsim, the `pipes[schedule]` extra), a module, a task, its parameters and an
overlap policy. Each run is a separate `python -m pipes ...` process, so it has the same
run lock and exit codes as a run from a shell; the loop logs each run's start, end and exit
code. With a scheduler URL, each job also shows on pipesd's status page as a task of family
PipesSchedule whose status message gives its next run and its last result.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import difflib
import functools
import json
import logging
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import tomllib
import zoneinfo
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipes.config import get_config
from pipes.exceptions import ConfigError, MissingExtra, PipesError, UsageError
from pipes.exit_codes import ExitCode

logger = logging.getLogger("pipes.schedule")

OVERLAP_POLICIES = ("skip", "queue")
JOB_KEYS = {"cron", "module", "task", "params", "args", "overlap"}
POLL_SECONDS = 0.2  # how often a running job's process is checked for its end
PING_SECONDS = 20.0  # keep-alive to pipesd, so the PipesSchedule tasks stay listed


def _cronsim() -> Any:
    """The cronsim module; MissingExtra (one line, naming the extra) when it is not installed."""
    try:
        import cronsim  # optional: the `pipes[schedule]` extra
    except ImportError as err:
        raise MissingExtra(
            f"pipes schedule needs cronsim ({err}): pip install 'pipes[schedule]'"
        ) from err
    return cronsim


@dataclasses.dataclass(frozen=True)
class Job:
    """One entry of the schedule file."""

    name: str
    cron: str
    task: str
    module: str | None = None
    params: tuple[tuple[str, str], ...] = ()
    args: tuple[str, ...] = ()
    overlap: str = "skip"

    def command(self) -> list[str]:
        """The `pipes` command line of one run, with this interpreter."""
        words = [sys.executable, "-m", "pipes"]
        if self.module:
            words += ["--module", self.module]
        words.append(self.task)
        for name, value in self.params:
            words += [f"--{name.replace('_', '-')}", value]
        return words + list(self.args)

    def shown(self) -> str:
        """The command as a person would type it."""
        return " ".join(["pipes", *self.command()[3:]])


@dataclasses.dataclass(frozen=True)
class Schedule:
    """The jobs of a schedule file and the time zone their cron expressions are read in."""

    jobs: tuple[Job, ...]
    zone: dt.tzinfo | None  # None: naive local time (the local zone could not be read)

    def now(self) -> dt.datetime:
        """The current time in the schedule's zone (naive local time when it has none)."""
        return dt.datetime.now(self.zone) if self.zone else dt.datetime.now()

    def next_after(self, job: Job, when: dt.datetime) -> dt.datetime:
        """The first time after `when` that the job's cron expression matches."""
        following: dt.datetime = next(iter(_cronsim().CronSim(job.cron, when)))
        return following


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value, default=str)
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    return str(value)


def _job(path: Path, name: str, table: object) -> Job:
    """One [job.NAME] table, checked; ConfigError names the file, job and key."""
    where = f"{path} [job.{name}]"
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table")
    for key in table:
        if key not in JOB_KEYS:
            close = difflib.get_close_matches(key, sorted(JOB_KEYS), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ConfigError(f"{where}: unknown key {key!r}{hint}")
    for key in ("cron", "task"):
        if not isinstance(table.get(key), str) or not table[key].strip():
            raise ConfigError(f"{where}: {key} must be a non-empty string")
    overlap = table.get("overlap", "skip")
    if overlap not in OVERLAP_POLICIES:
        raise ConfigError(f"{where}: overlap = {overlap!r} is not 'skip' or 'queue'")
    params, args = table.get("params", {}), table.get("args", [])
    if not isinstance(params, dict):
        raise ConfigError(f"{where}: params must be a table, e.g. params = {{ date = 2024-01-01 }}")
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise ConfigError(f"{where}: args must be a list of strings")
    module = table.get("module")
    if module is not None and not isinstance(module, str):
        raise ConfigError(f"{where}: module must be a string")
    pairs = tuple((key, _text(value)) for key, value in params.items())
    return Job(name, table["cron"], table["task"], module, pairs, tuple(args), overlap)


def _local_zone() -> dt.tzinfo | None:
    """The local zone with its daylight-saving rules (TZ, else /etc/localtime), if known."""
    name = os.environ.get("TZ", "").lstrip(":")
    try:
        if name:
            return zoneinfo.ZoneInfo(name)
        with open("/etc/localtime", "rb") as file:
            return zoneinfo.ZoneInfo.from_file(file, key="localtime")
    except (OSError, ValueError, zoneinfo.ZoneInfoNotFoundError) as err:
        logger.debug("local time zone unknown (%s): cron times are naive local times", err)
        return None


def _zone(path: Path, name: object) -> dt.tzinfo | None:
    if name is None:
        return _local_zone()
    if not isinstance(name, str):
        raise ConfigError(f"{path}: tz must be a string such as 'UTC' or 'Europe/Paris'")
    try:
        return dt.UTC if name.upper() == "UTC" else zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as err:
        raise ConfigError(f"{path}: tz = {name!r} is not a known time zone") from err


def load_schedule(path: Path) -> Schedule:
    """Read and check a schedule file, including every cron expression; raises ConfigError."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"cannot read schedule file {path}: {err.strerror or err}") from err
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: {str(err).splitlines()[0]}") from err
    unknown = sorted(set(data) - {"job", "tz"})
    if unknown:
        raise ConfigError(
            f"{path}: unknown top-level key {unknown[0]!r} (expected [job.NAME] tables, tz)"
        )
    tables = data.get("job", {})
    if not isinstance(tables, dict) or not tables:
        raise ConfigError(f"{path}: no jobs (add a [job.NAME] table with cron and task)")
    schedule = Schedule(
        tuple(_job(path, name, table) for name, table in tables.items()),
        _zone(path, data.get("tz")),
    )
    cronsim = _cronsim()
    for job in schedule.jobs:
        try:
            cronsim.CronSim(job.cron, schedule.now())
        except cronsim.CronSimError as err:
            raise ConfigError(f"{path} [job.{job.name}]: cron = {job.cron!r}: {err}") from err
    return schedule


@dataclasses.dataclass(eq=False)
class _JobState:
    """A job in the loop: when it is due next, its running process, a queued run."""

    job: Job
    due: dt.datetime
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0  # time.time() of the running process's start
    queued: bool = False
    last: str = "no run yet"


def _shown(when: dt.datetime) -> str:
    return f"{when:%Y-%m-%d %H:%M:%S}"


def _when(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))


def _exit_name(code: int) -> str:
    if code < 0:
        return f"killed by signal {-code}"
    try:
        return ExitCode(code).name
    except ValueError:
        return "unknown code"


class _Publisher:
    """Shows each job on pipesd as a PipesSchedule task; never blocks or fails the loop."""

    def __init__(self, client: Any, worker: str) -> None:
        self.client = client
        self.worker = worker
        self._queue: queue.Queue[tuple[Job, str] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._failing = False

    def start(self) -> None:
        """Start the thread that sends updates (and keep-alives)."""
        self._thread = threading.Thread(target=self._serve, name="pipes-schedule-publish")
        self._thread.daemon = True
        self._thread.start()

    def publish(self, job: Job, message: str) -> None:
        """Queue a status message for a job's task."""
        self._queue.put((job, message))

    def stop(self) -> None:
        """Send what is queued, then say goodbye to pipesd."""
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(10.0)

    def _serve(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=PING_SECONDS)
            except queue.Empty:
                self._send(lambda: self.client.ping(self.worker))
                continue
            if item is None:
                self._send(lambda: self.client.call("stop_worker", worker=self.worker))
                return
            job, message = item
            self._send(functools.partial(self._update, job, message))

    def _update(self, job: Job, message: str) -> None:
        task_id = f"PipesSchedule_{job.name}"
        spec = {
            "task_id": task_id,
            "family": "PipesSchedule",
            "module": "pipes.schedule",
            "params": {"name": job.name, "cron": job.cron, "command": job.shown()},
            "status": "DONE",
            "runnable": False,
        }
        self.client.add_worker(self.worker, {"host": socket.gethostname(), "pid": os.getpid()})
        self.client.add_tasks(self.worker, [spec])
        self.client.set_task_field(task_id, "status_message", message)

    def _send(self, call: Any) -> None:
        try:
            call()
        except PipesError as err:  # the status page is a view: runs go on without it
            if not self._failing:
                logger.warning("cannot update pipesd's status page: %s", err)
            self._failing = True
            return
        if self._failing:
            logger.info("pipesd's status page is updated again")
        self._failing = False


class ScheduleLoop:
    """Starts each job's runs when due, applying its overlap policy, until stop() is called."""

    def __init__(self, schedule: Schedule, publisher: _Publisher | None = None) -> None:
        self.schedule = schedule
        self.publisher = publisher
        self._stop = threading.Event()
        self._states: list[_JobState] = []

    def stop(self) -> None:
        """End the loop after its current step (signal-handler safe)."""
        self._stop.set()

    def run(self) -> None:
        """Serve until stop(); then wait for the runs still going (they get SIGTERM)."""
        now = self.schedule.now()
        self._states = [
            _JobState(job, self.schedule.next_after(job, now)) for job in self.schedule.jobs
        ]
        for state in self._states:
            logger.info(
                "job %s: %s, next run %s: %s",
                state.job.name,
                state.job.cron,
                _shown(state.due),
                state.job.shown(),
            )
            self._publish(state)
        while not self._stop.is_set():
            self._step()
            self._stop.wait(self._sleep())
        self._finish()

    def _step(self) -> None:
        for state in self._states:
            self._reap(state)
        now = self.schedule.now()
        for state in self._states:
            # compared as instants: an aware datetime's wall clock repeats when DST ends
            if state.due.timestamp() <= now.timestamp():
                due, state.due = state.due, self.schedule.next_after(state.job, now)
                self._fire(state, due)

    def _sleep(self) -> float:
        """Seconds until the next job is due, or until the next check of a running one."""
        now = time.time()
        ahead = min(state.due.timestamp() - now for state in self._states)
        if any(state.proc is not None for state in self._states):
            ahead = min(ahead, POLL_SECONDS)
        return max(0.0, ahead)

    def _fire(self, state: _JobState, due: dt.datetime) -> None:
        if state.proc is None:
            self._start(state)
            return
        name, pid, since = state.job.name, state.proc.pid, _when(state.started)
        if state.job.overlap == "queue":
            word = "already has a run queued" if state.queued else "queued: starts when it ends"
            logger.info(
                "job %s: run due at %s overlaps run pid %d (since %s); %s",
                name,
                _shown(due),
                pid,
                since,
                word,
            )
            state.queued = True
            return
        logger.warning(
            "job %s: skipped the run due at %s: run pid %d (since %s) is still going",
            name,
            _shown(due),
            pid,
            since,
        )
        state.last = f"skipped the run due at {_shown(due)} (previous run still going)"
        self._publish(state)

    def _start(self, state: _JobState) -> None:
        try:
            state.proc = subprocess.Popen(state.job.command(), stdin=subprocess.DEVNULL)
        except OSError as err:
            logger.error("job %s: cannot start %s: %s", state.job.name, state.job.shown(), err)
            state.last = f"could not start: {err}"
            self._publish(state)
            return
        state.started = time.time()
        logger.info(
            "job %s: started run pid %d: %s", state.job.name, state.proc.pid, state.job.shown()
        )
        self._publish(state)

    def _reap(self, state: _JobState) -> None:
        if state.proc is None or state.proc.poll() is None:
            return
        code, pid = state.proc.returncode, state.proc.pid
        seconds = time.time() - state.started
        state.proc = None
        state.last = (
            f"exit {code} ({_exit_name(code)}) at {_when(time.time())} after {seconds:.1f}s"
        )
        log = logger.info if code == ExitCode.OK else logger.warning
        log(
            "job %s: run pid %d ended: exit %d (%s) after %.1fs",
            state.job.name,
            pid,
            code,
            _exit_name(code),
            seconds,
        )
        if state.queued:
            state.queued = False
            self._start(state)
        else:
            self._publish(state)

    def _publish(self, state: _JobState) -> None:
        if self.publisher is None:
            return
        running = (
            f"running since {_when(state.started)} (pid {state.proc.pid}); " if state.proc else ""
        )
        self.publisher.publish(
            state.job, f"{running}next run {_shown(state.due)}; last: {state.last}"
        )

    def _finish(self) -> None:
        running = [state for state in self._states if state.proc is not None]
        if running:
            logger.info("stopping: %d run(s) still going get SIGTERM", len(running))
        for state in running:
            assert state.proc is not None
            state.proc.send_signal(signal.SIGTERM)
        for state in running:
            assert state.proc is not None
            state.proc.wait()
            self._reap(state)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pipes schedule",
        description="Start pipes runs at the times a schedule file gives, until stopped.",
        allow_abbrev=False,
    )
    parser.add_argument("file", type=Path, help="the schedule file (TOML, [job.NAME] tables)")
    parser.add_argument("--scheduler-url", help="show each job on this pipesd's status page")
    parser.add_argument(
        "--log-level",
        type=str.upper,
        choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
        help="default: [core] log_level or INFO",
    )
    parser.add_argument("--list", action="store_true", help="print each job's next runs and exit")
    return parser


def _listing(schedule: Schedule, count: int = 3) -> Iterator[str]:
    now = schedule.now()
    for job in schedule.jobs:
        times, when = [], now
        for _ in range(count):
            when = schedule.next_after(job, when)
            times.append(_shown(when))
        yield f"{job.name}: {job.cron} (overlap {job.overlap}): {job.shown()}"
        yield f"  next: {', '.join(times)}"


def _publisher(url: str | None) -> _Publisher | None:
    from pipes.rpc import RemoteScheduler, RetryPolicy  # the HTTP client only with a URL

    config = get_config()
    url = url or config.get("core", "scheduler_url")
    if not url:
        return None
    token = os.environ.get("PIPES_AUTH_TOKEN") or config.get("core", "scheduler_token")
    client = RemoteScheduler(url, token=token, retry=RetryPolicy(deadline=5.0, timeout=5.0))
    return _Publisher(client, f"schedule-{socket.gethostname()}-{os.getpid()}")


def main(argv: list[str], configure_logging: Any) -> int:
    """`pipes schedule FILE`: serve until SIGTERM or Ctrl-C; returns the exit code."""
    parser = _parser()
    parser.error = _usage_error  # type: ignore[method-assign]
    options = parser.parse_args(argv)
    configure_logging(options.log_level)
    schedule = load_schedule(options.file)
    if options.list:
        print("\n".join(_listing(schedule)))
        return ExitCode.OK
    publisher = _publisher(options.scheduler_url)
    loop = ScheduleLoop(schedule, publisher)
    previous = {
        sig: signal.signal(sig, lambda *_: loop.stop()) for sig in (signal.SIGTERM, signal.SIGINT)
    }
    if publisher is not None:
        publisher.start()
    try:
        loop.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if publisher is not None:
            publisher.stop()
    logger.info("stopped")
    return ExitCode.OK


def _usage_error(message: str) -> Any:
    raise UsageError(f"pipes schedule: {message}")
