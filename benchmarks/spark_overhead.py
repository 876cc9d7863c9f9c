"""What pipes adds to a Spark job: a trivial PySparkTask through `pipes` beside bare spark-submit.

Both run the same job (count 1000 numbers, save the count as text in a local directory) with
`--master local[2]`, alternately, --runs times each, in one temporary directory. The pipes
run is the whole `pipes --module ... --local-scheduler` command: its Python start, the DAG
walk, shipping the task's module and pipes as zips, spark-submit, and the rename of the
output. Prints each run's wall and CPU time (of the command and all it started), the
medians and the differences (target: pipes adds at most 1 s of wall time). On a busy
machine the wall times vary by seconds; the CPU times show what pipes itself costs.

    .venv/bin/python benchmarks/spark_overhead.py --runs 3
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent

TASK_MODULE = """
import pipes
from pipes.contrib.spark import PySparkTask


class Trivial(PySparkTask):
    run_id = pipes.IntParameter()

    def output(self):
        return pipes.LocalTarget(f"out/pipes-{self.run_id}")

    def main(self, sc, *args):
        sc.parallelize([str(sc.parallelize(range(1000)).count())], 1).saveAsTextFile(
            self.output().path
        )
"""

BARE_SCRIPT = """
import sys
from pyspark import SparkContext

sc = SparkContext()
sc.parallelize([str(sc.parallelize(range(1000)).count())], 1).saveAsTextFile(sys.argv[1])
sc.stop()
"""

CONFIG = """
[core]
log_level = WARNING
no_lock = true

[spark]
spark_submit = {submit}
master = local[2]
conf = spark.ui.enabled=false|spark.ui.showConsoleProgress=false
"""


def timed(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the command and everything it started)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"{command[0]} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return seconds, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    submit = shutil.which("spark-submit", path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if submit is None:
        sys.exit("no spark-submit: pip install pyspark (pipes[spark])")
    work = Path(tempfile.mkdtemp(prefix="spark-overhead-"))
    try:
        (work / "benchflows.py").write_text(TASK_MODULE)
        (work / "bare.py").write_text(BARE_SCRIPT)
        (work / "pipes.cfg").write_text(CONFIG.format(submit=submit))
        env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "PYTHONDONTWRITEBYTECODE": "1"}
        # pyspark's spark-submit finds its Spark home with the `python3` first on PATH
        env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
        bare_cmd = [
            submit, "--master", "local[2]", "--name", "Trivial",
            "--conf", "spark.ui.enabled=false", "--conf", "spark.ui.showConsoleProgress=false",
            "--conf", f"spark.pyspark.python={sys.executable}",
            "--conf", f"spark.pyspark.driver.python={sys.executable}",
        ]  # fmt: skip
        pipes_cmd = [str(BIN / "pipes"), "--module", "benchflows", "Trivial", "--local-scheduler"]
        bare: list[tuple[float, float]] = []
        piped: list[tuple[float, float]] = []
        for run in range(args.runs):
            bare.append(timed([*bare_cmd, "bare.py", f"out/bare-{run}"], work, env))
            piped.append(timed([*pipes_cmd, "--run-id", str(run)], work, env))
            print(
                f"run {run + 1}: bare spark-submit {bare[-1][0]:.2f} s ({bare[-1][1]:.2f} s CPU),"
                f" pipes {piped[-1][0]:.2f} s ({piped[-1][1]:.2f} s CPU)"
            )
        for label, index in (("wall", 0), ("CPU", 1)):
            b = statistics.median(r[index] for r in bare)
            p = statistics.median(r[index] for r in piped)
            line = f"median {label}: bare spark-submit {b:.2f} s, pipes {p:.2f} s"
            print(f"{line}, pipes adds {p - b:+.2f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
