"""End-to-end tests of the `pipes` command: each runs the real command in a subprocess.

The working directory is the test's tmp_path, holding the task modules and config files the
test writes; assertions are on exit codes, the one-line stderr error, stdout and files on disk.
"""

from __future__ import annotations

import pytest

from pipes.exit_codes import ExitCode

FLOW = '''
import pipes


class Extract(pipes.Task):
    """Pull one day of raw rows."""

    date = pipes.DateParameter(description="the day to extract")
    n = pipes.IntParameter(default=1, description="how many rows to write")

    def output(self):
        return pipes.LocalTarget(f"out/extract-{self.date}.txt")

    def run(self):
        with self.output().open("w") as out:
            out.write(f"{self.n}\\n")


class Load(pipes.Task):
    """Load one day's rows."""

    date = pipes.DateParameter(description="the day to load")

    def requires(self):
        return Extract(date=self.date)

    def output(self):
        return pipes.LocalTarget(f"out/load-{self.date}.txt")

    def run(self):
        with self.input().open("r") as rows, self.output().open("w") as out:
            out.write(rows.read())
'''

OUTCOMES = """
import pipes


class Good(pipes.Task):
    def output(self):
        return pipes.LocalTarget("out/good.txt")

    def run(self):
        with self.output().open("w") as out:
            out.write("ok")


class Boom(pipes.Task):
    def output(self):
        return pipes.LocalTarget("out/boom.txt")

    def run(self):
        raise ValueError("kaboom in run")


class AfterBoom(pipes.Task):
    def requires(self):
        return Boom()

    def output(self):
        return pipes.LocalTarget("out/after-boom.txt")

    def run(self):
        with self.output().open("w") as out:
            out.write("never")


class Failing(pipes.WrapperTask):
    def requires(self):
        return [AfterBoom(), Good()]


class Landed(pipes.ExternalTask):
    def output(self):
        return pipes.LocalTarget("in/landed.txt")


class UseLanded(pipes.Task):
    def requires(self):
        return Landed()

    def output(self):
        return pipes.LocalTarget("out/use-landed.txt")

    def run(self):
        with self.output().open("w") as out:
            out.write("used")


class BadRequires(pipes.Task):
    def requires(self):
        raise KeyError("no such partition")

    def output(self):
        return pipes.LocalTarget("out/bad-requires.txt")


class BadComplete(pipes.Task):
    def complete(self):
        raise OSError("cannot stat the bucket")


class Broken(pipes.WrapperTask):
    def requires(self):
        return [BadRequires(), BadComplete(), Good()]
"""

LEAVES = """
import pipes


class Leaf(pipes.Task):
    n = pipes.IntParameter(default=1)

    def output(self):
        return pipes.LocalTarget(f"out/{self.task_family}.txt")

    def run(self):
        with self.output().open("w") as out:
            out.write(str(self.n))


class FromDefault(Leaf):
    pass


class FromCfg(Leaf):
    pass


class FromToml(Leaf):
    pass


class FromPyproject(Leaf):
    pass


class FromEnvPath(Leaf):
    pass


class FromCmdline(Leaf):
    pass


class FromConstructor(Leaf):
    pass


class Root(Leaf):
    def requires(self):
        return [FromDefault(), FromCfg(), FromToml(), FromPyproject(), FromEnvPath(),
                FromCmdline(), FromConstructor(n=7)]
"""


def assert_usage_error(result, message):
    """Exit 2 with exactly one stderr line `pipes: error: <message>` and nothing on stdout."""
    assert "Traceback" not in result.stderr
    assert result.stderr == f"pipes: error: {message}\n"
    assert result.returncode == ExitCode.USAGE
    assert result.stdout == ""


def leaf_values(tmp_path):
    return {p.stem: p.read_text() for p in sorted((tmp_path / "out").glob("*.txt"))}


# ----- bad modules and task names ------------------------------------------------------------


def test_unknown_module_exits_2_with_one_line_error(run_pipes):
    result = run_pipes("--module", "nosuch", "Load")
    assert_usage_error(result, "cannot import module 'nosuch': no module named 'nosuch'")


def test_module_import_error_exits_2_naming_file_and_line_when_module_raises(
    run_pipes, write_file, tmp_path
):
    write_file("broken.py", 'import pipes\n\nraise RuntimeError("warehouse unreachable")\n')
    result = run_pipes("--module", "broken", "Load")
    path = tmp_path.resolve() / "broken.py"
    assert_usage_error(
        result, f"module 'broken' failed to import: {path}:3: RuntimeError: warehouse unreachable"
    )


def test_module_import_error_exits_2_naming_file_and_line_when_syntax_error(
    run_pipes, write_file, tmp_path
):
    write_file("typo.py", "import pipes\n\nclass Load(pipes.Task:\n    pass\n")
    result = run_pipes("--module", "typo", "Load")
    path = tmp_path.resolve() / "typo.py"
    assert_usage_error(
        result, f"module 'typo' failed to import: {path}:3: SyntaxError: invalid syntax"
    )


def test_module_import_error_names_missing_dependency_when_module_imports_it(
    run_pipes, write_file, tmp_path
):
    write_file("pkg/__init__.py", "")
    write_file("pkg/flow.py", "import pk\n")  # "pkg.flow" starts with "pk": not the module itself
    result = run_pipes("--module", "pkg.flow", "Load")
    path = tmp_path.resolve() / "pkg" / "flow.py"
    assert_usage_error(
        result,
        f"module 'pkg.flow' failed to import: {path}:1: ModuleNotFoundError: No module named 'pk'",
    )


def test_unknown_task_exits_2_with_did_you_mean_when_name_is_close(run_pipes, write_file):
    write_file("flow.py", FLOW)
    result = run_pipes("--module", "flow", "Lod", "--date", "2024-01-05")
    assert_usage_error(result, "no task family named 'Lod' (did you mean Load?)")


def test_unknown_task_exits_2_suggesting_module_when_no_module_given(run_pipes):
    result = run_pipes("Load", "--date", "2024-01-05")
    assert_usage_error(
        result,
        "no task family named 'Load' (add --module MODULE to import the module that defines it)",
    )


def test_missing_task_exits_2_with_usage_when_only_options_given(run_pipes, write_file):
    write_file("flow.py", FLOW)
    result = run_pipes("--module", "flow", "--local-scheduler")
    assert_usage_error(
        result, "no task given (usage: pipes [--module MODULE] TASK [--param value ...])"
    )


# ----- bad parameters ------------------------------------------------------------------------


def test_unknown_parameter_exits_2_with_one_line_error(run_pipes, write_file):
    write_file("flow.py", FLOW)
    result = run_pipes("--module", "flow", "Load", "--dat", "2024-01-05")
    assert_usage_error(result, "unknown parameter --dat for task Load (did you mean --date?)")


def test_unknown_family_parameter_exits_2_with_did_you_mean_when_family_misspelt(
    run_pipes, write_file
):
    write_file("flow.py", FLOW)
    result = run_pipes("--module", "flow", "Load", "--date", "2024-01-05", "--Extrct-n", "3")
    assert_usage_error(
        result, "unknown parameter --Extrct-n for task Load (did you mean --Extract-n?)"
    )


def test_missing_required_parameter_exits_2_naming_it(run_pipes, write_file, tmp_path):
    write_file("flow.py", FLOW)
    result = run_pipes("--module", "flow", "Load")
    assert_usage_error(
        result, "missing parameter date of task Load (give --Load-date or set [Load] date)"
    )
    assert not (tmp_path / "out").exists()


def test_unparsable_value_exits_2_naming_the_value(run_pipes, write_file, tmp_path):
    write_file("flow.py", FLOW)
    result = run_pipes("--module", "flow", "Load", "--date", "2024-13-45")
    assert_usage_error(
        result, "parameter date of task Load: invalid date '2024-13-45' (expected YYYY-MM-DD)"
    )


def test_unparsable_family_value_exits_2_before_running_when_given_for_a_dependency(
    run_pipes, write_file, tmp_path
):
    write_file("flow.py", FLOW)
    result = run_pipes("--module", "flow", "Load", "--date", "2024-01-05", "--Extract-n=abc")
    assert_usage_error(result, "--Extract-n: invalid int 'abc' (expected an integer)")
    assert not (tmp_path / "out").exists()


# ----- bad config ----------------------------------------------------------------------------


def test_config_ini_syntax_error_exits_2_naming_file_and_line(run_pipes, write_file):
    write_file("flow.py", FLOW)
    write_file("etc/site.cfg", "[core]\nworkers = 1\nthis line has no equals sign\n")
    result = run_pipes(
        "--module",
        "flow",
        "Load",
        "--date",
        "2024-01-05",
        env={"PIPES_CONFIG_PATH": "etc/site.cfg"},
    )
    assert_usage_error(
        result,
        "etc/site.cfg:3: cannot parse 'this line has no equals sign':"
        " expected [section] or option = value",
    )


def test_config_ini_exits_2_naming_line_when_option_comes_before_any_section(run_pipes, write_file):
    write_file("flow.py", FLOW)
    write_file("pipes.cfg", "# site settings\n[core\nworkers = 1\n")
    result = run_pipes("--module", "flow", "Load", "--date", "2024-01-05")
    assert_usage_error(result, "pipes.cfg:2: '[core' is not inside a [section]")


def test_config_toml_syntax_error_exits_2_naming_file_and_line(run_pipes, write_file):
    write_file("flow.py", FLOW)
    write_file("pipes.toml", '[core]\nworkers = 1\n\n[Extract]\nn = "3\n')
    result = run_pipes("--module", "flow", "Load", "--date", "2024-01-05")
    assert_usage_error(result, "pipes.toml:5: Illegal character '\\n'")


def test_config_pyproject_syntax_error_exits_2_naming_file_and_line(run_pipes, write_file):
    write_file("flow.py", FLOW)
    write_file("pyproject.toml", "[project]\nname = 'x'\n[tool.pipes.core]\nworkers = \n")
    result = run_pipes("--module", "flow", "Load", "--date", "2024-01-05")
    assert_usage_error(result, "pyproject.toml:4: Invalid value")


def test_config_workers_exits_2_naming_file_when_not_an_integer(run_pipes, write_file):
    write_file("flow.py", FLOW)
    write_file("pipes.cfg", "[core]\nworkers = four\n")
    result = run_pipes("--module", "flow", "Load", "--date", "2024-01-05", "--log-level", "ERROR")
    assert_usage_error(result, "pipes.cfg [core] workers = 'four' is not an integer")


def test_config_exits_2_naming_variable_when_environment_variable_missing(run_pipes, write_file):
    write_file("flow.py", FLOW)
    write_file("pipes.cfg", "[Extract]\nn = ${ROWS_PER_DAY}\n")
    result = run_pipes("--module", "flow", "Load", "--date", "2024-01-05")
    assert_usage_error(
        result,
        "pipes.cfg [Extract] n: environment variable ROWS_PER_DAY is not set"
        " (set it, or give a fallback: ${ROWS_PER_DAY:-value})",
    )


def test_config_path_exits_2_when_named_file_does_not_exist(run_pipes, write_file, tmp_path):
    write_file("flow.py", FLOW)
    result = run_pipes(
        "--module", "flow", "Load", "--date", "2024-01-05", env={"PIPES_CONFIG_PATH": "prod.cfg"}
    )
    assert_usage_error(result, "config file prod.cfg does not exist (named in PIPES_CONFIG_PATH)")
    assert not (tmp_path / "out").exists()


# ----- help ----------------------------------------------------------------------------------


def test_task_help_lists_parameters_with_type_default_and_description(run_pipes, write_file):
    write_file("flow.py", FLOW)
    result = run_pipes("--module", "flow", "Extract", "--help")
    assert result.returncode == ExitCode.OK, result.stderr
    assert result.stderr == ""
    assert "usage: pipes [--module MODULE] Extract [--param value ...] [options]" in result.stdout
    lines = [" ".join(line.split()) for line in result.stdout.splitlines()]
    assert "--date VALUE date YYYY-MM-DD; required. the day to extract" in lines
    assert "--n VALUE int; default '1'. how many rows to write" in lines
    assert "--Load-date" not in result.stdout  # other families only with --help-all


def test_task_help_all_also_lists_other_family_options(run_pipes, write_file):
    write_file("flow.py", FLOW)
    result = run_pipes("--module", "flow", "Load", "--help-all")
    assert result.returncode == ExitCode.OK, result.stderr
    lines = [" ".join(line.split()) for line in result.stdout.splitlines()]
    assert "--date VALUE date YYYY-MM-DD; required. the day to load" in lines
    assert "--Extract-n VALUE int; default '1'. how many rows to write" in lines
    assert "--Extract-date VALUE date YYYY-MM-DD; required. the day to extract" in lines
    assert "--Load-date" not in result.stdout  # the root's own family: --date says it


def test_help_without_task_lists_tasks_of_module(run_pipes, write_file):
    write_file("flow.py", FLOW)
    result = run_pipes("--module", "flow", "--help")
    assert result.returncode == ExitCode.OK, result.stderr
    assert result.stdout.endswith("\ntasks:\n  Extract\n  Load\n")


# ----- exit codes of runs --------------------------------------------------------------------


def test_run_exits_0_and_rerun_does_nothing_when_everything_is_done(
    run_pipes, write_file, tmp_path
):
    write_file("flow.py", FLOW)
    args = ("--module", "flow", "Load", "--date", "2024-01-05", "--local-scheduler")
    first = run_pipes(*args, script=True)
    assert first.returncode == ExitCode.OK, first.stderr
    assert "* 2 ran" in first.stdout
    assert "verdict: SUCCESS" in first.stdout
    load = tmp_path / "out" / "load-2024-01-05.txt"
    assert load.read_text() == "1\n"
    stamp = load.stat().st_mtime_ns

    second = run_pipes(*args)
    assert second.returncode == ExitCode.OK, second.stderr
    assert "* 1 already done\n    - Load(date=2024-01-05)\n" in second.stdout
    assert " ran" not in second.stdout
    assert load.stat().st_mtime_ns == stamp


def test_run_exits_3_and_finishes_other_branch_when_a_task_run_raises(
    run_pipes, write_file, tmp_path
):
    write_file("outcomes.py", OUTCOMES)
    result = run_pipes("--module", "outcomes", "Failing")
    assert result.returncode == ExitCode.TASK_FAILED, result.stderr
    assert "Boom() failed\nTraceback (most recent call last):" in result.stderr
    assert "ValueError: kaboom in run" in result.stderr
    assert "pipes: error" not in result.stderr
    assert (tmp_path / "out" / "good.txt").read_text() == "ok"
    assert not (tmp_path / "out" / "after-boom.txt").exists()
    assert "* 1 ran\n    - Good()\n" in result.stdout
    assert "* 1 failed\n    - Boom(): ValueError: kaboom in run\n" in result.stdout
    assert "* 2 not run: upstream failed\n    - Failing()\n    - AfterBoom()\n" in result.stdout
    assert "verdict: FAILED (exit 3)" in result.stdout


def test_run_exits_4_when_external_data_is_missing_and_0_once_it_lands(
    run_pipes, write_file, tmp_path
):
    write_file("outcomes.py", OUTCOMES)
    missing = run_pipes("--module", "outcomes", "UseLanded")
    assert missing.returncode == ExitCode.MISSING_EXTERNAL, missing.stderr
    assert "Traceback" not in missing.stderr
    assert "* 1 missing external data\n    - Landed()\n" in missing.stdout
    assert "* 1 not run: upstream data missing\n    - UseLanded()\n" in missing.stdout

    write_file("in/landed.txt", "rows\n")
    landed = run_pipes("--module", "outcomes", "UseLanded")
    assert landed.returncode == ExitCode.OK, landed.stderr
    assert (tmp_path / "out" / "use-landed.txt").read_text() == "used"


def test_run_exits_5_and_finishes_other_branch_when_requires_or_complete_raises(
    run_pipes, write_file, tmp_path
):
    write_file("outcomes.py", OUTCOMES)
    result = run_pipes("--module", "outcomes", "Broken")
    assert result.returncode == ExitCode.SCHEDULING_ERROR, result.stderr
    assert "cannot schedule BadRequires(): 'no such partition'" in result.stderr
    assert "KeyError: 'no such partition'" in result.stderr
    assert "cannot schedule BadComplete(): cannot stat the bucket" in result.stderr
    assert (tmp_path / "out" / "good.txt").read_text() == "ok"
    assert (
        "* 2 scheduling error\n    - BadRequires(): KeyError: 'no such partition'\n"
        "    - BadComplete(): OSError: cannot stat the bucket\n"
    ) in result.stdout
    assert "verdict: SCHEDULING_FAILED (exit 5)" in result.stdout


def test_run_exits_130_leaving_no_partial_output_when_interrupted(run_pipes, write_file, tmp_path):
    write_file(
        "slow.py",
        """
        import os
        import signal

        import pipes


        class Slow(pipes.Task):
            def output(self):
                return pipes.LocalTarget("out/slow.txt")

            def run(self):
                with self.output().open("w") as out:
                    out.write("half a file")
                    os.kill(os.getpid(), signal.SIGINT)
        """,
    )
    result = run_pipes("--module", "slow", "Slow")
    assert result.returncode == ExitCode.INTERRUPTED, result.stderr
    assert result.stderr.endswith("pipes: interrupted\n")
    assert "Traceback" not in result.stderr
    assert list(tmp_path.glob("out/*")) == []  # the atomic write never moved into place


# ----- where parameter values come from ------------------------------------------------------


def test_config_files_override_each_other_in_read_order(run_pipes, write_file, tmp_path):
    write_file("leaves.py", LEAVES)
    write_file(
        "pipes.cfg",
        """
        [FromCfg]
        n = 2
        [FromToml]
        n = 2
        [FromPyproject]
        n = 2
        [FromEnvPath]
        n = 2
        """,
    )
    write_file("pipes.toml", "[FromToml]\nn = 3\n[FromPyproject]\nn = 3\n[FromEnvPath]\nn = 3\n")
    write_file(
        "pyproject.toml",
        """
        [project]
        name = "x"

        [tool.pipes.FromPyproject]
        n = 4

        [tool.pipes.FromEnvPath]
        n = 4
        """,
    )
    write_file("conf/extra.cfg", "[FromEnvPath]\nn = 5\n")
    result = run_pipes("--module", "leaves", "Root", env={"PIPES_CONFIG_PATH": "conf/extra.cfg"})
    assert result.returncode == ExitCode.OK, result.stderr
    assert leaf_values(tmp_path) == {
        "FromDefault": "1", "FromCfg": "2", "FromToml": "3", "FromPyproject": "4",
        "FromEnvPath": "5", "FromCmdline": "1", "FromConstructor": "7", "Root": "1",
    }  # fmt: skip


def test_command_line_beats_config_and_constructor_beats_command_line(
    run_pipes, write_file, tmp_path
):
    write_file("leaves.py", LEAVES)
    write_file("pipes.toml", "[FromCmdline]\nn = 2\n[FromConstructor]\nn = 2\n[Root]\nn = 2\n")
    result = run_pipes(
        "--module", "leaves", "Root", "--FromCmdline-n", "6", "--FromConstructor-n", "6",
        "--Root-n", "9", "--n", "8",
    )  # fmt: skip
    assert result.returncode == ExitCode.OK, result.stderr
    values = leaf_values(tmp_path)
    assert values["FromCmdline"] == "6"  # --Family-n beats [Family] n
    assert values["FromConstructor"] == "7"  # requires() passed n=7: beats --Family-n
    assert values["Root"] == "8"  # --n beats --Root-n beats [Root] n


def test_family_option_sets_root_task_when_no_plain_option_given(run_pipes, write_file, tmp_path):
    write_file("leaves.py", LEAVES)
    result = run_pipes("--module", "leaves", "FromDefault", "--FromDefault-n", "9")
    assert result.returncode == ExitCode.OK, result.stderr
    assert leaf_values(tmp_path) == {"FromDefault": "9"}


def test_config_interpolates_environment_variables_and_fallbacks(run_pipes, write_file, tmp_path):
    write_file("leaves.py", LEAVES)
    write_file("pipes.cfg", "[FromCfg]\nn = ${LEAF_N}\n[FromToml]\nn = ${NOT_SET_ANYWHERE:-3}\n")
    write_file("pyproject.toml", '[tool.pipes.FromPyproject]\nn = "${LEAF_N}0"\n')
    result = run_pipes("--module", "leaves", "Root", env={"LEAF_N": "11"})
    assert result.returncode == ExitCode.OK, result.stderr
    values = leaf_values(tmp_path)
    assert (values["FromCfg"], values["FromToml"], values["FromPyproject"]) == ("11", "3", "110")


# ----- python -m pipes and the console script ------------------------------------------------


@pytest.mark.parametrize("script", [False, True], ids=["python-m-pipes", "pipes-script"])
def test_entry_point_reports_unknown_parameter_the_same_way(run_pipes, write_file, script):
    write_file("flow.py", FLOW)
    result = run_pipes(
        "--module", "flow", "Extract", "--date", "2024-01-05", "--m", "3", script=script
    )
    assert_usage_error(result, "unknown parameter --m for task Extract (did you mean --n?)")
