"""RemoteScheduler: the SchedulerAPI over HTTP to pipesd, with retries across daemon restarts."""

from __future__ import annotations

import http.client
import json
import logging
import threading
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

from pipes.exceptions import BadRequest, RPCError, SchedulerUnavailable, UsageError
from pipes.scheduler.api import SchedulerClient

logger = logging.getLogger("pipes.rpc")
API_PREFIX = "/api/v1/"


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

    # ----- transport ------------------------------------------------------------------------

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=self.retry.timeout)
            self._local.conn = conn
        return conn

    def _drop_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _request(self, method: str, path: str, body: bytes | None) -> tuple[int, bytes]:
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        conn = self._connection()
        try:
            conn.request(method, self._prefix + path, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException):
            self._drop_connection()
            raise

    def _send(self, method: str, path: str, body: bytes | None, deadline: float) -> bytes:
        delay, give_up = self.retry.first_delay, time.monotonic() + deadline
        while True:
            try:
                status, payload = self._request(method, path, body)
            except (OSError, http.client.HTTPException) as err:
                if time.monotonic() + delay > give_up:
                    raise SchedulerUnavailable(
                        f"cannot reach the scheduler at {self.url}: {_reason(err)} "
                        "(is pipesd running? or run with --local-scheduler)"
                    ) from err
                logger.warning(
                    "scheduler %s unreachable (%s); retrying in %.1fs",
                    self.url,
                    _reason(err),
                    delay,
                )
                time.sleep(delay)
                delay = min(delay * 2, self.retry.max_delay)
                continue
            return _check(status, payload, self.url + path)

    def call(self, method: str, **body: Any) -> dict[str, Any]:
        """Run one RPC method on the daemon; retries while it is unreachable."""
        data = json.dumps(body, separators=(",", ":")).encode()
        return json.loads(self._send("POST", API_PREFIX + method, data, self.retry.deadline))

    def check(self, deadline: float = 5.0) -> None:
        """Fail fast with SchedulerUnavailable when nothing answers /health."""
        self._send("GET", "/health", None, deadline)


def _reason(err: BaseException) -> str:
    return getattr(err, "strerror", None) or str(err) or type(err).__name__


def _check(status: int, payload: bytes, where: str) -> bytes:
    if status == 200:
        return payload
    try:
        message = json.loads(payload).get("error", "")
    except (ValueError, AttributeError):
        message = payload[:200].decode("utf-8", "replace")
    if status == 400:
        raise BadRequest(f"scheduler rejected {where}: {message}")
    raise RPCError(f"scheduler answered HTTP {status} for {where}: {message}")
