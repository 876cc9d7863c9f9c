"""The HTTP side of Luigi's dialect: /api/<method> requests checked, then run by LuigiDialect.

Luigi workers send form bodies and no bearer token, which the JSON API's Content-Type rule
refuses; so this handler has rules of its own (see docs/migrating-from-luigid.md#security).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import time
from typing import TYPE_CHECKING, Any

import tornado.web

from pipes.exceptions import BadRequest, StoreUnavailable
from pipes.server import guard
from pipes.server.json_handler import JSONHandler
from pipes.server.luigi_api import LuigiDialect

if TYPE_CHECKING:
    from pipes.server.app import ServerOptions
    from pipes.server.metrics import CallTimes


FORM_TYPE = "application/x-www-form-urlencoded"
OFF_HINT = "the Luigi dialect is off: set [scheduler] luigi_api = true or start pipesd --luigi-api"


class LuigiHandler(JSONHandler):
    """One Luigi call: GET (reads only) or a form POST with the arguments as JSON in `data`.

    No Content-Type check can keep web pages out here (a form sends this one), so a foreign
    Origin is refused, GET never changes anything, and a configured token is required.
    """

    def initialize(self, dialect: LuigiDialect, options: ServerOptions, calls: CallTimes) -> None:
        self.dialect = dialect
        self.server_options = options  # not `options`: that is the OPTIONS verb
        self.calls = calls

    def get(self, method: str) -> None:
        if not self.dialect.is_read(method) and method in self.dialect.methods:
            raise tornado.web.HTTPError(
                405, "use POST for Luigi method %s (GET only reads)", method
            )
        self._serve(method)

    def post(self, method: str) -> None:
        if not self.request.headers.get("Content-Type", "").lower().startswith(FORM_TYPE):
            raise tornado.web.HTTPError(415, "send Luigi calls form-encoded (%s)", FORM_TYPE)
        self._serve(method)

    def prepare(self) -> None:
        origin = self.request.headers.get("Origin")
        if origin is not None and not guard.same_origin(origin, self.request.host):
            raise tornado.web.HTTPError(
                403, "cross-origin request refused: Origin %s is not %s", origin, self.request.host
            )
        self._authorize(self.path_args[0])
        if len(self.request.body) > self.server_options.max_body_bytes:
            limit = self.server_options.max_body_bytes
            raise tornado.web.HTTPError(413, "request body larger than %d bytes", limit)

    def _serve(self, method: str) -> None:
        raw = self.get_argument("data", "{}", strip=False)
        try:
            body = guard.parse_body(raw.encode("utf-8"), self.server_options.max_json_items)
        except guard.Rejected as err:
            raise tornado.web.HTTPError(err.status, "%s", err) from None
        started = time.perf_counter()
        try:
            response = self.dialect.call(method, body)
        except BadRequest as err:
            raise tornado.web.HTTPError(400, "%s", err) from None
        except StoreUnavailable as err:
            raise tornado.web.HTTPError(503, "%s", err) from None
        self.calls.observe(f"luigi_{method}", time.perf_counter() - started)
        self.write_json({"response": response})

    def _authorize(self, method: str) -> None:
        token = self.server_options.token
        if not token or (self.server_options.public_read and self.dialect.is_read(method)):
            return
        if not any(hmac.compare_digest(given.encode(), token.encode()) for given in self._tokens()):
            raise tornado.web.HTTPError(
                401, "missing or wrong token (put it in the scheduler URL: http://TOKEN@host:port)"
            )

    def _tokens(self) -> list[str]:
        """What the request offers as a token: a Bearer one, or Basic auth's user or password
        (Luigi turns http://TOKEN@host or http://user:TOKEN@host into Basic auth)."""
        scheme, _, value = self.request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            return [value.strip()]
        if scheme.lower() != "basic":
            return []
        try:
            user, _, password = (
                base64.b64decode(value.strip(), validate=True).decode().partition(":")
            )
        except (binascii.Error, UnicodeDecodeError):
            return []
        return [user, password]

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        if status_code == 405:
            self.set_header("Allow", "POST")
        super().write_error(status_code, **kwargs)


class LuigiOffHandler(LuigiHandler):
    """/api/<method> while the dialect is off: a 404 that says how to turn it on."""

    def initialize(self) -> None:  # type: ignore[override]
        pass

    def prepare(self) -> None:
        raise tornado.web.HTTPError(404, "no such path %s (%s)", self.request.path, OFF_HINT)
