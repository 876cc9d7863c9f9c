"""SchedulerAPI: the one interface workers use, implemented in-process and over HTTP.

Both implementations are a SchedulerClient: typed methods over one `call(method, **body)`
that runs an RPC method of the Service, in this process or in pipesd.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Protocol

FIELD_METHODS = {  # set_task_field name -> (RPC method, body field)
    "status_message": ("set_status_message", "message"),
    "progress_percentage": ("set_progress_percentage", "progress"),
    "tracking_url": ("set_tracking_url", "url"),
    "log_tail": ("set_log_tail", "tail"),
}


class SchedulerAPI(Protocol):
    """What a worker may ask of a scheduler; every value is JSON-shaped."""

    def add_worker(self, worker: str, info: dict[str, Any]) -> None:
        """Register a worker and what it says about itself (host, pid, ...)."""

    def add_tasks(self, worker: str, tasks: list[dict[str, Any]]) -> None:
        """Add or update many tasks at once (see TaskSpec for the fields)."""

    def add_task(self, worker: str, task: dict[str, Any]) -> None:
        """Add or update one task, e.g. to report it DONE or FAILED."""

    def get_work(self, worker: str, running: list[str] | None = None) -> dict[str, Any] | None:
        """A task to run now (it becomes RUNNING), or None.

        `running` lists the tasks the worker knows it runs, so a task handed out in a reply
        that was lost (daemon restart) is handed out again instead of being stuck RUNNING.
        """

    def get_work_batch(
        self, worker: str, running: list[str], reports: list[dict[str, Any]], max_tasks: int
    ) -> list[dict[str, Any]]:
        """Send finished-task reports and take up to max_tasks tasks, in one call."""

    def outlook(self, worker: str) -> dict[str, int]:
        """Counts of this worker's pending / ready / running / running_elsewhere tasks."""

    def ping(self, worker: str) -> None:
        """Keep-alive."""

    def set_task_field(self, task_id: str, name: str, value: Any) -> None:
        """Set a running task's status_message, progress_percentage or tracking_url."""

    def call(self, method: str, **body: Any) -> dict[str, Any]:
        """Run one RPC method and return its JSON reply (for the methods without a wrapper)."""


class SchedulerClient(ABC):
    """The SchedulerAPI's typed methods, each one RPC through `call`."""

    @abstractmethod
    def call(self, method: str, **body: Any) -> dict[str, Any]:
        """Run one RPC method and return its JSON reply."""

    def add_worker(self, worker: str, info: dict[str, Any]) -> None:
        """Register a worker."""
        self.call("add_worker", worker=worker, info=info)

    def add_tasks(self, worker: str, tasks: list[dict[str, Any]]) -> None:
        """Add or update many tasks in one call (all are checked before any is added)."""
        self.call("add_tasks", worker=worker, tasks=tasks)

    def add_task(self, worker: str, task: dict[str, Any]) -> None:
        """Add or update one task."""
        self.call("add_task", worker=worker, task=task)

    def get_work(self, worker: str, running: list[str] | None = None) -> dict[str, Any] | None:
        """The next task for this worker (it becomes RUNNING), or None."""
        body: dict[str, Any] = {"worker": worker}
        if running is not None:
            body["running"] = running
        task: dict[str, Any] | None = self.call("get_work", **body)["task"]
        return task

    def get_work_batch(
        self, worker: str, running: list[str], reports: list[dict[str, Any]], max_tasks: int
    ) -> list[dict[str, Any]]:
        """Send finished-task reports and take up to max_tasks tasks, in one call."""
        reply = self.call(
            "get_work", worker=worker, running=running, reports=reports, max_tasks=max_tasks
        )
        tasks: list[dict[str, Any]] = reply["tasks"]
        return tasks

    def outlook(self, worker: str) -> dict[str, int]:
        """Counts of this worker's tasks by state."""
        return self.call("outlook", worker=worker)

    def ping(self, worker: str) -> None:
        """Keep-alive."""
        self.call("ping", worker=worker)

    def set_task_field(self, task_id: str, name: str, value: Any) -> None:
        """Set a task's status message, progress or tracking URL."""
        method, key = FIELD_METHODS[name]
        self.call(method, task_id=task_id, **{key: value})

    def task_list(  # the documented task_list signature
        self,
        status: str | None = None,
        family: str | None = None,
        search: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> dict[str, Any]:
        """Tasks matching the filters: {'total': n, 'tasks': [...]}."""
        return self.call(
            "task_list", status=status, family=family, search=search, limit=limit, offset=offset
        )
