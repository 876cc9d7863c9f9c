"""Configuration loading: pipes.cfg (INI), pipes.toml and [tool.pipes] merged into one view.

Files are read in order, later ones overriding earlier ones: /etc/pipes/pipes.cfg,
/etc/pipes/pipes.toml, ./pipes.cfg, ./pipes.toml, ./pyproject.toml [tool.pipes], then each
file named in PIPES_CONFIG_PATH (colon-separated). Values may use ${ENV_VAR} interpolation.
Differs from luigi: a file named in PIPES_CONFIG_PATH that does not exist is a ConfigError.
"""

from __future__ import annotations

import configparser
import datetime
import json
import os
import re
import tomllib
from collections.abc import Iterable
from pathlib import Path

from pipes.exceptions import ConfigError

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
        self.loaded_paths: list[Path] = []

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


def _load(extra_paths: Iterable[Path | str] = ()) -> Config:
    config = Config().read(STANDARD_PATHS).read(env_paths(), named_in="PIPES_CONFIG_PATH")
    return config.read(extra_paths, named_in="reload_config()")
