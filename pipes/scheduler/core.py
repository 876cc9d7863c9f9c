"""The scheduler state machine: tasks, workers, resources and the ready queue, with no I/O.

Every method takes `now` from the caller and records what changed as events, which the
wrapping store commits before the caller's reply goes out (see take_changes).
"""

from __future__ import annotations

import heapq
from collections.abc import Collection, Iterable
from typing import Any

from pipes.scheduler.batching import BatchIndex
from pipes.scheduler.groups import WorkerGroups
from pipes.scheduler.index import CompletionTimeline, TaskIndex
from pipes.scheduler.model import (
    Batch,
    Changes,
    Outlook,
    Policy,
    Refused,
    Status,
    StatusChange,
    TaskRecord,
    TaskSpec,
    Work,
    WorkerRecord,
)
from pipes.scheduler.ready_queue import ReadyQueue

MAX_LOG_CHARS = 64 * 1024  # of a task's log tail kept for the status page


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
        self._dirty: dict[str, TaskRecord] = {}
        self._removed: list[str] = []
        self._settings: dict[str, Any] = {}
        self._orphans: dict[str, float] = {}  # task id -> when it lost its last stakeholder
        self._groups = WorkerGroups()
        self._batches = BatchIndex()
        self._holding: set[str] = set()  # tasks holding resources (one per batch)
        self.paused = False
        self.index = TaskIndex()
        self.timeline = CompletionTimeline()
        self._logs: dict[str, str] = {}

    def take_changes(self) -> Changes:
        """Everything changed since the last call, for the store to commit before replying."""
        changes = Changes(
            list(self._dirty.values()), self._removed, self._events, self._settings, self._logs
        )
        self._dirty, self._removed, self._events, self._settings, self._logs = {}, [], [], {}, {}
        return changes

    def has_changes(self) -> bool:
        """Whether anything changed that take_changes() has not handed over yet."""
        return bool(self._dirty or self._removed or self._events or self._settings or self._logs)

    @property
    def ready_entries(self) -> int:
        """Entries the ready queues hold, stale ones included (for /metrics)."""
        return self._ready.size()

    @property
    def counts(self) -> dict[Status, int]:
        """Number of known tasks in each status."""
        return self.index.counts()

    def _touch(self, task: TaskRecord) -> None:
        self._dirty[task.task_id] = task

    # ----- workers -------------------------------------------------------------------------

    def knows_worker(self, worker: str, info: dict[str, Any]) -> bool:
        """Whether add_worker(worker, info) would only count as a keep-alive."""
        record = self.workers.get(worker)
        return record is not None and all(record.info.get(k) == v for k, v in info.items())

    def add_worker(self, worker: str, info: dict[str, Any], now: float) -> None:
        """Register (or refresh) a worker and what it says about itself."""
        record = self._worker(worker, now)
        if any(record.info.get(key) != value for key, value in info.items()):
            record.info.update(info)
            record.assistant = bool(record.info.get("assistant", False))
            self._settings[f"worker:{worker}"] = record.info  # a restart remembers who it is
            self._sync_assistant_queue()

    def _sync_assistant_queue(self) -> None:
        """Keep the assistants' ready queue only while an assistant exists: nobody else pops it."""
        wanted = any(w.assistant for w in self.workers.values())
        if wanted and not self._ready.serves_assistants:
            pending = self.index.by_status[Status.PENDING]
            self._ready.open_assistant_queue(
                t for t in map(self.tasks.__getitem__, pending) if self._is_ready(t)
            )
        elif not wanted and self._ready.serves_assistants:
            self._ready.close_assistant_queue()

    def ping(self, worker: str, now: float) -> None:
        """Keep-alive from a worker."""
        self._worker(worker, now)

    def _worker(self, worker: str, now: float) -> WorkerRecord:
        if not worker:
            raise Refused("worker id must be a non-empty string")
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
            task.updated = now
        self._touch(task)
        self._orphans.pop(task.task_id, None)
        task.stakeholders = self._groups.with_member(task.stakeholders, worker.worker_id)
        first_add = task.task_id not in worker.tasks
        if first_add:
            worker.tasks.add(task.task_id)
            worker.counts[task.status] += 1
        if first_add and spec.runnable and spec.status == Status.PENDING:
            self._retry_now(task, worker.worker_id, now)
        if spec.runnable and spec.status != Status.DONE:
            task.workers = self._groups.with_member(task.workers, worker.worker_id)
        if spec.deps is not None and not task.deps:
            self._link(task, spec.deps)
        if spec.new_deps:
            self._link(task, [d for d in spec.new_deps if d not in task.deps])
        self._raise_priority(task, spec.priority)
        self._apply_reported_status(worker, task, spec, now)
        if spec.log_tail is not None:
            self._logs[task.task_id] = spec.log_tail[-MAX_LOG_CHARS:]

    def _describe(self, task: TaskRecord, spec: TaskSpec) -> None:
        task.known = True
        task.family, task.module, task.params = spec.family, spec.module, spec.params
        self.index.add(task)
        task.resources = spec.resources
        task.retry_count, task.retry_delay = spec.retry_count, spec.retry_delay
        task.disable_window = spec.disable_window
        task.batch_params = tuple(spec.batch_params or ())
        task.max_batch_size = spec.max_batch_size
        task.owners = tuple(spec.owners or ())

    def _record(self, task_id: str) -> TaskRecord:
        task = self.tasks.get(task_id)
        if task is None:
            task = self.tasks[task_id] = TaskRecord(task_id)
        return task

    def _link(self, task: TaskRecord, dep_ids: list[str]) -> None:
        task.deps = (*task.deps, *dep_ids)
        self.index.version += 1  # derived views (upstream failed) follow the new edges
        for dep_id in dep_ids:
            dep = self._record(dep_id)
            dep.dependents.append(task.task_id)
            if dep.status != Status.DONE:
                task.unfinished += 1
            if task.priority > dep.priority:
                self._raise_priority(dep, task.priority)

    def _raise_priority(self, task: TaskRecord, priority: int) -> None:
        """A task's priority lifts its dependencies' so they are not starved."""
        if priority <= task.priority and task.known:
            return  # the usual case: nothing to lift
        stack = [(task, priority)]
        while stack:
            current, wanted = stack.pop()
            if wanted <= current.priority and current.known:
                continue
            current.priority = max(current.priority, wanted)
            if current.known:
                self._touch(current)
            if self._is_ready(current):
                self._enqueue(current)
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
            self._set_status(task, Status.PENDING, worker.worker_id, now)  # output went missing
        elif task.status == Status.UNKNOWN or (
            task.status in (Status.RUNNING, Status.BATCH_RUNNING)
            and task.worker_running == worker.worker_id
        ):
            self._set_status(task, Status.PENDING, worker.worker_id, now)
        if self._is_ready(task):
            self._enqueue(task)

    def _set_status(self, task: TaskRecord, status: Status, worker: str | None, now: float) -> None:
        if task.status in (Status.RUNNING, Status.BATCH_RUNNING) and status != task.status:
            self._release(task)
        if task.known:
            self.index.move(task, status)
            self.timeline.record(status, now)
            for stakeholder in task.stakeholders:
                record = self.workers.get(stakeholder)  # None while it is being dropped
                if record is not None:
                    record.counts[task.status] -= 1
                    record.counts[status] += 1
        if (task.status == Status.DONE) != (status == Status.DONE):
            self._recount_dependents(task, -1 if status == Status.DONE else 1)
        task.status = status
        task.updated = now
        self._touch(task)
        running_on = self.workers.get(worker or "")
        host = running_on.info.get("host") if running_on else None
        self._events.append(StatusChange(task.task_id, status, worker, host, now))

    def _recount_dependents(self, task: TaskRecord, change: int) -> None:
        """A task entered (-1) or left (+1) DONE: its dependents' unfinished counts follow."""
        for dependent_id in task.dependents:
            dependent = self.tasks[dependent_id]
            dependent.unfinished += change
            if change < 0 and self._is_ready(dependent):
                self._enqueue(dependent)

    def _set_done(self, task: TaskRecord, worker: str, now: float) -> None:
        if task.status == Status.DONE:
            return
        task.error = None
        self._set_status(task, Status.DONE, worker, now)

    def _set_failed(self, task: TaskRecord, worker: str, error: str | None, now: float) -> None:
        task.error = error
        window = _pick(task.disable_window, self.policy.disable_window)
        task.failures = (*(t for t in task.failures if t > now - window), now)
        if len(task.failures) >= _pick(task.retry_count, self.policy.retry_count):
            task.retry_at = now + self.policy.disable_persist
            self._set_status(task, Status.DISABLED, worker, now)
        else:
            task.retry_at = now + _pick(task.retry_delay, self.policy.retry_delay)
            self._set_status(task, Status.FAILED, worker, now)
        heapq.heappush(self._retry_heap, (task.retry_at, task.task_id))

    def _retry_now(self, task: TaskRecord, worker: str, now: float) -> None:
        """A new invocation asked for a FAILED task: it runs now, its retry_delay waived.

        retry_delay paces automatic retries only (a keep_alive worker waiting on the task,
        or one re-adding it during its run); failures still count, so DISABLED still holds.
        Differs from luigi: an explicit re-run does not wait out retry_delay.
        """
        if task.status == Status.FAILED:
            task.retry_at = None
            self._set_status(task, Status.PENDING, worker, now)

    def _enqueue(self, task: TaskRecord) -> None:
        self._ready.push(task)
        if task.batch_params:
            self._batches.add(task)

    def _is_ready(self, task: TaskRecord) -> bool:
        return task.known and task.status == Status.PENDING and task.unfinished == 0

    # ----- handing out work ---------------------------------------------------------------

    def get_work(
        self,
        worker: str,
        now: float,
        running: Collection[str] | None = None,
        min_priority: int | None = None,
    ) -> Work | None:
        """The best ready task this worker may run, now RUNNING on it; None when there is none.

        A task RUNNING on this worker but missing from `running` was handed out in a reply
        the worker never received, so it is handed out again first.
        """
        record = self._worker(worker, now)
        if running is not None:
            lost = sorted(record.running.difference(running))
            if lost:
                return self._work_reply(self.tasks[lost[0]])
        self.tick(now)
        if self.paused:
            return None
        queue = "" if record.assistant else worker
        task = self._ready.pop(queue, self._resources_free, min_priority)
        if task is None:
            return None
        members = [task]
        if task.batch_params:
            members += self._batches.gather(
                task,
                lambda t: t.task_id in self.tasks and (record.assistant or worker in t.workers),
            )
        status = Status.BATCH_RUNNING if len(members) > 1 else Status.RUNNING
        for member in members:
            self._set_status(member, status, worker, now)
            member.worker_running, member.time_running = worker, now
            member.batch_lead = task.task_id if len(members) > 1 else None
            record.running.add(member.task_id)
        self._hold(task)
        return self._work_reply(task)

    def _hold(self, task: TaskRecord) -> None:
        self._holding.add(task.task_id)
        for name, amount in task.resources.items():
            self._used[name] = self._used.get(name, 0) + amount

    def _work_reply(self, task: TaskRecord) -> Work:
        """get_work's answer: the task, and for a batch every member's batch parameters."""
        lead = task.batch_lead
        if lead is None:
            return Work(task)
        running_on = self.workers[task.worker_running or ""].running
        members = [self.tasks[t] for t in sorted(running_on) if self.tasks[t].batch_lead == lead]
        batch = Batch(
            task_ids=[m.task_id for m in members],
            params={n: [m.params[n] for m in members] for n in task.batch_params},
        )
        return Work(self.tasks[lead], batch)

    def _fits(self, task: TaskRecord) -> bool:
        """Whether the task could ever run: it asks for no more than each resource has."""
        return all(amount <= self.resources.get(n, 1) for n, amount in task.resources.items())

    def _resources_free(self, task: TaskRecord) -> bool:
        return not task.resources or all(
            self._used.get(name, 0) + amount <= self.resources.get(name, 1)
            for name, amount in task.resources.items()
        )

    def _release(self, task: TaskRecord) -> None:
        if task.task_id in self._holding:
            self._holding.discard(task.task_id)
            for name, amount in task.resources.items():
                self._used[name] = self._used.get(name, 0) - amount
        task.batch_lead = None
        running_on = self.workers.get(task.worker_running or "")
        if running_on is not None:
            running_on.running.discard(task.task_id)
        task.worker_running = None

    def tick(self, now: float) -> None:
        """Move failed tasks whose retry time has come back to PENDING."""
        heap = self._retry_heap
        while heap and heap[0][0] <= now:
            _, task_id = heapq.heappop(heap)
            task = self.tasks.get(task_id)
            if (
                task is not None
                and task.status in (Status.FAILED, Status.DISABLED)
                and task.retry_at is not None
            ):
                if task.retry_at <= now:
                    task.retry_at = None
                    self._set_status(task, Status.PENDING, None, now)
                    if self._is_ready(task):
                        self._enqueue(task)

    def outlook(self, worker: str, now: float) -> Outlook:
        """Counts over this worker's tasks, so an idle worker knows whether to wait or stop.

        Idle workers ask about once a second, so this never walks the worker's tasks: it
        reads counts kept per worker, the (short) set of running tasks and its ready queue.
        """
        record = self._worker(worker, now)
        mine, counts, by_status = record.tasks, record.counts, self.index.by_status
        running = (by_status[Status.RUNNING] | by_status[Status.BATCH_RUNNING]) & mine
        return Outlook(
            pending=counts[Status.PENDING],
            ready=self._ready.count(
                worker, lambda t: t.task_id in mine and worker in t.workers and self._fits(t)
            ),
            running=counts[Status.RUNNING] + counts[Status.BATCH_RUNNING],
            running_elsewhere=sum(self.tasks[t].worker_running != worker for t in running),
            waiting_for_retry=counts[Status.FAILED],
        )

    # ----- reading and small updates ------------------------------------------------------

    def task(self, task_id: str) -> TaskRecord:
        """The record of a known task; Refused for an unknown id."""
        task = self.tasks.get(task_id)
        if task is None or not task.known:
            raise Refused(f"unknown task id {task_id!r}")
        return task

    def set_task_field(self, task_id: str, name: str, value: Any, now: float) -> None:
        """Set status_message, progress_percentage, tracking_url or the log tail of a task."""
        if name not in ("status_message", "progress_percentage", "tracking_url", "log_tail"):
            raise Refused(f"cannot set task field {name!r}")
        task = self.task(task_id)
        if name == "log_tail":  # a running task's output so far: kept by the store, not the record
            if task.status in (Status.RUNNING, Status.BATCH_RUNNING):  # not after its final tail
                self._logs[task_id] = value[-MAX_LOG_CHARS:]
            return
        setattr(task, name, value)
        task.updated = now
        self._touch(task)

    # ----- operator actions -----------------------------------------------------------------

    def forgive_failures(self, task_id: str, now: float) -> None:
        """Clear a FAILED or DISABLED task's failures and make it runnable now."""
        task = self.task(task_id)
        if task.status not in (Status.FAILED, Status.DISABLED):
            raise Refused(f"task {task_id} is {task.status}, not FAILED or DISABLED")
        self._make_pending(task, now)

    def re_enable_task(self, task_id: str, now: float) -> None:
        """Lift the disable on a DISABLED task, forgetting its failures."""
        task = self.task(task_id)
        if task.status != Status.DISABLED:
            raise Refused(f"task {task_id} is {task.status}, not DISABLED")
        self._make_pending(task, now)

    def _make_pending(self, task: TaskRecord, now: float) -> None:
        task.failures, task.retry_at, task.error = (), None, None
        self._set_status(task, Status.PENDING, None, now)
        if self._is_ready(task):
            self._enqueue(task)

    def mark_as_done(self, task_id: str, now: float) -> None:
        """Declare a task DONE by hand, releasing its dependents."""
        task = self.task(task_id)
        if task.status in (Status.RUNNING, Status.BATCH_RUNNING):
            raise Refused(f"task {task_id} is running on {task.worker_running}")
        self._set_done(task, "", now)

    def update_resource(self, name: str, amount: int | None) -> None:
        """Set (or with None, remove) a global resource's capacity."""
        if amount is not None and amount < 0:
            raise Refused(f"resource {name} amount must be >= 0, got {amount}")
        if amount is None:
            self.resources.pop(name, None)
        else:
            self.resources[name] = amount
        self._settings["resources"] = dict(self.resources)

    def set_paused(self, paused: bool) -> None:
        """While paused, get_work hands out nothing; running tasks carry on."""
        self.paused = paused
        self._settings["paused"] = paused

    def resources_used(self) -> dict[str, int]:
        """How much of each resource running tasks hold."""
        return {name: used for name, used in self._used.items() if used}

    # ----- liveness and pruning -------------------------------------------------------------

    def stop_worker(self, worker: str, now: float) -> None:
        """A worker ending its run says so: it is dropped now, not worker_disconnect_delay later."""
        record = self.workers.get(worker)
        if record is not None:
            self._drop_worker(record, now)

    def prune(self, now: float) -> None:
        """Drop workers silent for worker_disconnect_delay (failing their running tasks), then
        remove tasks that have had no stakeholder for remove_delay."""
        limit = now - self.policy.worker_disconnect_delay
        for worker in [w for w in self.workers.values() if w.last_seen < limit]:
            self._drop_worker(worker, now)
        self._groups.forget_unused()
        cutoff = now - self.policy.remove_delay
        expired = [t for t, since in self._orphans.items() if since < cutoff]
        for task_id in expired:
            self._remove_task(task_id)
        self.tick(now)

    def _drop_worker(self, worker: WorkerRecord, now: float) -> None:
        del self.workers[worker.worker_id]
        self._settings[f"worker:{worker.worker_id}"] = None
        self._ready.forget_worker(worker.worker_id)
        if worker.assistant:
            self._sync_assistant_queue()
        for task_id in worker.running:
            task = self.tasks[task_id]
            message = f"worker {worker.worker_id} stopped pinging while running this task"
            self._set_failed(task, worker.worker_id, message, now)
        for task_id in worker.tasks:
            held = self.tasks.get(task_id)
            if held is None:
                continue
            held.stakeholders = self._groups.without(held.stakeholders, worker.worker_id)
            held.workers = self._groups.without(held.workers, worker.worker_id)
            self._touch(held)
            if not held.stakeholders:
                self._orphans[task_id] = now

    def _remove_task(self, task_id: str) -> None:
        task = self.tasks.get(task_id)
        if task is None or task.stakeholders or task.status == Status.RUNNING:
            self._orphans.pop(task_id, None)
            return
        if any(d in self.tasks for d in task.dependents):
            return  # still needed by a task that is kept: try again at a later prune
        del self._orphans[task_id]
        del self.tasks[task_id]
        task.queue_version += 1  # its ready-queue entries are now stale
        if task.known:
            self.index.remove(task)
        self._dirty.pop(task_id, None)
        self._removed.append(task_id)
        for dep_id in task.deps:
            dep = self.tasks.get(dep_id)
            if dep is not None:
                dep.dependents.remove(task_id)

    # ----- recovery -------------------------------------------------------------------------

    def restore(self, records: list[TaskRecord], settings: dict[str, Any], now: float) -> None:
        """Rebuild derived state (dependents, counts, queues) from stored records."""
        self.resources = dict(settings.get("resources", self.resources))
        self.paused = bool(settings.get("paused", False))
        for key, info in settings.items():
            if key.startswith("worker:") and isinstance(info, dict):
                worker = self._worker(key.removeprefix("worker:"), now)
                worker.info, worker.assistant = info, bool(info.get("assistant", False))
        self._sync_assistant_queue()
        for record in records:
            self.tasks[record.task_id] = record
        for record in records:
            self._restore_one(record, now)
        for record in records:
            if self._is_ready(record):
                self._enqueue(record)
        self.take_changes()  # restoring is not a change to journal

    def _restore_one(self, record: TaskRecord, now: float) -> None:
        deps, record.deps = record.deps, ()
        self._link(record, list(deps))
        self.index.add(record)
        self.timeline.record(record.status, record.updated)
        record.stakeholders = self._groups.shared(record.stakeholders)
        record.workers = self._groups.shared(record.workers)
        for worker_id in record.stakeholders:
            stakeholder = self._worker(worker_id, now)
            stakeholder.tasks.add(record.task_id)
            stakeholder.counts[record.status] += 1
        running = (Status.RUNNING, Status.BATCH_RUNNING)
        if record.worker_running and record.status in running:
            self._worker(record.worker_running, now).running.add(record.task_id)
            if record.batch_lead in (None, record.task_id):
                self._hold(record)
        if record.retry_at is not None:
            heapq.heappush(self._retry_heap, (record.retry_at, record.task_id))
        if not record.stakeholders:
            self._orphans[record.task_id] = now


def _pick(own: float | int | None, default: float | int) -> Any:
    return default if own is None else own
