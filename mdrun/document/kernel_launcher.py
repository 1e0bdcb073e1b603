"""Run a kernel command so that the kernel cannot outlive the mdrun process that launched it.

`python -m mdrun.document.kernel_launcher --parent PID -- ARGV...` asks Linux to SIGKILL the
process when its parent dies (prctl PR_SET_PDEATHSIG, kept across exec) and then becomes the
kernel with `execvp`, so it works for any kernel, not only Python ones. Where prctl is missing,
it stays as a small supervisor that runs the kernel as a child and kills it when mdrun is gone.

The kernel leads a process group of its own (mdrun starts it in a new session), which the
processes its blocks start join. Before becoming the kernel, the launcher starts a watchdog in
that group: when the kernel ends (however it ends) it SIGKILLs the whole group, so a block's
`subprocess.Popen(['sleep', '300'])` never outlives its kernel, even when mdrun itself is
SIGKILLed. A child that leaves the group (`setsid`, a daemon) is not followed.

Linux sends the signal when the *thread* that started the process ends: start kernels from a
thread that lives as long as the session. Only the standard library is imported here.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

PR_SET_PDEATHSIG = 1
"""From <linux/prctl.h>."""

SUPERVISOR_POLL_SECONDS = 0.5
"""How often the supervisor checks that mdrun is still there."""
WATCHDOG_POLL_SECONDS = 0.5
"""How often the watchdog checks that the kernel still lives, where it cannot wait on a pidfd."""


def launcher_argv(kernel_argv: Sequence[str], *, supervise: bool = False) -> list[str]:
    """The command that runs `kernel_argv` tied to the current process."""
    mode = ["--supervise"] if supervise else []
    return [
        sys.executable,
        "-m",
        "mdrun.document.kernel_launcher",
        "--parent",
        str(os.getpid()),
        *mode,
        "--",
        *kernel_argv,
    ]


def has_exited(process: subprocess.Popen[bytes]) -> bool:
    """Whether a kernel started by mdrun has ended, without reaping it.

    While a process is not reaped its pid, which is also its group's id, cannot be given to
    another process: its group can still be killed without hitting a stranger's.
    """
    return exit_code(process) is not None


def exit_code(process: subprocess.Popen[bytes]) -> int | None:
    """Its exit code as Popen gives it (negative: the signal that killed it), without reaping
    it; None while it runs."""
    if process.returncode is not None or not hasattr(os, "waitid"):
        return process.poll()
    try:
        info = os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOWAIT | os.WNOHANG)
    except ChildProcessError:
        return process.poll()
    if info is None:
        return None
    return info.si_status if info.si_code == os.CLD_EXITED else -info.si_status


def end_process_group(process: subprocess.Popen[bytes], wait_seconds: float = 0.0) -> None:
    """Give a kernel `wait_seconds` to exit, then SIGKILL its process group (the kernel and the
    processes its blocks started) and reap it.

    mdrun starts kernels in a session of their own, so the kernel's pid is its group's id; the
    kernel is reaped only after the group is killed (see `has_exited`)."""
    deadline = time.monotonic() + wait_seconds
    while not has_exited(process) and time.monotonic() < deadline:
        time.sleep(0.02)
    if process.returncode is None:
        with contextlib.suppress(OSError):
            if os.getpgid(process.pid) == process.pid:
                os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            process.kill()
    process.wait()


def main(argv: Sequence[str] | None = None) -> int:
    """Tie this process to its parent, then run the kernel command."""
    arguments = _parse_arguments(argv)
    if not arguments.command:
        print("kernel_launcher: no kernel command given after --", file=sys.stderr)
        return 2
    if os.getppid() != arguments.parent:
        return 1  # mdrun is already gone: start nothing
    if not arguments.supervise and _die_with_parent():
        if os.getppid() != arguments.parent:
            return 1  # mdrun died between our start and prctl
        _start_group_watchdog()
        try:
            os.execvp(arguments.command[0], arguments.command)
        except OSError as err:
            print(f"kernel_launcher: cannot run {arguments.command[0]!r}: {err}", file=sys.stderr)
            return 127
    return _supervise(arguments.command, arguments.parent)


def _parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m mdrun.document.kernel_launcher")
    parser.add_argument("--parent", type=int, required=True, help="pid of the mdrun process")
    parser.add_argument(
        "--supervise", action="store_true", help="supervise instead of using prctl (for tests)"
    )
    parser.add_argument("command", nargs=argparse.REMAINDER)
    arguments = parser.parse_args(argv)
    if arguments.command[:1] == ["--"]:
        arguments.command = arguments.command[1:]
    return arguments


def _die_with_parent() -> bool:
    """Ask the kernel to receive SIGKILL when its parent dies; False where prctl is missing."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        result = libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return False
    return int(result) == 0


def _start_group_watchdog() -> None:
    """Start the process that takes the kernel's process group down when the kernel dies.

    Only where this process leads its group (mdrun starts kernels in a session of their own):
    elsewhere the group is someone else's to kill. The watchdog is forked twice so that it is
    not the kernel's child: ipykernel terminates its children at shutdown and waits for them,
    and would wait for a watchdog that it cannot reap.
    """
    if os.getpgrp() != os.getpid():
        return
    kernel = os.getpid()
    try:
        middle = os.fork()
    except OSError:
        return  # the kernel still dies with mdrun; only its children may be left
    if middle == 0:
        try:
            if os.fork() == 0:
                _watch_group(kernel)
        finally:
            os._exit(0)
    os.waitpid(middle, 0)


def _watch_group(kernel: int) -> None:
    """In the watchdog: wait for the kernel to end, then SIGKILL the group (this process too)."""
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        devnull = os.open(os.devnull, os.O_RDWR)
        for descriptor in (0, 1, 2):
            os.dup2(devnull, descriptor)  # hold none of the kernel's pipes or log files open
        os.closerange(3, 1 << 16)
        _wait_until_ended(kernel)
        os.killpg(0, signal.SIGKILL)
    finally:
        os._exit(0)


def _wait_until_ended(pid: int) -> None:
    """Return once process `pid` has ended (exited or killed, reaped or not)."""
    try:
        descriptor = os.pidfd_open(pid)
    except (AttributeError, OSError):  # before Linux 5.3, or already gone
        while _is_running(pid):
            time.sleep(WATCHDOG_POLL_SECONDS)
        return
    select.select([descriptor], [], [])  # readable once the process has ended


def _is_running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def _supervise(command: list[str], parent: int) -> int:
    """Run the kernel as a child; kill it when our parent changes; exit as it exits.

    The child shares our process group, so mdrun's interrupts and kills reach it directly;
    the supervisor itself ignores SIGINT for that reason.
    """
    try:
        kernel = subprocess.Popen(command)
    except OSError as err:
        print(f"kernel_launcher: cannot run {command[0]!r}: {err}", file=sys.stderr)
        return 127
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # after Popen: the kernel must not inherit it
    while True:
        try:
            code = kernel.wait(timeout=SUPERVISOR_POLL_SECONDS)
        except subprocess.TimeoutExpired:
            if os.getppid() != parent:
                if os.getpgrp() == os.getpid():  # our group: the kernel's children are in it
                    os.killpg(0, signal.SIGKILL)
                kernel.kill()
                kernel.wait()
                return 1
            continue
        if code < 0:  # killed by a signal: die the same way, so mdrun sees the signal
            signal.signal(-code, signal.SIG_DFL)
            os.kill(os.getpid(), -code)
            time.sleep(1)
        return code


if __name__ == "__main__":
    sys.exit(main())
