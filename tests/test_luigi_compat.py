"""Luigi pipelines port by changing imports: config files, config flags, run endings (issue 13).

Each test runs the real `pipes` command (or pipes in-process for pure API checks) on a small
pipeline written the way a Luigi user writes one.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipes import config

PIPES_SCRIPT = Path(sys.executable).parent / "pipes"

FLOW = """
import pipes


class Greet(pipes.Task):
    name = pipes.Parameter()

    def output(self):
        return pipes.LocalTarget(f"out/{self.name}.txt")

    def run(self):
        print(f"hello {self.name}")
        with self.output().open("w") as out:
            out.write(self.name)
"""


@pytest.fixture
def fresh_config(monkeypatch, tmp_path):
    """In tmp_path, with no PIPES_/LUIGI_ config variables and no config loaded yet."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PIPES_CONFIG_PATH", raising=False)
    monkeypatch.delenv("LUIGI_CONFIG_PATH", raising=False)
    monkeypatch.setattr(config, "_config", None)
    monkeypatch.setattr(config, "_added_paths", [])
    yield
    config._config = None


def luigi_free(env: dict[str, str] | None = None) -> dict[str, str]:
    """Extra variables for run_pipes: LUIGI_CONFIG_PATH unset unless given."""
    return {"LUIGI_CONFIG_PATH": "", **(env or {})}


# ----- config files --------------------------------------------------------------------------


def test_luigi_cfg_supplies_parameter_when_no_pipes_config_exists(run_pipes, write_file, tmp_path):
    write_file("flow.py", FLOW)
    write_file("luigi.cfg", "[Greet]\nname = ada\n")
    done = run_pipes("--module", "flow", "Greet", "--local-scheduler", env=luigi_free())
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "ada.txt").read_text() == "ada"
    assert "no pipes config file found; read Luigi's luigi.cfg" in done.stderr
    assert done.stderr.count("read Luigi's") == 1


def test_luigi_toml_supplies_parameter_when_no_pipes_config_exists(run_pipes, write_file, tmp_path):
    write_file("flow.py", FLOW)
    write_file("luigi.toml", '[Greet]\nname = "bo"\n')
    done = run_pipes("--module", "flow", "Greet", "--local-scheduler", env=luigi_free())
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "bo.txt").exists()


def test_luigi_config_path_file_is_read_when_no_pipes_config_exists(
    run_pipes, write_file, tmp_path
):
    write_file("flow.py", FLOW)
    named = write_file("conf/jobs.cfg", "[Greet]\nname = cy\n")
    done = run_pipes(
        "--module", "flow", "Greet", "--local-scheduler", env={"LUIGI_CONFIG_PATH": str(named)}
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "cy.txt").exists()
    assert f"read Luigi's {named}" in done.stderr


def test_luigi_cfg_is_ignored_when_pipes_cfg_exists(run_pipes, write_file, tmp_path):
    write_file("flow.py", FLOW)
    write_file("luigi.cfg", "[Greet]\nname = luigi\n")
    write_file("pipes.cfg", "[Greet]\nname = pipes\n")
    done = run_pipes("--module", "flow", "Greet", "--local-scheduler", env=luigi_free())
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "pipes.txt").exists()
    assert not (tmp_path / "out" / "luigi.txt").exists()
    assert "read Luigi's" not in done.stderr


def test_missing_luigi_config_path_file_exits_2_with_one_line_error(run_pipes, write_file):
    write_file("flow.py", FLOW)
    done = run_pipes(
        "--module", "flow", "Greet", "--name", "x", env={"LUIGI_CONFIG_PATH": "absent.cfg"}
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "pipes: error: config file absent.cfg does not exist (named in LUIGI_CONFIG_PATH)"
    )


def test_configuration_get_config_reads_like_configparser_when_luigi_cfg_exists(
    fresh_config, write_file
):
    from pipes.configuration import NoOptionError, NoSectionError, get_config

    write_file("luigi.cfg", "[job]\ncount = 3\nratio = 0.5\nloud = yes\nname = x\n")
    conf = get_config()
    assert conf.get("job", "name") == "x"
    assert conf.getint("job", "count") == 3
    assert conf.getfloat("job", "ratio") == 0.5
    assert conf.getboolean("job", "loud") is True
    assert conf.get("job", "absent", "fallback") == "fallback"
    assert conf.getint("job", "absent", 7) == 7
    assert conf.has_option("job", "count") and not conf.has_option("job", "absent")
    assert "job" in conf.sections()
    assert dict(conf.items("job"))["count"] == "3"
    with pytest.raises(NoOptionError):
        conf.get("job", "absent")
    with pytest.raises(NoSectionError):
        conf.items("nothing")
    conf.set("job", "count", 9)
    assert config.get_config().getint("job", "count", 0) == 9  # the same process-wide view


def test_configuration_add_config_path_reads_file_after_standard_ones(fresh_config, write_file):
    from pipes.configuration import add_config_path, get_config

    write_file("pipes.cfg", "[job]\nname = first\nkept = yes\n")
    extra = write_file("extra.cfg", "[job]\nname = second\n")
    add_config_path(extra)
    assert get_config().get("job", "name") == "second"
    assert get_config().get("job", "kept") == "yes"


# ----- config classes on the command line --------------------------------------------------

EXTERNAL_FLOW = """
import pipes


class Arrives(pipes.ExternalTask):
    def output(self):
        return pipes.LocalTarget("arrives.txt")


class Uses(pipes.Task):
    def requires(self):
        return Arrives()

    def output(self):
        return pipes.LocalTarget("uses.txt")

    def run(self):
        self.output().open("w").close()
"""


def test_worker_retry_external_tasks_flag_runs_task_once_external_data_appears(
    write_file, tmp_path, clean_env
):
    write_file("flow.py", EXTERNAL_FLOW)
    command = [str(PIPES_SCRIPT), "--module", "flow", "Uses", "--local-scheduler"]
    command += ["--worker-keep-alive", "--worker-retry-external-tasks"]
    command += ["--scheduler-retry-delay", "0.5"]
    stderr = tmp_path / "stderr.txt"
    with stderr.open("w") as err:
        proc = subprocess.Popen(
            command, cwd=tmp_path, env=clean_env, stdout=subprocess.PIPE, stderr=err, text=True
        )
        deadline = time.monotonic() + 30
        while "checked again later" not in stderr.read_text():  # the first check failed
            assert proc.poll() is None, stderr.read_text()
            assert time.monotonic() < deadline, stderr.read_text()
            time.sleep(0.05)
        (tmp_path / "arrives.txt").write_text("data")
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr.read_text()
    assert (tmp_path / "uses.txt").exists()
    assert "- Uses()" in out


def test_unknown_config_flag_option_exits_2_naming_it(run_pipes, write_file):
    write_file("flow.py", FLOW)
    done = run_pipes("--module", "flow", "Greet", "--name", "x", "--worker-keep-alvie")
    assert done.returncode == 2
    assert done.stderr.startswith("pipes: error: unknown parameter --worker-keep-alvie")


def test_config_flag_with_bad_value_exits_2_with_one_line_error(run_pipes, write_file):
    write_file("flow.py", FLOW)
    done = run_pipes("--module", "flow", "Greet", "--name", "x", "--worker-wait-interval", "soon")
    assert done.returncode == 2
    assert done.stderr.strip() == "pipes: error: [worker] wait_interval = 'soon' is not a number"


# ----- keep_alive with a disabled upstream task ------------------------------------------------

DISABLED_UPSTREAM_FLOW = """
import pipes


class Flaky(pipes.Task):
    retry_count = 2

    def output(self):
        return pipes.LocalTarget("flaky.txt")

    def run(self):
        with open("attempts.txt", "a") as log:
            log.write("attempt\\n")
        raise RuntimeError("Flaky fails")


class After(pipes.Task):
    def requires(self):
        return Flaky()

    def output(self):
        return pipes.LocalTarget("after.txt")

    def run(self):
        self.output().open("w").close()
"""


def test_keep_alive_run_ends_when_upstream_task_is_disabled(run_pipes, write_file, tmp_path):
    write_file("flow.py", DISABLED_UPSTREAM_FLOW)
    done = run_pipes(
        "--module", "flow", "After", "--local-scheduler",
        "--worker-keep-alive", "--scheduler-retry-delay", "0.2",
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 3, done.stderr
    assert (tmp_path / "attempts.txt").read_text().count("attempt") == 2  # retry_count = 2
    assert "- After()" in done.stdout


# ----- output of tasks run in children, with stderr appended to a file ---------------------------

LOUD_FLOW = """
import pipes


class Loud(pipes.Task):
    n = pipes.IntParameter()

    def output(self):
        return pipes.LocalTarget(f"loud{self.n}.txt")

    def run(self):
        print(f"loud task {self.n} printed this")
        with self.output().open("w") as out:
            out.write("x")


class AllLoud(pipes.WrapperTask):
    def requires(self):
        return [Loud(n=n) for n in range(4)]
"""


def test_task_output_reaches_log_when_stderr_is_appended_with_two_workers(
    write_file, tmp_path, clean_env
):
    write_file("flow.py", LOUD_FLOW)
    (tmp_path / "cron.log").write_text("earlier line\n")
    line = f"'{PIPES_SCRIPT}' --module flow AllLoud --local-scheduler --workers 2 >> cron.log 2>&1"
    done = subprocess.run(["bash", "-c", line], cwd=tmp_path, env=clean_env, timeout=60)
    assert done.returncode == 0
    log = (tmp_path / "cron.log").read_text()
    assert log.startswith("earlier line\n")
    for n in range(4):
        assert f"loud task {n} printed this" in log
    assert "pipes summary: 5 tasks scheduled" in log


# ----- pipes.run from a script -------------------------------------------------------------


def test_pipes_run_from_script_prints_summary(write_file, tmp_path, clean_env):
    write_file(
        "script.py",
        FLOW + '\nif __name__ == "__main__":\n    pipes.run(["Greet", "--name", "dee"])\n',
    )
    done = subprocess.run(
        [sys.executable, "script.py"], cwd=tmp_path, env=clean_env, capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "pipes summary: 1 task scheduled" in done.stdout
    assert "- Greet(name=dee)" in done.stdout


# ----- DynamicRequirements, DateInterval, Task.disabled -------------------------------------

DYNAMIC_FLOW = """
import os

import pipes


class Part(pipes.Task):
    n = pipes.IntParameter()

    def output(self):
        return pipes.LocalTarget(f"parts/{self.n}.txt")

    def run(self):
        with self.output().open("w") as out:
            out.write(str(self.n))


class Gather(pipes.Task):
    def output(self):
        return pipes.LocalTarget("gathered.txt")

    def run(self):
        parts = [Part(n=n) for n in range(3)]

        def one_listdir(complete_fn):
            with open("custom_calls.txt", "a") as log:
                log.write("call\\n")
            if not complete_fn(parts[0]):
                return False
            names = os.listdir("parts")
            return all(os.path.basename(p.output().path) in names for p in parts)

        targets = yield pipes.DynamicRequirements(parts, one_listdir)
        with self.output().open("w") as out:
            out.write(",".join(t.open().read() for t in targets))
"""


def test_dynamic_requirements_run_with_custom_complete(run_pipes, write_file, tmp_path):
    write_file("flow.py", DYNAMIC_FLOW)
    done = run_pipes("--module", "flow", "Gather", "--local-scheduler")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "gathered.txt").read_text() == "0,1,2"
    assert (tmp_path / "custom_calls.txt").read_text().count("call") >= 1


def test_date_interval_iterates_its_dates():
    from pipes.date_interval import Custom, Week

    interval = Custom(dt.date(2024, 2, 27), dt.date(2024, 3, 2))
    assert list(interval) == [
        dt.date(2024, 2, 27), dt.date(2024, 2, 28), dt.date(2024, 2, 29), dt.date(2024, 3, 1)
    ]  # fmt: skip
    assert [d.isoformat() for d in Week(2024, 1)][0] == "2024-01-01"


DISABLED_FLOW = """
import pipes


class Off(pipes.Task):
    disabled = True

    def output(self):
        return pipes.LocalTarget("off.txt")

    def run(self):
        self.output().open("w").close()


class NeedsOff(pipes.Task):
    def requires(self):
        return Off()

    def output(self):
        return pipes.LocalTarget("needs.txt")

    def run(self):
        self.output().open("w").close()
"""


def test_disabled_task_is_not_run_and_keep_alive_run_ends(run_pipes, write_file, tmp_path):
    write_file("flow.py", DISABLED_FLOW)
    done = run_pipes(
        "--module", "flow", "NeedsOff", "--local-scheduler", "--worker-keep-alive", timeout=60
    )
    assert done.returncode == 7, done.stderr
    assert not (tmp_path / "off.txt").exists()
    assert "- Off(): disabled (Task.disabled is true)" in done.stdout
