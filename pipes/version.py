"""The installed distribution's version, as `pipes.__version__` (Luigi's `luigi.__version__`)."""

from __future__ import annotations

import importlib.metadata


def _version() -> str:
    try:
        return importlib.metadata.version("pipes")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree, not installed
        return "unknown (not installed)"


__version__ = _version()
