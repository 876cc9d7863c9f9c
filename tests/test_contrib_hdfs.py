"""pipes.contrib.hdfs against a real HDFS (Hadoop 2.7.3) and a real `hadoop fs` command.

Every HDFS-only test in the suite lives here so one xdist worker owns the session's HDFS.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import uuid
from collections import Counter
from urllib.parse import parse_qs, urlparse

import pytest
from pipes.contrib.hdfs import HdfsConfig, HdfsFlagTarget, HdfsTarget
from pipes.contrib.hdfs.error import with_retries
from pipes.contrib.hdfs.hadoopcli_clients import HdfsClient
from pipes.contrib.hdfs.webhdfs_client import WebHdfsClient

from pipes.exceptions import (
    FileAlreadyExists,
    TargetError,
    TargetNotFound,
    TargetPermissionDenied,
    TargetUnavailable,
)
from pipes.format import Bzip2, Gzip, Nop


def webhdfs(server, *urls: str, user: str = "root") -> WebHdfsClient:
    return WebHdfsClient(
        HdfsConfig(webhdfs_urls=(*urls, server.webhdfs_url), user=user, retry_delay=0.05)
    )


@pytest.fixture
def root(hdfs_server) -> str:
    path = f"/t-{uuid.uuid4().hex[:10]}"
    webhdfs(hdfs_server).mkdir(path)
    return path


def count_ops(client: WebHdfsClient) -> Counter:
    """Count WebHDFS calls by op (a requests response hook on the client's session)."""
    counts: Counter = Counter()

    def hook(response, *args, **kwargs):
        op = parse_qs(urlparse(response.request.url).query).get("op", ["?"])[0]
        counts.update([op])

    client.client._session.hooks["response"].append(hook)
    return counts


def test_hdfs_target_round_trips_text_gzip_bzip2_and_bytes(hdfs_server, root):
    fs = webhdfs(hdfs_server)
    for fmt in (None, Gzip, Bzip2):
        target = HdfsTarget(f"{root}/data/{fmt!r}.txt", format=fmt, fs=fs)
        with target.open("w") as out:
            out.write("héllo\nworld\n")
        with target.open("r") as stream:
            assert list(stream) == ["héllo\n", "world\n"]
    raw = HdfsTarget(f"{hdfs_server.hdfs_url}{root}/raw.bin", format=Nop, fs=fs)
    with raw.open("w") as out:
        out.write(bytes(range(256)))
    assert raw.exists() and fs.exists(f"{root}/raw.bin")  # hdfs:// URL and plain path agree
    assert raw.open("rb").read() == bytes(range(256))


def test_hdfs_target_leaves_no_file_when_write_raises(hdfs_server, root):
    fs = webhdfs(hdfs_server)
    target = HdfsTarget(f"{root}/out/part.txt", fs=fs)
    with pytest.raises(RuntimeError), target.open("w") as out:
        out.write("half of it\n" * 1000)
        raise RuntimeError("task failed mid-write")
    assert not target.exists()
    assert not fs.exists(f"{root}/out") or list(fs.listdir(f"{root}/out")) == []


def test_hdfs_target_replaces_existing_file_when_closed_cleanly(hdfs_server, root):
    fs = webhdfs(hdfs_server)
    target = HdfsTarget(f"{root}/f.txt", fs=fs)
    for text in ("first\n", "second\n"):
        with target.open("w") as out:
            out.write(text)
    assert target.open("r").read() == "second\n"
    assert [p.rsplit("/", 1)[1] for p in fs.listdir(root)] == ["f.txt"]


def test_hdfs_directory_output_is_published_by_one_rename_only_on_success(hdfs_server, root):
    fs = webhdfs(hdfs_server)
    target = HdfsFlagTarget(f"{root}/job", client=fs)
    with pytest.raises(RuntimeError), target.temporary_path() as temp:
        fs.mkdir(temp)
        fs.touchz(f"{temp}/part-00000")
        raise RuntimeError("job failed")
    assert not fs.exists(f"{root}/job") and list(fs.listdir(root)) == []
    with target.temporary_path() as temp:
        fs.mkdir(temp)
        fs.touchz(f"{temp}/part-00000")
        assert not target.exists()
        fs.touchz(f"{temp}/_SUCCESS")
    assert target.exists()
    assert sorted(fs.listdir(f"{root}/job")) == [f"{root}/job/_SUCCESS", f"{root}/job/part-00000"]


def test_hdfs_exists_many_lists_each_directory_once_when_many_outputs(hdfs_server, root):
    fs = webhdfs(hdfs_server)
    for i in range(40):
        fs.touchz(f"{root}/out/{i:03}")
    asked = [f"{root}/out/{i:03}" for i in range(0, 60, 2)] + [f"{root}/out"]
    counts = count_ops(fs)
    answers = fs.exists_many(asked)
    assert answers == {p: p.endswith("/out") or int(p[-3:]) < 40 for p in asked}
    assert counts["LISTSTATUS"] == 1 and counts["GETFILESTATUS"] <= 1, counts


def test_hdfs_errors_name_the_target_and_cause(hdfs_server, root):
    fs = webhdfs(hdfs_server)
    fs.touchz(f"{root}/file")
    with pytest.raises(TargetNotFound, match=rf"^cannot read {root}/missing: File .* not found"):
        HdfsTarget(f"{root}/missing", fs=fs).open("r")
    with pytest.raises(TargetError, match=rf"^cannot read {root}: Path is not a file"):
        HdfsTarget(root, fs=fs).open("r")
    with pytest.raises(FileAlreadyExists, match="destination exists"):
        fs.rename_dont_move(f"{root}/file", root)
    stranger = webhdfs(hdfs_server, user="nobody")
    with pytest.raises(TargetPermissionDenied, match=rf"^cannot write {root}/.*Permission denied"):
        with HdfsTarget(f"{root}/theirs.txt", fs=stranger).open("w") as out:
            out.write("x")
    down = WebHdfsClient(HdfsConfig(webhdfs_urls=("http://127.0.0.1:9",), retry_delay=0.01))
    with pytest.raises(TargetUnavailable, match=r"^cannot check /x: namenode .* unreachable"):
        down.exists("/x")


def test_hdfs_client_tries_the_next_namenode_when_first_is_down(hdfs_server, root):
    fs = webhdfs(hdfs_server, "http://127.0.0.1:9")  # a dead namenode listed first
    fs.touchz(f"{root}/ha")
    assert fs.exists(f"{root}/ha")


def test_webhdfs_client_operations_match_luigi_names(hdfs_server, root):
    fs = webhdfs(hdfs_server)
    fs.mkdir(f"{root}/a/b")
    with pytest.raises(FileAlreadyExists):
        fs.mkdir(f"{root}/a/b", raise_if_exists=True)
    with HdfsTarget(f"{root}/a/b/x.txt", fs=fs).open("w") as out:
        out.write("12345")
    fs.copy(f"{root}/a", f"{root}/c")
    assert fs.count(root) == {"content_size": 10, "dir_count": 5, "file_count": 2}
    fs.rename(f"{root}/c/b/x.txt", f"{root}/y.txt")
    assert sorted(fs.listdir(root)) == [f"{root}/a", f"{root}/c", f"{root}/y.txt"]
    assert list(fs.listdir(root, recursive=True)) == [f"{root}/a/b/x.txt", f"{root}/y.txt"]
    fs.chmod(f"{root}/y.txt", 700)
    fs.chown(f"{root}/y.txt", "alice", "staff")
    status = fs.status(f"{root}/y.txt")
    assert (status["permission"], status["owner"], status["group"]) == ("700", "alice", "staff")
    fs.remove(f"{root}/c", skip_trash=False)
    assert fs.exists(f"/user/root/.Trash/Current{root}/c/b")
    with pytest.raises(TargetNotFound):
        fs.remove(f"{root}/c")


def test_hadoopcli_client_writes_reads_and_checks_in_bulk(hdfs_server, hadoop_cli, root):
    cli = HdfsClient(HdfsConfig(client="hadoopcli", hadoop_command=(hadoop_cli,)))
    target = HdfsTarget(f"{root}/cli/data.gz", format=Gzip, fs=cli)
    with target.open("w") as out:
        out.write("one\ntwo\n")
    assert list(target.open("r")) == ["one\n", "two\n"]
    names = [f"{root}/cli/data.gz", f"{root}/cli/x", f"{root}/cli/y", f"{root}/cli/z"]
    assert cli.exists_many(names) == {n: n.endswith(".gz") for n in names}
    assert webhdfs(hdfs_server).exists(f"{root}/cli/data.gz")  # the same HDFS, seen over HTTP
    with pytest.raises(TargetNotFound, match=rf"^cannot remove {root}/nothing: .*No such file"):
        cli.remove(f"{root}/nothing")


def test_autoconfig_client_follows_hdfs_client_setting(hdfs_server, hadoop_cli, tmp_path, root):
    code = (
        "from pipes.contrib.hdfs import get_autoconfig_client as g; c = g();"
        f"print(type(c).__name__, c.exists('{root}'))"
    )
    for client, expected in (("webhdfs", "WebHdfsClient True"), ("hadoopcli", "HdfsClient True")):
        config = hdfs_server.config().replace("[hdfs]\n", f"[hdfs]\nclient = {client}\n")
        (tmp_path / "pipes.cfg").write_text(f"{config}\n[hadoop]\ncommand = {hadoop_cli}\n")
        done = subprocess.run(
            [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True
        )
        assert done.stdout.strip() == expected, done.stderr


def test_hdfs_import_without_hdfs_package_gives_one_line_error_naming_the_extra():
    code = "import sys; sys.modules['hdfs'] = None; import pipes.contrib.hdfs.webhdfs_client"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode != 0
    assert "MissingExtra" in done.stderr and "pip install pipes[hdfs]" in done.stderr


def test_task_fails_with_one_line_cause_when_namenode_is_down(write_file, run_pipes):
    write_file(
        "pipes.cfg",
        "[hdfs]\nnamenode_host = 127.0.0.1\nretries = 2\nretry_delay = 0.01\n[webhdfs]\nport = 9\n",
    )
    write_file(
        "flows_down.py",
        """
        import pipes
        from pipes.contrib.hdfs import HdfsTarget

        class Land(pipes.Task):
            def output(self):
                return HdfsTarget("/data/landed.txt")

            def run(self):
                with self.output().open("w") as out:
                    out.write("x")
        """,
    )
    done = run_pipes("--module", "flows_down", "Land", "--local-scheduler")
    assert done.returncode != 0
    lines = [
        line
        for line in done.stdout.splitlines() + done.stderr.splitlines()
        if "cannot check /data/landed.txt" in line
    ]
    assert lines and "namenode http://127.0.0.1:9 unreachable (connection failed)" in lines[0]
    assert "Traceback" not in done.stdout


def test_webhdfs_call_times_out_when_the_namenode_never_answers():
    with socket.socket() as silent:  # accepts connections (kernel backlog) but never replies
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        fs = WebHdfsClient(HdfsConfig(webhdfs_urls=(url,), timeout=0.3, retry_delay=0.01))
        with pytest.raises(TargetUnavailable, match=r"unreachable \(timed out\)$"):
            fs.exists("/x")


def test_hdfs_transient_error_is_retried_a_bounded_number_of_times():
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise TargetUnavailable("cannot check /x: namenode unreachable (connection failed)")
        return "ok"

    assert with_retries(flaky, attempts=3, delay=0.001) == "ok" and len(calls) == 3
    calls.clear()
    with pytest.raises(TargetUnavailable):
        with_retries(lambda: flaky() and flaky() and flaky(), attempts=1, delay=0.001)
    permanent = []

    def missing():
        permanent.append(1)
        raise TargetNotFound("cannot read /x: File /x not found.")

    with pytest.raises(TargetNotFound):
        with_retries(missing, attempts=5, delay=0.001)
    assert len(permanent) == 1  # a permanent error is not retried
