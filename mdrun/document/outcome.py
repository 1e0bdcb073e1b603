"""What a run made of each block (`BlockOutcome`), of the whole plan (`Evaluation`), and the
progress it reports on the way (`Reporter`): what the document, the terminal and `--report` show.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mdrun.core.jsonvalue import JSONObject
from mdrun.core.refs import RRef
from mdrun.document.output_limit import dropped_characters
from mdrun.document.outputs import Output
from mdrun.document.plan import Plan, PlannedBlock
from mdrun.document.status import BlockStatus


@dataclass(slots=True)
class BlockOutcome:
    """What happened to one block in this evaluation."""

    planned: PlannedBlock
    """The block."""
    status: BlockStatus
    """executed, cached, failed, not-run or skipped."""
    outputs: tuple[Output, ...] = ()
    """Its outputs (stored or fresh); empty when it did not run."""
    seconds: float = 0.0
    """Time spent executing it now (0 when cached)."""
    rref: RRef | None = None
    """Its realization, when it has one."""
    note: str = ""
    """Why it failed or did not run."""
    cutoff: bool = False
    """Cached although a block before it in its session ran: kept by early cutoff."""
    key: str | None = None
    """Its result key, when it has a stored result."""

    @property
    def dropped(self) -> int:
        """Characters of output dropped past the block's limit (0: none; see `output_limit`)."""
        return dropped_characters(self.outputs)

    def record(self) -> JSONObject:
        """One line of the `--report` file."""
        return {
            "id": self.planned.block_id,
            "line": self.planned.line,
            "status": self.status,
            "seconds": round(self.seconds, 6),
            "rref": self.rref,
            "cutoff": self.cutoff,
            "note": self.note,
            "truncated": self.dropped > 0,
            "dropped": self.dropped,
        }


class Reporter:
    """Receives progress; the command line passes one that draws it, the default is silent."""

    def planned(self, total_to_check: int) -> None:
        """The number of executable blocks about to be evaluated."""

    def block_started(self, planned: PlannedBlock) -> None:
        """A block starts executing in its kernel."""

    def block_replayed(self, block_id: str) -> None:
        """A cached block is run again silently to restore a session's state."""

    def block_finished(self, outcome: BlockOutcome) -> None:
        """A block is done (executed, cached, failed or not run)."""


@dataclass(slots=True)
class Evaluation:
    """The outcome of every block of a plan."""

    plan: Plan
    """What was evaluated."""
    outcomes: list[BlockOutcome] = field(default_factory=list)
    """One per block, in document order."""
    seconds: float = 0.0
    """Wall-clock time of the whole evaluation."""
    snapshots_restored: int = 0
    """How many times a session's state was loaded from a snapshot."""

    def count(self, status: BlockStatus) -> int:
        """How many blocks ended with this status."""
        return sum(1 for outcome in self.outcomes if outcome.status == status)

    @property
    def failed(self) -> bool:
        """True when a block failed (the exit code is 1)."""
        return self.count("failed") > 0
