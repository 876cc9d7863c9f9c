"""Taking work from the scheduler in get_work round trips, the next sent ahead while tasks are fast.

Each round trip hands in the worker's reports and takes a batch sized by WorkBatch. While
the batch has grown past [worker] get_work_batch (its tasks finish fast) and came full, and
the scheduler can send a call ahead (pipesd's RemoteScheduler), the next get_work goes out
as soon as a batch arrives, so pipesd answers it while the worker runs that batch. The
worker then holds up to two batches, about 2 x get_work_batch_seconds of work, and a result
reaches pipesd within two round trips. A reply sent ahead that holds no task is never taken
as "no work": the worker asks again at once, with every report it holds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from pipes.worker.work_batch import WorkBatch

if TYPE_CHECKING:
    from pipes.scheduler.api import SchedulerAPI

Reply = dict[str, Any]  # one task of a get_work reply


class Pending(Protocol):
    """A call sent ahead; result() reads its reply (or makes the call again)."""

    def result(self) -> dict[str, Any]:
        """The call's JSON reply."""


@runtime_checkable
class CallsAhead(Protocol):
    """A scheduler client that can send a call now and read its reply later."""

    def begin_call(self, method: str, **body: Any) -> Pending:
        """Send one RPC now; its reply is read by the returned Pending."""


class WorkFetcher:
    """One worker's get_work round trips; at most one call in flight."""

    def __init__(
        self,
        scheduler: SchedulerAPI,
        worker_id: str,
        batch: WorkBatch,
        members: Callable[[Reply], list[str]],
    ) -> None:
        """`members` gives the task ids one reply stands for (a batch's all, else its own)."""
        self.scheduler = scheduler
        self.worker_id = worker_id
        self.batch = batch
        self.members = members
        self._ahead: tuple[Pending, int] | None = None  # the call in flight, its max_tasks

    def fetch(self, running: list[str], reports: list[Reply]) -> tuple[list[Reply], list[Reply]]:
        """(tasks to run next, reports not handed in yet): the reply to the call sent ahead,
        else one round trip now. `running`: the tasks the worker holds (its queue is empty)."""
        size = self.batch.next(len(reports), time.monotonic())
        works, asked = self._collect()
        if not works:
            works = self.scheduler.get_work_batch(self.worker_id, running, reports, size)
            asked, reports = size, []
        # A full batch of fast tasks: more are likely ready, so ask now, while these run.
        scheduler = self.scheduler
        if isinstance(scheduler, CallsAhead) and size > self.batch.least and len(works) == asked:
            held = running + [m for reply in works for m in self.members(reply)]
            pending = scheduler.begin_call(
                "get_work", worker=self.worker_id, running=held, reports=reports, max_tasks=size
            )
            self._ahead, reports = (pending, size), []
        return works, reports

    def drain(self) -> list[Reply]:
        """The tasks of the call in flight, if any: the worker must run or hand them back."""
        return self._collect()[0]

    def _collect(self) -> tuple[list[Reply], int]:
        """The tasks the call in flight brought (none if none was) and the max_tasks it asked."""
        ahead, self._ahead = self._ahead, None
        if ahead is None:
            return [], 0
        tasks: list[Reply] = ahead[0].result()["tasks"]
        return tasks, ahead[1]
