"""The status page's API calls with many tasks in a real pipesd, and get_work while it is polled.

    python benchmarks/status_page.py [--n 100000] [--calls 30] [--get-work 1000] [--poll-rate 2]

Fills a fresh pipesd (127.0.0.1, SQLite state in a temp dir) with N tasks in 20 families:
about 80% DONE, 2% FAILED (with a traceback), 1% RUNNING, the rest PENDING (half of them
behind a failed task, so "upstream failed" has work to do), plus a stream of ready tasks for
the measuring worker. Then:

1. times each call the pages make (overview, filtered/sorted/searched task lists, a deep
   page, task_detail, graph) over HTTP, and the same call inside the daemon (`server` column,
   from the daemon's own per-method timing at /metrics). `first` is the first of the
   calls: a deep page sorts then, and later calls reuse the sorted list;
2. times get_work of a worker over HTTP: alone; while another process loads the overview and
   a filtered task list --poll-rate times a second (default 2: ten browsers refreshing every
   5 s); and while it does so flat out (a stress figure: the daemon answers one call at a
   time, so get_work waits behind page calls); and prints the ratios.

Targets (issue 5): overview and a filtered task list each under 200 ms server-side at 100,000
tasks; get_work latency stays close to normal while the page is polled.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import daemons  # benchmarks/ is not a package: imported from sys.path

FAMILIES = 20
BATCH = 5000
LANES = 16
TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "etl.py", line 42, in run\n'
    "    load(rows)\n"
    "ValueError: row 17 has 3 columns, expected 4\n"
)


def fill(remote, n: int, stream: int) -> None:
    """N tasks in 20 families with a realistic mix of statuses, and BENCH's stream."""
    failed_ids = []
    batch: list[dict] = []

    def flush(worker: str = "filler") -> None:
        if batch:
            remote.add_tasks(worker, list(batch))
            batch.clear()

    for i in range(n):
        family = f"Family{i % FAMILIES}"
        tid = daemons.task_id(family, i)
        task = {"task_id": tid, "family": family, "module": "etl", "params": _params(i)}
        bucket = i % 100
        if bucket < 80:
            task["status"] = "DONE"
        elif bucket < 82:
            task.update(status="FAILED", error=TRACEBACK)
            failed_ids.append(tid)
        elif bucket < 91 and failed_ids:
            task["deps"] = [failed_ids[-1]]  # upstream failed
        batch.append(task)
        if len(batch) >= BATCH:
            flush()
    flush()
    runner_tasks = [_stream_task(f"Running_{i}", i, []) for i in range(n // 100)]
    remote.add_tasks("runner", runner_tasks)
    for _ in range(0, len(runner_tasks), 100):
        remote.call("get_work", worker="runner", max_tasks=100)
    stream_tasks = [
        _stream_task(f"Stream_{j}", j, [f"Stream_{j - LANES}"] if j >= LANES else [])
        for j in range(stream)
    ]
    remote.add_tasks("bench", stream_tasks)


def _params(i: int) -> dict[str, str]:
    return {"date": f"2026-{i % 12 + 1:02d}-{i % 28 + 1:02d}", "shard": str(i)}


def _stream_task(tid: str, i: int, deps: list[str]) -> dict:
    return {"task_id": tid, "family": "Stream", "module": "etl", "params": _params(i), "deps": deps}


def page_calls(n: int, some_task: str) -> dict[str, tuple[str, dict]]:
    """What the status page asks for, by label."""
    return {
        "overview": ("overview", {}),
        "list: all, newest first": ("task_list", {"limit": 50}),
        "list: FAILED": ("task_list", {"status": "FAILED", "limit": 50}),
        "list: DONE of one family by id": (
            "task_list",
            {"status": "DONE", "family": "Family7", "sort": "task_id", "limit": 50},
        ),
        "list: UPSTREAM_FAILED": ("task_list", {"status": "UPSTREAM_FAILED", "limit": 50}),
        "list: search 'Family3_'": ("task_list", {"search": "Family3_", "limit": 50}),
        "list: deep page": ("task_list", {"status": "DONE", "offset": n // 2, "limit": 50}),
        "task_detail": ("task_detail", {"task_id": some_task}),
        "graph depth 3": ("graph", {"task_id": some_task, "depth": 3}),
    }


def time_calls(remote, daemon, label: str, method: str, body: dict, calls: int) -> None:
    http = []
    before = daemons.method_seconds(daemon, method)
    for _ in range(calls):
        started = time.perf_counter()
        remote.call(method, **body)
        http.append(time.perf_counter() - started)
    after = daemons.method_seconds(daemon, method)
    server = (after[0] - before[0]) / max(after[1] - before[1], 1)
    print(
        f"  {label:<32} http first {1000 * http[0]:7.2f} ms  median"
        f" {1000 * statistics.median(http):7.2f} ms  p95 {1000 * _p(http, 0.95):7.2f} ms"
        f"  server mean {1000 * server:7.2f} ms"
    )


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def poll(url: str, stop, rate: float) -> None:
    """Another process: an overview and a filtered list `rate` times a second (0: flat out)."""
    from pipes.rpc import RemoteScheduler

    remote = RemoteScheduler(url)
    next_round = time.monotonic()
    while not stop.is_set():
        remote.call("overview")
        remote.call("task_list", status="DONE", family="Family3", limit=50)
        if rate:
            next_round += 1 / rate
            time.sleep(max(0.0, next_round - time.monotonic()))


def get_work_latencies(remote, calls: int, start: int) -> list[float]:
    latencies = []
    for k in range(calls):
        started = time.perf_counter()
        reply = remote.call("get_work", worker="bench", running=[])
        latencies.append(time.perf_counter() - started)
        work = reply["task"]
        if work is None or not work["task_id"].startswith("Stream_"):
            raise SystemExit(f"get_work call {start + k} handed out {work!r}")
        remote.add_task("bench", {"task_id": work["task_id"], "status": "DONE"})
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=30, help="timed calls per page call")
    parser.add_argument("--get-work", type=int, default=1000, help="timed get_work calls per phase")
    parser.add_argument(
        "--poll-rate", type=float, default=2.0, help="page refreshes per second in phase 2"
    )
    args = parser.parse_args()
    from pipes.rpc import RemoteScheduler

    with daemons.pipesd() as daemon:
        remote = RemoteScheduler(daemon.url)
        started = time.perf_counter()
        fill(remote, args.n, 3 * args.get_work + LANES)
        counts = remote.call("counts")
        print(
            f"pipesd with {sum(counts.values()):,} tasks (filled in "
            f"{time.perf_counter() - started:.1f} s): {counts}"
        )
        some_task = remote.call("task_list", status="FAILED", limit=1)["tasks"][0]
        print(f"page calls ({args.calls} each), target < 200 ms server-side:")
        for label, (method, body) in page_calls(args.n, some_task["task_id"]).items():
            time_calls(remote, daemon, label, method, body, args.calls)

        phases = {"alone": get_work_latencies(remote, args.get_work, 0)}
        for rate in (args.poll_rate, 0):
            stop = multiprocessing.Event()
            poller = multiprocessing.Process(target=poll, args=(daemon.url, stop, rate))
            poller.start()
            time.sleep(0.5)
            label = f"page polled {rate:g}/s" if rate else "page polled flat out"
            phases[label] = get_work_latencies(remote, args.get_work, len(phases) * args.get_work)
            stop.set()
            poller.join(10)
    for label, values in phases.items():
        print(
            f"get_work {label:<22} median {1000 * statistics.median(values):6.2f} ms"
            f"  p99 {1000 * _p(values, 0.99):6.2f} ms"
        )
    alone = statistics.median(phases["alone"])
    for label, values in list(phases.items())[1:]:
        print(f"get_work median, {label} / alone: {statistics.median(values) / alone:.2f}x")


if __name__ == "__main__":
    main()
