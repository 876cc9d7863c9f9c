"""add_tasks throughput over HTTP into a real pipesd.

    python benchmarks/add_tasks_throughput.py --n 100000 --batch 2000 [--luigi [--luigi-n 10000]]

Starts a fresh pipesd (free port on 127.0.0.1, SQLite state in a temp dir) and sends n new
tasks through pipes.rpc.RemoteScheduler.add_tasks in batches of --batch, each task shaped
as a worker sends it (task_id, family, module, two params, status, runnable, priority,
resources, and one dependency: a random other task of the set, so some deps are already
known and some are placeholders until their own batch arrives). Prints tasks/s (wall time
on the client, so JSON encoding, HTTP, validation, the scheduler and the SQLite commit are
all in it) and the per-batch latency. Target: >= 20,000 tasks/s.

With --luigi, sends --luigi-n of the same tasks to luigid 3.8.1 (benchmarks/.luigi-venv)
through luigi.rpc.RemoteScheduler.add_task, luigi's only way to add a task (one HTTP call
each), and prints calls/s. Luigi reference: ~1 ms per add_task call.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import daemons  # benchmarks/ is not a package: imported from sys.path


def make_task(i: int, dep: int) -> dict:
    """Task i, depending on task dep, as pipes' worker describes it in add_tasks."""
    params = {"date": _date(i), "shard": str(i)}
    return {
        "task_id": daemons.task_id("Ingest", params["date"], i),
        "family": "Ingest",
        "module": "bench.etl",
        "params": params,
        "status": "PENDING",
        "runnable": True,
        "priority": 0,
        "resources": {},
        "deps": [daemons.task_id("Ingest", _date(dep), dep)],
    }


def _date(i: int) -> str:
    return f"2024-{i % 12 + 1:02d}-{i % 28 + 1:02d}"


def make_tasks(n: int, seed: int = 1) -> list[dict]:
    """n tasks, each with one dependency on another random task of the set."""
    rng = random.Random(seed)
    return [make_task(i, (i + rng.randrange(1, n)) % n if n > 1 else i) for i in range(n)]


def measure_pipes(n: int, batch: int) -> dict:
    """Seconds to add n tasks in batches to a fresh pipesd, and each batch's latency."""
    from pipes.rpc import RemoteScheduler

    tasks = make_tasks(n)
    with daemons.pipesd() as daemon:
        remote = RemoteScheduler(daemon.url)
        remote.add_worker("loader", {"host": "bench"})
        latencies = []
        started = time.perf_counter()
        for start in range(0, n, batch):
            t0 = time.perf_counter()
            remote.add_tasks("loader", tasks[start : start + batch])
            latencies.append(time.perf_counter() - t0)
        total = time.perf_counter() - started
        counts = remote.call("counts")
        rss = daemon.rss()
    return {"seconds": total, "latencies": latencies, "counts": counts, "rss": rss}


LUIGI_SCRIPT = r"""
import json, sys, time
sys.path.insert(0, BENCH_DIR)
import logging
logging.disable(logging.WARNING)
import luigi.rpc
from add_tasks_throughput import make_tasks

url, n = sys.argv[1], int(sys.argv[2])
tasks = make_tasks(n)
s = luigi.rpc.RemoteScheduler(url)
latencies = []
started = time.perf_counter()
for t in tasks:
    t0 = time.perf_counter()
    s.add_task(worker="loader", task_id=t["task_id"], status="PENDING", runnable=True,
               deps=t["deps"], family=t["family"], module=t["module"], params=t["params"],
               priority=0, resources={})
    latencies.append(time.perf_counter() - t0)
print(json.dumps({"seconds": time.perf_counter() - started, "latencies": latencies}))
"""


def measure_luigi(n: int) -> dict:
    """Seconds for n add_task calls to a fresh luigid."""
    code = LUIGI_SCRIPT.replace("BENCH_DIR", repr(str(daemons.HERE)))
    with daemons.luigid() as daemon:
        done = subprocess.run(
            [str(daemons.LUIGI_PYTHON), "-c", code, daemon.url, str(n)],
            stdout=subprocess.PIPE,
            text=True,
            check=False,
            env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        )
        if done.returncode != 0:
            raise SystemExit(f"luigi run failed (exit {done.returncode}):\n{daemon.log_tail()}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--luigi", action="store_true", help="also measure luigid 3.8.1")
    parser.add_argument("--luigi-n", type=int, default=10_000)
    args = parser.parse_args()

    result = measure_pipes(args.n, args.batch)
    rate = args.n / result["seconds"]
    median, p99, worst = daemons.summary(result["latencies"])
    tenth = max(1, len(result["latencies"]) // 10)
    first = args.batch * tenth / sum(result["latencies"][:tenth])
    last = args.batch * tenth / sum(result["latencies"][-tenth:])
    counts = {k: v for k, v in result["counts"].items() if v}
    print(f"pipes  add_tasks n={args.n:,} batch={args.batch:,}: {result['seconds']:.2f} s")
    print(
        f"  {rate:,.0f} tasks/s ({result['seconds'] / args.n * 1e6:.1f} us/task)  "
        f"[target >= 20,000 tasks/s: {daemons.verdict(rate, 20_000, lower_is_better=False)}]"
    )
    print(
        f"  per batch: median {daemons.fmt_time(median)}, p99 {daemons.fmt_time(p99)}, "
        f"max {daemons.fmt_time(worst)} ({len(result['latencies'])} batches); "
        f"first 10% of batches {first:,.0f} tasks/s, last 10% {last:,.0f} tasks/s"
    )
    print(f"  scheduler counts {counts}; pipesd RSS {result['rss'] / 2**20:.0f} MiB")
    if args.luigi:
        luigi = measure_luigi(args.luigi_n)
        lrate = args.luigi_n / luigi["seconds"]
        lmedian, lp99, _ = daemons.summary(luigi["latencies"])
        print(f"luigi  add_task x {args.luigi_n:,}: {luigi['seconds']:.2f} s")
        print(
            f"  {lrate:,.0f} calls/s = tasks/s; per call median {daemons.fmt_time(lmedian)}, "
            f"p99 {daemons.fmt_time(lp99)}"
        )
        print(f"ratio  pipes/luigi tasks/s = {rate / lrate:,.0f}x")


if __name__ == "__main__":
    main()
