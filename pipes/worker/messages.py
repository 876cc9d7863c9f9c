"""What the worker and its children say to each other: one small frozen type per message.

The worker sends a child a list of TaskSent (or None: stop); a child answers with lists of
TaskEnded and FieldSet. They travel as pickles (channel.py), so both ends are this code.
"""

from __future__ import annotations

import enum
import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipes.task import Task
from pipes.task_register import get_task_cls


class RunStatus(enum.StrEnum):
    """How one attempt at running a task ended (a str: compares and serialises as its name)."""

    DONE = "DONE"
    FAILED = "FAILED"
    SUSPENDED = "SUSPENDED"  # run() yielded dynamic dependencies that are not complete
    PENDING = "PENDING"  # handed to a child that never started it: give it back


@dataclass(frozen=True, slots=True)
class TaskRef:
    """Enough to find or rebuild a task in a child: its id, module, family and parameters."""

    task_id: str
    module: str
    family: str
    params: dict[str, str]

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return TaskRef, (self.task_id, self.module, self.family, self.params)

    @classmethod
    def of(cls, task: Task) -> TaskRef:
        """The reference of a task."""
        return cls(task.task_id, type(task).__module__, task.task_family, task.to_str_params())

    def load(self, known: Mapping[str, Task]) -> Task:
        """The task itself: from `known` (the forked snapshot), else rebuilt by the registry."""
        task = known.get(self.task_id)
        if task is None:
            importlib.import_module(self.module)
            task = get_task_cls(self.family).from_str_params(self.params)
        return task


@dataclass(frozen=True, slots=True)
class TaskSent:
    """Worker to child: run this task, numbered `seq`.

    `key` is the scheduler task id; `ref` is None when the child knows the task from its
    fork snapshot, else how to rebuild it."""

    seq: int
    key: str
    ref: TaskRef | None

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return TaskSent, (self.seq, self.key, self.ref)  # as cheap as a tuple (see TaskEnded)


@dataclass(frozen=True, slots=True)
class TaskEnded:
    """Child to worker: task `seq` ended."""

    seq: int
    status: RunStatus
    error: str | None  # why it failed (FAILED only)
    message: str | None  # what on_success() returned (DONE only)
    seconds: float
    new_deps: tuple[TaskRef, ...]  # SUSPENDED: the dynamic dependencies it waits on
    log_tail: str | None

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # As a plain tuple (the status by its name): a dataclass's default pickling costs
        # about 3 us a message, at one message per task on the worker's busiest path.
        fields = (self.seq, self.status.value, self.error, self.message, self.seconds)
        return _task_ended, (*fields, self.new_deps, self.log_tail)


def _task_ended(seq: int, status: str, *rest: Any) -> TaskEnded:
    return TaskEnded(seq, _STATUS[status], *rest)


_STATUS = {status.value: status for status in RunStatus}  # faster than RunStatus(name)


@dataclass(frozen=True, slots=True)
class FieldSet:
    """Child to worker: run() of task `seq` set a status field (set_status_message, ...)."""

    seq: int
    name: str
    value: Any

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return FieldSet, (self.seq, self.name, self.value)
