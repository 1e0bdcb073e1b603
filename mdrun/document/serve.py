"""The preview of `mdrun watch --serve`: the document's latest HTML export, on 127.0.0.1 only.

This module owns the page being served (with a small script that reloads it when a run has
finished) and the HTTP server; producing the HTML and deciding when to publish it is `watch`'s job.
The standard library's HTTP server is enough for one person's browser tabs; it answers only
requests addressed to this machine by name (not a DNS-rebinding page's), and connections that
send nothing wait without a thread of their own.
"""

from __future__ import annotations

import contextlib
import html
import queue
import re
import selectors
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import TracebackType
from typing import Any

from mdrun.errors import UsageError

HOST = "127.0.0.1"
"""Only this machine can see the preview: a document's outputs may be private."""

LOCAL_NAMES = ("127.0.0.1", "localhost", "[::1]")
"""The host names a request may give (with the served port). A page from elsewhere whose name
was re-pointed at 127.0.0.1 (DNS rebinding) sends its own name, and is refused."""

WORKERS = 8
"""Requests answered at once: plenty for a few tabs, and a bound on threads whatever comes in."""

REQUEST_SECONDS = 5.0
"""How long a worker waits on a slow client while reading its request or sending the page."""

IDLE_SECONDS = 10.0
"""A connection that sends no request for this long is closed (browsers open some in advance)."""

MAX_WAITING = 256
"""Connections waiting for their first byte beyond this close the oldest (a bound on sockets)."""

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


Connection = tuple[socket.socket, Any]
"""An accepted socket and the client's address."""


class _WaitingConnections:
    """Accepted connections waiting for their request, watched by one thread; a connection goes
    to a worker of a bounded pool only once its request has begun to arrive. So an idle
    connection costs a socket, never a thread, and is closed after `IDLE_SECONDS`."""

    def __init__(self, answer: Callable[[socket.socket, Any], None]) -> None:
        self._answer = answer
        self._pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="mdrun-preview")
        self._arrived: queue.SimpleQueue[Connection] = queue.SimpleQueue()
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._closing = threading.Event()
        self._thread = threading.Thread(
            target=self._watch, name="mdrun-preview-connections", daemon=True
        )
        self._thread.start()

    def add(self, connection: socket.socket, address: Any) -> None:
        """Watch a new connection (called by the accepting thread)."""
        self._arrived.put((connection, address))
        with contextlib.suppress(OSError):
            self._wake_writer.send(b"\0")

    def close(self) -> None:
        """Stop watching, close the connections still waiting; workers finish their request."""
        self._closing.set()
        with contextlib.suppress(OSError):
            self._wake_writer.send(b"\0")
        self._thread.join()
        self._pool.shutdown(wait=False)
        self._wake_reader.close()
        self._wake_writer.close()

    def _watch(self) -> None:
        waiting: dict[socket.socket, tuple[Any, float]] = {}  # in order of arrival
        with selectors.DefaultSelector() as selector:
            selector.register(self._wake_reader, selectors.EVENT_READ)
            while not self._closing.is_set():
                for key, _events in selector.select(timeout=min(IDLE_SECONDS, 0.25)):
                    if key.fileobj is self._wake_reader:
                        self._wake_reader.recv(4096)
                        continue
                    connection = key.fileobj
                    assert isinstance(connection, socket.socket)
                    selector.unregister(connection)
                    address, _since = waiting.pop(connection)
                    self._pool.submit(self._answer, connection, address)
                while not self._arrived.empty():
                    connection, address = self._arrived.get()
                    selector.register(connection, selectors.EVENT_READ)
                    waiting[connection] = (address, time.monotonic())
                too_old = time.monotonic() - IDLE_SECONDS
                for connection, (_address, since) in list(waiting.items()):
                    if since < too_old or len(waiting) > MAX_WAITING:
                        selector.unregister(connection)
                        del waiting[connection]
                        _close(connection)
            for connection in waiting:
                _close(connection)
        while not self._arrived.empty():
            _close(self._arrived.get()[0])


def _close(connection: socket.socket) -> None:
    with contextlib.suppress(OSError):
        connection.shutdown(socket.SHUT_RDWR)
    connection.close()


class _Server(HTTPServer):
    """Accepts in its own thread; answers through `_WaitingConnections`."""

    request_queue_size = 64
    preview: Preview

    def __init__(self, address: tuple[str, int]) -> None:
        self.waiting = _WaitingConnections(self._answer)  # first: a failed bind closes it
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        self.waiting.add(request, client_address)

    def _answer(self, request: socket.socket, client_address: Any) -> None:
        """A worker's job: one request, then the connection is closed."""
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Silent (a client that hangs up is no news; only `cli` prints)."""

    def server_close(self) -> None:
        super().server_close()
        self.waiting.close()


class _Handler(BaseHTTPRequestHandler):
    """`/` is the page, `/version` its version as text; nothing else, and only to local names."""

    server: _Server
    timeout = REQUEST_SECONDS

    def do_GET(self) -> None:
        if not self._addressed_to_this_machine():
            body = b"mdrun: this preview answers only to 127.0.0.1, localhost and [::1]\n"
            self._send(HTTPStatus.FORBIDDEN, "text/plain; charset=utf-8", body)
            return
        path = self.path.split("?", 1)[0]
        if path in ("/", "/index.html"):
            _version, body = self.server.preview.page()
            self._send(HTTPStatus.OK, "text/html; charset=utf-8", body)
        elif path == "/version":
            version = str(self.server.preview.version).encode()
            self._send(HTTPStatus.OK, "text/plain; charset=utf-8", version)
        else:
            self._send(HTTPStatus.NOT_FOUND, "text/plain; charset=utf-8", b"not found\n")

    def _addressed_to_this_machine(self) -> bool:
        """The Host header names this machine and the served port (as any local page does)."""
        port = self.server.server_address[1]
        allowed = {f"{name}:{port}" for name in LOCAL_NAMES}
        if port == 80:
            allowed.update(LOCAL_NAMES)
        return (self.headers.get("Host") or "").strip().lower() in allowed

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
            self._server = _Server((HOST, port))
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
