"""pipes.build: schedule and run tasks from Python, returning a RunResult (never exiting)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable

from pipes.config import get_config
from pipes.exceptions import UsageError
from pipes.rpc import RemoteScheduler, RetryPolicy
from pipes.scheduler.api import SchedulerAPI
from pipes.scheduler.local import LocalScheduler
from pipes.scheduler.model import Policy
from pipes.summary import RunResult, classify
from pipes.task import Task
from pipes.worker.progress import Progress
from pipes.worker.runner import RunnerOptions
from pipes.worker.worker import Worker, WorkerOptions

logger = logging.getLogger("pipes.interface")


def build(
    tasks: Iterable[Task],
    workers: int | None = None,
    local_scheduler: bool = True,
    scheduler_url: str | None = None,
    detailed_summary: bool = False,
) -> RunResult:
    """Run `tasks` and what they need; the result is truthy when all of them are complete.

    Differs from luigi: always returns the detailed RunResult, whose bool is luigi's bool.
    """
    result = execute(list(tasks), workers, local_scheduler, scheduler_url)
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
    scheduler = _scheduler(local_scheduler, scheduler_url)
    worker = Worker(scheduler, worker_options(workers, assistant))
    if get_config().getboolean("worker", "progress", True):
        worker.progress = Progress(
            log_every=get_config().getfloat("worker", "progress_every", 30.0)
        )
    worker.add(roots)
    worker.run()
    ran = {task_id: outcome.status for task_id, outcome in worker.ran.items()}
    result = RunResult(roots, classify(worker.graph, ran), dict(worker.graph.tasks))
    result.errors = {
        **worker.graph.broken,
        **{
            task_id: outcome.error or ""
            for task_id, outcome in worker.ran.items()
            if outcome.status == "FAILED"
        },
    }
    return result


def worker_options(workers: int | None = None, assistant: bool = False) -> WorkerOptions:
    """WorkerOptions from [worker] / [core] config, with an explicit worker count winning."""
    config = get_config()
    count = workers if workers is not None else config.getint("core", "workers", 1)
    if count < 1:
        raise UsageError(f"workers must be at least 1, got {count}")
    timeout = config.getfloat("worker", "timeout", 0.0)
    runner = RunnerOptions(
        workers=count,
        force_multiprocessing=config.getboolean("worker", "force_multiprocessing", False),
        timeout=timeout if timeout > 0 else None,
        max_tasks_per_child=config.getint("worker", "max_tasks_per_child", 1000),
        max_child_rss_mb=config.getfloat("worker", "max_child_rss_mb", 2048.0),
        log_dir=config.get("worker", "task_log_dir"),
        check_outputs=config.getboolean("worker", "check_complete_on_run", True),
    )
    return WorkerOptions(
        runner=runner,
        wait_interval=config.getfloat("worker", "wait_interval", 1.0),
        keep_alive=config.getboolean("worker", "keep_alive", False),
        ping_interval=config.getfloat("worker", "ping_interval", 5.0),
        assistant=assistant,
        check_complete_concurrency=config.getint("worker", "check_complete_concurrency", 4),
        check_complete_timeout=config.getfloat("worker", "check_complete_timeout", 600.0) or None,
        cache_task_completion=config.getboolean("worker", "cache_task_completion", True),
        get_work_batch=max(1, min(100, config.getint("worker", "get_work_batch", 4))),
    )


def scheduler_policy() -> Policy:
    """The scheduler Policy from [scheduler] config."""
    config = get_config()
    default = Policy()
    return Policy(
        retry_delay=config.getfloat("scheduler", "retry_delay", default.retry_delay),
        retry_count=config.getint("scheduler", "retry_count", default.retry_count),
        disable_window=config.getfloat("scheduler", "disable_window", default.disable_window),
        disable_persist=config.getfloat("scheduler", "disable_persist", default.disable_persist),
        worker_disconnect_delay=config.getfloat(
            "scheduler", "worker_disconnect_delay", default.worker_disconnect_delay
        ),
        remove_delay=config.getfloat("scheduler", "remove_delay", default.remove_delay),
    )


def _scheduler(local_scheduler: bool, scheduler_url: str | None) -> SchedulerAPI:
    """The explicit URL, else (unless local_scheduler) [core] scheduler_url, else in-process."""
    config = get_config()
    url = scheduler_url or (None if local_scheduler else config.get("core", "scheduler_url"))
    if not url:
        return LocalScheduler(scheduler_policy(), configured_resources())
    token = os.environ.get("PIPES_AUTH_TOKEN") or config.get("core", "scheduler_token")
    retry = RetryPolicy(deadline=config.getfloat("core", "rpc_retry_seconds", 300.0))
    remote = RemoteScheduler(url, token=token, retry=retry)
    remote.check(config.getfloat("core", "rpc_connect_seconds", 5.0))
    return remote


def configured_resources() -> dict[str, int]:
    """Resource capacities from the [resources] config section."""
    config = get_config()
    return {name: config.getint("resources", name, 0) for name in config.section("resources")}
