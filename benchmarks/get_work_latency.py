"""get_work latency with many pending tasks, over HTTP to a real pipesd and in-process.

    python benchmarks/get_work_latency.py --pending 20000 100000 1000000 [--calls 2000] [--luigi]

For each size N, starts a fresh pipesd (free port on 127.0.0.1, SQLite state in a temp dir)
and fills it with N pending tasks, almost none of them runnable by the measuring worker
`bench`:

* 100 "blocker" tasks and, for the rest, one half "blocked" tasks (each depends on an
  unfinished blocker) and one half "foreign" tasks (ready, but added by 8 other workers,
  so `bench` may not run them);
* a stream of tasks for `bench`: 16 lanes of chains, so 16 are ready at any time and each
  DONE report makes the next one of its lane ready.

Then it times ~2000 get_work calls of `bench` through pipes.rpc.RemoteScheduler (after each,
the task is reported DONE with add_task, untimed, so the queue keeps moving) and the same
state built in-process, timing pipes.scheduler.core.Scheduler.get_work directly.
Targets: over HTTP, median < 2 ms at every size; in-process < 50 us.

With --luigi, the same workload (same tasks, same reports) against luigid 3.8.1 from
benchmarks/.luigi-venv through luigi.rpc.RemoteScheduler, at --luigi-pending sizes (default
20000 100000), with fewer calls (--luigi-calls) and a time budget per size. Each of luigi's
get_work calls sorts and scans the asking worker's pending tasks (every pending task, when
any of them needs a resource), so --blocked-share (default 0.5: half of N are bench's own
blocked tasks) sets how much of N luigi scans; 1.0 is its worst case. Luigi reference:
~81 ms at 20,000 and ~399 ms at 100,000.

With --baseline-tree DIR, each size is also measured against a pipesd run from the checkout
in DIR (e.g. `git worktree add /tmp/pipes-before <commit>`) by this venv's python, with the
same client, workload and number of calls. Both daemons are filled first, then the timed
calls alternate between them call by call, so the load of other processes on the machine
falls on both alike; it prints both medians and the ratio after/before.

Both daemons get worker_disconnect_delay = remove_delay = 1 day, so the filler workers, which
never ping, keep their tasks during a fill that takes minutes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import daemons  # benchmarks/ is not a package: imported from sys.path

BLOCKERS = 100
FILLERS = 8
LANES = 16
WARMUP = 20
BATCH = 5000
BENCH = "bench"


def plan(n: int, stream: int, blocked_share: float = 0.5) -> Iterator[tuple[str, dict]]:
    """(worker, task) pairs: n tasks in all, none of them runnable by BENCH but the stream.

    Each task is a dict with task_id, family, module, params and deps (a list of ids).
    """
    rest = max(0, n - stream - BLOCKERS)
    blocked = round(rest * blocked_share)
    blocker_ids = [daemons.task_id("Blocker", b) for b in range(BLOCKERS)]
    for b, tid in enumerate(blocker_ids):
        yield f"filler-{b % FILLERS}", _task(tid, "Blocker", b, [])
    for i in range(blocked):  # BENCH's own, waiting on a blocker it may not run
        tid = daemons.task_id("Blocked", i)
        yield BENCH, _task(tid, "Blocked", i, [blocker_ids[i % BLOCKERS]])
    for i in range(rest - blocked):  # ready, but for other workers
        tid = daemons.task_id("Foreign", i)
        yield f"filler-{i % FILLERS}", _task(tid, "Foreign", i, [])
    for j in range(stream):
        deps = [daemons.task_id("Stream", j - LANES)] if j >= LANES else []
        yield BENCH, _task(daemons.task_id("Stream", j), "Stream", j, deps)


def _task(tid: str, family: str, i: int, deps: list[str]) -> dict:
    params = {"i": str(i), "date": f"2024-01-{i % 28 + 1:02d}"}
    return {"task_id": tid, "family": family, "module": "bench", "params": params, "deps": deps}


def regroup(n: int, stream: int, blocked_share: float) -> Iterator[tuple[str, list[dict]]]:
    """The plan in add_tasks batches of up to BATCH tasks of one worker."""
    per_worker: dict[str, list[dict]] = {}
    for worker, task in plan(n, stream, blocked_share):
        bucket = per_worker.setdefault(worker, [])
        bucket.append(task)
        if len(bucket) >= BATCH:
            yield worker, bucket
            per_worker[worker] = []
    for worker, bucket in per_worker.items():
        if bucket:
            yield worker, bucket


def _progress(label: str, done: int, total: int, started: float) -> None:
    rate = done / max(time.perf_counter() - started, 1e-9)
    print(f"  {label}: {done}/{total} tasks ({rate:,.0f}/s)", file=sys.stderr, flush=True)


# ----- pipes over HTTP ----------------------------------------------------------------------


def measure_http(n: int, calls: int, share: float) -> dict:
    """Fill a fresh pipesd and time get_work over HTTP."""
    return measure_http_trees(n, calls, share, [None])[0]


def measure_http_trees(n: int, calls: int, share: float, trees: list[Path | None]) -> list[dict]:
    """One fresh pipesd per tree (None: this tree's; else the checkout at that path), each
    filled alike; then get_work over HTTP timed on them in turn, call by call, so that the
    load of other processes falls on all of them alike. The client is this tree's
    RemoteScheduler."""
    from pipes.rpc import RemoteScheduler

    stream = calls + WARMUP + LANES
    with contextlib.ExitStack() as stack:
        runs = []
        for tree in trees:
            daemon = stack.enter_context(daemons.pipesd(tree=tree))
            remote = RemoteScheduler(daemon.url)
            rss_before = daemon.rss()
            started, added = time.perf_counter(), 0
            last = started
            for worker, tasks in regroup(n, stream, share):
                remote.add_tasks(worker, tasks)
                added += len(tasks)
                if time.perf_counter() - last > 10:
                    last = time.perf_counter()
                    _progress(f"pipesd fill N={n:,}", added, n, started)
            fill = time.perf_counter() - started
            runs.append(
                {
                    "daemon": daemon,
                    "remote": remote,
                    "fill_seconds": fill,
                    "added": added,
                    "counts": remote.call("counts"),
                    "rss_before": rss_before,
                    "latencies": [],
                    "reports": [],
                }
            )
        for k in range(WARMUP + calls):
            for run in runs:
                remote = run["remote"]
                latency, report = _step(
                    k,
                    lambda remote=remote: remote.get_work(BENCH, running=[]),
                    lambda tid, remote=remote: remote.add_task(
                        BENCH, {"task_id": tid, "status": "DONE"}
                    ),
                )
                if k >= WARMUP:
                    run["latencies"].append(latency)
                    run["reports"].append(report)
        for run in runs:
            daemon = run.pop("daemon")
            run.pop("remote")
            run["server_mean"] = daemons.get_work_metrics(daemon)["mean"]
            run["rss_after"] = daemon.rss()
    return runs


def _step(k: int, get_work, report) -> tuple[float, float]:
    """One timed get_work and one timed DONE report: (get_work seconds, report seconds)."""
    t0 = time.perf_counter()
    work = get_work()
    t1 = time.perf_counter()
    if work is None or not work["task_id"].startswith("Stream_"):
        raise SystemExit(f"get_work call {k} handed out {work!r}, expected a Stream task")
    t2 = time.perf_counter()
    report(work["task_id"])
    return t1 - t0, time.perf_counter() - t2


def _loop(get_work, report, calls: int) -> tuple[list[float], list[float]]:
    latencies, reports = [], []
    for k in range(WARMUP + calls):
        latency, spent = _step(k, get_work, report)
        if k >= WARMUP:
            latencies.append(latency)
            reports.append(spent)
    return latencies, reports


# ----- pipes in-process -----------------------------------------------------------------------


def measure_in_process(n: int, calls: int, share: float) -> dict:
    """The same state in a Scheduler object; time Scheduler.get_work itself."""
    from pipes.scheduler.core import Scheduler
    from pipes.scheduler.model import Status, TaskSpec
    from pipes.scheduler.service import work_json

    stream = calls + WARMUP + LANES
    core = Scheduler()
    now = time.time()
    started = time.perf_counter()
    for worker, tasks in regroup(n, stream, share):
        core.add_tasks(worker, [TaskSpec.from_dict(t) for t in tasks], now)
        core.take_changes()  # what Service.call does after every call (store.commit)
    fill = time.perf_counter() - started

    def get_work() -> dict | None:
        # the reply as JSON, as the core built it before it returned typed replies
        work = core.get_work(BENCH, time.time())
        return None if work is None else work_json(work)

    def report(tid: str) -> None:
        core.add_tasks(BENCH, [TaskSpec(tid, status=Status.DONE)], time.time())
        core.take_changes()

    latencies, _ = _loop(get_work, report, calls)  # report also drops get_work's changes
    return {"fill_seconds": fill, "latencies": latencies}


# ----- luigi ------------------------------------------------------------------------------------

LUIGI_SCRIPT = r"""
import json, sys, time
sys.path.insert(0, BENCH_DIR)
import logging
logging.disable(logging.WARNING)
import luigi.rpc
from get_work_latency import regroup, BENCH, WARMUP, LANES

url, n, calls = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
budget, share = float(sys.argv[4]), float(sys.argv[5])
s = luigi.rpc.RemoteScheduler(url)
started, added, last = time.perf_counter(), 0, time.perf_counter()
stream = calls + WARMUP + LANES
for worker, tasks in regroup(n, stream, share):
    for t in tasks:
        s.add_task(worker=worker, task_id=t["task_id"], status="PENDING", runnable=True,
                   deps=t["deps"], family=t["family"], module=t["module"], params=t["params"])
        added += 1
    if time.perf_counter() - last > 10:
        last = time.perf_counter()
        print(f"  luigid fill N={n:,}: {added}/{n} tasks ({added / (last - started):,.0f}/s)",
              file=sys.stderr, flush=True)
fill = time.perf_counter() - started
latencies, reports = [], []
measure_start = time.perf_counter()
for k in range(WARMUP + calls):
    t0 = time.perf_counter()
    work = s.get_work(worker=BENCH, host="bench-host", assistant=False, current_tasks=[])
    t1 = time.perf_counter()
    tid = work.get("task_id")
    if not tid or not tid.startswith("Stream_"):
        raise SystemExit(f"luigi get_work call {k} handed out {work!r}")
    s.add_task(worker=BENCH, task_id=tid, status="DONE", runnable=True)
    t2 = time.perf_counter()
    if k >= WARMUP:
        latencies.append(t1 - t0)
        reports.append(t2 - t1)
    if time.perf_counter() - measure_start > budget:
        break
print(json.dumps({"fill_seconds": fill, "added": added, "latencies": latencies,
                  "reports": reports}))
"""


def measure_luigi(n: int, calls: int, budget: float, share: float) -> dict:
    """Fill a fresh luigid the same way and time luigi's get_work over its HTTP RPC."""
    code = LUIGI_SCRIPT.replace("BENCH_DIR", repr(str(daemons.HERE)))
    with daemons.luigid() as daemon:
        rss_before = daemon.rss()
        done = subprocess.run(
            [
                str(daemons.LUIGI_PYTHON),
                "-c",
                code,
                daemon.url,
                str(n),
                str(calls),
                str(budget),
                str(share),
            ],
            stdout=subprocess.PIPE,
            text=True,
            check=False,
            env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        )
        rss_after = daemon.rss()
        if done.returncode != 0:
            raise SystemExit(f"luigi run failed (exit {done.returncode}):\n{daemon.log_tail()}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["rss_before"], result["rss_after"] = rss_before, rss_after
    return result


def _print_baseline(tree: Path, result: dict, after: float) -> None:
    """The baseline checkout's figures and the before/after ratio of the medians."""
    before = daemons.summary(result["latencies"])[0]
    print(
        f"  baseline pipesd ({tree}) fill: {result['added']:,} tasks in "
        f"{result['fill_seconds']:.1f} s; RSS {result['rss_before'] / 2**20:.0f} -> "
        f"{result['rss_after'] / 2**20:.0f} MiB"
    )
    print("  " + _line("baseline HTTP get_work", result["latencies"]))
    if result["server_mean"] is not None:
        print("    of which inside pipesd (mean): " + daemons.fmt_time(result["server_mean"]))
    print("  " + _line("baseline HTTP add_task DONE report", result["reports"]))
    print(
        f"  get_work median: before {daemons.fmt_time(before)}, after {daemons.fmt_time(after)}, "
        f"ratio after/before = {after / before:.2f}"
    )


# ----- output -----------------------------------------------------------------------------------


def _line(label: str, values: list[float]) -> str:
    median, p99, worst = daemons.summary(values)
    return (
        f"{label}: median {daemons.fmt_time(median)}, p99 {daemons.fmt_time(p99)}, "
        f"max {daemons.fmt_time(worst)} ({len(values)} calls)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pending", type=int, nargs="+", default=[20000, 100000, 1000000])
    parser.add_argument("--calls", type=int, default=2000, help="timed get_work calls per size")
    parser.add_argument("--luigi", action="store_true", help="also measure luigid 3.8.1")
    parser.add_argument("--luigi-pending", type=int, nargs="+", default=[20000, 100000])
    parser.add_argument("--luigi-calls", type=int, default=200)
    parser.add_argument(
        "--luigi-budget", type=float, default=120.0, help="seconds of luigi get_work per size"
    )
    parser.add_argument(
        "--blocked-share",
        type=float,
        default=0.5,
        help="share of the filler that is bench's own blocked tasks (the rest: other workers')",
    )
    parser.add_argument("--no-in-process", action="store_true")
    parser.add_argument(
        "--baseline-tree",
        type=Path,
        help="also time get_work over HTTP on a pipesd run from this checkout (before/after)",
    )
    args = parser.parse_args()
    if args.baseline_tree is not None and not (args.baseline_tree / "pipes" / "cli.py").is_file():
        parser.error(f"--baseline-tree {args.baseline_tree}: no pipes/cli.py there")

    http_medians: dict[int, float] = {}
    for n in args.pending:
        print(f"N = {n:,} pending tasks")
        trees = [None] if args.baseline_tree is None else [None, args.baseline_tree]
        result, *baseline = measure_http_trees(n, args.calls, args.blocked_share, trees)
        counts = {k: v for k, v in result["counts"].items() if v}
        print(
            f"  pipesd fill: {result['added']:,} tasks in {result['fill_seconds']:.1f} s "
            f"({result['added'] / result['fill_seconds']:,.0f} tasks/s); counts {counts}; "
            f"RSS {result['rss_before'] / 2**20:.0f} -> {result['rss_after'] / 2**20:.0f} MiB"
        )
        median = daemons.summary(result["latencies"])[0]
        http_medians[n] = median
        print("  " + _line("pipes HTTP get_work", result["latencies"]), end="")
        print(f"  [target median < 2 ms: {daemons.verdict(median, 2e-3)}]")
        if result["server_mean"] is not None:
            print(
                "    of which inside pipesd (service + SQLite commit, mean): "
                f"{daemons.fmt_time(result['server_mean'])}"
            )
        print(
            "  "
            + _line("pipes HTTP add_task DONE report (untimed in the above)", result["reports"])
        )
        if baseline:
            _print_baseline(args.baseline_tree, baseline[0], median)
        if not args.no_in_process:
            local = measure_in_process(n, args.calls, args.blocked_share)
            median = daemons.summary(local["latencies"])[0]
            print("  " + _line("pipes in-process Scheduler.get_work", local["latencies"]), end="")
            print(f"  [target median < 50 us: {daemons.verdict(median, 50e-6)}]")
            print(f"    (in-process fill: {local['fill_seconds']:.1f} s)")
        sys.stdout.flush()

    if args.luigi:
        for n in args.luigi_pending:
            print(f"luigi N = {n:,} pending tasks")
            result = measure_luigi(n, args.luigi_calls, args.luigi_budget, args.blocked_share)
            print(
                f"  luigid fill: {result['added']:,} add_task calls in "
                f"{result['fill_seconds']:.1f} s "
                f"({result['fill_seconds'] / max(result['added'], 1) * 1e3:.2f} ms each); "
                f"RSS {result['rss_before'] / 2**20:.0f} -> {result['rss_after'] / 2**20:.0f} MiB"
            )
            print("  " + _line("luigi HTTP get_work", result["latencies"]))
            if n in http_medians:
                median = daemons.summary(result["latencies"])[0]
                print(f"  ratio luigi/pipes (HTTP median) = {median / http_medians[n]:,.0f}x")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
