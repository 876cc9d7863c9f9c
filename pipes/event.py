"""Names of the events a task fires in the worker that owns it (see Task.event_handler)."""

from __future__ import annotations


class Event:
    """Event names; handlers receive the task first, then the arguments listed here."""

    DEPENDENCY_DISCOVERED = "event.core.dependency.discovered"  # (task, dependency)
    DEPENDENCY_MISSING = "event.core.dependency.missing"  # (task,)
    DEPENDENCY_PRESENT = "event.core.dependency.present"  # (task,)
    BROKEN_TASK = "event.core.task.broken"  # (task, exception)
    START = "event.core.start"  # (task,)
    PROGRESS = "event.core.progress"  # (task, message)
    FAILURE = "event.core.failure"  # (task, exception)
    SUCCESS = "event.core.success"  # (task,)
    PROCESSING_TIME = "event.core.processing_time"  # (task, seconds)
    TIMEOUT = "event.core.timeout"  # (task, error_message)
    PROCESS_FAILURE = "event.core.process_failure"  # (task, error_message)
