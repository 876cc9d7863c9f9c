"""Configuration loading: pipes.cfg (INI), pipes.toml and [tool.pipes] merged into one view.

Files are read in order, later ones overriding earlier ones: /etc/pipes/pipes.cfg,
/etc/pipes/pipes.toml, ./pipes.cfg, ./pipes.toml, ./pyproject.toml [tool.pipes], then each
file named in PIPES_CONFIG_PATH (colon-separated). Values may use ${ENV_VAR} interpolation.
"""

from __future__ import annotations

import configparser
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


def default_paths() -> list[Path]:
    """The config files pipes looks for, lowest precedence first."""
    paths = [
        Path("/etc/pipes/pipes.cfg"),
        Path("/etc/pipes/pipes.toml"),
        Path("pipes.cfg"),
        Path("pipes.toml"),
        Path("pyproject.toml"),
    ]
    extra = os.environ.get("PIPES_CONFIG_PATH", "")
    paths.extend(Path(p) for p in extra.split(os.pathsep) if p)
    return paths


def _interpolate(value: str, where: str) -> str:
    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, fallback = match.group(1), match.group(2)
        if name in os.environ:
            return os.environ[name]
        if fallback is not None:
            return fallback
        raise ConfigError(f"{where}: environment variable {name} is not set")

    return _ENV_REF.sub(replace, value)


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


class Config:
    """A merged, read-mostly view of every config file: section -> option -> string value."""

    def __init__(self) -> None:
        self._sections: dict[str, dict[str, str]] = {}
        self.loaded_paths: list[Path] = []

    def read(self, paths: Iterable[Path | str]) -> Config:
        """Merge each existing file into this view; raises ConfigError naming file and line."""
        for raw in paths:
            path = Path(raw)
            if not path.is_file():
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
            parser.read(path, encoding="utf-8")
        except configparser.MissingSectionHeaderError as err:
            raise ConfigError(f"{path}:{err.lineno}: option outside any [section]") from err
        except configparser.ParsingError as err:
            lineno = err.errors[0][0] if err.errors else "?"
            raise ConfigError(f"{path}:{lineno}: cannot parse line") from err
        except (configparser.Error, UnicodeDecodeError) as err:
            raise ConfigError(f"{path}: {err}".splitlines()[0]) from err
        for section in parser.sections():
            for option, value in parser.items(section, raw=True):
                self.set(section, option, _interpolate(value, f"{path} [{section}] {option}"))

    def _read_toml(self, path: Path) -> None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"{path}:{err.lineno}: {err.msg}") from err
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"{path}: {err}") from err
        if path.name == "pyproject.toml":
            data = data.get("tool", {}).get("pipes", {})
        for section, options in data.items():
            if not isinstance(options, dict):
                raise ConfigError(f"{path}: top-level key {section!r} must be a [section] table")
            for option, value in options.items():
                where = f"{path} [{section}] {option}"
                self.set(section, option, _interpolate(_toml_value(value), where))

    def set(self, section: str, option: str, value: str) -> None:
        """Set one value (used by loading, tests and programmatic set-up)."""
        self._sections.setdefault(section, {})[option] = value

    def get(self, section: str, option: str, default: str | None = None) -> str | None:
        """The raw string value, also found under the option's dash/underscore twin."""
        options = self._sections.get(section)
        if not options:
            return default
        if option in options:
            return options[option]
        twin = option.replace("_", "-") if "_" in option else option.replace("-", "_")
        return options.get(twin, default)

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
            raise ConfigError(f"[{section}] {option} = {value!r} is not an integer") from None

    def getfloat(self, section: str, option: str, default: float) -> float:
        """A float option; a value that is not a number is a ConfigError."""
        value = self.get(section, option)
        if value is None:
            return default
        try:
            return float(value)
        except ValueError:
            raise ConfigError(f"[{section}] {option} = {value!r} is not a number") from None

    def getboolean(self, section: str, option: str, default: bool) -> bool:
        """A boolean option (true/false, yes/no, on/off, 1/0)."""
        value = self.get(section, option)
        if value is None:
            return default
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise ConfigError(f"[{section}] {option} = {value!r} is not true or false")


_config: Config | None = None


def get_config() -> Config:
    """The process-wide configuration, loaded on first use."""
    global _config
    if _config is None:
        _config = Config().read(default_paths())
    return _config


def reload_config(extra_paths: Iterable[Path | str] = ()) -> Config:
    """Forget the loaded configuration and read every file again (plus extra_paths)."""
    global _config
    _config = Config().read([*default_paths(), *extra_paths])
    return _config
