"""Config options given as command-line flags: `--<section>-<option> [value]`, as Luigi allows.

Luigi's config classes (worker, scheduler, core, retcode, email) take their options from the
command line too (issue 13); this sets them in the process-wide config before the task runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pipes.config import KNOWN_OPTIONS, get_config
from pipes.exceptions import UsageError

if TYPE_CHECKING:
    from pipes.task import Task

CONFIG_FLAG_SECTIONS = ("worker", "scheduler", "core", "retcode", "email")
CONFIG_BOOLEANS = {
    ("worker", "keep_alive"),
    ("worker", "retry_external_tasks"),
    ("worker", "force_multiprocessing"),
    ("worker", "check_complete_on_run"),
    ("worker", "cache_task_completion"),
    ("worker", "progress"),
    ("scheduler", "disable_persist_on_restart"),
    ("scheduler", "public_read"),
    ("core", "no_lock"),
    ("core", "take_lock"),
    ("email", "batch"),
}


def _config_flag(word: str) -> tuple[str, str] | None:
    """(section, option) for a --<section>-<option> flag naming a known option, else None."""
    name = word[2:].split("=", 1)[0].replace("-", "_")
    for section in CONFIG_FLAG_SECTIONS:
        option = name.removeprefix(section + "_")
        if option != name and option in KNOWN_OPTIONS[section]:
            return section, option
    return None


def apply_config_flags(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Set each --<section>-<option> [value] in the process-wide config.

    Returns the other words and the flags taken. A boolean option given without a value
    means true, as in Luigi.
    """
    rest: list[str] = []
    taken: list[str] = []
    index = 0
    while index < len(argv):
        word = argv[index]
        found = _config_flag(word) if word.startswith("--") else None
        if found is None:
            rest.append(word)
            index += 1
            continue
        if "=" in word:
            value = word.split("=", 1)[1]
        elif found in CONFIG_BOOLEANS:
            following = argv[index + 1] if index + 1 < len(argv) else ""
            is_bool = following.lower() in ("true", "false")
            value, index = (following, index + 1) if is_bool else ("true", index)
        elif index + 1 < len(argv):
            value, index = argv[index + 1], index + 1
        else:
            raise UsageError(f"{word} needs a value")
        get_config().set(*found, value)
        taken.append(word.split("=", 1)[0])
        index += 1
    return rest, taken


def check_config_flags(cls: type[Task], taken: list[str]) -> None:
    """UsageError when a config flag taken is also a parameter of the task to run."""
    for name, _ in cls.get_params():
        flag = f"--{name.replace('_', '-')}"
        if flag in taken:
            family = cls.get_task_family()
            raise UsageError(
                f"{flag} is both a config option and a parameter of {family}:"
                f" give the parameter as --{family}-{flag[2:]}"
            )
