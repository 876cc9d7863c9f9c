"""The JSON error shape every API handler answers with: {"error": one line}, and the status."""

from __future__ import annotations

import json
from typing import Any

import tornado.web


class JSONHandler(tornado.web.RequestHandler):
    """A handler whose replies and errors are JSON; 4xx errors log no traceback."""

    def write_json(self, value: Any, status: int = 200) -> None:
        """Send value as the JSON reply with this status."""
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(value, separators=(",", ":"), allow_nan=False))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """{"error": message} from the HTTPError's message, else the status's reason."""
        exc_info = kwargs.get("exc_info")
        error = exc_info[1] if exc_info else None
        if isinstance(error, tornado.web.HTTPError) and error.log_message:
            message = error.log_message % error.args if error.args else error.log_message
        else:
            message = self._reason
        self.write_json({"error": message}, status_code)

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        """Tracebacks for unexpected errors only: 4xx are logged once, with the request."""
        if not isinstance(value, tornado.web.HTTPError):
            super().log_exception(typ, value, tb)
