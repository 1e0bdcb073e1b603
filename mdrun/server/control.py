"""Finding, starting and stopping the user's servers: what `mdrun server` does, and what tests
and benchmarks call. Only the standard library is imported here."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mdrun.server.address import ServerAddress, server_address, server_folder
from mdrun.server.protocol import ConnectionClosed, ProtocolError, receive, send

if TYPE_CHECKING:
    from mdrun.server.protocol import Message

ANSWER_SECONDS = 5.0
"""How long a server has to answer `status` or `stop`."""
STOP_SECONDS = 10.0
"""How long a stopped server has to finish its run and shut its kernels down before it is
killed (its kernels die with it)."""
START_SECONDS = 60.0
"""How long `start_and_wait` waits for a new server to listen."""


@dataclass(frozen=True, slots=True)
class ServerStatus:
    """One server, as it describes itself."""

    address: ServerAddress
    """Where it listens."""
    details: Message
    """Its `status` answer (pid, requests, kernels...)."""

    @property
    def pid(self) -> int:
        """Its process id."""
        return int(self.details["pid"])

    @property
    def requests(self) -> int:
        """Commands it has run."""
        return int(self.details["requests"])

    @property
    def kernels(self) -> list[int]:
        """The process ids of the kernels it keeps warm (spares included)."""
        return [int(pid) for pid in self.details["kernels"]]


def ask(address: ServerAddress, message: Message) -> Message | None:
    """One question, one answer; None if no server answers there."""
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    connection.settimeout(ANSWER_SECONDS)
    try:
        connection.connect(address.socket)
        send(connection, message)
        return receive(connection)
    except (OSError, ConnectionClosed, ProtocolError):
        return None
    finally:
        connection.close()


def servers(folder: str) -> list[ServerStatus]:
    """Every server listening in `folder`."""
    found = []
    for path in sorted(Path(folder).glob("*.sock")):
        address = ServerAddress(folder, path.name.removesuffix(".sock"))
        answer = ask(address, {"type": "status"})
        if answer is not None and answer.get("type") == "status":
            found.append(ServerStatus(address, answer))
    return found


def status_of(environ: Mapping[str, str]) -> ServerStatus | None:
    """The server of this environment, if it runs."""
    address = server_address(environ)
    answer = ask(address, {"type": "status"})
    if answer is None or answer.get("type") != "status":
        return None
    return ServerStatus(address, answer)


def stop(server: ServerStatus, wait_seconds: float = STOP_SECONDS) -> None:
    """Ask a server to stop and wait until it has; kill it if it takes longer."""
    ask(server.address, {"type": "stop"})
    deadline = time.monotonic() + wait_seconds
    while is_running(server.pid):
        if time.monotonic() > deadline:
            with contextlib.suppress(OSError):
                os.kill(server.pid, signal.SIGKILL)
            break
        time.sleep(0.05)


def stop_all(folder: str) -> list[ServerStatus]:
    """Stop every server in `folder`; the ones that were running."""
    found = servers(folder)
    for server in found:
        stop(server)
    return found


def start_and_wait(environ: Mapping[str, str], idle: float) -> ServerStatus:
    """This environment's server, started if needed; raises TimeoutError if it does not come."""
    from mdrun.server.client import start_server

    running = status_of(environ)
    if running is not None:
        return running
    start_server(server_address(environ), idle)
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        time.sleep(0.05)
        running = status_of(environ)
        if running is not None:
            return running
    raise TimeoutError(f"no mdrun server answered within {START_SECONDS:.0f} s")


def is_running(pid: int) -> bool:
    """Whether process `pid` is alive (a zombie is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


__all__ = ["ServerStatus", "is_running", "server_folder", "servers", "start_and_wait",
           "status_of", "stop", "stop_all"]  # fmt: skip
