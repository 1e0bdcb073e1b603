"""Code that runs inside an IPython kernel: cap the text a block writes to stdout and stderr.

mdrun sends this module's source to the kernel once (it needs only the standard library) and
names each block's limit in its execute request's metadata. Past the limit, writes are counted
and dropped before IPython or ipykernel see them, so neither the kernel's memory (IPython keeps
every output of a cell in its history) nor the traffic to mdrun grows with what a block prints.
The count goes to mdrun in a display_data message of mdrun's own MIME type when the block ends,
and at once when the block has had `RUNAWAY_FACTOR` times its limit dropped, so that mdrun
can interrupt it. The block's code sees no difference: its writes succeed. What mdrun keeps of the
rest, and the note it shows, is `output_limit`'s business.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

LIMIT_KEY = "mdrun_max_output"
"""The execute request's metadata field that holds the block's limit, in characters."""
REPORT_MIME = "application/vnd.mdrun.output-limit+json"
"""The MIME type of the count sent to mdrun: {"dropped": characters, "runaway": bool}."""
RUNAWAY_FACTOR = 10
"""A block that has had this many times its limit dropped is reported as running away."""
STREAM_NAMES = ("stdout", "stderr")

Write = Callable[..., Any]


class Limiter:
    """The counts of the block being run, and the patched `write` of sys.stdout and stderr."""

    def __init__(self, shell: Any) -> None:
        self.kernel = shell.kernel
        self.limit: int | None = None
        self.runaway_at = 0
        self.kept = 0
        self.dropped = 0
        self.runaway = False
        self.parent: dict[str, Any] = {}
        self.patched: list[tuple[Any, Write, bool]] = []

    def start_block(self, _info: Any = None) -> None:
        """IPython's pre_run_cell: read the block's limit and patch the streams' `write`.

        IPython wraps the streams' `write` for its history just before this event and puts the
        old one back after post_run_cell; patching here puts the limit in front of both."""
        parent = self.kernel.get_parent("shell") or {}
        limit = (parent.get("metadata") or {}).get(LIMIT_KEY)
        self.limit = limit if type(limit) is int and limit > 0 else None
        self.runaway_at = RUNAWAY_FACTOR * (self.limit or 0)
        self.parent = parent
        self.kept = self.dropped = 0
        self.runaway = False
        if self.limit is None:
            return
        for name in STREAM_NAMES:
            stream = getattr(sys, name)
            own = "write" in getattr(stream, "__dict__", {})
            original = stream.write
            try:
                stream.write = self._limited(original)
            except (AttributeError, TypeError):
                continue  # a stream whose write cannot be replaced keeps writing everything
            self.patched.append((stream, original, own))

    def end_block(self, _result: Any = None) -> None:
        """IPython's post_run_cell: put the streams back, tell mdrun what was dropped."""
        for stream, original, own in reversed(self.patched):
            if own:
                stream.write = original
            else:
                del stream.write
        self.patched.clear()
        if self.dropped:
            self._report()
        self.limit = None

    def clear(self) -> None:
        """Output was cleared (clear_output): what is shown starts again from nothing."""
        self.kept = self.dropped = 0
        self.runaway = False

    def _limited(self, write: Write) -> Write:
        """`write`, keeping the block within its limit. Without a lock, which would double
        the cost of a small write: the counts are the block's own, and a thread writing at the
        same instant may at worst shift one of them by its own write."""

        def limited_write(text: Any, *args: Any, **kwargs: Any) -> Any:
            limit = self.limit
            if limit is None or type(text) is not str:
                return write(text, *args, **kwargs)
            room = limit - self.kept
            if len(text) <= room:
                self.kept += len(text)
                return write(text, *args, **kwargs)
            self.dropped += len(text) - max(room, 0)
            if room > 0:
                self.kept = limit
                write(text[:room], *args, **kwargs)
            if not self.runaway and self.dropped > self.runaway_at:
                self.runaway = True
                self._report()
            return len(text)

        return limited_write

    def _report(self) -> None:
        """Send the count to mdrun, as an output of the block being run."""
        content = {
            "data": {REPORT_MIME: {"dropped": self.dropped, "runaway": self.runaway}},
            "metadata": {},
            "transient": {},
        }
        session = self.kernel.session
        session.send(
            self.kernel.iopub_socket, "display_data", content, self.parent, ident=b"display_data"
        )


def install() -> None:
    """Called once when the kernel starts, before any block runs."""
    from IPython import get_ipython

    shell = get_ipython()
    limiter = Limiter(shell)
    shell.events.register("pre_run_cell", limiter.start_block)
    shell.events.register("post_run_cell", limiter.end_block)
    publisher = shell.display_pub
    clear_output = publisher.clear_output

    def clear_and_count_again(*args: Any, **kwargs: Any) -> Any:
        limiter.clear()
        return clear_output(*args, **kwargs)

    publisher.clear_output = clear_and_count_again
