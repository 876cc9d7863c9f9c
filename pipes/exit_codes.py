"""Process exit codes for `pipes` runs, chosen so cron and shell scripts can tell outcomes apart.

The table in docs/cli.md lists the same codes; this module is the one place they are defined.
[retcode] config may change the code of some of them, under Luigi's key names (RETCODE_KEYS).
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """Why a `pipes` run ended."""

    OK = 0  # every task asked for is complete
    ERROR = 1  # an unexpected error inside pipes itself
    USAGE = 2  # bad command line, parameter, config or module
    TASK_FAILED = 3  # at least one task's run() failed
    MISSING_EXTERNAL = 4  # some external data (ExternalTask output) is missing
    SCHEDULING_ERROR = 5  # a requires() / complete() / output() raised
    ALREADY_RUNNING = 6  # another process holds the lock for this run
    NOT_RUN = 7  # tasks stayed pending: upstream failed, disabled, or run elsewhere
    SCHEDULER_UNAVAILABLE = 8  # the configured pipesd could not be reached or refused a call
    INTERRUPTED = 130  # stopped by SIGINT
    TERMINATED = 143  # stopped by SIGTERM


RETCODE_KEYS = {  # the [retcode] option that may change each code (Luigi's names)
    ExitCode.ALREADY_RUNNING: "already_running",
    ExitCode.MISSING_EXTERNAL: "missing_data",
    ExitCode.NOT_RUN: "not_run",
    ExitCode.TASK_FAILED: "task_failed",
    ExitCode.SCHEDULING_ERROR: "scheduling_error",
    ExitCode.ERROR: "unhandled_exception",
}
