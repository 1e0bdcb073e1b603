"""The server's warm executors: `watch`'s pool (`WarmExecutors`), bounded for a process that
serves many documents for minutes.

A server keeps at most `KEPT_SESSIONS` sessions' kernels between runs (the least recently used
goes first), evicts them oldest first while the kept kernels together use more than
`KEPT_MEMORY_BYTES` of memory, and keeps spare kernels only for the `SPARE_KINDS` folders it was
asked for most recently. Which kernel a run may use is still the pool's rule: fresh, or one whose
history is a prefix of what the run needs, once it undid the blocks after that prefix that only
added names (`kernel_rollback`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mdrun.document.executor import Executor
from mdrun.document.jupyter_executor import JupyterExecutor
from mdrun.document.kernel import KernelSession
from mdrun.document.kernels import KernelChoice
from mdrun.document.plan import SessionKey
from mdrun.document.warm_executors import KernelKind, SpareKernels, WarmExecutors

KEPT_SESSIONS = 4
"""Sessions whose kernels are kept between runs."""
KEPT_MEMORY_BYTES = 2 << 30
"""Above this much resident memory in kept kernels, the least recently used are shut down."""
SPARE_KINDS = 2
"""Kinds of kernel (kernel and folder) for which a fresh spare is kept ready."""


class RecentSpares(SpareKernels):
    """Spare kernels for the most recently asked kinds only (a server sees many folders),
    started between runs: a kernel booting during a run takes a core from it."""

    def __init__(self, *, keep_spares: bool = True) -> None:
        super().__init__(keep_spares=keep_spares)
        self._held = False

    @contextmanager
    def held(self) -> Iterator[None]:
        """Start no spare meanwhile (one already booting is still waited for and taken)."""
        with self._condition:
            self._held = True
        try:
            yield
        finally:
            with self._condition:
                self._held = False
                self._condition.notify_all()

    def _missing(self) -> KernelKind | None:
        return None if self._held else super()._missing()

    def fresh(self, choice: KernelChoice, cwd: Path) -> KernelSession:
        """See `SpareKernels.fresh`; first forgets the kinds asked for least recently."""
        kind = (choice, cwd)
        dropped: list[KernelSession] = []
        with self._condition:
            if kind in self._wanted:  # the most recent last (the thread is already started)
                self._wanted.remove(kind)
                self._wanted.append(kind)
            else:  # `SpareKernels.fresh` adds it (and starts the thread)
                while len(self._wanted) >= SPARE_KINDS:
                    old = self._wanted.pop(0)
                    self._failed.discard(old)
            # Spares of the kinds forgotten would wait for nobody, but one of this kernel may
            # be moved to this folder (see `SpareKernels.fresh`).
            movable = kind not in self._ready
            for other in [known for known in self._ready if known not in self._wanted]:
                if movable and other[0] == choice:
                    movable = False
                elif other != kind:
                    dropped.append(self._ready.pop(other))
        for spare in dropped:
            self.retire(spare)
        return super().fresh(choice, cwd)

    def kernel_pids(self) -> list[int]:
        """The spares' process ids."""
        with self._condition:
            return [pid for spare in self._ready.values() if (pid := spare.pid) is not None]


@dataclass
class KeptExecutors(WarmExecutors):
    """`WarmExecutors` with the bounds above."""

    def __post_init__(self) -> None:
        self.kernels = self.spares = RecentSpares(keep_spares=self.keep_spares)

    def give_back(self, key: tuple[SessionKey, KernelChoice, Path], executor: Executor) -> None:
        """Keep it (see `WarmExecutors.give_back`), then drop the least recently used beyond
        the bounds."""
        super().give_back(key, executor)
        self.trim()

    def trim(self) -> None:
        """Shut down kept kernels beyond `KEPT_SESSIONS`, then beyond `KEPT_MEMORY_BYTES`."""
        evicted: list[JupyterExecutor] = []
        with self._lock:
            while len(self._idle) > KEPT_SESSIONS or (
                self._idle and self._kept_memory() > KEPT_MEMORY_BYTES
            ):
                evicted.append(self._idle.pop(next(iter(self._idle))))
        for executor in evicted:
            executor.close()

    def _kept_memory(self) -> int:
        return sum(resident_bytes(pid) for pid in self._kept_pids())

    def _kept_pids(self) -> list[int]:
        pids = []
        for executor in self._idle.values():
            session = executor.kernel
            if session is not None and session.pid is not None:
                pids.append(session.pid)
        return pids

    def kernel_pids(self) -> list[int]:
        """The process ids of every kernel the pool holds between runs, spares included."""
        with self._lock:
            kept = self._kept_pids()
        return kept + self.spares.kernel_pids()


def resident_bytes(pid: int) -> int:
    """A process's resident memory (0 if it is gone or unknown)."""
    try:
        with open(f"/proc/{pid}/statm", encoding="ascii") as stream:
            pages = int(stream.read().split()[1])
    except (OSError, ValueError, IndexError):
        return 0
    return pages * os.sysconf("SC_PAGE_SIZE")
