"""The worker's child processes: each runs task after task, sent over a pipe, in isolation.

A child lives in its own process group (so a timeout can kill it with everything it
started), writes each task's stdout/stderr to that task's log file, and sends progress
fields and the outcome back to the worker as small tuples.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import os
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from pipes.task import Task
from pipes.task_register import get_task_cls
from pipes.worker.execute import Execution

# Tasks the parent knew when it forked this child: looked up by id before rebuilding one.
known_tasks: dict[str, Task] = {}


@dataclass(frozen=True)
class TaskRef:
    """Enough to find or rebuild a task in a child: its id, module, family and parameters."""

    task_id: str
    module: str
    family: str
    params: dict[str, str]

    @classmethod
    def of(cls, task: Task) -> TaskRef:
        """The reference of a task."""
        return cls(task.task_id, type(task).__module__, task.task_family, task.to_str_params())

    def load(self) -> Task:
        """The task itself: from the forked snapshot, else rebuilt through the registry."""
        task = known_tasks.get(self.task_id)
        if task is None:
            importlib.import_module(self.module)
            task = get_task_cls(self.family).from_str_params(self.params)
        return task


@contextlib.contextmanager
def output_to(log_path: str | None) -> Iterator[None]:
    """Send this process's stdout and stderr (fds 1 and 2) to log_path for the block."""
    if log_path is None:
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for descriptor in (fd, *saved):
            os.close(descriptor)


def child_main(conn: Connection, check_outputs: bool) -> None:
    """Serve ("run", TaskRef, log_path) requests until the pipe closes or says stop."""
    os.setpgid(0, 0)
    gc.freeze()  # inherited objects: the child's collector never walks them (no copy-on-write)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the worker decides what a Ctrl-C stops
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the worker's handler: just stop
    while True:
        try:
            request = conn.recv()
        except EOFError:
            return
        if request[0] != "run":
            return
        _, ref, log_path = request
        conn.send(("done", _run_one(conn, ref, log_path, check_outputs)))


def _run_one(conn: Connection, ref: TaskRef, log_path: str | None, check: bool) -> dict[str, Any]:
    with output_to(log_path):
        try:
            task = ref.load()
        except Exception as err:
            return {"status": "FAILED", "error": f"cannot load {ref.family} in the child: {err}"}
        task._status_reporter = lambda name, value: conn.send(("field", name, value))
        outcome = Execution(task, check).step()
    return {
        "status": outcome.status,
        "error": outcome.error,
        "seconds": outcome.seconds,
        "new_deps": [TaskRef.of(dep) for dep in outcome.new_deps],
    }
