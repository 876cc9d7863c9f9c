"""Luigi's `luigi.cmdline_parser` at pipes' path: a command line parsed into its root task.

The parsing is the `pipes` command's own (pipes.cli); this module only runs nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

from pipes import cli, overrides
from pipes.config_flags import apply_config_flags, check_config_flags
from pipes.exceptions import UsageError
from pipes.task import Config, Task


class CmdlineParser:
    """The task class and --param values of one command line, e.g. `["Task", "--date", "..."]`.

    Raises UsageError (or ParameterError) for a bad command line, as the command would.
    """

    _instance: CmdlineParser | None = None

    def __init__(self, cmdline_args: Sequence[str]) -> None:
        argv, config_flags = apply_config_flags(list(cmdline_args))
        name, rest = cli.split_task_name(argv)
        options, _ = cli._global_parser(add_help=False).parse_known_args(rest)
        if options.module:
            cli.import_module(options.module)
        if name is None:
            raise UsageError("no task given (usage: [--module MODULE] TASK [--param value ...])")
        self.task_cls = cli.find_task_class(name, options.module)
        if issubclass(self.task_cls, Config):
            raise UsageError(f"{name} is a Config class, not a task to run")
        check_config_flags(self.task_cls, config_flags)
        namespace, unknown = cli._task_parser(self.task_cls, False).parse_known_args(rest)
        if unknown:
            raise cli._unknown_option_error(self.task_cls, unknown)
        self.known_args = namespace
        self.values = cli._collect_values(namespace)

    @classmethod
    @contextlib.contextmanager
    def global_instance(cls, cmdline_args: Sequence[str]) -> Iterator[CmdlineParser]:
        """Parse cmdline_args and keep its --Family-param values in force inside the block."""
        parser = cls(cmdline_args)
        previous, cls._instance = cls._instance, parser
        try:
            with overrides.cmdline_values(parser.values):
                yield parser
        finally:
            cls._instance = previous

    @classmethod
    def get_instance(cls) -> CmdlineParser | None:
        """The parser of the innermost global_instance block, if any."""
        return cls._instance

    def get_task_obj(self) -> Task:
        """The root task the command line names, with its parameters."""
        with overrides.cmdline_values(self.values):
            return self.task_cls()
