"""One request's iopub messages turned into the nbformat v4 outputs mdrun stores.

Each output is built and checked against the notebook schema by nbformat's `output_from_msg`,
as nbclient does (a stream once it is complete, rather than each piece). This module adds what a
notebook front end does on top (consecutive stream pieces joined, `clear_output`, display
updates) and what mdrun adds (the output cap of `output_limit`, error tracebacks without ANSI
colours, no execution counts).
nbformat is imported while a kernel starts (`prepare`), never by a run whose blocks are all cached.
"""

from __future__ import annotations

from typing import Any, cast

from mdrun.core.jsonvalue import JSONObject, JSONValue
from mdrun.document.kernel_client import Message, json_object
from mdrun.document.kernel_output_limit import REPORT_MIME
from mdrun.document.output_limit import OutputBudget
from mdrun.document.outputs import strip_ansi

PROTOCOL_ERROR = "KernelProtocolError"
"""The error name of an output message that nbformat refused (the kernel broke the protocol)."""


class MalformedOutput(Exception):
    """An output message that is not a valid nbformat output."""


class OutputCollector:
    """Turns one request's iopub messages into nbformat v4 outputs, as a notebook would, keeping
    at most `max_output` characters of them (see `output_limit`)."""

    def __init__(self, *, errors_only: bool = False, max_output: int | None = None) -> None:
        self.errors_only = errors_only
        self.budget = OutputBudget(max_output)
        self.malformed = False
        """Whether the kernel sent an output nbformat refused (shown as an error output)."""
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
        content = json_object(message.get("content"))
        try:
            self._add(kind, content)
        except MalformedOutput as refused:
            self.malformed = True
            self.add_error(PROTOCOL_ERROR, f"the kernel sent a malformed {kind} message: {refused}")

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

    def _add(self, kind: str, content: dict[str, Any]) -> None:
        """`add` for one message type; MalformedOutput if nbformat refuses it."""
        if kind == "display_data" and REPORT_MIME in json_object(content.get("data")):
            self.budget.take_kernel_report(content["data"][REPORT_MIME])
        elif kind == "error":
            error = output_from_message(kind, content)  # checked: strings, a list of strings
            frames = cast(list[str], error["traceback"])
            self.add_error(str(error["ename"]), str(error["evalue"]), list(frames))
        elif self.errors_only:
            return
        elif kind == "stream":
            self._add_stream(content)
        elif kind in ("execute_result", "display_data"):
            self._add_display(kind, content)
        elif kind == "update_display_data":
            # Checked as the display_data it replaces, as nbclient does.
            update = output_from_message("display_data", content)
            for output in self._by_display_id.get(_display_id(content) or "", []):
                output["data"] = update["data"]
                output["metadata"] = update["metadata"]
        elif kind == "clear_output":
            if content.get("wait"):
                self._clear_on_next_output = True
            else:
                self._clear()

    def _add_stream(self, content: dict[str, Any]) -> None:
        """Keep a stream's text as a piece of the last output; nbformat builds that output once
        it is complete (`_settle`): checking each piece would cost a millisecond per message,
        and kernels such as bash send one per line."""
        if self._clear_on_next_output:
            self._clear()
        name, text = content.get("name"), content.get("text")
        if not isinstance(name, str) or not isinstance(text, str):
            stream = output_from_message("stream", content)  # text as lines, or MalformedOutput
            lines = stream["text"]
            name = str(stream["name"])
            text = "".join(map(str, lines)) if isinstance(lines, list) else str(lines)
        text = self.budget.take_text(text)
        if not text:
            return
        last = self._outputs[-1] if self._outputs else None
        if last is None or last["output_type"] != "stream" or last["name"] != name:
            self._append({"output_type": "stream", "name": name, "text": ""})
        self._pieces.append(text)

    def _add_display(self, kind: str, content: dict[str, Any]) -> None:
        """A rich output, built by nbformat unless it is past the limit (then only counted)."""
        if self._clear_on_next_output:
            self._clear()
        if not self.budget.take_data(json_object(content.get("data"))):
            return
        display = output_from_message(kind, content)
        # Without its execution count: it depends on history, not on the block.
        output: JSONObject = {
            "output_type": kind,
            "data": display["data"],
            "metadata": display["metadata"],
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
        """Join the last stream's pieces into its output, as nbformat builds it: a stream
        whose name and text are strings always passes nbformat's check (a millisecond, more
        than a trivial block costs the kernel), so it is built directly (`stream_output`)."""
        if self._pieces:
            last = self._outputs[-1]
            self._outputs[-1] = stream_output(
                str(last["name"]), str(last["text"]) + "".join(self._pieces)
            )
            self._pieces = []

    def _clear(self) -> None:
        self._outputs.clear()
        self._pieces = []
        self.budget.clear()
        self._clear_on_next_output = False


def prepare() -> None:
    """Import nbformat and build its schema validator now (while a kernel boots, say) rather
    than at the first output."""
    output_from_message("stream", {"name": "stdout", "text": ""})


def stream_output(name: str, text: str) -> JSONObject:
    """The nbformat stream output of a name and a text, as `output_from_message` builds it
    (the schema asks nothing more of a stream than two strings)."""
    return {"output_type": "stream", "name": name, "text": text}


def output_from_message(kind: str, content: dict[str, Any]) -> JSONObject:
    """The nbformat output of an output message, as plain JSON (nbformat gives attribute
    dictionaries); MalformedOutput naming what nbformat refused.

    A missing `metadata` reads as empty, as it did before nbformat checked messages: some
    kernels leave it out of display messages."""
    from nbformat import ValidationError
    from nbformat.v4 import output_from_msg

    if kind in ("display_data", "execute_result") and "metadata" not in content:
        content = {**content, "metadata": {}}
    try:
        message = {"header": {"msg_type": kind}, "content": content}
        output = output_from_msg(message)  # type: ignore[no-untyped-call]
    except KeyError as missing:
        raise MalformedOutput(f"it has no {missing}") from None
    except (ValueError, ValidationError) as refused:
        reason = str(refused).split("\n", 1)[0]  # names the value, which may be large
        raise MalformedOutput(reason if len(reason) <= 200 else reason[:199] + "…") from None
    return cast(JSONObject, _plain(output))


def _plain(value: object) -> JSONValue:
    """nbformat's NotebookNode tree as plain dicts and lists (strings are shared, not copied)."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value  # type: ignore[return-value]


def _display_id(content: dict[str, object]) -> str | None:
    display_id = json_object(content.get("transient")).get("display_id")
    return display_id if isinstance(display_id, str) else None
