"""Storable RPC values: what SQLite and JSON can hold, checked before any transition.

A lone surrogate (from a `\\ud800` escape), an integer past 64 bits or an infinite float
would make the commit fail after the core has changed, so they are refused up front. Log
tails are the exception: they are kept, with what cannot be encoded replaced. Integers are
bounded where JSON is parsed (bounded_int), since in-process callers never reach SQLite.
"""

from __future__ import annotations

import json
import math
from typing import Any

from pipes.exceptions import BadRequest

INT_MAX = 2**63 - 1
REPLACED_KEYS = frozenset({"log_tail"})  # text kept with bad characters replaced


def storable(value: Any, where: str) -> Any:
    """value, with log tails cleaned; BadRequest naming `where` for anything unstorable."""
    try:  # the common case, checked by the C encoder: finite numbers and encodable text
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, check_circular=False)
        text.encode("utf-8")
    except (ValueError, TypeError):  # UnicodeEncodeError is a ValueError
        return _walk(value, where)
    return value


def bounded_int(text: str) -> int:
    """json.loads' parse_int: integers past 64 bits are refused where the body is parsed."""
    value = int(text)
    if not -INT_MAX - 1 <= value <= INT_MAX:
        raise ValueError(f"integer {text[:30]} does not fit in 64 bits")
    return value


def _walk(value: Any, where: str) -> Any:
    if isinstance(value, str):
        return _text(value, where)
    if isinstance(value, dict):
        return {
            _text(key, where): _replaced(item) if key in REPLACED_KEYS else _walk(item, where)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_walk(item, where) for item in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        if not -INT_MAX - 1 <= value <= INT_MAX:
            raise BadRequest(f"{where}: integer {value} does not fit in 64 bits")
        return value
    if isinstance(value, float) and not math.isfinite(value):
        raise BadRequest(f"{where}: numbers must be finite, got {value}")
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
