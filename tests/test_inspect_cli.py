"""`pipes deps` and `--dry-run` look at the DAG without running anything; progress reporting."""

import io
import logging

import pipes
from pipes.worker.progress import Progress

FLOW = """
import pipes

class Part(pipes.Task):
    i = pipes.IntParameter()
    def output(self):
        return pipes.LocalTarget(f"out/part{self.i}")
    def run(self):
        with self.output().open("w") as f:
            f.write("x")

class Landed(pipes.ExternalTask):
    def output(self):
        return pipes.LocalTarget("in/landed")

class Report(pipes.Task):
    n = pipes.IntParameter(default=3)
    def requires(self):
        return [Landed()] + [Part(i=i) for i in range(self.n)]
    def output(self):
        return pipes.LocalTarget("out/report")
    def run(self):
        with self.output().open("w") as f:
            f.write("done")
"""


def test_deps_prints_tree_with_statuses_and_runs_nothing(run_pipes, write_file, tmp_path):
    write_file("flow.py", FLOW)
    write_file("out/part1", "x")
    result = run_pipes("deps", "--module", "flow", "Report")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "[incomplete] Report(n=3)"
    assert "  └─ [missing (external)] Landed()" in lines
    assert "  └─ [complete] Part(i=1)" in lines
    assert "  └─ [incomplete] Part(i=0)" in lines
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["part1"]


def test_dry_run_lists_exactly_the_incomplete_tasks(run_pipes, write_file, tmp_path):
    write_file("flow.py", FLOW)
    write_file("out/part1", "x")
    write_file("in/landed", "x")
    result = run_pipes("--module", "flow", "Report", "--dry-run")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "dry run: 3 tasks would run"
    assert sorted(lines[1:]) == ["  - Part(i=0)", "  - Part(i=2)", "  - Report(n=3)"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["part1"]


def test_dry_run_names_missing_external_data(run_pipes, write_file):
    write_file("flow.py", FLOW)
    result = run_pipes("--module", "flow", "Report", "--n", "1", "--dry-run")
    assert "missing external data (1):\n  - Landed()" in result.stdout
    assert result.stdout.startswith("dry run: 1 task would run\n  - Part(i=0)\n")
    assert "waiting on missing data or broken tasks (1):\n  - Report(n=1)" in result.stdout


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_rewrites_one_line_on_a_terminal():
    out = FakeTerminal()
    progress = Progress(out)
    progress.update(done=1, running=2, pending=3, failed=0)
    progress._last = 0.0  # as if the refresh interval had passed
    progress.update(done=2, running=1, pending=3, failed=1)
    progress.close()
    text = out.getvalue()
    assert text.count("\r\x1b[2K") == 2 and text.endswith("\n")
    assert "done 2, running 1, pending 3, failed 1" in text


def test_progress_logs_plain_lines_when_not_a_terminal(caplog):
    progress = Progress(io.StringIO(), log_every=0.0)
    with caplog.at_level(logging.INFO, logger="pipes.worker"):
        progress.update(done=5, running=0, pending=0, failed=0)
    assert "progress: done 5, running 0, pending 0, failed 0" in caplog.text


def test_build_reports_progress_in_logs(tmp_path, caplog):
    class Tick(pipes.Task):
        def output(self):
            return pipes.LocalTarget(tmp_path / "tick")

        def run(self):
            with self.output().open("w") as f:
                f.write("x")

    with caplog.at_level(logging.INFO, logger="pipes.worker"):
        assert pipes.build([Tick()])
    assert "progress: done 0, running 0, pending 1, failed 0" in caplog.text
