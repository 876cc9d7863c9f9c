"""RemoteScheduler: the SchedulerAPI over HTTP to pipesd, with retries across daemon restarts.

A refused connection and an HTTP 5xx (500, 502, 503, 504: pipesd answers 503 while its
journal cannot take writes) are retried with backoff until RetryPolicy.deadline; a 4xx is not.
Retrying is safe: every RPC is idempotent or, like get_work, told what the worker already runs.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import threading
import time
import urllib.parse
import weakref
from dataclasses import dataclass
from typing import Any

from pipes.exceptions import BadRequest, RPCError, SchedulerUnavailable, UsageError
from pipes.scheduler.api import SchedulerClient

logger = logging.getLogger("pipes.rpc")
API_PREFIX = "/api/v1/"
RETRIED_STATUSES = frozenset({500, 502, 503, 504})  # the daemon (or a proxy) may recover


@dataclass(frozen=True)
class RetryPolicy:
    """How long to keep retrying a call the daemon did not answer (e.g. while it restarts)."""

    deadline: float = 300.0  # seconds, per call
    first_delay: float = 0.1
    max_delay: float = 5.0
    timeout: float = 60.0  # per HTTP request


class RemoteScheduler(SchedulerClient):
    """SchedulerAPI over pipesd's JSON RPC; one keep-alive connection per thread."""

    def __init__(
        self, url: str, token: str | None = None, retry: RetryPolicy | None = None
    ) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme != "http" or not parsed.hostname:
            raise UsageError(f"scheduler URL {url!r} must look like http://host:port")
        self.url = url.rstrip("/")
        self._host, self._port = parsed.hostname, parsed.port or 80
        self._prefix = parsed.path.rstrip("/")
        self.token = token
        self.retry = retry or RetryPolicy()
        self._local = threading.local()
        self._connections: weakref.WeakSet[http.client.HTTPConnection] = weakref.WeakSet()

    # ----- transport ------------------------------------------------------------------------

    def _connection(self, slot: str = "conn") -> http.client.HTTPConnection:
        """This thread's connection in `slot`: "conn" for calls, "ahead" for begin_call's."""
        conn: http.client.HTTPConnection | None = getattr(self._local, slot, None)
        if conn is None:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=self.retry.timeout)
            setattr(self._local, slot, conn)
            self._connections.add(conn)
            _CLIENTS.add(self)  # its sockets are closed in forked processes
        return conn

    def close_in_child(self) -> None:
        """Close every thread's connection socket in a forked process (the parent keeps its own).

        A task process (and anything it forks, even after setsid) must not hold the worker's
        scheduler sockets open: Python sockets are close-on-exec, but a fork inherits them.
        """
        for conn in list(self._connections):
            if conn.sock is not None:
                conn.sock.close()  # close(2) only: no shutdown, the parent's connection lives on
                conn.sock = None

    def _drop_connection(self, slot: str = "conn") -> None:
        conn = getattr(self._local, slot, None)
        if conn is not None:
            conn.close()
            setattr(self._local, slot, None)

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def _request(self, method: str, path: str, body: bytes | None) -> tuple[int, bytes]:
        conn = self._connection()
        try:
            conn.request(method, self._prefix + path, body=body, headers=self._headers())
            response = conn.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException):
            self._drop_connection()
            raise

    def _send(
        self, method: str, path: str, body: bytes | None, deadline: float, retried: frozenset[int]
    ) -> tuple[int, bytes]:
        """(status, body) of the first answer whose status is not in `retried`, or the last."""
        delay, give_up = self.retry.first_delay, time.monotonic() + deadline
        while True:
            try:
                status, payload = self._request(method, path, body)
            except (OSError, http.client.HTTPException) as err:
                if time.monotonic() + delay > give_up:
                    raise SchedulerUnavailable(
                        f"cannot reach the scheduler at {self.url}: {_reason(err)} "
                        "(is pipesd running?)"
                    ) from err
                logger.warning(
                    "scheduler %s unreachable (%s); retrying in %.1fs",
                    self.url,
                    _reason(err),
                    delay,
                )
            else:
                if status not in retried or time.monotonic() + delay > give_up:
                    return status, payload
                logger.warning(
                    "scheduler %s answered HTTP %d for %s (%s); retrying in %.1fs",
                    self.url,
                    status,
                    path,
                    _message(payload),
                    delay,
                )
            time.sleep(delay)
            delay = min(delay * 2, self.retry.max_delay)

    def call(self, method: str, **body: Any) -> dict[str, Any]:
        """Run one RPC method on the daemon; retries while it is unreachable."""
        data = json.dumps(body, separators=(",", ":")).encode()
        path = API_PREFIX + method
        status, payload = self._send("POST", path, data, self.retry.deadline, RETRIED_STATUSES)
        reply: dict[str, Any] = json.loads(_check(status, payload, self.url + path))
        return reply

    def begin_call(self, method: str, **body: Any) -> PendingCall:
        """Send one RPC now and read its reply later with PendingCall.result().

        The request goes out on this thread's second connection, so other calls may run
        meanwhile; a thread has at most one call pending. If sending or reading fails, or
        the daemon answers 5xx, result() makes the call again the retrying way (call()),
        which is safe for the same reason retries are."""
        data = json.dumps(body, separators=(",", ":")).encode()
        pending = PendingCall(self, method, body)
        conn = self._connection("ahead")
        try:
            conn.request("POST", self._prefix + API_PREFIX + method, data, self._headers())
        except (OSError, http.client.HTTPException) as err:
            logger.debug("call %s sent ahead failed (%s); it is made again later", method, err)
            self._drop_connection("ahead")
            pending.sent = False
        return pending

    def _read_ahead(self) -> tuple[int, bytes] | None:
        """(status, body) of the call begin_call sent, or None when reading it failed."""
        conn = self._connection("ahead")
        try:
            response = conn.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException) as err:
            logger.debug("reply to a call sent ahead lost (%s); it is made again", err)
            self._drop_connection("ahead")
            return None

    def check(self, deadline: float = 5.0) -> None:
        """Fail fast with SchedulerUnavailable when nothing answers /health.

        A daemon that answers 5xx (e.g. its journal is read-only) is reachable: the calls that
        follow retry for the whole RetryPolicy.deadline while it recovers.
        """
        status, payload = self._send("GET", "/health", None, deadline, frozenset())
        if status in RETRIED_STATUSES:
            logger.warning(
                "scheduler %s is unhealthy (HTTP %d: %s); calls will retry while it recovers",
                self.url,
                status,
                _message(payload),
            )
            return
        _check(status, payload, self.url + "/health")


@dataclass
class PendingCall:
    """An RPC sent by RemoteScheduler.begin_call whose reply is not read yet."""

    client: RemoteScheduler
    method: str
    body: dict[str, Any]
    sent: bool = True

    def result(self) -> dict[str, Any]:
        """The call's JSON reply; raises like RemoteScheduler.call. Call it once."""
        answer = self.client._read_ahead() if self.sent else None
        self.sent = False
        if answer is not None and answer[0] in RETRIED_STATUSES:
            logger.warning(
                "scheduler %s answered HTTP %d for %s (%s); calling again",
                self.client.url,
                answer[0],
                self.method,
                _message(answer[1]),
            )
        if answer is None or answer[0] in RETRIED_STATUSES:
            return self.client.call(self.method, **self.body)
        path = API_PREFIX + self.method
        reply: dict[str, Any] = json.loads(_check(*answer, self.client.url + path))
        return reply


def _reason(err: BaseException) -> str:
    return getattr(err, "strerror", None) or str(err) or type(err).__name__


def _message(payload: bytes) -> str:
    """The `error` of a JSON error reply, else the start of the body."""
    try:
        return str(json.loads(payload).get("error", ""))
    except (ValueError, AttributeError):
        return payload[:200].decode("utf-8", "replace")


def _check(status: int, payload: bytes, where: str) -> bytes:
    if status == 200:
        return payload
    message = _message(payload)
    if status == 400:
        raise BadRequest(f"scheduler rejected {where}: {message}")
    raise RPCError(f"scheduler answered HTTP {status} for {where}: {message}")


_CLIENTS: weakref.WeakSet[RemoteScheduler] = weakref.WeakSet()


def _close_all_in_child() -> None:
    for client in list(_CLIENTS):
        client.close_in_child()


os.register_at_fork(after_in_child=_close_all_in_child)
