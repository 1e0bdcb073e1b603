"""A kernel's process on its own, without Jupyter: how it ended, what it wrote, starting again
when its ports were taken."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from mdrun.document.kernel_process import (
    PORT_TAKEN,
    START_ATTEMPTS,
    KernelProcess,
    start_retrying,
)
from mdrun.document.kernels import KernelChoice
from mdrun.errors import KernelDied


def command(script: str) -> KernelChoice:
    """A 'kernel' that runs `script` in Python and is given its connection file as argv[1]."""
    return KernelChoice(
        "fake", "python", (sys.executable, "-c", script, "{connection_file}"), "fake"
    )


def wait_until_ended(process: KernelProcess) -> None:
    deadline = time.monotonic() + 30
    while process.alive and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not process.alive


def test_a_process_that_exits_says_how_and_what_it_wrote(tmp_path: Path) -> None:
    script = "import sys; print('cannot bind', file=sys.stderr); sys.exit(3)"
    process = KernelProcess(command(script), tmp_path)
    process.launch()
    wait_until_ended(process)
    assert process.exit_description() == "exit code 3"
    assert process.log_tail() == "; its output ends with:\ncannot bind"
    process.stop()
    assert (process.pid, process.launched, process.log_tail()) == (None, False, "")


def test_a_killed_process_names_the_signal(tmp_path: Path) -> None:
    process = KernelProcess(command("import time; time.sleep(60)"), tmp_path)
    process.launch()
    assert process.exit_description() == "exit code unknown", "it runs"
    process.kill()
    assert not process.alive
    assert process.exit_description() == "killed by signal SIGKILL"
    process.stop()


def test_the_kernel_reads_its_connection_file_which_is_then_removed(tmp_path: Path) -> None:
    script = (
        "import json, sys; connection = json.load(open(sys.argv[1]))\n"
        "print(connection['ip'], connection['signature_scheme'], len(connection['key']))\n"
        "print(sys.argv[1])"
    )
    process = KernelProcess(command(script), tmp_path)
    process.launch()
    wait_until_ended(process)
    written = process.log_tail().splitlines()
    assert written[-2] == "127.0.0.1 hmac-sha256 32"
    connection_file = Path(written[-1])
    assert connection_file.exists()
    process.remove_connection_file()
    assert not connection_file.exists()
    process.stop()


# -- starting again -------------------------------------------------------------------------------


def test_a_kernel_whose_ports_were_taken_is_started_again_until_the_attempts_run_out() -> None:
    attempts: list[int] = []
    cleaned: list[int] = []

    def start_once() -> None:
        attempts.append(1)
        raise KernelDied(f"the kernel exited (exit code 1); its output ends with:\n{PORT_TAKEN}")

    with pytest.raises(KernelDied, match=PORT_TAKEN):
        start_retrying(start_once, lambda: cleaned.append(1))
    assert len(attempts) == len(cleaned) == START_ATTEMPTS


def test_a_kernel_that_died_otherwise_is_not_started_again() -> None:
    attempts: list[int] = []
    cleaned: list[int] = []

    def start_once() -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise KernelDied("the kernel exited (exit code 1)")

    with pytest.raises(KernelDied):
        start_retrying(start_once, lambda: cleaned.append(1))
    assert len(attempts) == len(cleaned) == 1


def test_any_failure_to_start_is_cleaned_up() -> None:
    cleaned: list[int] = []

    def start_once() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        start_retrying(start_once, lambda: cleaned.append(1))
    assert cleaned == [1]
