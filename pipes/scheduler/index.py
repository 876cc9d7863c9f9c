"""Indexes over known tasks by status and family, kept current by the core on every change.

They let the status page answer "the failed tasks of family X" or "counts per family"
without walking every task, which matters at a million tasks.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from pipes.scheduler.model import Status, TaskRecord

SLOW_ANSWER = 0.01  # seconds: a derived answer that costs more is reused for a while


class TaskIndex:
    """Task ids by status and by family, plus per-family status counts."""

    def __init__(self) -> None:
        self.by_status: dict[Status, set[str]] = {status: set() for status in Status}
        self.by_family: dict[str, set[str]] = {}
        self.family_counts: dict[str, Counter[Status]] = {}
        self.version = 0  # bumped by every change, so derived answers know when to recompute
        self._cache: dict[str, tuple[Any, int, float, float, Any]] = {}

    def cached(
        self,
        name: str,
        compute: Callable[[], Any],
        key: Any = None,
        clock: Callable[[], float] | None = None,
    ) -> Any:
        """compute() for `key`, reused until the next change, or longer when it is costly.

        With a `clock` (the caller's: the index never reads one), an answer that took more than
        SLOW_ANSWER is reused, even after changes, for ten times as long as it took, so an
        often-refreshed page uses at most a tenth of the daemon's time. One answer per name.
        """
        hit = self._cache.get(name)
        now = clock() if clock is not None else 0.0
        if hit is not None and hit[0] == key:
            _, version, at, cost, value = hit
            # 0 <= ...: a clock stepped back must not keep a stale answer alive
            if version == self.version or (cost > SLOW_ANSWER and 0 <= now - at < 10 * cost):
                return value
        value = compute()
        cost = clock() - now if clock is not None else 0.0
        self._cache[name] = (key, self.version, now, cost, value)
        return value

    def add(self, task: TaskRecord) -> None:
        """A task became known (or was restored)."""
        self.version += 1
        self.by_status[task.status].add(task.task_id)
        self.by_family.setdefault(task.family, set()).add(task.task_id)
        self.family_counts.setdefault(task.family, Counter())[task.status] += 1

    def move(self, task: TaskRecord, new: Status) -> None:
        """A known task's status changes from task.status to `new` (called before the change)."""
        self.version += 1
        self.by_status[task.status].discard(task.task_id)
        self.by_status[new].add(task.task_id)
        counts = self.family_counts[task.family]
        counts[task.status] -= 1
        counts[new] += 1

    def remove(self, task: TaskRecord) -> None:
        """A known task was forgotten."""
        self.version += 1
        self.by_status[task.status].discard(task.task_id)
        family = self.by_family.get(task.family)
        if family is not None:
            family.discard(task.task_id)
            if not family:
                del self.by_family[task.family]
                del self.family_counts[task.family]
                return
        self.family_counts[task.family][task.status] -= 1

    def count(self, status: Status) -> int:
        """How many known tasks have this status."""
        return len(self.by_status[status])

    def counts(self) -> dict[Status, int]:
        """Known tasks per status."""
        return {status: len(ids) for status, ids in self.by_status.items()}

    def ids(self, status: Status | None, family: str | None) -> set[str] | None:
        """The ids matching both filters; None means "every known task" (no filter given)."""
        if status is None and family is None:
            return None
        if family is None:
            return self.by_status[status]  # type: ignore[index]
        in_family = self.by_family.get(family, set())
        if status is None:
            return in_family
        in_status = self.by_status[status]
        if len(in_family) > len(in_status):
            return in_status & in_family
        return in_family & in_status

    def families(self, statuses: set[Status] | None = None) -> dict[str, int]:
        """Known tasks per family, counting only the given statuses (all when None)."""
        result = {}
        for family, counts in self.family_counts.items():
            total = sum(counts.values()) if statuses is None else sum(counts[s] for s in statuses)
            if total:
                result[family] = total
        return result


class CompletionTimeline:
    """Tasks that finished (DONE) or failed (FAILED, DISABLED) per minute, for the last hour."""

    bucket_seconds = 60
    buckets = 60

    def __init__(self) -> None:
        self._done: dict[int, int] = {}
        self._failed: dict[int, int] = {}

    def record(self, status: Status, when: float) -> None:
        """Count a task entering `status` at `when` (other statuses are ignored)."""
        if status == Status.DONE:
            counter = self._done
        elif status in (Status.FAILED, Status.DISABLED):
            counter = self._failed
        else:
            return
        bucket = int(when // self.bucket_seconds)
        counter[bucket] = counter.get(bucket, 0) + 1
        if len(counter) > 2 * self.buckets:
            for old in sorted(counter)[: -self.buckets]:
                del counter[old]

    def window(self, now: float) -> dict[str, object]:
        """The last hour ending at `now`: one count per minute, oldest first."""
        last = int(now // self.bucket_seconds)
        first = last - self.buckets + 1
        span = range(first, last + 1)
        return {
            "bucket_seconds": self.bucket_seconds,
            "start": first * self.bucket_seconds,
            "done": [self._done.get(b, 0) for b in span],
            "failed": [self._failed.get(b, 0) for b in span],
        }
