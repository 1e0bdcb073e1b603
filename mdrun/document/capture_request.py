"""What a Python kernel is asked after a block: digest the state it leaves, perhaps snapshot it
(see `kernel_state.capture`), and what its answer says."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mdrun.document.executor import ChainStep
from mdrun.document.record_files import SNAPSHOT_FILE, SNAPSHOT_FILES, STATE_FILE
from mdrun.document.session_chain import (
    SNAPSHOT_AFTER_SECONDS,
    SNAPSHOT_BYTES_PER_SECOND,
    SNAPSHOT_WRITE_BYTES_PER_SECOND,
)


@dataclass(frozen=True, slots=True)
class CaptureRequest:
    """Digest the state a block leaves into `folder` (`_state.json`), and perhaps snapshot it."""

    folder: Path
    """The block's build folder."""
    snapshot: bool | None
    """True: always snapshot; False: never; None: when replaying would cost enough."""
    replay_cost: float = 0.0
    """Seconds that bringing a kernel to the state before this block takes (replaying the
    blocks since the last snapshot, or loading it), with mdrun's own cost for this block."""
    previous: ChainStep | None = None
    """The latest block before with a snapshot: its unchanged files are linked, not written."""
    changes: frozenset[str] | None = None
    """The only names the block can bind or delete (see `BlockRequest.changes`); None: any."""

    def expression(self, after_error: bool = False, in_reply: bool = False) -> str:
        """The call the kernel evaluates (see `kernel_state.capture`); `after_error`: in a
        request of its own, after the block raised; `in_reply`: the record is the value of
        the expression (`ExecutionResult.after_value`), not a file."""
        report = None if in_reply else str(self.folder / STATE_FILE)
        snapshot = None if self.snapshot is False else str(self.folder / SNAPSHOT_FILE)
        after = SNAPSHOT_AFTER_SECONDS if self.snapshot is None else None
        previous = self.previous
        index = None if previous is None or previous.snapshot is None else str(previous.snapshot)
        sha256 = None if previous is None else previous.snapshot_sha256
        return (
            "__import__('_mdrun_state').capture(get_ipython().user_ns, "
            f"get_ipython().user_ns_hidden, {report!r}, {snapshot!r}, "
            f"replay_cost={self.replay_cost!r}, snapshot_after={after!r}, "
            f"load_bytes_per_second={SNAPSHOT_BYTES_PER_SECOND!r}, "
            f"write_bytes_per_second={SNAPSHOT_WRITE_BYTES_PER_SECOND!r}, "
            f"after_error={after_error!r}, "
            f"previous_snapshot={index!r}, previous_sha256={sha256!r}"
            f"{'' if self.changes is None else f', changes={sorted(self.changes)!r}'})"
        )

    def discard(self) -> None:
        """Remove what the capture wrote: the snapshot, and the record when it is a file."""
        self.discard_snapshot()
        (self.folder / STATE_FILE).unlink(missing_ok=True)

    def discard_snapshot(self) -> None:
        """Remove the snapshot the capture wrote (its index and files of variables)."""
        for path in self.folder.glob(SNAPSHOT_FILES):
            path.unlink()

    def report(self, record: str | None = None) -> dict[str, Any]:
        """What the capture wrote, or handed back as `record` ({} if it did not run)."""
        try:
            if record is None:
                record = (self.folder / STATE_FILE).read_text(encoding="utf-8")
            data = json.loads(record)
        except (FileNotFoundError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    @staticmethod
    def digest(report: dict[str, Any]) -> str | None:
        """The digest of the state the block left, from the capture's `report` (None if it did
        not run)."""
        digest = report.get("digest")
        return digest if isinstance(digest, str) else None

    @staticmethod
    def block_seconds(seconds: float, report: dict[str, Any]) -> float:
        """The block's own time: `seconds` (the request's) without the capture's digest and
        snapshot, which a replay of the block does not do: counted in, a 500 MB state digested
        after a quick block made replaying it look as slow as loading a snapshot."""
        spent = 0.0
        for name in ("capture_seconds", "snapshot_seconds"):
            value = report.get(name)
            spent += value if isinstance(value, int | float) else 0.0
        return max(0.0, seconds - spent)
