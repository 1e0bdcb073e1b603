"""Executors kept warm between runs (for `watch`): a session's kernel lives on after a run, and
a fresh spare kernel waits for the session that must start again.

The pool's `factory` is an `ExecutorFactory`: a run's executor for a session is the one the
previous run left for the same session (same `SessionKey`, kernel and folder), and "closing" it
gives it back instead of shutting its kernel down. Its `SessionChain` knows exactly which blocks
its kernel holds, so a kernel is used as it is only when its history is a prefix of the blocks a
block needs; otherwise it is replaced (by the spare) and the state is restored or replayed, as
in any run: incremental still equals fresh.

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
from mdrun.document.executor import BlockRequest, Executor, ExecutorSetup
from mdrun.document.jupyter_executor import JupyterExecutor, start_kernel
from mdrun.document.kernel_shutdown import Shutdowns
from mdrun.document.kernels import KernelChoice
from mdrun.document.plan import SessionKey
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
    """Runs' sessions served by an executor kept from an earlier run."""


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
    """A pooled executor lent to one run; closing it gives it back."""

    pool: WarmExecutors
    key: tuple[SessionKey, KernelChoice, Path]
    executor: JupyterExecutor
    restored_before: int
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
            return self.executor.run(request)
        except BaseException:
            self.interrupted = True
            raise

    def close(self) -> None:
        """Give the executor (and its kernel) back to the pool."""
        if not self.closed:
            self.closed = True
            if self.interrupted:
                self.executor.close()
            else:
                self.pool.give_back(self.key, self.executor)


@dataclass
class WarmExecutors:
    """Sessions' executors kept between runs, with spare kernels; `close` ends them all."""

    keep_spares: bool = True
    """Keep a fresh kernel ready for a session that must start again."""
    kernels: SpareKernels = field(init=False)
    _idle: dict[tuple[SessionKey, KernelChoice, Path], JupyterExecutor] = field(
        default_factory=dict
    )
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _reused: int = 0
    _closed: bool = False

    def __post_init__(self) -> None:
        self.kernels = SpareKernels(keep_spares=self.keep_spares)

    def factory(self, setup: ExecutorSetup) -> Executor:
        """The executor of a session for one run (an `executor.ExecutorFactory`)."""
        key = (setup.session, setup.kernel, setup.cwd)
        with self._lock:
            executor = self._idle.pop(key, None)
            if executor is None:
                executor = JupyterExecutor(setup, self.kernels)
            else:
                self._reused += 1
                executor.setup = setup  # this run's reporter hears of replays
        return _Lease(self, key, executor, executor.snapshots_restored)

    def give_back(self, key: tuple[SessionKey, KernelChoice, Path], executor: Executor) -> None:
        """Keep an executor for the next run (or close it: the pool is closed, or a block was
        interrupted in its kernel, which holds a state no fresh run would reach)."""
        assert isinstance(executor, JupyterExecutor)
        with self._lock:
            if not self._closed and key not in self._idle and executor.state_known:
                self._idle[key] = executor
                return
        executor.close()

    def counts(self) -> PoolCounts:
        """What the pool did so far."""
        return PoolCounts(self.kernels.started, self.kernels.taken, self._reused)

    def close(self) -> None:
        """Shut every kernel down, and return once they are gone (idempotent)."""
        with self._lock:
            self._closed = True
            idle = list(self._idle.values())
            self._idle.clear()
        for executor in idle:
            executor.close()
        self.kernels.close()

    def __enter__(self) -> WarmExecutors:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
