"""Resident memory of pipesd per task it holds.

    python benchmarks/daemon_memory.py --n 100000 1000000 [--luigi [--luigi-n 50000]]

For each n, starts a fresh pipesd (free port on 127.0.0.1, SQLite state in a temp dir),
reads its VmRSS from /proc/PID/status, adds n tasks through pipes.rpc.RemoteScheduler
.add_tasks in batches (realistic tasks: one of 6 families, 2-3 string params, 1-2 deps on
other tasks of the set, as a worker sends them), reads VmRSS again and prints
(after - before) / n. VmHWM (the peak) is printed too: parsing a batch costs transient
memory. Target: <= 2 KB/task (Luigi: ~5 KB).

With --luigi, does the same with --luigi-n add_task calls on luigid 3.8.1 (one call per
task: luigi has no batch add).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import daemons  # benchmarks/ is not a package: imported from sys.path

FAMILIES = ("Ingest", "Clean", "Aggregate", "Report", "Export", "Train")
REGIONS = ("eu-west-1", "us-east-1", "ap-south-1", "sa-east-1")
BATCH = 5000


def _params(i: int) -> dict[str, str]:
    params = {"date": f"2024-{i % 12 + 1:02d}-{i % 28 + 1:02d}", "shard": str(i)}
    if i % 2:
        params["region"] = REGIONS[i % len(REGIONS)]
    return params


def _id(i: int) -> str:
    family = FAMILIES[i % len(FAMILIES)]
    return daemons.task_id(family, *_params(i).values())


def make_task(i: int) -> dict:
    """Task i: 2-3 params, 1-2 deps on lower-numbered tasks (task 0 has none)."""
    deps = sorted({_id(j) for j in ((i - 1) // 2, i // 3) if j < i}) if i else []
    if i % 3:
        deps = deps[:1]
    return {
        "task_id": _id(i),
        "family": FAMILIES[i % len(FAMILIES)],
        "module": "bench.pipeline",
        "params": _params(i),
        "status": "PENDING",
        "runnable": True,
        "priority": 0,
        "resources": {},
        "deps": deps,
    }


def measure_pipes(n: int) -> dict:
    """RSS of a fresh pipesd before and after it takes n tasks."""
    from pipes.rpc import RemoteScheduler

    with daemons.pipesd() as daemon:
        remote = RemoteScheduler(daemon.url)
        remote.add_worker("loader", {"host": "bench"})
        time.sleep(0.2)
        before = daemon.rss()
        started = time.perf_counter()
        for start in range(0, n, BATCH):
            remote.add_tasks("loader", [make_task(i) for i in range(start, min(n, start + BATCH))])
        seconds = time.perf_counter() - started
        time.sleep(0.2)
        after, peak = daemon.rss(), daemon.hwm()
        total = remote.task_list(limit=0)["total"]
    return {"before": before, "after": after, "peak": peak, "seconds": seconds, "total": total}


LUIGI_SCRIPT = r"""
import sys
sys.path.insert(0, BENCH_DIR)
import logging
logging.disable(logging.WARNING)
import luigi.rpc
from daemon_memory import make_task

url, n = sys.argv[1], int(sys.argv[2])
s = luigi.rpc.RemoteScheduler(url)
for i in range(n):
    t = make_task(i)
    s.add_task(worker="loader", task_id=t["task_id"], status="PENDING", runnable=True,
               deps=t["deps"], family=t["family"], module=t["module"], params=t["params"],
               priority=0, resources={})
"""


def measure_luigi(n: int) -> dict:
    """RSS of a fresh luigid before and after n add_task calls."""
    code = LUIGI_SCRIPT.replace("BENCH_DIR", repr(str(daemons.HERE)))
    with daemons.luigid() as daemon:
        time.sleep(0.2)
        before = daemon.rss()
        started = time.perf_counter()
        done = subprocess.run(
            [str(daemons.LUIGI_PYTHON), "-c", code, daemon.url, str(n)],
            check=False,
            env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        )
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"luigi run failed (exit {done.returncode}):\n{daemon.log_tail()}")
        time.sleep(0.2)
        after, peak = daemon.rss(), daemon.hwm()
    return {"before": before, "after": after, "peak": peak, "seconds": seconds, "total": n}


def report(name: str, n: int, result: dict, target: float | None) -> float:
    """Print one measurement; returns bytes per task."""
    per_task = (result["after"] - result["before"]) / n
    mib = 2**20
    line = (
        f"{name} n={n:,}: RSS {result['before'] / mib:.1f} -> {result['after'] / mib:.1f} MiB "
        f"(peak {result['peak'] / mib:.1f} MiB), {per_task:,.0f} bytes/task "
        f"({per_task / 1024:.2f} KiB); {result['total']:,} tasks known, "
        f"added in {result['seconds']:.1f} s"
    )
    if target is not None:
        line += f"  [target <= 2 KB/task: {daemons.verdict(per_task, target + 1)}]"
    print(line, flush=True)
    return per_task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--luigi", action="store_true", help="also measure luigid 3.8.1")
    parser.add_argument("--luigi-n", type=int, default=50_000)
    args = parser.parse_args()
    for n in args.n:
        report("pipesd", n, measure_pipes(n), target=2048)
    if args.luigi:
        report("luigid", args.luigi_n, measure_luigi(args.luigi_n), target=None)


if __name__ == "__main__":
    main()
