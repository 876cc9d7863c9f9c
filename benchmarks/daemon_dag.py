"""End-to-end wide DAG of trivial tasks through a real pipesd with one worker.

    python benchmarks/daemon_dag.py --n 5000 [--luigi [--luigi-n 1000]]

Starts a fresh pipesd (free port on 127.0.0.1, SQLite state in a temp dir), then runs, in a
fresh interpreter, `pipes.build([Root()], workers=1, scheduler_url=URL)` where Root is a
WrapperTask requiring n Leaf tasks that each write a tiny LocalTarget in a temp dir. Prints
the wall time (interpreter start to build() return, and build() alone) and the time per
task, beside the disk floor (n bare atomic writes). Target: under 1.5 s for n = 5000
(Luigi: ~137 s).

With --tree DIR, pipesd and the worker both run the checkout in DIR (e.g. a git worktree)
instead of the pipes this venv imports. With --baseline-tree DIR, each of --repeat rounds
also runs the workload from that checkout, alternating with the other, so the load of other
processes falls on both alike; it prints both medians and the ratio after/before.

With --luigi, runs the same workload on luigi 3.8.1 (benchmarks/.luigi-venv) against a
fresh luigid at --luigi-n (default 1000: luigi's cost per task grows with n, since each of
its get_work calls scans the worker's pending tasks) and prints the ratio per task.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import daemons  # benchmarks/ is not a package: imported from sys.path
from local_dag import filesystem_floor

WORKLOAD = """
import sys, time, json
start = time.perf_counter()
fw_name, root_dir, n, host, port = sys.argv[1:6]
n, port = int(n), int(port)
import logging
fw = __import__(fw_name)
logging.disable(logging.WARNING)

class Leaf(fw.Task):
    i = fw.IntParameter()
    def output(self):
        return fw.LocalTarget(f"{root_dir}/{self.i}.txt")
    def run(self):
        with self.output().open("w") as out:
            out.write("x")

class Root(fw.WrapperTask):
    def requires(self):
        return [Leaf(i=i) for i in range(n)]

build_start = time.perf_counter()
if fw_name == "pipes":
    ok = fw.build([Root()], workers=1, scheduler_url=f"http://{host}:{port}")
else:
    ok = fw.build([Root()], workers=1, scheduler_host=host, scheduler_port=port)
end = time.perf_counter()
print(json.dumps({"seconds": end - start, "build": end - build_start, "ok": bool(ok),
                  "module": fw.__file__}))
"""


def run_workload(
    python: str,
    framework: str,
    daemon: daemons.Daemon,
    n: int,
    base: str | None,
    tree: Path | None = None,
):
    """Run the workload in a fresh interpreter against the daemon; {'seconds', 'build', 'ok'}.

    With `tree`, the worker imports pipes from that checkout (and fails if it does not)."""
    with tempfile.TemporaryDirectory(prefix="pipes-bench-dag-", dir=base) as tmp:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PIPES_CONFIG_PATH")}
        if tree is not None:
            env["PYTHONPATH"] = str(tree)
        if framework == "luigi":  # the worker must not pick up a stray luigi.cfg
            env["LUIGI_CONFIG_PATH"] = str(daemon.workdir / "luigi.cfg")
        done = subprocess.run(
            [python, "-c", WORKLOAD, framework, tmp, str(n), daemon.host, str(daemon.port)],
            capture_output=True,
            text=True,
            check=False,
            cwd=tmp,
            env=env,
        )
        if done.returncode != 0:
            raise SystemExit(f"{framework} workload failed:\n{done.stderr[-3000:]}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        written = len([name for name in os.listdir(tmp) if name.endswith(".txt")])
    if written != n or not result["ok"]:
        raise SystemExit(f"{framework}: expected {n} outputs and success, got {written} / {result}")
    if tree is not None and not Path(result["module"]).resolve().is_relative_to(tree.resolve()):
        raise SystemExit(f"the worker imported {result['module']}, not pipes from {tree}")
    return result


def run_pipes(n: int, base: str | None, tree: Path | None) -> dict:
    """One pipes run on a fresh pipesd, both from `tree` (None: this venv's pipes); the
    workload's figures plus the daemon's get_work figures under 'metrics'."""
    with daemons.pipesd(tree=tree) as daemon:
        result = run_workload(sys.executable, "pipes", daemon, n, base, tree)
        result["metrics"] = daemons.get_work_metrics(daemon)
    return result


def report_pipes(n: int, results: list[dict], label: str = "pipes ") -> float:
    """Print the median run of `results` (and the spread when there are several); its seconds."""
    ordered = sorted(results, key=lambda r: r["seconds"])
    result = ordered[len(ordered) // 2]
    seconds = result["seconds"]
    spread = ""
    if len(results) > 1:
        values = ", ".join(f"{r['seconds']:.2f}" for r in results)
        spread = f"\n  {len(results)} runs: {values} s (median shown)"
    print(
        f"{label} wide n={n} through pipesd, 1 worker: {seconds:.3f} s wall "
        f"(build() {result['build']:.3f} s), {seconds / n * 1e6:.0f} us/task  "
        f"[target < 1.5 s: {daemons.verdict(seconds, 1.5)}]{spread}"
    )
    metrics = result["metrics"]
    if metrics["mean"] is not None:
        print(
            f"  pipesd answered {metrics['count']:,} get_work calls, "
            f"{daemons.fmt_time(metrics['mean'])} each inside the daemon (mean, without HTTP)"
        )
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--luigi", action="store_true", help="also run luigi on luigid")
    parser.add_argument("--luigi-n", type=int, default=1000)
    parser.add_argument("--dir", help="where outputs go (default: the system temp dir)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of pipes (median shown)")
    parser.add_argument("--tree", type=Path, help="run pipesd and the worker from this checkout")
    parser.add_argument(
        "--baseline-tree", type=Path, help="also run from this checkout, alternating (before/after)"
    )
    args = parser.parse_args()
    for tree in (args.tree, args.baseline_tree):
        if tree is not None and not (tree / "pipes" / "cli.py").is_file():
            parser.error(f"{tree}: no pipes/cli.py there")

    floor = filesystem_floor(sys.executable, args.n, args.dir)
    print(f"disk   {args.n} bare atomic writes: {floor:.3f} s ({floor / args.n * 1e6:.1f} us/file)")
    results: list[dict] = []
    baseline: list[dict] = []
    for _ in range(max(1, args.repeat)):
        if args.baseline_tree is not None:
            baseline.append(run_pipes(args.n, args.dir, args.baseline_tree))
        results.append(run_pipes(args.n, args.dir, args.tree))
    if baseline:
        print(f"before: {args.baseline_tree}; after: {args.tree or 'this venv'}")
        before = report_pipes(args.n, baseline, label="before")
    seconds = report_pipes(args.n, results, label="after " if baseline else "pipes ")
    if baseline:
        print(f"ratio  after/before (medians) = {seconds / before:.2f}")
    per_task = seconds / args.n
    if args.luigi:
        with daemons.luigid() as daemon:
            luigi = run_workload(str(daemons.LUIGI_PYTHON), "luigi", daemon, args.luigi_n, args.dir)
        lper = luigi["seconds"] / args.luigi_n
        print(
            f"luigi  wide n={args.luigi_n} through luigid, 1 worker: {luigi['seconds']:.3f} s "
            f"wall (build() {luigi['build']:.3f} s), {lper * 1e6:.0f} us/task"
        )
        ratio = lper / per_task
        print(
            f"ratio  luigi/pipes per task = {ratio:.1f}x "
            f"(luigi at n={args.luigi_n}, pipes at n={args.n})"
        )


if __name__ == "__main__":
    main()
