"""One block's execution as a frozen value: what an executor returns and what the store keeps.

An executor (see `executor`) runs one block and returns a `BlockResult`; the evaluator decides
with `is_accepted` whether it is the block's result (stored, see `results.store_result`) or a
failure (recorded apart, see `results.record_failure`). The failure's description is built once,
from the kernel's error message, when the result is made.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mdrun.document.outputs import ErrorOutput, Output, error_summary
from mdrun.document.status import ExecutionStatus, is_accepted
from mdrun.errors import ExecutionError

_INTERRUPTED = {
    "timeout": "interrupted: the block ran past its timeout",
    "runaway": "interrupted: its output went on far past its limit (raise max_output)",
    "died": "the kernel died while running this block",
}


def error_output(ename: str, evalue: str) -> ErrorOutput:
    """An nbformat error output for a failure mdrun itself found (a kernel that would not
    start, a session state that could not be restored): its traceback is its one line."""
    return {"output_type": "error", "ename": ename, "evalue": evalue, "traceback": [evalue]}


def first_error(outputs: Sequence[Output]) -> ErrorOutput | None:
    """The first error output, which is what the kernel said about the exception."""
    for output in outputs:
        if output["output_type"] == "error":
            return output
    return None


def execution_error(status: ExecutionStatus, outputs: Sequence[Output]) -> ExecutionError:
    """How a block failed, from the kernel's error message (its first error output): the one
    line that the region and the terminal show, and the exception's name, value and traceback."""
    error = first_error(outputs)
    ename = "" if error is None else str(error.get("ename", ""))
    evalue = "" if error is None else str(error.get("evalue", ""))
    traceback = () if error is None else tuple(str(line) for line in error.get("traceback", []))
    message = _INTERRUPTED.get(status, "")
    if not message:
        message = error_summary(ename, evalue).strip() or "the block failed"
    return ExecutionError(message, ename=ename, evalue=evalue, traceback=traceback)


@dataclass(frozen=True, slots=True)
class BlockResult:
    """What running one block produced."""

    status: ExecutionStatus
    """What the kernel reported."""
    outputs: tuple[Output, ...]
    """nbformat v4 outputs, in the order the kernel sent them."""
    seconds: float = 0.0
    """Wall-clock time of the execution (replays to restore the state not counted)."""
    state: str | None = None
    """The digest of the session state the block left; None when it is not known (a kernel
    mdrun cannot inspect, an interrupted block, a dead kernel)."""
    folder: Path | None = None
    """The folder holding the records the executor wrote beside the outputs (the state
    record, the snapshot): the block's build folder, published with the result."""
    snapshot: Path | None = None
    """The snapshot of the session state after the block, when one was kept (in `folder`)."""
    error: ExecutionError | None = None
    """How it failed (`execution_error`); None when the status is ok."""
    records: tuple[tuple[str, bytes], ...] = ()
    """Records of the block's build given from memory rather than written into `folder` (the
    state record the kernel handed back in its reply), stored with the result."""
    state_record: Mapping[str, Any] | None = None
    """The state record, read (what `session_state` follows); None when no capture ran."""

    @classmethod
    def of(
        cls,
        status: ExecutionStatus,
        outputs: Sequence[Output],
        seconds: float = 0.0,
        *,
        state: str | None = None,
        folder: Path | None = None,
        snapshot: Path | None = None,
        records: tuple[tuple[str, bytes], ...] = (),
        state_record: Mapping[str, Any] | None = None,
    ) -> BlockResult:
        """A result, with its error built from the kernel's message when it failed."""
        outputs = tuple(outputs)
        error = None if status == "ok" else execution_error(status, outputs)
        return cls(status, outputs, seconds, state, folder, snapshot, error, records, state_record)

    @classmethod
    def kernel_lost(cls, ename: str, message: str) -> BlockResult:
        """A block that could not run: its kernel would not start, or died between requests."""
        return cls.of("died", (error_output(ename, message),))

    def is_accepted(self, allow_error: bool) -> bool:
        """Whether this is the block's result, to be stored (see `status.is_accepted`)."""
        return is_accepted(self.status, allow_error)

    @property
    def note(self) -> str:
        """One line saying how the block failed ("" when it did not)."""
        return "" if self.error is None else self.error.message
