"""Configuration loading: pipes.cfg (INI), pipes.toml and [tool.pipes] merged into one view.

Files are read in order, later ones overriding earlier ones: /etc/pipes/pipes.cfg,
/etc/pipes/pipes.toml, ./pipes.cfg, ./pipes.toml, ./pyproject.toml [tool.pipes], then each
file named in PIPES_CONFIG_PATH (colon-separated). Values may use ${ENV_VAR} interpolation.
When none of those exists, Luigi's files are read instead (/etc/luigi/luigi.cfg,
/etc/luigi/luigi.toml, ./luigi.cfg, ./luigi.toml, then LUIGI_CONFIG_PATH).
Differs from luigi: a file named in PIPES_CONFIG_PATH that does not exist is a ConfigError.
"""

from __future__ import annotations

import configparser
import datetime
import difflib
import json
import logging
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from pipes.exceptions import ConfigError

if TYPE_CHECKING:
    import tomllib

logger = logging.getLogger("pipes.config")

_ENV_REF = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_TOML_POSITION = re.compile(r"\s*\(at (?:line (\d+), column \d+|end of document)\)$")


STANDARD_PATHS = (
    Path("/etc/pipes/pipes.cfg"),
    Path("/etc/pipes/pipes.toml"),
    Path("pipes.cfg"),
    Path("pipes.toml"),
    Path("pyproject.toml"),
)


def default_paths() -> list[Path]:
    """The config files pipes looks for, lowest precedence first."""
    return [*STANDARD_PATHS, *env_paths()]


def env_paths() -> list[Path]:
    """The files named in PIPES_CONFIG_PATH, which must exist (the standard ones may not)."""
    extra = os.environ.get("PIPES_CONFIG_PATH", "")
    return [Path(p) for p in extra.split(os.pathsep) if p]


def _interpolate(value: str, where: str) -> str:
    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, fallback = match.group(1), match.group(2)
        if name in os.environ:
            return os.environ[name]
        if fallback is not None:
            return fallback
        hint = f"set it, or give a fallback: ${{{name}:-value}}"
        raise ConfigError(f"{where}: environment variable {name} is not set ({hint})")

    return _ENV_REF.sub(replace, value)


def _twin(option: str) -> str:
    """The option's other spelling: dashes for underscores, or the reverse."""
    return option.replace("_", "-") if "_" in option else option.replace("-", "_")


def _toml_error(path: Path, source: str, err: tomllib.TOMLDecodeError) -> str:
    """'file:line: message' (Python 3.13's TOMLDecodeError keeps the line only in its text)."""
    message = str(err).splitlines()[0]
    match = _TOML_POSITION.search(message)
    if match:
        message = message[: match.start()]
    lineno = match.group(1) if match and match.group(1) else source.count("\n") + 1
    return f"{path}:{lineno}: {message}"


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value, default=str)  # TOML dates and times become ISO strings
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    return str(value)


class Config:
    """A merged, read-mostly view of every config file: section -> option -> string value."""

    def __init__(self) -> None:
        self._sections: dict[str, dict[str, str]] = {}
        self._origins: dict[tuple[str, str], Path] = {}
        self._tables: set[tuple[str, str]] = set()  # TOML [a.b] also sets option b of [a]
        self.loaded_paths: list[Path] = []
        self.notes: list[str] = []  # INFO lines for warn_unknown(), e.g. which Luigi file was read

    def read(self, paths: Iterable[Path | str], named_in: str | None = None) -> Config:
        """Merge each file into this view; raises ConfigError naming the file and line.

        A missing file is skipped, unless named_in says where it was asked for by name.
        """
        for raw in paths:
            path = Path(raw)
            if not path.is_file():
                if named_in:
                    what = "is not a file" if path.exists() else "does not exist"
                    raise ConfigError(f"config file {path} {what} (named in {named_in})")
                continue
            if path.suffix == ".toml":
                self._read_toml(path)
            else:
                self._read_ini(path)
            self.loaded_paths.append(path)
        return self

    def _read_ini(self, path: Path) -> None:
        parser = configparser.ConfigParser(interpolation=None, strict=False)
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        try:
            with path.open(encoding="utf-8") as file:  # parser.read() would skip an unreadable file
                parser.read_file(file, source=str(path))
        except configparser.MissingSectionHeaderError as err:
            line = err.line.strip()
            raise ConfigError(f"{path}:{err.lineno}: {line!r} is not inside a [section]") from err
        except configparser.ParsingError as err:
            lineno, line = err.errors[0] if err.errors else ("?", "")
            shown = f"{path}:{lineno}: cannot parse {line.strip()!r}"
            raise ConfigError(f"{shown}: expected [section] or option = value") from err
        except (configparser.Error, OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"{path}: {err}".splitlines()[0]) from err
        for section in parser.sections():
            for option, value in parser.items(section, raw=True):
                where = f"{path} [{section}] {option}"
                self.set(section, option, _interpolate(value, where), origin=path)

    def _read_toml(self, path: Path) -> None:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"{path}: {err}") from err
        import tomllib  # here: only TOML files need it, and `import pipes` stays fast

        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(_toml_error(path, text, err)) from err
        if path.name == "pyproject.toml":
            data = data.get("tool", {}).get("pipes", {})
        for section, options in data.items():
            if not isinstance(options, dict):
                raise ConfigError(f"{path}: top-level key {section!r} must be a [section] table")
            self._set_toml_section(path, section, options)

    def _set_toml_section(self, path: Path, section: str, options: dict[str, object]) -> None:
        for option, value in options.items():
            where = f"{path} [{section}] {option}"
            self.set(section, option, _interpolate(_toml_value(value), where), origin=path)
            if isinstance(value, dict):
                self._tables.add((section, option))
                # TOML nests [ns.Family] in [ns]; also expose it as section ns.Family
                self._set_toml_section(path, f"{section}.{option}", value)

    def set(self, section: str, option: str, value: str, origin: Path | None = None) -> None:
        """Set one value, replacing its dash/underscore twin so the latest setting wins."""
        options = self._sections.setdefault(section, {})
        twin = _twin(option)
        options.pop(twin, None)
        self._origins.pop((section, twin), None)
        options[option] = value
        if origin is None:
            self._origins.pop((section, option), None)
        else:
            self._origins[(section, option)] = origin

    def where(self, section: str, option: str) -> str:
        """Where an option is set, for messages: 'pipes.cfg [core] workers'."""
        options = self._sections.get(section, {})
        name = option if option in options else _twin(option)
        origin = self._origins.get((section, name))
        return f"{origin} [{section}] {name}" if origin else f"[{section}] {name}"

    def get(self, section: str, option: str, default: str | None = None) -> str | None:
        """The raw string value, also found under the option's dash/underscore twin."""
        options = self._sections.get(section)
        if not options:
            return default
        if option in options:
            return options[option]
        return options.get(_twin(option), default)

    def sections(self) -> dict[str, list[str]]:
        """Each section with the options set in it (TOML sub-tables are their own section)."""
        found = {
            name: [o for o in options if (name, o) not in self._tables]
            for name, options in self._sections.items()
        }
        return {name: options for name, options in found.items() if options}

    def origin(self, section: str) -> str:
        """'file ' for the file that set some option of a section, for messages; else ''."""
        for (name, _), path in self._origins.items():
            if name == section:
                return f"{path} "
        return ""

    def has_option(self, section: str, option: str) -> bool:
        """True when the option is set in the section."""
        return self.get(section, option) is not None

    def section(self, section: str) -> dict[str, str]:
        """A copy of every option of one section."""
        return dict(self._sections.get(section, {}))

    def getint(self, section: str, option: str, default: int) -> int:
        """An integer option; a value that is not an integer is a ConfigError."""
        value = self.get(section, option)
        if value is None:
            return default
        try:
            return int(value)
        except ValueError:
            raise ConfigError(
                f"{self.where(section, option)} = {value!r} is not an integer"
            ) from None

    def getfloat(self, section: str, option: str, default: float) -> float:
        """A float option; a value that is not a number is a ConfigError."""
        value = self.get(section, option)
        if value is None:
            return default
        try:
            return float(value)
        except ValueError:
            raise ConfigError(
                f"{self.where(section, option)} = {value!r} is not a number"
            ) from None

    def getboolean(self, section: str, option: str, default: bool) -> bool:
        """A boolean option (true/false, yes/no, on/off, 1/0)."""
        value = self.get(section, option)
        if value is None:
            return default
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise ConfigError(
            f"{self.where(section, option)} = {value!r} is not true or false"
            " (use true/false, yes/no, on/off or 1/0)"
        )


# Every option pipes reads in its own sections. A test checks each config.get*() call in
# pipes/ against this table, so a new option cannot be forgotten here.
KNOWN_OPTIONS: dict[str, frozenset[str]] = {
    "core": frozenset(
        {
            "workers",
            "log_level",
            "scheduler_url",
            "scheduler_token",
            "rpc_connect_seconds",
            "rpc_retry_seconds",
            "no_lock",
            "lock_size",
            "lock_pid_dir",
            "take_lock",
        }
    ),
    "worker": frozenset(
        {
            "check_complete_on_run",
            "check_complete_timeout",
            "keep_alive",
            "wait_interval",
            "timeout",
            "force_multiprocessing",
            "max_tasks_per_child",
            "max_child_rss_mb",
            "task_log_dir",
            "ping_interval",
            "check_complete_concurrency",
            "cache_task_completion",
            "get_work_batch",
            "get_work_batch_seconds",
            "progress",
            "progress_every",
            "retry_external_tasks",
        }
    ),
    "scheduler": frozenset(
        {
            "retry_delay",
            "retry_count",
            "disable_window",
            "disable_persist",
            "worker_disconnect_delay",
            "remove_delay",
            "address",
            "port",
            "state_path",
            "auth_token",
            "public_read",
            "max_body_mb",
            "max_body_bytes",
            "max_json_items",
            "max_connections",
            "header_timeout",
            "idle_timeout",
            "body_timeout",
            "allowed_hosts",
            "history_days",
            "luigi_api",
        }
    ),
    "pipesd": frozenset({"luigi_api"}),  # the name issue 15 gives; [scheduler] luigi_api too
    "email": frozenset({"receiver", "sender", "prefix", "format", "batch"}),
    "smtp": frozenset({"host", "port", "ssl", "no_tls", "username", "password", "timeout"}),
    "batch_email": frozenset({"email_interval", "error_lines"}),
    "webhook": frozenset({"url", "timeout"}),
    "spark": frozenset(  # pipes.contrib.spark (docs/spark.md)
        {
            "spark_submit",
            "master",
            "deploy_mode",
            "jars",
            "packages",
            "py_files",
            "files",
            "archives",
            "conf",
            "properties_file",
            "driver_memory",
            "executor_memory",
            "driver_cores",
            "executor_cores",
            "num_executors",
            "total_executor_cores",
            "queue",
            "hadoop_conf_dir",
            "hadoop_user_name",
        }
    ),
    "retcode": frozenset(
        {
            "already_running",
            "missing_data",
            "not_run",
            "task_failed",
            "scheduling_error",
            "unhandled_exception",
        }
    ),
}
# [resources]: any option name is a resource. The pipes.contrib sections are checked by
# contrib itself, and pipes may run without contrib loaded.
OPEN_SECTIONS = frozenset({"resources", "hdfs", "webhdfs", "hadoop", "s3"})
# Sections Luigi reads that pipes deliberately does not: a Luigi shop's config keeps them,
# so they get one INFO line in all, not a warning each.
LUIGI_SECTIONS = frozenset(
    {
        "bigquery",
        "cors",
        "datadog",
        "ecs",
        "elasticsearch",
        "execution_summary",
        "hive",
        "kubernetes",
        "logging",
        "lsf",
        "mysql",
        "pig",
        "postgres",
        "prometheus",
        "redshift",
        "scalding",
        "sendgrid",
        "sge",
        "task_history",
    }
)
LUIGI_OPTION_HINTS = {  # Luigi's spelling of an option pipes reads under another name
    ("core", "default_scheduler_url"): "scheduler_url",
    ("core", "default_scheduler_host"): "scheduler_url",
    ("core", "default_scheduler_port"): "scheduler_url",
    ("core", "parallel_scheduling_processes"): "workers",
}


def unknown_settings(config: Config, families: dict[str, set[str]] | None) -> list[str]:
    """One message per unknown section or option, with a 'did you mean' where one is close.

    `families` maps each task family (and config_path section) to the options it reads;
    None (pipesd, which loads no tasks) checks only pipes' own sections.
    """
    known = {name: set(options) for name, options in KNOWN_OPTIONS.items()}
    for name, reads in (families or {}).items():
        known.setdefault(name, set()).update(reads)
    messages: list[str] = []
    luigi: list[str] = []
    for section, options in config.sections().items():
        if section in OPEN_SECTIONS or (families is None and section not in known):
            continue
        if section not in known:
            if section.lower() in LUIGI_SECTIONS:
                luigi.append(f"[{section}]")
            else:
                messages.append(_unknown_section(config, section, list(known)))
            continue
        for option in options:
            if option.replace("-", "_") not in known[section]:
                messages.append(_unknown_option(config, section, option, known[section]))
    if luigi:
        messages.append(
            f"pipes does not read Luigi's {', '.join(luigi)} (see docs/coming-from-luigi.md)"
        )
    return messages


def _unknown_section(config: Config, section: str, known: list[str]) -> str:
    origin = config.origin(section)
    close = difflib.get_close_matches(section, known, n=1)
    hint = f" (did you mean [{close[0]}]?)" if close else " (no task family or pipes section)"
    return f"{origin}[{section}]: unknown section, ignored{hint}"


def _unknown_option(config: Config, section: str, option: str, known: set[str]) -> str:
    luigi = LUIGI_OPTION_HINTS.get((section, option.replace("-", "_")))
    close = difflib.get_close_matches(option.replace("-", "_"), sorted(known), n=1)
    if luigi:
        hint = f" (a Luigi option: pipes reads [{section}] {luigi})"
    else:
        hint = f" (did you mean {close[0]}?)" if close else ""
    return f"{config.where(section, option)}: unknown option, ignored{hint}"


_warned: set[str] = set()


def warn_unknown(families: dict[str, set[str]] | None) -> None:
    """Log each unknown_settings message once per process (the Luigi line at INFO)."""
    for note in get_config().notes:
        if note not in _warned:
            _warned.add(note)
            logger.info("%s", note)
    for message in unknown_settings(get_config(), families):
        if message in _warned:
            continue
        _warned.add(message)
        level = logging.INFO if message.startswith("pipes does not read Luigi") else logging.WARNING
        logger.log(level, "%s", message)


_config: Config | None = None


def get_config() -> Config:
    """The process-wide configuration, loaded on first use."""
    global _config
    if _config is None:
        _config = _load()
    return _config


def reload_config(extra_paths: Iterable[Path | str] = ()) -> Config:
    """Forget the loaded configuration and read every file again (plus extra_paths)."""
    global _config
    _config = _load(extra_paths)
    return _config


# Luigi's file names, read only when none of pipes' own files exists, so a Luigi project
# ports without renaming its config (issue 13).
LUIGI_PATHS = (
    Path("/etc/luigi/luigi.cfg"),
    Path("/etc/luigi/luigi.toml"),
    Path("luigi.cfg"),
    Path("luigi.toml"),
)
_added_paths: list[Path] = []  # pipes.configuration.add_config_path() adds here


def luigi_paths() -> list[Path]:
    """Luigi's standard files, then each file named in LUIGI_CONFIG_PATH."""
    extra = os.environ.get("LUIGI_CONFIG_PATH", "")
    return [*LUIGI_PATHS, *(Path(p) for p in extra.split(os.pathsep) if p)]


def _load(extra_paths: Iterable[Path | str] = ()) -> Config:
    config = Config().read(STANDARD_PATHS).read(env_paths(), named_in="PIPES_CONFIG_PATH")
    own = [p for p in config.loaded_paths if p.name != "pyproject.toml"]
    if not own and not config.sections():  # a pyproject.toml without [tool.pipes] is not ours
        config.read(LUIGI_PATHS)
        config.read(luigi_paths()[len(LUIGI_PATHS) :], named_in="LUIGI_CONFIG_PATH")
        luigi = [p for p in config.loaded_paths if p.name != "pyproject.toml"]
        if luigi:
            names = ", ".join(str(p) for p in luigi)
            # logged by warn_unknown(), once logging is set up (loading comes first)
            config.notes.append(f"no pipes config file found; read Luigi's {names}")
    config.read(_added_paths, named_in="add_config_path()")
    return config.read(extra_paths, named_in="reload_config()")
