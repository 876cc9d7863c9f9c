"""What a new user hit (issue 9, items 15-17): re-runs after a failure, config typos, summary
reasons, --version, help texts and workers that have ended.

Runs the real `pipes` and `pipesd` console scripts; pipesd on a free 127.0.0.1 port.
"""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
from pathlib import Path

import pytest
from pipesd_fixtures import PIPESD_SCRIPT, WORKER_CONFIG, clean_environment, free_port

from pipes import ExitCode
from pipes.config import KNOWN_OPTIONS
from pipes.scheduler.core import Scheduler
from pipes.scheduler.model import Policy, TaskSpec

FRAGILE = '''
import os

import pipes


class Input(pipes.ExternalTask):
    """A file that lands from elsewhere."""

    name = pipes.Parameter(default="input")

    def output(self):
        return pipes.LocalTarget(f"{self.name}.txt")


class Fragile(pipes.Task):
    """Copy the input files; fails while broken.flag exists.

    This second paragraph is not shown by --help.
    """

    inputs = pipes.IntParameter(default=1)

    def requires(self):
        return [Input(name=f"input-{i}") for i in range(self.inputs)]

    def output(self):
        return pipes.LocalTarget("out.txt")

    def run(self):
        with open("runs.log", "a") as log:
            log.write("ran\\n")
        if os.path.exists("broken.flag"):
            raise ValueError("bad input")
        with self.output().open("w") as out:
            out.write("ok")


class Plain(pipes.Task):
    def output(self):
        return pipes.LocalTarget("plain.txt")

    def run(self):
        with self.output().open("w") as out:
            out.write("ok")
'''


@pytest.fixture
def fragile(tmp_path: Path) -> Path:
    """tmp_path with fragile.py, input-0.txt, broken.flag and a fast worker pipes.cfg."""
    (tmp_path / "fragile.py").write_text(FRAGILE)
    (tmp_path / "input-0.txt").write_text("rows\n")
    (tmp_path / "broken.flag").write_text("")
    (tmp_path / "pipes.cfg").write_text(WORKER_CONFIG)
    return tmp_path


def runs(tmp_path: Path) -> int:
    log = tmp_path / "runs.log"
    return len(log.read_text().splitlines()) if log.exists() else 0


def warnings(stderr: str) -> list[str]:
    return [line.split("WARNING pipes.config: ", 1)[1] for line in stderr.splitlines()
            if "WARNING pipes.config: " in line]


# ----- item 15: an explicit re-run after a failure runs the task now ---------------------------


def test_rerun_through_pipesd_runs_failed_task_at_once_when_it_was_fixed(
    fragile, pipesd_factory, run_pipes
):
    daemon = pipesd_factory("[scheduler]\nretry_delay = 900\n")
    first = run_pipes("--module", "fragile", "Fragile", "--scheduler-url", daemon.url, script=True)
    assert first.returncode == ExitCode.TASK_FAILED, first.stderr
    assert "* 1 failed\n    - Fragile(inputs=1): ValueError: bad input\n" in first.stdout
    (fragile / "broken.flag").unlink()

    again = run_pipes("--module", "fragile", "Fragile", "--scheduler-url", daemon.url, script=True)
    assert again.returncode == ExitCode.OK, again.stdout + again.stderr
    assert "* 1 ran\n    - Fragile(inputs=1)\n" in again.stdout
    assert (fragile / "out.txt").read_text() == "ok"
    assert runs(fragile) == 2


def test_rerun_of_still_broken_task_runs_once_per_invocation_until_disabled(
    fragile, pipesd_factory, run_pipes
):
    daemon = pipesd_factory("[scheduler]\nretry_delay = 900\nretry_count = 2\n")
    args = ("--module", "fragile", "Fragile", "--scheduler-url", daemon.url)
    assert run_pipes(*args, script=True).returncode == ExitCode.TASK_FAILED
    assert run_pipes(*args, script=True).returncode == ExitCode.TASK_FAILED
    assert runs(fragile) == 2  # one run per invocation, not a burst of retries

    (fragile / "broken.flag").unlink()
    disabled = run_pipes(*args, script=True)
    assert disabled.returncode == ExitCode.NOT_RUN, disabled.stderr
    assert runs(fragile) == 2  # DISABLED blocks even an explicit re-run
    assert re.search(
        r"\* 1 not run\n    - Fragile\(inputs=1\): disabled after 2 failures until "
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d "
        r"\(in 24 h\); re-enable it with the status page's Re-enable button or the "
        r"re_enable_task API call\n",
        disabled.stdout,
    ), disabled.stdout

    tasks = daemon.call("task_list")["tasks"]
    (task_id,) = [t["task_id"] for t in tasks if t["task_id"].startswith("Fragile")]
    daemon.call("re_enable_task", task_id=task_id)
    assert run_pipes(*args, script=True).returncode == ExitCode.OK
    assert runs(fragile) == 3


def test_same_worker_readding_failed_task_keeps_its_retry_delay():
    core = Scheduler(Policy(retry_delay=900))
    spec = TaskSpec.from_dict({"task_id": "T", "family": "T", "status": "PENDING"})
    core.add_tasks("w1", [spec], now=0.0)
    assert core.get_work("w1", now=1.0).task_id == "T"
    core.add_tasks("w1", [TaskSpec.from_dict({"task_id": "T", "status": "FAILED"})], now=2.0)

    core.add_tasks("w1", [spec], now=3.0)  # the worker that ran it, e.g. keep_alive: waits
    assert core.task("T").status == "FAILED" and core.get_work("w1", now=4.0) is None

    core.add_tasks("w2", [spec], now=5.0)  # a new invocation asks for it: runs now
    assert core.task("T").status == "PENDING" and core.task("T").retry_at is None
    assert core.get_work("w2", now=6.0).task_id == "T"
    assert len(core.task("T").failures) == 1  # failures still count towards disabling


# ----- item 17: summary lines ------------------------------------------------------------------


def test_summary_counts_external_inputs_and_pluralises_when_one_task(fragile, run_pipes):
    for i in range(1, 8):
        (fragile / f"input-{i}.txt").write_text("rows\n")
    detailed = run_pipes("--module", "fragile", "Fragile", "--inputs", "8", "--detailed-summary")
    assert detailed.returncode == ExitCode.TASK_FAILED, detailed.stderr
    assert "* 8 external inputs present\n    - Input(name=input-0)\n" in detailed.stdout

    (fragile / "broken.flag").unlink()
    result = run_pipes("--module", "fragile", "Fragile", "--inputs", "8", "--local-scheduler")
    assert result.returncode == ExitCode.OK, result.stderr
    assert result.stdout.splitlines() == [
        "pipes summary: 9 tasks scheduled",
        "* 8 external inputs present",
        "* 1 ran",
        "    - Fragile(inputs=8)",
        "verdict: SUCCESS: the requested task is complete",
    ]
    plain = run_pipes("--module", "fragile", "Plain", "--local-scheduler")
    assert plain.stdout.splitlines()[0] == "pipes summary: 1 task scheduled"


# ----- item 16: config typos warn once, with a did-you-mean -----------------------------------


def test_config_typos_warn_once_each_with_did_you_mean(fragile, write_file, run_pipes):
    (fragile / "broken.flag").unlink()
    write_file(
        "pipes.cfg",
        """
        [core]
        worker = 2
        log_level = INFO

        [Fragil]
        inputs = 1

        [Fragile]
        input = 1

        [Input]
        name = input-0

        [worker]
        wait_interval = 0.1

        [resources]
        anything = 2

        [task_history]
        db_connection = sqlite:///history.db
        """,
    )
    result = run_pipes("--module", "fragile", "Fragile", script=True)
    assert result.returncode == ExitCode.OK, result.stderr
    assert warnings(result.stderr) == [
        "pipes.cfg [core] worker: unknown option, ignored (did you mean workers?)",
        "pipes.cfg [Fragil]: unknown section, ignored (did you mean [Fragile]?)",
        "pipes.cfg [Fragile] input: unknown option, ignored (did you mean inputs?)",
    ]
    assert "INFO pipes.config: pipes does not read Luigi's [task_history]" in result.stderr
    assert "Traceback" not in result.stderr


def test_pipesd_warns_about_unknown_scheduler_option_but_not_task_sections(pipesd_factory):
    daemon = pipesd_factory("[scheduler]\nretry_dealy = 5\n\n[Fragile]\ninputs = 2\n")
    daemon.stop()
    output = daemon.output()
    assert "[scheduler] retry_dealy: unknown option, ignored (did you mean retry_delay?)" in output
    assert "Fragile" not in output


def test_every_option_pipes_reads_is_in_the_known_options_table():
    source = Path(__file__).parents[1] / "pipes"
    reads = re.compile(r"""\.get(?:int|float|boolean)?\(\s*"(core|worker|scheduler)",\s*"(\w+)\"""")
    found = {
        (section, option)
        for path in source.rglob("*.py")
        for section, option in reads.findall(path.read_text())
    }
    assert found, "the scan found no config reads"
    missing = sorted(f"[{s}] {o}" for s, o in found if o not in KNOWN_OPTIONS[s])
    assert not missing, f"add to pipes.config.KNOWN_OPTIONS: {missing}"


# ----- item 17: --version, help texts, the unreachable-scheduler hint ------------------------


def test_version_flags_print_installed_version_and_exit_0(run_pipes):
    version = importlib.metadata.version("pipes")
    assert run_pipes("--version", script=True).stdout == f"pipes {version}\n"
    pipesd = subprocess.run(
        [str(PIPESD_SCRIPT), "--version"], capture_output=True, text=True, check=False
    )
    assert (pipesd.returncode, pipesd.stdout) == (0, f"pipesd {version}\n")


def test_task_help_shows_first_paragraph_of_task_docstring(fragile, run_pipes):
    result = run_pipes("--module", "fragile", "Fragile", "--help")
    assert result.returncode == 0
    assert "Fragile: Copy the input files; fails while broken.flag exists.\n" in result.stdout
    assert "second paragraph" not in result.stdout
    plain = run_pipes("--module", "fragile", "Plain", "--help")  # no docstring: the generic text
    assert "Run a pipes task and everything it needs" in plain.stdout


def test_global_help_mentions_pipes_deps(run_pipes):
    result = run_pipes("--help")
    assert "pipes deps [--module MODULE] TASK" in result.stdout


def test_unreachable_hint_names_local_scheduler_only_when_url_came_from_config(
    fragile, write_file, run_pipes
):
    url = f"http://127.0.0.1:{free_port()}"
    write_file("pipes.cfg", f"[core]\nscheduler_url = {url}\nrpc_connect_seconds = 0.2\n")
    from_config = run_pipes("--module", "fragile", "Plain")
    assert from_config.returncode == ExitCode.SCHEDULER_UNAVAILABLE
    assert from_config.stderr.splitlines()[-1] == (
        f"pipes: error: cannot reach the scheduler at {url}: Connection refused"
        " (is pipesd running?); pipes.cfg [core] scheduler_url names it: add"
        " --local-scheduler to run without pipesd"
    )
    explicit = run_pipes("--module", "fragile", "Plain", "--scheduler-url", url)
    assert explicit.stderr.splitlines()[-1] == (
        f"pipes: error: cannot reach the scheduler at {url}: Connection refused"
        " (is pipesd running?)"
    )


# ----- item 17: a worker that has ended is not live ---------------------------------------------


def test_finished_worker_is_gone_from_overview_and_worker_list_at_once(
    fragile, pipesd_factory, run_pipes
):
    daemon = pipesd_factory()
    result = run_pipes("--module", "fragile", "Plain", "--scheduler-url", daemon.url, script=True)
    assert result.returncode == ExitCode.OK, result.stderr
    assert daemon.call("overview")["workers"] == {"live": 0, "total": 0}
    assert daemon.call("worker_list")["workers"] == []
    assert daemon.call("task_list")["tasks"][0]["status"] == "DONE"


def test_pipesd_help_lists_version(tmp_path):
    result = subprocess.run(
        [str(PIPESD_SCRIPT), "--help"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=clean_environment(),
        check=False,
    )
    assert "--version" in result.stdout


def test_summary_says_why_tasks_did_not_run_when_a_resource_is_too_small(write_file, run_pipes):
    write_file(
        "big.py",
        """
        import pipes


        class Big(pipes.Task):
            resources = {"db": 3}

            def output(self):
                return pipes.LocalTarget("out/big.txt")


        class Top(pipes.WrapperTask):
            def requires(self):
                return Big()
        """,
    )
    write_file("pipes.cfg", "[resources]\ndb = 2\n")
    result = run_pipes("--module", "big", "Top")
    assert result.returncode == ExitCode.NOT_RUN, result.stderr
    assert result.stdout.splitlines()[1:4] == [
        "* 2 not run",
        "    - Top(): waits on Big(), which is PENDING",
        "    - Big(): needs more of a resource than there is: db=3 (capacity 2)",
    ]


def test_toml_namespaced_family_section_gives_no_warning_but_its_typo_does(write_file, run_pipes):
    write_file(
        "sales.py",
        """
        import pipes

        pipes.namespace("sales")


        class Ingest(pipes.Task):
            rows = pipes.IntParameter(default=1)

            def output(self):
                return pipes.LocalTarget(f"out/ingest-{self.rows}.txt")

            def run(self):
                with self.output().open("w") as out:
                    out.write("ok")
        """,
    )
    write_file("pipes.toml", "[sales.Ingest]\nrows = 3\nrowz = 4\n")
    result = run_pipes("--module", "sales", "sales.Ingest")
    assert result.returncode == ExitCode.OK, result.stderr
    assert "Ingest(rows=3)" in result.stdout
    assert warnings(result.stderr) == [
        "pipes.toml [sales.Ingest] rowz: unknown option, ignored (did you mean rows?)"
    ]


def test_not_run_reason_names_retry_time_runner_and_pause_when_scheduler_reports_them():
    from pipes.summary import SchedulerContext, not_run_reason

    now = 1_000_000.0
    failed = {
        "status": "FAILED",
        "failures": 1,
        "retry_at": now + 600,
        "error": "Traceback (most recent call last):\n  ...\nValueError: bad input\n",
        "deps": [],
    }
    reason = not_run_reason(failed, SchedulerContext(now=now))
    assert reason.startswith("failed on another worker (ValueError: bad input); retries at ")
    assert reason.endswith(
        "(in 10 min) ([scheduler] retry_delay); the status page's Forgive failures button"
        " runs it now"
    )
    running = {"status": "RUNNING", "worker_running": "etl-2-77", "deps": []}
    assert not_run_reason(running, SchedulerContext(now=now)) == (
        "another worker is running it (etl-2-77)"
    )
    pending = {"status": "PENDING", "deps": [{"task_id": "A_1", "status": "DONE"}]}
    assert not_run_reason(pending, SchedulerContext(now=now, paused=True)) == (
        "the scheduler is paused (unpause it on the status page)"
    )
