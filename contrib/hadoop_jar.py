"""Hadoop MapReduce jobs as tasks: ``hadoop jar`` with outputs published by rename on success.

``HadoopJarJobTask`` runs ``[hadoop] command jar JAR [MAIN] [-D k=v ...] ARGS``. Targets in
``args()`` become their paths; with ``atomic_output()`` (the default) each output target in
them is replaced by a temporary path beside it, renamed into place only when the job
succeeds. The job id and counters are parsed from the job's output into the task's log.
See docs/hadoop.md.
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
from typing import Any

from pipes.config import get_config
from pipes.exceptions import TaskDefinitionError
from pipes.target import FileSystemTarget
from pipes.task import flatten

from .external_program import ErrorFinder, ExternalProgramRunError, ExternalProgramTask

_JOB_ID = re.compile(r"\b(?:Running job|Submitted job|Job): ?(job_\w+)|\bJob (job_\w+) ")
_TRACKING = re.compile(r"The url to track the job: (\S+)")
_COUNTERS = re.compile(r"\bCounters: \d+\s*$")
_COUNTER = re.compile(r"^\s+(\S.*?)=(-?\d+)\s*$")


class HadoopJarJobTask(ExternalProgramTask):
    """A MapReduce job in a jar (luigi.contrib.hadoop_jar's names)."""

    def jar(self) -> str:
        """Path of the job's jar, on the worker's machine."""
        raise TaskDefinitionError(f"{type(self).__name__} must define jar()")

    def main(self) -> str | None:
        """The main class, when the jar's manifest names none."""
        return None

    def args(self) -> list[Any]:
        """The job's arguments; targets are replaced by their paths."""
        return []

    def jobconfs(self) -> list[str]:
        """``k=v`` settings passed as ``-D k=v`` (the main class must use ToolRunner)."""
        return []

    def atomic_output(self) -> bool:
        """Whether output targets in args() get temporary paths, renamed on success."""
        return True

    def hadoop_command(self) -> list[str]:
        """``[hadoop] command``, split on spaces (default: hadoop)."""
        return (get_config().get("hadoop", "command") or "hadoop").split()

    def program_args(self) -> list[Any]:
        """hadoop jar JAR [MAIN] [-D k=v ...] ARGS, with temporary paths for outputs."""
        command = [*self.hadoop_command(), "jar", self.jar()]
        if self.main():
            command.append(self.main())  # type: ignore[arg-type]  # not None: checked above
        for setting in self.jobconfs():
            command += ["-D", setting]
        temp = self.__dict__.get("_temp_paths", {})
        for arg in self.args():
            if isinstance(arg, FileSystemTarget):
                command.append(temp.get(arg.path, arg.path))
            else:
                command.append(arg)
        return command

    def run(self) -> None:
        """Run the job; publish the outputs it wrote only if it succeeded."""
        self.job_id: str | None = None
        self.counters: dict[str, dict[str, int]] = {}
        self.__dict__["_errors"] = ErrorFinder()
        self.__dict__["_group"] = None  # the counter group being read, None outside counters
        with contextlib.ExitStack() as stack:
            temp: dict[str, str] = {}
            if self.atomic_output():
                outputs = {
                    t.path for t in flatten(self.output()) if isinstance(t, FileSystemTarget)
                }
                for arg in self.args():
                    if isinstance(arg, FileSystemTarget) and arg.path in outputs:
                        temp[arg.path] = stack.enter_context(arg.temporary_path())
            self.__dict__["_temp_paths"] = temp
            super().run()
            self._log_summary()

    def on_output_line(self, stream: str, line: str) -> None:
        """Pick the job id, tracking URL, counters and the failure's exception from the output."""
        super().on_output_line(stream, line)
        self.__dict__["_errors"].feed(line, stream)
        job = _JOB_ID.search(line)
        if job and self.job_id is None:
            self.job_id = job.group(1) or job.group(2)
        url = _TRACKING.search(line)
        if url:
            self.set_tracking_url(url.group(1))
        self._read_counter(line)

    def _read_counter(self, line: str) -> None:
        if _COUNTERS.search(line):
            self.__dict__["_group"] = ""
            return
        group = self.__dict__["_group"]
        if group is None:
            return
        counter = _COUNTER.match(line)
        if counter:
            self.counters.setdefault(group, {})[counter.group(1)] = int(counter.group(2))
        elif line[:1].isspace() and line.strip():
            self.__dict__["_group"] = line.strip()
        else:
            self.__dict__["_group"] = None

    def _log_summary(self) -> None:
        # One line each, so a log search for the job id or a counter finds them.
        print(f"pipes: hadoop job {self.job_id or '(no job id in the output)'}", file=sys.stderr)
        print(f"pipes: hadoop counters {json.dumps(self.counters)}", file=sys.stderr)

    def program_failed(self, returncode: int, err_tail: list[str]) -> ExternalProgramRunError:
        """'hadoop jar failed (exit code N, job ID): <the exception>', then the output's tail."""
        error = self.__dict__["_errors"].found or "no exception found in the job's output"
        job = f", job {self.job_id}" if self.job_id else ""
        tail = "\n".join(err_tail)
        message = (
            f"hadoop jar failed (exit code {returncode}{job}): {error}\n"
            f"last lines of its output (all of it is in the task log):\n{tail}"
        )
        return ExternalProgramRunError(message, self._args, returncode, tail)
