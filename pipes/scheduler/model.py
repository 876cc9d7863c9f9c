"""The scheduler's data: task statuses, the validated task spec a worker sends, and task records."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from pipes.exceptions import BadRequest


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


@dataclass(frozen=True, slots=True)
class Policy:
    """Scheduler-wide defaults; a task's own retry settings override the retry ones."""

    retry_delay: float = 900.0
    retry_count: int = 999_999_999
    disable_window: float = 3600.0
    disable_persist: float = 86400.0
    worker_disconnect_delay: float = 60.0
    remove_delay: float = 600.0


def _field(data: dict[str, Any], name: str, kind: type | tuple[type, ...], default: Any) -> Any:
    value = data.get(name, default)
    wrong_bool = isinstance(value, bool) and kind is not bool  # JSON true is not a number
    if value is not default and (wrong_bool or not isinstance(value, kind)):
        raise BadRequest(f"task field {name!r} has the wrong type: {type(value).__name__}")
    return value


def _str_map(data: dict[str, Any], name: str, value_kind: type) -> dict[str, Any]:
    value = _field(data, name, dict, {})
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, value_kind):
            raise BadRequest(f"task field {name!r} must map strings to {value_kind.__name__}")
    return value


TASK_FIELDS = {
    "task_id",
    "family",
    "module",
    "params",
    "deps",
    "status",
    "runnable",
    "priority",
    "resources",
    "retry_count",
    "retry_delay",
    "disable_window",
    "error",
    "new_deps",
    "batch_params",
    "max_batch_size",
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

    @classmethod
    def from_dict(cls, data: Any) -> TaskSpec:
        """Validate a JSON-shaped task; BadRequest names the first problem."""
        if not isinstance(data, dict):
            raise BadRequest("each task must be a JSON object")
        unknown = set(data) - TASK_FIELDS
        if unknown:
            raise BadRequest(f"unknown task field {sorted(unknown)[0]!r}")
        task_id = data.get("task_id")
        if not isinstance(task_id, str) or not task_id:
            raise BadRequest("task field 'task_id' must be a non-empty string")
        try:
            status = Status(data.get("status", Status.PENDING))
        except ValueError:
            raise BadRequest(f"unknown status {data.get('status')!r}") from None
        if status not in REPORTABLE:
            raise BadRequest(f"a worker cannot report status {status}")
        number = (int, float)
        return cls(
            task_id=task_id,
            family=_field(data, "family", str, ""),
            module=_field(data, "module", str, ""),
            params=_str_map(data, "params", str),
            deps=_id_list(data, "deps"),
            status=status,
            runnable=_field(data, "runnable", bool, True),
            priority=_field(data, "priority", int, 0),
            resources=_str_map(data, "resources", int),
            retry_count=_field(data, "retry_count", int, None),
            retry_delay=_field(data, "retry_delay", number, None),
            disable_window=_field(data, "disable_window", number, None),
            error=_field(data, "error", str, None),
            new_deps=_id_list(data, "new_deps"),
            batch_params=_id_list(data, "batch_params"),
            max_batch_size=_field(data, "max_batch_size", int, None),
        )


def _id_list(data: dict[str, Any], name: str) -> list[str] | None:
    value = _field(data, name, list, None)
    if value is not None and not all(isinstance(item, str) for item in value):
        raise BadRequest(f"task field {name!r} must be a list of task ids")
    return value


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
    workers: set[str] = field(default_factory=set)  # workers able to run it
    stakeholders: set[str] = field(default_factory=set)
    dependents: list[str] = field(default_factory=list)
    unfinished: int = 0  # deps that are not DONE
    failures: list[float] = field(default_factory=list)
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
