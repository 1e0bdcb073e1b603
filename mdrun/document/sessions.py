"""Sessions: one kernel per session, started only when a block of it must run.

A session remembers which blocks its kernel has executed, in order. Before running block k it
brings the kernel to the state the blocks before k leave, by re-running silently the ones the
kernel has not seen (cached blocks keep their stored outputs). If the kernel ran something
else, or died, it starts afresh, so a result never depends on what ran earlier in this process.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mdrun.core.jsonvalue import JSONObject
from mdrun.document.kernels import KernelChoice
from mdrun.errors import KernelError

if TYPE_CHECKING:
    from mdrun.document.kernel import ExecutionResult, KernelSession


class Step:
    """One block as a session executes it: its identity, code, id, timeout, and whether an
    exception is its expected outcome (`allow_error=true`: replaying it may raise)."""

    __slots__ = ("allow_error", "block_id", "code", "identity", "timeout")

    def __init__(
        self,
        identity: str,
        code: str,
        block_id: str,
        timeout: float | None,
        allow_error: bool = False,
    ) -> None:
        self.identity = identity
        self.code = code
        self.block_id = block_id
        self.timeout = timeout
        self.allow_error = allow_error


ReplayObserver = Callable[[str], None]
"""Told the id of each block replayed to restore state."""


class SessionRunner:
    """The kernel of one session and the history of what it executed."""

    def __init__(self, kernel: KernelChoice, cwd: Path) -> None:
        self.kernel = kernel
        self.cwd = cwd
        self.history: list[str] = []
        self._session: KernelSession | None = None
        self.started = 0

    def _ensure_kernel(self) -> KernelSession:
        if self._session is not None and not self._session.alive:
            self._session.close()
            self._session = None
        if self._session is None:
            from mdrun.document.kernel import KernelSession

            session = KernelSession(self.kernel, self.cwd)
            session.start()
            self._session = session
            self.history = []
            self.started += 1
        return self._session

    def run(
        self,
        step: Step,
        before: Sequence[Step],
        on_replay: ReplayObserver | None = None,
    ) -> ExecutionResult:
        """Run `step` in the state that the `before` steps leave, replaying what is missing."""
        from mdrun.document.kernel import ExecutionResult

        wanted = [earlier.identity for earlier in before]
        session = self._ensure_kernel()
        if self.history != wanted[: len(self.history)]:
            session.restart()
            self.history = []
            self.started += 1
        for earlier in before[len(self.history) :]:
            if on_replay is not None:
                on_replay(earlier.block_id)
            replay = session.execute(
                earlier.code, block_id=earlier.block_id, timeout=earlier.timeout, silent=True
            )
            self.history.append(earlier.identity)
            if replay.status != "ok" and not (replay.status == "error" and earlier.allow_error):
                error = replay.error or {}
                note = (
                    f"restoring the session's state failed: block {earlier.block_id} raised "
                    f"{error.get('ename', replay.status)} when it was run again"
                )
                outputs = (*replay.outputs, _error_output("StateRestoreError", note))
                return ExecutionResult("error", outputs, replay.seconds)
        result = session.execute(step.code, block_id=step.block_id, timeout=step.timeout)
        self.history.append(step.identity)
        return result

    def close(self) -> None:
        """Shut the kernel down (idempotent)."""
        if self._session is not None:
            with contextlib.suppress(KernelError):
                self._session.close()
            self._session = None


def _error_output(ename: str, evalue: str) -> JSONObject:
    return {"output_type": "error", "ename": ename, "evalue": evalue, "traceback": [evalue]}
