"""The tornado application: POST /api/v1/<method> JSON RPC, GET /health and GET /metrics.

Errors become responses in one place (RPCHandler.write_error): BadRequest gives a 400 with
{"error": message}, anything else a 500 with a logged traceback. The service validates
before it mutates, so a rejected call leaves the state as it was.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import tornado.web

from pipes.exceptions import BadRequest
from pipes.scheduler.service import API_VERSION, Service
from pipes.server import pages
from pipes.server.metrics import CallTimes, LatencyHistogram, render

logger = logging.getLogger("pipes.server")

READ_ONLY = {
    "task_list",
    "task_detail",
    "graph",
    "counts",
    "overview",
    "worker_list",
    "resource_list",
    "is_paused",
}


@dataclass(frozen=True)
class ServerOptions:
    """What the application needs beyond the service."""

    token: str | None = None
    public_read: bool = False  # with a token set, still allow read-only calls without it
    max_body_bytes: int = 64 * 1024 * 1024


class _JSONHandler(tornado.web.RequestHandler):
    def write_json(self, value: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(value, separators=(",", ":"), allow_nan=False))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc_info = kwargs.get("exc_info")
        error = exc_info[1] if exc_info else None
        if isinstance(error, tornado.web.HTTPError) and error.log_message:
            message = error.log_message % error.args if error.args else error.log_message
        else:
            message = self._reason
        self.write_json({"error": message}, status_code)

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if not isinstance(value, tornado.web.HTTPError):  # 4xx are logged once, by _log_request
            super().log_exception(typ, value, tb)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


@tornado.web.stream_request_body
class RPCHandler(_JSONHandler):
    """One RPC call: authenticate, read a bounded body, run it through the service, answer."""

    def initialize(
        self, service: Service, options: ServerOptions, latency: LatencyHistogram, calls: CallTimes
    ) -> None:
        self.service = service
        self.options = options
        self.latency = latency
        self.calls = calls
        self._chunks: list[bytes] = []
        self._size = 0
        self._too_big = False

    def prepare(self) -> None:
        if self.request.method != "POST":
            return
        self._authorize(self.path_args[0])
        declared = self.request.headers.get("Content-Length", "")
        self._too_big = declared.isdigit() and int(declared) > self.options.max_body_bytes

    def data_received(self, chunk: bytes) -> None:
        # An oversize body is read and dropped, not refused mid-send: the client then
        # reads the JSON 413 instead of meeting a reset connection.
        self._size += len(chunk)
        self._too_big = self._too_big or self._size > self.options.max_body_bytes
        if not self._too_big:
            self._chunks.append(chunk)

    def post(self, method: str) -> None:
        if self._too_big:
            limit = self.options.max_body_bytes
            raise tornado.web.HTTPError(413, "request body larger than %d bytes", limit)
        raw = b"".join(self._chunks)
        try:
            body = json.loads(raw or b"{}", parse_constant=_reject_constant)
        except (ValueError, UnicodeDecodeError) as err:
            raise tornado.web.HTTPError(400, "malformed JSON body: %s", err) from None
        except RecursionError:
            raise tornado.web.HTTPError(400, "malformed JSON body: nested too deeply") from None
        started = time.perf_counter()
        try:
            result = self.service.call(method, body)
        except BadRequest as err:
            raise tornado.web.HTTPError(400, "%s", err) from None
        seconds = time.perf_counter() - started
        self.calls.observe(method, seconds)
        if method == "get_work":
            self.latency.observe(seconds)
        self.write_json(result)

    def get(self, method: str) -> None:
        raise tornado.web.HTTPError(
            405, "use POST with a JSON body for /api/v%d/%s", API_VERSION, method
        )

    def _authorize(self, method: str) -> None:
        token = self.options.token
        if not token or (self.options.public_read and method in READ_ONLY):
            return
        header = self.request.headers.get("Authorization", "")
        given = header.removeprefix("Bearer ") if header.startswith("Bearer ") else ""
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise tornado.web.HTTPError(
                401, "missing or wrong token (send Authorization: Bearer <token>)"
            )


class HealthHandler(_JSONHandler):
    """Liveness: answers while the IOLoop runs."""

    def get(self) -> None:
        self.write_json({"ok": True, "api_version": API_VERSION})


class MetricsHandler(tornado.web.RequestHandler):
    """Prometheus text format."""

    def initialize(self, service: Service, latency: LatencyHistogram, calls: CallTimes) -> None:
        self.service = service
        self.latency = latency
        self.calls = calls

    def get(self) -> None:
        self.set_header("Content-Type", "text/plain; version=0.0.4")
        self.finish(render(self.service.core, self.latency, self.calls))


class NotFoundHandler(_JSONHandler):
    """Every other path: a JSON 404."""

    def prepare(self) -> None:
        raise tornado.web.HTTPError(404, "no such path %s", self.request.path)


def make_app(service: Service, options: ServerOptions) -> tornado.web.Application:
    """The pipesd application over one service."""
    timings = {"latency": LatencyHistogram(), "calls": CallTimes()}
    rpc = {"service": service, "options": options, **timings}
    return tornado.web.Application(
        [
            (rf"/api/v{API_VERSION}/(\w+)", RPCHandler, rpc),
            (r"/health", HealthHandler),
            (r"/metrics", MetricsHandler, {"service": service, **timings}),
            *pages.routes(),
        ],
        default_handler_class=NotFoundHandler,
        log_function=_log_request,
    )


def _log_request(handler: tornado.web.RequestHandler) -> None:
    """Successful calls at DEBUG (workers poll a lot), client errors WARNING, others ERROR."""
    status = handler.get_status()
    level = logging.DEBUG if status < 400 else logging.WARNING if status < 500 else logging.ERROR
    request = handler.request
    logger.log(
        level, "%d %s %s %.2fms", status, request.method, request.uri, 1000 * request.request_time()
    )
