"""The operator status page: HTML shells and static files served by pipesd.

The pages carry no scheduler data. Their scripts read everything from the JSON API, so the
API's token guard covers the page too, and a page costs the daemon nothing beyond one file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tornado.web

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

# Scripts and styles come only from /static/: a task parameter that sneaks markup into the
# page still cannot run (defence in depth behind textContent-only rendering).
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)


def _security_headers(handler: tornado.web.RequestHandler) -> None:
    handler.set_header("X-Content-Type-Options", "nosniff")
    handler.set_header("Referrer-Policy", "same-origin")
    handler.set_header("X-Frame-Options", "DENY")


class PageHandler(tornado.web.RequestHandler):
    """One status page: a template rendered with the page name and the task id from the path."""

    def initialize(self, template: str, title: str) -> None:
        self.template = template
        self.title = title

    def get_template_path(self) -> str:
        return str(TEMPLATES)

    def static_url(self, path: str, include_host: bool | None = None, **kwargs: Any) -> str:
        """/static/<path>?v=<hash>, so a browser caches a file until it changes."""
        version = tornado.web.StaticFileHandler.get_version({"static_path": str(STATIC)}, path)
        return f"/static/{path}?v={version}" if version else f"/static/{path}"

    def get(self, task_id: str | None = None) -> None:
        _security_headers(self)
        self.set_header("Content-Security-Policy", CSP)
        self.set_header("Cache-Control", "no-cache")
        self.render(self.template, title=self.title, task_id=task_id or "")


class StaticHandler(tornado.web.StaticFileHandler):
    """Files under static/, cached for good when asked for with ?v=; errors as JSON."""

    def set_extra_headers(self, path: str) -> None:
        _security_headers(self)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish({"error": f"no such file {self.request.path}"})


def routes() -> list[tuple[str, type[tornado.web.RequestHandler], dict[str, Any]]]:
    """The status page's URL rules, to mount before the application's catch-all 404."""
    task = r"/tasks/([^/]+)"
    pages = [
        (r"/", "overview.html", "Overview"),
        (r"/tasks", "tasks.html", "Tasks"),
        (task, "task.html", "Task"),
        (task + r"/graph", "graph.html", "Graph"),
        (r"/workers", "workers.html", "Workers"),
        (r"/resources", "resources.html", "Resources"),
    ]
    rules: list[tuple[str, type[tornado.web.RequestHandler], dict[str, Any]]] = [
        (pattern, PageHandler, {"template": template, "title": title})
        for pattern, template, title in pages
    ]
    rules.append((r"/static/(.+)", StaticHandler, {"path": str(STATIC)}))
    return rules
