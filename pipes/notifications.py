"""Failure alerts: e-mail over SMTP and a JSON webhook, sent on a thread of their own.

A worker alerts about each task that failed in it; pipesd about each task it disables after
too many failures. Sending never fails the caller: a notifier that fails logs one line. With
[email] batch (or any [batch_email] option), failures are mailed as one digest per interval,
and at the latest when the notifier closes (a worker: at the end of its run).
Differs from luigi: the mail carries the tail of the task's log, and close() waits at most
[webhook]/[smtp] timeout seconds in all, so a dead mail server never holds a run up.
"""

from __future__ import annotations

import html
import json
import logging
import queue
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from pipes.config import Config, get_config
from pipes.exceptions import ConfigError

if TYPE_CHECKING:
    from pipes.task import Task

logger = logging.getLogger("pipes.notifications")

FORMATS = ("plain", "html", "none")
LOG_LINES = 50  # of the task's log in a single alert
WEBHOOK_TRIES = 3


@dataclass(frozen=True)
class Alert:
    """One task that failed (status FAILED) or was disabled after too many failures (DISABLED)."""

    task: str  # how the summary names it: 'Ingest(date=2024-01-01)'
    task_id: str
    family: str
    params: dict[str, str]
    status: str
    host: str
    error: str
    log_tail: str
    time: float
    sent_by: str = "worker"  # or "pipesd"
    owners: tuple[str, ...] = ()  # Task.owner_email: recipients besides [email] receiver

    def as_json(self) -> dict[str, Any]:
        """The webhook's body."""
        return {**asdict(self), "owners": list(self.owners)}


@dataclass(frozen=True)
class EmailSettings:
    """[email], [smtp] and [batch_email]: where and how alert mail goes."""

    receivers: tuple[str, ...] = ()
    sender: str = ""
    prefix: str = ""
    format: str = "plain"
    host: str = "localhost"
    port: int = 0
    ssl: bool = False
    no_tls: bool = False
    username: str | None = None
    password: str | None = None
    timeout: float = 5.0
    batch: bool = False
    batch_seconds: float = 3600.0
    error_lines: int = 20  # of each task's log in a digest


@dataclass(frozen=True)
class AlertSettings:
    """Which notifiers are on: e-mail (None when format is none) and the webhook URL."""

    email: EmailSettings | None = None
    webhook_url: str | None = None
    webhook_timeout: float = 5.0

    @property
    def enabled(self) -> bool:
        """Whether any notifier may send something."""
        return self.email is not None or self.webhook_url is not None


def _addresses(text: str | None) -> tuple[str, ...]:
    return tuple(a for a in (text or "").replace(",", " ").split() if a)


def alert_settings(config: Config | None = None) -> AlertSettings:
    """The notifiers configured in [email], [smtp], [batch_email] and [webhook]."""
    config = config or get_config()
    email_format = (config.get("email", "format") or "plain").lower()
    if email_format not in FORMATS:
        where = config.where("email", "format")
        raise ConfigError(f"{where} = {email_format!r} is not one of {', '.join(FORMATS)}")
    email = None
    # Mail is on once [email] or [smtp] says anything: a task's owner_email alone must not
    # make every run try a mail server on localhost.
    if email_format != "none" and (config.section("email") or config.section("smtp")):
        email = EmailSettings(
            receivers=_addresses(config.get("email", "receiver")),
            sender=config.get("email", "sender") or f"pipes@{socket.getfqdn()}",
            prefix=config.get("email", "prefix") or "",
            format=email_format,
            host=config.get("smtp", "host") or "localhost",
            port=config.getint("smtp", "port", 0),
            ssl=config.getboolean("smtp", "ssl", False),
            no_tls=config.getboolean("smtp", "no_tls", False),
            username=config.get("smtp", "username"),
            password=config.get("smtp", "password"),
            timeout=config.getfloat("smtp", "timeout", 5.0),
            batch=config.getboolean("email", "batch", bool(config.section("batch_email"))),
            batch_seconds=60 * config.getfloat("batch_email", "email_interval", 60.0),
            error_lines=config.getint("batch_email", "error_lines", 20),
        )
    return AlertSettings(
        email=email,
        webhook_url=config.get("webhook", "url") or None,
        webhook_timeout=config.getfloat("webhook", "timeout", 5.0),
    )


def task_alert(
    task: Task, error: str | None, log_tail: str | None, status: str = "FAILED"
) -> Alert:
    """The alert for a task that failed in this worker (or, SCHEDULING_ERROR, in its walk)."""
    return Alert(
        task=str(task),
        task_id=task.task_id,
        family=task.get_task_family(),
        params=task.to_str_params(),
        status=status,
        host=socket.gethostname(),
        error=error or "",
        log_tail=log_tail or "",
        time=time.time(),
        owners=task.owner_addresses(),
    )


def tail_lines(text: str, lines: int) -> str:
    """The last `lines` lines of text."""
    return "\n".join(text.rstrip("\n").splitlines()[-lines:])


def alert_text(alert: Alert, log_lines: int = LOG_LINES) -> str:
    """The plain-text body for one alert: task, host, parameters, error, then its log's tail."""
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(alert.time))
    lines = [
        f"Task:   {alert.task}",
        f"Status: {alert.status} at {when} (seen by {alert.sent_by})",
        f"Host:   {alert.host}",
        "Parameters:",
        *(f"  {name} = {value}" for name, value in alert.params.items()),
        "",
        "Error:",
        alert.error.rstrip() or "(no error text)",
        "",
        f"Log tail (last {log_lines} lines):",
        tail_lines(alert.log_tail, log_lines) or "(the task wrote nothing)",
    ]
    return "\n".join(lines) + "\n"


@dataclass
class _Mail:
    subject: str
    body: str
    recipients: tuple[str, ...]


def _subject(settings: EmailSettings, text: str) -> str:
    return f"{settings.prefix} {text}".strip()


def single_mail(settings: EmailSettings, alert: Alert) -> _Mail | None:
    """The mail for one alert; None when it has nobody to go to."""
    recipients = tuple(dict.fromkeys((*settings.receivers, *alert.owners)))
    if not recipients:
        return None
    subject = _subject(settings, f"pipes: {alert.task} {alert.status} on {alert.host}")
    return _Mail(subject, alert_text(alert), recipients)


def digest_mails(settings: EmailSettings, alerts: list[Alert]) -> list[_Mail]:
    """One digest per group of recipients: receivers see every alert, owners their own tasks."""
    per_address: dict[str, list[Alert]] = {}
    for alert in alerts:
        for address in dict.fromkeys((*settings.receivers, *alert.owners)):
            per_address.setdefault(address, []).append(alert)
    groups: dict[tuple[int, ...], list[str]] = {}
    for address, mine in per_address.items():
        groups.setdefault(tuple(id(a) for a in mine), []).append(address)
    mails = []
    for key, addresses in groups.items():
        mine = [a for a in alerts if id(a) in key]
        hosts = ", ".join(sorted({a.host for a in mine}))
        subject = _subject(settings, f"pipes: {len(mine)} task failures on {hosts}")
        parts = [alert_text(a, settings.error_lines) for a in mine]
        mails.append(_Mail(subject, ("\n" + "-" * 72 + "\n\n").join(parts), tuple(addresses)))
    return mails


def send_mail(settings: EmailSettings, mail: _Mail) -> None:
    """Send one mail through smtplib (STARTTLS unless [smtp] no_tls; SMTP_SSL with ssl)."""
    # Imported here: a run that sends no mail should not pay for them at start.
    import smtplib
    from email.message import EmailMessage

    message = EmailMessage()
    message["Subject"] = mail.subject
    message["From"] = settings.sender
    message["To"] = ", ".join(mail.recipients)
    if settings.format == "html":
        message.set_content(
            f"<html><body><pre>{html.escape(mail.body)}</pre></body></html>", "html"
        )
    else:
        message.set_content(mail.body)
    kind = smtplib.SMTP_SSL if settings.ssl else smtplib.SMTP
    with kind(settings.host, settings.port, timeout=settings.timeout) as smtp:
        if not settings.ssl and not settings.no_tls:
            smtp.starttls()
        if settings.username:
            smtp.login(settings.username, settings.password or "")
        smtp.send_message(message)


def post_webhook(url: str, alert: Alert, budget: float) -> None:
    """POST the alert as JSON; retry a 5xx or a connection error while `budget` seconds last."""
    import urllib.error  # here, not at the top: see send_mail
    import urllib.request

    body = json.dumps(alert.as_json()).encode("utf-8")
    give_up = time.monotonic() + budget
    for attempt in range(1, WEBHOOK_TRIES + 1):
        request = urllib.request.Request(
            url, data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        left = give_up - time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=max(0.1, left)):
                return
        except urllib.error.HTTPError as err:
            if err.code < 500 or attempt == WEBHOOK_TRIES:
                raise
        except (urllib.error.URLError, OSError):
            if attempt == WEBHOOK_TRIES:
                raise
        pause = 0.25 * attempt
        if time.monotonic() + pause >= give_up:
            raise TimeoutError(f"gave up after {attempt} tries in {budget:g} s")
        time.sleep(pause)


def _why(err: BaseException) -> str:
    reason = getattr(err, "reason", None)  # urllib's URLError wraps the socket's error
    if isinstance(reason, BaseException):
        err = reason
    return " ".join(f"{type(err).__name__}: {err}".split())


@dataclass
class Notifier:
    """Sends alerts on one daemon thread; notify() never blocks and never raises.

    Start with start(); close() sends a pending digest and waits at most the notifiers'
    timeouts for what is queued, then leaves the rest with one log line.
    """

    settings: AlertSettings
    _queue: queue.Queue[Alert | None] = field(default_factory=queue.Queue)
    _batch: list[Alert] = field(default_factory=list)
    _thread: threading.Thread | None = None
    sent: int = 0

    def start(self) -> Notifier:
        """Start the sending thread, if any notifier is configured."""
        if self.settings.enabled and self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="pipes-alerts", daemon=True)
            self._thread.start()
        return self

    def notify(self, alert: Alert) -> None:
        """Queue one alert for sending."""
        if self._thread is not None:
            self._queue.put(alert)

    def task_failed(
        self, task: Task, error: str | None, log_tail: str | None, status: str = "FAILED"
    ) -> None:
        """The worker's hook: queue the alert for a task that failed here."""
        if self._thread is None:
            return
        try:
            self.notify(task_alert(task, error, log_tail, status))
        except Exception as err:  # e.g. a broken owner_email property: never fail the run
            logger.warning("alert for %s not sent: %s", task, _why(err))

    def close(self) -> None:
        """Send the pending digest and what is queued, waiting at most the notifiers' timeouts."""
        if self._thread is None:
            return
        self._queue.put(None)
        email = self.settings.email
        budget = (email.timeout if email else 0.0) + (
            self.settings.webhook_timeout if self.settings.webhook_url else 0.0
        )
        self._thread.join(budget + 1.0)
        if self._thread.is_alive():
            logger.warning("alerts: gave up waiting after %g s; some were not sent", budget + 1)
        self._thread = None

    def _loop(self) -> None:
        email = self.settings.email
        interval = email.batch_seconds if email and email.batch else None
        next_digest = time.monotonic() + (interval or 0)
        while True:
            timeout = max(0.0, next_digest - time.monotonic()) if interval else None
            try:
                alert = self._queue.get(timeout=timeout)
            except queue.Empty:
                pass  # time for the digest
            else:
                if alert is None:
                    self._send_digest()
                    return
                self._send(alert)
            if interval and time.monotonic() >= next_digest:
                self._send_digest()
                next_digest = time.monotonic() + interval

    def _send(self, alert: Alert) -> None:
        email, url = self.settings.email, self.settings.webhook_url
        if url:
            timeout = self.settings.webhook_timeout
            self._guarded(f"webhook {url}", lambda: post_webhook(url, alert, timeout))
        if email and email.batch:
            self._batch.append(alert)
        elif email:
            mail = single_mail(email, alert)
            if mail is not None:
                self._guarded(
                    f"mail to {', '.join(mail.recipients)}", lambda: send_mail(email, mail)
                )

    def _send_digest(self) -> None:
        email = self.settings.email
        alerts, self._batch = self._batch, []
        if not email or not alerts:
            return
        for mail in digest_mails(email, alerts):
            self._guarded(
                f"mail to {', '.join(mail.recipients)}",
                lambda m=mail: send_mail(email, m),  # type: ignore[misc]
            )

    def _guarded(self, what: str, send: Callable[[], None]) -> None:
        """Run one send; a failure is one WARNING line, never an exception."""
        try:
            send()
        except Exception as err:
            logger.warning("alert not sent (%s): %s", what, _why(err))
        else:
            self.sent += 1
