"""What an HTTP request must satisfy before the service sees it.

Host names against DNS rebinding, Origin and Content-Type against cross-site requests, and a
JSON body bounded in items and free of duplicate keys. Pure functions over header values and
bytes, so app.py only maps their verdicts to status codes.
"""

from __future__ import annotations

import ipaddress
import json
import re
import urllib.parse
from typing import Any

from pipes.exceptions import BadRequest
from pipes.scheduler.storable import bounded_int, finite_float, storable

LOCAL_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})

# A JSON string, escapes included (the "unrolled loop" form: no backtracking blow-up).
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')


class Rejected(ValueError):
    """A request fails a check; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def split_host(host: str) -> tuple[str, int | None]:
    """('name', port) from a Host header value or netloc: 'a:1', '[::1]:2', 'a'."""
    host = host.strip().lower()
    if host.startswith("["):
        name, _, rest = host[1:].partition("]")
        port = rest.removeprefix(":")
    else:
        name, _, port = host.partition(":")
    return name.rstrip("."), int(port) if port.isdigit() else None


def host_allowed(host: str, allowed: frozenset[str]) -> bool:
    """True when Host names this daemon: an IP literal, a local name or a configured one.

    An IP literal cannot be DNS-rebound (rebinding needs a name the attacker controls), so
    only names are checked; `allowed` holds lower-case names, and "*" allows every name.
    """
    name, _ = split_host(host)
    if not name or "*" in allowed or name in allowed or name in LOCAL_NAMES:
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def same_origin(origin: str, host: str) -> bool:
    """True when an Origin header names the host (and port) the request was sent to.

    A Host without a port (behind a TLS-terminating proxy, say) matches the default port of
    the Origin's scheme.
    """
    parts = urllib.parse.urlsplit(origin.strip().lower())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False  # "null" (sandboxed frames, file:) and anything odd
    default = 443 if parts.scheme == "https" else 80
    name, port = split_host(host)
    try:
        origin_port = parts.port or default
    except ValueError:
        return False
    return (parts.hostname.rstrip("."), origin_port) == (name, port or default)


def is_json_type(content_type: str) -> bool:
    """True for application/json, with or without parameters (charset=utf-8)."""
    return content_type.split(";", 1)[0].strip().lower() == "application/json"


def count_items_over(raw: bytes, limit: int) -> bool:
    """True when the JSON text holds more than `limit` items (values and keys).

    Each item but the first follows a `[`, `{`, `,` or `:` outside a string, so their count
    bounds it (an empty `[]` or `{}` counts twice). Cheap bounds come first: the full-text
    count (exact or higher) and the number of strings (lower); only between them are the
    strings cut out, which then costs at most `limit` matches.
    """
    if _structure(raw) <= limit:
        return False
    if (raw.count(b'"') - raw.count(b'\\"')) // 2 > limit:
        return True
    return _structure(_STRING.sub(b'""', raw)) > limit


def _structure(raw: bytes) -> int:
    return 1 + sum(raw.count(char) for char in (b"[", b"{", b",", b":"))


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    if len(value) != len(pairs):  # a second "task_id" must not override what was checked
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"duplicate key {key!r}")
            seen.add(key)
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_DECODER = json.JSONDecoder(  # one decoder: json.loads with hooks would build one per call
    parse_constant=_reject_constant,
    parse_int=bounded_int,
    parse_float=finite_float,
    object_pairs_hook=_unique_keys,
)


def parse_body(raw: bytes, max_items: int) -> Any:
    """The JSON value of a request body (empty means {}); Rejected with 400 or 413.

    Only what the journal can store gets through (see pipes.scheduler.storable).
    """
    if count_items_over(raw, max_items):
        raise Rejected(413, f"request body has more than {max_items} JSON items")
    try:
        body = _DECODER.decode(raw.decode("utf-8") if raw else "{}")
    except (ValueError, UnicodeDecodeError) as err:
        raise Rejected(400, f"malformed JSON body: {err}") from None
    except RecursionError:
        raise Rejected(400, "malformed JSON body: nested too deeply") from None
    if b"\\ud" in raw or b"\\uD" in raw:  # an escaped surrogate, perhaps a lone one
        try:
            body = storable(body, "request body")
        except BadRequest as err:
            raise Rejected(400, str(err)) from None
    return body
