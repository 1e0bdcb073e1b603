"""The conversation with a started kernel: the Jupyter messages mdrun sends and waits for.

Sends execute requests that name the block they run, waits for a request's idle status (passing
its iopub messages on, with no silence timeout) and for shell replies, and runs mdrun's own code
without a trace. What the messages become is `kernel_outputs`' business; the process behind the
channels is `kernel_process`'. jupyter_client (and zmq) is imported only when a client connects.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, cast

from mdrun.document.kernel_output_limit import LIMIT_KEY
from mdrun.document.kernel_process import KernelProcess
from mdrun.errors import KernelDied, KernelError, KernelPortsTaken

if TYPE_CHECKING:
    from jupyter_client.blocking.client import BlockingKernelClient
    from jupyter_client.connect import KernelConnectionInfo

Message = dict[str, Any]
"""A Jupyter message as jupyter_client returns it; its fields are read through `json_object`."""
WaitOutcome = Literal["idle", "timeout", "runaway", "died"]
"""How waiting for a request ended: the kernel became idle, the deadline passed, the output
went far past its limit, or the kernel process ended."""

POLL_SECONDS = 0.1
"""How long to wait for a message before checking that the kernel process still lives."""
FOREIGN_SIGNATURE = "Invalid Signature"
"""What jupyter_client says of a message signed with another key than the kernel's."""
REPLY_GRACE_SECONDS = 5.0
"""How long to wait for an execute reply once the kernel said it is idle."""
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


class KernelClient:
    """The channels to one kernel process. Not thread-safe."""

    def __init__(self, process: KernelProcess, connection: dict[str, Any]) -> None:
        """Connect to the kernel `process` was launched as, with the info it was given."""
        from jupyter_client.blocking.client import BlockingKernelClient

        self.process = process
        self.display = process.choice.display
        client = BlockingKernelClient()
        client.load_connection_info(cast("KernelConnectionInfo", connection))
        client.start_channels()
        self._client: BlockingKernelClient = client
        # The channels' own blocking reads: the client's `get_iopub_msg` wraps each read in an
        # asyncio loop run, which costs more than reading a trivial block's messages.
        self._iopub = client.iopub_channel
        self._shell = client.shell_channel

    def language_info(self, timeout: float) -> dict[str, str]:
        """Ask for kernel_info until answered and iopub is connected (zmq's slow joiner); the
        language's name and version. KernelError if no answer comes within `timeout` s."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg_id = str(self._client.kernel_info())
            try:
                reply = self.shell_reply(msg_id, min(deadline, time.monotonic() + 1.0))
                if reply is None:
                    continue
                self._iopub.get_msg(timeout=0.2)
            except queue.Empty:
                continue
            except ValueError as error:
                if FOREIGN_SIGNATURE not in str(error):
                    raise
                raise KernelPortsTaken(
                    f"the kernel {self.display} got a message signed with another key on its"
                    " ports: another kernel took them before it could"
                ) from error
            info = json_object(json_object(reply.get("content")).get("language_info"))
            return {"name": str(info.get("name", "")), "version": str(info.get("version", ""))}
        raise KernelError(
            f"the kernel {self.display} did not answer within {timeout:g} s"
            f"{self.process.log_tail()}"
        )

    def run_hidden(self, code: str, timeout: float) -> str | None:
        """Run mdrun's own code (no history, no outputs); None, or the error it raised."""
        msg_id = str(self._client.execute(code, silent=True, store_history=False))
        reply = self.shell_reply(msg_id, time.monotonic() + timeout)
        if reply is None:
            return f"no answer within {timeout:g} s"
        content = json_object(reply.get("content"))
        if content.get("status") == "ok":
            return None
        return f"{content.get('ename', 'Error')}: {content.get('evalue', '')}"

    def send_execute(
        self,
        code: str,
        block_id: str,
        after: str | None = None,
        max_output: int | None = None,
        *,
        stop_on_error: bool = False,
    ) -> str:
        """Send an execute request that carries the block id, which the kernel names code by,
        and its output limit, which Python kernels apply as the block writes; its msg_id.
        `stop_on_error`: if the block raises, the kernel aborts the requests queued after it."""
        content = {
            "code": code,
            "silent": False,
            "store_history": True,
            "user_expressions": {} if after is None else {"mdrun": after},
            "allow_stdin": False,
            "stop_on_error": stop_on_error,
        }
        metadata: dict[str, object] = {BLOCK_ID_KEY: block_id}
        if max_output is not None:
            metadata[LIMIT_KEY] = max_output
        message = self._client.session.msg("execute_request", content, metadata=metadata)
        self._client.shell_channel.send(message)
        return str(message["header"]["msg_id"])

    def wait_until_idle(
        self,
        msg_id: str,
        on_message: Callable[[Message], None],
        deadline: float | None,
        is_runaway: Callable[[], bool] = lambda: False,
    ) -> WaitOutcome:
        """Pass on the request's iopub messages until its idle status; no silence timeout."""
        while True:
            wait = POLL_SECONDS
            if deadline is not None:
                wait = min(wait, deadline - time.monotonic())
                if wait <= 0:
                    return "timeout"
            try:
                message: Message = self._iopub.get_msg(timeout=wait)
            except queue.Empty:
                if not self.process.alive:
                    return "died"
                continue
            if json_object(message.get("parent_header")).get("msg_id") != msg_id:
                continue
            content = json_object(message.get("content"))
            if message.get("msg_type") == "status" and content.get("execution_state") == "idle":
                return "idle"
            on_message(message)
            if is_runaway():
                return "runaway"

    def shell_reply(self, msg_id: str, deadline: float) -> Message | None:
        """The shell reply to `msg_id`, or None if none came before the deadline; KernelDied
        if the process ends meanwhile."""
        while time.monotonic() < deadline:
            try:
                reply: Message = self._shell.get_msg(timeout=POLL_SECONDS)
            except queue.Empty:
                if not self.process.alive:
                    raise KernelDied(
                        f"the kernel {self.display} exited ({self.process.exit_description()})"
                        f"{self.process.log_tail()}"
                    ) from None
                continue
            if json_object(reply.get("parent_header")).get("msg_id") == msg_id:
                return reply
        return None

    def reply_status(self, msg_id: str) -> Literal["ok", "error"] | None:
        """The status of an execute reply that should come soon; None if it does not."""
        return self.execute_reply(msg_id)[0]

    def execute_reply(self, msg_id: str) -> tuple[Literal["ok", "error"] | None, str | None]:
        """An execute reply that should come soon: its status (None if it does not come) and
        the plain text of its user expression `mdrun` (see `send_execute`'s `after`), if that
        was evaluated without error."""
        try:
            reply = self.shell_reply(msg_id, time.monotonic() + REPLY_GRACE_SECONDS)
        except KernelDied:
            return None, None
        if reply is None:
            return None, None
        content = json_object(reply.get("content"))
        if content.get("status") != "ok":
            return "error", None
        expression = json_object(json_object(content.get("user_expressions")).get("mdrun"))
        text = json_object(expression.get("data")).get("text/plain")
        evaluated = expression.get("status") == "ok" and isinstance(text, str)
        return "ok", text if evaluated else None

    def send_interrupt_request(self) -> None:
        """Ask the kernel to interrupt (kernels whose spec says `interrupt_mode: message`)."""
        self._client.control_channel.send(self._client.session.msg("interrupt_request", {}))

    def send_shutdown_request(self) -> None:
        """Ask the kernel to shut down, so that its atexit handlers run."""
        self._client.shutdown()

    def close(self) -> None:
        """Close the channels."""
        self._client.stop_channels()


def json_object(value: object) -> dict[str, Any]:
    """A message field that should be a JSON object; anything else reads as empty."""
    return cast(dict[str, Any], value) if isinstance(value, dict) else {}
