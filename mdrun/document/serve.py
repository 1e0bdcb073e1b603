"""The preview of `mdrun watch --serve`: the document's latest HTML export, on 127.0.0.1 only.

This module owns the page being served (with a small script that reloads it when a run has
finished) and the HTTP server; producing the HTML and deciding when to publish it is `watch`'s job.
The standard library's threading server is enough for one person's browser tabs.
"""

from __future__ import annotations

import html
import re
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

from mdrun.errors import UsageError

HOST = "127.0.0.1"
"""Only this machine can see the preview: a document's outputs may be private."""

POLL_MILLISECONDS = 500
"""How often an open page asks whether a newer run has finished."""

STOP_POLL_SECONDS = 0.05
"""How soon the server thread notices that it must stop (the default, 0.5 s, slows Ctrl-C)."""

_RELOAD_SCRIPT = """\
<script>
(() => {
  // Reload when a newer run has been published; keep the reader's place across reloads.
  const shown = %(version)d;
  const key = "mdrun-scroll:" + location.pathname;
  const saved = sessionStorage.getItem(key);
  if (saved !== null) {
    sessionStorage.removeItem(key);
    addEventListener("load", () => scrollTo(0, Number(saved)));
  }
  setInterval(async () => {
    try {
      const response = await fetch("/version", {cache: "no-store"});
      if (Number(await response.text()) !== shown) {
        sessionStorage.setItem(key, String(scrollY));
        location.reload();
      }
    } catch (error) {
      // mdrun stopped or is restarting: keep the page as it is.
    }
  }, %(poll)d);
})();
</script>
"""

_BANNER = (
    '<div id="mdrun-error" style="background:#fde8e8;border:1px solid #c0392b;'
    'padding:0.5em 1em;margin:0 0 1em;white-space:pre-wrap;font-family:monospace">'
    "mdrun: %s</div>"
)

_BODY_OPEN = re.compile(rb"<body[^>]*>", re.IGNORECASE)

_WAITING = b"<!DOCTYPE html><html><head><title>mdrun</title></head><body>" \
    b"<p>mdrun: waiting for the first run\xe2\x80\xa6</p></body></html>"  # fmt: skip


class Preview:
    """The page and its version, shared by the watcher (which publishes) and the server."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._version = 0
        self._html = _WAITING
        self._error: str | None = None

    def publish(self, page: bytes) -> None:
        """Show a new export (after a run); open pages reload."""
        with self._lock:
            self._html = page
            self._error = None
            self._version += 1

    def publish_error(self, message: str) -> None:
        """Keep the last export but show why the latest run produced none; open pages reload."""
        with self._lock:
            self._error = message
            self._version += 1

    @property
    def version(self) -> int:
        """Bumped by every publication, so a page can tell that it is out of date."""
        with self._lock:
            return self._version

    def page(self) -> tuple[int, bytes]:
        """The page to serve and the version it shows (read together, so they agree)."""
        with self._lock:
            version, page, error = self._version, self._html, self._error
        if error is not None:
            banner = (_BANNER % html.escape(error)).encode("utf-8")
            opening = _BODY_OPEN.search(page)
            at = opening.end() if opening else 0
            page = page[:at] + banner + page[at:]
        script = (_RELOAD_SCRIPT % {"version": version, "poll": POLL_MILLISECONDS}).encode()
        at = page.lower().rfind(b"</body")
        at = len(page) if at < 0 else at
        return version, page[:at] + script + page[at:]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    preview: Preview


class _Handler(BaseHTTPRequestHandler):
    """`/` is the page, `/version` its version as text; nothing else."""

    server: _Server

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path in ("/", "/index.html"):
            _version, body = self.server.preview.page()
            self._send(HTTPStatus.OK, "text/html; charset=utf-8", body)
        elif path == "/version":
            version = str(self.server.preview.version).encode()
            self._send(HTTPStatus.OK, "text/plain; charset=utf-8", version)
        else:
            self._send(HTTPStatus.NOT_FOUND, "text/plain; charset=utf-8", b"not found\n")

    def _send(self, status: HTTPStatus, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Silent: the terminal is for run summaries (and only `cli` prints)."""


class PreviewServer:
    """An HTTP server in a background thread; a context manager that always stops it."""

    def __init__(self, preview: Preview, port: int = 0) -> None:
        try:
            self._server = _Server((HOST, port), _Handler)
        except OSError as err:
            raise UsageError(f"cannot serve on {HOST}:{port}: {err.strerror}") from err
        self._server.preview = preview
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": STOP_POLL_SECONDS},
            name="mdrun-preview",
            daemon=True,
        )

    @property
    def url(self) -> str:
        """Where the page is (with the port actually bound, when 0 was asked)."""
        return f"http://{HOST}:{self._server.server_address[1]}/"

    def __enter__(self) -> PreviewServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()
