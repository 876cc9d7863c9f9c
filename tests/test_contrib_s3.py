"""pipes.contrib.s3 against a real S3 API (Ceph radosgw), and the local -> HDFS -> S3 pipeline.

Every S3 test in the suite lives here so one xdist worker owns the session's radosgw.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from pipes.contrib.s3 import S3Client, S3FlagTarget, S3Target
from pipesd_fixtures import WORKER_CONFIG, run_counts
from remote_fixtures import S3Server, create_bucket

from pipes.exceptions import (
    FileAlreadyExists,
    TargetError,
    TargetNotFound,
    TargetPermissionDenied,
    TargetUnavailable,
)
from pipes.format import Bzip2, Gzip, Nop


def make_client(server: S3Server, **options) -> S3Client:
    return S3Client(server.access_key, server.secret_key, endpoint_url=server.url, **options)


@pytest.fixture
def bucket(s3_server: S3Server) -> str:
    name = f"t-{uuid.uuid4().hex[:12]}"
    create_bucket(s3_server, name)
    return name


def count_requests(client: S3Client) -> Counter:
    """Count the HTTP requests a client makes, by operation name (a botocore event hook)."""
    counts: Counter = Counter()
    client.s3.meta.events.register(
        "before-call.s3.*", lambda model, **_: counts.update([model.name])
    )
    return counts


def test_s3_target_round_trips_text_gzip_bzip2_and_bytes(s3_server, bucket):
    client = make_client(s3_server)
    cases = [(None, "w", "r"), (Gzip, "w", "r"), (Bzip2, "w", "r")]
    for fmt, wmode, rmode in cases:
        target = S3Target(f"s3://{bucket}/data/{fmt!r}.txt", format=fmt, client=client)
        with target.open(wmode) as out:
            out.write("héllo\nworld\n")
        with target.open(rmode) as stream:
            assert list(stream) == ["héllo\n", "world\n"]  # line iteration works in every format
    raw = S3Target(f"s3://{bucket}/data/raw.bin", format=Nop, client=client)
    with raw.open("w") as out:
        out.write(bytes(range(256)))
    assert raw.open("rb").read() == bytes(range(256))
    assert client.get_as_string(f"s3://{bucket}/data/None.txt") == "héllo\nworld\n"


def test_s3_target_leaves_no_object_when_write_raises(s3_server, bucket):
    mib = 1024 * 1024
    client = make_client(s3_server, part_size=5 * mib, multipart_threshold=5 * mib)
    small = S3Target(f"s3://{bucket}/out/part.txt", client=client)
    with pytest.raises(RuntimeError), small.open("w") as out:
        out.write("half of it\n" * 1000)
        raise RuntimeError("task failed mid-write")
    big = S3Target(f"s3://{bucket}/out/big.bin", format=Nop, client=client)
    with pytest.raises(RuntimeError), big.open("wb") as out:
        out.write(os.urandom(11 * mib))  # two parts already sent
        raise RuntimeError("task failed mid-write")
    assert not small.exists() and not big.exists()
    assert list(client.listdir(f"s3://{bucket}/")) == []
    assert client.s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_s3_target_uploads_in_parts_when_above_threshold(s3_server, bucket):
    mib = 1024 * 1024
    client = make_client(s3_server, part_size=5 * mib, multipart_threshold=5 * mib)
    target = S3Target(f"s3://{bucket}/big.bin", format=Nop, client=client)
    payload = os.urandom(12 * mib)
    with target.open("wb") as out:
        out.write(payload)
    head = client.s3.head_object(Bucket=bucket, Key="big.bin")
    assert head["ETag"].strip('"').endswith("-3")  # a multipart upload of three parts
    assert target.open("rb").read() == payload


def test_s3_exists_many_lists_each_prefix_once_when_many_outputs(s3_server, bucket):
    client = make_client(s3_server)
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda i: client.put_string("x", f"s3://{bucket}/p/{i:04}"), range(1500)))
    asked = [f"s3://{bucket}/p/{i:04}" for i in range(0, 1600, 2)] + [f"s3://{bucket}/p"]
    fresh = make_client(s3_server)
    counts = count_requests(fresh)
    answers = fresh.exists_many(asked)
    assert answers == {path: path.endswith("/p") or int(path[-4:]) < 1500 for path in asked}
    assert counts["ListObjectsV2"] <= 3 and counts["HeadObject"] <= 1, counts


def test_s3_errors_name_the_target_and_cause_when_bucket_or_keys_are_wrong(s3_server, bucket):
    client = make_client(s3_server)
    with pytest.raises(TargetNotFound, match=r"^cannot read s3://nobucket-x/k: the bucket does"):
        S3Target("s3://nobucket-x/k", client=client).open("r")
    assert not S3Target("s3://nobucket-x/k", client=client).exists()  # incomplete, not an error
    assert client.exists_many([f"s3://nobucket-x/k{i}" for i in range(10)]) == {
        f"s3://nobucket-x/k{i}": False for i in range(10)
    }
    with pytest.raises(TargetNotFound, match=rf"^cannot read s3://{bucket}/missing: no such key"):
        S3Target(f"s3://{bucket}/missing", client=client).open("r")
    wrong = S3Client(s3_server.access_key, "WRONG", endpoint_url=s3_server.url)
    with pytest.raises(TargetPermissionDenied, match="secret key is wrong"):
        list(wrong.listdir(f"s3://{bucket}/"))
    down = S3Client("a", "b", endpoint_url="http://127.0.0.1:9", max_attempts=2)
    with pytest.raises(TargetUnavailable, match=r"cannot reach the S3 endpoint") as info:
        down.exists(f"s3://{bucket}/k")
    assert "\n" not in str(info.value)


def test_s3_flag_target_needs_a_slash_and_is_complete_when_flag_exists(s3_server, bucket):
    client = make_client(s3_server)
    with pytest.raises(TargetError, match="must end with '/'"):
        S3FlagTarget(f"s3://{bucket}/job", client=client)
    flag = S3FlagTarget(f"s3a://{bucket}/job/", client=client)
    client.put_string("part", f"s3n://{bucket}/job/part-00000")
    assert not flag.exists()
    client.put_string("", f"s3://{bucket}/job/_SUCCESS")
    assert flag.exists()


def test_s3_client_copies_moves_and_removes_trees(s3_server, bucket, tmp_path):
    client = make_client(s3_server)
    for name in ("a", "b", "sub/c"):
        client.put_string(name, f"s3://{bucket}/src/{name}")
    client.copy(f"s3://{bucket}/src", f"s3://{bucket}/dst")
    assert sorted(client.list(f"s3://{bucket}/dst")) == ["a", "b", "sub/c"]
    with pytest.raises(FileAlreadyExists):
        client.copy(f"s3://{bucket}/src/a", f"s3://{bucket}/dst/a", raise_if_exists=True)
    client.move(f"s3://{bucket}/src/a", f"s3://{bucket}/moved")
    assert not client.exists(f"s3://{bucket}/src/a") and client.exists(f"s3://{bucket}/moved")
    assert client.isdir(f"s3://{bucket}/dst/sub")
    client.remove(f"s3://{bucket}/dst")
    assert not client.exists(f"s3://{bucket}/dst")
    with pytest.raises(TargetNotFound):
        client.remove(f"s3://{bucket}/dst")
    local = tmp_path / "got.txt"
    client.get(f"s3://{bucket}/moved", str(local))
    assert local.read_text() == "a"
    client.put(str(local), f"s3://{bucket}/put.txt")
    assert client.get_as_bytes(f"s3://{bucket}/put.txt") == b"a"


def test_s3_import_without_boto3_gives_one_line_error_naming_the_extra():
    code = "import sys; sys.modules['boto3'] = None; import pipes.contrib.s3"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode != 0
    assert "MissingExtra" in done.stderr and "pip install pipes[s3]" in done.stderr


PIPELINE = """
import os

import pipes
from pipes.contrib.hdfs import HdfsTarget
from pipes.contrib.s3 import S3Target

ROOT = os.environ["PIPELINE_ROOT"]
BUCKET = os.environ["PIPELINE_BUCKET"]


def log_run(task):
    with open("runs.log", "a") as out:
        out.write(f"{task.task_id} {os.getpid()}\\n")


class Source(pipes.ExternalTask):
    name = pipes.Parameter()

    def output(self):
        return pipes.LocalTarget(f"input/{self.name}.txt")


class ToHdfs(pipes.Task):
    name = pipes.Parameter()

    def requires(self):
        return Source(self.name)

    def output(self):
        return HdfsTarget(f"{ROOT}/{self.name}.txt")

    def run(self):
        log_run(self)
        with self.input().open() as src, self.output().open("w") as out:
            for line in src:
                if line.startswith("FAIL-HDFS"):
                    raise RuntimeError("hdfs step broke mid-write")
                out.write(line)


class Upper(pipes.Task):
    name = pipes.Parameter()

    def requires(self):
        return ToHdfs(self.name)

    def output(self):
        return S3Target(f"s3://{BUCKET}/upper/{self.name}.txt")

    def run(self):
        log_run(self)
        with self.input().open() as src, self.output().open("w") as out:
            for line in src:
                if line.startswith("FAIL-S3"):
                    raise RuntimeError("s3 step broke mid-write")
                out.write(line.upper())


class Good(pipes.WrapperTask):
    def requires(self):
        return [Upper(f"good{i}") for i in range(6)]


class Bad(pipes.WrapperTask):
    def requires(self):
        return [Upper("bad-hdfs"), Upper("bad-s3")]
"""


def test_pipeline_local_hdfs_s3_runs_once_reruns_nothing_and_fails_cleanly(
    tmp_path, s3_server, hdfs_server, pipesd, start_worker
):
    root = f"/pipeline-{uuid.uuid4().hex[:8]}"
    bucket = f"pipe-{uuid.uuid4().hex[:8]}"
    client = make_client(s3_server)
    create_bucket(s3_server, bucket)
    (tmp_path / "flows_remote.py").write_text(PIPELINE)
    config = WORKER_CONFIG + "\n" + hdfs_server.config() + "\n" + s3_server.config()
    (tmp_path / "pipes.cfg").write_text(textwrap.dedent(config))
    inputs = tmp_path / "input"
    inputs.mkdir()
    for i in range(6):
        (inputs / f"good{i}.txt").write_text(f"line one {i}\nline two\n")
    (inputs / "bad-hdfs.txt").write_text("kept\nFAIL-HDFS\n")
    (inputs / "bad-s3.txt").write_text("kept\nFAIL-S3\n")
    env = {"PIPELINE_ROOT": root, "PIPELINE_BUCKET": bucket}

    def run_both(task: str) -> list[int]:
        workers = [
            start_worker(task, url=pipesd.url, module="flows_remote", env=env) for _ in range(2)
        ]
        return [w.wait(120) for w in workers]

    assert run_both("Good") == [0, 0]
    runs = run_counts(tmp_path / "runs.log")
    assert len(runs) == 12 and all(len(pids) == 1 for pids in runs.values()), runs
    assert client.get_as_string(f"s3://{bucket}/upper/good3.txt") == "LINE ONE 3\nLINE TWO\n"

    assert run_both("Good") == [0, 0]  # everything exists: nothing runs again
    assert run_counts(tmp_path / "runs.log") == runs

    client.remove(f"s3://{bucket}/upper/good2.txt")
    assert run_both("Good") == [0, 0]
    again = run_counts(tmp_path / "runs.log")
    changed = {task for task in again if again[task] != runs.get(task)}
    assert len(changed) == 1 and "Upper" in next(iter(changed)) and "good2" in next(iter(changed))

    bad = start_worker("Bad", url=pipesd.url, module="flows_remote", env=env)
    assert bad.wait(120) != 0
    assert "broke mid-write" in bad.stderr + bad.stdout
    hdfs_names = _hdfs_names(hdfs_server, root)
    assert "bad-hdfs.txt" not in hdfs_names and not any("tmp" in n for n in hdfs_names)
    assert "bad-s3.txt" in hdfs_names  # its HDFS step succeeded; only the S3 step failed
    keys = sorted(client.list(f"s3://{bucket}/upper"))
    assert keys == [f"good{i}.txt" for i in range(6)]


def _hdfs_names(server, root: str) -> list[str]:
    from pipes.contrib.hdfs import HdfsConfig
    from pipes.contrib.hdfs.webhdfs_client import WebHdfsClient

    client = WebHdfsClient(HdfsConfig(webhdfs_urls=(server.webhdfs_url,), user="root"))
    return [Path(p).name for p in client.listdir(root)]


def test_s3_call_times_out_when_the_server_never_answers():
    with socket.socket() as silent:  # accepts connections (kernel backlog) but never replies
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        client = S3Client("a", "b", endpoint_url=url, read_timeout=0.3, max_attempts=2)
        with pytest.raises(TargetUnavailable, match=r"^cannot check s3://b/k: the S3 call timed"):
            client.exists("s3://b/k")
