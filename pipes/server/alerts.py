"""pipesd's alerts: a task disabled after too many failures, told once its change is committed.

AlertingStore wraps the journal: it commits first, then hands each DISABLED status change to
the notifier, whose thread sends it. Nothing here can fail a transition: the commit is done,
and a failure to build or queue an alert is one log line.
"""

from __future__ import annotations

import logging
from typing import Any

from pipes.notifications import Alert, Notifier
from pipes.scheduler.model import Changes, Status, StatusChange
from pipes.scheduler.service import Store

logger = logging.getLogger("pipes.server")


class AlertingStore:
    """A Store that, after each commit, queues an alert for every task that became DISABLED."""

    def __init__(self, store: Store, notifier: Notifier) -> None:
        self.store = store
        self.notifier = notifier

    def commit(self, changes: Changes) -> None:
        """Commit, then alert (the alert never raises into the caller's transition)."""
        self.store.commit(changes)
        for event in changes.events:
            if event.status == Status.DISABLED:
                try:
                    self.notifier.notify(self._alert(changes, event))
                except Exception as err:
                    logger.warning("alert for disabled task %s not sent: %s", event.task_id, err)

    def _alert(self, changes: Changes, event: StatusChange) -> Alert:
        task_id = event.task_id
        record = next((t for t in changes.tasks if t.task_id == task_id), None)
        params = dict(record.params) if record else {}
        family = record.family if record else ""
        shown = ", ".join(f"{k}={v}" for k, v in params.items())
        failures = len(record.failures) if record else 0
        error = record.error if record and record.error else ""
        note = f"pipesd disabled it after {failures} failures; re-enable it on the status page"
        return Alert(
            task=f"{family}({shown})" if family else task_id,
            task_id=task_id,
            family=family,
            params=params,
            status="DISABLED",
            host=event.host or "",
            error=f"{note}\n\n{error}".rstrip(),
            log_tail=changes.logs.get(task_id) or self.store.log(task_id) or "",
            time=event.time,
            sent_by="pipesd",
            owners=record.owners if record else (),
        )

    def history(self, task_id: str) -> list[dict[str, Any]]:
        """The wrapped store's history."""
        return self.store.history(task_id)

    def prune_history(self, before: float) -> None:
        """Prune the wrapped store's history."""
        self.store.prune_history(before)

    def log(self, task_id: str) -> str | None:
        """The wrapped store's log tail."""
        return self.store.log(task_id)

    def probe(self) -> None:
        """Probe the wrapped store."""
        self.store.probe()
