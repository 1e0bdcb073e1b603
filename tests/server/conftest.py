"""A real mdrun server per test, in a socket folder of its own, stopped (with its kernels) when
the test ends; the `mdrun` command as a user runs it, through the client."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mdrun.server import control

MDRUN = [sys.executable, "-c", "from mdrun.server.client import console_main; console_main()"]
"""The console script (the installed one may predate this checkout's entry point)."""
WAIT_SECONDS = 60.0


def wait_until(condition: object, seconds: float = WAIT_SECONDS, what: str = "") -> None:
    """Poll `condition()` until it is true; fail the test after `seconds`."""
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what or condition}")
        time.sleep(0.05)


@dataclass
class Served:
    """A test's server folder, environment and documents' folder."""

    folder: str
    """The servers' socket folder (short: a socket's path is limited to 107 bytes)."""
    environment: dict[str, str]
    """What every `mdrun` of the test runs with (the server is on)."""
    documents: Path
    """Where the test's documents are."""

    def mdrun(
        self, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        """`mdrun ARGS...` in the documents' folder, as a user types it."""
        return subprocess.run(
            [*MDRUN, *args],
            cwd=cwd or self.documents,
            env={**self.environment, **(env or {})},
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )

    def start(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        """`mdrun ARGS...` started, not waited for."""
        return subprocess.Popen(
            [*MDRUN, *args],
            cwd=self.documents,
            env={**self.environment, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def status(self) -> control.ServerStatus | None:
        """The server of the test's environment, if one answers."""
        return control.status_of(self.environment)

    def wait_for_server(self) -> control.ServerStatus:
        """The server, once it answers (one is started in the background by a first run)."""
        wait_until(lambda: self.status() is not None, what="the server to answer")
        status = self.status()
        assert status is not None
        return status

    def files(self) -> list[str]:
        """What the socket folder holds."""
        return sorted(os.listdir(self.folder))


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """The server on, in a folder of the test's own; afterwards every server of that folder
    is stopped and every kernel it kept is checked gone."""
    folder = tempfile.mkdtemp(prefix="mdrun-server-")
    environment = {
        **os.environ,
        "MDRUN_SERVER": "on",
        "MDRUN_SERVER_FOLDER": folder,
        "MDRUN_STORE": str(tmp_path / "store"),
    }
    environment.pop("CI", None)
    environment.pop("PYTEST_CURRENT_TEST", None)
    documents = tmp_path / "documents"
    documents.mkdir()
    try:
        yield Served(folder, environment, documents)
    finally:
        stop_every_server(folder)
        shutil.rmtree(folder, ignore_errors=True)


def stop_every_server(folder: str) -> None:
    """Stop the servers of `folder`, also one still starting (not listening yet), and wait
    until they and their kernels are gone."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        for server in control.stop_all(folder):
            for pid in server.kernels:
                wait_until(lambda pid=pid: not control.is_running(pid), what=f"kernel {pid}")
        starting = servers_started_for(folder)
        if not starting:
            return
        if time.monotonic() > deadline:
            for pid in starting:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            pytest.fail(f"a server in {folder} would not stop")
        time.sleep(0.1)


def servers_started_for(folder: str) -> list[int]:
    """The live server processes started with `--folder FOLDER` (a test's own folder)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        ours = b"mdrun.server.daemon" in argv and os.fsencode(folder) in argv
        if ours and control.is_running(int(entry.name)):
            pids.append(int(entry.name))
    return pids
