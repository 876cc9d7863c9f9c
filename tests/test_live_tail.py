"""A running task (in a child or in-process) shows its output so far in task_detail."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from pipesd_fixtures import wait_for

FLOW = '''
import os, time
import pipes


class Chatty(pipes.Task):
    """Prints a line, then waits for the test to let it finish."""

    def output(self):
        return pipes.LocalTarget("chatty.txt")

    def run(self):
        print("step 1 of 2: loaded caf\\xe9 rows", flush=True)
        os.write(1, b"raw bytes \\xe9\\n")
        while not os.path.exists("go"):
            time.sleep(0.05)
        with self.output().open("w") as out:
            out.write("done")
'''


@pytest.mark.parametrize("workers", ["2", "1"], ids=["in-a-child", "in-process"])
def test_running_task_log_tail_reaches_task_detail_before_it_ends(
    tmp_path: Path, pipesd, start_worker, workers
):
    (tmp_path / "live_flow.py").write_text(textwrap.dedent(FLOW))
    (tmp_path / "pipes.cfg").write_text("[worker]\nping_interval = 0.5\n")
    worker = start_worker("Chatty", "--workers", workers, url=pipesd.url, module="live_flow")

    def running_id() -> str | None:
        tasks = pipesd.post("task_list", {"status": "RUNNING"}).json["tasks"]
        return tasks[0]["task_id"] if tasks else None

    wait_for(lambda: running_id() is not None, what="Chatty to start")
    task_id = running_id()

    def log() -> str:
        return pipesd.post("task_detail", {"task_id": task_id}).json["log"] or ""

    wait_for(lambda: "step 1 of 2" in log(), timeout=30, what="the running task's log tail")
    assert "caf\u00e9 rows" in log()
    if workers == "2":  # a child's capture is at descriptor level: raw writes are in it too
        assert "raw bytes \ufffd" in log()
    assert pipesd.post("task_detail", {"task_id": task_id}).json["status"] == "RUNNING"
    (tmp_path / "go").touch()
    assert worker.wait(60) == 0, worker.stderr
