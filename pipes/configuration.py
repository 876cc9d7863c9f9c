"""Luigi's `luigi.configuration` at pipes' path: a ConfigParser-like face on pipes' config.

`get_config()` returns a view of the same process-wide configuration pipes reads, so a
value set through it is what tasks and the worker see.
"""

from __future__ import annotations

import configparser
from pathlib import Path

from pipes import config as _config
from pipes.exceptions import ConfigError

_NO_DEFAULT = object()


class NoSectionError(ConfigError, configparser.NoSectionError):
    """No such config section (also a configparser.NoSectionError, as Luigi raises)."""

    def __init__(self, section: str) -> None:
        configparser.NoSectionError.__init__(self, section)


class NoOptionError(ConfigError, configparser.NoOptionError):
    """No such option in a section (also a configparser.NoOptionError, as Luigi raises)."""

    def __init__(self, option: str, section: str) -> None:
        configparser.NoOptionError.__init__(self, option, section)


class LuigiConfigParser:
    """get/getint/getfloat/getboolean/set/has_option/sections/items over pipes' Config.

    A missing option without a default raises NoSectionError or NoOptionError.
    """

    def __init__(self, view: _config.Config) -> None:
        self._view = view

    def _raw(self, section: str, option: str, default: object) -> object:
        value = self._view.get(section, option)
        if value is not None:
            return value
        if default is not _NO_DEFAULT:
            return default
        if section not in self._view.sections():
            raise NoSectionError(section)
        raise NoOptionError(option, section)

    def get(self, section: str, option: str, default: object = _NO_DEFAULT) -> object:
        """The string value, else default, else NoSectionError / NoOptionError."""
        return self._raw(section, option, default)

    def _typed(self, section: str, option: str, default: object, kind: str) -> object:
        if self._view.get(section, option) is None:
            return self._raw(section, option, default)
        getter = getattr(self._view, kind)
        return getter(section, option, None)

    def getint(self, section: str, option: str, default: object = _NO_DEFAULT) -> object:
        """An integer option; a value that is not an integer is a ConfigError."""
        return self._typed(section, option, default, "getint")

    def getfloat(self, section: str, option: str, default: object = _NO_DEFAULT) -> object:
        """A float option; a value that is not a number is a ConfigError."""
        return self._typed(section, option, default, "getfloat")

    def getboolean(self, section: str, option: str, default: object = _NO_DEFAULT) -> object:
        """A boolean option (true/false, yes/no, on/off, 1/0)."""
        return self._typed(section, option, default, "getboolean")

    def set(self, section: str, option: str, value: object) -> None:
        """Set one value for the rest of this process."""
        self._view.set(section, option, str(value))

    def has_option(self, section: str, option: str) -> bool:
        """True when the option is set in the section."""
        return self._view.has_option(section, option)

    def has_section(self, section: str) -> bool:
        """True when some option of the section is set."""
        return section in self._view.sections()

    def sections(self) -> list[str]:
        """The names of the sections that set at least one option."""
        return list(self._view.sections())

    def items(self, section: str) -> list[tuple[str, str]]:
        """(option, value) pairs of one section; NoSectionError if nothing sets it."""
        if not self.has_section(section):
            raise NoSectionError(section)
        return list(self._view.section(section).items())

    def reload(self) -> LuigiConfigParser:
        """Read every config file again."""
        self._view = _config.reload_config()
        return self


LuigiTomlParser = LuigiConfigParser  # one view over .cfg and .toml files alike


def get_config() -> LuigiConfigParser:
    """The process-wide configuration, as Luigi's get_config() gives it."""
    return LuigiConfigParser(_config.get_config())


def add_config_path(path: str | Path) -> None:
    """Read one more config file, after the standard ones (it must exist), and reload."""
    _config._added_paths.append(Path(path))
    try:
        _config.reload_config()
    except ConfigError:
        _config._added_paths.pop()
        raise
