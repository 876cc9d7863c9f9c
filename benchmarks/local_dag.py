"""Time a DAG of trivial tasks (each writes a tiny LocalTarget) on the embedded scheduler.

    python benchmarks/local_dag.py --shape wide --n 5000 [--workers 2] [--repeat 5] [--luigi]
        [--baseline-tree DIR]

Prints the floor (a bare stat + write + rename loop), wall time, per-task cost and their
ratio (with --repeat, the medians of that many rounds, each run in a fresh interpreter, and
the spread). With --luigi, runs the same workload on luigi in
benchmarks/.luigi-venv (made by `make bench-luigi`) and prints the ratio; luigi's cost grows
quadratically, so keep n modest there (n=5000 takes luigi well over a minute). With
--baseline-tree DIR, pipes also runs from that checkout (e.g. a git worktree of an older
commit), alternating with this one, and both are printed: before and after in the same run.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
LUIGI_PYTHON = HERE / ".luigi-venv" / "bin" / "python"

# The same workload, written once for either framework: `fw` is the pipes or luigi module.
WORKLOAD = """
import sys, time, json

def define(fw, root_dir, shape, n):
    class Leaf(fw.Task):
        i = fw.IntParameter()
        def requires(self):
            if shape == "chain" and self.i > 0:
                return Leaf(i=self.i - 1)
            if shape == "tree":
                return [Leaf(i=c) for c in (2 * self.i + 1, 2 * self.i + 2) if c < n]
            return []
        def output(self):
            return fw.LocalTarget(f"{root_dir}/{self.i}.txt")
        def run(self):
            with self.output().open("w") as out:
                out.write("x")

    class Root(fw.WrapperTask):
        def requires(self):
            if shape == "wide":
                return [Leaf(i=i) for i in range(n)]
            return Leaf(i=n - 1 if shape == "chain" else 0)

    return Root

def main(fw_name, root_dir, shape, n, workers):
    import logging
    start = time.perf_counter()
    fw = __import__(fw_name)
    Root = define(fw, root_dir, shape, n)
    logging.disable(logging.WARNING)
    ok = fw.build([Root()], workers=workers, local_scheduler=True)
    elapsed = time.perf_counter() - start
    print(json.dumps({"seconds": elapsed, "ok": bool(ok)}))
"""


FLOOR = """
import os, sys, time
root, n = sys.argv[1], int(sys.argv[2])
start = time.perf_counter()
for i in range(n):
    if os.path.exists(f"{root}/{i}.txt"):  # the stat a completeness check costs
        continue
    tmp = f"{root}/{i}.txt-tmp"
    with open(tmp, "w") as out:
        out.write("x")
    os.replace(tmp, f"{root}/{i}.txt")
print(time.perf_counter() - start)
"""


def filesystem_floor(python: str, n: int, base: str | None) -> float:
    """Seconds a bare stat + write + rename loop takes for n tiny files: the disk's share."""
    with tempfile.TemporaryDirectory(prefix="pipes-bench-", dir=base) as tmp:
        done = subprocess.run(
            [python, "-c", FLOOR, tmp, str(n)], capture_output=True, text=True, check=True
        )
        return float(done.stdout)


def run_workload(
    python: str,
    framework: str,
    shape: str,
    n: int,
    workers: int,
    base: str | None = None,
    tree: Path = HERE.parent,
) -> dict:
    """Run the workload in a fresh interpreter with pipes from tree; returns {'seconds', 'ok'}."""
    with tempfile.TemporaryDirectory(prefix="pipes-bench-", dir=base) as tmp:
        code = WORKLOAD + f"\nmain({framework!r}, {tmp!r}, {shape!r}, {n}, {workers})\n"
        sys.setrecursionlimit(10_000)
        done = subprocess.run(
            [python, "-c", code],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "PYTHONPATH": str(tree)},
        )
        if done.returncode != 0:
            raise SystemExit(f"{framework} workload failed:\n{done.stderr[-2000:]}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        written = len(os.listdir(tmp))
    if written != n or not result["ok"]:
        raise SystemExit(f"{framework}: expected {n} outputs and success, got {written} / {result}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=["wide", "chain", "tree"], default="wide")
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument(
        "--luigi", action="store_true", help="also run luigi (needs make bench-luigi)"
    )
    parser.add_argument("--dir", help="where outputs go (default: the system temp dir)")
    parser.add_argument(
        "--repeat", type=int, default=1, help="run pipes this many times; report the median"
    )
    parser.add_argument(
        "--baseline-tree",
        type=Path,
        help="also run pipes from this checkout, alternating with this one (before/after)",
    )
    args = parser.parse_args()
    trees = {"pipes": HERE.parent}
    if args.baseline_tree is not None:
        trees = {"before": args.baseline_tree.resolve(), "after": HERE.parent}
    for tree in trees.values():
        # pipes as installed, with bytecode (as luigi in its venv), even under
        # PYTHONDONTWRITEBYTECODE
        compileall.compile_dir(tree / "pipes", quiet=1)
    floors: list[float] = []
    runs: dict[str, list[float]] = {name: [] for name in trees}
    for _ in range(max(1, args.repeat)):
        floors.append(filesystem_floor(sys.executable, args.n, args.dir))
        for name, tree in trees.items():
            result = run_workload(
                sys.executable, "pipes", args.shape, args.n, args.workers, args.dir, tree
            )
            runs[name].append(result["seconds"])
    floor = statistics.median(floors)
    print(f"disk   {args.n} bare stat + atomic writes: {floor:.3f} s (median of {len(floors)})")
    for name, times in runs.items():
        seconds = statistics.median(times)
        spread = f" (median of {len(times)}: {min(times):.3f}..{max(times):.3f})"
        print(
            f"{name:6} shape={args.shape} n={args.n} workers={args.workers}: "
            f"{seconds:.3f} s wall, {seconds / args.n * 1e6:.1f} us/task, "
            f"{max(seconds - floor, 0) / args.n * 1e6:.1f} us/task above the disk floor"
            f"{spread if len(times) > 1 else ''}"
        )
        print(
            f"floor  {floor / args.n * 1e6:.1f} us/file; per-task {seconds / args.n * 1e6:.1f} us;"
            f" ratio per-task/floor = {seconds / floor:.2f}x"
        )
    seconds = statistics.median(runs["after" if args.baseline_tree else "pipes"])
    if args.luigi:
        if not LUIGI_PYTHON.exists():
            raise SystemExit("luigi venv missing: run `make bench-luigi` first")
        # as many runs as pipes had: luigi's worker sleeps a random wait_jitter when idle
        luigi_runs = [
            run_workload(str(LUIGI_PYTHON), "luigi", args.shape, args.n, args.workers, args.dir)[
                "seconds"
            ]
            for _ in range(max(1, args.repeat))
        ]
        lsec = statistics.median(luigi_runs)
        spread = f" (median of {len(luigi_runs)}: {min(luigi_runs):.3f}..{max(luigi_runs):.3f})"
        print(
            f"luigi  shape={args.shape} n={args.n} workers={args.workers}: "
            f"{lsec:.3f} s wall, {lsec / args.n * 1e6:.1f} us/task"
            f"{spread if len(luigi_runs) > 1 else ''}"
        )
        print(f"ratio  luigi/pipes = {lsec / seconds:.1f}x")


if __name__ == "__main__":
    main()
