"""The executor protocol: what the evaluator asks of whatever runs a session's blocks.

An executor belongs to one session. It is asked to run one block in the state that the blocks
before it in the session leave, and answers with a `BlockResult`; how it gets there (a Jupyter
kernel that replays or restores a snapshot, a warm kernel kept between runs, a remote worker)
is its own business. The evaluator makes one per session that has a block to run, through an
`ExecutorFactory`, and closes it when the run ends. The Jupyter one is `jupyter_executor`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from mdrun.document.block_result import BlockResult
from mdrun.document.kernels import KernelChoice
from mdrun.document.plan import SessionKey


@dataclass(frozen=True, slots=True)
class ChainStep:
    """One block of a session's chain, as an executor runs or replays it."""

    identity: str
    """What a kernel's history records (the block's dref): equal identity, equal effect."""
    code: str
    """The code to run."""
    block_id: str
    """The block's id, which tracebacks name."""
    timeout: float | None
    """Its timeout in seconds, for replays too."""
    allow_error: bool = False
    """An exception is its expected outcome (or it failed in this run): replaying it may raise."""
    seconds: float = 0.0
    """How long it took when it was stored (what replaying it costs)."""
    snapshot: Path | None = None
    """A snapshot of the session state right after it, if one is stored."""
    snapshot_sha256: str | None = None
    """The digest its realization records for the snapshot: loaded only if it matches."""
    snapshot_bytes: int = 0
    """The size of the state the snapshot holds (what loading it costs)."""
    max_output: int | None = None
    """Characters of output it keeps (see `output_limit`), for replays too."""


@dataclass(frozen=True, slots=True)
class BlockRequest:
    """Run `step` in the state that the `before` steps leave."""

    step: ChainStep
    """The block to run."""
    before: tuple[ChainStep, ...]
    """The blocks before it in its session, first first, with what the store holds of them."""
    folder: Path | None = None
    """Where to write the state record and a snapshot (the block's build folder, see
    `record_files.STATE_FILE`, `record_files.SNAPSHOT_FILE`); None: the state is not captured."""
    snapshot: bool | None = None
    """The block's `snapshot` option: True always, False never, None when worth it."""
    later: tuple[str, ...] = ()
    """The code of the blocks after it in its session: a snapshot restored before it loads only
    what they and it can read."""
    on_sent: Callable[[], None] | None = None
    """Called once the block's request is on its way to the kernel: work of mdrun's own that
    would compete with sending it (publishing the block before) starts then."""
    changes: frozenset[str] | None = None
    """When the block is pure and keyed by what it reads (`pure_blocks`): every name it
    mentions, the only ones it can bind or delete, which are all its capture need look at."""


@dataclass(frozen=True, slots=True)
class ExecutorSetup:
    """What an executor for one session is made from."""

    session: SessionKey
    """The session it runs."""
    kernel: KernelChoice
    """The kernel the session's blocks run in."""
    cwd: Path
    """The folder the blocks run in (the document's)."""
    on_replay: Callable[[str], None] = lambda _block_id: None
    """Told the id of each block replayed (or restored from a snapshot) to restore a state."""
    on_refused: Callable[[Path], None] = lambda _snapshot: None
    """Told of a snapshot that was not loaded because it does not match its recorded digest."""
    prepare_snapshot: Callable[[Path], bool] = lambda _snapshot: True
    """Makes a snapshot's file present right before it is loaded (one left on a remote cache
    is fetched); False: it cannot be, and the session replays instead."""


class Executor(Protocol):
    """Runs the blocks of one session."""

    def run(self, request: BlockRequest) -> BlockResult:
        """Run one block; a failure (the block raised, the kernel died) is a result, not an
        exception."""
        ...

    @property
    def snapshots_restored(self) -> int:
        """How many times the session's state was loaded from a snapshot so far."""
        ...

    def close(self) -> None:
        """Release what it holds (a kernel); idempotent."""
        ...


ExecutorFactory = Callable[[ExecutorSetup], Executor]
"""Makes the executor of a session (see `jupyter_executor.JupyterExecutor`)."""
