"""What the `mdrun` client and the server say to each other: JSON objects, each sent as a
4-byte big-endian length and that many bytes of UTF-8. Nothing read from the socket is
unpickled or evaluated. Only the standard library is imported here (the client imports it).

The client sends one `request` (or `status`, `stop`); the server answers `busy`, or `accepted`,
to which the client says `go` (unless it gave up waiting and runs the command itself), then any
number of `output` frames and one `exit`. While it waits, the client may send
`interrupt` (Ctrl-C); closing its end interrupts the run too.
"""

from __future__ import annotations

import json
import socket
import struct

TYPE_CHECKING = False  # typing itself is not imported: the client starts quickly

VERSION = 1
"""Bumped when a message changes shape (the socket's name covers mdrun's sources anyway)."""
HEADER = struct.Struct(">I")
MAX_REQUEST_BYTES = 16 * 1024 * 1024
"""The largest frame the server reads from a client (argv and the environment)."""
MAX_REPLY_BYTES = 1 << 31
"""The largest frame the client reads from its server (a document sent to stdout)."""

if TYPE_CHECKING:
    from typing import Any, TypeAlias

    Message: TypeAlias = dict[str, Any]
    """One message: a JSON object with a `type`."""


class ProtocolError(Exception):
    """The other end sent something that is not a frame of this protocol."""


class ConnectionClosed(Exception):
    """The other end closed the connection (before a whole frame, if any, arrived)."""


def send(connection: socket.socket, message: Message) -> None:
    """Send one message (whole, or raise OSError)."""
    data = json.dumps(message, ensure_ascii=True, separators=(",", ":")).encode("ascii")
    connection.sendall(HEADER.pack(len(data)) + data)


def receive(connection: socket.socket, limit: int = MAX_REQUEST_BYTES) -> Message:
    """Read one message; ConnectionClosed at the end of the stream."""
    (size,) = HEADER.unpack(_read_exactly(connection, HEADER.size))
    if size > limit:
        raise ProtocolError(f"a frame of {size} bytes (at most {limit})")
    data = _read_exactly(connection, size)
    try:
        message = json.loads(data.decode("ascii"))
    except (UnicodeDecodeError, ValueError) as err:
        raise ProtocolError(f"a frame that is not JSON: {err}") from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise ProtocolError("a frame without a type")
    return message


def _read_exactly(connection: socket.socket, size: int) -> bytes:
    chunks: list[bytes] = []
    remaining = size
    while remaining:
        chunk = connection.recv(min(remaining, 1 << 20))
        if not chunk:
            raise ConnectionClosed
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def peer_uid(connection: socket.socket) -> int | None:
    """The user id of the process at the other end (SO_PEERCRED), None where unknown."""
    credentials = getattr(socket, "SO_PEERCRED", None)
    if credentials is None:
        return None
    data = connection.getsockopt(socket.SOL_SOCKET, credentials, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", data)
    return int(uid)
