"""Luigi's `luigi.execution_summary` at pipes' path: the end-of-run result and its status."""

from __future__ import annotations

import enum

from pipes.summary import RunResult

LuigiRunResult = RunResult  # what pipes.build / pipes.run return; bool() is Luigi's answer


class LuigiStatusCode(enum.StrEnum):
    """Luigi's status names for the values RunResult.status takes.

    Differs from luigi: pipes has no SUCCESS_WITH_RETRY or FAILED_AND_SCHEDULING_FAILED; a run
    with both failures reports the worse of the two.
    """

    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    SCHEDULING_FAILED = "SCHEDULING_FAILED"
    NOT_RUN = "NOT_RUN"
    MISSING_EXT = "MISSING_EXTERNAL"


def summary(result: RunResult) -> str:
    """The text of the end-of-run summary, as the `pipes` command prints it."""
    return result.summary_text()
