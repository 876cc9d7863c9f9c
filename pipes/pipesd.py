"""The `pipesd` command line: options, config, optional daemonizing, then the server.

Differs from luigi: state lives in SQLite and is committed before every reply, so there is
no --state-path pickle written only at clean shutdown; a bad state file stops the start.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import socket
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

from pipes.cli import package_version
from pipes.config import get_config, reload_config
from pipes.exceptions import ConfigError, UsageError
from pipes.interface import configured_resources, scheduler_policy
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
    p.add_argument("--logdir", help="write pipesd.log here (with --background: required)")
    p.add_argument("--background", action="store_true", help="detach and run as a daemon")
    p.add_argument("--pidfile", help="with --background: write the daemon's pid here")
    p.add_argument("--config", help="read this config file after the usual ones")
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
    token = os.environ.get("PIPES_AUTH_TOKEN") or config.get("scheduler", "auth_token")
    opts = daemon.DaemonOptions(
        address=args.address or config.get("scheduler", "address") or "127.0.0.1",
        port=args.port if args.port is not None else config.getint("scheduler", "port", 8082),
        state_path=args.state_path
        or config.get("scheduler", "state_path")
        or "pipesd-state.sqlite",
        reset_state=args.reset_state,
        history_days=config.getfloat("scheduler", "history_days", 30.0),
    )
    server = ServerOptions(
        token=token or None,
        public_read=config.getboolean("scheduler", "public_read", False),
        max_body_bytes=config.getint("scheduler", "max_body_mb", 64) * 1024 * 1024,
    )
    if args.background and not args.logdir:
        raise UsageError("--background needs --logdir (a daemon has no terminal to log to)")
    return opts, server


def start(argv: Sequence[str] | None, configure_logging: Any) -> None:
    """Parse argv and run pipesd until SIGTERM; raises PipesError on bad input or state."""
    args = parser().parse_args(argv)
    opts, server = options_from(args)
    policy, resources = scheduler_policy(), configured_resources()
    configure_logging(args.log_level)  # checks the level before anything starts
    _, store = daemon.open_service(opts, policy, resources)  # fail here, not after detaching
    store.close()
    opts = daemon.DaemonOptions(**{**opts.__dict__, "reset_state": False})
    sockets = daemon.bind(opts)
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

    Path(args.logdir).mkdir(parents=True, exist_ok=True)
    pidfile = None
    if args.pidfile:
        _remove_stale_pidfile(args.pidfile)
        pidfile = daemon.pidfile.TimeoutPIDLockFile(
            os.path.abspath(args.pidfile), acquire_timeout=0
        )
    out = open(Path(args.logdir, "pipesd.out"), "a")  # noqa: SIM115 -- the daemon keeps it
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
