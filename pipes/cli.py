"""The `pipes` command: parse a command line, run the task it names, exit with a meaningful code.

This is the one module that configures logging and calls sys.exit; pipes.run(argv) does
everything else and returns the RunResult (or raises a PipesError) for scripts and tests.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import importlib.metadata
import inspect
import logging
import os
import sys
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, NoReturn

from pipes import overrides, task_register
from pipes.config import get_config, warn_unknown
from pipes.config_flags import apply_config_flags, check_config_flags
from pipes.exceptions import ParameterError, PipesError, UnknownTaskError, UsageError
from pipes.exit_codes import ExitCode
from pipes.interface import execute, locked, warn_config
from pipes.options import lock_options
from pipes.parameter import Parameter, ParameterVisibility, UnknownParameterException
from pipes.summary import RunResult, check_retcodes, configured_code
from pipes.task import Config, Task
from pipes.tools.deps import dependency_tree, dry_run
from pipes.worker.worker import WorkerTerminated

GLOBAL_WITH_VALUE = {
    "--module",
    "--workers",
    "--log-level",
    "--scheduler-url",
    "--lock-size",
    "--lock-pid-dir",
}
GLOBAL_FLAGS = {
    "--local-scheduler",
    "--detailed-summary",
    "--help",
    "-h",
    "--help-all",
    "--assistant",
    "--dry-run",
    "--version",
    "--no-lock",
    "--take-lock",
}
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class _Parser(argparse.ArgumentParser):
    """argparse that raises UsageError (one line) instead of printing usage and exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _global_parser(add_help: bool) -> _Parser:
    parser = _Parser(
        prog="pipes",
        add_help=False,
        allow_abbrev=False,
        usage="pipes [--module MODULE] TASK [--param value ...] [options]",
        description="Run a pipes task and everything it needs that is not complete yet.",
        epilog="pipes deps [--module MODULE] TASK [--param value ...] prints the task's"
        " dependency tree and runs nothing. pipes schedule FILE starts runs at the times"
        " a schedule file gives (docs/cron.md).",
    )
    group = parser.add_argument_group("options")
    group.add_argument("--module", help="import this module to find the task")
    group.add_argument(
        "--workers", type=int, help="tasks to run at once (default: [core] workers or 1)"
    )
    group.add_argument(
        "--local-scheduler", action="store_true", help="use the in-process scheduler"
    )
    group.add_argument("--scheduler-url", help="URL of a pipesd scheduler")
    group.add_argument("--log-level", type=str.upper, choices=LOG_LEVELS, help="default: INFO")
    group.add_argument(
        "--detailed-summary", action="store_true", help="list every task in the summary"
    )
    group.add_argument(
        "--dry-run", action="store_true", help="print the tasks a run would run, run nothing"
    )
    group.add_argument(
        "--assistant",
        action="store_true",
        help="with no TASK: run any task the scheduler has, until stopped",
    )
    _add_lock_options(parser)
    group.add_argument("--version", action="store_true", help="print the version")
    if add_help:
        group.add_argument(
            "-h", "--help", action="store_true", help="show this help (with a task: its parameters)"
        )
        group.add_argument(
            "--help-all", action="store_true", help="also list every --Family-param option"
        )
    return parser


def _add_lock_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("run lock (see docs/cron.md)")
    group.add_argument(
        "--no-lock",
        action="store_true",
        default=None,
        help="run even if the same task is already running here",
    )
    group.add_argument(
        "--lock-size", type=int, metavar="N", help="allow N runs of the same task at once"
    )
    group.add_argument(
        "--lock-pid-dir", metavar="DIR", help="where pid files live (default: a per-user dir)"
    )
    group.add_argument(
        "--take-lock",
        action="store_true",
        default=None,
        help="ask the running run to finish its running tasks and exit, then run",
    )


def package_version() -> str:
    """The installed distribution's version (what `--version` prints)."""
    try:
        return importlib.metadata.version("pipes")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree, not installed
        return "unknown (not installed)"


def split_task_name(argv: Sequence[str]) -> tuple[str | None, list[str]]:
    """The task family (first bare word that is not an option's value) and the other words."""
    rest: list[str] = []
    index = 0
    while index < len(argv):
        word = argv[index]
        if not word.startswith("-"):
            return word, rest + list(argv[index + 1 :])
        rest.append(word)
        if word in GLOBAL_WITH_VALUE and index + 1 < len(argv):
            rest.append(argv[index + 1])
            index += 1
        elif word not in GLOBAL_FLAGS and "=" not in word and index + 1 < len(argv):
            if not argv[index + 1].startswith("-"):  # a task parameter's value
                rest.append(argv[index + 1])
                index += 1
        index += 1
    return None, rest


def import_module(name: str) -> None:
    """Import the user's module; any failure is a one-line UsageError naming file and line."""
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as err:
        if err.name and (name == err.name or name.startswith(err.name + ".")):
            raise UsageError(
                f"cannot import module {name!r}: no module named {err.name!r}"
            ) from err
        raise UsageError(f"module {name!r} failed to import: {_located(err)}") from err
    except SyntaxError as err:  # its file and line are in the error, not in the traceback
        where = f"{err.filename}:{err.lineno}: " if err.filename else ""
        raise UsageError(
            f"module {name!r} failed to import: {where}{type(err).__name__}: {err.msg}"
        ) from err
    except Exception as err:
        raise UsageError(f"module {name!r} failed to import: {_located(err)}") from err


def _located(err: BaseException) -> str:
    """'file:line: Type: message' for the frame that raised, so a one-line error is enough."""
    machinery = os.path.dirname(importlib.__file__)
    frames = traceback.extract_tb(err.__traceback__)
    user = [f for f in frames if not f.filename.startswith((machinery, "<frozen"))]
    where = f"{user[-1].filename}:{user[-1].lineno}: " if user else ""
    return f"{where}{type(err).__name__}: {err}"


# Task families pipes itself defines, by the module that defines them.
BUILTIN_TASKS = dict.fromkeys(
    ("RangeDaily", "RangeHourly", "RangeByMinutes", "RangeMonthly"), "pipes.tools.range"
)


def find_task_class(name: str, module: str | None) -> type[Task]:
    """The task class for a family name, importing `pkg.mod` from `pkg.mod.Task` if needed."""
    try:
        return task_register.get_task_cls(name)
    except UnknownTaskError as err:
        if name in BUILTIN_TASKS:  # imported only when named, so they add no --Family-params
            importlib.import_module(BUILTIN_TASKS[name])
            return task_register.get_task_cls(name)
        package, _, _ = name.rpartition(".")
        if not package and not module:
            hint = "add --module MODULE to import the module that defines it"
            raise UnknownTaskError(f"{err} ({hint})") from None
        if not package:
            raise
    import_module(package)
    return task_register.get_task_cls(name)


def _help_for(param: Parameter) -> str:
    text = param.type_name
    if param.has_default:
        default = param.serialize(param.default)
        text += f"; default {default!r}" if default != "" else "; default empty"
    else:
        text += "; required"
    if param.description:
        text += f". {param.description}"
    return text


def _add_param(
    parser: argparse._ArgumentGroup, flag: str, dest: str, param: Parameter, shown: bool
) -> None:
    options: dict[str, Any] = {"dest": dest, "default": None, "metavar": "VALUE"}
    options["help"] = _help_for(param) if shown else argparse.SUPPRESS
    if not param.takes_value:
        options.update(nargs="?", const="true", metavar="BOOL")
    parser.add_argument(flag, **options)


def _task_parser(cls: type[Task], help_all: bool) -> _Parser:
    parser = _global_parser(add_help=True)
    family = cls.get_task_family()
    group = parser.add_argument_group(f"parameters of {family}")
    for name, param in cls.get_params():
        if param.visibility != ParameterVisibility.PRIVATE:
            _add_param(group, f"--{name.replace('_', '-')}", f"{family}\0{name}", param, True)
    everyone = parser.add_argument_group("parameters of every task (--Family-param)")
    for other in task_register.all_task_classes():
        other_family = other.get_task_family()
        for name, param in other.get_params():
            flag = f"--{other_family}-{name.replace('_', '-')}"
            if param.visibility != ParameterVisibility.PRIVATE:
                # the root's own --Family-param is accepted (luigi does) but --param says it shorter
                shown = help_all and other is not cls
                _add_param(everyone, flag, f"{other_family}\0{name}\0global", param, shown)
    return parser


def _task_description(cls: type[Task]) -> str:
    """The first paragraph of the task class's own docstring (not one it inherits)."""
    doc = cls.__dict__.get("__doc__")
    if not doc:
        return ""
    first = inspect.cleandoc(doc).split("\n\n")[0]
    return f"{cls.get_task_family()}: {' '.join(first.split())}"


def _unknown_option_error(cls: type[Task], unknown: list[str]) -> UsageError:
    word = next((w for w in unknown if w.startswith("-")), unknown[0])
    family = cls.get_task_family()
    if not word.startswith("-"):
        return UsageError(f"unexpected argument {word!r} for task {family}")
    options = [f"--{name.replace('_', '-')}" for name, _ in cls.get_params()]
    if word[2:3].isupper():  # looks like --Family-param: suggest among every family's options
        options = [
            f"--{other.get_task_family()}-{name.replace('_', '-')}"
            for other in task_register.all_task_classes()
            for name, _ in other.get_params()
        ]
    close = difflib.get_close_matches(word.split("=")[0], options, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return UnknownParameterException(
        f"unknown parameter {word.split('=')[0]} for task {family}{hint}"
    )


def _collect_values(namespace: argparse.Namespace) -> dict[str, dict[str, str]]:
    """family -> {param: text}; each value is parsed now so a bad one fails before anything runs."""
    values: dict[str, dict[str, str]] = {}
    for dest, value in vars(namespace).items():
        if "\0" not in dest or value is None:
            continue
        family, name, *scope = dest.split("\0")
        if scope:
            _check_value(family, name, value)
        current = values.setdefault(family, {})
        if not scope or name not in current:  # --param beats --Family-param
            current[name] = value
    return values


def _check_value(family: str, name: str, value: str) -> None:
    cls = next(c for c in task_register.all_task_classes() if c.get_task_family() == family)
    param = dict(cls.get_params())[name]
    try:
        param.parse(value)
    except ParameterError as err:
        raise ParameterError(f"--{family}-{name.replace('_', '-')}: {err}") from None


@dataclass(frozen=True)
class Reply:
    """What a command that runs no task writes on stdout, and its exit code."""

    text: str
    exit_code: int = ExitCode.OK


@dataclass(frozen=True)
class ScheduleCommand:
    """`pipes schedule FILE ...`: start runs at cron times."""

    argv: list[str]


@dataclass(frozen=True)
class AssistantCommand:
    """`pipes --assistant`: run any task the scheduler holds, until stopped."""

    options: argparse.Namespace


@dataclass(frozen=True)
class TaskCommand:
    """Run one root task, or with `show` only print its dependency tree or dry run."""

    cls: type[Task]
    options: argparse.Namespace  # the task parser's: global options and parameter values
    show: Literal["deps", "dry_run"] | None = None


Command = Reply | ScheduleCommand | AssistantCommand | TaskCommand


def run(argv: Sequence[str] | None = None) -> RunResult:
    """Parse and run a command line as the `pipes` command does, printing its summary.

    For scripts that end with pipes.run() as Luigi's end with luigi.run(); raises PipesError
    on bad input instead of exiting, and SystemExit after help, deps or a dry run (as luigi).
    """
    outcome = run_command(argv)
    if isinstance(outcome, Reply):
        print(outcome.text, end="", flush=True)
        raise SystemExit(outcome.exit_code)
    print(outcome.summary_text(), flush=True)
    return outcome


def run_command(argv: Sequence[str] | None = None) -> RunResult | Reply:
    """Parse a command line, then act on it; raises PipesError on bad input, prints nothing."""
    return act(parse_command(list(sys.argv[1:] if argv is None else argv)))


def parse_command(argv: list[str]) -> Command:
    """What a command line asks for; imports the task's module to find its class."""
    if os.getcwd() not in sys.path:  # like `python -m`: the user's modules sit in the cwd
        sys.path.insert(0, os.getcwd())
    if argv and argv[0] == "schedule":
        return ScheduleCommand(argv[1:])
    argv, config_flags = apply_config_flags(argv)
    show_deps = bool(argv) and argv[0] == "deps"  # `pipes deps ...`: the tree, run nothing
    name, rest = split_task_name(argv[1:] if show_deps else argv)
    options, _ = _global_parser(add_help=True).parse_known_args(rest)
    if options.version:
        return Reply(f"pipes {package_version()}\n")
    if options.module:
        import_module(options.module)
    if name is None and options.assistant:
        return AssistantCommand(options)
    if name is None and (options.help or options.help_all):
        return Reply(_global_help())
    if name is None:
        raise UsageError("no task given (usage: pipes [--module MODULE] TASK [--param value ...])")
    return _parse_task(name, rest, options, config_flags, show_deps)


def _parse_task(
    name: str, rest: list[str], options: argparse.Namespace, flags: list[str], show_deps: bool
) -> TaskCommand | Reply:
    cls = find_task_class(name, options.module)
    if issubclass(cls, Config):
        raise UsageError(f"{name} is a Config class, not a task to run")
    check_config_flags(cls, flags)
    parser = _task_parser(cls, options.help_all)
    namespace, unknown = parser.parse_known_args(rest)
    if namespace.help or namespace.help_all:
        parser.usage = (
            f"pipes [--module MODULE] {cls.get_task_family()} [--param value ...] [options]"
        )
        parser.description = _task_description(cls) or parser.description
        return Reply(parser.format_help())
    if unknown:
        raise _unknown_option_error(cls, unknown)
    show: Literal["deps", "dry_run"] | None = "deps" if show_deps else None
    return TaskCommand(cls, namespace, "dry_run" if namespace.dry_run and not show else show)


def act(command: Command) -> RunResult | Reply:
    """Do what a parsed command asks: run tasks, or describe them; prints nothing itself."""
    match command:
        case Reply():
            return command
        case ScheduleCommand(argv):
            from pipes import schedule  # cronsim and the loop load only for this command

            return Reply("", schedule.main(argv, configure_logging))
        case AssistantCommand(options):
            return _run_assistant(options)
        case TaskCommand():
            return _act_on_task(command)


def _act_on_task(command: TaskCommand) -> RunResult | Reply:
    options = command.options
    configure_logging(options.log_level)
    warn_config()
    check_retcodes()
    with overrides.cmdline_values(_collect_values(options)):
        root = command.cls()
        if command.show == "deps":
            return Reply(dependency_tree(root) + "\n")
        if command.show == "dry_run":
            return Reply(dry_run(root) + "\n")
        lock = lock_options(
            options.no_lock, options.lock_size, options.lock_pid_dir, options.take_lock
        )
        with locked([root], lock):
            result = execute(
                [root], options.workers, options.local_scheduler, options.scheduler_url
            )
    result.detailed_summary = options.detailed_summary
    return result


def _run_assistant(options: argparse.Namespace) -> RunResult:
    """Run tasks the scheduler holds, for any worker, until stopped."""
    configure_logging(options.log_level)
    url = options.scheduler_url or get_config().get("core", "scheduler_url")
    if not url:
        raise UsageError(
            "--assistant needs a scheduler: give --scheduler-url or [core] scheduler_url"
        )
    return execute([], options.workers, False, url, assistant=True)


def _global_help() -> str:
    """`pipes --help` with no task: the options, then the task families found."""
    text = _global_parser(add_help=True).format_help()
    names = [
        n
        for n in task_register.task_names()
        if not issubclass(task_register.get_task_cls(n), Config)
    ]
    return text + ("\ntasks:\n  " + "\n  ".join(names) + "\n" if names else "")


def configure_logging(level: str | None, log_file: str | None = None) -> None:
    """Log to stderr (or log_file) at the level from --log-level, [core] log_level, or INFO."""
    config = get_config()
    chosen = (level or config.get("core", "log_level") or "INFO").upper()
    if chosen not in LOG_LEVELS:
        where = config.where("core", "log_level")
        raise UsageError(f"{where} = {chosen!r} is not one of {', '.join(LOG_LEVELS)}")
    handler = logging.FileHandler(log_file) if log_file else logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LineFormatter(LOG_FORMAT, clear_progress=not log_file))
    logging.basicConfig(level=chosen, handlers=[handler], force=True)


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _LineFormatter(logging.Formatter):
    """On a terminal, each log line first clears the live progress line it would run into.

    Whether fd 2 is a terminal is asked per line: in a worker's child, fd 2 is a task's log
    file, which must not get escape codes.
    """

    def __init__(self, fmt: str, clear_progress: bool) -> None:
        super().__init__(fmt)
        self.clear_progress = clear_progress

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        return "\r\x1b[2K" + line if self.clear_progress and os.isatty(2) else line


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Entry point of the `pipes` console script."""
    try:
        outcome = run_command(argv)
    except PipesError as err:
        message = " ".join(str(err).split("\n"))
        print(f"pipes: error: {message}", file=sys.stderr)
        sys.exit(_retcode(err.exit_code))
    except KeyboardInterrupt:
        print("pipes: interrupted", file=sys.stderr)
        sys.exit(ExitCode.INTERRUPTED)
    except WorkerTerminated:
        print("pipes: terminated by SIGTERM; running tasks were stopped", file=sys.stderr)
        sys.exit(ExitCode.TERMINATED)
    except Exception:  # a bug in pipes: the traceback is what a report needs
        traceback.print_exc()
        sys.exit(_retcode(ExitCode.ERROR))
    try:
        if isinstance(outcome, Reply):
            print(outcome.text, end="")
        else:
            print(outcome.summary_text())
    except BrokenPipeError:  # `pipes ... | head`: the reader left; the exit code still counts
        sys.stdout = None
    sys.exit(outcome.exit_code)


def _retcode(code: int) -> int:
    """The [retcode] setting for an error's code; the code itself if the config is unreadable."""
    try:
        return configured_code(code)
    except PipesError:  # the config is what failed: its own code (2) was already chosen
        return code


def pipesd_main(argv: Sequence[str] | None = None) -> NoReturn:
    """Entry point of the `pipesd` console script: serves until SIGTERM, then exits 0."""
    from pipes import pipesd  # the server stack (tornado) loads only for pipesd

    def configure(level: str | None, log_file: str | None = None) -> None:
        configure_logging(level, log_file)
        warn_unknown(None)  # pipesd loads no tasks: only pipes' own sections are checked

    try:
        pipesd.start(argv, configure)
    except PipesError as err:
        message = " ".join(str(err).split("\n"))
        print(f"pipesd: error: {message}", file=sys.stderr)
        sys.exit(err.exit_code)
    sys.exit(ExitCode.OK)
