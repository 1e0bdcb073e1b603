"""The `mdrun` console script: `run` and `check` are sent to the user's warm server when one
answers; everything else, and every case where the server cannot help, runs in this process
exactly as it always did.

Only the standard library (and mdrun's own stdlib-only `server` modules) is imported until the
decision is made, so a command the server answers costs this process little more than Python's
start. When no server answers, the command runs here first (the first run is no slower), and a
server is then started in the background for the next one.

A server that dies during a run is retried in this process: the store keeps every block that
finished, so the retry costs little and gives the same document. What the dead run already
showed on stderr (progress, warnings) is followed by one line saying the run is retried; output
already written to stdout cannot be taken back, so then the command fails (exit 3) instead of
printing it twice.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
from collections.abc import Sequence
from types import FrameType

from mdrun.server.address import FolderError, ServerAddress, server_address
from mdrun.server.protocol import (
    MAX_REPLY_BYTES,
    VERSION,
    ConnectionClosed,
    ProtocolError,
    peer_uid,
    receive,
    send,
)
from mdrun.server.settings import (
    NO_SERVER_FLAG,
    SettingError,
    UnreadableProject,
    idle_seconds,
    server_wanted,
)

SERVED_COMMANDS = frozenset({"run", "check"})
"""The commands a server runs (the rest are quick, interactive or long-lived: in process)."""
GLOBAL_OPTIONS_WITH_VALUE = frozenset({"--store", "--cache"})
"""Options before the command's name that take the next argument as their value."""
IN_PROCESS_OPTIONS = ("-h", "--help", "--version", "-j", "--jobs", "--executor", "--scheduler")
"""Help and version (instant), and several documents in worker processes (no warm kernel to
gain): always in process."""
OUTPUT_OPTIONS = frozenset({"-o", "--output"})
HANDSHAKE_SECONDS = 2.0
"""How long a server may take to say whether it takes a request (it answers at once unless it
is wedged; then the command runs here)."""
EXIT_USAGE = 2
EXIT_INTERNAL_ERROR = 3
EXIT_INTERRUPTED = 130


def console_main() -> None:
    """The `mdrun` console script."""
    code = main(sys.argv[1:])
    if may_exit_at_once(sys.argv[1:]):
        exit_at_once(code)
    sys.exit(code)


def may_exit_at_once(argv: Sequence[str]) -> bool:
    """Whether a `run` or `check` that ran in this process may end it without the interpreter's
    own exit (a few tenths of a second spent freeing the modules a run imports): in one
    process (no `-j`), with nothing left running that exiting would wait for.

    Everything the command wrote is written by then; the kernels still shutting down in the
    background die with this process, and their process groups with them (`kernel_launcher`),
    as they would if the interpreter's exit were quicker than their shutdown."""
    return "mdrun.cli" in sys.modules and is_one_process_run(argv) and nothing_to_wait_for()


def is_one_process_run(argv: Sequence[str]) -> bool:
    """Whether the command line is a `run` or `check` in one process (no `-j`)."""
    if _command(argv) not in SERVED_COMMANDS:
        return False
    return not any(token.startswith(("-j", "--jobs", "--executor")) for token in argv)


def nothing_to_wait_for() -> bool:
    """No thread the interpreter's exit would wait for, and no child process of
    `multiprocessing`, which its exit handler would end."""
    import threading

    others = [thread for thread in threading.enumerate() if thread is not threading.main_thread()]
    if any(not thread.daemon for thread in others):
        return False
    processes = sys.modules.get("multiprocessing")
    return processes is None or not processes.active_children()


def exit_at_once(code: int) -> None:
    """Flush what this process printed and end it with `code`, running no exit handler."""
    logging = sys.modules.get("logging")
    if logging is not None:
        logging.shutdown()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        return  # the interpreter's own exit says what went wrong, as it always did
    os._exit(code)


def _command(argv: Sequence[str]) -> str | None:
    """The command's name on a command line (the first word that is not a global option)."""
    skip_value = False
    for token in argv:
        if skip_value:
            skip_value = False
        elif token in GLOBAL_OPTIONS_WITH_VALUE:
            skip_value = True
        elif not token.startswith("-"):
            return token
    return None


def main(argv: Sequence[str]) -> int:
    """Run the command through the server when it may, else in this process; its exit code."""
    arguments = list(argv)
    if served_command(arguments) is None or not hasattr(socket, "AF_UNIX"):
        return run_in_process(arguments)
    try:
        if not server_wanted(os.environ, os.getcwd()):
            return run_in_process(arguments)
        idle = idle_seconds(os.environ)
        address = server_address(os.environ)
    except SettingError as err:
        print(f"mdrun: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except FolderError as err:
        print(f"mdrun: warning: {err}; running without the server", file=sys.stderr)
        return run_in_process(arguments)
    except (UnreadableProject, OSError):
        return run_in_process(arguments)  # the run itself says what is wrong, if anything
    if not address.usable:
        return run_in_process(arguments)
    try:
        answer = ask_server(address, arguments)
    except KeyboardInterrupt:  # before the server took the command
        print("mdrun: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    if answer.exit_code is not None:
        return answer.exit_code
    if answer.notice:
        print(answer.notice, file=sys.stderr, flush=True)
    code = run_in_process(arguments)
    if answer.absent and code != EXIT_INTERRUPTED:
        start_server(address, idle)
    return code


def served_command(argv: Sequence[str]) -> str | None:
    """`run` or `check` when a server may run this command line, else None (another command,
    `--no-server`, help, standard input as the document, several processes)."""
    command: str | None = None
    skip_value = False
    previous = ""
    for token in argv:
        if skip_value:
            skip_value = False
        elif token == "--" or token.startswith(IN_PROCESS_OPTIONS):
            return None
        elif token.startswith("--no-s") and NO_SERVER_FLAG.startswith(token):
            return None  # argparse takes an abbreviation too
        elif token == "-" and previous not in OUTPUT_OPTIONS:
            return None  # the document is standard input, which stays with this process
        elif command is None and token in GLOBAL_OPTIONS_WITH_VALUE:
            skip_value = True
        elif command is None and not token.startswith("-"):
            command = token
        previous = token
    return command if command in SERVED_COMMANDS else None


def run_in_process(argv: Sequence[str]) -> int:
    """The command in this process (what `mdrun` always did)."""
    from mdrun.cli import main as command_line

    return command_line(list(argv))


class Answer:
    """How asking the server ended (no dataclass: see `address.ServerAddress`)."""

    __slots__ = ("absent", "exit_code", "notice")

    def __init__(
        self, exit_code: int | None, *, absent: bool = False, notice: str | None = None
    ) -> None:
        self.exit_code = exit_code
        """The command's exit code; None: it must run in this process."""
        self.absent = absent
        """No server listens: start one after the run."""
        self.notice = notice
        """A line to show before running in this process."""


def ask_server(address: ServerAddress, argv: list[str]) -> Answer:
    """Send the command to the server and relay what it prints, until it exits."""
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.settimeout(HANDSHAKE_SECONDS)
        try:
            connection.connect(address.socket)
        except (FileNotFoundError, ConnectionRefusedError):
            return Answer(None, absent=True)
        if peer_uid(connection) not in (None, os.getuid()):
            return Answer(None)
        send(connection, _request(argv))
        reply = receive(connection, MAX_REPLY_BYTES)
        if reply["type"] != "accepted":
            return Answer(None)  # busy with another run
        send(connection, {"type": "go"})  # from here on, the command is the server's
        connection.settimeout(None)
        return _follow(connection)
    except (OSError, ConnectionClosed, ProtocolError):
        return Answer(None)  # before the server took the command: as if it were not there
    finally:
        connection.close()


def _request(argv: list[str]) -> dict[str, object]:
    return {
        "type": "request",
        "protocol": VERSION,
        "argv": argv,
        "cwd": os.getcwd(),
        "umask": _umask(),
        "environment": dict(os.environ),
        "terminals": {"stdout": _is_terminal(sys.stdout), "stderr": _is_terminal(sys.stderr)},
        "size": _terminal_size(),
    }


def _umask() -> int:
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def _is_terminal(stream: object) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty()) if callable(isatty) else False


def _terminal_size() -> list[int] | None:
    """The terminal's columns and lines, as the progress display would find them here."""
    for stream in (sys.stderr, sys.stdout):
        try:
            size = os.get_terminal_size(stream.fileno())
        except (AttributeError, ValueError, OSError):
            continue
        columns = os.environ.get("COLUMNS", "")
        lines = os.environ.get("LINES", "")
        return [
            int(columns) if columns.isdigit() else size.columns,
            int(lines) if lines.isdigit() else size.lines,
        ]
    return None


def _follow(connection: socket.socket) -> Answer:
    """Relay the server's output until its exit code; the first Ctrl-C is sent to the run,
    a second one leaves it (the server sees this end close and interrupts the run)."""
    shown: set[str] = set()
    closed: set[str] = set()
    interrupted = False

    def on_interrupt(_signal: int, _frame: FrameType | None) -> None:
        nonlocal interrupted
        if interrupted:
            raise KeyboardInterrupt
        interrupted = True
        try:
            send(connection, {"type": "interrupt"})
        except OSError:
            raise KeyboardInterrupt from None

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        while True:
            try:
                message = receive(connection, MAX_REPLY_BYTES)
            except (OSError, ConnectionClosed, ProtocolError):
                return _server_lost(shown, interrupted)
            kind = message["type"]
            if kind == "output":
                name = "stdout" if message.get("stream") == "stdout" else "stderr"
                _relay(name, str(message.get("data", "")), closed)
                shown.add(name)
            elif kind == "exit":
                code = message.get("code")
                return Answer(code if isinstance(code, int) else EXIT_INTERNAL_ERROR)
    except KeyboardInterrupt:
        print("mdrun: interrupted", file=sys.stderr)
        return Answer(EXIT_INTERRUPTED)
    finally:
        signal.signal(signal.SIGINT, previous)


def _relay(name: str, text: str, closed: set[str]) -> None:
    """Write what the server's run printed; a stream closed here (`| head`) takes no more."""
    if name in closed:
        return
    stream = sys.stdout if name == "stdout" else sys.stderr
    try:
        stream.write(text)
        stream.flush()
    except OSError:
        closed.add(name)


def _server_lost(shown: set[str], interrupted: bool) -> Answer:
    """The server went away during the run: retry here, unless that would repeat output."""
    if interrupted:
        print("mdrun: interrupted", file=sys.stderr)
        return Answer(EXIT_INTERRUPTED)
    if "stdout" in shown:
        print(
            "mdrun: error: the mdrun server stopped during the run, after part of its output "
            "(above); run the command again (--no-server runs it without the server)",
            file=sys.stderr,
        )
        return Answer(EXIT_INTERNAL_ERROR)
    notice = None
    if shown:
        notice = "mdrun: the mdrun server stopped during the run; running it again without it"
    return Answer(None, notice=notice)


def start_server(address: ServerAddress, idle: float) -> None:
    """Start a server in the background, detached: a session of its own (no terminal), its
    output in its log; if it cannot start, the next run tries again."""
    import subprocess

    command = [
        sys.executable, "-m", "mdrun.server.daemon",
        "--folder", str(address.folder), "--name", address.name, "--idle-seconds", str(idle),
    ]  # fmt: skip
    try:
        _trim_log(address.log)
        descriptor = os.open(address.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=descriptor,
                stderr=descriptor,
                cwd=address.folder,
                start_new_session=True,
            )
        finally:
            os.close(descriptor)
    except OSError:
        pass


LOG_LIMIT_BYTES = 1 << 20


def _trim_log(path: str) -> None:
    """Start the log again once it is large (a server appends a few lines per start)."""
    try:
        if os.stat(path).st_size > LOG_LIMIT_BYTES:
            os.unlink(path)
    except FileNotFoundError:
        pass
