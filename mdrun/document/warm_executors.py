"""Executors kept warm between runs (for `watch`): a session's kernel lives on after a run, a
kernel is brought in the background to the state before the block edited last, and a fresh spare
kernel waits for the session that must start again.

The pool's `factory` is an `ExecutorFactory`: a run's executor for a session is the one the
previous run left for the same session (same `SessionKey`, kernel and folder), or, once the
session's first block shows which chain it needs, the prepared one if its kernel holds more of
that chain; "closing" it gives it back instead of shutting its kernel down. Its `SessionChain`
knows exactly which blocks its kernel holds, so a kernel is used as it is only when its history
is a prefix of the blocks a block needs; otherwise it is replaced (by the spare) and the state
is restored or replayed, as in any run: incremental still equals fresh.

After a run, the kernel that ran it holds the blocks up to the last one run, which an edit of
that block can use only after undoing the blocks from it on, which it can when they only added
names (`kernel_rollback`: the chain says so). When it cannot, once the document is written
(`prepare_ahead`), a second kernel is brought to the state the blocks before the edited one
leave (`kernel_preparation`, off the critical path), and the next edit of it runs that block
alone; the kept kernel still serves blocks added after.

The spares are `spare_kernels`'; `close` ends everything the pool holds.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from mdrun.document.block_result import BlockResult
from mdrun.document.executor import BlockRequest, ChainStep, Executor, ExecutorSetup
from mdrun.document.jupyter_executor import JupyterExecutor
from mdrun.document.kernel_preparation import Preparer, SessionSlot, Target, holds_prefix
from mdrun.document.spare_kernels import KernelKind, SpareKernels

__all__ = ["KernelKind", "PoolCounts", "SpareKernels", "WarmExecutors"]


@dataclass(frozen=True, slots=True)
class PoolCounts:
    """What a pool did so far (what its tests and benchmarks observe)."""

    kernels_started: int
    """Kernels started, spares included."""
    spares_taken: int
    """Fresh kernels that were waiting ready when a session needed one."""
    executors_reused: int
    """Runs' sessions served by an executor kept from an earlier run (prepared ones too)."""
    kernels_prepared: int = 0
    """Kernels brought in the background to the state before the block edited last."""
    prepared_taken: int = 0
    """Runs' sessions served by such a kernel (its first block ran without replaying any)."""


@dataclass(slots=True)
class _Lease:
    """A pooled executor lent to one run; closing it gives it back. At the session's first
    block (then the chain it needs is known) a kernel prepared for it may be taken instead."""

    pool: WarmExecutors
    key: SessionSlot
    executor: JupyterExecutor
    restored_before: int
    started: bool = False
    first: tuple[ChainStep, ...] = ()
    """The chain of the first block run: the block the author edited."""
    last: tuple[ChainStep, ...] = ()
    """The chain of the last block run."""
    closed: bool = False
    interrupted: bool = False
    """A run raised through it (Ctrl-C): what its kernel holds is unknown; not given back."""

    @property
    def snapshots_restored(self) -> int:
        """Snapshots loaded during this run only."""
        return self.executor.snapshots_restored - self.restored_before

    def run(self, request: BlockRequest) -> BlockResult:
        """See `executor.Executor.run`."""
        try:
            if not self.started:
                self.started = True
                self.first = request.before
                self.executor = self.pool.best_for(self.key, self.executor, request.before)
                self.restored_before = self.executor.snapshots_restored
            self.last = request.before
            return self.executor.run(request)
        except BaseException:
            self.interrupted = True
            raise

    def close(self) -> None:
        """Give the executor (and its kernel) back to the pool."""
        if self.closed:
            return
        self.closed = True
        if self.interrupted:
            self.executor.close()
            return
        if self.started:
            # The block edited is likely to be edited again; after a whole session ran (its
            # first block was edited, or the document is new), the last one is.
            self.pool.note_edited(self.key, self.executor.setup, self.first or self.last)
        self.pool.give_back(self.key, self.executor)


@dataclass
class WarmExecutors:
    """Sessions' executors kept between runs, with spare kernels and kernels prepared in the
    background for the next edit; `close` ends them all."""

    keep_spares: bool = True
    """Keep a fresh kernel ready for a session that must start again."""
    prepare: bool = False
    """After a run, bring a kernel to the state before the block edited last: the caller says
    when, with `prepare_ahead` (`watch` does, once the document is written). Without it, no
    executor is kept beyond one per session."""
    kernels: SpareKernels = field(init=False)
    _idle: dict[SessionSlot, JupyterExecutor] = field(default_factory=dict)
    """The executor each session's last run used, least recently used first."""
    _prepared: dict[SessionSlot, JupyterExecutor] = field(default_factory=dict)
    """Executors whose kernel holds the blocks before the block edited last."""
    _targets: dict[SessionSlot, tuple[Target, ExecutorSetup]] = field(default_factory=dict)
    """The states to prepare once the last run's document is written (`prepare_ahead`)."""
    _edited: dict[SessionSlot, tuple[ExecutorSetup, tuple[ChainStep, ...]]] = field(
        default_factory=dict
    )
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _preparer: Preparer | None = None
    _reused: int = 0
    _prepared_taken: int = 0
    _closed: bool = False

    def __post_init__(self) -> None:
        self.kernels = SpareKernels(keep_spares=self.keep_spares)

    @property
    def preparer(self) -> Preparer:
        """The thread that prepares kernels (started on first use)."""
        with self._lock:
            if self._preparer is None:
                self._preparer = Preparer(self.kernels, self._add_prepared)
            return self._preparer

    def factory(self, setup: ExecutorSetup) -> Executor:
        """The executor of a session for one run (an `executor.ExecutorFactory`)."""
        key = (setup.session, setup.kernel, setup.cwd)
        stale: list[JupyterExecutor] = []
        with self._lock:
            executor = self._idle.pop(key, None)
            for kept in (executor, self._prepared.get(key)):
                if kept is not None and not _in_folder(kept, setup.cwd):
                    stale.append(kept)  # its folder was removed and made again since
            if self._prepared.get(key) in stale:
                del self._prepared[key]
            if executor is None or executor in stale:
                executor = JupyterExecutor(setup, self.kernels)
            else:
                self._reused += 1
                executor.setup = setup  # this run's reporter hears of replays
        for kept in stale:
            kept.close()
        return _Lease(self, key, executor, executor.snapshots_restored)

    def best_for(
        self, key: SessionSlot, executor: JupyterExecutor, before: tuple[ChainStep, ...]
    ) -> JupyterExecutor:
        """The executor for a run's first block of a session, whose chain is `before`: the
        lease's, or the prepared one if its kernel holds more of that chain (and nothing
        else), waiting for one being prepared if it will hold more still."""
        wanted = [step.identity for step in before]
        with self._lock:
            held = max(
                (
                    len(kept.chain.history)
                    for kept in (executor, self._prepared.get(key))
                    if kept is not None and holds_prefix(kept.chain.history, wanted)
                ),
                default=0,
            )
        # Outside the pool's lock: the preparer hands its kernel over under its own, then ours.
        unprepared = None if self._preparer is None else self._preparer.settle(key, wanted, held)
        with self._lock:
            if unprepared is not None and key not in self._prepared:
                self._prepared[key], unprepared = unprepared, None
        if unprepared is not None:
            unprepared.close()
        with self._lock:
            prepared = self._prepared.get(key)
            if prepared is None or not _holds_more(prepared, executor, wanted):
                return executor
            del self._prepared[key]
            self._prepared_taken += 1
            # The lease's own is weighed again when the run gives its executor back.
            parked = key not in self._idle
            if parked:
                self._idle[key] = executor
        if not parked:
            executor.close()
        prepared.setup = executor.setup  # this run's reporter hears of replays
        return prepared

    def note_edited(
        self, key: SessionSlot, setup: ExecutorSetup, before: tuple[ChainStep, ...]
    ) -> None:
        """Which block of the session a run began with (its chain `before`), given back next."""
        with self._lock:
            self._edited[key] = (setup, before)

    def give_back(self, key: SessionSlot, executor: Executor) -> None:
        """Keep an executor for the next run (or close it: the pool is closed, or its kernel
        holds what no fresh run would reach: an interrupted block, or blocks run after a failure,
        whose identities are not their content's), and note the state to prepare for the block
        edited (`note_edited`): the executors kept before may hold it, or a prefix of it."""
        assert isinstance(executor, JupyterExecutor)
        retired: list[JupyterExecutor] = []
        with self._lock:
            setup, before = self._edited.pop(key, (None, ()))
            if self._closed or not _exact(executor):
                retired.append(executor)
            else:
                retired += [old for old in (self._idle.pop(key, None),) if old is not None]
                retired += [old for old in (self._prepared.pop(key, None),) if old is not None]
                self._idle[key] = executor  # the most recently used last
                self._targets.pop(key, None)
                if setup is not None and before:
                    self._keep_for(Target(key, before), setup, retired, executor)
        for old in retired:
            old.close()

    def _keep_for(
        self,
        target: Target,
        setup: ExecutorSetup,
        old: list[JupyterExecutor],
        kept: JupyterExecutor,
    ) -> None:
        """Under the lock: keep the one of `old` that holds the most of `target` (and nothing
        else) as prepared, and note what remains to prepare; nothing when the `kept` executor
        reaches the target by undoing its last blocks (see `kernel_rollback`): a second kernel
        would only double the session's memory."""
        identities = target.identities
        if not self.prepare or kept.chain.can_roll_back_to(identities):
            return
        usable = [executor for executor in old if holds_prefix(executor.chain.history, identities)]
        base = max(usable, key=lambda executor: len(executor.chain.history), default=None)
        if base is not None:
            old.remove(base)
            self._prepared[target.slot] = base
        ready = base is not None and base.chain.history == identities
        if not ready and all(_is_stable(step.identity) for step in target.steps):
            self._targets[target.slot] = (target, setup)

    def prepare_ahead(self) -> None:
        """Start preparing the states the last run asked for (the watcher calls this once the
        document is written, so that preparing takes nothing from the run)."""
        with self._lock:
            jobs = [
                (target, setup, self._prepared.pop(key, None))
                for key, (target, setup) in self._targets.items()
            ]
            self._targets.clear()
        for target, setup, base in jobs:
            self.preparer.prepare(target, setup, base)

    def counts(self) -> PoolCounts:
        """What the pool did so far."""
        prepared = 0 if self._preparer is None else self._preparer.prepared
        return PoolCounts(
            self.kernels.started, self.kernels.taken, self._reused, prepared, self._prepared_taken
        )

    def close(self) -> None:
        """Shut every kernel down, and return once they are gone (idempotent)."""
        with self._lock:
            self._closed = True
            kept = [*self._idle.values(), *self._prepared.values()]
            self._idle.clear()
            self._prepared.clear()
            preparer = self._preparer
        if preparer is not None:
            preparer.close()
        for executor in kept:
            executor.close()
        self.kernels.close()

    def _add_prepared(self, target: Target, executor: JupyterExecutor) -> None:
        """The preparer's delivery (under its lock): kept, unless the pool closed."""
        with self._lock:
            if not self._closed:
                old = self._prepared.get(target.slot)
                self._prepared[target.slot] = executor
                if old is None:
                    return
                executor = old
        executor.close()

    def __enter__(self) -> WarmExecutors:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _holds_more(candidate: JupyterExecutor, other: JupyterExecutor, wanted: list[str]) -> bool:
    """Whether `candidate`'s kernel holds more of the chain `wanted` than `other`'s (and no block
    outside it)."""
    if not holds_prefix(candidate.chain.history, wanted):
        return False
    held = other.chain.history
    return not holds_prefix(held, wanted) or len(candidate.chain.history) > len(held)


def _in_folder(executor: JupyterExecutor, cwd: Path) -> bool:
    """Whether the executor's kernel (if it has one) runs in the folder `cwd` is now: a kernel
    left in a folder removed since would write where nobody looks, and not see the new one's
    files."""
    kernel = executor.kernel
    return kernel is None or kernel.runs_in(cwd)


def _is_stable(identity: str) -> bool:
    """Whether a block's identity names its content in every run: one run after a failure is
    named by its position (`unstored:N`, see `evaluate`), which another run may give another
    block."""
    return not identity.startswith("unstored:")


def _exact(executor: JupyterExecutor) -> bool:
    """Whether its kernel holds exactly what its chain says, in identities valid across runs."""
    return executor.state_known and all(_is_stable(step) for step in executor.chain.history)
