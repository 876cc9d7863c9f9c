"""The `pipesd` command line: options, config, optional daemonizing, then the server.

Differs from luigi: state lives in SQLite and is committed before every reply, so there is
no --state-path pickle written only at clean shutdown; a bad state file stops the start.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import socket
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

from pipes.cli import package_version
from pipes.config import get_config, reload_config
from pipes.exceptions import ConfigError, UsageError
from pipes.notifications import alert_settings
from pipes.options import configured_resources, scheduler_policy
from pipes.server import daemon
from pipes.server.app import ServerOptions


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def parser() -> argparse.ArgumentParser:
    """pipesd's argument parser."""
    p = _Parser(
        prog="pipesd",
        allow_abbrev=False,
        description="The pipes central scheduler: de-duplicates work across workers.",
    )
    p.add_argument("--address", default=None, help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (default 8082)")
    p.add_argument("--state-path", help="SQLite state file (default pipesd-state.sqlite)")
    p.add_argument(
        "--reset-state",
        action="store_true",
        help="discard the state file's contents and start empty",
    )
    p.add_argument(
        "--logdir", help="write pipesd.log into this existing directory (--background needs it)"
    )
    p.add_argument("--background", action="store_true", help="detach and run as a daemon")
    p.add_argument("--pidfile", help="with --background: write the daemon's pid here")
    p.add_argument("--config", help="read this config file after the usual ones")
    p.add_argument(
        "--max-body-bytes",
        type=int,
        default=None,
        help=f"largest RPC request body (default {ServerOptions.max_body_bytes})",
    )
    p.add_argument(
        "--luigi-api",
        action="store_true",
        help="also serve Luigi workers' /api/<method> RPC (docs/migrating-from-luigid.md)",
    )
    p.add_argument("--version", action="version", version=f"pipesd {package_version()}")
    p.add_argument(
        "--log-level",
        type=str.upper,
        default=None,
        choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
    )
    return p


def options_from(args: argparse.Namespace) -> tuple[daemon.DaemonOptions, ServerOptions]:
    """Daemon and server options: command line first, then [scheduler] config, then defaults."""
    if args.config:
        if not Path(args.config).is_file():
            raise ConfigError(f"config file {args.config} does not exist")
        reload_config([args.config])
    config = get_config()
    opts = daemon.DaemonOptions(
        address=args.address or config.get("scheduler", "address") or "127.0.0.1",
        port=args.port if args.port is not None else config.getint("scheduler", "port", 8082),
        state_path=args.state_path
        or config.get("scheduler", "state_path")
        or "pipesd-state.sqlite",
        reset_state=args.reset_state,
        history_days=config.getfloat("scheduler", "history_days", 30.0),
    )
    if args.background and not args.logdir:
        raise UsageError("--background needs --logdir (a daemon has no terminal to log to)")
    if args.logdir:
        _check_logdir(args.logdir)
    return opts, server_options(args, opts.address)


def server_options(args: argparse.Namespace, address: str) -> ServerOptions:
    """The HTTP side's options: token, limits and timeouts, host names it answers to."""
    config = get_config()
    default = ServerOptions()
    body = config.getint("scheduler", "max_body_mb", 0) * 1024 * 1024 or default.max_body_bytes
    body = config.getint("scheduler", "max_body_bytes", body)
    if args.max_body_bytes is not None:
        body = args.max_body_bytes
    token = os.environ.get("PIPES_AUTH_TOKEN") or config.get("scheduler", "auth_token")
    hosts = re.split(r"[\s,]+", config.get("scheduler", "allowed_hosts") or "")
    options = ServerOptions(
        token=token or None,
        public_read=config.getboolean("scheduler", "public_read", False),
        max_body_bytes=body,
        max_json_items=config.getint("scheduler", "max_json_items", default.max_json_items),
        allowed_hosts=frozenset(h.lower() for h in (*hosts, address, socket.gethostname()) if h),
        max_connections=config.getint("scheduler", "max_connections", default.max_connections),
        header_timeout=config.getfloat("scheduler", "header_timeout", default.header_timeout),
        idle_timeout=config.getfloat("scheduler", "idle_timeout", default.idle_timeout),
        body_timeout=config.getfloat("scheduler", "body_timeout", default.body_timeout),
        luigi_api=args.luigi_api
        or config.getboolean("scheduler", "luigi_api", False)
        or config.getboolean("pipesd", "luigi_api", False),
    )
    for name in LIMITS:
        if not getattr(options, name) > 0:
            where = "--max-body-bytes" if name == "max_body_bytes" else f"[scheduler] {name}"
            raise ConfigError(f"{where} must be a positive number, not {getattr(options, name)}")
    return options


LIMITS = (
    "max_body_bytes",
    "max_json_items",
    "max_connections",
    "header_timeout",
    "idle_timeout",
    "body_timeout",
)


def _check_logdir(logdir: str) -> None:
    """The same one-line error in the foreground and with --background, before any file exists."""
    path = Path(logdir)
    if not path.is_dir():
        raise UsageError(f"log directory {logdir} does not exist (create it first)")
    if not os.access(path, os.W_OK | os.X_OK):
        raise UsageError(f"log directory {logdir} is not writable")


def start(argv: Sequence[str] | None, configure_logging: Any) -> None:
    """Parse argv and run pipesd until SIGTERM; raises PipesError on bad input or state.

    Whatever can refuse the start (options, log directory, pidfile, port) is checked before
    the state file is opened, so a failed start leaves no file behind.
    """
    args = parser().parse_args(argv)
    opts, server = options_from(args)
    policy, resources = scheduler_policy(), configured_resources()
    alert_settings()  # a bad [email] format stops the start, not the first alert
    configure_logging(args.log_level)  # checks the level before anything starts
    if args.background and args.pidfile:
        _remove_stale_pidfile(args.pidfile)
    sockets = daemon.bind(opts)
    try:
        _, store = daemon.open_service(opts, policy, resources)  # fail here, not after detaching
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    store.close()
    opts = daemon.DaemonOptions(**{**opts.__dict__, "reset_state": False})
    log_file = str(Path(args.logdir, "pipesd.log")) if args.logdir else None
    with _detached(args, sockets):
        configure_logging(args.log_level, log_file)
        logging.getLogger("pipes.server").info("starting with state %s", opts.state_path)
        daemon.run(opts, sockets, policy, resources, server)


@contextlib.contextmanager
def _detached(args: argparse.Namespace, sockets: list[socket.socket]) -> Iterator[None]:
    if not args.background:
        yield
        return
    import daemon as python_daemon  # python-daemon, only when detaching
    import daemon.pidfile

    pidfile = None
    if args.pidfile:
        pidfile = daemon.pidfile.TimeoutPIDLockFile(
            os.path.abspath(args.pidfile), acquire_timeout=0
        )
    out = open(Path(args.logdir, "pipesd.out"), "a")  # no `with`: the daemon keeps it open
    context = python_daemon.DaemonContext(
        working_directory=os.getcwd(),
        pidfile=pidfile,
        files_preserve=[s.fileno() for s in sockets],
        stdout=out,
        stderr=out,
        umask=0o022,
    )
    with context:
        yield


def _remove_stale_pidfile(path: str) -> None:
    try:
        pid = int(Path(path).read_text().strip() or 0)
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        Path(path).unlink(missing_ok=True)
        return
    except PermissionError:
        pass
    raise UsageError(f"pidfile {path} names running process {pid}: pipesd already running?")
