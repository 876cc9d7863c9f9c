"""The scheduler's data: task statuses, the task spec a worker sends, records, typed replies."""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class Refused(ValueError):
    """The core refuses a request that is malformed or wrong for the current state.

    Nothing changed. The core knows no transport: Service answers it as a 400 (BadRequest).
    """


class Status(enum.StrEnum):
    """Where a task stands in the scheduler."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    BATCH_RUNNING = "BATCH_RUNNING"
    DONE = "DONE"
    FAILED = "FAILED"
    DISABLED = "DISABLED"
    UNKNOWN = "UNKNOWN"  # requires()/complete() raised while scheduling


REPORTABLE = {Status.PENDING, Status.DONE, Status.FAILED, Status.UNKNOWN, Status.DISABLED}
_REPORTABLE_NAMES = {str(status): status for status in REPORTABLE}


@dataclass(frozen=True, slots=True)
class Policy:
    """Scheduler-wide defaults; a task's own retry settings override the retry ones."""

    retry_delay: float = 900.0
    retry_count: int = 999_999_999
    disable_window: float = 3600.0
    disable_persist: float = 86400.0
    worker_disconnect_delay: float = 60.0
    remove_delay: float = 600.0


_NUMBER = (int, float)


def _wrong(name: str, value: Any) -> Refused:
    return Refused(f"task field {name!r} has the wrong type: {type(value).__name__}")


def _of(kind: type | tuple[type, ...], nullable: bool = False) -> Callable[[str, Any], Any]:
    exact = set(kind if isinstance(kind, tuple) else (kind,))  # what JSON decodes to: fast path

    def check(name: str, value: Any) -> Any:
        if type(value) in exact:
            return value
        if value is None and nullable:
            return value
        if isinstance(value, bool) and kind is not bool:  # JSON true is not a number
            raise _wrong(name, value)
        if not isinstance(value, kind):
            raise _wrong(name, value)
        return value

    return check


def _map_of(kind: type, minimum: int | None = None) -> Callable[[str, Any], dict[str, Any]]:
    def check(name: str, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise _wrong(name, value)
        if all(type(key) is str and type(item) is kind for key, item in value.items()) and (
            minimum is None or min(value.values(), default=minimum) >= minimum
        ):
            return value  # the usual case, checked fast: exact JSON types, nothing below minimum
        for key, item in value.items():
            if not isinstance(key, str) or not isinstance(item, kind) or isinstance(item, bool):
                raise Refused(f"task field {name!r} must map strings to {kind.__name__}")
            if minimum is not None and item < minimum:  # type: ignore[operator]  # int, with minimum
                raise Refused(f"task field {name!r}: {key} must be >= {minimum}, got {item}")
        return value

    return check


def _at_least_zero(name: str, value: Any) -> Any:
    value = _of(_NUMBER, nullable=True)(name, value)
    if value is not None and value < 0:
        raise Refused(f"task field {name!r} must be >= 0, got {value}")
    return value


def _strings(what: str) -> Callable[[str, Any], list[str] | None]:
    def check(name: str, value: Any) -> list[str] | None:
        if value is None:
            return None
        if not isinstance(value, list):
            raise _wrong(name, value)
        if not all(isinstance(item, str) for item in value):
            raise Refused(f"task field {name!r} must be a list of {what}")
        return value

    return check


_ids = _strings("task ids")


def _task_id(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise Refused("task field 'task_id' must be a non-empty string")
    return value


def _status(name: str, value: Any) -> Status:
    reportable = _REPORTABLE_NAMES.get(value) if type(value) is str else None
    if reportable is not None:
        return reportable
    try:
        status = Status(value)
    except ValueError:
        raise Refused(f"unknown status {value!r}") from None
    if status not in REPORTABLE:
        raise Refused(f"a worker cannot report status {status}")
    return status


TASK_FIELDS: dict[str, Callable[[str, Any], Any]] = {  # field -> its check
    "task_id": _task_id,
    "family": _of(str),
    "module": _of(str),
    "params": _map_of(str),
    "deps": _ids,
    "status": _status,
    "runnable": _of(bool),
    "priority": _of(int),
    "resources": _map_of(int, minimum=0),  # a negative amount would free capacity
    "retry_count": _of(int, nullable=True),
    "retry_delay": _at_least_zero,
    "disable_window": _at_least_zero,
    "error": _of(str, nullable=True),
    "new_deps": _ids,
    "batch_params": _ids,
    "max_batch_size": _of(int, nullable=True),
    "log_tail": _of(str, nullable=True),
    "owners": _strings("e-mail addresses"),  # Task.owner_email: pipesd alerts them too
}


@dataclass(slots=True)
class TaskSpec:
    """One task as a worker describes it in add_tasks / add_task."""

    task_id: str
    family: str = ""
    module: str = ""
    params: dict[str, str] = field(default_factory=dict)
    deps: list[str] | None = None
    status: Status = Status.PENDING
    runnable: bool = True
    priority: int = 0
    resources: dict[str, int] = field(default_factory=dict)
    retry_count: int | None = None
    retry_delay: float | None = None
    disable_window: float | None = None
    error: str | None = None
    new_deps: list[str] | None = None
    batch_params: list[str] | None = None
    max_batch_size: int | None = None
    log_tail: str | None = None  # the end of the task's output, kept by the store
    owners: list[str] | None = None

    @classmethod
    def from_dict(cls, data: Any) -> TaskSpec:
        """Validate a JSON-shaped task; Refused names the first problem."""
        if not isinstance(data, dict):
            raise Refused("each task must be a JSON object")
        values = {}
        for name, value in data.items():
            check = TASK_FIELDS.get(name)
            if check is None:
                raise Refused(f"unknown task field {name!r}")
            values[name] = check(name, value)
        if "task_id" not in values:
            raise Refused("task field 'task_id' must be a non-empty string")
        return cls(**values)


@dataclass(slots=True, eq=False)
class TaskRecord:
    """The scheduler's state for one task."""

    task_id: str
    family: str = ""
    module: str = ""
    params: dict[str, str] = field(default_factory=dict)
    deps: tuple[str, ...] = ()
    status: Status = Status.PENDING
    priority: int = 0
    resources: dict[str, int] = field(default_factory=dict)
    retry_count: int | None = None
    retry_delay: float | None = None
    disable_window: float | None = None
    workers: frozenset[str] = frozenset()  # workers able to run it (shared, see Scheduler)
    stakeholders: frozenset[str] = frozenset()
    dependents: list[str] = field(default_factory=list)
    unfinished: int = 0  # deps that are not DONE
    failures: tuple[float, ...] = ()
    retry_at: float | None = None
    worker_running: str | None = None
    time_running: float | None = None
    updated: float = 0.0
    error: str | None = None
    status_message: str | None = None
    progress_percentage: float | None = None
    tracking_url: str | None = None
    known: bool = False  # False while only referenced as someone's dependency
    queue_version: int = 0
    batch_params: tuple[str, ...] = ()
    max_batch_size: int | None = None
    batch_lead: str | None = None  # while BATCH_RUNNING: the task the batch was handed out as
    owners: tuple[str, ...] = ()  # who pipesd's alerts go to besides [email] receiver

    def summary(self) -> dict[str, Any]:
        """The JSON-shaped view of this task used by get_work and task_list."""
        return {
            "task_id": self.task_id,
            "family": self.family,
            "module": self.module,
            "params": self.params,
            "deps": list(self.deps),
            "status": str(self.status),
            "priority": self.priority,
            "resources": self.resources,
            "worker_running": self.worker_running,
            "time_running": self.time_running,
            "updated": self.updated,
            "failures": len(self.failures),
            "error": self.error,
            "status_message": self.status_message,
            "progress_percentage": self.progress_percentage,
            "tracking_url": self.tracking_url,
        }


@dataclass(frozen=True, slots=True)
class Batch:
    """The members of a batch handed out as one run, and each member's batch parameters."""

    task_ids: list[str]
    params: dict[str, list[Any]]


@dataclass(frozen=True, slots=True)
class Work:
    """get_work's reply: a task now RUNNING on the worker; for a batch, its lead and members.

    `task` is the live record: the service turns it into JSON before the next call.
    """

    task: TaskRecord
    batch: Batch | None = None

    @property
    def task_id(self) -> str:
        """The id the worker runs (a batch's lead)."""
        return self.task.task_id

    @property
    def task_ids(self) -> list[str]:
        """Every task this reply hands out: the batch's members, or the one task."""
        return self.batch.task_ids if self.batch is not None else [self.task.task_id]


@dataclass(frozen=True, slots=True)
class Outlook:
    """Counts over a worker's tasks, so an idle worker knows whether to wait or stop."""

    pending: int
    ready: int
    running: int
    running_elsewhere: int
    waiting_for_retry: int


@dataclass(slots=True)
class WorkerRecord:
    """A worker the scheduler has heard from."""

    worker_id: str
    info: dict[str, Any] = field(default_factory=dict)
    last_seen: float = 0.0
    tasks: set[str] = field(default_factory=set)  # tasks it has a stake in
    counts: Counter[Status] = field(default_factory=Counter)  # of those tasks, by status
    running: set[str] = field(default_factory=set)
    assistant: bool = False


@dataclass(frozen=True, slots=True)
class StatusChange:
    """Event: a task's status changed."""

    task_id: str
    status: Status
    worker: str | None
    host: str | None
    time: float


@dataclass(slots=True)
class Changes:
    """What changed since the last take_changes(): what the store must commit."""

    tasks: list[TaskRecord] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    events: list[StatusChange] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)  # "resources", "paused"
    logs: dict[str, str] = field(default_factory=dict)  # task id -> tail of its latest log

    def __bool__(self) -> bool:
        return bool(self.tasks or self.removed or self.events or self.settings or self.logs)
