"""Priority-ordered queues of ready tasks, one per worker, with lazy removal.

A task is pushed once per worker that may run it; an entry is stale when the task's
queue_version moved on (it was re-queued, started, or changed priority), so pops skip it.
The assistants' queue exists only while an assistant does (nobody else pops it), and a heap
that doubles since it was last compacted drops its stale entries: finished and removed tasks
are not kept alive by queues.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable

from pipes.scheduler.model import Status, TaskRecord

Entry = tuple[int, int, int, TaskRecord]  # (-priority, seq, version, task)
ANY_WORKER = ""  # the queue assistants draw from
MIN_COMPACT = 1024  # entries a heap may hold before compaction is worth its scan


class ReadyQueue:
    """Ready tasks per worker, highest priority first, then first added."""

    def __init__(self) -> None:
        self._heaps: dict[str, list[Entry]] = {}
        self._limits: dict[str, int] = {}  # heap size that triggers the next compaction
        self._seq = itertools.count()
        self.serves_assistants = False

    def open_assistant_queue(self, ready: Iterable[TaskRecord]) -> None:
        """Start the assistants' queue with the tasks ready now (an assistant appeared)."""
        self.serves_assistants = True
        heap = [(-t.priority, next(self._seq), t.queue_version, t) for t in ready if t.workers]
        heapq.heapify(heap)
        self._heaps[ANY_WORKER] = heap

    def close_assistant_queue(self) -> None:
        """Drop the assistants' queue (the last assistant left)."""
        self.serves_assistants = False
        self.forget_worker(ANY_WORKER)

    def push(self, task: TaskRecord) -> None:
        """Queue a ready task for every worker able to run it (and for assistants)."""
        task.queue_version += 1
        entry = (-task.priority, next(self._seq), task.queue_version, task)
        if not task.workers:
            return  # nobody may run it (external data): not even assistants
        queues = (*task.workers, ANY_WORKER) if self.serves_assistants else task.workers
        for worker in queues:
            heap = self._heaps.setdefault(worker, [])
            heapq.heappush(heap, entry)
            if len(heap) > self._limits.get(worker, MIN_COMPACT):
                self._compact(worker)  # amortised O(1): the limit doubles with the live size

    def _compact(self, worker: str) -> None:
        heap = [e for e in self._heaps[worker] if e[2] == e[3].queue_version and _is_ready(e[3])]
        heapq.heapify(heap)
        self._heaps[worker] = heap
        self._limits[worker] = max(MIN_COMPACT, 2 * len(heap))

    def size(self) -> int:
        """Entries held, stale ones included (what the queues keep alive)."""
        return sum(len(heap) for heap in self._heaps.values())

    def pop(
        self, worker: str, usable: Callable[[TaskRecord], bool], min_priority: int | None = None
    ) -> TaskRecord | None:
        """The best ready task for `worker` that `usable` accepts; entries it skips stay queued.

        With min_priority, stops (returning None) at the first task of lower priority.
        """
        heap = self._heaps.get(worker)
        if not heap:
            return None
        held: list[Entry] = []
        found = None
        while heap:
            entry = heapq.heappop(heap)
            task = entry[3]
            if entry[2] != task.queue_version or not _is_ready(task):
                continue
            if min_priority is not None and task.priority < min_priority:
                held.append(entry)
                break
            if usable(task):
                found = task
                break
            held.append(entry)
        for entry in held:
            heapq.heappush(heap, entry)
        if found is not None:
            found.queue_version += 1  # invalidates its entries in the other workers' heaps
        return found

    def count(self, worker: str, accept: Callable[[TaskRecord], bool]) -> int:
        """How many ready tasks in worker's queue `accept` takes (stale entries skipped)."""
        seen: set[str] = set()
        for _, _, version, task in self._heaps.get(worker, ()):
            if version == task.queue_version and _is_ready(task) and accept(task):
                seen.add(task.task_id)
        return len(seen)

    def forget_worker(self, worker: str) -> None:
        """Drop a worker's queue (it disconnected)."""
        self._heaps.pop(worker, None)
        self._limits.pop(worker, None)


def _is_ready(task: TaskRecord) -> bool:
    return task.status == Status.PENDING and task.unfinished == 0
