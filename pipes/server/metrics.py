"""Prometheus text exposition of scheduler figures (task counts, workers, call latencies)."""

from __future__ import annotations

import bisect

from pipes.scheduler.core import Scheduler

BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1.0)


class LatencyHistogram:
    """A cumulative histogram of call durations in seconds."""

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        """Record one call."""
        self.counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.total += seconds

    def lines(self, name: str) -> list[str]:
        """The histogram's exposition lines."""
        out, running = [], 0
        for bound, count in zip((*BUCKETS, "+Inf"), self.counts, strict=True):
            running += count
            out.append(f'{name}_bucket{{le="{bound}"}} {running}')
        out.append(f"{name}_sum {self.total}")
        out.append(f"{name}_count {running}")
        return out


class CallTimes:
    """Time spent answering each RPC method, and how many calls."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}

    def observe(self, method: str, seconds: float) -> None:
        """Record one call of a method."""
        self.seconds[method] = self.seconds.get(method, 0.0) + seconds
        self.calls[method] = self.calls.get(method, 0) + 1

    def lines(self, name: str) -> list[str]:
        """Sum and count per method."""
        out = []
        for method in sorted(self.calls):
            out.append(f'{name}_sum{{method="{method}"}} {self.seconds[method]}')
            out.append(f'{name}_count{{method="{method}"}} {self.calls[method]}')
        return out


def render(core: Scheduler, get_work: LatencyHistogram, calls: CallTimes) -> str:
    """The whole /metrics page."""
    lines = [
        "# HELP pipes_tasks Tasks known to the scheduler, by status.",
        "# TYPE pipes_tasks gauge",
        *(f'pipes_tasks{{status="{status}"}} {count}' for status, count in core.counts.items()),
        "# HELP pipes_workers Connected workers.",
        "# TYPE pipes_workers gauge",
        f"pipes_workers {len(core.workers)}",
        "# HELP pipes_ready_queue_entries Entries held by the ready queues, stale ones included.",
        "# TYPE pipes_ready_queue_entries gauge",
        f"pipes_ready_queue_entries {core.ready_entries}",
        "# HELP pipes_paused 1 while the scheduler hands out no work.",
        "# TYPE pipes_paused gauge",
        f"pipes_paused {int(core.paused)}",
        "# HELP pipes_get_work_seconds Time to answer get_work, in seconds.",
        "# TYPE pipes_get_work_seconds histogram",
        *get_work.lines("pipes_get_work_seconds"),
        "# HELP pipes_rpc_seconds Time to answer each RPC method, in seconds.",
        "# TYPE pipes_rpc_seconds summary",
        *calls.lines("pipes_rpc_seconds"),
    ]
    return "\n".join(lines) + "\n"
