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


# ----- the public API surface, at Luigi's module paths ---------------------------------------


def test_luigi_module_paths_import_under_pipes():
    import importlib

    for module, names in {
        "pipes.local_target": ["LocalTarget", "LocalFileSystem", "FileAlreadyExists"],
        "pipes.task_register": ["Register", "load_task", "TaskClassException"],
        "pipes.configuration": ["get_config", "add_config_path"],
        "pipes.cmdline_parser": ["CmdlineParser"],
        "pipes.interface": ["build"],
        "pipes.execution_summary": ["LuigiRunResult", "LuigiStatusCode"],
        "pipes.tools.deps": ["dependency_tree"],
        "pipes.target": [
            "FileAlreadyExists",
            "MissingParentDirectory",
            "NotADirectory",
            "FileSystemException",
            "Target",
            "FileSystemTarget",
        ],
        "pipes.util": [
            "inherits",
            "requires",
            "copies",
            "delegates",
            "common_params",
            "previous",
            "get_previous_completed",
        ],
        "pipes": ["DynamicRequirements", "auto_namespace", "StrParameter", "LuigiStatusCode"],
    }.items():
        loaded = importlib.import_module(module)
        for name in names:
            assert hasattr(loaded, name), f"{module}.{name}"


def test_luigi_exception_names_belong_to_pipes_hierarchy():
    from pipes import parameter, target, task_register
    from pipes.exceptions import ParameterError, PipesError, TargetError, UnknownTaskError

    for name in ("MissingParameterException", "UnknownParameterException"):
        assert issubclass(getattr(parameter, name), parameter.ParameterException)
    assert issubclass(parameter.DuplicateParameterException, ParameterError)
    assert issubclass(parameter.ParameterException, PipesError)
    assert issubclass(parameter.UnconsumedParameterWarning, UserWarning)
    assert issubclass(parameter.OptionalParameterTypeWarning, UserWarning)
    for name in ("FileAlreadyExists", "MissingParentDirectory", "NotADirectory"):
        assert issubclass(getattr(target, name), target.FileSystemException)
    assert target.FileSystemException is TargetError
    assert issubclass(task_register.TaskClassException, UnknownTaskError)


def test_task_raises_luigis_parameter_exceptions_when_parameters_are_wrong():
    import pipes
    from pipes.parameter import (
        DuplicateParameterException,
        MissingParameterException,
        UnknownParameterException,
    )

    class Needs(pipes.Task):
        day = pipes.IntParameter(positional=True)

    with pytest.raises(MissingParameterException, match="missing parameter day"):
        Needs()
    with pytest.raises(UnknownParameterException, match="unknown parameter dya"):
        Needs(1, dya=2)
    with pytest.raises(DuplicateParameterException, match="given twice"):
        Needs(1, day=2)


def test_task_methods_match_luigi_names():
    import pipes

    class Pair(pipes.Task):
        a = pipes.IntParameter()
        b = pipes.Parameter(default="x")

    task = Pair(a=1)
    assert task.param_args == (1, "x")
    assert task.param_kwargs == {"a": 1, "b": "x"}
    assert Pair.get_param_values(Pair.get_params(), (), {"a": 2}) == [("a", 2), ("b", "x")]
    assert Pair.get_param_names() == ["a", "b"]
    assert Pair.from_str_params(task.to_str_params()) is task
    assert task.clone(b="y").b == "y"
    assert Pair.get_task_family() == "Pair" and Pair.get_task_namespace() is None
    assert task.task_id.startswith("Pair_1_x_")
    assert Pair.disabled is False and Pair.retry_count is None and Pair.batchable is True
    for name in ("disable_window", "disable_hard_timeout", "worker_timeout", "owner_email"):
        assert getattr(Pair, name) is None
    assert Pair.accepts_messages is False


def test_mixin_naive_bulk_complete_checks_each_task(tmp_path):
    import pipes
    from pipes.task import MixinNaiveBulkComplete

    class Day(MixinNaiveBulkComplete, pipes.Task):
        n = pipes.IntParameter()

        def output(self):
            return pipes.LocalTarget(str(tmp_path / f"{self.n}"))

    (tmp_path / "2").write_text("")
    assert Day.bulk_complete([1, 2, 3]) == [2]


def test_event_handlers_get_luigis_arguments_and_can_be_removed():
    import pipes

    seen = []

    class Noisy(pipes.Task):
        pass

    @Noisy.event_handler(pipes.Event.PROGRESS)
    def progress(task, data):
        seen.append((task, data))

    task = Noisy()
    task.trigger_event(pipes.Event.PROGRESS, task, {"done": 1})
    Noisy.remove_event_handler(pipes.Event.PROGRESS, progress)
    task.trigger_event(pipes.Event.PROGRESS, task, {"done": 2})
    assert seen == [(task, {"done": 1})]


def test_task_register_loads_task_and_controls_instance_cache():
    import pipes
    from pipes.task_register import Register, TaskClassException, load_task

    class Cached(pipes.Task):
        n = pipes.IntParameter()

    assert load_task(None, "Cached", {"n": "4"}) is Cached(n=4)
    assert Register.get_task_cls("Cached") is Cached
    Cached.clear_instance_cache()
    Register.clear_instance_cache()
    assert Cached(n=4) is Cached(n=4)
    with pytest.raises(TaskClassException, match="no task family named 'Nowhere'"):
        load_task(None, "Nowhere", {})


def test_cmdline_parser_builds_root_task_with_its_parameters(write_file, monkeypatch, tmp_path):
    from pipes.cmdline_parser import CmdlineParser
    from pipes.parameter import UnknownParameterException

    write_file("cmdflow.py", FLOW.replace("Greet", "CmdGreet"))
    monkeypatch.syspath_prepend(str(tmp_path))
    parser = CmdlineParser(["--module", "cmdflow", "CmdGreet", "--name", "eve"])
    assert str(parser.get_task_obj()) == "CmdGreet(name=eve)"
    with CmdlineParser.global_instance(["CmdGreet", "--CmdGreet-name", "fay"]) as active:
        assert str(active.get_task_obj()) == "CmdGreet(name=fay)"
    with pytest.raises(UnknownParameterException, match="unknown parameter --nme"):
        CmdlineParser(["CmdGreet", "--nme", "x"])


def test_collection_parameters_take_schema_and_check_it_when_jsonschema_is_installed():
    import importlib.util

    import pipes
    from pipes.exceptions import MissingExtra, ParameterError

    schema = {"type": "array", "items": {"type": "integer"}}
    if importlib.util.find_spec("jsonschema") is None:
        with pytest.raises(MissingExtra, match=r"needs the jsonschema package: pip install"):
            pipes.ListParameter(schema=schema)
        return
    param = pipes.ListParameter(schema=schema)
    assert param.parse("[1, 2]") == (1, 2)
    with pytest.raises(ParameterError, match="does not match the schema"):
        param.parse('[1, "two"]')


def test_month_and_year_parameters_take_date_objects():
    import pipes

    class Monthly(pipes.Task):
        month = pipes.MonthParameter(default=dt.date(2024, 3, 15))
        year = pipes.YearParameter(default=dt.date(2024, 3, 15))

    assert str(Monthly()) == "Monthly(month=2024-03, year=2024)"
    assert Monthly(month=dt.date(2023, 2, 3)).month == dt.date(2023, 2, 1)


def test_optional_parameter_warns_on_wrong_type():
    import pipes
    from pipes.parameter import OptionalParameterTypeWarning

    with pytest.warns(OptionalParameterTypeWarning, match="not of type int"):
        pipes.OptionalIntParameter().normalize("5")


def test_mock_target_fs_is_class_level_mock_filesystem():
    from pipes.mock import MockFileSystem, MockTarget

    fs = MockTarget.fs
    assert isinstance(fs, MockFileSystem)
    fs.clear()
    with MockTarget("dir/a", mirror_on_stderr=False).open("w") as out:
        out.write("hi")
    assert fs.get_data("dir/a") == b"hi" and fs.get_all_data() == {"dir/a": b"hi"}
    fs.copy("dir/a", "dir/b")
    fs.rename("dir/b", "dir/c")
    assert sorted(fs.listdir("dir")) == ["dir/a", "dir/c"]
    assert fs.exists("dir/c") and fs.isdir("dir") and not fs.exists("dir/b")
    fs.remove("dir/a")
    assert not fs.exists("dir/a")
    fs.clear()
    assert fs.get_all_data() == {}


def test_util_common_params_copies_and_delegates_work_as_in_luigi(tmp_path):
    import pipes
    from pipes.util import common_params, copies, delegates

    class Source(pipes.Task):
        day = pipes.IntParameter()

        def output(self):
            return pipes.LocalTarget(str(tmp_path / f"source{self.day}"))

        def run(self):
            with self.output().open("w") as out:
                out.write("a\nb\n")

    @copies(Source)
    class Copy(pipes.Task):
        def output(self):
            return pipes.LocalTarget(str(tmp_path / f"copy{self.day}"))

    class Helper(pipes.Task):
        ran = []

        def run(self):
            Helper.ran.append("helper")

    @delegates
    class Boss(pipes.Task):
        def subtasks(self):
            return Helper()

        def output(self):
            return pipes.LocalTarget(str(tmp_path / "boss"))

        def run(self):
            self.output().open("w").close()

    assert common_params(Copy(day=3), Source) == {"day": 3}
    assert pipes.build([Copy(day=3), Boss()], local_scheduler=True)
    assert (tmp_path / "copy3").read_text() == "a\nb\n"
    assert Helper.ran == ["helper"]


def test_auto_namespace_names_families_after_their_module():
    import pipes
    from pipes import task_register

    pipes.auto_namespace(scope=__name__)
    try:

        class Spaced(pipes.Task):
            pass

    finally:
        task_register.namespace(None, scope=__name__)
    assert Spaced.get_task_family() == f"{__name__}.Spaced"


def test_unsupported_contrib_module_exits_2_naming_it_not_yet_supported(run_pipes, write_file):
    write_file("dbflow.py", "import pipes.contrib.postgres\n")
    done = run_pipes("--module", "dbflow", "Anything")
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1
    assert "ModuleNotFoundError: pipes.contrib.postgres is not supported yet" in done.stderr


def test_retcode_and_core_config_flags_apply_to_the_run(run_pipes, write_file, tmp_path):
    write_file("flow.py", DISABLED_UPSTREAM_FLOW)
    done = run_pipes(
        "--module", "flow", "After", "--retcode-task-failed", "9", "--core-workers=2"
    )  # fmt: skip
    assert done.returncode == 9, done.stderr
    assert (tmp_path / "attempts.txt").read_text().count("attempt") == 1


def test_config_flag_that_is_also_a_root_parameter_exits_2_with_the_fix(run_pipes, write_file):
    write_file(
        "clash.py",
        """
        import pipes


        class Clash(pipes.Task):
            worker_timeout = pipes.IntParameter()
        """,
    )
    done = run_pipes("--module", "clash", "Clash", "--worker-timeout", "5")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "pipes: error: --worker-timeout is both a config option and a parameter of Clash:"
        " give the parameter as --Clash-worker-timeout"
    )
