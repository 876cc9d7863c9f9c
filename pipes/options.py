"""Run options from configuration: the worker's, the run lock's and the scheduler's policy.

Each reads [core], [worker], [scheduler] or [resources] once per run; an explicit value
given on the command line or to build() wins over the config.
"""

from __future__ import annotations

import os

from pipes.config import get_config
from pipes.exceptions import UsageError
from pipes.lock import LockOptions, default_pid_dir
from pipes.scheduler.model import Policy
from pipes.worker.runner import RunnerOptions
from pipes.worker.worker import WorkerOptions


def lock_options(
    no_lock: bool | None = None,
    size: int | None = None,
    pid_dir: str | None = None,
    take: bool | None = None,
) -> LockOptions | None:
    """The run lock's options: each given value, else [core] no_lock / lock_size /
    lock_pid_dir / take_lock; None when the run takes no lock."""
    config = get_config()
    if no_lock if no_lock is not None else config.getboolean("core", "no_lock", False):
        return None
    size = size if size is not None else config.getint("core", "lock_size", 1)
    if size < 1:
        raise UsageError(f"lock size must be at least 1, got {size}")
    return LockOptions(
        pid_dir=os.path.expanduser(
            pid_dir or config.get("core", "lock_pid_dir") or default_pid_dir()
        ),
        size=size,
        take=take if take is not None else config.getboolean("core", "take_lock", False),
    )


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
        get_work_batch_seconds=max(0.0, config.getfloat("worker", "get_work_batch_seconds", 0.1)),
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


def configured_resources() -> dict[str, int]:
    """Resource capacities from the [resources] config section."""
    config = get_config()
    return {name: config.getint("resources", name, 0) for name in config.section("resources")}
