"""The worker's end of one child's two pipes.

A handle knows nothing of which tasks the child holds (dispatcher.py) or when to give up
on it (pool.py): it forks the child and moves bytes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from pipes.worker.channel import FrameReader, frame
from pipes.worker.child import ChildOptions, ChildSetup
from pipes.worker.claims import Claims
from pipes.worker.execute import Execution
from pipes.worker.messages import FieldSet, TaskEnded, TaskRef, TaskSent
from pipes.worker.process import ChildProcess


@dataclass(eq=False)
class ChildHandle:
    """One child process, the worker's ends of its two pipes, and what waits to be written."""

    process: ChildProcess
    send_fd: int  # non-blocking
    reader: FrameReader  # non-blocking
    claims: Claims
    known: frozenset[str]  # task ids the child had at its fork: sent as an id only
    log_path: str | None  # its private log file (no log_dir)
    outbuf: bytearray = field(default_factory=bytearray)  # frames the pipe has not taken yet

    @classmethod
    def fork(
        cls, options: ChildOptions, known: frozenset[str], others: list[ChildHandle]
    ) -> ChildHandle:
        """Fork a child that serves tasks (child.child_main); `known` are options.known's ids."""
        task_read, task_write = os.pipe()
        result_read, result_write = os.pipe()
        inherited = [fd for other in others for fd in (other.send_fd, other.reader.fd)]
        inherited += [other.process.sentinel for other in others]
        claims = Claims()
        setup = ChildSetup(
            task_read,
            result_write,
            claims,
            (task_write, result_read, *inherited),
            options,
            os.getpid(),
        )
        process = ChildProcess.start(setup)
        os.close(task_read)
        os.close(result_write)
        os.set_blocking(task_write, False)
        os.set_blocking(result_read, False)
        reader = FrameReader(result_read, blocking=False)
        return cls(process, task_write, reader, claims, known, options.private_log)

    def send(self, numbered: list[tuple[int, Execution]]) -> None:
        """Queue numbered executions for the child, and write what the pipe takes now."""
        entries = []
        for seq, execution in numbered:
            key = execution.members[0]
            known = execution.task.task_id == key and key in self.known
            entries.append(TaskSent(seq, key, None if known else TaskRef.of(execution.task)))
        self.outbuf += frame(entries)
        self.flush()

    def flush(self) -> bool:
        """Write what the pipe takes now; True if some is left for later."""
        try:
            written = os.write(self.send_fd, self.outbuf)
        except BlockingIOError:
            written = 0
        except BrokenPipeError:  # the child is gone; its sentinel says how
            written = len(self.outbuf)
        del self.outbuf[:written]
        return bool(self.outbuf)

    def messages(self) -> list[TaskEnded | FieldSet]:
        """Every message the child has sent since the last call."""
        return [item for batch in self.reader.read() for item in batch]

    def ask_to_stop(self) -> None:
        """Tell an idle child to exit, and wait a little for it."""
        try:
            os.set_blocking(self.send_fd, True)
            os.write(self.send_fd, bytes(self.outbuf) + frame(None))
        except OSError:
            pass
        self.process.join(5.0)

    def close(self) -> None:
        """Release the worker's ends of its pipes and memory, and its private log file."""
        os.close(self.reader.fd)
        os.close(self.send_fd)
        self.process.close()
        self.claims.close()
        if self.log_path is not None:
            Path(self.log_path).unlink(missing_ok=True)
