"""[retcode]: Luigi's keys renumber the exit codes of `pipes` runs; the defaults stay."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pipesd_fixtures import wait_for

from pipes.exit_codes import ExitCode

MODULE = """
import os
import time

import pipes


class Landed(pipes.ExternalTask):
    def output(self):
        return pipes.LocalTarget("landed.txt")


class Boom(pipes.Task):
    def output(self):
        return pipes.LocalTarget("out/boom.txt")

    def run(self):
        raise ValueError("bad row")


class Load(pipes.Task):
    def requires(self):
        return Landed()

    def output(self):
        return pipes.LocalTarget("out/load.txt")

    def run(self):
        with self.output().open("w") as out:
            out.write("ok")


class Wait(pipes.Task):
    def output(self):
        return pipes.LocalTarget("out/wait.txt")

    def run(self):
        open("waiting", "w").close()
        while not os.path.exists("release"):
            time.sleep(0.02)
        with self.output().open("w") as out:
            out.write("ok")


class Odd(pipes.Task):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        raise RuntimeError("odd constructor")


class Both(pipes.WrapperTask):
    def requires(self):
        return [Boom(), Load()]
"""


@pytest.fixture
def etl(write_file, tmp_path):
    write_file("etl.py", MODULE)
    core = f"[core]\nlog_level = WARNING\nlock_pid_dir = {tmp_path / 'locks'}\n"

    def configure(retcode: str = "") -> None:
        write_file("pipes.cfg", f"{core}\n[retcode]\n{retcode}")

    return configure


@pytest.mark.parametrize(
    ("task", "code"),
    [("Boom", ExitCode.TASK_FAILED), ("Load", ExitCode.MISSING_EXTERNAL), ("Both", 3)],
)
def test_default_exit_codes_stay_when_retcode_is_empty(etl, run_pipes, task, code):
    etl()
    assert run_pipes("--module", "etl", task).returncode == code


def test_retcode_task_failed_renumbers_a_failed_run_and_its_verdict(etl, run_pipes):
    etl("task_failed = 30\n")
    result = run_pipes("--module", "etl", "Boom")
    assert result.returncode == 30
    assert "verdict: FAILED (exit 30): 1 failed" in result.stdout


def test_retcode_zero_for_missing_data_exits_0_when_only_data_is_missing(etl, run_pipes):
    etl("missing_data = 0\n")
    result = run_pipes("--module", "etl", "Load")
    assert result.returncode == 0
    assert "verdict: MISSING_EXTERNAL (exit 0)" in result.stdout


def test_retcode_zero_for_one_condition_leaves_the_next_worst_outcome(etl, run_pipes):
    etl("task_failed = 0\nmissing_data = 40\n")
    assert run_pipes("--module", "etl", "Both").returncode == 40


def test_retcode_already_running_renumbers_the_lock_refusal(etl, run_pipes, tmp_path, clean_env):
    etl("already_running = 60\n")
    first = subprocess.Popen(
        [sys.executable, "-m", "pipes", "--module", "etl", "Wait"],
        cwd=tmp_path,
        env=clean_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: (tmp_path / "waiting").exists(), what="the first run to start Wait")
        result = run_pipes("--module", "etl", "Wait")
        assert result.returncode == 60
        assert f"pipes: error: Wait() is already running (pid {first.pid} since" in result.stderr
    finally:
        (tmp_path / "release").touch()
        first.wait(30)


def test_bad_retcode_value_exits_2_before_running(etl, run_pipes, tmp_path):
    etl("task_failed = 300\n")
    result = run_pipes("--module", "etl", "Boom")
    assert result.returncode == ExitCode.USAGE
    assert result.stderr == (
        "pipes: error: pipes.cfg [retcode] task_failed = 300 is not an exit code 0..255\n"
    )
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("retcode", "code"), [("", 1), ("unhandled_exception = 9\n", 9)])
def test_unexpected_error_prints_traceback_and_exits_unhandled_exception_code(
    etl, run_pipes, retcode, code
):
    etl(retcode)
    result = run_pipes("--module", "etl", "Odd")
    assert result.returncode == code
    assert "Traceback (most recent call last)" in result.stderr
    assert result.stderr.rstrip().endswith("RuntimeError: odd constructor")
