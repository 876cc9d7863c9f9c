"""Real HDFS, `hadoop` and S3 (Ceph radosgw) servers for the contrib tests, once per session.

They are started by the scripts in ../shared/services (see its README) on free loopback ports,
so two xdist workers may each run their own. A server that cannot start fails the test with
what to install; nothing is skipped.
"""

from __future__ import annotations

import os
import random
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pipesd_fixtures import port_is_free

REPO = Path(__file__).resolve().parent.parent
SERVICES = Path(os.environ.get("PIPES_SERVICES", REPO.parent / "shared" / "services"))
HINT = "run `bash .ci/run` once, or install Java 17 (apt-get install openjdk-17-jdk-headless)"
S3_HINT = "run `bash .ci/run` once, or apt-get install ceph-mon ceph-osd radosgw ceph-common"


def _script(name: str) -> Path:
    path = SERVICES / name
    if not path.exists():
        pytest.fail(f"{path} is missing: the real-server scripts live in ../shared/services")
    return path


def _run(script: str, *args: str, env: dict[str, str], hint: str, timeout: float = 600) -> str:
    """Run a service script; its last stdout line is KEY=VALUE words. Fails with ``hint``."""
    try:
        done = subprocess.run(
            ["bash", str(_script(script)), *args],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{script} did not finish in {timeout:g} s; {hint}")
    if done.returncode != 0 or not done.stdout.strip():
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        pytest.fail(f"{script} {' '.join(args)} failed ({tail}); {hint}")
    return done.stdout.strip().splitlines()[-1]


def _words(line: str) -> dict[str, str]:
    return dict(word.split("=", 1) for word in line.split() if "=" in word)


def _free_base(offsets: tuple[int, ...]) -> int:
    """A port base where base+offset is free for every offset."""
    for _ in range(200):
        base = random.randrange(20000, 40000, 10)
        if all(port_is_free(base + offset) for offset in offsets):
            return base
    pytest.fail("no free loopback ports for a test server")


@dataclass(frozen=True)
class HdfsServer:
    """A running NameNode + DataNode: its WebHDFS URL and its hdfs:// URL."""

    webhdfs_url: str
    hdfs_url: str
    directory: Path

    def config(self) -> str:
        """A pipes.cfg fragment pointing the webhdfs client at this server."""
        host_port = self.webhdfs_url.removeprefix("http://")
        host, port = host_port.split(":")
        return f"[hdfs]\nnamenode_host = {host}\nuser = root\n\n[webhdfs]\nport = {port}\n"


@dataclass(frozen=True)
class S3Server:
    """A running radosgw: endpoint and keys."""

    url: str
    access_key: str
    secret_key: str

    def config(self) -> str:
        """A pipes.cfg fragment pointing S3Client at this server."""
        return (
            f"[s3]\nendpoint_url = {self.url}\naws_access_key_id = {self.access_key}\n"
            f"aws_secret_access_key = {self.secret_key}\n"
        )


def create_bucket(server: S3Server, name: str, read_timeout: float = 60) -> None:
    """Create a bucket; one that a timed-out first try already made counts as created."""
    from pipes.contrib.s3 import S3Client

    client = S3Client(
        server.access_key, server.secret_key, endpoint_url=server.url, read_timeout=read_timeout
    )
    try:
        client.s3.create_bucket(Bucket=name)
    except client.s3.exceptions.BucketAlreadyOwnedByYou:
        return


@pytest.fixture(scope="session")
def hdfs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HdfsServer]:
    """A real Hadoop 2.7.3 HDFS for the whole session."""
    directory = tmp_path_factory.mktemp("hdfs")
    base = _free_base((0, 864, 866, 867, 868, 870))
    words = _words(
        _run("hdfs-start.sh", str(directory), env={"HDFS_PORT_BASE": str(base)}, hint=HINT)
    )
    try:
        yield HdfsServer(words["WEBHDFS_URL"], words["HDFS_URL"], directory)
    finally:
        subprocess.run(["bash", str(_script("hdfs-stop.sh")), str(directory)], check=False)


@pytest.fixture(scope="session")
def hadoop_cli(tmp_path_factory: pytest.TempPathFactory, hdfs_server: HdfsServer) -> str:
    """A real `hadoop` command whose default filesystem is the session's HDFS."""
    directory = tmp_path_factory.mktemp("hadoop")
    words = _words(_run("hadoop-cli.sh", str(directory), hdfs_server.hdfs_url, env={}, hint=HINT))
    return words["HADOOP"]


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A real Ceph radosgw for the whole session."""
    directory = tmp_path_factory.mktemp("s3")
    base = _free_base((0, 1))
    env = {"S3_PORT": str(base), "CEPH_MON_PORT": str(base + 1)}
    words = _words(_run("s3-start.sh", str(directory), env=env, hint=S3_HINT))
    try:
        server = S3Server(
            words["S3_URL"], words["AWS_ACCESS_KEY_ID"], words["AWS_SECRET_ACCESS_KEY"]
        )
        # radosgw makes its pools on the first bucket, which can take long on a busy machine:
        # do it here, with a patient client, so no test's own call meets that delay.
        create_bucket(server, "warm-up", read_timeout=300)
        yield server
    finally:
        subprocess.run(["bash", str(_script("s3-stop.sh")), str(directory)], check=False)
