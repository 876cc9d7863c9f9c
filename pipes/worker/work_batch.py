"""How many tasks a worker takes per get_work round trip: more while its tasks finish fast.

A worker takes `least` tasks ([worker] get_work_batch) per round trip. While it gets through
its tasks quickly it takes about as many as it finished in the last `seconds`
([worker] get_work_batch_seconds), at most doubling per round trip and at most `most`. A
worker so holds at most about `seconds` of work that other workers cannot take, however fast
its tasks are, and slow tasks go out `least` at a time, as with a fixed batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MOST_PER_GET_WORK = 100  # pipesd's limit on get_work's max_tasks


@dataclass
class WorkBatch:
    """The size of the next get_work batch, from how fast the last round trip's tasks went."""

    least: int = 4
    seconds: float = 0.1  # 0: always `least`
    most: int = MOST_PER_GET_WORK
    size: int = field(init=False)
    _last: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.least = max(1, min(self.most, self.least))
        self.size = self.least

    def next(self, finished: int, now: float) -> int:
        """The batch to ask for at `now` (monotonic seconds), handing in `finished` reports.

        The rate is reports per second since the previous round trip: a round trip with no
        reports (nothing finished yet, or the worker was idle) keeps the size.
        """
        last, self._last = self._last, now
        if last is None or finished <= 0 or self.seconds <= 0:
            return self.size
        elapsed = max(now - last, 1e-6)
        fits = self.seconds * finished / elapsed  # a float: inf when seconds is inf
        self.size = int(max(self.least, min(self.most, 2 * self.size, fits)))
        return self.size
