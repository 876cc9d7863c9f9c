"""The in-process scheduler's store: history and log tails in memory, nothing on disk.

Separate from store.py so the local scheduler never imports sqlite3.
"""

from __future__ import annotations

from typing import Any

from pipes.scheduler.model import Changes, StatusChange


class MemoryStore:
    """Keeps history and the latest log tails in memory only: the in-process store."""

    max_logs = 1000

    def __init__(self) -> None:
        self._history: dict[str, list[StatusChange]] = {}  # made dicts only when read
        self._logs: dict[str, str] = {}

    def commit(self, changes: Changes) -> None:
        """Keep the status history and log tails; records live in the core already."""
        for event in changes.events:
            self._history.setdefault(event.task_id, []).append(event)
        for task_id, tail in changes.logs.items():
            self._logs.pop(task_id, None)
            self._logs[task_id] = tail
            if len(self._logs) > self.max_logs:
                del self._logs[next(iter(self._logs))]  # the longest-unchanged one
        for task_id in changes.removed:
            self._history.pop(task_id, None)
            self._logs.pop(task_id, None)

    def log(self, task_id: str) -> str | None:
        """The tail of the task's latest log, if a worker sent one."""
        return self._logs.get(task_id)

    def probe(self) -> None:
        """Memory always takes a write."""

    def history(self, task_id: str) -> list[dict[str, Any]]:
        """Status changes of one task, oldest first."""
        return [_event_dict(event) for event in self._history.get(task_id, ())]

    def prune_history(self, before: float) -> None:
        """Forget history older than `before`."""
        for task_id, entries in list(self._history.items()):
            kept = [e for e in entries if e.time >= before]
            if kept:
                self._history[task_id] = kept
            else:
                del self._history[task_id]


def _event_dict(event: StatusChange) -> dict[str, Any]:
    """One status change as `history` returns it."""
    return {
        "status": str(event.status),
        "worker": event.worker,
        "host": event.host,
        "time": event.time,
    }
