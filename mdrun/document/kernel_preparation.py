"""Kernels brought to a state in the background (for `watch`): after a run, while the author
reads, a kernel restores or replays the blocks before the block she edited last, so that her
next edit of it runs that block alone.

This module owns the thread that does it and what a run may wait for or cut short; which state
to prepare, and what becomes of a prepared executor, is the pool's (`warm_executors`). A kernel
being prepared belongs to this thread alone: the pool sees it only once it is ready, and exactly
in the state its chain records.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mdrun.document.executor import ChainStep, ExecutorSetup
from mdrun.document.jupyter_executor import JupyterExecutor, KernelSource
from mdrun.document.kernels import KernelChoice
from mdrun.document.plan import SessionKey
from mdrun.errors import KernelError

if TYPE_CHECKING:
    from mdrun.document.kernel import KernelSession

SessionSlot = tuple[SessionKey, KernelChoice, Path]
"""A session, its kernel and its folder: what the pool keeps executors under."""


@dataclass(frozen=True, slots=True)
class Target:
    """A state to prepare: a kernel of `slot` holding exactly `steps`."""

    slot: SessionSlot
    """The session it is for."""
    steps: tuple[ChainStep, ...]
    """The blocks the kernel is to hold, first first (with their snapshots, if stored)."""

    @property
    def identities(self) -> list[str]:
        """What the kernel's chain history will be."""
        return [step.identity for step in self.steps]

    def serves(self, wanted: Sequence[str]) -> bool:
        """Whether a kernel in this state can serve a block whose chain is `wanted`."""
        return holds_prefix(self.identities, wanted)


def holds_prefix(history: Sequence[str], wanted: Sequence[str]) -> bool:
    """Whether a kernel that ran `history` holds the first blocks of `wanted` and no other."""
    return len(history) <= len(wanted) and list(wanted[: len(history)]) == list(history)


@dataclass(frozen=True, slots=True)
class _Job:
    target: Target
    setup: ExecutorSetup
    base: JupyterExecutor | None
    """An executor whose kernel already holds a prefix of the target (else a fresh kernel)."""


class _Abandoned(Exception):
    """The preparation is no longer wanted (the pool closes, or a run went another way)."""


class Preparer:
    """One thread that prepares kernels, one target at a time (the latest asked for each
    session). It lives as long as the pool, so the kernels it starts do too (see
    `kernel_launcher`); `close` cuts the one under way short."""

    def __init__(
        self, kernels: KernelSource, deliver: Callable[[Target, JupyterExecutor], None]
    ) -> None:
        self.prepared = 0
        """Kernels brought to their target and handed to the pool."""
        self.abandoned = 0
        """Preparations cut short: a run wanted another state, or the pool closed."""
        self._source = kernels
        self._deliver = deliver
        self._condition = threading.Condition()
        self._waiting: dict[SessionSlot, _Job] = {}
        self._current: Target | None = None
        self._kernel: KernelSession | None = None
        self._abandon = False
        self._closed = False
        self._thread: threading.Thread | None = None

    def prepare(
        self, target: Target, setup: ExecutorSetup, base: JupyterExecutor | None = None
    ) -> None:
        """Prepare a kernel holding `target`'s blocks (from `base`'s kernel if given), after
        those asked for earlier; it replaces a preparation for the same session."""
        dropped: list[JupyterExecutor] = []
        with self._condition:
            if self._closed or (self._current == target and not self._abandon):
                dropped = [] if base is None else [base]  # it is being prepared already
            else:
                earlier = self._waiting.pop(target.slot, None)
                if earlier is not None and earlier.base is not None:
                    dropped.append(earlier.base)
                self._waiting[target.slot] = _Job(target, setup, base)
                if self._is_current(target.slot):
                    self._abandon_current()
                self._start_thread()
                self._condition.notify_all()
        for executor in dropped:
            executor.close()

    def settle(self, slot: SessionSlot, wanted: Sequence[str], held: int) -> JupyterExecutor | None:
        """Before a run takes an executor of `slot` for a block whose chain is `wanted` (a kept
        one holds `held` of its blocks): wait for a preparation under way that gives it more,
        and drop those that would not help it (the run brings its own kernel to its state).
        A preparation not yet begun is dropped too; the executor it was to start from (if any)
        is returned, untouched, for the run to weigh."""
        with self._condition:
            waiting = self._waiting.pop(slot, None)
            while self._is_current(slot) and not self._abandon:
                current = self._current
                assert current is not None
                if current.serves(wanted) and len(current.steps) > held:
                    self._condition.wait()
                else:
                    self._abandon_current()
        return None if waiting is None else waiting.base

    def close(self) -> None:
        """Cut the preparation under way short, drop those waiting, and end the thread."""
        with self._condition:
            self._closed = True
            dropped = [job.base for job in self._waiting.values() if job.base is not None]
            self._waiting.clear()
            if self._current is not None:
                self._abandon_current()
            self._condition.notify_all()
            thread = self._thread
        for executor in dropped:
            executor.close()
        if thread is not None:
            thread.join()

    def _is_current(self, slot: SessionSlot) -> bool:
        return self._current is not None and self._current.slot == slot

    def _abandon_current(self) -> None:
        """Under the lock: stop the preparation under way; its kernel is killed, so that a
        long block being replayed does not hold the thread (it is unreaped while noted here,
        see `kernel_launcher.has_exited`: its pid cannot be another process's)."""
        self._abandon = True
        kernel = self._kernel
        if kernel is not None and kernel.alive and kernel.pid is not None:
            with contextlib.suppress(OSError):
                os.kill(kernel.pid, signal.SIGKILL)

    def _check_wanted(self, _block_id: str = "") -> None:
        with self._condition:
            if self._abandon or self._closed:
                raise _Abandoned

    def _start_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._work, name="mdrun-kernel-preparation", daemon=True
            )
            self._thread.start()

    def _work(self) -> None:
        while True:
            with self._condition:
                while not self._closed and not self._waiting:
                    self._condition.wait()
                if self._closed:
                    return
                slot = next(iter(self._waiting))
                job = self._waiting.pop(slot)
                self._current, self._abandon = job.target, False
            executor = self._prepare(job)
            with self._condition:
                # Handed over under the lock: a run waiting in `settle` finds it in the pool.
                ready = executor is not None and not self._abandon and not self._closed
                if ready:
                    assert executor is not None
                    executor.kernels = self._source
                    self.prepared += 1
                    self._deliver(job.target, executor)
                elif self._abandon:
                    self.abandoned += 1
                self._current, self._kernel = None, None
                self._condition.notify_all()
            if executor is not None and not ready:
                executor.close()

    def _prepare(self, job: _Job) -> JupyterExecutor | None:
        """Bring an executor to the job's target; None (its kernel let go of) if it failed or
        was abandoned."""
        target = job.target
        session, kernel, cwd = target.slot
        quiet = ExecutorSetup(
            session,
            kernel,
            cwd,
            on_replay=self._check_wanted,
            prepare_snapshot=Path.exists,  # a snapshot left on a remote cache: replay instead
        )
        kernels = _PreparerKernels(self)
        executor = job.base or JupyterExecutor(quiet, kernels)
        executor.setup, executor.kernels = quiet, kernels
        with self._condition:
            self._kernel = executor.kernel
        try:
            self._check_wanted()
            ready = executor.bring_to_state(target.steps)
        except (KernelError, _Abandoned):
            ready = False
        except Exception:
            # Preparing is only a head start, and this thread must go on: whatever went wrong
            # (a snapshot unreadable...), the run brings its own kernel to the state it needs,
            # and reports what goes wrong then as any run does.
            ready = False
        if ready and executor.state_known and executor.chain.history == target.identities:
            return executor
        executor.kernels = self._source
        executor.close()
        return None


class _PreparerKernels:
    """The preparer's kernel source: the pool's, with the kernel in use noted, so that an
    abandoned preparation can be cut short by killing it."""

    def __init__(self, preparer: Preparer) -> None:
        self._preparer = preparer

    def fresh(self, choice: KernelChoice, cwd: Path) -> KernelSession:
        """A fresh kernel from the pool's source, unless the preparation was abandoned."""
        preparer = self._preparer
        preparer._check_wanted()
        session = preparer._source.fresh(choice, cwd)
        with preparer._condition:
            preparer._kernel = session
            if preparer._abandon or preparer._closed:
                preparer._kernel = None
                preparer._source.retire(session)
                raise _Abandoned
        return session

    def retire(self, session: KernelSession) -> None:
        """Let a kernel go (it is no longer the one to kill if abandoned)."""
        preparer = self._preparer
        with preparer._condition:
            if preparer._kernel is session:
                preparer._kernel = None
        preparer._source.retire(session)
