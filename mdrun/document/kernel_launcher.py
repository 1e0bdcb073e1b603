"""Run a kernel command so that the kernel cannot outlive the mdrun process that launched it.

`python -m mdrun.document.kernel_launcher --parent PID -- ARGV...` asks Linux to SIGKILL the
process when its parent dies (prctl PR_SET_PDEATHSIG, kept across exec) and then becomes the
kernel with `execvp`, so it works for any kernel, not only Python ones. Where prctl is missing,
it stays as a small supervisor that runs the kernel as a child and kills it when mdrun is gone.

Linux sends the signal when the *thread* that started the process ends: start kernels from a
thread that lives as long as the session. Only the standard library is imported here.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence

PR_SET_PDEATHSIG = 1
"""From <linux/prctl.h>."""

SUPERVISOR_POLL_SECONDS = 0.5
"""How often the supervisor checks that mdrun is still there."""


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
