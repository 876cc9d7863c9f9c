"""The embedded scheduler: the real Scheduler core and Service, in-process, state in memory."""

from __future__ import annotations

import threading
import time
from typing import Any

from pipes.scheduler.api import FIELD_METHODS
from pipes.scheduler.core import Scheduler
from pipes.scheduler.model import Policy
from pipes.scheduler.service import Service
from pipes.scheduler.store import MemoryStore


class LocalScheduler:
    """SchedulerAPI over an in-process Service; the default when no scheduler URL is set."""

    def __init__(
        self, policy: Policy | None = None, resources: dict[str, int] | None = None
    ) -> None:
        self.service = Service(Scheduler(policy, resources), MemoryStore(), time.time)
        self._lock = threading.Lock()  # task threads report progress while the loop runs

    def call(self, method: str, **body: Any) -> dict[str, Any]:
        """Run one RPC method in-process, exactly as pipesd would."""
        with self._lock:
            return self.service.call(method, body)

    def add_worker(self, worker: str, info: dict[str, Any]) -> None:
        """Register a worker."""
        self.call("add_worker", worker=worker, info=info)

    def add_tasks(self, worker: str, tasks: list[dict[str, Any]]) -> None:
        """Validate every task first, then add them all."""
        self.call("add_tasks", worker=worker, tasks=tasks)

    def add_task(self, worker: str, task: dict[str, Any]) -> None:
        """Add or update one task."""
        self.call("add_task", worker=worker, task=task)

    def get_work(self, worker: str, running: list[str] | None = None) -> dict[str, Any] | None:
        """The next task for this worker, or None."""
        body: dict[str, Any] = {"worker": worker}
        if running is not None:
            body["running"] = running
        return self.call("get_work", **body)["task"]

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

    def task_list(  # noqa: PLR0913 -- the documented task_list signature
        self,
        status: str | None = None,
        family: str | None = None,
        search: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> dict[str, Any]:
        """Tasks matching the filters."""
        return self.call(
            "task_list", status=status, family=family, search=search, limit=limit, offset=offset
        )
