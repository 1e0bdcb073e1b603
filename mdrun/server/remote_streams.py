"""The server's standard output and error during a request: text streams whose writes go to
the client as `output` frames, sent by a thread of their own.

Sending from one thread keeps frames whole even when the run is interrupted (Ctrl-C raises
KeyboardInterrupt in the thread that writes); writes after the client went away are dropped.
"""

from __future__ import annotations

import io
import queue
import socket
import threading
from typing import TYPE_CHECKING

from mdrun.server.protocol import send

if TYPE_CHECKING:
    from mdrun.server.protocol import Message


class Outbox:
    """Messages to the client, sent in order by a background thread."""

    def __init__(self, connection: socket.socket) -> None:
        self.connection = connection
        self.client_gone = threading.Event()
        self._queue: queue.SimpleQueue[Message | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._send_all, name="mdrun-outbox", daemon=True)
        self._thread.start()

    def put(self, message: Message) -> None:
        """Send this after what was put before (never blocks)."""
        self._queue.put(message)

    def close(self, last: Message) -> None:
        """Send `last`, then wait until everything was sent (or the client is gone)."""
        self._queue.put(last)
        self._queue.put(None)
        self._thread.join()

    def _send_all(self) -> None:
        while (message := self._queue.get()) is not None:
            if self.client_gone.is_set():
                continue
            try:
                send(self.connection, message)
            except OSError:
                self.client_gone.set()


class RemoteStream(io.TextIOBase):
    """`sys.stdout` or `sys.stderr` of one request: what is written goes to the client, which
    writes it to its own stream; `isatty` and `terminal_size` are the client's."""

    def __init__(
        self,
        outbox: Outbox,
        name: str,
        *,
        is_terminal: bool,
        terminal_size: tuple[int, int] | None,
    ) -> None:
        super().__init__()
        self.outbox = outbox
        self.name = name
        self.is_terminal = is_terminal
        self.terminal_size = terminal_size
        """The client's terminal's columns and lines (the progress display's width)."""

    @property
    def encoding(self) -> str:  # type: ignore[override]  # read-only in io.TextIOBase
        """What the client's text is sent as."""
        return "utf-8"

    def isatty(self) -> bool:
        return self.is_terminal

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if text:
            self.outbox.put({"type": "output", "stream": self.name, "data": text})
        return len(text)
