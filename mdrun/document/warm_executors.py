"""Executors kept warm between runs (for `watch`): a session's kernel lives on after a run, a
kernel is brought in the background to the state before the block edited last, and a fresh spare
kernel waits for the session that must start again.

The pool's `factory` is an `ExecutorFactory`: a run's executor for a session is chosen when its
first block runs, among those kept for the same session (same `SessionKey`, kernel and folder):
the one whose kernel holds the most of the blocks that block needs (its chain's history is a
prefix of them). "Closing" it gives it back instead of shutting its kernel down. Its
`SessionChain` knows exactly which blocks its kernel holds, so a kernel is used as it is only
when its history is such a prefix; otherwise the state is restored or replayed, as in any run:
incremental still equals fresh.

After a run, the kernel that ran it holds the blocks up to the last one run, which an edit of
that block cannot use. So once the document is written (`prepare_ahead`), a kernel is brought to
the state the blocks before the edited one leave (`kernel_preparation`, off the critical path),
and the next edit of it runs that block alone; the kept kernel still serves blocks added after.

Linux kills a kernel when the thread that started it ends (see `kernel_launcher`), so spares are
started by one thread that lives as long as the pool; `close` ends everything the pool holds.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from mdrun.document.block_result import BlockResult
from mdrun.document.executor import BlockRequest, ChainStep, Executor, ExecutorSetup
from mdrun.document.jupyter_executor import JupyterExecutor, start_kernel
from mdrun.document.kernel_preparation import Preparer, SessionSlot, Target, holds_prefix
from mdrun.document.kernel_shutdown import Shutdowns
from mdrun.document.kernels import KernelChoice
from mdrun.errors import KernelError

if TYPE_CHECKING:
    from mdrun.document.kernel import KernelSession

KernelKind = tuple[KernelChoice, Path]
"""What makes two fresh kernels interchangeable: the kernel and the folder it runs in."""


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


class SpareKernels:
    """A source of fresh kernels (see `jupyter_executor.KernelSource`) that keeps one ready per
    kind once a kind has been asked for, and shuts retired kernels down in the background."""

    def __init__(self, *, keep_spares: bool = True) -> None:
        self.keep_spares = keep_spares
        self.shutdowns = Shutdowns()
        self.started = 0
        self.taken = 0
        self._condition = threading.Condition()
        self._ready: dict[KernelKind, KernelSession] = {}
        self._wanted: list[KernelKind] = []
        self._failed: set[KernelKind] = set()
        self._starting: KernelKind | None = None
        self._closed = False
        self._thread: threading.Thread | None = None

    def fresh(self, choice: KernelChoice, cwd: Path) -> KernelSession:
        """The spare of this kind if one is ready (or almost), else a kernel started now."""
        kind = (choice, cwd)
        with self._condition:
            if self.keep_spares and kind not in self._wanted and not self._closed:
                self._wanted.append(kind)
                self._start_thread()
            while self._starting == kind:
                self._condition.wait()  # it is booting: sooner ready than one started now
            spare = self._ready.pop(kind, None)
            self._condition.notify_all()  # the thread starts the next spare
            if spare is not None and spare.alive:
                self.taken += 1
                return spare
            if spare is not None:
                self.shutdowns.shut_down(spare)
            self.started += 1
        return start_kernel(choice, cwd)

    def retire(self, session: KernelSession) -> None:
        """Shut a kernel down in the background."""
        self.shutdowns.shut_down(session)

    def close(self) -> None:
        """Stop starting spares, shut the ready ones down, and wait for every shutdown."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join()
        self.shutdowns.wait()

    def _start_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._keep_ready, name="mdrun-spare-kernels", daemon=True
            )
            self._thread.start()

    def _missing(self) -> KernelKind | None:
        for kind in self._wanted:
            if kind not in self._ready and kind not in self._failed:
                return kind
        return None

    def _keep_ready(self) -> None:
        """The spares' thread: start a spare for each kind that has none, until closed; the
        spares it started die with it, so it ends only once they are shut down."""
        while True:
            with self._condition:
                kind = self._missing()
                while not self._closed and kind is None:
                    self._condition.wait()
                    kind = self._missing()
                if self._closed:
                    spares = list(self._ready.values())
                    self._ready.clear()
                    break
                self._starting = kind
                self.started += 1
            assert kind is not None
            spare: KernelSession | None = None
            # If it cannot start, the session that needs one starts its own and says why.
            with contextlib.suppress(KernelError):
                spare = start_kernel(*kind)
            with self._condition:
                self._starting = None
                if spare is None:
                    self._failed.add(kind)
                else:
                    self._ready[kind] = spare
                self._condition.notify_all()
        for spare in spares:
            with contextlib.suppress(KernelError):
                spare.close()
        # Kernels this thread started that sessions took end with it: the pool closes it last.
        self.shutdowns.wait()


@dataclass(slots=True)
class _Lease:
    """A session's executor lent to one run, chosen from the pool when its first block runs
    (then the chain it needs is known); closing it gives it back."""

    pool: WarmExecutors
    setup: ExecutorSetup
    executor: JupyterExecutor | None = None
    restored_before: int = 0
    first: tuple[ChainStep, ...] | None = None
    """The chain of the first block run: the block the author edited."""
    last: tuple[ChainStep, ...] = ()
    """The chain of the last block run."""
    closed: bool = False
    interrupted: bool = False
    """A run raised through it (Ctrl-C): what its kernel holds is unknown; not given back."""

    @property
    def snapshots_restored(self) -> int:
        """Snapshots loaded during this run only."""
        if self.executor is None:
            return 0
        return self.executor.snapshots_restored - self.restored_before

    def run(self, request: BlockRequest) -> BlockResult:
        """See `executor.Executor.run`."""
        try:
            if self.executor is None:
                self.executor = self.pool.take(self.setup, request.before)
                self.restored_before = self.executor.snapshots_restored
                self.first = request.before
            self.last = request.before
            return self.executor.run(request)
        except BaseException:
            self.interrupted = True
            raise

    def close(self) -> None:
        """Give the executor (and its kernel) back to the pool."""
        if self.closed or self.executor is None:
            self.closed = True
            return
        self.closed = True
        if self.interrupted:
            self.executor.close()
        else:
            # The block edited is likely to be edited again; after a whole session ran (its
            # first block was edited, or the document is new), the last one is.
            target = self.first or self.last
            self.pool.give_back(self.setup, self.executor, target)


@dataclass(slots=True)
class _Kept:
    """What the pool keeps for one session between runs."""

    latest: JupyterExecutor | None = None
    """The executor the session's last run used (its kernel holds the blocks that run ran)."""
    prepared: JupyterExecutor | None = None
    """One whose kernel holds the blocks before the block edited last (see `kernel_preparation`)."""
    target: Target | None = None
    """The state to prepare once the run's document is written (see `prepare_ahead`)."""
    setup: ExecutorSetup | None = None
    """The setup of the run that asked for `target`."""

    def executors(self) -> list[JupyterExecutor]:
        return [executor for executor in (self.latest, self.prepared) if executor is not None]


@dataclass
class WarmExecutors:
    """Sessions' executors kept between runs, with spare kernels and kernels prepared in the
    background; `close` ends them all."""

    keep_spares: bool = True
    """Keep a fresh kernel ready for a session that must start again."""
    prepare: bool = True
    """After a run, bring a kernel to the state before the block edited last (`prepare_ahead`)."""
    kernels: SpareKernels = field(init=False)
    preparer: Preparer = field(init=False)
    _kept: dict[SessionSlot, _Kept] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _reused: int = 0
    _prepared_taken: int = 0
    _closed: bool = False

    def __post_init__(self) -> None:
        self.kernels = SpareKernels(keep_spares=self.keep_spares)
        self.preparer = Preparer(self.kernels, self._add_prepared)

    def factory(self, setup: ExecutorSetup) -> Executor:
        """The executor of a session for one run (an `executor.ExecutorFactory`)."""
        return _Lease(self, setup)

    def take(self, setup: ExecutorSetup, before: tuple[ChainStep, ...]) -> JupyterExecutor:
        """The executor for a run's first block of a session: the kept one whose kernel holds
        the most of the blocks before it (and none other), waiting for one being prepared if
        it will hold more; else a new one (whose kernel is a spare)."""
        slot = _slot(setup)
        wanted = [step.identity for step in before]
        with self._lock:
            held = max(self._holding(slot, wanted), default=0)
        # Outside the pool's lock: the preparer hands its kernel over under its own, then ours.
        self.preparer.settle(slot, wanted, held)
        with self._lock:
            kept = self._kept.get(slot)
            best = None
            if kept is not None:
                usable = [
                    executor
                    for executor in kept.executors()
                    if holds_prefix(executor.chain.history, wanted)
                ]
                best = max(usable, key=lambda executor: len(executor.chain.history), default=None)
            if kept is None or best is None:
                return JupyterExecutor(setup, self.kernels)
            self._reused += 1
            if best is kept.prepared:
                kept.prepared = None
                self._prepared_taken += 1
            else:
                kept.latest = None
        best.setup = setup  # this run's reporter hears of replays
        return best

    def give_back(
        self, setup: ExecutorSetup, executor: JupyterExecutor, target: tuple[ChainStep, ...]
    ) -> None:
        """Keep a run's executor for the next run, and note the state to prepare (`target`:
        the blocks before the block edited). It is closed instead when the pool is closed, or
        its kernel holds what no fresh run would reach (an interrupted block, or blocks run
        after a failure, whose identities are not their content's)."""
        slot = _slot(setup)
        retired: list[JupyterExecutor] = []
        with self._lock:
            if self._closed or not _exact(executor):
                retired.append(executor)
            else:
                kept = self._kept.setdefault(slot, _Kept())
                retired.extend(kept.executors())
                kept.latest, kept.prepared = executor, None
                kept.target = kept.setup = None
                wanted = Target(slot, target)
                # One kept before (not used by this run) may hold the target, or a prefix of it.
                base = max(
                    (old for old in retired if holds_prefix(old.chain.history, wanted.identities)),
                    key=lambda old: len(old.chain.history),
                    default=None,
                )
                if base is not None:
                    retired.remove(base)
                    kept.prepared = base
                needed = target and (base is None or base.chain.history != wanted.identities)
                if needed and self.prepare and all(_is_stable(step.identity) for step in target):
                    kept.target, kept.setup = wanted, setup
        for old in retired:
            old.close()

    def prepare_ahead(self) -> None:
        """Start preparing the states the last run asked for (the watcher calls this once the
        document is written, so that preparing takes nothing from the run)."""
        jobs: list[tuple[Target, ExecutorSetup, JupyterExecutor | None]] = []
        with self._lock:
            for kept in self._kept.values():
                if kept.target is not None and kept.setup is not None:
                    jobs.append((kept.target, kept.setup, kept.prepared))
                    kept.target = kept.setup = kept.prepared = None
        for target, setup, base in jobs:
            self.preparer.prepare(target, setup, base)

    def counts(self) -> PoolCounts:
        """What the pool did so far."""
        return PoolCounts(
            self.kernels.started,
            self.kernels.taken,
            self._reused,
            self.preparer.prepared,
            self._prepared_taken,
        )

    def close(self) -> None:
        """Shut every kernel down, and return once they are gone (idempotent)."""
        with self._lock:
            self._closed = True
            kept = [executor for entry in self._kept.values() for executor in entry.executors()]
            self._kept.clear()
        self.preparer.close()
        for executor in kept:
            executor.close()
        self.kernels.close()

    def _holding(self, slot: SessionSlot, wanted: list[str]) -> list[int]:
        """Under the lock: how many of `wanted` each kept executor of `slot` holds."""
        kept = self._kept.get(slot)
        executors = [] if kept is None else kept.executors()
        return [
            len(executor.chain.history)
            for executor in executors
            if holds_prefix(executor.chain.history, wanted)
        ]

    def _add_prepared(self, target: Target, executor: JupyterExecutor) -> None:
        """The preparer's delivery (under its lock): keep it unless the pool closed."""
        with self._lock:
            if not self._closed:
                kept = self._kept.setdefault(target.slot, _Kept())
                old, kept.prepared = kept.prepared, executor
                if old is None:
                    return
                executor = old
        executor.close()

    def __enter__(self) -> WarmExecutors:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _slot(setup: ExecutorSetup) -> SessionSlot:
    return (setup.session, setup.kernel, setup.cwd)


def _is_stable(identity: str) -> bool:
    """Whether a block's identity names its content in every run: one run after a failure is
    named by its position (`unstored:N`, see `evaluate`), which another run may give another
    block."""
    return not identity.startswith("unstored:")


def _exact(executor: JupyterExecutor) -> bool:
    """Whether its kernel holds exactly what its chain says, in identities valid across runs."""
    return executor.state_known and all(_is_stable(step) for step in executor.chain.history)
