"""Command-line parameter values in force while a run builds its task graph.

`--Family-param value` applies to every instance of Family created during the run, including
those made inside requires(); the CLI installs them with `cmdline_values(...)`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

_active: dict[str, dict[str, str]] = {}


def lookup(family: str, name: str) -> str | None:
    """The command-line string for family.name, or None when none was given."""
    values = _active.get(family)
    return values.get(name) if values else None


@contextlib.contextmanager
def cmdline_values(values: dict[str, dict[str, str]]) -> Iterator[None]:
    """Make family -> {param: string} values visible to task construction inside the block."""
    global _active
    previous = _active
    _active = {family: dict(params) for family, params in values.items()}
    try:
        yield
    finally:
        _active = previous
