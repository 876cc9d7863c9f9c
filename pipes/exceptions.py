"""The one exception hierarchy: everything pipes raises on purpose derives from PipesError."""

from __future__ import annotations

from pipes.exit_codes import ExitCode


class PipesError(Exception):
    """Root of every error pipes raises on purpose."""

    exit_code: int = ExitCode.ERROR


class UsageError(PipesError):
    """The user fixes it by changing their input."""

    exit_code = ExitCode.USAGE


class ConfigError(UsageError):
    """A bad pipes.cfg / pipes.toml / [tool.pipes] file."""


class ParameterError(UsageError, ValueError):
    """A missing, unknown or unparsable task parameter."""


class UnknownTaskError(UsageError):
    """No task family by that name is registered."""


class TaskDefinitionError(UsageError, TypeError):
    """A Task class is defined or used in a way pipes cannot run."""


class CompletionTimeout(PipesError, TimeoutError):
    """A task's complete() did not return within [worker] check_complete_timeout."""

    exit_code = ExitCode.SCHEDULING_ERROR


class AlreadyRunning(PipesError):
    """Another process holds the run lock for the same tasks: this run did nothing."""

    exit_code = ExitCode.ALREADY_RUNNING


class RPCError(PipesError):
    """A call to the scheduler failed."""

    exit_code = ExitCode.SCHEDULER_UNAVAILABLE


class BadRequest(RPCError, ValueError):
    """A malformed or invalid RPC body (HTTP 400)."""


class SchedulerUnavailable(RPCError, ConnectionError):
    """The configured scheduler cannot be reached; safe to retry later."""


class StoreError(PipesError):
    """The scheduler's journal could not be read or written."""


class StoreUnavailable(StoreError):
    """The journal cannot take writes right now (HTTP 503); safe to retry later."""


class TargetError(PipesError):
    """A target or filesystem operation failed."""


class FileAlreadyExists(TargetError, FileExistsError):
    """The destination of a move or write already exists."""


class MissingParentDirectory(TargetError):
    """The parent directory of a path does not exist."""


class NotADirectory(TargetError):
    """A directory operation was given something that is not a directory."""


class TargetNotFound(TargetError, FileNotFoundError):
    """The path, key or bucket a target names does not exist."""


class TargetPermissionDenied(TargetError, PermissionError):
    """The store refused the call: wrong credentials or no permission on the path."""


class TargetUnavailable(TargetError, ConnectionError):
    """The store could not be reached or did not answer in time; safe to retry later."""


class MissingExtra(PipesError, ImportError):
    """An optional integration was used without its extra: the message names the pip command."""
