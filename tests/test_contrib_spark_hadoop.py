"""pipes.contrib.spark and hadoop_jar against real spark-submit, a real `hadoop` and real HDFS.

Every JVM-starting test of the suite is here, so one xdist worker owns them, and they are
few: three Spark drivers (the pipeline, a failing job, a timed-out job) and two MapReduce jobs
(the pipeline, a failing job).
The command-line and log-parsing checks use a stand-in spark-submit script, which costs no JVM.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from pipes.contrib.hdfs import HdfsConfig, HdfsTarget
from pipes.contrib.hdfs.webhdfs_client import WebHdfsClient
from pipesd_fixtures import pid_alive, wait_for

from pipes.exit_codes import ExitCode

BIN = Path(sys.executable).parent
SPARK_SUBMIT = BIN / "spark-submit"
SPARK_HINT = "pip install pyspark (the `test` extra has it), which gives spark-submit"

WORKER_CONFIG = """
[core]
log_level = WARNING
rpc_retry_seconds = 40
no_lock = true

[worker]
wait_interval = 0.1
ping_interval = 0.3
task_log_dir = {logs}
force_multiprocessing = true
"""

# A stand-in spark-submit: records its argv, prints a YARN-style driver log, fails on demand.
FAKE_SUBMIT = """#!/bin/sh
printf '%s\\n' "$@" > "$(dirname "$0")/argv.txt"
url=http://yarn.example:8088/proxy/application_1_0007/
echo "26/11/30 05:30:07 INFO Client: tracking URL: $url" >&2
echo "WARN a logged stack trace follows" >&2
echo "java.io.IOException: not the failure" >&2
if [ -n "$FAIL" ]; then
  echo 'Traceback (most recent call last):' >&2
  echo '  File "job.py", line 1, in <module>' >&2
  echo 'ValueError: the input is empty' >&2
  echo "26/11/30 05:30:09 INFO ShutdownHookManager: Shutdown hook called" >&2
  exit 1
fi
"""

FAKE_MODULE = """
import pipes
from pipes.contrib.spark import SparkSubmitTask


class Submit(SparkSubmitTask):
    app = "job.py"
    entry_class = "org.example.Main"
    name = "nightly"
    jars = ["a.jar", "b.jar"]
    conf = {"spark.executor.instances": "3"}
    driver_memory = "2g"

    def app_options(self):
        return ["--day", "2026-11-30"]

    def output(self):
        return pipes.LocalTarget("submit.done")

    def run(self):
        super().run()
        self.output().open("w").close()
"""

JOBS_INIT = ""
JOBS_COMMON = '''
def words(line):
    """Split a raw line into lower-case words (used by the executors: shipped in jobs.zip)."""
    return [w.lower() for w in line.split() if w.isalpha()]
'''
JOBS_SPARK = '''
import os
import time

import pipes
from pipes.contrib.hadoop_jar import HadoopJarJobTask
from pipes.contrib.hdfs import HdfsTarget
from pipes.contrib.spark import PySparkTask


class RawText(pipes.ExternalTask):
    root = pipes.Parameter()

    def output(self):
        return HdfsTarget(f"{self.root}/raw")


class WordCounts(PySparkTask):
    """Counts words of the raw files: main(spark), with setup() and setup_remote()."""

    root = pipes.Parameter()

    def requires(self):
        return RawText(self.root)

    def output(self):
        return HdfsTarget(f"{self.root}/words")

    def setup(self, conf):
        conf.set("spark.pipes.marker", "from-setup")

    def setup_remote(self, sc):
        sc.setLocalProperty("pipes.remote", "from-setup-remote")

    def main(self, spark):
        from operator import add

        from jobs.common import words  # the task's own package, shipped automatically

        sc = spark.sparkContext
        assert sc.getConf().get("spark.pipes.marker") == "from-setup"
        assert sc.getLocalProperty("pipes.remote") == "from-setup-remote"
        counts = sc.textFile(self.input().path).flatMap(words).map(lambda w: (w, 1))
        counts = counts.reduceByKey(add, 2)
        counts.map(lambda kv: f"{kv[0]}\\t{kv[1]}").saveAsTextFile(self.output().path)


class LetterCounts(HadoopJarJobTask):
    """Re-aggregates the word counts by first letter, in MapReduce."""

    root = pipes.Parameter()
    jar_path = pipes.Parameter(significant=False)

    def requires(self):
        return WordCounts(self.root)

    def output(self):
        return HdfsTarget(f"{self.root}/letters")

    def jar(self):
        return self.jar_path

    def main(self):
        return "LetterCount"

    def args(self):
        return [self.input(), self.output()]


class LettersOf(HadoopJarJobTask):
    """LetterCount over any directory of word counts."""

    source = pipes.Parameter()
    root = pipes.Parameter()
    jar_path = pipes.Parameter(significant=False)

    def output(self):
        return HdfsTarget(f"{self.root}/letters")

    def jar(self):
        return self.jar_path

    def main(self):
        return "LetterCount"

    def args(self):
        return [self.source, self.output()]


class Broken(PySparkTask):
    root = pipes.Parameter()

    def output(self):
        return HdfsTarget(f"{self.root}/broken")

    def main(self, sc, *args):
        sc.parallelize([1, 2]).saveAsTextFile(self.output().path)  # half written, then...
        raise ValueError("no partition for day pipes-test")


class Stuck(PySparkTask):
    root = pipes.Parameter()
    worker_timeout = 12  # the driver JVM starts well within it, even on a busy machine

    def output(self):
        return HdfsTarget(f"{self.root}/stuck")

    def main(self, sc, *args):
        time.sleep(600)
'''

# The MapReduce job of examples/spark_hadoop.py, compiled from the example's own source.
LETTER_COUNT_JAVA = Path(__file__).resolve().parent.parent / "examples" / "LetterCount.java"

RAW = {
    "part-a.txt": "apple banana apple\nAvocado cherry 42\n",
    "part-b.txt": "banana blueberry apple\n",
}
WORDS = {"apple": 3, "avocado": 1, "banana": 2, "blueberry": 1, "cherry": 1}


@pytest.fixture(scope="session")
def job_jar(tmp_path_factory, hadoop_cli) -> Path:
    """LetterCount.java compiled against the hadoop command's classpath."""
    if shutil.which("javac") is None:
        pytest.fail("javac is missing: apt-get install openjdk-17-jdk-headless (.ci/run does)")
    directory = tmp_path_factory.mktemp("jar")
    shutil.copy(LETTER_COUNT_JAVA, directory / "LetterCount.java")
    classpath = subprocess.run(
        [hadoop_cli, "classpath"], capture_output=True, text=True, check=True
    ).stdout.strip()
    (directory / "classes").mkdir()
    javac = ["javac", "-cp", classpath, "-d", "classes", "LetterCount.java"]
    subprocess.run(javac, cwd=directory, check=True, capture_output=True)
    jar = ["jar", "cf", "letters.jar", "-C", "classes", "."]
    subprocess.run(jar, cwd=directory, check=True, capture_output=True)
    return directory / "letters.jar"


@pytest.fixture
def spark_env():
    if not SPARK_SUBMIT.exists():
        pytest.fail(f"no spark-submit at {SPARK_SUBMIT}: {SPARK_HINT}")
    return {
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "HADOOP_USER_NAME": "root",
    }


def webhdfs(server) -> WebHdfsClient:
    return WebHdfsClient(HdfsConfig(webhdfs_urls=(server.webhdfs_url,), user="root"))


def write_jobs(tmp_path: Path, hdfs_server, extra: str = "") -> None:
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    (jobs / "__init__.py").write_text(JOBS_INIT)
    (jobs / "common.py").write_text(JOBS_COMMON)
    (jobs / "spark_jobs.py").write_text(JOBS_SPARK)
    spark = textwrap.dedent(
        f"""
        [spark]
        spark_submit = {SPARK_SUBMIT}
        master = local[2]
        conf = spark.hadoop.dfs.replication=1|spark.ui.showConsoleProgress=false
        """
    )
    config = WORKER_CONFIG.format(logs=tmp_path / "logs") + spark + hdfs_server.config() + extra
    (tmp_path / "pipes.cfg").write_text(config)


def task_detail(daemon, family: str) -> dict:
    tasks = [t for t in daemon.scheduler().task_list(limit=100)["tasks"] if t["family"] == family]
    assert len(tasks) == 1, tasks
    return daemon.call("task_detail", task_id=tasks[0]["task_id"])


def read_dir(client: WebHdfsClient, path: str) -> list[str]:
    lines = []
    for name in sorted(client.listdir(path)):
        if os.path.basename(name).startswith("part-"):
            with HdfsTarget(name, fs=client).open("r") as part:
                lines += [line.rstrip("\n") for line in part]
    return sorted(lines)


def hdfs_names(client: WebHdfsClient, path: str) -> list[str]:
    return sorted(os.path.basename(p) for p in client.listdir(path))


# ----- without a JVM: the command line and the driver log, from a stand-in spark-submit ------


def test_spark_submit_builds_command_from_attributes_and_config(tmp_path, pipesd, start_worker):
    fake = tmp_path / "bin" / "spark-submit"
    fake.parent.mkdir()
    fake.write_text(FAKE_SUBMIT)
    fake.chmod(0o755)
    (tmp_path / "fakeflows.py").write_text(FAKE_MODULE)
    config = WORKER_CONFIG.format(logs=tmp_path / "logs") + textwrap.dedent(
        f"""
        [spark]
        spark_submit = {fake}
        master = yarn
        deploy_mode = cluster
        py_files = x.py,y.zip
        executor_memory = 4g
        num_executors = 5
        queue = nightly
        conf = spark.a=1|spark.b=two
        """
    )
    (tmp_path / "pipes.cfg").write_text(config)
    worker = start_worker("Submit", url=pipesd.url, module="fakeflows")
    assert worker.wait() == ExitCode.OK, worker.stderr
    argv = (fake.parent / "argv.txt").read_text().splitlines()
    assert argv == [
        "--master", "yarn",
        "--deploy-mode", "cluster",
        "--name", "nightly",
        "--class", "org.example.Main",
        "--driver-memory", "2g",
        "--executor-memory", "4g",
        "--num-executors", "5",
        "--queue", "nightly",
        "--jars", "a.jar,b.jar",
        "--py-files", "x.py,y.zip",
        "--conf", "spark.executor.instances=3",
        "job.py", "--day", "2026-11-30",
    ]  # fmt: skip
    detail = task_detail(pipesd, "Submit")
    assert detail["tracking_url"] == "http://yarn.example:8088/proxy/application_1_0007/"
    assert "tracking URL" in detail["log"]


def test_spark_submit_failure_names_driver_exception_when_job_fails(tmp_path, pipesd, start_worker):
    fake = tmp_path / "bin" / "spark-submit"
    fake.parent.mkdir()
    fake.write_text(FAKE_SUBMIT)
    fake.chmod(0o755)
    (tmp_path / "fakeflows.py").write_text(FAKE_MODULE)
    config = WORKER_CONFIG.format(logs=tmp_path / "logs") + f"[spark]\nspark_submit = {fake}\n"
    (tmp_path / "pipes.cfg").write_text(config)
    worker = start_worker("Submit", url=pipesd.url, module="fakeflows", env={"FAIL": "1"})
    assert worker.wait() == ExitCode.TASK_FAILED, worker.stderr
    error = task_detail(pipesd, "Submit")["error"]
    first = error.splitlines()[0]
    assert first == "spark-submit failed (exit code 1): ValueError: the input is empty", error
    assert not (tmp_path / "submit.done").exists()


# ----- real Spark, real MapReduce, real HDFS ----------------------------------------------------


def test_pipeline_aggregates_on_hdfs_with_pyspark_then_hadoop_and_rerun_does_nothing(
    tmp_path, hdfs_server, hadoop_cli, job_jar, pipesd, start_worker, spark_env
):
    client = webhdfs(hdfs_server)
    path = f"/pipeline-{uuid.uuid4().hex[:8]}"
    for name, text in RAW.items():
        with HdfsTarget(f"{path}/raw/{name}", fs=client).open("w") as out:
            out.write(text)
    root = f"{hdfs_server.hdfs_url}{path}"
    write_jobs(tmp_path, hdfs_server, f"\n[hadoop]\ncommand = {hadoop_cli}\n")
    args = ("--root", root, "--jar-path", str(job_jar))
    worker = start_worker(
        "LetterCounts", *args, url=pipesd.url, module="jobs.spark_jobs", env=spark_env
    )
    assert worker.wait(300) == ExitCode.OK, worker.stderr

    assert read_dir(client, f"{path}/words") == sorted(f"{w}\t{n}" for w, n in WORDS.items())
    assert read_dir(client, f"{path}/letters") == ["a\t4", "b\t3", "c\t1"]
    assert hdfs_names(client, path) == ["letters", "raw", "words"]  # no temporary paths left

    spark = task_detail(pipesd, "WordCounts")
    assert spark["tracking_url"].startswith("http://127.0.0.1:"), spark["tracking_url"]
    assert (
        "SparkContext: Running Spark version"
        in (tmp_path / "logs").joinpath(f"{spark['task_id']}.log").read_text()
    )
    hadoop_log = tmp_path / "logs" / f"{task_detail(pipesd, 'LetterCounts')['task_id']}.log"
    text = hadoop_log.read_text()
    assert "pipes: hadoop job job_local" in text
    counters = [line for line in text.splitlines() if line.startswith("pipes: hadoop counters ")]
    assert len(counters) == 1 and '"Reduce output records": 3' in counters[0], text[-3000:]

    again = start_worker("LetterCounts", *args, url=None, module="jobs.spark_jobs", env=spark_env)
    assert again.wait(120) == ExitCode.OK, again.stderr
    assert "SparkContext" not in again.stderr
    assert len(list((tmp_path / "logs").glob("*.log"))) == 2  # nothing ran again


def test_pyspark_failure_names_driver_exception_and_leaves_no_output(
    tmp_path, hdfs_server, pipesd, start_worker, spark_env
):
    client = webhdfs(hdfs_server)
    path = f"/broken-{uuid.uuid4().hex[:8]}"
    client.mkdir(path)
    write_jobs(tmp_path, hdfs_server)
    root = f"{hdfs_server.hdfs_url}{path}"
    worker = start_worker(
        "Broken", "--root", root, url=pipesd.url, module="jobs.spark_jobs", env=spark_env
    )
    assert worker.wait(300) == ExitCode.TASK_FAILED, worker.stderr
    detail = task_detail(pipesd, "Broken")
    first = detail["error"].splitlines()[0]
    assert first == "spark-submit failed (exit code 1): ValueError: no partition for day pipes-test"
    assert hdfs_names(client, path) == []  # neither the output nor its temporary path
    log = (tmp_path / "logs" / f"{detail['task_id']}.log").read_text()
    assert "Traceback (most recent call last)" in log and "SparkContext" in log


def _spark_driver_pids() -> list[int]:
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                cmdline = Path(f"/proc/{entry.name}/cmdline").read_bytes()
            except OSError:
                continue
            if b"org.apache.spark.deploy.SparkSubmit" in cmdline and b"Stuck" in cmdline:
                found.append(int(entry.name))
    return found


def test_pyspark_timeout_kills_driver_jvm(tmp_path, hdfs_server, pipesd, start_worker, spark_env):
    client = webhdfs(hdfs_server)
    path = f"/stuck-{uuid.uuid4().hex[:8]}"
    client.mkdir(path)
    write_jobs(tmp_path, hdfs_server)
    root = f"{hdfs_server.hdfs_url}{path}"
    worker = start_worker(
        "Stuck", "--root", root, url=pipesd.url, module="jobs.spark_jobs", env=spark_env
    )
    wait_for(lambda: bool(_spark_driver_pids()), 60, "the Spark driver JVM to start")
    jvms = _spark_driver_pids()
    assert worker.wait(120) == ExitCode.TASK_FAILED, worker.stderr
    assert task_detail(pipesd, "Stuck")["error"].startswith(
        "timed out after 12s; killed process group"
    )
    wait_for(lambda: not any(pid_alive(p) for p in jvms), 10, f"driver JVMs {jvms} to end")
    assert hdfs_names(client, path) == []


def test_hadoop_jar_failure_names_exception_and_leaves_no_output(
    tmp_path, hdfs_server, hadoop_cli, job_jar, pipesd, start_worker
):
    client = webhdfs(hdfs_server)
    path = f"/bad-counts-{uuid.uuid4().hex[:8]}"
    with HdfsTarget(f"{path}/in/part-00000", fs=client).open("w") as out:
        out.write("apple\tmany\n")  # not a number: the mapper throws
    root = f"{hdfs_server.hdfs_url}{path}"
    write_jobs(tmp_path, hdfs_server, f"\n[hadoop]\ncommand = {hadoop_cli}\n")
    args = ("--source", f"{root}/in", "--root", root, "--jar-path", str(job_jar))
    worker = start_worker("LettersOf", *args, url=pipesd.url, module="jobs.spark_jobs")
    assert worker.wait(120) == ExitCode.TASK_FAILED, worker.stderr
    error = task_detail(pipesd, "LettersOf")["error"]
    first = error.splitlines()[0]
    assert first.startswith("hadoop jar failed (exit code 1, job job_local"), error
    assert first.endswith('NumberFormatException: For input string: "many"'), error
    assert hdfs_names(client, path) == ["in"]  # neither the output nor its temporary path
