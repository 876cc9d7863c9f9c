"""Tasks whose work is an external program: its output streams live into the task's log.

``ExternalProgramTask`` runs ``program_args()`` with ``program_environment()`` in
``working_directory()``; each line it prints goes to the task's log as it comes (the worker
captures a task's stdout and stderr, see docs/workers.md). A non-zero exit fails the task
with the exit code and the last lines of stderr. An interrupted run (the worker's timeout,
SIGTERM, Ctrl-C) stops the program and every process it started before the task unwinds.
"""

from __future__ import annotations

import collections
import contextlib
import os
import re
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from typing import IO, Any

from pipes.exceptions import PipesError
from pipes.parameter import Parameter
from pipes.task import Task

STDERR_LINES = 20  # lines of stderr quoted in the error of a failed program
STOP_GRACE = 0.5  # seconds the program has to exit after SIGTERM before SIGKILL
DRAIN_AFTER_EXIT = 0.2  # seconds to read what a program's leftover children still print
# A Python traceback's last line, a JVM's uncaught exception ("Exception in thread ...") or
# the cause of a logged one ("Caused by: ...": the last one found is the root cause).
_EXCEPTION = re.compile(
    r'^(?:Exception in thread "[^"]*" |Caused by: )?'
    r"((?:[A-Za-z_][\w$]*\.)*\w*(?:Error|Exception)(?::\s.*)?)$"
)
_LOG_LINE = re.compile(r"^\d{2,4}[-/]\d\d[-/]\d\d \d\d:\d\d:\d\d")  # log4j's, not an exception


def exception_line(line: str) -> str | None:
    """The exception a program's error output names on this line, if it is such a line."""
    if _LOG_LINE.match(line):
        return None
    match = _EXCEPTION.match(line.strip())
    return match.group(1) if match else None


class ErrorFinder:
    """Finds the line naming why a program failed: the last traceback's or uncaught exception.

    A Python traceback ends with its exception line; a JVM's uncaught exception reads
    'Exception in thread "main" ...'. Other exception lines (stack traces under log lines)
    count only when neither was seen.
    """

    def __init__(self) -> None:
        self.best: str | None = None  # the end of the last traceback, or an uncaught exception
        self.other: str | None = None
        self._in_traceback: set[str] = set()  # streams inside a traceback now

    def feed(self, line: str, stream: str = "stderr") -> None:
        """Look at one line of the program's output (streams are followed separately)."""
        if line.startswith("Traceback (most recent call last)"):
            self._in_traceback.add(stream)
            return
        found = exception_line(line)
        if stream in self._in_traceback and line and not line[0].isspace():
            if _LOG_LINE.match(line):  # a log line of another thread, inside the traceback
                return
            self._in_traceback.discard(stream)
            self.best = found or line.strip()
        elif found and line.startswith("Exception in thread"):
            self.best = found
        elif found:
            self.other = found

    @property
    def found(self) -> str | None:
        """The failure's exception line, if the output named one."""
        return self.best or self.other


class ExternalProgramRunError(PipesError):
    """An external program exited with a non-zero code."""

    def __init__(self, message: str, args: list[str], returncode: int, err_tail: str) -> None:
        super().__init__(message)
        self.program_args = args
        self.returncode = returncode
        self.err = err_tail


class ExternalProgramTask(Task):
    """A task that runs one external program and fails when it exits non-zero (luigi's names)."""

    always_log_stderr = True  # False: stderr reaches the log only when the program fails
    stream_for_searching_tracking_url = "none"  # "stdout", "stderr" or "none"
    tracking_url_pattern: str | None = None  # its first group is the tracking URL

    def program_args(self) -> list[Any]:
        """The command line; items are str()-ed."""
        raise NotImplementedError(f"{type(self).__name__} must define program_args()")

    def program_environment(self) -> dict[str, str]:
        """The program's environment (default: the worker's)."""
        return dict(os.environ)

    def working_directory(self) -> str | None:
        """The directory the program runs in (default: the worker's)."""
        return None

    def build_tracking_url(self, logs_output: str) -> str:
        """The tracking URL from the text the pattern matched (luigi's hook)."""
        return logs_output

    def on_output_line(self, stream: str, line: str) -> None:
        """Called in the worker for each line the program prints ('stdout' or 'stderr')."""
        if self.tracking_url_pattern and stream == self.stream_for_searching_tracking_url:
            match = re.search(self.tracking_url_pattern, line)
            if match:
                self.set_tracking_url(self.build_tracking_url(match.group(1)))

    def program_failed(self, returncode: int, err_tail: list[str]) -> ExternalProgramRunError:
        """The error for a failed run; subclasses pick a better first line from the output."""
        name = os.path.basename(self._args[0]) if self._args else "program"
        tail = "\n".join(err_tail)
        message = f"{name} exited with code {returncode}" + (
            f"; last lines of stderr:\n{tail}" if tail else " and printed nothing on stderr"
        )
        return ExternalProgramRunError(message, self._args, returncode, tail)

    def run(self) -> None:
        """Run the program to the end, streaming its output; raise if it fails."""
        self._args = [str(arg) for arg in self.program_args()]
        returncode, err_tail = self._run_program(self._args)
        if returncode != 0:
            raise self.program_failed(returncode, err_tail)

    def on_failure(self, exception: BaseException) -> str | None:
        """A failed program's error is its own message: a Python traceback would add nothing."""
        if isinstance(exception, ExternalProgramRunError):
            return str(exception)
        return None

    def _run_program(self, args: list[str]) -> tuple[int, list[str]]:
        """Start the program and stream its output until it exits; (exit code, stderr tail)."""
        _flush_streams()
        try:
            proc = subprocess.Popen(
                args,
                env=self.program_environment(),
                cwd=self.working_directory(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        except OSError as err:
            raise ExternalProgramRunError(
                f"cannot start {args[0] if args else 'an empty command'}: {err.strerror or err}",
                args,
                -1,
                "",
            ) from err
        stream = _Streamer(self, hold_stderr=not self.always_log_stderr)
        try:
            stream.follow(proc)
        except BaseException:  # timeout (TaskStopped), SIGTERM, Ctrl-C: the program goes too
            stop_process_tree(proc)
            stream.release(failed=True)
            raise
        stream.release(failed=proc.returncode != 0)
        return proc.returncode, list(stream.err_tail)


class ExternalPythonProgramTask(ExternalProgramTask):
    """An external Python program, optionally in a virtualenv and with extra PYTHONPATH entries."""

    virtualenv = Parameter(default=None, significant=False, positional=False)
    extra_pythonpath = Parameter(default=None, significant=False, positional=False)

    def program_environment(self) -> dict[str, str]:
        """The worker's environment with the virtualenv's bin first in PATH, and PYTHONPATH."""
        env = super().program_environment()
        if self.extra_pythonpath:
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (str(self.extra_pythonpath), env.get("PYTHONPATH", "")) if p
            )
        if self.virtualenv:
            venv = str(self.virtualenv)
            env["VIRTUAL_ENV"] = venv
            env["PATH"] = os.pathsep.join(
                p for p in (os.path.join(venv, "bin"), env.get("PATH", "")) if p
            )
            env.pop("PYTHONHOME", None)
        return env


class _Streamer:
    """Reads a program's stdout and stderr as they come and writes them to the task's log."""

    def __init__(self, task: ExternalProgramTask, hold_stderr: bool) -> None:
        self.task = task
        self.err_tail: collections.deque[str] = collections.deque(maxlen=STDERR_LINES)
        self.held: IO[str] | None = tempfile.TemporaryFile("w+") if hold_stderr else None
        self._partial = {"stdout": b"", "stderr": b""}

    def follow(self, proc: subprocess.Popen[bytes]) -> None:
        """Read until both pipes close, or soon after the program exits (daemons may hold them)."""
        selector = selectors.DefaultSelector()
        assert proc.stdout is not None and proc.stderr is not None
        selector.register(proc.stdout, selectors.EVENT_READ, "stdout")
        selector.register(proc.stderr, selectors.EVENT_READ, "stderr")
        exited_at: float | None = None
        while selector.get_map():
            for key, _ in selector.select(timeout=0.2):
                data = os.read(key.fd, 65536)
                if data:
                    self._feed(key.data, data)
                else:
                    selector.unregister(key.fileobj)
                    key.fileobj.close()  # type: ignore[union-attr]
            if exited_at is None and proc.poll() is not None:
                exited_at = time.monotonic()
            if exited_at is not None and time.monotonic() - exited_at > DRAIN_AFTER_EXIT:
                break
        for key in list(selector.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        selector.close()
        proc.wait()
        for name in ("stdout", "stderr"):
            if self._partial[name]:
                self._line(name, self._partial[name])
                self._partial[name] = b""

    def _feed(self, name: str, data: bytes) -> None:
        lines = (self._partial[name] + data).split(b"\n")
        self._partial[name] = lines.pop()
        for line in lines:
            self._line(name, line)

    def _line(self, name: str, raw: bytes) -> None:
        line = raw.decode("utf-8", errors="replace").rstrip("\r")
        if name == "stderr":
            self.err_tail.append(line)
            if self.held is not None:
                self.held.write(line + "\n")
            else:
                sys.stderr.write(line + "\n")
        else:
            sys.stdout.write(line + "\n")
        self.task.on_output_line(name, line)

    def release(self, failed: bool) -> None:
        """Write held stderr to the log if the program failed; then drop it."""
        if self.held is None:
            return
        if failed:
            self.held.seek(0)
            for line in self.held:
                sys.stderr.write(line)
        self.held.close()
        self.held = None


def stop_process_tree(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the program and its descendants, SIGKILL what is left after STOP_GRACE.

    In a worker child the timeout already signals the whole process group; run inline in
    the worker (one worker, no timeout) the program shares the worker's group, so its
    descendants are found in /proc instead.
    """
    pids = [proc.pid, *_descendants(proc.pid)]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(STOP_GRACE)
        if sig == signal.SIGTERM:
            pids = [pid for pid in pids if _alive(pid)]
            if not pids:
                return
    proc.wait()


def _descendants(root: int) -> list[int]:
    """Pids of root's live descendants, from /proc (Linux; [] elsewhere)."""
    children: dict[int, list[int]] = {}
    with contextlib.suppress(OSError):
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as stat:
                    fields = stat.read().rpartition(b")")[2].split()
            except OSError:  # it exited while we looked
                continue
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], list(children.get(root, []))
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rpartition(b")")[2].split()[0] not in (b"Z", b"X")
    except OSError:
        return False


def _flush_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
