"""Sessions: one kernel per session, started only when a block of it must run.

A session remembers which blocks its kernel has executed, in order. Before running block k it
brings the kernel to the state the blocks before k leave: from the nearest snapshot stored with
an earlier block, if there is one, then by re-running silently the blocks after it (cached
blocks keep their stored outputs). If the kernel ran something else, or died, it starts afresh,
so a result never depends on what ran earlier in this process.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mdrun.core.jsonvalue import JSONObject
from mdrun.document.kernel_agents import installer
from mdrun.document.kernels import KernelChoice
from mdrun.errors import KernelError

if TYPE_CHECKING:
    from mdrun.document.kernel import ExecutionResult, KernelSession

RESTORE_INSTEAD_OF_REPLAY_SECONDS = 1.0
"""A running kernel restarts to load a snapshot only when that skips more replaying than this."""


@dataclass(frozen=True, slots=True)
class Step:
    """One block as a session executes it."""

    identity: str
    """What the kernel's history records (the block's dref): equal identity, equal effect."""
    code: str
    """The code to run."""
    block_id: str
    """The block's id, which tracebacks name."""
    timeout: float | None
    """Its timeout in seconds, for replays too."""
    allow_error: bool = False
    """An exception is its expected outcome: replaying it may raise."""
    seconds: float = 0.0
    """How long it took when it was stored (what replaying it costs)."""
    snapshot: Path | None = None
    """A snapshot of the session state right after it, if one is stored."""
    snapshot_sha256: str | None = None
    """The digest its realization records for the snapshot: loaded only if it matches."""
    max_output: int | None = None
    """Characters of output it keeps (see `output_limit`), for replays too."""


@dataclass(frozen=True, slots=True)
class CaptureRequest:
    """Digest the state a block leaves into `folder` (`_state.json`), and perhaps snapshot it."""

    folder: Path
    """The block's build folder."""
    snapshot: bool | None
    """True: always snapshot; False: never; None: when replaying would cost enough."""
    replay_cost: float = 0.0
    """Seconds that replaying the blocks before this one (since the last snapshot) takes."""
    snapshot_after: float = 0.25
    """With `snapshot=None`: snapshot once replaying up to here costs this many seconds."""

    def expression(self) -> str:
        """The call the kernel evaluates (see `kernel_state.capture`)."""
        from mdrun.document.results import SNAPSHOT_FILE, STATE_FILE

        report = str(self.folder / STATE_FILE)
        snapshot = None if self.snapshot is False else str(self.folder / SNAPSHOT_FILE)
        after = self.snapshot_after if self.snapshot is None else None
        return (
            "__import__('_mdrun_state').capture(get_ipython().user_ns, "
            f"get_ipython().user_ns_hidden, {report!r}, {snapshot!r}, "
            f"replay_cost={self.replay_cost!r}, snapshot_after={after!r})"
        )

    def report(self) -> dict[str, Any]:
        """What the capture wrote ({} if it did not run)."""
        from mdrun.document.results import STATE_FILE

        try:
            data = json.loads((self.folder / STATE_FILE).read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}


ReplayObserver = Callable[[str], None]
"""Told the id of each block replayed (or restored from a snapshot) to restore state."""
RefusalObserver = Callable[[Path], None]
"""Told of a snapshot that was not loaded because it does not match its recorded digest."""


def _state_agent_setup() -> str:
    """Code that installs `kernel_state` in a Python kernel as the module `_mdrun_state`."""
    from mdrun.document import kernel_state

    return installer(kernel_state, "_mdrun_state", "watch_initial_states()")


class SessionRunner:
    """The kernel of one session and the history of what it executed."""

    def __init__(
        self, kernel: KernelChoice, cwd: Path, on_refused: RefusalObserver | None = None
    ) -> None:
        self.kernel = kernel
        self.cwd = cwd
        self.on_refused = on_refused
        self.history: list[str] = []
        self._session: KernelSession | None = None
        self.restored = 0

    @property
    def inspects_state(self) -> bool:
        """Whether mdrun can digest and snapshot this kernel's state (Python kernels)."""
        return self.kernel.language.lower() == "python"

    def _ensure_kernel(self) -> KernelSession:
        if self._session is not None and not self._session.alive:
            self._session.close()
            self._session = None
        if self._session is None:
            from mdrun.document.kernel import KernelSession

            session = KernelSession(self.kernel, self.cwd)
            session.start()
            self._session = session
            self._fresh_kernel_started()
        return self._session

    def _fresh_kernel_started(self) -> None:
        self.history = []
        if self.inspects_state and self._session is not None:
            error = self._session.run_hidden(_state_agent_setup())
            if error is not None:
                raise KernelError(f"could not prepare the kernel for state capture: {error}")

    def _restart(self, session: KernelSession) -> None:
        session.restart()
        self._fresh_kernel_started()

    def _restore_point(self, before: Sequence[Step]) -> int | None:
        """The index of the snapshot to restore from, or None to replay from where we are."""
        if not self.inspects_state:
            return None
        for index in range(len(before) - 1, len(self.history) - 1, -1):
            if before[index].snapshot is None or before[index].snapshot_sha256 is None:
                continue
            skipped = sum(step.seconds for step in before[len(self.history) : index + 1])
            if not self.history or skipped > RESTORE_INSTEAD_OF_REPLAY_SECONDS:
                return index
            return None
        return None

    def _restore(self, session: KernelSession, step: Step) -> bool:
        """Load a step's snapshot; the kernel checks it against its digest first, and refuses
        (loads nothing) when it does not match."""
        import tempfile

        assert step.snapshot is not None and step.snapshot_sha256 is not None
        with tempfile.TemporaryDirectory(prefix="mdrun-restore-") as folder:
            report = Path(folder) / "restore.json"
            code = (
                "__import__('_mdrun_state').restore("
                f"get_ipython().user_ns, {str(step.snapshot)!r}, {str(report)!r}, "
                f"{step.snapshot_sha256!r})"
            )
            if session.run_hidden(code) is not None or not report.exists():
                return False
            try:
                refused = "refused" in json.loads(report.read_text(encoding="utf-8"))
            except ValueError:
                return False
            if refused and self.on_refused is not None:
                self.on_refused(step.snapshot)
            return not refused

    def run(
        self,
        step: Step,
        before: Sequence[Step],
        on_replay: ReplayObserver | None = None,
        capture: CaptureRequest | None = None,
    ) -> ExecutionResult:
        """Run `step` in the state that the `before` steps leave, restoring what is missing.

        With `capture`, the state the step leaves is digested in the same request as the step
        (a second request only when the step raised)."""
        from mdrun.document.kernel import ExecutionResult

        wanted = [earlier.identity for earlier in before]
        session = self._ensure_kernel()
        if self.history != wanted[: len(self.history)]:
            self._restart(session)
        restore_at = self._restore_point(before)
        if restore_at is not None:
            if self.history:
                self._restart(session)
            if on_replay is not None:
                on_replay(f"{before[restore_at].block_id} (snapshot)")
            if self._restore(session, before[restore_at]):
                self.history = wanted[: restore_at + 1]
                self.restored += 1
            else:
                self._restart(session)
        for earlier in before[len(self.history) :]:
            if on_replay is not None:
                on_replay(earlier.block_id)
            replay = session.execute(
                earlier.code,
                block_id=earlier.block_id,
                timeout=earlier.timeout,
                silent=True,
                max_output=earlier.max_output,
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
        after = capture.expression() if capture is not None and self.inspects_state else None
        result = session.execute(
            step.code,
            block_id=step.block_id,
            timeout=step.timeout,
            after=after,
            max_output=step.max_output,
        )
        self.history.append(step.identity)
        if capture is not None and result.status == "error" and session.alive:
            self.capture(capture)
        return result

    def capture(self, request: CaptureRequest) -> dict[str, Any]:
        """Digest the session's state now (and maybe snapshot it), in a request of its own.

        Returns what the kernel reported, or {} when the state could not be inspected."""
        if not self.inspects_state or self._session is None or not self._session.alive:
            return {}
        if self._session.run_hidden(request.expression()) is not None:
            return {}
        return request.report()

    def close(self) -> None:
        """Shut the kernel down (idempotent)."""
        if self._session is not None:
            with contextlib.suppress(KernelError):
                self._session.close()
            self._session = None


def _error_output(ename: str, evalue: str) -> JSONObject:
    return {"output_type": "error", "ename": ename, "evalue": evalue, "traceback": [evalue]}
