"""Time to decide "nothing to do": a wrapper over N already-complete LocalTargets in one directory.

    python benchmarks/complete_scan.py --n 5000 [--luigi]

Prints the time pipes takes (pipes.build, everything complete) and how many filesystem calls
it made (os.stat / os.scandir, counted in-process); with --luigi, the same on luigi 3.8.1 in
benchmarks/.luigi-venv (`make bench-luigi`). Target: <= 0.1 s at n=5000 (luigi here: ~0.41 s).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
LUIGI_PYTHON = HERE / ".luigi-venv" / "bin" / "python"

WORKLOAD = """
import json, logging, os, sys, time
fw = __import__(sys.argv[1])
root, n = sys.argv[2], int(sys.argv[3])

class Part(fw.Task):
    i = fw.IntParameter()
    def output(self):
        return fw.LocalTarget(f"{root}/part-{self.i:05d}")

class All(fw.WrapperTask):
    def requires(self):
        return [Part(i=i) for i in range(n)]

calls = {"stat": 0, "scandir": 0}
real_stat, real_scandir = os.stat, os.scandir
def stat(*args, **kwargs):
    calls["stat"] += 1
    return real_stat(*args, **kwargs)
def scandir(*args, **kwargs):
    calls["scandir"] += 1
    return real_scandir(*args, **kwargs)
os.stat, os.scandir = stat, scandir
logging.disable(logging.WARNING)
start = time.perf_counter()
ok = fw.build([All()], local_scheduler=True)
elapsed = time.perf_counter() - start
os.stat, os.scandir = real_stat, real_scandir
print(json.dumps({"seconds": elapsed, "ok": bool(ok), **calls}))
"""


def measure(python: str, framework: str, root: str, n: int) -> dict:
    """Run the workload once in a fresh interpreter."""
    done = subprocess.run(
        [python, "-c", WORKLOAD, framework, root, str(n)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(HERE.parent)},
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{framework} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--luigi", action="store_true", help="also run luigi")
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pipes-scan-") as root:
        for i in range(args.n):
            Path(root, f"part-{i:05d}").write_text("x")
        runs = [("pipes", sys.executable)]
        if args.luigi:
            if not LUIGI_PYTHON.exists():
                raise SystemExit("luigi venv missing: run `make bench-luigi` first")
            runs.append(("luigi", str(LUIGI_PYTHON)))
        best = {}
        for framework, python in runs:
            results = [measure(python, framework, root, args.n) for _ in range(args.repeat)]
            best[framework] = min(results, key=lambda r: r["seconds"])
            result = best[framework]
            print(
                f"{framework:6} n={args.n}: {result['seconds']:.3f} s to find nothing to do "
                f"(os.stat calls {result['stat']}, os.scandir calls {result['scandir']}, "
                f"success={result['ok']})"
            )
        if "luigi" in best:
            print(
                f"ratio  luigi/pipes = {best['luigi']['seconds'] / best['pipes']['seconds']:.1f}x"
            )
        print("target: <= 0.1 s for pipes at n=5000")


if __name__ == "__main__":
    main()
