"""The embedded scheduler: the real Scheduler core and Service, in-process, state in memory."""

from __future__ import annotations

import threading
import time
from typing import Any

from pipes.scheduler.api import SchedulerClient
from pipes.scheduler.core import Scheduler
from pipes.scheduler.memory_store import MemoryStore
from pipes.scheduler.model import Policy
from pipes.scheduler.service import Service


class LocalScheduler(SchedulerClient):
    """SchedulerAPI over an in-process Service; the default when no scheduler URL is set."""

    def __init__(
        self, policy: Policy | None = None, resources: dict[str, int] | None = None
    ) -> None:
        self.service = Service(Scheduler(policy, resources), MemoryStore(), time.time)
        self._lock = threading.Lock()  # the keep-alive thread calls in while the loop runs

    def call(self, method: str, **body: Any) -> dict[str, Any]:
        """Run one RPC method in-process, exactly as pipesd would."""
        with self._lock:
            return self.service.call(method, body)
