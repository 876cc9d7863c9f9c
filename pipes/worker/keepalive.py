"""A background thread that pings the scheduler so it knows this worker is alive."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from pipes.exceptions import PipesError
from pipes.scheduler.api import SchedulerAPI

logger = logging.getLogger("pipes.worker")
STOP_WAIT = 1.0  # seconds stop() waits for a ping in flight


class KeepAlive:
    """Pings every `interval` seconds between start() and stop(), then calls `on_beat`."""

    def __init__(
        self,
        scheduler: SchedulerAPI,
        worker_id: str,
        info: dict[str, Any],
        interval: float,
        on_beat: Callable[[], None] | None = None,
    ) -> None:
        self.scheduler = scheduler
        self.worker_id = worker_id
        self.info = info
        self.interval = interval
        self.on_beat = on_beat  # e.g. send the output so far of a task running in-process
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start pinging in a daemon thread."""
        self._thread = threading.Thread(target=self._run, name="pipes-keepalive", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                # add_worker, not ping: a restarted daemon relearns who we are (assistant...)
                self.scheduler.add_worker(self.worker_id, self.info)
                if self.on_beat is not None:
                    self.on_beat()
            except PipesError as err:  # the main loop reports lasting trouble; keep trying
                logger.warning("ping failed: %s", err)

    def stop(self) -> None:
        """Stop pinging; wait a little for the thread.

        A ping may be retrying while pipesd is down or answers 5xx (up to rpc_retry_seconds):
        the thread is a daemon, so the run does not wait for that; it ends once the ping does.
        """
        self._stop.set()
        if self._thread is not None:
            self._thread.join(STOP_WAIT)
