"""A running Jupyter kernel: start it, execute blocks, collect their outputs, stop it for sure.

Owns the conversation with one kernel through jupyter_client and turns its messages into
nbformat v4 output dicts. Which kernel to start is `kernels`' decision, keeping the kernel from
outliving mdrun is `kernel_launcher`'s, and what the outputs become is the caller's.
jupyter_client (and zmq) is imported only when a session starts: a fully cached run never pays
for it.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Literal, cast

from mdrun.core.jsonvalue import JSONObject, JSONValue
from mdrun.document.kernel_agents import installer
from mdrun.document.kernel_launcher import (
    end_process_group,
    exit_code,
    has_exited,
    launcher_argv,
)
from mdrun.document.kernel_output_limit import LIMIT_KEY, REPORT_MIME
from mdrun.document.kernels import KernelChoice, kernel_environment, startup_code
from mdrun.document.output_limit import OutputBudget
from mdrun.document.outputs import strip_ansi
from mdrun.document.status import ExecutionStatus
from mdrun.errors import KernelDied, KernelError

if TYPE_CHECKING:
    from jupyter_client.blocking.client import BlockingKernelClient
    from jupyter_client.connect import KernelConnectionInfo

START_ATTEMPTS = 3
"""How many times a kernel is started when the ports chosen for it were taken meanwhile."""
PORT_TAKEN = "Address already in use"
"""What a kernel that could not bind its ports says (zmq's EADDRINUSE message)."""

Message = dict[str, Any]
"""A Jupyter message as jupyter_client returns it; its fields are read through `_text` etc."""

POLL_SECONDS = 0.1
"""How long to wait for a message before checking that the kernel process still lives."""
INTERRUPT_GRACE_SECONDS = 5.0
"""How long an interrupted kernel has to become idle before it is killed."""
REPLY_GRACE_SECONDS = 5.0
"""How long to wait for an execute reply once the kernel said it is idle."""
SHUTDOWN_WAIT_SECONDS = 2.0
"""How long a kernel asked to shut down has before it is killed."""
BLOCK_ID_KEY = "mdrun_block_id"
"""The execute_request metadata field that tells the kernel which block it runs."""

BLOCK_NAMING_SETUP = '''
def _mdrun_name_code_after_blocks():
    """Name each cell after its mdrun block so that tracebacks do not depend on history."""
    try:
        shell = get_ipython()
        compiler, kernel = shell.compile, shell.kernel
        original_name, original_format = compiler.get_code_name, compiler.format_code_name
    except Exception:
        return
    blocks = {}

    def get_code_name(raw_code, transformed_code, number):
        try:
            block = (kernel.get_parent("shell").get("metadata") or {}).get(__KEY__)
        except Exception:
            block = None
        if not isinstance(block, str):
            return original_name(raw_code, transformed_code, number)
        name = "<block %s>" % block
        blocks[name] = block
        return name

    def format_code_name(name):
        return ("Block", blocks[name]) if name in blocks else original_format(name)

    compiler.get_code_name = get_code_name
    compiler.format_code_name = format_code_name

_mdrun_name_code_after_blocks()
del _mdrun_name_code_after_blocks
'''.replace("__KEY__", repr(BLOCK_ID_KEY))
"""Run silently in IPython kernels at start. IPython names a cell `Cell In[3]` (execution
count) and ipykernel compiles it as `/tmp/ipykernel_PID/HASH.py`; this names it `<block ID>`
and shows `Block ID, line N`, read from the execute request's metadata."""


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
        self._process: subprocess.Popen[bytes] | None = None
        self._connection_file: Path | None = None
        self._client: BlockingKernelClient | None = None
        self._log: IO[bytes] | None = None
        self._language_info: dict[str, str] | None = None

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
        return self._process is not None and not has_exited(self._process)

    @property
    def pid(self) -> int | None:
        """The kernel's process id, while it has one."""
        return None if self._process is None else self._process.pid

    def start(self) -> None:
        """Start the kernel and wait until it answers; raise KernelError if it cannot."""
        if self._process is not None:
            raise KernelError(f"the kernel {self.choice.display} is already started")
        for attempt in range(1, START_ATTEMPTS + 1):
            try:
                self._launch()
                return
            except KernelDied as died:
                self._stop(graceful=False)
                # The free ports mdrun chose can be taken by another process before the kernel
                # binds them (many kernels starting at once): choose others and start again.
                if PORT_TAKEN not in str(died) or attempt == START_ATTEMPTS:
                    raise
            except BaseException:
                self._stop(graceful=False)
                raise

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

    def execute(
        self,
        code: str,
        *,
        block_id: str,
        timeout: float | None = None,
        silent: bool = False,
        after: str | None = None,
        max_output: int | None = None,
    ) -> ExecutionResult:
        """Run `code` as block `block_id` and wait until the kernel is idle again.

        `after` is an expression of mdrun's own that the kernel evaluates once the code ran
        without error, in the same request (a user expression: no output, no extra round trip).

        `silent` replays a block to restore state: it runs exactly as usual, but only error
        outputs are kept. Never gives up on a quiet block: only `timeout`, death, or output
        far past `max_output` characters (see `output_limit`) ends a wait.
        """
        if not self.alive:
            raise KernelDied(f"the kernel {self.choice.display} is not running; restart it")
        started = time.monotonic()
        collector = OutputCollector(errors_only=silent, max_output=max_output)
        msg_id = self._send_execute(code, block_id, after, max_output)
        deadline = None if timeout is None else started + timeout
        outcome = self._wait_until_idle(msg_id, collector.add, deadline, collector.is_runaway)
        status: ExecutionStatus
        if outcome == "idle":
            status = self._reply_status(msg_id) or ("error" if collector.has_error else "ok")
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
        return ExecutionResult(status, collector.finish(), time.monotonic() - started)

    # -- start and stop ----------------------------------------------------------------------

    def _launch(self) -> None:
        """Start the kernel process first, then load jupyter_client while it boots: the two
        take about as long, so a kernel is ready sooner than with jupyter_client's manager."""
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (lives as long as the kernel)
        connection = _connection_info(self.choice.name)
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
        from jupyter_client.blocking.client import BlockingKernelClient

        client = BlockingKernelClient()
        client.load_connection_info(cast("KernelConnectionInfo", connection))
        client.start_channels()
        self._client = client
        self._language_info = self._wait_for_kernel_info(time.monotonic() + self.startup_timeout)
        # The kernel has read its connection file; without it nothing is left if mdrun is killed.
        connection_file.unlink(missing_ok=True)
        if self._language_info["name"].lower() == "python":
            self._run_setup(BLOCK_NAMING_SETUP + _output_limit_setup())
        setup = startup_code(self.choice)
        if setup is not None:
            self._run_setup(setup)

    def _wait_for_kernel_info(self, deadline: float) -> dict[str, str]:
        """Ask for kernel_info until answered and iopub is connected (zmq's slow joiner)."""
        client = self._running_client()
        while time.monotonic() < deadline:
            msg_id = str(client.kernel_info())
            reply = self._shell_reply(msg_id, min(deadline, time.monotonic() + 1.0))
            if reply is None:
                continue
            try:
                client.get_iopub_msg(timeout=0.2)
            except queue.Empty:
                continue
            info = _object(_object(reply.get("content")).get("language_info"))
            return {"name": str(info.get("name", "")), "version": str(info.get("version", ""))}
        raise KernelError(
            f"the kernel {self.choice.display} did not answer within "
            f"{self.startup_timeout:g} s{self._log_tail()}"
        )

    def _run_setup(self, code: str) -> None:
        """Run mdrun's own code without a trace in the kernel's history or outputs."""
        self.run_hidden(code, self.startup_timeout)

    def run_hidden(self, code: str, timeout: float = 600.0) -> str | None:
        """Run mdrun's own code (no history, no outputs); None, or the error it raised."""
        client = self._running_client()
        msg_id = str(client.execute(code, silent=True, store_history=False))
        reply = self._shell_reply(msg_id, time.monotonic() + timeout)
        if reply is None:
            return f"no answer within {timeout:g} s"
        content = _object(reply.get("content"))
        if content.get("status") == "ok":
            return None
        return f"{content.get('ename', 'Error')}: {content.get('evalue', '')}"

    def _stop(self, *, graceful: bool = True) -> None:
        """Stop the kernel: ask it to shut down (so its atexit handlers run), else kill it."""
        client, process, log = self._client, self._process, self._log
        connection_file = self._connection_file
        self._client = self._process = self._connection_file = self._log = None
        self._language_info = None
        if process is not None:
            asked = False
            if graceful and client is not None and not has_exited(process):
                with contextlib.suppress(Exception):
                    client.shutdown()
                    asked = True
            # Whatever the kernel did, the processes its blocks started go with it.
            end_process_group(process, SHUTDOWN_WAIT_SECONDS if asked else 0)
        if client is not None:
            client.stop_channels()
        if connection_file is not None:
            connection_file.unlink(missing_ok=True)
        if log is not None:
            log.close()

    # -- one execution -----------------------------------------------------------------------

    def _send_execute(
        self, code: str, block_id: str, after: str | None = None, max_output: int | None = None
    ) -> str:
        """Send an execute request that carries the block id, which the kernel names code by,
        and its output limit, which Python kernels apply as the block writes."""
        client = self._running_client()
        content = {
            "code": code,
            "silent": False,
            "store_history": True,
            "user_expressions": {} if after is None else {"mdrun": after},
            "allow_stdin": False,
            "stop_on_error": False,
        }
        metadata: dict[str, object] = {BLOCK_ID_KEY: block_id}
        if max_output is not None:
            metadata[LIMIT_KEY] = max_output
        message = client.session.msg("execute_request", content, metadata=metadata)
        client.shell_channel.send(message)
        return str(message["header"]["msg_id"])

    def _wait_until_idle(
        self,
        msg_id: str,
        on_message: Callable[[Message], None],
        deadline: float | None,
        is_runaway: Callable[[], bool] = lambda: False,
    ) -> Literal["idle", "timeout", "runaway", "died"]:
        """Pass on the request's iopub messages until its idle status; no silence timeout."""
        client = self._running_client()
        while True:
            wait = POLL_SECONDS
            if deadline is not None:
                wait = min(wait, deadline - time.monotonic())
                if wait <= 0:
                    return "timeout"
            try:
                message: Message = client.get_iopub_msg(timeout=wait)
            except queue.Empty:
                if not self.alive:
                    return "died"
                continue
            if _object(message.get("parent_header")).get("msg_id") != msg_id:
                continue
            content = _object(message.get("content"))
            if message.get("msg_type") == "status" and content.get("execution_state") == "idle":
                return "idle"
            on_message(message)
            if is_runaway():
                return "runaway"

    def _shell_reply(self, msg_id: str, deadline: float) -> Message | None:
        """The shell reply to `msg_id`, or None if none came before the deadline."""
        client = self._running_client()
        while time.monotonic() < deadline:
            try:
                reply: Message = client.get_shell_msg(timeout=POLL_SECONDS)
            except queue.Empty:
                if not self.alive:
                    raise KernelDied(
                        f"the kernel {self.choice.display} exited ({self._exit_description()})"
                        f"{self._log_tail()}"
                    ) from None
                continue
            if _object(reply.get("parent_header")).get("msg_id") == msg_id:
                return reply
        return None

    def _reply_status(self, msg_id: str) -> Literal["ok", "error"] | None:
        try:
            reply = self._shell_reply(msg_id, time.monotonic() + REPLY_GRACE_SECONDS)
        except KernelDied:
            return None
        if reply is None:
            return None
        return "ok" if _object(reply.get("content")).get("status") == "ok" else "error"

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
        try:
            self._send_interrupt()
        except Exception:
            outcome = "timeout"
        else:
            grace = time.monotonic() + INTERRUPT_GRACE_SECONDS
            outcome = self._wait_until_idle(msg_id, on_message, grace)
        if outcome == "idle":
            self._reply_status(msg_id)
            return message
        self._stop_unresponsive()
        return f"{message}; the kernel did not stop and was shut down, so it must be restarted"

    def _send_interrupt(self) -> None:
        """SIGINT, or an interrupt request for kernels whose spec asks for messages."""
        if self.choice.interrupt_mode == "message":
            client = self._running_client()
            client.control_channel.send(client.session.msg("interrupt_request", {}))
        elif self._process is not None:
            os.kill(self._process.pid, signal.SIGINT)

    def _stop_unresponsive(self) -> None:
        """Kill the kernel and its process group but keep the session, so that `alive` says it
        needs a restart."""
        if self._process is not None:
            end_process_group(self._process)

    def _death_message(self, block_id: str) -> str:
        return f"the kernel died while running block {block_id} ({self._exit_description()})"

    def _exit_description(self) -> str:
        process = self._process
        code = None if process is None else exit_code(process)
        if code is None:
            return "exit code unknown"
        if code < 0:
            return f"killed by signal {signal.Signals(-code).name}"
        return f"exit code {code}"

    def _log_tail(self, size: int = 2000) -> str:
        """The end of what the kernel process wrote to stdout and stderr, for error messages."""
        if self._log is None:
            return ""
        self._log.seek(0, 2)
        self._log.seek(max(0, self._log.tell() - size))
        text = self._log.read().decode(errors="replace").strip()
        return f"; its output ends with:\n{text}" if text else ""

    def _running_client(self) -> BlockingKernelClient:
        if self._client is None:
            raise KernelError(f"the kernel {self.choice.display} is not started")
        return self._client



class OutputCollector:
    """Turns one request's iopub messages into nbformat v4 outputs, as a notebook would, keeping
    at most `max_output` characters of them (see `output_limit`)."""

    def __init__(self, *, errors_only: bool = False, max_output: int | None = None) -> None:
        self.errors_only = errors_only
        self.budget = OutputBudget(max_output)
        self._outputs: list[JSONObject] = []
        self._pieces: list[str] = []
        """Text for the last output, a stream, not yet joined (joining at each message would
        copy the whole stream every time)."""
        self._by_display_id: dict[str, list[JSONObject]] = {}
        self._clear_on_next_output = False

    @property
    def outputs(self) -> list[JSONObject]:
        """The outputs so far, without the truncation note (see `finish`)."""
        self._settle()
        return self._outputs

    @property
    def has_error(self) -> bool:
        return any(output["output_type"] == "error" for output in self._outputs)

    def is_runaway(self) -> bool:
        """Whether the output went on so far past the limit that the block must be stopped."""
        return self.budget.runaway

    def finish(self) -> tuple[JSONObject, ...]:
        """The outputs, ending with a note of what was dropped, if anything was."""
        note = None if self.errors_only else self.budget.note()
        return (*self.outputs, note) if note is not None else tuple(self.outputs)

    def add(self, message: Message) -> None:
        """Take one iopub message of the request into account."""
        kind = str(message.get("msg_type"))
        content = _object(message.get("content"))
        data = _object(content.get("data"))
        if kind == "display_data" and REPORT_MIME in data:
            self.budget.take_kernel_report(data[REPORT_MIME])
        elif kind == "error":
            traceback = content.get("traceback")
            lines = traceback if isinstance(traceback, list) else []
            ename, evalue = str(content.get("ename", "")), str(content.get("evalue", ""))
            self.add_error(ename, evalue, [str(line) for line in lines])
        elif self.errors_only:
            return
        elif kind == "stream":
            self._add_stream(str(content.get("name", "stdout")), str(content.get("text", "")))
        elif kind in ("execute_result", "display_data"):
            self._add_display(kind, content)
        elif kind == "update_display_data":
            for output in self._by_display_id.get(_display_id(content) or "", []):
                output["data"] = data
                output["metadata"] = _object(content.get("metadata"))
        elif kind == "clear_output":
            if content.get("wait"):
                self._clear_on_next_output = True
            else:
                self._clear()

    def add_unless_error(self, message: Message) -> None:
        """`add`, but for errors (an interrupted block's KeyboardInterrupt)."""
        if message.get("msg_type") != "error":
            self.add(message)

    def add_error(self, ename: str, evalue: str, traceback: list[str] | None = None) -> None:
        """Add an error output; its traceback is split into lines without ANSI colours."""
        frames = traceback if traceback is not None else [f"{ename}: {evalue}"]
        text = strip_ansi("\n".join(frames))  # joined as IPython shows them
        lines: list[JSONValue] = list(text.splitlines())
        self._append({"output_type": "error", "ename": ename, "evalue": evalue, "traceback": lines})

    def _add_stream(self, name: str, text: str) -> None:
        if self._clear_on_next_output:
            self._clear()
        text = self.budget.take_text(text)
        if not text:
            return
        last = self._outputs[-1] if self._outputs else None
        if last is None or last["output_type"] != "stream" or last["name"] != name:
            self._append({"output_type": "stream", "name": name, "text": ""})
        self._pieces.append(text)

    def _add_display(self, kind: str, content: dict[str, object]) -> None:
        if self._clear_on_next_output:
            self._clear()
        data = _object(content.get("data"))
        if not self.budget.take_data(data):
            return
        output: JSONObject = {
            "output_type": kind,
            "data": data,
            "metadata": _object(content.get("metadata")),
        }
        self._append(output)
        display_id = _display_id(content)
        if display_id is not None:
            self._by_display_id.setdefault(display_id, []).append(output)

    def _append(self, output: JSONObject) -> None:
        if self._clear_on_next_output:
            self._clear()
        self._settle()
        self._outputs.append(output)

    def _settle(self) -> None:
        if self._pieces:
            last = self._outputs[-1]
            last["text"] = str(last["text"]) + "".join(self._pieces)
            self._pieces = []

    def _clear(self) -> None:
        self._outputs.clear()
        self._pieces = []
        self.budget.clear()
        self._clear_on_next_output = False


def _output_limit_setup() -> str:
    """Code that installs `kernel_output_limit` in an IPython kernel, as `_mdrun_output_limit`."""
    from mdrun.document import kernel_output_limit

    return installer(kernel_output_limit, "_mdrun_output_limit", "install()")


def _connection_info(kernel_name: str) -> dict[str, Any]:
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


def _object(value: object) -> dict[str, Any]:
    """A message field that should be a JSON object; anything else reads as empty."""
    return cast(dict[str, Any], value) if isinstance(value, dict) else {}


def _display_id(content: dict[str, object]) -> str | None:
    display_id = _object(content.get("transient")).get("display_id")
    return display_id if isinstance(display_id, str) else None
