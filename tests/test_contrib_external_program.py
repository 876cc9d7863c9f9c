"""pipes.contrib.external_program run by real `pipes` workers against a real pipesd."""

from __future__ import annotations

import os
import signal
import sys
import textwrap
from pathlib import Path

from pipesd_fixtures import pid_alive, wait_for

from pipes.exit_codes import ExitCode

CONFIG = """
[core]
log_level = WARNING
rpc_retry_seconds = 40
no_lock = true

[worker]
wait_interval = 0.1
ping_interval = 0.3
{extra}
"""

MODULE = '''
import os
import sys

import pipes
from pipes.contrib.external_program import ExternalProgramTask, ExternalPythonProgramTask

PY = sys.executable
HERE = os.path.dirname(os.path.abspath(__file__))


class Chatty(ExternalProgramTask):
    """Prints on both streams, names a tracking URL, then waits for the test's go file."""

    stream_for_searching_tracking_url = "stdout"
    tracking_url_pattern = r"tracking URL: (\\S+)"

    def program_args(self):
        code = (
            "import os, sys, time\\n"
            "print('started on stdout', flush=True)\\n"
            "print('warming on stderr', file=sys.stderr, flush=True)\\n"
            "print('tracking URL: http://jobs.example/app_7', flush=True)\\n"
            "while not os.path.exists('go'):\\n"
            "    time.sleep(0.02)\\n"
            "print('finished on stdout')\\n"
        )
        return [PY, "-c", code]

    def output(self):
        return pipes.LocalTarget(os.path.join(HERE, "chatty.done"))

    def run(self):
        super().run()
        with self.output().open("w") as out:
            out.write("ok")


class Quiet(ExternalProgramTask):
    always_log_stderr = False

    def program_args(self):
        code = "import sys; print('quiet out'); print('noise on stderr', file=sys.stderr)"
        return [PY, "-c", code]

    def output(self):
        return pipes.LocalTarget(os.path.join(HERE, "quiet.done"))

    def run(self):
        super().run()
        self.output().open("w").close()


class Broken(ExternalProgramTask):
    def program_args(self):
        code = (
            "import sys\\n"
            "for i in range(30):\\n"
            "    print(f'problem line {i}', file=sys.stderr)\\n"
            "sys.exit(3)\\n"
        )
        return [PY, "-c", code]

    def output(self):
        return pipes.LocalTarget(os.path.join(HERE, "broken.done"))


class Forks(ExternalProgramTask):
    """A shell that starts a background sleep and waits: both pids go to pids.txt."""

    def program_args(self):
        script = "sleep 300 & echo $! > pids.tmp; echo $$ >> pids.tmp; mv pids.tmp pids.txt; wait"
        return ["sh", "-c", script]

    def output(self):
        return pipes.LocalTarget(os.path.join(HERE, "forks.done"))


class InVenv(ExternalPythonProgramTask):
    def program_args(self):
        code = "import os, helper; print('venv', os.environ['VIRTUAL_ENV']); print(helper.WORD)"
        return ["python", "-c", code]

    def output(self):
        return pipes.LocalTarget(os.path.join(HERE, "venv.done"))

    def run(self):
        super().run()
        self.output().open("w").close()
'''


def setup(tmp_path: Path, extra: str = "") -> None:
    (tmp_path / "extflows.py").write_text(MODULE)
    (tmp_path / "pipes.cfg").write_text(CONFIG.format(extra=textwrap.dedent(extra)))


def only_task(daemon, family: str) -> dict:
    tasks = [t for t in daemon.scheduler().task_list(limit=100)["tasks"] if t["family"] == family]
    assert len(tasks) == 1, tasks
    return daemon.call("task_detail", task_id=tasks[0]["task_id"])


def test_external_program_streams_output_into_task_log_while_it_runs(
    tmp_path, pipesd, start_worker
):
    logs = tmp_path / "logs"
    setup(tmp_path, f"task_log_dir = {logs}\nforce_multiprocessing = true\n")
    worker = start_worker("Chatty", url=pipesd.url, module="extflows")

    def log_text() -> str:
        return "".join(p.read_text() for p in logs.glob("*.log")) if logs.exists() else ""

    # Live: both streams are in the task's log file while the program still waits for `go`
    wait_for(lambda: "warming on stderr" in log_text(), 60, "the program's lines in the log")
    assert "started on stdout" in log_text()
    wait_for(
        lambda: only_task(pipesd, "Chatty")["tracking_url"] == "http://jobs.example/app_7",
        30,
        "the tracking URL while the program runs",
    )
    assert only_task(pipesd, "Chatty")["status"] == "RUNNING"
    (tmp_path / "go").touch()
    assert worker.wait() == ExitCode.OK, worker.stderr
    assert "finished on stdout" in log_text()
    assert "finished on stdout" in only_task(pipesd, "Chatty")["log"]


def test_external_program_keeps_stderr_out_of_log_when_always_log_stderr_is_false(
    tmp_path, pipesd, start_worker
):
    setup(tmp_path)
    worker = start_worker("Quiet", url=pipesd.url, module="extflows")
    assert worker.wait() == ExitCode.OK, worker.stderr
    log = only_task(pipesd, "Quiet")["log"]
    assert "quiet out" in log
    assert "noise on stderr" not in log


def test_external_program_fails_with_exit_code_and_stderr_tail_when_it_exits_nonzero(
    tmp_path, pipesd, start_worker
):
    setup(tmp_path)
    worker = start_worker("Broken", url=pipesd.url, module="extflows")
    assert worker.wait() == ExitCode.TASK_FAILED, worker.stderr
    detail = only_task(pipesd, "Broken")
    error = detail["error"]
    assert error.splitlines()[0].endswith("exited with code 3; last lines of stderr:"), error
    assert "problem line 29" in error and "problem line 10" in error
    assert "problem line 9\n" not in error + "\n"  # only the last 20 lines
    assert "Traceback" not in error
    assert "problem line 0" in detail["log"]  # the full stderr is in the log
    assert not (tmp_path / "broken.done").exists()


def _pids(tmp_path: Path) -> list[int]:
    wait_for(lambda: (tmp_path / "pids.txt").exists(), 60, "the program's pids")
    return [int(p) for p in (tmp_path / "pids.txt").read_text().split()]


def test_external_program_timeout_kills_program_and_its_children(tmp_path, pipesd, start_worker):
    setup(tmp_path, "timeout = 2\n")
    worker = start_worker("Forks", url=pipesd.url, module="extflows")
    pids = _pids(tmp_path)
    assert worker.wait() == ExitCode.TASK_FAILED, worker.stderr
    assert "timed out after 2s; killed process group" in only_task(pipesd, "Forks")["error"]
    wait_for(lambda: not any(pid_alive(p) for p in pids), 10, f"pids {pids} to end")


def test_external_program_sigterm_to_worker_stops_inline_program_and_children(
    tmp_path, pipesd, start_worker
):
    setup(tmp_path)  # one worker, no timeout: the task runs inside the worker process
    worker = start_worker("Forks", url=pipesd.url, module="extflows")
    pids = _pids(tmp_path)
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.wait() == ExitCode.TERMINATED, worker.stderr
    wait_for(lambda: not any(pid_alive(p) for p in pids), 10, f"pids {pids} to end")


def test_external_python_program_runs_in_virtualenv_with_extra_pythonpath(
    tmp_path, pipesd, start_worker
):
    setup(tmp_path)
    venv = tmp_path / "venv"
    # A bare virtualenv: only bin/python, which is what the task puts first on PATH
    (venv / "bin").mkdir(parents=True)
    os.symlink(sys.executable, venv / "bin" / "python")
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "helper.py").write_text("WORD = 'helper imported'\n")
    worker = start_worker(
        "InVenv",
        "--virtualenv",
        str(venv),
        "--extra-pythonpath",
        str(extra),
        url=pipesd.url,
        module="extflows",
    )
    assert worker.wait() == ExitCode.OK, worker.stderr
    log = only_task(pipesd, "InVenv")["log"]
    assert f"venv {venv}" in log
    assert "helper imported" in log
