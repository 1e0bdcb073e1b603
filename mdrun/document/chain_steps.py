"""What an evaluation knows of each block it has been through, and the step that block is in
its session's chain (what an executor runs or replays to reach a state)."""

from __future__ import annotations

from dataclasses import dataclass

from mdrun.document.executor import ChainStep
from mdrun.document.plan import PlannedBlock
from mdrun.document.remote_cache import usable_snapshot
from mdrun.document.results import StoredResult


@dataclass(frozen=True, slots=True)
class KnownBlock:
    """What the evaluation knows of a block it has been through."""

    identity: str
    """Its dref (`unstored:N` for a block run without a config: its upstream has no result)."""
    key: str | None = None
    """Its result key (of its stored result or of its failure); None when it has none, and the
    blocks after it in its session cannot be looked up."""
    stored: StoredResult | None = None
    """Its result in the store, if it has one."""
    failed: bool = False
    """It failed in this run: replaying it to restore a state may raise."""
    pure: bool = False
    """It was keyed by what it reads (`block_keys`): its stored result key is not this run's."""
    snapshot_usable: bool = True
    """Its stored snapshot holds this run's state (a pure block's may hold another run's)."""


def chain_step(planned: PlannedBlock, known: KnownBlock) -> ChainStep:
    """A block as an executor runs or replays it. A snapshot from a remote cache is offered
    only if its realization is signed by a trusted key (see `remote_cache`)."""
    stored = known.stored
    snapshot = None
    if stored is not None and stored.snapshot is not None and known.snapshot_usable:
        snapshot = usable_snapshot(stored.store, stored.rref, stored.snapshot)
    return ChainStep(
        identity=known.identity,
        code=planned.code,
        block_id=planned.block_id,
        timeout=planned.options.timeout,
        allow_error=planned.options.allow_error or known.failed,
        seconds=0.0 if stored is None else stored.seconds(),
        snapshot=snapshot,
        snapshot_sha256=None if stored is None or snapshot is None else stored.snapshot_sha256,
        snapshot_bytes=0 if stored is None or snapshot is None else _state_bytes(stored),
        max_output=planned.options.max_output,
    )


def _state_bytes(stored: StoredResult) -> int:
    """The size of the state a block's snapshot holds, as its state record says."""
    size = stored.state().get("size")
    return size if isinstance(size, int) else 0
