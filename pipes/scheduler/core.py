"""The scheduler state machine: tasks, workers, resources and the ready queue, with no I/O.

Every method takes `now` from the caller and records what changed as events, which the
wrapping store commits before the caller's reply goes out (see take_events).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pipes.exceptions import BadRequest
from pipes.scheduler.model import Policy, Status, TaskRecord, TaskSpec
from pipes.scheduler.ready_queue import ReadyQueue

WAITING = (Status.PENDING, Status.FAILED, Status.DISABLED, Status.UNKNOWN)


@dataclass(slots=True)
class WorkerRecord:
    """A worker the scheduler has heard from."""

    worker_id: str
    info: dict[str, Any] = field(default_factory=dict)
    last_seen: float = 0.0
    tasks: set[str] = field(default_factory=set)  # tasks it has a stake in
    running: set[str] = field(default_factory=set)
    assistant: bool = False


@dataclass(frozen=True, slots=True)
class StatusChange:
    """Event: a task's status changed."""

    task_id: str
    status: Status
    worker: str | None
    time: float


class Scheduler:
    """De-duplicating task scheduler; get_work costs O(log n) via per-worker ready queues."""

    def __init__(
        self, policy: Policy | None = None, resources: dict[str, int] | None = None
    ) -> None:
        self.policy = policy or Policy()
        self.resources: dict[str, int] = dict(resources or {})
        self.tasks: dict[str, TaskRecord] = {}
        self.workers: dict[str, WorkerRecord] = {}
        self._used: dict[str, int] = {}
        self._ready = ReadyQueue()
        self._retry_heap: list[tuple[float, str]] = []
        self._events: list[StatusChange] = []

    def take_events(self) -> list[StatusChange]:
        """The events since the last call, for the store to commit."""
        events, self._events = self._events, []
        return events

    # ----- workers -------------------------------------------------------------------------

    def add_worker(self, worker: str, info: dict[str, Any], now: float) -> None:
        """Register (or refresh) a worker and what it says about itself."""
        record = self._worker(worker, now)
        record.info.update(info)
        record.assistant = bool(info.get("assistant", record.assistant))

    def ping(self, worker: str, now: float) -> None:
        """Keep-alive from a worker."""
        self._worker(worker, now)

    def _worker(self, worker: str, now: float) -> WorkerRecord:
        if not worker:
            raise BadRequest("worker id must be a non-empty string")
        record = self.workers.get(worker)
        if record is None:
            record = self.workers[worker] = WorkerRecord(worker)
        record.last_seen = now
        return record

    # ----- adding tasks and reporting results -------------------------------------------------

    def add_tasks(self, worker: str, specs: Iterable[TaskSpec], now: float) -> None:
        """Add or update many tasks for one worker: the batch form of add_task."""
        record = self._worker(worker, now)
        for spec in specs:
            self._add(record, spec, now)

    def _add(self, worker: WorkerRecord, spec: TaskSpec, now: float) -> None:
        task = self._record(spec.task_id)
        if not task.known:
            self._describe(task, spec)
        task.stakeholders.add(worker.worker_id)
        worker.tasks.add(task.task_id)
        if spec.runnable and spec.status != Status.DONE:
            task.workers.add(worker.worker_id)
        if spec.deps is not None and not task.deps:
            self._link(task, spec.deps)
        if spec.new_deps:
            self._link(task, [d for d in spec.new_deps if d not in task.deps])
        self._raise_priority(task, spec.priority)
        self._apply_reported_status(worker, task, spec, now)

    def _describe(self, task: TaskRecord, spec: TaskSpec) -> None:
        task.known = True
        task.family, task.module, task.params = spec.family, spec.module, spec.params
        task.resources = spec.resources
        task.retry_count, task.retry_delay = spec.retry_count, spec.retry_delay
        task.disable_window = spec.disable_window

    def _record(self, task_id: str) -> TaskRecord:
        task = self.tasks.get(task_id)
        if task is None:
            task = self.tasks[task_id] = TaskRecord(task_id)
        return task

    def _link(self, task: TaskRecord, dep_ids: list[str]) -> None:
        task.deps = (*task.deps, *dep_ids)
        for dep_id in dep_ids:
            dep = self._record(dep_id)
            dep.dependents.append(task.task_id)
            if dep.status != Status.DONE:
                task.unfinished += 1
            if task.priority > dep.priority:
                self._raise_priority(dep, task.priority)

    def _raise_priority(self, task: TaskRecord, priority: int) -> None:
        """A task's priority lifts its dependencies' so they are not starved."""
        stack = [(task, priority)]
        while stack:
            current, wanted = stack.pop()
            if wanted <= current.priority and current.known:
                continue
            current.priority = max(current.priority, wanted)
            if self._is_ready(current):
                self._ready.push(current)
            stack.extend((self._record(d), current.priority) for d in current.deps)

    def _apply_reported_status(
        self, worker: WorkerRecord, task: TaskRecord, spec: TaskSpec, now: float
    ) -> None:
        reported = spec.status
        if reported == Status.DONE:
            self._set_done(task, worker.worker_id, now)
        elif reported == Status.FAILED:
            self._set_failed(task, worker.worker_id, spec.error, now)
        elif reported == Status.UNKNOWN:
            task.error = spec.error
            self._set_status(task, Status.UNKNOWN, worker.worker_id, now)
        elif task.status == Status.DONE:
            self._reopen(task, worker.worker_id, now)  # its output went missing
        elif task.status == Status.UNKNOWN or (
            task.status == Status.RUNNING and task.worker_running == worker.worker_id
        ):
            self._set_status(task, Status.PENDING, worker.worker_id, now)
        if self._is_ready(task):
            self._ready.push(task)

    def _set_status(self, task: TaskRecord, status: Status, worker: str | None, now: float) -> None:
        if task.status in (Status.RUNNING, Status.BATCH_RUNNING) and status != task.status:
            self._release(task)
        task.status = status
        task.updated = now
        self._events.append(StatusChange(task.task_id, status, worker, now))

    def _set_done(self, task: TaskRecord, worker: str, now: float) -> None:
        if task.status == Status.DONE:
            return
        task.error = None
        self._set_status(task, Status.DONE, worker, now)
        for dependent_id in task.dependents:
            dependent = self.tasks[dependent_id]
            dependent.unfinished -= 1
            if self._is_ready(dependent):
                self._ready.push(dependent)

    def _reopen(self, task: TaskRecord, worker: str, now: float) -> None:
        self._set_status(task, Status.PENDING, worker, now)
        for dependent_id in task.dependents:
            self.tasks[dependent_id].unfinished += 1

    def _set_failed(self, task: TaskRecord, worker: str, error: str | None, now: float) -> None:
        task.error = error
        window = _pick(task.disable_window, self.policy.disable_window)
        task.failures = [t for t in task.failures if t > now - window] + [now]
        if len(task.failures) >= _pick(task.retry_count, self.policy.retry_count):
            task.retry_at = now + self.policy.disable_persist
            self._set_status(task, Status.DISABLED, worker, now)
        else:
            task.retry_at = now + _pick(task.retry_delay, self.policy.retry_delay)
            self._set_status(task, Status.FAILED, worker, now)
        heapq.heappush(self._retry_heap, (task.retry_at, task.task_id))

    def _is_ready(self, task: TaskRecord) -> bool:
        return task.known and task.status == Status.PENDING and task.unfinished == 0

    # ----- handing out work ---------------------------------------------------------------

    def get_work(self, worker: str, now: float) -> dict[str, Any] | None:
        """The best ready task this worker may run, now RUNNING on it; None when there is none."""
        record = self._worker(worker, now)
        self.tick(now)
        queue = "" if record.assistant else worker
        task = self._ready.pop(queue, self._resources_free)
        if task is None:
            return None
        self._set_status(task, Status.RUNNING, worker, now)
        task.worker_running, task.time_running = worker, now
        record.running.add(task.task_id)
        for name, amount in task.resources.items():
            self._used[name] = self._used.get(name, 0) + amount
        return task.summary()

    def _resources_free(self, task: TaskRecord) -> bool:
        return all(
            self._used.get(name, 0) + amount <= self.resources.get(name, 1)
            for name, amount in task.resources.items()
        )

    def _release(self, task: TaskRecord) -> None:
        for name, amount in task.resources.items():
            self._used[name] = self._used.get(name, 0) - amount
        running_on = self.workers.get(task.worker_running or "")
        if running_on is not None:
            running_on.running.discard(task.task_id)
        task.worker_running = None

    def tick(self, now: float) -> None:
        """Move failed tasks whose retry time has come back to PENDING."""
        heap = self._retry_heap
        while heap and heap[0][0] <= now:
            _, task_id = heapq.heappop(heap)
            task = self.tasks[task_id]
            if task.status in (Status.FAILED, Status.DISABLED) and task.retry_at is not None:
                if task.retry_at <= now:
                    task.retry_at = None
                    self._set_status(task, Status.PENDING, None, now)
                    if self._is_ready(task):
                        self._ready.push(task)

    def outlook(self, worker: str, now: float) -> dict[str, int]:
        """Counts over this worker's tasks, so an idle worker knows whether to wait or stop."""
        record = self._worker(worker, now)
        counts = {"pending": 0, "running": 0, "running_elsewhere": 0, "waiting_for_retry": 0}
        for task_id in record.tasks:
            task = self.tasks[task_id]
            if task.status == Status.PENDING:
                counts["pending"] += 1
            elif task.status in (Status.RUNNING, Status.BATCH_RUNNING):
                counts["running"] += 1
                counts["running_elsewhere"] += task.worker_running != worker
            elif task.status == Status.FAILED:
                counts["waiting_for_retry"] += 1
        return counts

    # ----- reading and small updates ------------------------------------------------------

    def task(self, task_id: str) -> TaskRecord:
        """The record of a known task; BadRequest for an unknown id."""
        task = self.tasks.get(task_id)
        if task is None or not task.known:
            raise BadRequest(f"unknown task id {task_id!r}")
        return task

    def set_task_field(self, task_id: str, name: str, value: Any, now: float) -> None:
        """Set status_message, progress_percentage or tracking_url of a task."""
        if name not in ("status_message", "progress_percentage", "tracking_url"):
            raise BadRequest(f"cannot set task field {name!r}")
        task = self.task(task_id)
        setattr(task, name, value)
        task.updated = now

    def task_list(
        self,
        status: str | None = None,
        family: str | None = None,
        search: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> dict[str, Any]:
        """Known tasks filtered by status, family and id substring, {'total', 'tasks'}."""
        matches = [
            t
            for t in self.tasks.values()
            if t.known
            and (status is None or t.status == status)
            and (family is None or t.family == family)
            and (search is None or search in t.task_id)
        ]
        page = matches[offset : offset + limit]
        return {"total": len(matches), "tasks": [t.summary() for t in page]}


def _pick(own: float | int | None, default: float | int) -> Any:
    return default if own is None else own
