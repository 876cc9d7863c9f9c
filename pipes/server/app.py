"""The tornado application: POST /api/v1/<method> JSON RPC, GET /health and GET /metrics.

Errors become responses in one place (JSONHandler.write_error): BadRequest gives a 400 with
{"error": message}, a journal that cannot take writes a 503, anything else a 500 with a
logged traceback. The service validates before it mutates, so a rejected call leaves the
state as it was. Requests are checked (pipes.server.guard) before the service sees them.
"""

from __future__ import annotations

import hmac
import logging
import time
from dataclasses import dataclass
from typing import Any

import tornado.httputil
import tornado.web

from pipes.exceptions import BadRequest, StoreUnavailable
from pipes.scheduler.service import API_VERSION, Service
from pipes.server import guard, luigi_api, luigi_http, pages
from pipes.server.json_handler import JSONHandler
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

MiB = 1024 * 1024


@dataclass(frozen=True)
class ServerOptions:
    """What the application and its HTTP server need beyond the service (see docs/pipesd.md)."""

    token: str | None = None
    public_read: bool = False  # with a token set, still allow read-only calls without it
    # 2,000 add_tasks specs take about 1 MB, a report with a 16 KiB log tail at most ~100 KB.
    max_body_bytes: int = 16 * MiB
    max_json_items: int = 500_000  # a 2,000-task add_tasks holds about 60,000
    allowed_hosts: frozenset[str] = frozenset()  # names besides localhost and IP literals
    max_connections: int = 1000
    header_timeout: float = 10.0  # seconds for a new connection to send its first headers
    # A worker's connection idles while its task runs; past the cap, idle ones are closed anyway.
    idle_timeout: float = 3600.0  # seconds a kept-alive connection may wait between requests
    body_timeout: float = 60.0  # seconds to send a body once its headers are in
    luigi_api: bool = False  # serve Luigi workers' /api/<method> (pipes.server.luigi_http)


@tornado.web.stream_request_body
class RPCHandler(JSONHandler):
    """One RPC call: check the request, read a bounded body, run it through the service."""

    def initialize(
        self, service: Service, options: ServerOptions, latency: LatencyHistogram, calls: CallTimes
    ) -> None:
        self.service = service
        # Not `self.options`: that would shadow RequestHandler.options(), the OPTIONS verb.
        self.server_options = options
        self.latency = latency
        self.calls = calls
        self._chunks: list[bytes] = []
        self._size = 0
        self._too_big = False

    def prepare(self) -> None:
        if self.request.method != "POST":
            raise tornado.web.HTTPError(
                405, "use POST with a JSON body for /api/v%d/%s", API_VERSION, self.path_args[0]
            )
        self._check_cross_site()
        self._authorize(self.path_args[0])
        declared = self.request.headers.get("Content-Length", "")
        self._too_big = declared.isdigit() and int(declared) > self.server_options.max_body_bytes

    def data_received(self, chunk: bytes) -> None:
        # An oversize body is read and dropped, not refused mid-send: the client then
        # reads the JSON 413 instead of meeting a reset connection.
        self._size += len(chunk)
        self._too_big = self._too_big or self._size > self.server_options.max_body_bytes
        if not self._too_big and not self._finished:
            self._chunks.append(chunk)

    def post(self, method: str) -> None:
        if self._too_big:
            limit = self.server_options.max_body_bytes
            raise tornado.web.HTTPError(413, "request body larger than %d bytes", limit)
        raw, self._chunks = b"".join(self._chunks), []
        try:
            body = guard.parse_body(raw, self.server_options.max_json_items)
        except guard.Rejected as err:
            raise tornado.web.HTTPError(err.status, "%s", err) from None
        del raw
        started = time.perf_counter()
        try:
            result = self.service.call(method, body)
        except BadRequest as err:
            raise tornado.web.HTTPError(400, "%s", err) from None
        except StoreUnavailable as err:  # the service logged why, once; each call logs a line
            raise tornado.web.HTTPError(503, "%s", err) from None
        seconds = time.perf_counter() - started
        self.calls.observe(method, seconds)
        if method == "get_work":
            self.latency.observe(seconds)
        self.write_json(result)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        if status_code == 405:
            self.set_header("Allow", "POST")
        super().write_error(status_code, **kwargs)

    def _check_cross_site(self) -> None:
        """Refuse what a page on another site can send: a foreign Origin, a non-JSON body."""
        origin = self.request.headers.get("Origin")
        if origin is not None and not guard.same_origin(origin, self.request.host):
            raise tornado.web.HTTPError(
                403, "cross-origin request refused: Origin %s is not %s", origin, self.request.host
            )
        if not guard.is_json_type(self.request.headers.get("Content-Type", "")):
            raise tornado.web.HTTPError(415, "send the body with Content-Type: application/json")

    def _authorize(self, method: str) -> None:
        token = self.server_options.token
        if not token or (self.server_options.public_read and method in READ_ONLY):
            return
        header = self.request.headers.get("Authorization", "")
        given = header.removeprefix("Bearer ") if header.startswith("Bearer ") else ""
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise tornado.web.HTTPError(
                401, "missing or wrong token (send Authorization: Bearer <token>)"
            )


class HealthHandler(JSONHandler):
    """Liveness: answers while the IOLoop runs; 503 while the journal takes no writes."""

    def initialize(self, service: Service) -> None:
        self.service = service

    def get(self) -> None:
        reason = getattr(self.service, "store_error", None)
        if reason:
            self.write_json({"ok": False, "api_version": API_VERSION, "store": reason}, 503)
        else:
            self.write_json({"ok": True, "api_version": API_VERSION, "store": "ok"})


class MetricsHandler(tornado.web.RequestHandler):
    """Prometheus text format."""

    def initialize(self, service: Service, latency: LatencyHistogram, calls: CallTimes) -> None:
        self.service = service
        self.latency = latency
        self.calls = calls

    def get(self) -> None:
        self.set_header("Content-Type", "text/plain; version=0.0.4")
        self.finish(render(self.service.core, self.latency, self.calls))


class NotFoundHandler(JSONHandler):
    """Every other path: a JSON 404."""

    def prepare(self) -> None:
        raise tornado.web.HTTPError(404, "no such path %s", self.request.path)


class MisdirectedHandler(JSONHandler):
    """Any path asked for under a Host name this daemon does not answer to (DNS rebinding)."""

    def prepare(self) -> None:
        raise tornado.web.HTTPError(
            421,
            "Host %s is not a name of this pipesd (add it to [scheduler] allowed_hosts)",
            self.request.host,
        )


class _Application(tornado.web.Application):
    """An Application that answers only to its own host names."""

    allowed_hosts: frozenset[str] = frozenset()

    def find_handler(
        self, request: tornado.httputil.HTTPServerRequest, **kwargs: Any
    ) -> tornado.web._HandlerDelegate:
        if not guard.host_allowed(request.host, self.allowed_hosts):
            return self.get_handler_delegate(request, MisdirectedHandler)
        return super().find_handler(request, **kwargs)


def make_app(service: Service, options: ServerOptions) -> tornado.web.Application:
    """The pipesd application over one service."""
    timings = {"latency": LatencyHistogram(), "calls": CallTimes()}
    rpc = {"service": service, "options": options, **timings}
    # Luigi's /api/<method> has no slash after the method, so /api/v1/<method> never matches it.
    luigi: tuple[Any, ...] = (r"/api/(\w+)", luigi_http.LuigiOffHandler)
    if options.luigi_api:
        dialect = luigi_api.LuigiDialect(service)
        args = {"dialect": dialect, "options": options, "calls": timings["calls"]}
        luigi = (luigi[0], luigi_http.LuigiHandler, args)
    app = _Application(
        [
            (rf"/api/v{API_VERSION}/(\w+)", RPCHandler, rpc),
            luigi,
            (r"/health", HealthHandler, {"service": service}),
            (r"/metrics", MetricsHandler, {"service": service, **timings}),
            *pages.routes(),
        ],
        default_handler_class=NotFoundHandler,
        log_function=_log_request,
    )
    app.allowed_hosts = frozenset(name.lower() for name in options.allowed_hosts)
    return app


def _log_request(handler: tornado.web.RequestHandler) -> None:
    """Successful calls at DEBUG (workers poll a lot), client errors and 503 WARNING, others ERROR.

    A 503 is the journal refusing writes (or the connection cap), not a bug: no traceback.
    """
    status = handler.get_status()
    warn = status < 500 or status == 503
    level = logging.DEBUG if status < 400 else logging.WARNING if warn else logging.ERROR
    request = handler.request
    logger.log(
        level, "%d %s %s %.2fms", status, request.method, request.uri, 1000 * request.request_time()
    )
