"""The cap on a block's output: how much is kept, the note that says what was dropped, and when a
block that goes on printing is a runaway to interrupt.

A block keeps at most `max_output` characters of output (text, and the encoded form of rich
outputs such as images); whatever comes after is dropped and counted, and a note at the end of
its outputs says how much. The block itself runs on (its result is still a result, cached like
any other: the limit is part of its key), unless it goes on printing until what was dropped
passes `RUNAWAY_FACTOR` times the limit: then it is interrupted and fails, as with a timeout.
In Python kernels the dropping happens in the kernel (`kernel_output_limit`), so neither the
kernel's memory nor mdrun's grows with what a block prints; with other kernels it happens as
their messages arrive, which bounds mdrun's memory but not what the kernel buffers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from mdrun.core.jsonvalue import JSONObject
from mdrun.document.kernel_output_limit import RUNAWAY_FACTOR

DEFAULT_MAX_OUTPUT = 10_000_000
"""Characters of output a block keeps unless its `max_output` option says otherwise (10MB)."""
NOTE_KEY = "mdrun_dropped"
"""The metadata field of the truncation note that holds how many characters were dropped."""

_SIZE_RE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmg]i?b?|b)?", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 10**3, "m": 10**6, "g": 10**9, "ki": 2**10, "mi": 2**20, "gi": 2**30}


def parse_size(text: str) -> int:
    """A size such as `10MB`, `500kB`, `2MiB` or `1000000` (characters); ValueError otherwise."""
    match = _SIZE_RE.fullmatch(text.strip())
    if match is None:
        raise ValueError("a size such as 10MB, 500kB or 2MiB")
    unit = (match.group(2) or "").lower().removesuffix("b")
    size = int(float(match.group(1)) * _UNITS[unit])
    if size < 1:
        raise ValueError("a size of at least one character, such as 10MB")
    return size


def format_size(size: int) -> str:
    """`10MB` for 10,000,000: the spelling an author would use in `max_output=`."""
    for unit, factor in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if size >= factor and size % (factor // 10) == 0:
            return f"{size / factor:g}{unit}"
    return str(size)


class OutputBudget:
    """What one block may still keep, and what it dropped; fed by the output collector."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        """Characters to keep; None keeps everything (mdrun's own requests)."""
        self.kept = 0
        self.dropped = 0
        self.kernel_dropped = 0
        """What the kernel dropped before sending, as it last reported."""
        self.kernel_runaway = False

    @property
    def runaway(self) -> bool:
        """Whether the block went on printing far past its limit and must be interrupted."""
        if self.limit is None:
            return False
        return self.kernel_runaway or self.total_dropped > RUNAWAY_FACTOR * self.limit

    @property
    def total_dropped(self) -> int:
        return self.dropped + self.kernel_dropped

    def take_text(self, text: str) -> str:
        """The part of `text` that is kept (all of it, a beginning, or nothing)."""
        if self.limit is None:
            return text
        room = max(0, self.limit - self.kept)
        kept = text if len(text) <= room else text[:room]
        self.kept += len(kept)
        self.dropped += len(text) - len(kept)
        return kept

    def take_data(self, data: Mapping[str, object]) -> bool:
        """Whether a rich output (all its MIME types) is kept whole; it is never cut."""
        size = sum(len(value if isinstance(value, str) else str(value)) for value in data.values())
        if self.limit is None or self.kept + size <= self.limit:
            self.kept += size
            return True
        self.dropped += size
        return False

    def take_kernel_report(self, report: object) -> None:
        """A count sent by the kernel (see `kernel_output_limit`)."""
        if not isinstance(report, Mapping):
            return
        dropped = report.get("dropped")
        if type(dropped) is int and dropped >= 0:
            self.kernel_dropped = dropped
        self.kernel_runaway = self.kernel_runaway or report.get("runaway") is True

    def clear(self) -> None:
        """The outputs were cleared: what is shown starts again from nothing."""
        self.kept = self.dropped = self.kernel_dropped = 0
        self.kernel_runaway = False

    def note(self) -> JSONObject | None:
        """The output that says what was dropped; None when nothing was."""
        dropped = self.total_dropped
        if not dropped or self.limit is None:
            return None
        text = (
            f"output truncated: {dropped:,} more characters were dropped "
            f"(the block's limit is max_output={format_size(self.limit)})"
        )
        return {
            "output_type": "display_data",
            "data": {"text/plain": text, "text/markdown": f"**{text.replace(':', '**:', 1)}"},
            "metadata": {NOTE_KEY: dropped},
        }


def dropped_characters(outputs: Iterable[Mapping[str, object]]) -> int:
    """How many characters of output were dropped, read from the truncation note (0: none)."""
    for output in outputs:
        metadata = output.get("metadata")
        if output.get("output_type") == "display_data" and isinstance(metadata, Mapping):
            dropped = metadata.get(NOTE_KEY)
            if type(dropped) is int:
                return dropped
    return 0
