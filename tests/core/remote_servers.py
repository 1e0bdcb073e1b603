"""Servers the remote cache's tests talk to, all on 127.0.0.1 and started by the tests: a real
S3 server (moto's server mode) and a static HTTP server."""

from __future__ import annotations

import functools
import http.server
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

S3_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True, slots=True)
class S3Server:
    """A running moto S3 server."""

    endpoint: str
    """Its URL (`http://127.0.0.1:<port>`)."""

    def make_bucket(self, name: str) -> str:
        """Create a bucket; returns `s3://<name>`."""
        import boto3

        client = boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1")
        client.create_bucket(Bucket=name)
        return f"s3://{name}"

    def environment(self) -> dict[str, str]:
        """What a process needs to reach it (fake credentials, the endpoint)."""
        return {**S3_CREDENTIALS, "AWS_ENDPOINT_URL": self.endpoint}


@contextmanager
def s3_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Server]:
    """A moto S3 server on a free port of 127.0.0.1, stopped on the way out."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        running = S3Server(f"http://127.0.0.1:{port}")
        for name, value in running.environment().items():
            monkeypatch.setenv(name, value)
        yield running
    finally:
        server.stop()


@contextmanager
def http_server(folder: Path) -> Iterator[str]:
    """Serve `folder` read-only over HTTP on 127.0.0.1; yields its URL."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """No request log on the test's stderr."""
