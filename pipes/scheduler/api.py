"""SchedulerAPI: the one interface workers use, implemented in-process and over HTTP."""

from __future__ import annotations

from typing import Any, Protocol


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

    def outlook(self, worker: str) -> dict[str, int]:
        """Counts of this worker's pending / running / running_elsewhere tasks."""

    def ping(self, worker: str) -> None:
        """Keep-alive."""

    def set_task_field(self, task_id: str, name: str, value: Any) -> None:
        """Set a running task's status_message, progress_percentage or tracking_url."""

    def task_list(
        self,
        status: str | None = None,
        family: str | None = None,
        search: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> dict[str, Any]:
        """Tasks matching the filters: {'total': n, 'tasks': [...]}."""


FIELD_METHODS = {  # set_task_field name -> (RPC method, body field)
    "status_message": ("set_status_message", "message"),
    "progress_percentage": ("set_progress_percentage", "progress"),
    "tracking_url": ("set_tracking_url", "url"),
}
