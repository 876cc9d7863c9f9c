"""Running pipesd: open the store, restore state, serve until SIGTERM, close cleanly."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import socket
import time
from dataclasses import dataclass

import tornado.ioloop
import tornado.netutil
import tornado.web

from pipes.exceptions import StoreError, UsageError
from pipes.notifications import Notifier, alert_settings
from pipes.scheduler.core import Scheduler
from pipes.scheduler.model import Policy
from pipes.scheduler.service import Service
from pipes.scheduler.store import SqliteStore
from pipes.server.alerts import AlertingStore
from pipes.server.app import ServerOptions, make_app
from pipes.server.listener import (
    CappedHTTPServer,
    connection_budget,
    install_log_limits,
    raise_fd_limit,
)

logger = logging.getLogger("pipes.server")


@dataclass(frozen=True)
class DaemonOptions:
    """Where pipesd listens and keeps its state."""

    address: str = "127.0.0.1"
    port: int = 8082
    state_path: str = "pipesd-state.sqlite"
    reset_state: bool = False
    history_days: float = 30.0


def open_service(
    options: DaemonOptions,
    policy: Policy,
    resources: dict[str, int],
    notifier: Notifier | None = None,
) -> tuple[Service, SqliteStore]:
    """Open the journal and rebuild the scheduler from it (StoreError if it can't).

    With a notifier, each task disabled after too many failures is alerted after its commit.
    """
    store = SqliteStore(options.state_path)
    store.open(reset=options.reset_state)

    def restored() -> Scheduler:
        records, settings = store.load()
        core = Scheduler(policy, resources)
        core.restore(records, settings, time.time())
        return core

    core = restored()
    gc.freeze()  # restored records live on: keep the collector from rescanning them
    journal = AlertingStore(store, notifier) if notifier is not None else store
    return Service(core, journal, time.time, rebuild=restored), store


def bind(options: DaemonOptions) -> list[socket.socket]:
    """Listening sockets for the address and port; UsageError when they can't be had."""
    try:
        return tornado.netutil.bind_sockets(options.port, options.address)
    except OSError as err:
        where = f"{options.address}:{options.port}"
        raise UsageError(f"cannot listen on {where}: {err.strerror or err}") from err


async def serve(
    service: Service,
    sockets: list[socket.socket],
    options: DaemonOptions,
    server_options: ServerOptions,
) -> None:
    """Serve the API until SIGTERM or SIGINT, pruning workers and history periodically."""
    app = make_app(service, server_options)
    server = http_server(app, server_options)
    server.add_sockets(sockets)
    port = sockets[0].getsockname()[1]
    logger.info("pipesd %d listening on http://%s:%d", os.getpid(), options.address, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    interval = max(0.2, min(service.core.policy.worker_disconnect_delay / 4, 10.0))
    pruner = tornado.ioloop.PeriodicCallback(
        lambda: _housekeeping(service, options), interval * 1000
    )
    pruner.start()
    await stop.wait()
    logger.info("pipesd stopping")
    pruner.stop()
    server.stop()


def http_server(app: tornado.web.Application, options: ServerOptions) -> CappedHTTPServer:
    """The HTTP server: bounded connections, header/idle/body timeouts, no spin on EMFILE."""
    install_log_limits()
    budget = connection_budget(options.max_connections, raise_fd_limit())
    return CappedHTTPServer(
        app,
        # RPCHandler enforces the real limit itself, so clients get a JSON 413; bodies far
        # beyond it are cut off here instead of being read to the end.
        max_body_size=4 * options.max_body_bytes,
        max_connections=budget,
        header_timeout=options.header_timeout,
        idle_timeout=options.idle_timeout,
        body_timeout=options.body_timeout,
    )


def _housekeeping(service: Service, options: DaemonOptions) -> None:
    try:
        service.call("prune", {})
        service.store.prune_history(time.time() - options.history_days * 86400)
    except StoreError as err:  # one line: the same failure would repeat every round
        logger.warning("housekeeping not done, will try again: %s", err)
    except Exception:  # keep serving: the next round tries again
        logger.exception("housekeeping failed; will try again")


def run(
    options: DaemonOptions,
    sockets: list[socket.socket],
    policy: Policy,
    resources: dict[str, int],
    server_options: ServerOptions,
) -> None:
    """Open state and serve on the bound sockets in the foreground until stopped."""
    notifier = Notifier(alert_settings()).start()
    service, store = open_service(options, policy, resources, notifier)
    logger.info("restored %d tasks from %s", len(service.core.tasks), options.state_path)
    try:
        asyncio.run(serve(service, sockets, options, server_options))
    finally:
        store.close()
        notifier.close()  # a batched digest goes out now
