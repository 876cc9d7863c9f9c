"""Storable RPC values: what SQLite and JSON can hold, checked where a request body is parsed.

A lone surrogate (from a `\\ud800` escape), an integer past 64 bits or an infinite float
would make a commit fail after the core has changed, so the daemon refuses them before any
transition: numbers through the JSON parser's hooks, text through storable(). Log tails are
the exception: they are kept, with what cannot be encoded replaced. The in-process scheduler
needs none of this: its store is memory.
"""

from __future__ import annotations

import math
from typing import Any

from pipes.exceptions import BadRequest

INT_MAX = 2**63 - 1
REPLACED_KEYS = frozenset({"log_tail", "tail"})  # log tails: kept with bad characters replaced


def bounded_int(text: str) -> int:
    """json's parse_int: integers past 64 bits are refused."""
    value = int(text)
    if not -INT_MAX - 1 <= value <= INT_MAX:
        raise ValueError(f"integer {text[:30]} does not fit in 64 bits")
    return value


def finite_float(text: str) -> float:
    """json's parse_float: 1e400 would parse to infinity, which JSON cannot give back."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:30]} is not finite")
    return value


def storable(value: Any, where: str) -> Any:
    """value with log tails cleaned; BadRequest naming `where` for text with a lone surrogate."""
    if isinstance(value, str):
        return _text(value, where)
    if isinstance(value, dict):
        return {
            _text(key, where): _replaced(item) if key in REPLACED_KEYS else storable(item, where)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [storable(item, where) for item in value]
    return value


def _text(value: str, where: str) -> str:
    if not value.isascii() and not _encodes(value):
        raise BadRequest(f"{where}: text {value[:40]!r} is not valid UTF-8 (lone surrogate)")
    return value


def _replaced(value: Any) -> Any:
    if not isinstance(value, str) or value.isascii() or _encodes(value):
        return value
    try:  # undecodable output bytes arrive as U+DC80..U+DCFF (surrogateescape)
        raw = value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raw = value.encode("utf-8", "surrogatepass")
    return raw.decode("utf-8", "replace")


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
