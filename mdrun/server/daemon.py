"""The mdrun server: a background process that runs `mdrun run` and `mdrun check` for its user
with mdrun already imported and kernels kept warm (`kept_kernels`).

One request at a time, in the main thread, through the same `mdrun.cli.main` an in-process run
calls; a request that comes while another runs is answered "busy" at once (its client runs the
command itself). A thread accepts connections and answers `status` and `stop`. It runs nothing
but mdrun's own `run` and `check` with the argv a client sent, for clients of its own user
(SO_PEERCRED) whose environment is the one it serves. It exits after `--idle-seconds` without a
request, when stopped, or when mdrun's sources change; its kernels end with it, even when it is
SIGKILLed (they die with the thread that started them, see `kernel_launcher`).

    python -m mdrun.server.daemon --folder FOLDER --name NAME [--idle-seconds S]
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import queue
import signal
import socket
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import IO, TYPE_CHECKING, Any

import mdrun
from mdrun.server.address import FolderError, ServerAddress, ensure_private_folder, server_name
from mdrun.server.client import SERVED_COMMANDS, served_command
from mdrun.server.protocol import (
    VERSION,
    ConnectionClosed,
    ProtocolError,
    peer_uid,
    receive,
    send,
)
from mdrun.server.remote_streams import Outbox, RemoteStream
from mdrun.server.settings import DEFAULT_IDLE_SECONDS

if TYPE_CHECKING:
    from mdrun.server.protocol import Message

CHECK_SECONDS = 1.0
"""How often an idle server looks whether it should exit."""
GREETING_SECONDS = 5.0
"""How long a connecting client has to send its request."""
EXIT_INTERNAL_ERROR = 3
EXIT_INTERRUPTED = 130


@dataclass
class Request:
    """A command a client sent, and its connection."""

    connection: socket.socket
    message: Message


@dataclass
class ServerState:
    """What the accepting thread and the main thread share (under `lock`)."""

    name: str
    idle_seconds: float
    started: float = field(default_factory=time.time)
    lock: threading.Lock = field(default_factory=threading.Lock)
    busy: bool = False
    stopping: str | None = None
    """Why the server stops, once it must."""
    running: bool = False
    """A command runs in the main thread: an interrupt raises KeyboardInterrupt in it."""
    requests: int = 0
    last_active: float = field(default_factory=time.monotonic)
    pending: queue.SimpleQueue[Request] = field(default_factory=queue.SimpleQueue)


class Server:
    """One server: its socket, its state and its kernels."""

    def __init__(self, address: ServerAddress, listener: socket.socket, idle: float) -> None:
        from mdrun.server.kept_kernels import KeptExecutors

        self.address = address
        self.listener = listener
        self.state = ServerState(address.name, idle)
        self.executors = KeptExecutors()
        self.main_thread = threading.get_ident()

    # -- the main thread ------------------------------------------------------------------------

    def serve(self) -> str:
        """Serve requests until the server must stop; why it stopped. Results looked up are
        remembered meanwhile (`remembered_results`): runs look the same blocks up again."""
        from mdrun.document.remembered_results import keeping_results

        with keeping_results():
            return self._serve()

    def _serve(self) -> str:
        signal.signal(signal.SIGINT, self._on_interrupt)
        signal.signal(signal.SIGTERM, self._on_terminate)
        threading.Thread(target=self._accept, name="mdrun-accept", daemon=True).start()
        state = self.state
        while state.stopping is None:
            try:
                request = state.pending.get(timeout=CHECK_SECONDS)
            except queue.Empty:
                self._check_idle()
                continue
            self._serve_one(request)
            with state.lock:
                state.busy = False
                state.last_active = time.monotonic()
            self.executors.trim()
        return state.stopping

    def _check_idle(self) -> None:
        state = self.state
        with state.lock:
            if state.busy:
                return
            if time.monotonic() - state.last_active > state.idle_seconds:
                state.stopping = "idle"
            elif server_name(os.environ) != state.name:
                state.stopping = "mdrun's sources changed"
            elif not os.path.exists(self.address.socket):
                state.stopping = "its socket was removed"
        self.executors.trim()

    def _serve_one(self, request: Request) -> None:
        """Run one command with the client's streams; send its exit code."""
        message = request.message
        outbox = Outbox(request.connection)
        watcher = threading.Thread(
            target=self._watch_client, args=(request.connection, outbox), daemon=True
        )
        watcher.start()
        code = self._run_command(message, outbox)
        outbox.close({"type": "exit", "code": code})
        with contextlib.suppress(OSError):
            request.connection.shutdown(socket.SHUT_RDWR)
        request.connection.close()
        watcher.join(timeout=5)
        print(f"request {self.state.requests}: {message['argv']} -> {code}", flush=True)

    def _run_command(self, message: Message, outbox: Outbox) -> int:
        from mdrun.cli import main as command_line

        terminals = message.get("terminals") or {}
        size = message.get("size")
        terminal_size = (int(size[0]), int(size[1])) if isinstance(size, list) else None
        streams = [
            RemoteStream(outbox, name, is_terminal=bool(terminals.get(name)),
                         terminal_size=terminal_size)
            for name in ("stdout", "stderr")
        ]  # fmt: skip
        saved = sys.stdout, sys.stderr
        code = EXIT_INTERNAL_ERROR
        try:
            # Warnings shown once per process are shown once per command, as in process.
            sys.stdout, sys.stderr = streams
            with warnings.catch_warnings(), _umask(message.get("umask")):
                os.chdir(message["cwd"])
                with self.state.lock:
                    self.state.running = True
                try:
                    with self.executors.spares.held():
                        code = command_line(
                            message["argv"], executor_factory=self.executors.factory
                        )
                finally:
                    with self.state.lock:
                        self.state.running = False
        except KeyboardInterrupt:
            print("mdrun: interrupted", file=sys.stderr)
            code = EXIT_INTERRUPTED
        except SystemExit as exit:
            code = exit.code if isinstance(exit.code, int) else int(exit.code is not None)
        except OSError as err:  # the client's folder is gone
            print(f"mdrun: error: {message['cwd']}: {err.strerror}", file=sys.stderr)
            code = 2
        except BaseException:
            traceback.print_exc(file=saved[1])
            print(f"mdrun: internal error in the mdrun server; its log is {self.address.log}",
                  file=sys.stderr)  # fmt: skip
        finally:
            sys.stdout, sys.stderr = saved
            with contextlib.suppress(OSError):
                os.chdir(self.address.folder)
        return code

    def _watch_client(self, connection: socket.socket, outbox: Outbox) -> None:
        """The client's Ctrl-C, or its end closing (it was killed), interrupts the run."""
        while True:
            try:
                message = receive(connection)
            except (OSError, ConnectionClosed, ProtocolError):
                outbox.client_gone.set()
                self._interrupt_run()
                return
            if message["type"] == "interrupt":
                self._interrupt_run()

    def _interrupt_run(self) -> None:
        with self.state.lock:
            if self.state.running:
                signal.pthread_kill(self.main_thread, signal.SIGINT)

    def _on_interrupt(self, _signal: int, _frame: FrameType | None) -> None:
        if self.state.running:
            raise KeyboardInterrupt

    def _on_terminate(self, _signal: int, _frame: FrameType | None) -> None:
        self.state.stopping = "terminated"
        if self.state.running:
            raise KeyboardInterrupt

    # -- the accepting thread -------------------------------------------------------------------

    def _accept(self) -> None:
        """Each connection is greeted in a thread of its own: one that sends nothing holds up
        no other client."""
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(
                target=self._greet_or_close, args=(connection,), name="mdrun-greet", daemon=True
            ).start()

    def _greet_or_close(self, connection: socket.socket) -> None:
        try:
            self._greet(connection)
        except (OSError, ConnectionClosed, ProtocolError):
            connection.close()

    def _greet(self, connection: socket.socket) -> None:
        """Answer a status or stop request, or queue a command (or say busy)."""
        if peer_uid(connection) not in (None, os.getuid()):
            connection.close()
            return
        connection.settimeout(GREETING_SECONDS)
        message = receive(connection)
        connection.settimeout(None)
        kind = message["type"]
        state = self.state
        if kind == "status":
            send(connection, self.status())
        elif kind == "stop":
            with state.lock:
                state.stopping = state.stopping or "stopped"
            send(connection, {"type": "stopping", "pid": os.getpid()})
        elif kind == "request" and self._acceptable(message):
            with state.lock:
                taken = not state.busy and state.stopping is None
                state.busy = state.busy or taken
            if taken and self._confirmed(connection):
                with state.lock:
                    state.requests += 1
                state.pending.put(Request(connection, message))
                return
            if taken:
                with state.lock:
                    state.busy = False
            else:
                send(connection, {"type": "busy"})
        else:
            send(connection, {"type": "refused"})
        connection.close()

    def _confirmed(self, connection: socket.socket) -> bool:
        """Say "accepted" and wait for the client's "go": a client that gave up waiting (and
        runs the command itself) never sends it, so a command never runs twice."""
        try:
            send(connection, {"type": "accepted", "pid": os.getpid()})
            connection.settimeout(GREETING_SECONDS)
            confirmed: bool = receive(connection)["type"] == "go"
            connection.settimeout(None)
        except (OSError, ConnectionClosed, ProtocolError):
            return False
        return confirmed

    def _acceptable(self, message: Message) -> bool:
        """A request of this protocol, for `run` or `check`, from a client whose environment
        is the one this server serves."""
        argv, cwd, environment = message.get("argv"), message.get("cwd"), message.get("environment")
        return (
            message.get("protocol") == VERSION
            and isinstance(argv, list)
            and all(isinstance(item, str) for item in argv)
            and served_command(argv) in SERVED_COMMANDS
            and isinstance(cwd, str)
            and isinstance(environment, dict)
            and all(isinstance(value, str) for value in environment.values())
            and server_name(environment) == self.state.name
        )

    def status(self) -> Message:
        """What `mdrun server status` shows."""
        state = self.state
        with state.lock:
            idle = 0.0 if state.busy else time.monotonic() - state.last_active
            info: dict[str, Any] = {
                "type": "status",
                "pid": os.getpid(),
                "name": state.name,
                "started": state.started,
                "requests": state.requests,
                "busy": state.busy,
                "idle_for": round(idle, 1),
                "idle_seconds": state.idle_seconds,
            }
        info["kernels"] = self.executors.kernel_pids()
        info["executable"] = sys.executable
        info["version"] = mdrun.__version__
        return info


@contextlib.contextmanager
def _umask(mask: object) -> Iterator[None]:
    """The client's umask for the files its command writes (the document, the store's)."""
    if not isinstance(mask, int) or not 0 <= mask <= 0o777:
        yield
        return
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def main(argv: Sequence[str] | None = None) -> int:
    """Run a server for `--name` in `--folder` until it stops (0), or say why it cannot (1)."""
    parser = argparse.ArgumentParser(prog="python -m mdrun.server.daemon")
    parser.add_argument("--folder", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--idle-seconds", type=float, default=DEFAULT_IDLE_SECONDS)
    arguments = parser.parse_args(argv)
    address = ServerAddress(os.path.abspath(arguments.folder), arguments.name)
    if not os.path.isdir(address.folder):
        return 1  # removed since the client made it: nobody would find this server
    try:
        ensure_private_folder(address.folder)
    except FolderError as err:
        print(f"mdrun server: {err}", file=sys.stderr)
        return 1
    lock = _lock(address)
    if lock is None:
        return 0  # another server of this name runs, or is starting
    with lock:
        _warm_up()
        listener = _listen(address)
        try:
            print(f"mdrun server {address.name}: pid {os.getpid()} listening", flush=True)
            server = Server(address, listener, arguments.idle_seconds)
            why = "?"
            try:
                why = server.serve()
            finally:
                _forget(address, listener)
                server.executors.close()
            print(f"mdrun server {address.name}: stopped ({why})", flush=True)
        finally:
            _forget(address, listener)
    return 0


def _lock(address: ServerAddress) -> IO[bytes] | None:
    """The server's lock, held as long as it runs; None if another process holds it."""
    stream = open(address.lock, "ab")  # noqa: SIM115 (held until the server exits)
    try:
        fcntl.flock(stream.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        stream.close()
        return None
    return stream


def _warm_up() -> None:
    """Import what every run needs, before listening: a request never waits for imports."""
    import mdrun.cli
    import mdrun.document.kernel
    import mdrun.document.pipeline
    import mdrun.server.kept_kernels
    import mdrun.terminal  # noqa: F401


def _listen(address: ServerAddress) -> socket.socket:
    """Listen on the socket (one a dead server left is replaced: the lock says it is dead)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(address.socket)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(address.socket)
    os.chmod(address.socket, 0o600)
    listener.listen(16)
    return listener


def _forget(address: ServerAddress, listener: socket.socket) -> None:
    """Stop being found: new clients run in process (or start a server) from now on."""
    listener.close()
    with contextlib.suppress(OSError):
        os.unlink(address.socket)


if __name__ == "__main__":
    sys.exit(main())
