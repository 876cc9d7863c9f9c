"""Unit tests of pipes.config.Config: read order, the three file formats, typed getters, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipes import config
from pipes.config import Config
from pipes.exceptions import ConfigError
from pipes.exit_codes import ExitCode


def read(*paths):
    return Config().read(paths)


# ----- read order and formats ----------------------------------------------------------------


def test_read_later_file_overrides_earlier_when_both_set_an_option(write_file):
    first = write_file("a.cfg", "[core]\nworkers = 1\nlog_level = DEBUG\n")
    second = write_file("b.toml", "[core]\nworkers = 4\n")
    loaded = read(first, second)
    assert loaded.get("core", "workers") == "4"
    assert loaded.get("core", "log_level") == "DEBUG"
    assert loaded.loaded_paths == [first, second]


def test_read_skips_missing_files_when_not_named(write_file, tmp_path):
    present = write_file("pipes.cfg", "[core]\nworkers = 2\n")
    loaded = read(tmp_path / "absent.cfg", present)
    assert loaded.get("core", "workers") == "2"
    assert loaded.loaded_paths == [present]


def test_read_raises_config_error_when_named_file_is_missing(tmp_path):
    with pytest.raises(ConfigError) as caught:
        Config().read([tmp_path / "absent.cfg"], named_in="PIPES_CONFIG_PATH")
    assert str(caught.value) == (
        f"config file {tmp_path / 'absent.cfg'} does not exist (named in PIPES_CONFIG_PATH)"
    )
    assert caught.value.exit_code == ExitCode.USAGE


def test_ini_keeps_option_case_and_percent_signs_literally(write_file):
    loaded = read(write_file("pipes.cfg", "[Extract]\nOutDir = /data/%Y\n"))
    assert loaded.get("Extract", "OutDir") == "/data/%Y"
    assert loaded.get("Extract", "outdir") is None


def test_toml_values_become_strings_when_not_strings(write_file):
    loaded = read(
        write_file(
            "pipes.toml",
            """
            [Extract]
            n = 3
            ratio = 0.5
            dry_run = true
            tables = ["a", "b"]
            name = "daily"
            """,
        )
    )
    assert loaded.section("Extract") == {
        "n": "3", "ratio": "0.5", "dry_run": "true", "tables": '["a", "b"]', "name": "daily",
    }  # fmt: skip


def test_toml_dotted_table_is_a_section_when_family_has_a_namespace(write_file):
    loaded = read(write_file("pipes.toml", "[etl.Load]\nn = 2\n"))
    assert loaded.get("etl.Load", "n") == "2"


def test_pyproject_reads_only_tool_pipes_tables(write_file):
    loaded = read(
        write_file(
            "pyproject.toml",
            """
            [project]
            name = "warehouse"

            [tool.ruff]
            line-length = 100

            [tool.pipes.core]
            workers = 3

            [tool.pipes.Extract]
            n = 5
            """,
        )
    )
    assert loaded.get("core", "workers") == "3"
    assert loaded.get("Extract", "n") == "5"
    assert loaded.get("project", "name") is None
    assert loaded.get("tool", "ruff") is None


def test_pyproject_without_tool_pipes_sets_nothing(write_file):
    loaded = read(write_file("pyproject.toml", '[project]\nname = "x"\n'))
    assert loaded.section("project") == {}


def test_toml_raises_config_error_when_top_level_key_is_not_a_table(write_file):
    path = write_file("pipes.toml", "workers = 2\n")
    with pytest.raises(ConfigError, match=r"top-level key 'workers' must be a \[section\] table"):
        read(path)


# ----- syntax errors name the file and line --------------------------------------------------


def test_ini_syntax_error_names_file_and_line(write_file):
    path = write_file("pipes.cfg", "[core]\nworkers = 2\n\nnot an option\n")
    with pytest.raises(ConfigError) as caught:
        read(path)
    assert str(caught.value) == (
        f"{path}:4: cannot parse 'not an option': expected [section] or option = value"
    )


def test_ini_error_names_line_when_option_is_outside_any_section(write_file):
    path = write_file("pipes.cfg", "workers = 2\n[core]\n")
    with pytest.raises(ConfigError) as caught:
        read(path)
    assert str(caught.value) == f"{path}:1: 'workers = 2' is not inside a [section]"


def test_toml_syntax_error_names_file_and_line(write_file):
    path = write_file("pipes.toml", "[core]\nworkers = 2\nlog_level = INFO\n")
    with pytest.raises(ConfigError) as caught:
        read(path)
    assert str(caught.value) == f"{path}:3: Invalid value"


def test_toml_syntax_error_names_last_line_when_document_ends_early(write_file):
    path = write_file("pipes.toml", "[core]\nworkers = 2\n[Extract")
    with pytest.raises(ConfigError) as caught:
        read(path)
    assert str(caught.value).startswith(f"{path}:3: ")


# ----- typed getters -------------------------------------------------------------------------


def test_getint_returns_default_when_option_is_missing():
    assert Config().getint("core", "workers", 7) == 7


def test_getint_raises_config_error_naming_file_when_value_is_not_an_integer(write_file):
    path = write_file("pipes.cfg", "[core]\nworkers = four\n")
    with pytest.raises(ConfigError) as caught:
        read(path).getint("core", "workers", 1)
    assert str(caught.value) == f"{path} [core] workers = 'four' is not an integer"


def test_getfloat_raises_config_error_when_value_is_not_a_number():
    loaded = Config()
    loaded.set("worker", "wait_interval", "soon")
    with pytest.raises(ConfigError, match=r"^\[worker\] wait_interval = 'soon' is not a number$"):
        loaded.getfloat("worker", "wait_interval", 1.0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("true", True), ("Yes", True), ("on", True), ("1", True),
     ("false", False), ("NO", False), ("off", False), ("0", False)],
)  # fmt: skip
def test_getboolean_accepts_usual_spellings(text, expected):
    loaded = Config()
    loaded.set("worker", "keep_alive", text)
    assert loaded.getboolean("worker", "keep_alive", not expected) is expected


def test_getboolean_raises_config_error_listing_spellings_when_value_is_not_boolean(write_file):
    path = write_file("pipes.toml", '[worker]\nkeep_alive = "maybe"\n')
    with pytest.raises(ConfigError) as caught:
        read(path).getboolean("worker", "keep_alive", False)
    assert str(caught.value) == (
        f"{path} [worker] keep_alive = 'maybe' is not true or false"
        " (use true/false, yes/no, on/off or 1/0)"
    )


# ----- dash/underscore twins -----------------------------------------------------------------


def test_get_finds_dash_twin_when_asked_with_underscore(write_file):
    loaded = read(write_file("pipes.cfg", "[worker]\nwait-interval = 2.5\n"))
    assert loaded.get("worker", "wait_interval") == "2.5"
    assert loaded.getfloat("worker", "wait_interval", 1.0) == 2.5
    assert loaded.has_option("worker", "wait_interval")


def test_get_finds_underscore_twin_when_asked_with_dash(write_file):
    loaded = read(write_file("pipes.toml", "[worker]\nwait_interval = 3\n"))
    assert loaded.get("worker", "wait-interval") == "3"


def test_later_twin_overrides_earlier_spelling_when_files_differ(write_file):
    site = write_file("site.cfg", "[worker]\nwait_interval = 1\n")
    local = write_file("local.cfg", "[worker]\nwait-interval = 5\n")
    loaded = read(site, local)
    assert loaded.get("worker", "wait_interval") == "5"
    assert loaded.get("worker", "wait-interval") == "5"
    assert loaded.section("worker") == {"wait-interval": "5"}


def test_getint_error_names_twin_spelling_and_file_where_it_is_set(write_file):
    path = write_file("pipes.cfg", "[scheduler]\nretry-count = many\n")
    with pytest.raises(ConfigError) as caught:
        read(path).getint("scheduler", "retry_count", 3)
    assert str(caught.value) == f"{path} [scheduler] retry-count = 'many' is not an integer"


# ----- ${ENV} interpolation -----------------------------------------------------------------


def test_interpolation_uses_environment_fallback_and_escape(write_file, monkeypatch):
    monkeypatch.setenv("PIPES_TEST_BUCKET", "s3://lake")
    monkeypatch.delenv("PIPES_TEST_UNSET", raising=False)
    loaded = read(
        write_file(
            "pipes.cfg",
            """
            [Extract]
            root = ${PIPES_TEST_BUCKET}/raw
            region = ${PIPES_TEST_UNSET:-eu-west-1}
            price = $$5
            """,
        )
    )
    assert loaded.section("Extract") == {
        "root": "s3://lake/raw", "region": "eu-west-1", "price": "$5",
    }  # fmt: skip


def test_interpolation_raises_config_error_naming_option_when_variable_is_unset(
    write_file, monkeypatch
):
    monkeypatch.delenv("PIPES_TEST_UNSET", raising=False)
    path = write_file("pipes.toml", '[Extract]\nroot = "${PIPES_TEST_UNSET}/raw"\n')
    with pytest.raises(ConfigError) as caught:
        read(path)
    assert str(caught.value) == (
        f"{path} [Extract] root: environment variable PIPES_TEST_UNSET is not set"
        " (set it, or give a fallback: ${PIPES_TEST_UNSET:-value})"
    )


# ----- the process-wide config ---------------------------------------------------------------


def test_default_paths_put_config_path_files_last(monkeypatch):
    monkeypatch.setenv("PIPES_CONFIG_PATH", "one.cfg:two.toml")
    assert config.default_paths() == [
        Path("/etc/pipes/pipes.cfg"), Path("/etc/pipes/pipes.toml"), Path("pipes.cfg"),
        Path("pipes.toml"), Path("pyproject.toml"), Path("one.cfg"), Path("two.toml"),
    ]  # fmt: skip


@pytest.mark.usefixtures("fresh_config")
def test_get_config_reads_cwd_files_then_config_path_in_order(write_file, monkeypatch):
    write_file("pipes.cfg", "[A]\nx = cfg\n[B]\nx = cfg\n[C]\nx = cfg\n[D]\nx = cfg\n")
    write_file("pipes.toml", '[B]\nx = "toml"\n[C]\nx = "toml"\n[D]\nx = "toml"\n')
    write_file(
        "pyproject.toml", '[tool.pipes.C]\nx = "pyproject"\n[tool.pipes.D]\nx = "pyproject"\n'
    )
    write_file("env.cfg", "[D]\nx = env\n")
    monkeypatch.setenv("PIPES_CONFIG_PATH", "env.cfg")
    loaded = config.get_config()
    assert [loaded.get(s, "x") for s in "ABCD"] == ["cfg", "toml", "pyproject", "env"]
    assert config.get_config() is loaded


@pytest.mark.usefixtures("fresh_config")
def test_get_config_raises_config_error_when_config_path_names_missing_file(monkeypatch):
    monkeypatch.setenv("PIPES_CONFIG_PATH", "missing.cfg")
    with pytest.raises(ConfigError, match=r"^config file missing.cfg does not exist"):
        config.get_config()


@pytest.mark.usefixtures("fresh_config")
def test_reload_config_reads_files_again_plus_extra_paths(write_file):
    write_file("pipes.cfg", "[core]\nworkers = 1\n")
    assert config.get_config().get("core", "workers") == "1"
    write_file("pipes.cfg", "[core]\nworkers = 2\n")
    extra = write_file("extra.toml", "[core]\nlog_level = 'DEBUG'\n")
    reloaded = config.reload_config([extra])
    assert config.get_config() is reloaded
    assert (reloaded.get("core", "workers"), reloaded.get("core", "log_level")) == ("2", "DEBUG")
