"""One Luigi workload through luigid and through pipesd --luigi-api, in the same run.

    python benchmarks/luigi_dialect.py [--n 1000] [--repeat 3] [--luigi-venv benchmarks/.luigi-venv]

The workload is daemon_dag.py's: in a fresh Luigi 3.8.1 interpreter, `luigi.build([Root()],
workers=1, scheduler_host=..., scheduler_port=...)` where Root is a WrapperTask requiring n
Leaf tasks that each write a tiny LocalTarget. The same code runs against a fresh luigid and
against a fresh pipesd serving Luigi's dialect (issue 15); the script prints both wall times
and their ratio. Figures, not pass/fail: the Luigi worker's own cost is in both.
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import daemons  # benchmarks/ is not a package: imported from sys.path
from daemon_dag import run_workload


@contextlib.contextmanager
def pipesd_luigi(base: str | None) -> Iterator[daemons.Daemon]:
    """A fresh pipesd with --luigi-api, its SQLite state in a temp dir."""
    with tempfile.TemporaryDirectory(prefix="pipes-bench-pipesd-luigi-", dir=base) as tmp:
        work = Path(tmp)
        (work / "pipesd.cfg").write_text(daemons.PIPES_CONFIG)
        (work / "luigi.cfg").write_text("")  # what the Luigi worker reads (nothing)
        port = daemons.free_port()
        command = [str(daemons.PIPESD)] if daemons.PIPESD.exists() else [
            sys.executable, "-c", "from pipes.cli import pipesd_main; pipesd_main()"
        ]  # fmt: skip
        argv = [
            *command, "--luigi-api",
            "--address", "127.0.0.1",
            "--port", str(port),
            "--state-path", str(work / "state.sqlite"),
            "--config", str(work / "pipesd.cfg"),
        ]  # fmt: skip
        with open(work / "pipesd.out", "wb") as out:
            proc = subprocess.Popen(argv, cwd=work, stdout=out, stderr=subprocess.STDOUT)
        daemon = daemons.Daemon("pipesd", proc, "127.0.0.1", port, work)
        try:
            daemons._wait_ready(daemon, "/health", 30)
            yield daemon
        finally:
            daemons._stop(daemon)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="leaf tasks (default 1000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per daemon; best is shown")
    parser.add_argument(
        "--luigi-venv",
        type=Path,
        default=daemons.HERE / ".luigi-venv",
        help="virtualenv with luigi 3.8.1 (default benchmarks/.luigi-venv: make bench-luigi)",
    )
    parser.add_argument("--dir", help="where outputs go (default: the system temp dir)")
    args = parser.parse_args()
    venv = args.luigi_venv.absolute()
    python, luigid = venv / "bin" / "python", venv / "bin" / "luigid"
    if not luigid.exists():
        raise SystemExit(f"no luigid in {args.luigi_venv}: run `make bench-luigi` first")
    daemons.LUIGID = luigid  # daemons.luigid() starts this one

    daemons_by_name = {"luigid": daemons.luigid, "pipesd": pipesd_luigi}
    runs: dict[str, list[dict]] = {name: [] for name in daemons_by_name}
    for _ in range(args.repeat):  # interleaved, so load from elsewhere hits both alike
        for name, start in daemons_by_name.items():
            with start(base=args.dir) as daemon:
                runs[name].append(run_workload(str(python), "luigi", daemon, args.n, args.dir))
    results = {name: min(found, key=lambda r: r["seconds"]) for name, found in runs.items()}
    for name, best in results.items():
        every = ", ".join(f"{r['seconds']:.2f}" for r in runs[name])
        print(
            f"{name:7} Luigi 3.8.1, wide n={args.n}, 1 worker: {best['seconds']:.3f} s wall "
            f"(build() {best['build']:.3f} s), {best['seconds'] / args.n * 1e6:.0f} us/task"
            f"  [runs: {every}]"
        )
    ratio = results["luigid"]["seconds"] / results["pipesd"]["seconds"]
    print(f"ratio   luigid/pipesd wall time = {ratio:.2f}x (same Luigi worker code)")


if __name__ == "__main__":
    main()
