"""Accepting connections within a budget: a capped HTTP server that never spins on accept errors.

Half-sent requests must not exhaust file descriptors (issue 9, item 7): a new connection must
send its headers within `header_timeout`, a request its body within `body_timeout`, and a
kept-alive connection may idle for `idle_timeout`; past `max_connections` the oldest
connection with no request in progress is closed for the new one; an accept that fails for
want of descriptors evicts one or pauses accepting, and its log line is rate-limited.
The timeouts are enforced by one periodic sweep, not by tornado's per-read timers, which
cost about 30 us on every request.
"""

from __future__ import annotations

import errno
import functools
import logging
import resource
import socket
import time
from collections.abc import Awaitable, Iterable
from typing import Any

import tornado.httpserver
import tornado.httputil
import tornado.ioloop
import tornado.iostream

logger = logging.getLogger("pipes.server")
accept_logger = logging.getLogger("pipes.server.accept")

FD_RESERVE = 32  # descriptors kept for the state file, its journal, logs and the loop itself
ACCEPT_PAUSE = 1.0  # seconds to stop accepting when no descriptor can be freed
_OUT_OF_FDS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
_BUSY_BODY = b'{"error":"pipesd has too many connections with requests in progress; retry"}'
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(_BUSY_BODY), _BUSY_BODY)
)


class RepeatFilter(logging.Filter):
    """Let one record per message template through every `interval` seconds, with a count.

    A flood of identical errors (an accept loop out of descriptors) then costs one log
    line per interval, saying how many were left out.
    """

    def __init__(self, interval: float = 10.0) -> None:
        super().__init__()
        self.interval = interval
        self._last: dict[object, float] = {}
        self._dropped: dict[object, int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        """True for the first record of its kind in the interval (then noting those dropped)."""
        key, now = (record.name, record.msg), time.monotonic()
        if now - self._last.get(key, -self.interval) < self.interval:
            self._dropped[key] = self._dropped.get(key, 0) + 1
            return False
        self._last[key] = now
        dropped = self._dropped.pop(key, 0)
        if dropped:
            record.msg = f"{record.getMessage()} (and {dropped} more like it since the last one)"
            record.args = ()
        return True


def install_log_limits(interval: float = 10.0) -> None:
    """Rate-limit the loggers a connection flood can fill: ours for accept, tornado's, asyncio's."""
    for name in ("pipes.server.accept", "tornado.general", "asyncio"):
        log = logging.getLogger(name)
        if not any(isinstance(f, RepeatFilter) for f in log.filters):
            log.addFilter(RepeatFilter(interval))


def raise_fd_limit(ceiling: int = 1 << 20) -> int:
    """Raise the soft open-file limit to the hard one where allowed; returns the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = ceiling if hard == resource.RLIM_INFINITY else min(hard, ceiling)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as err:
            logger.info("open-file limit stays %d (cannot raise it to %d: %s)", soft, target, err)
            return soft
        return target
    return soft


def connection_budget(wanted: int, fd_limit: int) -> int:
    """How many connections to keep open: `wanted`, lowered to fit the open-file limit."""
    budget = max(1, min(wanted, fd_limit - FD_RESERVE))
    if budget < wanted:
        logger.info(
            "max_connections %d lowered to %d: the open-file limit is %d", wanted, budget, fd_limit
        )
    return budget


class _Tracked(tornado.httputil.HTTPMessageDelegate):
    """Passes one request through, telling the server when it is in progress."""

    def __init__(
        self, inner: tornado.httputil.HTTPMessageDelegate, server: CappedHTTPServer, key: object
    ) -> None:
        self.inner, self.server, self.key = inner, server, key

    def headers_received(
        self,
        start_line: tornado.httputil.RequestStartLine | tornado.httputil.ResponseStartLine,
        headers: tornado.httputil.HTTPHeaders,
    ) -> Awaitable[None] | None:
        self.server._busy[self.key] = time.monotonic()
        self.server._served.add(self.key)
        return self.inner.headers_received(start_line, headers)

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        return self.inner.data_received(chunk)

    def finish(self) -> None:
        self.server._idle(self.key)
        self.inner.finish()

    def on_connection_close(self) -> None:
        self.server._idle(self.key)
        self.inner.on_connection_close()


class CappedHTTPServer(tornado.httpserver.HTTPServer):
    """An HTTPServer holding at most `max_connections` open, each sending headers in time."""

    def initialize(  # type: ignore[override]
        self,
        *args: Any,
        max_connections: int = 1000,
        header_timeout: float = 10.0,
        idle_timeout: float = 3600.0,
        body_timeout: float = 60.0,
        **kwargs: Any,
    ) -> None:
        """HTTPServer's options plus the connection cap and the three deadlines (seconds)."""
        super().initialize(*args, **kwargs)
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self.idle_timeout = idle_timeout
        self.body_timeout = body_timeout
        # stream -> when it was accepted, or when its last request was read
        self._opened: dict[tornado.iostream.IOStream, float] = {}
        self._served: set[object] = set()  # streams that sent at least one request's headers
        self._busy: dict[object, float] = {}  # stream -> when its request's headers came
        self._listening: list[socket.socket] = []
        self._sweeper: tornado.ioloop.PeriodicCallback | None = None

    def add_sockets(self, sockets: Iterable[socket.socket]) -> None:
        """Accept on these listening sockets with our own handler, and start the sweeper."""
        for sock in sockets:
            self._sockets[sock.fileno()] = sock
            self._handlers[sock.fileno()] = functools.partial(self._unlisten, sock)
            self._listening.append(sock)
            self._listen(sock)
        if self._sweeper is None:
            shortest = min(self.header_timeout, self.idle_timeout, self.body_timeout)
            period = max(0.05, min(1.0, shortest / 4)) * 1000
            self._sweeper = tornado.ioloop.PeriodicCallback(self._sweep, period)
            self._sweeper.start()

    def stop(self) -> None:
        """Stop accepting and sweeping; open connections are left to close_all_connections."""
        if self._sweeper is not None:
            self._sweeper.stop()
        self._listening.clear()
        super().stop()

    def handle_stream(self, stream: tornado.iostream.IOStream, address: tuple[Any, ...]) -> None:
        self._opened[stream] = time.monotonic()
        super().handle_stream(stream, address)

    def start_request(
        self, server_conn: object, request_conn: tornado.httputil.HTTPConnection
    ) -> tornado.httputil.HTTPMessageDelegate:
        inner = super().start_request(server_conn, request_conn)
        return _Tracked(inner, self, server_conn.stream)  # type: ignore[attr-defined]

    def on_close(self, server_conn: object) -> None:
        stream = server_conn.stream  # type: ignore[attr-defined]
        self._forget(stream)
        super().on_close(server_conn)

    # ----- accepting ------------------------------------------------------------------------

    def _listen(self, sock: socket.socket) -> None:
        tornado.ioloop.IOLoop.current().add_handler(sock, self._accept, tornado.ioloop.IOLoop.READ)

    def _unlisten(self, sock: socket.socket) -> None:
        tornado.ioloop.IOLoop.current().remove_handler(sock)

    def _accept(self, sock: socket.socket, events: int) -> None:
        for _ in range(128):  # then let other callbacks run, as tornado's own handler does
            try:
                connection, address = sock.accept()
            except BlockingIOError:
                return
            except ConnectionAbortedError:
                continue
            except OSError as err:
                if err.errno not in _OUT_OF_FDS:
                    raise
                accept_logger.warning(
                    "cannot accept connections: %s (%d open)", err.strerror, len(self._opened)
                )
                if not self._evict():
                    self._pause(sock)
                    return
                continue
            if len(self._opened) >= self.max_connections and not self._evict():
                _refuse(connection)
                continue
            self._handle_connection(connection, address)

    def _pause(self, sock: socket.socket) -> None:
        """Stop accepting for a moment: the listening socket would stay readable and spin."""
        self._unlisten(sock)

        def resume() -> None:
            if sock in self._listening:
                self._listen(sock)

        tornado.ioloop.IOLoop.current().call_later(ACCEPT_PAUSE, resume)

    def _evict(self) -> bool:
        """Close the oldest connection with no request in progress; False if all are busy."""
        victim = next((s for s in self._opened if s not in self._served), None)
        if victim is None:
            victim = next((s for s in self._opened if s not in self._busy), None)
        if victim is None:
            return False
        accept_logger.warning(
            "connection limit %d reached: closing the oldest idle connection", self.max_connections
        )
        self._close(victim)
        return True

    def _idle(self, stream: object) -> None:
        """A request was read (or its connection closed): the idle clock starts again."""
        if self._busy.pop(stream, None) is not None and stream in self._opened:
            self._opened[stream] = time.monotonic()

    def _sweep(self) -> None:
        """Close connections past their deadline: first headers, a body, or idling."""
        now = time.monotonic()
        late = [s for s, at in self._opened.items() if now - at > self._allowed(s, now)]
        for stream in late:
            self._close(stream)

    def _allowed(self, stream: object, now: float) -> float:
        """How long the connection may have gone since `_opened` says (inf while in time)."""
        started = self._busy.get(stream)
        if started is not None:  # headers in, body still coming
            return float("inf") if now - started <= self.body_timeout else 0.0
        return self.idle_timeout if stream in self._served else self.header_timeout

    def _close(self, stream: tornado.iostream.IOStream) -> None:
        self._forget(stream)
        stream.close()  # frees the descriptor now; tornado then calls on_close

    def _forget(self, stream: object) -> None:
        self._opened.pop(stream, None)  # type: ignore[call-overload]
        self._served.discard(stream)
        self._busy.pop(stream, None)


def _refuse(connection: socket.socket) -> None:
    """Answer 503 on a connection beyond the cap, without waiting on it, and close it."""
    try:
        connection.setblocking(False)
        connection.send(_BUSY)
    except OSError as err:  # the client went away or its buffer is full: closing is all left
        accept_logger.debug("could not send 503 to a refused connection: %s", err)
    finally:
        connection.close()
