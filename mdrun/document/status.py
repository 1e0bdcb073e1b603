"""The two status vocabularies: what a kernel reported, and what happened to a block in a run.

A kernel reports an `ExecutionStatus` for each execution; a run gives each block of the
document a `BlockStatus`, which is what its region and the terminal show. `is_accepted` is the
one rule that says which executions are a block's result.
"""

from __future__ import annotations

from typing import Literal, TypeAlias

ExecutionStatus: TypeAlias = Literal["ok", "error", "timeout", "runaway", "died"]
"""ok; error (the code raised); timeout (interrupted); runaway (interrupted: its output went
far past its limit, see `output_limit`); died (the kernel process ended, or never started)."""

BlockStatus: TypeAlias = Literal["executed", "cached", "failed", "not-run", "skipped"]
"""executed or cached (it has outputs); failed (its outputs end with the failure); not-run
(an earlier block of its session failed: only a note is shown, never outputs that may be
stale); skipped (a block that is never run: no kernel language, `eval=false`)."""


def is_accepted(status: ExecutionStatus, allow_error: bool) -> bool:
    """Whether an execution is a block's result: it went well, or it raised and the block
    allows errors (`allow_error=true`: the traceback is the expected output)."""
    return status == "ok" or (status == "error" and allow_error)
