"""The worker: schedules a DAG with a scheduler, then takes and runs tasks until none are left."""

from __future__ import annotations

import collections
import getpass
import importlib
import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pipes.exceptions import PipesError, TaskDefinitionError
from pipes.scheduler.api import SchedulerAPI
from pipes.task import Task
from pipes.task_register import get_task_cls
from pipes.worker.capture import valid_text
from pipes.worker.completion import CompletionChecker, TaskOutputs
from pipes.worker.execute import Attempt, Execution
from pipes.worker.fetch import WorkFetcher
from pipes.worker.keepalive import KeepAlive
from pipes.worker.messages import RunStatus
from pipes.worker.progress import Progress
from pipes.worker.runner import Runner, RunnerOptions
from pipes.worker.walk import WalkResult, walk
from pipes.worker.work_batch import WorkBatch

logger = logging.getLogger("pipes.worker")

ADD_BATCH = 2000
FailureHook = Callable[[Task, str | None, str | None], None]  # (task, error, log tail)


@dataclass(frozen=True)
class WorkerOptions:
    """How a worker behaves; read from [worker] config by the caller."""

    runner: RunnerOptions = field(default_factory=RunnerOptions)
    wait_interval: float = 1.0
    keep_alive: bool = False
    ping_interval: float = 5.0
    assistant: bool = False  # also run tasks other workers added, loading them by family
    check_complete_concurrency: int = 4
    check_complete_timeout: float | None = 600.0  # seconds per custom complete(); None: no limit
    cache_task_completion: bool = True  # remember "complete" answers for the whole run
    get_work_batch: int = 4  # tasks taken per get_work round trip (each call also hands in reports)
    get_work_batch_seconds: float = 0.1  # while tasks are fast, take this much work (0: fixed)
    # The scheduler serves this worker alone (embedded): no one else runs its tasks, so
    # completeness is not asked again just before a task runs.
    alone: bool = False

    @property
    def workers(self) -> int:
        """How many tasks may run at once."""
        return self.runner.workers


class WorkerTerminated(BaseException):
    """SIGTERM reached the worker: running tasks are stopped and reported failed."""


class Worker:
    """Runs the tasks it scheduled, talking to the scheduler only through SchedulerAPI."""

    def __init__(self, scheduler: SchedulerAPI, options: WorkerOptions | None = None) -> None:
        self.scheduler = scheduler
        self.options = options or WorkerOptions()
        self.worker_id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.graph = WalkResult()
        self.ran: dict[str, Attempt] = {}
        self._executions: dict[str, Execution] = {}
        self._running: list[Execution] = []
        self._queue: collections.deque[Work] = collections.deque()  # taken, not started
        self._reports: list[dict[str, Any]] = []  # outcomes to hand in with the next get_work
        batch = WorkBatch(self.options.get_work_batch, self.options.get_work_batch_seconds)
        self._fetcher = WorkFetcher(scheduler, self.worker_id, batch, lambda r: Work(r).members)
        self.outputs = TaskOutputs()  # each task's output(), asked once per run
        self.checker = self._new_checker()
        self.progress: Progress | None = None  # set by the caller to show live counts
        self.on_failure: FailureHook | None = None  # set by the caller, e.g. to send alerts
        self.stopping = False
        self._runner: Runner | None = None  # while run() runs: SIGUSR1 tells it to finish up
        self._last_inline_tail: str | None = None  # the keep-alive thread's last one sent
        self._dependents_of: tuple[int, dict[str, list[str]]] = (-1, {})  # (edges, map)

    def info(self) -> dict[str, Any]:
        """What this worker tells the scheduler about itself."""
        return {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "user": getpass.getuser(),
            "workers": self.options.workers,
            "assistant": self.options.assistant,
        }

    def add(self, roots: list[Task]) -> WalkResult:
        """Walk the DAG from roots and send every task found to the scheduler in batches."""
        self.scheduler.add_worker(self.worker_id, self.info())
        if not self.options.cache_task_completion:
            self.checker = self._new_checker()
        previous = self._install_signals(walking=True)
        try:
            found = walk(roots, known=set(self.graph.tasks), checker=self.checker)
        finally:
            self._restore_signals(previous)
        self._send(found.specs)
        self.graph.merge(found)
        return found

    def _new_checker(self) -> CompletionChecker:
        options = self.options
        return CompletionChecker(
            options.check_complete_concurrency, options.check_complete_timeout, self.outputs
        )

    def complete_now(self, task: Task) -> bool:
        """Whether task is complete now, e.g. run by another worker; False if its check fails.

        Asked through the run's checker: the check times out, and one that hung is not asked again.
        """
        try:
            return self.checker.complete(task) is True
        except Exception:  # the walk reported the error; here it only means "not done"
            return False

    def _send(self, specs: list[dict[str, Any]]) -> None:
        for start in range(0, len(specs), ADD_BATCH):
            self.scheduler.add_tasks(self.worker_id, specs[start : start + ADD_BATCH])

    def run(self) -> None:
        """Take work until none is left (or SIGUSR1 asks to finish), pinging meanwhile."""
        self.scheduler.add_worker(self.worker_id, self.info())
        runner = Runner(
            self.options.runner,
            self._set_field,
            self.outputs,
            not self.options.alone,
            self.graph.tasks,  # grows as the run finds tasks; children look tasks up in it
        )
        self._runner = runner
        pinger = KeepAlive(
            self.scheduler,
            self.worker_id,
            self.info(),
            self.options.ping_interval,
            on_beat=self._send_inline_tail,
        )
        pinger.start()
        previous = self._install_signals()
        stopped = False
        try:
            self._loop(runner)
        except BaseException as stop:
            stopped = True
            sig = signal.SIGTERM if isinstance(stop, WorkerTerminated) else signal.SIGINT
            for execution, outcome in runner.stop(sig):
                self._report(execution, outcome)
            raise
        finally:
            try:
                runner.stop()
                self._hand_back(stopped)
            finally:
                pinger.stop()
                if self.progress is not None:
                    self.progress.close()
                self._restore_signals(previous)

    def _send_inline_tail(self) -> None:
        """From the keep-alive thread: a task running in this process shows its output so far."""
        found = self._runner.inline_tail() if self._runner is not None else None
        if found is not None and found[1] != self._last_inline_tail:
            self._last_inline_tail = found[1]
            self.scheduler.set_task_field(found[0], "log_tail", found[1])

    def _hand_back(self, stopped: bool) -> None:
        """Send the last reports and hand back queued tasks; when stopped, never fail for it.

        Stopped (SIGINT, SIGTERM, an error), the run ends with its own cause even when the
        scheduler cannot take them (it fails this worker's tasks once it drops the worker).
        The call retries while pipesd is down; a second SIGINT or SIGTERM ends it at once.
        """
        if not stopped:
            self._release_queued()
            return
        try:
            self._release_queued()
        except PipesError as err:
            logger.error("could not hand this worker's last reports to the scheduler: %s", err)

    def _install_signals(self, walking: bool = False) -> dict[int, Any]:
        """SIGTERM stops the worker (also while complete() checks hang); SIGUSR1 finishes up."""
        if threading.current_thread() is not threading.main_thread():
            return {}
        if walking:
            return {signal.SIGTERM: signal.signal(signal.SIGTERM, _terminate)}
        return {
            signal.SIGUSR1: signal.signal(signal.SIGUSR1, self._finish_up),
            signal.SIGTERM: signal.signal(signal.SIGTERM, _terminate),
        }

    def _restore_signals(self, previous: dict[int, Any]) -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    def _finish_up(self, signum: int, frame: Any) -> None:
        self.finish_up()

    def finish_up(self) -> None:
        """Take no new work; let the running tasks finish (what SIGUSR1 asks)."""
        logger.warning("SIGUSR1: taking no new work; finishing what has started")
        self.stopping = True
        if self._runner is not None:
            self._runner.finish_up()  # children start none of the tasks they hold

    def _loop(self, runner: Runner) -> None:
        while True:
            self._running = runner.busy()
            self._show_progress()
            if not self.stopping and runner.has_room():
                if not self._queue:
                    self._fetch_work()
                if self._queue:
                    execution = self._execution(self._queue.popleft())
                    if execution is not None:
                        runner.submit(execution)
                        self._report_all(runner.take_finished())  # inline runs end at once
                    continue
            if runner.busy():
                self._report_all(runner.wait(self.options.wait_interval))
                continue
            self._flush_reports()
            if self.stopping or not self._should_wait():
                return
            time.sleep(self.options.wait_interval)

    def _fetch_work(self) -> None:
        """Hand in finished-task reports, take the next batch of tasks (see WorkFetcher)."""
        busy = [m for execution in self._running for m in execution.members]
        reports, self._reports = self._reports, []
        works, self._reports = self._fetcher.fetch(busy, reports)
        self._queue.extend(Work(reply) for reply in works)

    def _flush_reports(self) -> None:
        if self._reports:
            reports, self._reports = self._reports, []
            self._send(reports)

    def _release_queued(self) -> None:
        """Hand back tasks taken but not started (stopping early), so others may run them."""
        self._queue.extend(Work(reply) for reply in self._fetcher.drain())
        members = [m for work in self._queue for m in work.members]
        self._queue.clear()
        self._reports.extend(_report(m, RunStatus.PENDING) for m in members)
        self._flush_reports()

    def _show_progress(self) -> None:
        if self.progress is None or not self.progress.due():
            return
        failed = sum(1 for outcome in self.ran.values() if outcome.status == RunStatus.FAILED)
        done = len(self.ran) - failed + len(self.graph.complete)
        running = sum(len(e.members) for e in self._running)
        pending = max(0, len(self.graph.tasks) - done - failed - running)
        self.progress.update(done, running, pending, failed)

    def _report_all(self, finished: list[tuple[Execution, Attempt]]) -> None:
        for execution, outcome in finished:
            self._report(execution, outcome)

    def _should_wait(self) -> bool:
        """Idle: wait only while other workers run tasks that may unblock ours."""
        if self.options.assistant:
            return True
        outlook = self.scheduler.outlook(self.worker_id)
        if outlook["running_elsewhere"] or outlook["ready"]:  # ready: held back by resources
            return True
        if not self.options.keep_alive:
            return False
        if outlook["waiting_for_retry"]:
            return True
        # A pending task behind a DISABLED one never runs: keep_alive must not wait for it,
        # or a run whose upstream task was disabled never ends (issue 13).
        return outlook["pending"] > self._blocked_by_disabled()

    def _blocked_by_disabled(self) -> int:
        """How many of this worker's unfinished tasks depend, at any depth, on a DISABLED task."""
        disabled: set[str] = set()
        offset = 0
        while True:
            page = self.scheduler.call("task_list", status="DISABLED", limit=1000, offset=offset)
            disabled.update(t["task_id"] for t in page["tasks"])
            offset += len(page["tasks"])
            if not page["tasks"] or offset >= page["total"]:
                break
        disabled |= self.graph.disabled  # Task.disabled: pending in the scheduler, never run
        if not disabled:
            return 0
        dependents = self._dependents()
        blocked: set[str] = set()
        stack = list(disabled)
        while stack:
            for dependent in dependents.get(stack.pop(), ()):
                if dependent not in blocked:
                    blocked.add(dependent)
                    stack.append(dependent)
        finished = {t for t, outcome in self.ran.items() if outcome.status == RunStatus.DONE}
        blocked |= self.graph.disabled
        return len(blocked - finished - set(self.graph.complete))

    def _dependents(self) -> dict[str, list[str]]:
        """task id -> the ids of the tasks that need it, rebuilt only when the graph grew."""
        size = sum(len(deps) for deps in self.graph.deps.values())
        if self._dependents_of[0] != size:
            dependents: dict[str, list[str]] = collections.defaultdict(list)
            for task_id, deps in self.graph.deps.items():
                for dep in deps:
                    dependents[dep].append(task_id)
            self._dependents_of = (size, dependents)
        return self._dependents_of[1]

    def _execution(self, work: Work) -> Execution | None:
        """The Execution for a get_work reply (resuming a suspended one), or None if unloadable."""
        execution = self._executions.get(work.task_id)
        if execution is not None:
            return execution
        members = work.members
        try:
            task = self.graph.tasks.get(work.task_id) or self._load(work.reply)
            if work.batch is not None:
                task = _combined(task, work.batch["params"])
        except Exception as err:  # e.g. an assistant without the task's module
            logger.error("cannot load task %s: %s", work.task_id, err)
            error = valid_text(f"worker {self.worker_id} cannot load this task: {err}")
            self._reports.extend(_report(m, RunStatus.FAILED, error=error) for m in members)
            return None
        task._status_reporter = self._reporter(work.task_id)
        execution = Execution(
            task, self.options.runner.check_outputs, members, not self.options.alone, self.outputs
        )
        self._executions[work.task_id] = execution
        return execution

    def _load(self, work: dict[str, Any]) -> Task:
        """Rebuild a task another worker added (assistants only) from its family and params."""
        if work.get("module"):
            importlib.import_module(work["module"])
        task = get_task_cls(work["family"]).from_str_params(work["params"])
        if task.task_id != work["task_id"]:
            raise TaskDefinitionError(f"task {work['task_id']} loads as {task.task_id} here")
        self.graph.tasks[task.task_id] = task
        return task

    def _reporter(self, task_id: str) -> Any:
        def report(field: str, value: Any) -> None:
            self._set_field(task_id, field, value)

        return report

    def _set_field(self, task_id: str, name: str, value: Any) -> None:
        """set_task_field, with text made valid UTF-8 (a task may pass undecodable names)."""
        if isinstance(value, str):
            value = valid_text(value)
        self.scheduler.set_task_field(task_id, name, value)

    def _report(self, execution: Execution, outcome: Attempt) -> None:
        if outcome.status == RunStatus.SUSPENDED:
            self._suspend(execution, outcome)
            return
        del self._executions[execution.members[0]]
        if outcome.status == RunStatus.PENDING:  # handed to a child, never started: hand back
            self._reports.extend(_report(m, RunStatus.PENDING) for m in execution.members)
            return
        task = outcome.task
        if outcome.status == RunStatus.DONE:
            logger.info("done %s (%.3fs)", task, outcome.seconds)
        specs = []
        for member in execution.members:
            self.ran[member] = outcome
            spec = _report(member, outcome.status)
            if outcome.status == RunStatus.FAILED and outcome.error:
                spec["error"] = valid_text(outcome.error)
            if outcome.log_tail is not None:
                spec["log_tail"] = valid_text(outcome.log_tail)
            specs.append(spec)
        self._reports.extend(specs)
        if outcome.status == RunStatus.FAILED and self.on_failure is not None:
            self.on_failure(task, outcome.error, outcome.log_tail)
        if outcome.status == RunStatus.DONE and outcome.message:  # what on_success() returned
            self._set_field(execution.members[0], "status_message", outcome.message)

    def _suspend(self, execution: Execution, outcome: Attempt) -> None:
        """Schedule the dynamic dependencies, then put the task back to wait on them."""
        logger.info("%s waits on %d dynamic dependencies", outcome.task, len(outcome.new_deps))
        self.add(outcome.new_deps)
        new_ids = [dep.task_id for dep in outcome.new_deps]
        specs = []
        for member in execution.members:
            self.graph.deps[member] = [*self.graph.deps.get(member, []), *new_ids]
            specs.append(_report(member, RunStatus.PENDING, new_deps=new_ids))
        self._reports.extend(specs)


@dataclass(frozen=True, slots=True)
class Work:
    """One task a get_work reply hands this worker: alone, or leading a batch."""

    reply: dict[str, Any]

    @property
    def task_id(self) -> str:
        """The scheduler id of the task (a batch's lead)."""
        task_id: str = self.reply["task_id"]
        return task_id

    @property
    def batch(self) -> dict[str, Any] | None:
        """The batch it leads ({'task_ids', 'params'}), or None for a single task."""
        return self.reply.get("batch")

    @property
    def members(self) -> list[str]:
        """The scheduler task ids one run of it completes: a batch's all, else its own."""
        batch = self.batch
        return batch["task_ids"] if batch is not None else [self.task_id]


def _report(task_id: str, status: RunStatus, **extra: Any) -> dict[str, Any]:
    """One task's report to the scheduler (JSON-shaped: the status as its plain name)."""
    return {"task_id": task_id, "status": status.value, **extra}


def _terminate(signum: int, frame: Any) -> None:
    raise WorkerTerminated("SIGTERM")


def _combined(lead: Task, batch_params: dict[str, list[str]]) -> Task:
    """The one task a batch runs: the lead's values, batch parameters merged by batch_method."""
    params = dict(lead.get_params())
    values = dict(lead.param_kwargs)
    for name, strings in batch_params.items():
        values[name] = params[name].parse_list(strings)
    return type(lead)(**values)
