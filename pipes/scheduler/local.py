"""The embedded scheduler: the real Scheduler core, in-process, with state kept in memory."""

from __future__ import annotations

import threading
import time
from typing import Any

from pipes.scheduler.core import Scheduler
from pipes.scheduler.model import Policy, TaskSpec


class LocalScheduler:
    """SchedulerAPI over an in-process Scheduler; the default when no scheduler URL is set."""

    def __init__(
        self, policy: Policy | None = None, resources: dict[str, int] | None = None
    ) -> None:
        self.core = Scheduler(policy, resources)
        self.lock = threading.Lock()  # task threads report progress while the loop runs

    def _commit(self) -> None:
        self.core.take_events()  # in memory: nothing to journal

    def add_worker(self, worker: str, info: dict[str, Any]) -> None:
        """Register a worker."""
        with self.lock:
            self.core.add_worker(worker, info, time.time())
            self._commit()

    def add_tasks(self, worker: str, tasks: list[dict[str, Any]]) -> None:
        """Validate every task first, then add them all."""
        specs = [TaskSpec.from_dict(task) for task in tasks]
        with self.lock:
            self.core.add_tasks(worker, specs, time.time())
            self._commit()

    def add_task(self, worker: str, task: dict[str, Any]) -> None:
        """Add or update one task."""
        self.add_tasks(worker, [task])

    def get_work(self, worker: str) -> dict[str, Any] | None:
        """The next task for this worker, or None."""
        with self.lock:
            work = self.core.get_work(worker, time.time())
            self._commit()
            return work

    def outlook(self, worker: str) -> dict[str, int]:
        """Counts of this worker's tasks by state."""
        with self.lock:
            return self.core.outlook(worker, time.time())

    def ping(self, worker: str) -> None:
        """Keep-alive."""
        with self.lock:
            self.core.ping(worker, time.time())

    def set_task_field(self, task_id: str, name: str, value: Any) -> None:
        """Set a task's status message, progress or tracking URL."""
        with self.lock:
            self.core.set_task_field(task_id, name, value, time.time())

    def task_list(
        self,
        status: str | None = None,
        family: str | None = None,
        search: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> dict[str, Any]:
        """Tasks matching the filters."""
        with self.lock:
            return self.core.task_list(status, family, search, limit, offset)
