"""The preview's HTTP server, through real sockets on 127.0.0.1: whom it answers, and what idle
connections cost it."""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from mdrun.document import serve
from mdrun.document.serve import Preview, PreviewServer

PAGE = b"<html><body><p>private outputs</p></body></html>"


@pytest.fixture
def server() -> Iterator[PreviewServer]:
    preview = Preview()
    preview.publish(PAGE)
    with PreviewServer(preview) as running:
        yield running


def port_of(server: PreviewServer) -> int:
    return int(server.url.rsplit(":", 1)[1].strip("/"))


def get(port: int, host: str | None, path: str = "/") -> tuple[int, bytes]:
    """GET `path` with exactly this Host header (none at all for None)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.putrequest("GET", path, skip_host=True)
        if host is not None:
            connection.putheader("Host", host)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.mark.parametrize("name", ["127.0.0.1", "localhost", "LocalHost", "[::1]"])
def test_the_page_is_served_to_local_names_with_the_served_port(
    server: PreviewServer, name: str
) -> None:
    port = port_of(server)
    status, body = get(port, f"{name}:{port}")
    assert status == 200
    assert b"private outputs" in body
    assert get(port, f"{name}:{port}", "/version") == (200, b"1")


@pytest.mark.parametrize(
    "host",
    [
        "attacker.example:{port}",  # a DNS-rebinding page: its name now points at 127.0.0.1
        "attacker.example",
        "127.0.0.1.attacker.example:{port}",
        "localhost:{other}",
        "127.0.0.1",
        "",
        None,
    ],
)
def test_any_other_host_is_refused_and_sees_nothing(
    server: PreviewServer, host: str | None
) -> None:
    port = port_of(server)
    header = None if host is None else host.format(port=port, other=port + 1)
    for path in ("/", "/version"):
        status, body = get(port, header, path)
        assert status == 403
        assert b"private outputs" not in body and body != b"1"


def test_idle_connections_hold_no_threads_and_do_not_block_the_page(
    server: PreviewServer,
) -> None:
    port = port_of(server)
    before = threading.active_count()
    idle = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(300)]
    try:
        started = time.monotonic()
        status, body = get(port, f"localhost:{port}")
        assert status == 200 and b"private outputs" in body
        # Accepted in order: all 300 are in the server now, and none held the page up.
        assert time.monotonic() - started < 5
        assert threading.active_count() - before <= 16, "a bounded pool (8 workers) answers"
    finally:
        for connection in idle:
            connection.close()


def test_a_connection_that_sends_nothing_is_closed(
    server: PreviewServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(serve, "IDLE_SECONDS", 0.5)
    with socket.create_connection(("127.0.0.1", port_of(server)), timeout=10) as connection:
        started = time.monotonic()
        assert connection.recv(1) == b"", "closed by the server"
        assert time.monotonic() - started < 5
