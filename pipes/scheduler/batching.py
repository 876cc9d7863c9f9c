"""Batching: ready tasks of one family that differ only in batch parameters run as one.

A family opts in by giving parameters a batch_method; the scheduler then hands a worker one
task plus its ready siblings (same family, same other parameters), all BATCH_RUNNING.
"""

from __future__ import annotations

from collections.abc import Callable

from pipes.scheduler.model import Status, TaskRecord

GroupKey = tuple[str, tuple[tuple[str, str], ...]]


def group_key(task: TaskRecord) -> GroupKey:
    """Tasks with equal keys may share a batch: same family, same non-batch parameters."""
    fixed = tuple(sorted((k, v) for k, v in task.params.items() if k not in task.batch_params))
    return task.family, fixed


def is_ready(task: TaskRecord) -> bool:
    """PENDING with every dependency done."""
    return task.status == Status.PENDING and task.unfinished == 0


class BatchIndex:
    """Ready batchable tasks by group, so gathering a batch never scans all tasks."""

    def __init__(self) -> None:
        self._groups: dict[GroupKey, dict[str, TaskRecord]] = {}

    def add(self, task: TaskRecord) -> None:
        """Note a ready batchable task (entries that stop being ready are dropped lazily)."""
        self._groups.setdefault(group_key(task), {})[task.task_id] = task

    def gather(self, lead: TaskRecord, allowed: Callable[[TaskRecord], bool]) -> list[TaskRecord]:
        """Up to max_batch_size - 1 ready siblings of `lead` that `allowed` accepts."""
        group = self._groups.get(group_key(lead), {})
        room = (lead.max_batch_size or len(group) + 1) - 1
        found: list[TaskRecord] = []
        for task_id, task in list(group.items()):
            if len(found) >= room:
                break
            if task is lead or not is_ready(task):
                del group[task_id]
            elif allowed(task):
                found.append(task)
                del group[task_id]
        return found
