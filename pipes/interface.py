"""pipes.build: schedule and run tasks from Python, returning a RunResult (never exiting)."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import threading
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from pipes import task_register
from pipes.config import get_config, warn_unknown
from pipes.exceptions import BadRequest, SchedulerUnavailable, UsageError
from pipes.lock import LockOptions, RunLock, lock_name
from pipes.options import configured_resources, lock_options, scheduler_policy, worker_options
from pipes.scheduler.api import SchedulerClient
from pipes.scheduler.local import LocalScheduler
from pipes.summary import MAX_LISTED, RunResult, SchedulerContext, classify, not_run_reason
from pipes.task import Task
from pipes.worker.messages import RunStatus
from pipes.worker.progress import Progress
from pipes.worker.worker import Worker

if TYPE_CHECKING:
    from pipes.notifications import Notifier

logger = logging.getLogger("pipes.interface")
ALERT_SECTIONS = ("email", "smtp", "batch_email", "webhook")  # what alert_settings() reads


def build(  # noqa: PLR0913 -- luigi's keyword names, plus its lock switch
    tasks: Iterable[Task],
    workers: int | None = None,
    local_scheduler: bool = True,
    scheduler_url: str | None = None,
    detailed_summary: bool = False,
    lock: bool = False,
) -> RunResult:
    """Run `tasks` and what they need; the result is truthy when all of them are complete.

    Takes no run lock unless lock=True ([core] lock_size / lock_pid_dir apply; raises
    AlreadyRunning). Differs from luigi: always returns the detailed RunResult.
    """
    roots = list(tasks)
    with locked(roots, lock_options(no_lock=not lock)):
        result = execute(roots, workers, local_scheduler, scheduler_url)
    logger.info("%s", result.summary_text(detailed_summary))
    return result


def execute(
    roots: list[Task],
    workers: int | None,
    local_scheduler: bool,
    scheduler_url: str | None,
    assistant: bool = False,
) -> RunResult:
    """Schedule and run roots with one worker process; the shared body of build and the CLI."""
    for task in roots:
        if not isinstance(task, Task):
            raise UsageError(f"build() takes Task instances, got {task!r}")
    with _finish_up_on_sigusr1() as finish:
        scheduler = _scheduler(local_scheduler, scheduler_url)
        options = worker_options(workers, assistant)
        # The embedded scheduler serves this worker alone: nothing else runs its tasks
        options = dataclasses.replace(options, alone=isinstance(scheduler, LocalScheduler))
        worker = Worker(scheduler, options)
        finish.worker = worker
        if finish.asked:
            worker.finish_up()
        if get_config().getboolean("worker", "progress", True):
            worker.progress = Progress(
                log_every=get_config().getfloat("worker", "progress_every", 30.0)
            )
        if not assistant:  # an assistant has not imported the tasks whose sections it would see
            warn_config()
        with _alerts(worker):
            worker.add(roots)
            worker.run()
    ran = {task_id: outcome.status for task_id, outcome in worker.ran.items()}
    outcomes = classify(worker.graph, ran, worker.complete_now)
    result = RunResult(roots, outcomes, dict(worker.graph.tasks))
    result.errors = {
        **worker.graph.broken,
        **{
            task_id: outcome.error or ""
            for task_id, outcome in worker.ran.items()
            if outcome.status == RunStatus.FAILED
        },
    }
    if worker.stopping:  # SIGUSR1: what did not start was left on purpose
        reason = "not started (SIGUSR1: finishing up)"
        result.reasons = {t.task_id: reason for t in result.not_run}
    else:
        result.reasons = _not_run_reasons(scheduler, result)
    for task_id in worker.graph.disabled:  # Luigi's Task.disabled: the task said not to run
        result.reasons[task_id] = "disabled (Task.disabled is true)"
    _stop_worker(scheduler, worker.worker_id)
    return result


@contextlib.contextmanager
def _alerts(worker: Worker) -> Iterator[None]:
    """Alert each failure of the run; notifications is loaded only when an alert is configured."""
    config = get_config()
    if not any(config.section(name) for name in ALERT_SECTIONS):
        yield
        return
    from pipes.notifications import Notifier, alert_settings

    notifier = Notifier(alert_settings(config)).start()
    worker.on_failure = notifier.task_failed
    try:
        yield
        _alert_broken(notifier, worker)
    finally:
        notifier.close()  # a batched digest goes out now at the latest


def _alert_broken(notifier: Notifier, worker: Worker) -> None:
    """Alert each task whose requires(), complete() or output() raised during the walk."""
    for task_id, error in worker.graph.broken.items():
        task = worker.graph.tasks.get(task_id)
        if task is not None:
            notifier.task_failed(task, error, None, "SCHEDULING_ERROR")


class _FinishUp:
    """SIGUSR1 before the worker's run loop (connecting, walking the DAG) also means finish up.

    --take-lock sends SIGUSR1 at any time; its default action would kill the process.
    """

    def __init__(self) -> None:
        self.worker: Worker | None = None
        self.asked = False

    def __call__(self, signum: int, frame: Any) -> None:
        self.asked = True
        if self.worker is not None:
            self.worker.finish_up()


@contextlib.contextmanager
def _finish_up_on_sigusr1() -> Iterator[_FinishUp]:
    handler = _FinishUp()
    if threading.current_thread() is not threading.main_thread():
        yield handler
        return
    previous = signal.signal(signal.SIGUSR1, handler)
    try:
        yield handler
    finally:
        signal.signal(signal.SIGUSR1, previous)


def locked(
    roots: list[Task], options: LockOptions | None
) -> contextlib.AbstractContextManager[Any]:
    """The run lock for these roots (AlreadyRunning if it is held), or nothing without options."""
    if options is None or not roots:
        return contextlib.nullcontext()
    what = str(roots[0]) if len(roots) == 1 else f"{roots[0]} and {len(roots) - 1} more"
    return RunLock(lock_name(roots), options, what)


def _stop_worker(scheduler: SchedulerClient, worker_id: str) -> None:
    """Tell the scheduler this worker is gone, so the status page stops counting it as live."""
    try:
        scheduler.call("stop_worker", worker=worker_id)
    except BadRequest as err:  # a pipesd older than stop_worker: it forgets us after a minute
        logger.debug("scheduler did not take stop_worker: %s", err)


def _not_run_reasons(scheduler: SchedulerClient, result: RunResult) -> dict[str, str]:
    """Ask the scheduler why the listed not-run tasks (requested ones first) did not run."""
    not_run = result.not_run
    wanted = [t for t in result.roots if t in not_run] + not_run[:MAX_LISTED]
    if not wanted:
        return {}
    context = SchedulerContext(
        now=time.time(),
        paused=bool(scheduler.call("is_paused").get("paused")),
        capacity={r["name"]: r["total"] for r in scheduler.call("resource_list")["resources"]},
        names={task_id: str(task) for task_id, task in result.tasks.items()},
    )
    reasons = {}
    for task in dict.fromkeys(wanted):
        try:
            detail = scheduler.call("task_detail", task_id=task.task_id)
        except BadRequest as err:  # pruned meanwhile: say so rather than fail the summary
            reasons[task.task_id] = f"the scheduler no longer knows it ({err})"
            continue
        reasons[task.task_id] = not_run_reason(detail, context)
        logger.debug("%s did not run: %s", task, reasons[task.task_id])
    return reasons


def warn_config() -> None:
    """Warn once about config sections and options nothing reads (call after tasks import)."""
    families: dict[str, set[str]] = {}
    for cls in task_register.all_task_classes():
        options = families.setdefault(cls.get_task_family(), set())
        for name, param in cls.get_params():
            options.add(name)
            if param.config_path:
                path = param.config_path
                families.setdefault(path["section"], set()).add(path["name"])
    warn_unknown(families)


def _scheduler(local_scheduler: bool, scheduler_url: str | None) -> SchedulerClient:
    """The explicit URL, else (unless local_scheduler) [core] scheduler_url, else in-process."""
    config = get_config()
    url = scheduler_url or (None if local_scheduler else config.get("core", "scheduler_url"))
    if not url:
        return LocalScheduler(scheduler_policy(), configured_resources())
    from pipes.rpc import RemoteScheduler, RetryPolicy  # http.client: only for a remote pipesd

    token = os.environ.get("PIPES_AUTH_TOKEN") or config.get("core", "scheduler_token")
    retry = RetryPolicy(deadline=config.getfloat("core", "rpc_retry_seconds", 300.0))
    remote = RemoteScheduler(url, token=token, retry=retry)
    try:
        remote.check(config.getfloat("core", "rpc_connect_seconds", 5.0))
    except SchedulerUnavailable as err:
        if scheduler_url:  # an explicit URL wins over --local-scheduler: no hint to give
            raise
        where = config.where("core", "scheduler_url")
        raise SchedulerUnavailable(
            f"{err}; {where} names it: add --local-scheduler to run without pipesd"
        ) from err
    return remote
