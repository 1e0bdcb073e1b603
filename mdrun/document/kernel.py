"""A running Jupyter kernel: start it, execute blocks, collect their outputs, stop it for sure.

A session composes the kernel's process (`kernel_process`: launch, watch, stop), the messages
exchanged with it (`kernel_client`) and what they become (`kernel_outputs`), and decides what a
block's run came to: ok, error, timeout, runaway or died. Which kernel to start is `kernels`'
decision, and what the outputs become afterwards is the caller's. jupyter_client (and zmq) is
imported only when a session starts: a fully cached run never pays for it.
"""

from __future__ import annotations

import ast
import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from types import TracebackType
from typing import Any

from mdrun.core.jsonvalue import JSONObject
from mdrun.document import kernel_outputs
from mdrun.document.kernel_agents import installer
from mdrun.document.kernel_client import BLOCK_NAMING_SETUP, KernelClient, Message
from mdrun.document.kernel_outputs import OutputCollector
from mdrun.document.kernel_process import KernelProcess, folder_identity, start_retrying
from mdrun.document.kernels import KernelChoice, startup_code
from mdrun.document.status import ExecutionStatus, is_accepted
from mdrun.errors import KernelDied, KernelError

INTERRUPT_GRACE_SECONDS = 5.0
"""How long an interrupted kernel has to become idle before it is killed."""
SHUTDOWN_WAIT_SECONDS = 2.0
"""How long a kernel asked to shut down has before it is killed."""


REPLAY_WINDOW = 64
"""How many replayed blocks' requests are sent ahead of the one the kernel runs."""


@dataclass(frozen=True, slots=True)
class ReplayedBlock:
    """A block run again silently to restore a session's state (see `KernelSession.replay`)."""

    code: str
    """Its code."""
    block_id: str
    """Its id, which tracebacks name."""
    timeout: float | None = None
    """Its timeout in seconds, counted from when the block before it ended."""
    max_output: int | None = None
    """Characters of output it keeps (see `output_limit`)."""
    may_raise: bool = False
    """Raising is an accepted outcome for it (`allow_error`)."""


@dataclass(frozen=True, slots=True)
class ExecutionResult:
    """What running one block produced."""

    status: ExecutionStatus
    """ok; error (the code raised); timeout (interrupted); runaway (interrupted: its output
    went far past its limit, see `output_limit`); died (the kernel process ended)."""
    outputs: tuple[JSONObject, ...]
    """nbformat v4 outputs, without execution counts; only errors when run silently. Output
    past the block's limit is dropped, and a note at the end says how much."""
    seconds: float
    """Wall-clock time from sending the code to the kernel becoming idle."""
    after_value: str | None = None
    """The plain text of what `execute`'s `after` evaluated to, when it was evaluated (the
    block ran without error) and did not raise."""

    @property
    def error(self) -> JSONObject | None:
        """The first error output, if any."""
        return next((out for out in self.outputs if out["output_type"] == "error"), None)


class KernelSession:
    """One kernel, started on enter and shut down on exit, whatever happened in between.

    Not thread-safe; on Linux, use it from a thread that lives as long as the session (see
    `kernel_launcher`).
    """

    def __init__(
        self,
        choice: KernelChoice,
        cwd: str | PathLike[str],
        *,
        startup_timeout: float = 60.0,
    ) -> None:
        self.choice = choice
        self.cwd = Path(cwd)
        self.startup_timeout = startup_timeout
        self._process = KernelProcess(choice, self.cwd)
        self._client: KernelClient | None = None
        self._language_info: dict[str, str] | None = None
        self._launched: dict[str, Any] | None = None
        """The connection of a process launched ahead (`launch`), until `start` connects."""

    def __enter__(self) -> KernelSession:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop(graceful=exc is None)  # after an error or Ctrl-C, do not wait for the kernel

    @property
    def alive(self) -> bool:
        """Whether the kernel runs and can execute; if not, `restart()` starts a new one."""
        return self._process.alive

    @property
    def pid(self) -> int | None:
        """The kernel's process id, while it has one."""
        return self._process.pid

    def launch(self) -> None:
        """Start the kernel's process only; `start` connects to it later, so that what mdrun
        does meanwhile overlaps the kernel's boot."""
        if self._process.launched:
            raise KernelError(f"the kernel {self.choice.display} is already started")
        self._launched = self._process.launch()

    def start(self) -> None:
        """Start the kernel (or connect to the one `launch` started) and wait until it answers;
        raise KernelError if it cannot."""
        launched, self._launched = self._launched, None
        if launched is None and self._process.launched:
            raise KernelError(f"the kernel {self.choice.display} is already started")

        def start_once() -> None:
            nonlocal launched
            connection = self._process.launch() if launched is None else launched
            launched = None  # a retry launches a kernel on other ports
            self._connect(connection)

        start_retrying(start_once, lambda: self._stop(graceful=False))

    def restart(self) -> None:
        """Replace the kernel by a fresh one: every variable is gone."""
        self._stop()
        self.start()

    def close(self) -> None:
        """Shut the kernel down; calling it again does nothing."""
        self._stop()

    def language_info(self) -> dict[str, str]:
        """The kernel's language name and version, from its kernel_info reply at start."""
        if self._language_info is None:
            raise KernelError(f"the kernel {self.choice.display} is not started")
        return dict(self._language_info)

    def runs_in(self, folder: Path) -> bool:
        """Whether the kernel runs in `folder` as it is now (not in one removed since and made
        again under its name, which a kernel started there now would not be in)."""
        identity = self._process.folder
        return identity is not None and identity == folder_identity(Path(folder))

    def move_to(self, folder: Path) -> str | None:
        """Move a fresh Python kernel (no block run in it yet) to `folder`, as if it had been
        started there (see `kernel_folder`); None once it is, else why it cannot be."""
        from mdrun.document import kernel_folder

        after = kernel_folder.expression(str(folder))
        result = self.execute("", block_id="mdrun-move", after=after, silent=True)
        try:
            answer = ast.literal_eval(result.after_value or "None")
        except (ValueError, SyntaxError):
            answer = None
        if not isinstance(answer, str) or result.status != "ok":
            return f"the kernel did not move ({result.status})"
        if answer:
            return answer
        self.cwd = self._process.cwd = Path(folder)
        self._process.folder = folder_identity(self.cwd)
        return None

    def run_hidden(self, code: str, timeout: float = 600.0) -> str | None:
        """Run mdrun's own code (no history, no outputs); None, or the error it raised."""
        return self._running_client().run_hidden(code, timeout)

    def execute(
        self,
        code: str,
        *,
        block_id: str,
        timeout: float | None = None,
        silent: bool = False,
        after: str | None = None,
        max_output: int | None = None,
        on_sent: Callable[[], None] | None = None,
    ) -> ExecutionResult:
        """Run `code` as block `block_id` and wait until the kernel is idle again; `on_sent` is
        called once the request is sent.

        `after` is an expression of mdrun's own that the kernel evaluates once the code ran
        without error, in the same request (a user expression: no output, no extra round trip).

        `silent` replays a block to restore state: it runs exactly as usual, but only error
        outputs are kept. Never gives up on a quiet block: only `timeout`, death, or output
        far past `max_output` characters (see `output_limit`) ends a wait.
        """
        if not self.alive:
            raise KernelDied(f"the kernel {self.choice.display} is not running; restart it")
        client = self._running_client()
        started = time.monotonic()
        collector = OutputCollector(errors_only=silent, max_output=max_output)
        msg_id = client.send_execute(code, block_id, after, max_output)
        if on_sent is not None:
            on_sent()
        return self._finish(msg_id, collector, block_id, timeout, started, max_output=max_output)

    def replay(self, blocks: Sequence[ReplayedBlock]) -> tuple[list[ExecutionResult], int]:
        """Run blocks silently, one after another, as `execute(silent=True)` would, but with
        their requests sent ahead (up to `REPLAY_WINDOW` in flight): the kernel goes from one
        block to the next without waiting for mdrun to read the last one's messages.

        Stops at the first block whose outcome is not accepted. Returns the results up to and
        including that one, and how many requests were in flight then: when any were, the
        kernel may run them still (a Python kernel aborts them), so its state is not known."""
        if not self.alive:
            raise KernelDied(f"the kernel {self.choice.display} is not running; restart it")
        client = self._running_client()
        in_flight: deque[tuple[str, OutputCollector]] = deque()
        results: list[ExecutionResult] = []
        started = time.monotonic()
        while len(results) < len(blocks):
            while len(results) + len(in_flight) < len(blocks) and len(in_flight) < REPLAY_WINDOW:
                block = blocks[len(results) + len(in_flight)]
                collector = OutputCollector(errors_only=True, max_output=block.max_output)
                stop_on_error = not block.may_raise  # the blocks after an accepted error go on
                msg_id = client.send_execute(
                    block.code, block.block_id, None, block.max_output, stop_on_error=stop_on_error
                )
                in_flight.append((msg_id, collector))
            block = blocks[len(results)]
            msg_id, collector = in_flight.popleft()
            # Its time starts when the block before it ended: the kernel runs them in order.
            limit = block.max_output
            result = self._finish(
                msg_id, collector, block.block_id, block.timeout, started, max_output=limit
            )
            started = time.monotonic()
            results.append(result)
            if not is_accepted(result.status, block.may_raise):
                return results, len(in_flight)
        return results, 0

    def _finish(
        self,
        msg_id: str,
        collector: OutputCollector,
        block_id: str,
        timeout: float | None,
        started: float,
        *,
        max_output: int | None,
    ) -> ExecutionResult:
        """Wait for a sent block to end (its timeout counted from `started`), and say how."""
        client = self._running_client()
        deadline = None if timeout is None else started + timeout
        outcome = client.wait_until_idle(msg_id, collector.add, deadline, collector.is_runaway)
        status: ExecutionStatus
        after_value = None
        if outcome == "idle":
            replied, after_value = client.execute_reply(msg_id)
            status = replied or ("error" if collector.has_error else "ok")
            if collector.malformed:
                status = "error"  # what the kernel sent cannot be shown as it meant it
        elif outcome == "died":
            status = "died"
            collector.add_error("KernelDied", self._death_message(block_id))
        elif outcome == "runaway":
            status = "runaway"
            limit = f"{max_output or 0:,}"
            reason = f"as its output went on far past its limit of {limit} characters (max_output)"
            # What it wrote before the interrupt lands is kept, up to its limit.
            message = self._interrupt(msg_id, block_id, reason, collector.add_unless_error)
            collector.add_error("OutputLimit", message)
        else:
            status = "timeout"
            reason = f"after {timeout or 0.0:g} s (its timeout)"
            collector.add_error("Timeout", self._interrupt(msg_id, block_id, reason))
        seconds = time.monotonic() - started
        return ExecutionResult(status, collector.finish(), seconds, after_value)

    # -- start and stop ----------------------------------------------------------------------

    def _connect(self, connection: dict[str, Any]) -> None:
        """Connect to the kernel process launched with `connection`, loading jupyter_client
        while it boots (the two take about as long, so a kernel is ready sooner than with
        jupyter_client's manager), and set it up."""
        client = self._client = KernelClient(self._process, connection)
        _prepare_outputs()
        self._language_info = client.language_info(self.startup_timeout)
        self._process.remove_connection_file()
        if self._language_info["name"].lower() == "python":
            client.run_hidden(BLOCK_NAMING_SETUP + _output_limit_setup(), self.startup_timeout)
        setup = startup_code(self.choice)
        if setup is not None:
            client.run_hidden(setup, self.startup_timeout)

    def _stop(self, *, graceful: bool = True) -> None:
        """Stop the kernel: ask it to shut down (so its atexit handlers run), else kill it."""
        client, self._client, self._language_info = self._client, None, None
        self._launched = None
        asked = False
        if graceful and client is not None and self._process.alive:
            with contextlib.suppress(Exception):
                client.send_shutdown_request()
                asked = True
        # Whatever the kernel did, the processes its blocks started go with it.
        self._process.stop(SHUTDOWN_WAIT_SECONDS if asked else 0)
        if client is not None:
            client.close()

    # -- interrupting ------------------------------------------------------------------------

    def _interrupt(
        self,
        msg_id: str,
        block_id: str,
        reason: str,
        on_message: Callable[[Message], None] = lambda _message: None,
    ) -> str:
        """Interrupt a block (past its timeout, or printing without end); kill the kernel if it
        does not stop. Its outputs after this are not kept."""
        message = f"block {block_id} was interrupted {reason}"
        client = self._running_client()
        try:
            if self.choice.interrupt_mode == "message":
                client.send_interrupt_request()
            else:
                self._process.interrupt()
        except Exception:
            outcome = "timeout"
        else:
            grace = time.monotonic() + INTERRUPT_GRACE_SECONDS
            outcome = client.wait_until_idle(msg_id, on_message, grace)
        if outcome == "idle":
            client.reply_status(msg_id)
            return message
        # The session is kept, so that `alive` says the kernel needs a restart.
        self._process.kill()
        return f"{message}; the kernel did not stop and was shut down, so it must be restarted"

    def _death_message(self, block_id: str) -> str:
        description = self._process.exit_description()
        return f"the kernel died while running block {block_id} ({description})"

    def _running_client(self) -> KernelClient:
        if self._client is None:
            raise KernelError(f"the kernel {self.choice.display} is not started")
        return self._client


_preparing: list[threading.Thread] = []
"""The thread that prepares nbformat (`kernel_outputs.prepare`), once started."""


def _prepare_outputs() -> None:
    """Import nbformat and build its validator in a thread, once per process, while mdrun
    waits for the kernel (its boot, its setup, the first block): done before waiting, it made
    mdrun the slower of the two when the machine is busy. The first output that needs it
    waits for the import, if it comes first."""
    if not _preparing:

        def prepare() -> None:
            with contextlib.suppress(Exception):
                kernel_outputs.prepare()

        thread = threading.Thread(target=prepare, name="mdrun-prepare-outputs", daemon=True)
        _preparing.append(thread)
        thread.start()


def _output_limit_setup() -> str:
    """Code that installs `kernel_output_limit` in an IPython kernel, as `_mdrun_output_limit`."""
    from mdrun.document import kernel_output_limit

    return installer(kernel_output_limit, "_mdrun_output_limit", "install()")
