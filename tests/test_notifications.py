"""Failure alerts reach a real SMTP server (aiosmtpd) and a real HTTP server on loopback."""

from __future__ import annotations

import email
import email.policy
import http.server
import json
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from pipesd_fixtures import free_port, wait_for

from pipes.exit_codes import ExitCode

try:
    from aiosmtpd.controller import Controller
except ImportError:  # pragma: no cover - the test extra installs it
    Controller = None

FAILING_MODULE = """
import pipes


class Boom(pipes.Task):
    day = pipes.IntParameter(default=3)

    def output(self):
        return pipes.LocalTarget(f"out/boom-{self.day}.txt")

    def run(self):
        for row in range(1, 17):
            print(f"processing row {row}")
        raise ValueError(f"bad row 17 on day {self.day}")


class Owned(Boom):
    owner_email = "owner@example.com"


class Broken(pipes.Task):
    def requires(self):
        raise KeyError("no such region")


class Both(pipes.WrapperTask):
    def requires(self):
        return [Boom(day=1), Boom(day=2)]
"""

HOST = socket.gethostname()


@dataclass
class Mail:
    sender: str
    recipients: list[str]
    message: email.message.EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def body(self) -> str:
        return self.message.get_content().replace("\r\n", "\n")


@dataclass
class SmtpServer:
    port: int
    mails: list[Mail] = field(default_factory=list)

    def config(self) -> str:
        return f"[smtp]\nhost = 127.0.0.1\nport = {self.port}\nno_tls = true\ntimeout = 5\n"

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.mails.append(Mail(envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    if Controller is None:
        pytest.fail("aiosmtpd is not installed: pip install -e '.[test]'")
    server = SmtpServer(free_port())
    controller = Controller(server, hostname="127.0.0.1", port=server.port)
    controller.start()
    yield server
    controller.stop()


@dataclass
class HookServer:
    """An HTTP server that records JSON POST bodies; answers `statuses` in turn, then 200."""

    port: int
    statuses: list[int] = field(default_factory=list)
    bodies: list[dict] = field(default_factory=list)
    answered: list[int] = field(default_factory=list)
    hang: bool = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"


@pytest.fixture
def hook_server() -> Iterator[HookServer]:
    hook = HookServer(free_port())
    release = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            hook.bodies.append(json.loads(body))
            if hook.hang:
                release.wait(30)
            status = hook.statuses.pop(0) if hook.statuses else 200
            hook.answered.append(status)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", hook.port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield hook
    release.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def failing(write_file):
    write_file("failing.py", FAILING_MODULE)


def _config(write_file, *parts: str) -> None:
    write_file("pipes.cfg", "[core]\nlog_level = WARNING\n\n" + "\n".join(parts))


EMAIL = "[email]\nreceiver = ops@example.com\nsender = pipes@example.com\nprefix = [ETL]\n"


def test_failure_email_arrives_with_traceback_parameters_and_log_tail(
    failing, write_file, run_pipes, smtp_server
):
    _config(write_file, EMAIL, smtp_server.config())
    result = run_pipes("--module", "failing", "Boom", "--day", "7", script=True)

    assert result.returncode == ExitCode.TASK_FAILED, result.stderr
    (mail,) = smtp_server.mails  # close() waited for the send before the process ended
    assert mail.sender == "pipes@example.com" and mail.recipients == ["ops@example.com"]
    assert mail.subject == f"[ETL] pipes: Boom(day=7) FAILED on {HOST}"
    body = mail.body
    assert "Task:   Boom(day=7)\n" in body and f"Host:   {HOST}\n" in body
    assert "Parameters:\n  day = 7\n" in body
    assert "Traceback (most recent call last)" in body
    assert "ValueError: bad row 17 on day 7" in body
    assert "processing row 16" in body.split("Log tail (last 50 lines):")[1]
    assert "alert not sent" not in result.stderr


def test_scheduling_error_is_mailed_with_its_traceback(failing, write_file, run_pipes, smtp_server):
    _config(write_file, EMAIL, smtp_server.config())
    result = run_pipes("--module", "failing", "Broken", script=True)
    assert result.returncode == ExitCode.SCHEDULING_ERROR
    (mail,) = smtp_server.mails
    assert mail.subject == f"[ETL] pipes: Broken() SCHEDULING_ERROR on {HOST}"
    assert "KeyError: 'no such region'" in mail.body and "requires" in mail.body


def test_owner_email_adds_a_recipient_to_the_receivers(failing, write_file, run_pipes, smtp_server):
    _config(write_file, EMAIL, smtp_server.config())
    result = run_pipes("--module", "failing", "Owned", script=True)
    assert result.returncode == ExitCode.TASK_FAILED
    (mail,) = smtp_server.mails
    assert mail.recipients == ["ops@example.com", "owner@example.com"]


def test_owner_email_alone_sends_nothing_when_mail_is_not_configured(
    failing, write_file, run_pipes
):
    _config(write_file)  # no [email] or [smtp]: no attempt at a mail server on localhost
    result = run_pipes("--module", "failing", "Owned", script=True)
    assert result.returncode == ExitCode.TASK_FAILED
    assert "alert" not in result.stderr


def test_html_format_escapes_the_error_into_a_pre_block(
    failing, write_file, run_pipes, smtp_server
):
    _config(write_file, EMAIL + "format = html\n", smtp_server.config())
    run_pipes("--module", "failing", "Boom", script=True)
    (mail,) = smtp_server.mails
    assert mail.message.get_content_type() == "text/html"
    assert "<pre>Task:   Boom(day=3)" in mail.body


def test_batch_mode_sends_one_digest_of_all_failures_at_end_of_run(
    failing, write_file, run_pipes, smtp_server
):
    _config(write_file, EMAIL + "batch = true\n", smtp_server.config())
    result = run_pipes("--module", "failing", "Both", script=True)

    assert result.returncode == ExitCode.TASK_FAILED
    (mail,) = smtp_server.mails
    assert mail.subject == f"[ETL] pipes: 2 task failures on {HOST}"
    assert "Task:   Boom(day=1)" in mail.body and "Task:   Boom(day=2)" in mail.body
    assert "Log tail (last 20 lines):" in mail.body  # [batch_email] error_lines


def test_luigi_batch_email_section_turns_batch_mode_on(failing, write_file, run_pipes, smtp_server):
    batch = "[batch_email]\nemail_interval = 60\nerror_lines = 5\n"
    _config(write_file, EMAIL, batch, smtp_server.config())
    run_pipes("--module", "failing", "Both", script=True)
    (mail,) = smtp_server.mails
    assert "Log tail (last 5 lines):" in mail.body and "processing row 11" not in mail.body


def test_webhook_post_reaches_http_server_after_a_503_retry(
    failing, write_file, run_pipes, hook_server
):
    hook_server.statuses = [503]
    _config(write_file, f"[webhook]\nurl = {hook_server.url}\n")
    result = run_pipes("--module", "failing", "Boom", script=True)

    assert result.returncode == ExitCode.TASK_FAILED
    assert hook_server.answered == [503, 200]
    body = hook_server.bodies[-1]
    assert body["task"] == "Boom(day=3)" and body["family"] == "Boom"
    assert body["params"] == {"day": "3"} and body["host"] == HOST
    assert body["status"] == "FAILED" and body["sent_by"] == "worker"
    assert "ValueError: bad row 17 on day 3" in body["error"]
    assert "processing row 16" in body["log_tail"]
    assert "alert not sent" not in result.stderr


def test_webhook_4xx_is_not_retried_and_logs_one_line(failing, write_file, run_pipes, hook_server):
    hook_server.statuses = [404]
    _config(write_file, f"[webhook]\nurl = {hook_server.url}\n")
    result = run_pipes("--module", "failing", "Boom", script=True)
    assert result.returncode == ExitCode.TASK_FAILED
    assert hook_server.answered == [404]
    lines = [line for line in result.stderr.splitlines() if "alert not sent" in line]
    assert lines == [
        f"{lines[0][:23]} WARNING pipes.notifications: alert not sent (webhook"
        f" {hook_server.url}): HTTPError: HTTP Error 404: Not Found"
    ]


def test_dead_smtp_server_logs_one_line_and_keeps_the_runs_exit_code(
    failing, write_file, run_pipes
):
    dead = free_port()
    _config(write_file, EMAIL, f"[smtp]\nhost = 127.0.0.1\nport = {dead}\nno_tls = true\n")
    result = run_pipes("--module", "failing", "Boom", script=True)
    assert result.returncode == ExitCode.TASK_FAILED
    lines = [line for line in result.stderr.splitlines() if "alert not sent" in line]
    assert len(lines) == 1 and "(mail to ops@example.com): ConnectionRefusedError" in lines[0]
    assert "Traceback" not in result.stderr.split("pipes summary")[0].split("ERROR")[0]


def test_hanging_webhook_holds_the_run_at_most_its_timeout(
    failing, write_file, run_pipes, hook_server
):
    hook_server.hang = True
    _config(write_file, f"[webhook]\nurl = {hook_server.url}\ntimeout = 1\n")
    started = time.monotonic()
    result = run_pipes("--module", "failing", "Boom", script=True)
    assert result.returncode == ExitCode.TASK_FAILED
    assert time.monotonic() - started < 10  # the server would hold it 30 s
    assert "alert not sent (webhook" in result.stderr or "alerts: gave up" in result.stderr


def test_alert_sections_are_known_options_and_get_no_warning(failing, write_file, run_pipes):
    _config(
        write_file,
        "[email]\nformat = none\nreceiver = a@example.com\nbatch = false\n",
        "[smtp]\nhost = localhost\nport = 25\nssl = false\nno_tls = false\ntimeout = 3\n",
        "[batch_email]\nemail_interval = 30\n",
        "[webhook]\ntimeout = 2\n",
        "[retcode]\nalready_running = 6\n",
    )
    result = run_pipes("--module", "failing", "Boom", "--log-level", "INFO", script=True)
    assert result.returncode == ExitCode.TASK_FAILED
    assert "unknown" not in result.stderr and "does not read Luigi" not in result.stderr


def test_bad_email_format_exits_2_with_one_line_error(failing, write_file, run_pipes):
    _config(write_file, "[email]\nformat = markdown\n")
    result = run_pipes("--module", "failing", "Boom", script=True)
    assert result.returncode == ExitCode.USAGE
    assert result.stderr == (
        "pipes: error: pipes.cfg [email] format = 'markdown' is not one of plain, html, none\n"
    )


def test_pipesd_alerts_by_mail_and_webhook_when_it_disables_a_task(
    failing, write_file, pipesd_factory, start_worker, smtp_server, hook_server
):
    daemon = pipesd_factory(
        "[scheduler]\nretry_count = 2\nretry_delay = 0\n\n"
        + EMAIL
        + "\n"
        + smtp_server.config()
        + f"\n[webhook]\nurl = {hook_server.url}\n"
    )
    write_file("pipes.cfg", "[core]\nlog_level = WARNING\nno_lock = true\n")  # workers: no alerts
    worker = start_worker("Boom", url=daemon.url, module="failing")
    assert worker.wait(60) == ExitCode.TASK_FAILED, worker.stderr  # retried at once, then disabled

    wait_for(lambda: smtp_server.mails and hook_server.bodies, 20, "pipesd's alerts")
    (body,) = hook_server.bodies
    assert body["status"] == "DISABLED" and body["sent_by"] == "pipesd"
    assert body["task"] == "Boom(day=3)" and body["host"] == HOST
    assert body["error"].startswith("pipesd disabled it after 2 failures")
    assert "ValueError: bad row 17 on day 3" in body["error"]
    assert "processing row 16" in body["log_tail"]
    (mail,) = smtp_server.mails
    assert mail.subject == f"[ETL] pipes: Boom(day=3) DISABLED on {HOST}"
    assert "Traceback (most recent call last)" in mail.body
    assert daemon.call("task_detail", task_id=body["task_id"])["status"] == "DISABLED"


def test_pipesd_alert_for_a_disabled_task_also_goes_to_its_owner_email(
    failing, write_file, pipesd_factory, start_worker, smtp_server
):
    daemon = pipesd_factory(
        "[scheduler]\nretry_count = 2\nretry_delay = 0\n\n" + EMAIL + "\n" + smtp_server.config()
    )
    write_file("pipes.cfg", "[core]\nlog_level = WARNING\nno_lock = true\n")  # workers: no alerts
    worker = start_worker("Owned", url=daemon.url, module="failing")
    assert worker.wait(60) == ExitCode.TASK_FAILED, worker.stderr

    wait_for(lambda: smtp_server.mails, 20, "pipesd's alert")
    (mail,) = smtp_server.mails
    assert "owner@example.com" in mail.recipients
    assert "DISABLED" in mail.subject
    daemon.kill()  # the owners are journaled with the task, for alerts after a restart
    with sqlite3.connect(daemon.state_path) as db:
        (data,) = db.execute("SELECT data FROM tasks WHERE data LIKE '%Owned%'").fetchone()
    assert json.loads(data)["owners"] == ["owner@example.com"]


def test_pipesd_alert_failure_never_fails_the_transition(
    failing, write_file, pipesd_factory, start_worker
):
    dead = free_port()
    daemon = pipesd_factory(
        "[scheduler]\nretry_count = 1\n\n"
        + f"[webhook]\nurl = http://127.0.0.1:{dead}/hook\ntimeout = 1\n"
    )
    write_file("pipes.cfg", "[core]\nlog_level = WARNING\n")
    worker = start_worker("Boom", url=daemon.url, module="failing")
    assert worker.wait(60) == ExitCode.TASK_FAILED, worker.stderr
    tasks = daemon.call("task_list", status="DISABLED")["tasks"]
    assert [t["family"] for t in tasks] == ["Boom"]
    daemon.stop()
    warnings = [line for line in daemon.output().splitlines() if "alert not sent" in line]
    assert len(warnings) == 1 and "ConnectionRefusedError" in warnings[0], daemon.output()
    assert "Traceback" not in daemon.output()


def test_pipesd_batch_digest_goes_out_when_pipesd_stops(
    failing, write_file, pipesd_factory, start_worker, smtp_server
):
    daemon = pipesd_factory(
        "[scheduler]\nretry_count = 1\n\n" + EMAIL + "batch = true\n\n" + smtp_server.config()
    )
    write_file("pipes.cfg", "[core]\nlog_level = WARNING\n")
    worker = start_worker("Both", url=daemon.url, module="failing")
    assert worker.wait(60) == ExitCode.TASK_FAILED, worker.stderr
    assert len(daemon.call("task_list", status="DISABLED")["tasks"]) == 2
    assert smtp_server.mails == []  # the digest waits for its interval (60 min) ...

    assert daemon.stop() == 0  # ... or for pipesd to stop
    (mail,) = smtp_server.mails
    assert mail.subject == f"[ETL] pipes: 2 task failures on {HOST}"
    assert "Task:   Boom(day=1)" in mail.body and "Task:   Boom(day=2)" in mail.body
    assert mail.body.count("(seen by pipesd)") == 2
