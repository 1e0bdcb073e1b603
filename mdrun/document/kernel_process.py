"""A kernel's process: launched on free ports, watched, described when it ends, stopped for sure.

Which kernel to start is `kernels`' decision, keeping it from outliving mdrun is
`kernel_launcher`'s, and talking to it is `kernel_client`'s. Only the standard library is
imported here.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import tempfile
from collections.abc import Callable
from os import PathLike
from pathlib import Path
from typing import IO, Any

from mdrun.document.kernel_launcher import (
    end_process_group,
    exit_code,
    has_exited,
    launcher_argv,
)
from mdrun.document.kernels import KernelChoice, kernel_environment
from mdrun.errors import KernelDied, KernelError, KernelPortsTaken

START_ATTEMPTS = 3
"""How many times a kernel is started when the ports chosen for it were taken meanwhile."""
PORT_TAKEN = "Address already in use"
"""What a kernel that could not bind its ports says (zmq's EADDRINUSE message)."""


class KernelProcess:
    """The process of one kernel and the files that go with it: its connection file (until the
    kernel has read it) and its log (what it wrote to stdout and stderr)."""

    def __init__(self, choice: KernelChoice, cwd: str | PathLike[str]) -> None:
        self.choice = choice
        self.cwd = Path(cwd)
        self._process: subprocess.Popen[bytes] | None = None
        self._connection_file: Path | None = None
        self._log: IO[bytes] | None = None
        self.folder: tuple[int, int] | None = None
        """The identity (device, inode) of the folder the kernel was started in."""

    @property
    def alive(self) -> bool:
        """Whether the process was launched and has not ended."""
        return self._process is not None and not has_exited(self._process)

    @property
    def pid(self) -> int | None:
        """The process id, while there is a process."""
        return None if self._process is None else self._process.pid

    @property
    def launched(self) -> bool:
        """Whether there is a process to stop (running or not)."""
        return self._process is not None

    def launch(self) -> dict[str, Any]:
        """Start the kernel on free loopback ports; return the connection info it was given."""
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (lives as long as the kernel)
        connection = connection_info(self.choice.name)
        descriptor, name = tempfile.mkstemp(prefix="mdrun-kernel-", suffix=".json")  # 0600
        connection_file = self._connection_file = Path(name)
        with os.fdopen(descriptor, "w") as stream:
            json.dump(connection, stream)
        argv = [
            part.replace("{connection_file}", str(connection_file)).replace(
                "{resource_dir}", self.choice.resource_dir
            )
            for part in launcher_argv(self.choice.argv)
        ]
        self.folder = folder_identity(self.cwd)
        try:
            self._process = subprocess.Popen(
                argv,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=self._log,
                env=kernel_environment(self.choice, os.environ),
                start_new_session=True,  # Ctrl-C in a terminal reaches mdrun, not the kernel
            )
        except OSError as err:
            raise KernelError(f"could not start the kernel {self.choice.display}: {err}") from err
        return connection

    def remove_connection_file(self) -> None:
        """Once the kernel has read it: without it, nothing is left if mdrun is killed."""
        if self._connection_file is not None:
            self._connection_file.unlink(missing_ok=True)

    def interrupt(self) -> None:
        """Send SIGINT to the kernel (for kernels interrupted by signal)."""
        if self._process is not None:
            os.kill(self._process.pid, signal.SIGINT)

    def kill(self) -> None:
        """Kill the kernel and its process group, but keep the record of how it ended, so that
        `alive` says it needs a restart and `exit_description` says why."""
        if self._process is not None:
            end_process_group(self._process)

    def stop(self, wait_seconds: float = 0.0) -> None:
        """Give the kernel `wait_seconds` to exit, kill its process group (the processes its
        blocks started go with it), and remove its files; calling it again does nothing."""
        process, connection_file, log = self._process, self._connection_file, self._log
        self._process = self._connection_file = self._log = None
        if process is not None:
            end_process_group(process, wait_seconds)
        if connection_file is not None:
            connection_file.unlink(missing_ok=True)
        if log is not None:
            log.close()

    def exit_description(self) -> str:
        """How the process ended: its exit code or the signal that killed it."""
        process = self._process
        code = None if process is None else exit_code(process)
        if code is None:
            return "exit code unknown"
        if code < 0:
            return f"killed by signal {signal.Signals(-code).name}"
        return f"exit code {code}"

    def log_tail(self, size: int = 2000) -> str:
        """The end of what the kernel process wrote to stdout and stderr, for error messages."""
        if self._log is None:
            return ""
        self._log.seek(0, 2)
        self._log.seek(max(0, self._log.tell() - size))
        text = self._log.read().decode(errors="replace").strip()
        return f"; its output ends with:\n{text}" if text else ""


def start_retrying(start_once: Callable[[], None], clean_up: Callable[[], None]) -> None:
    """Run `start_once` (launch, then connect), cleaning up after any failure; again on other
    ports when the kernel died because the ones chosen for it were taken.

    The free ports mdrun chooses can be taken by another process before the kernel binds them
    (many kernels starting at once)."""
    for attempt in range(1, START_ATTEMPTS + 1):
        try:
            start_once()
            return
        except KernelDied as died:
            clean_up()
            taken = isinstance(died, KernelPortsTaken) or PORT_TAKEN in str(died)
            if not taken or attempt == START_ATTEMPTS:
                raise
        except BaseException:
            clean_up()
            raise


def connection_info(kernel_name: str) -> dict[str, Any]:
    """Free ports on the loopback interface and a fresh key, as a connection file holds them."""
    sockets = [socket.socket() for _ in range(5)]
    try:
        for each in sockets:
            each.bind(("127.0.0.1", 0))
        ports = [each.getsockname()[1] for each in sockets]
    finally:
        for each in sockets:
            each.close()
    names = ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")
    return {
        **dict(zip(names, ports, strict=True)),
        "ip": "127.0.0.1",
        "transport": "tcp",
        "key": os.urandom(16).hex(),
        "signature_scheme": "hmac-sha256",
        "kernel_name": kernel_name,
    }


def folder_identity(folder: Path) -> tuple[int, int] | None:
    """A folder's device and inode (None if it is gone): a folder removed and made again under
    the same name is another folder, which a kernel started in the old one is not in."""
    try:
        status = os.stat(folder)
    except OSError:
        return None
    return status.st_dev, status.st_ino
