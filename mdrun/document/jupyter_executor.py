"""The Jupyter executor: one kernel per session, started only when a block of it must run.

Before running a block it brings the kernel to the state the blocks before it leave, as the
session's chain (`session_chain`) decides: from a snapshot stored with an earlier block, then by
re-running silently the blocks after it (cached blocks keep their stored outputs). If the kernel
ran something else, or died, it starts afresh, so a result never depends on what ran earlier in
this process. In Python kernels the state a block leaves is digested (and perhaps snapshotted)
in the same request as the block, by the agent of `kernel_state`.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

from mdrun.document.block_result import BlockResult, error_output, first_error
from mdrun.document.capture_request import CaptureRequest
from mdrun.document.executor import BlockRequest, ChainStep, ExecutorSetup
from mdrun.document.kernel_agents import installer
from mdrun.document.kernel_shutdown import BACKGROUND
from mdrun.document.kernels import KernelChoice
from mdrun.document.outputs import Output
from mdrun.document.record_files import SNAPSHOT_FILE, STATE_FILE
from mdrun.document.session_chain import REPLAY_OVERHEAD_SECONDS, Preparation, SessionChain
from mdrun.document.status import is_accepted
from mdrun.errors import KernelError

if TYPE_CHECKING:
    from mdrun.document.kernel import ExecutionResult, KernelSession


def _state_agent_setup() -> str:
    """Code that installs `kernel_state` in a Python kernel as the module `_mdrun_state`, with
    the modules it uses (`kernel_display`, `kernel_modules`, `kernel_touched`, `kernel_digest`,
    `kernel_snapshot`, `kernel_rollback`, `kernel_reads`, `kernel_other_code`)."""
    from mdrun.document import (
        kernel_digest,
        kernel_display,
        kernel_modules,
        kernel_other_code,
        kernel_reads,
        kernel_rollback,
        kernel_snapshot,
        kernel_state,
        kernel_touched,
    )

    return (
        installer(kernel_display, "_mdrun_display")
        + installer(kernel_modules, "_mdrun_modules")
        + installer(kernel_touched, "_mdrun_touched")
        + installer(kernel_rollback, "_mdrun_rollback")
        + installer(kernel_reads, "_mdrun_reads")
        + installer(kernel_other_code, "_mdrun_other_code")
        + installer(kernel_digest, "_mdrun_digest")
        + installer(kernel_snapshot, "_mdrun_snapshot")
        + installer(kernel_state, "_mdrun_state", "watch_initial_states()")
    )


def start_kernel(
    choice: KernelChoice, cwd: Path, launched: KernelSession | None = None
) -> KernelSession:
    """A fresh kernel, ready to run blocks (a Python one has the state agent); `launched`: its
    process, launched ahead (see `KernelSession.launch`)."""
    from mdrun.document.kernel import KernelSession

    session = launched or KernelSession(choice, cwd)
    session.start()
    if choice.language.lower() == "python":
        error = session.run_hidden(_state_agent_setup())
        if error is not None:
            session.close()
            raise KernelError(f"could not prepare the kernel for state capture: {error}")
    return session


class KernelSource(Protocol):
    """Where an executor gets fresh kernels and gives back those it no longer needs."""

    def fresh(self, choice: KernelChoice, cwd: Path) -> KernelSession:
        """A started kernel, as `start_kernel` makes it."""
        ...

    def retire(self, session: KernelSession) -> None:
        """Shut down a kernel the executor let go of."""
        ...


class StartedWhenAsked:
    """Kernels started in the caller's thread when asked; shut down in the background."""

    def fresh(self, choice: KernelChoice, cwd: Path) -> KernelSession:
        """A kernel started now (see `start_kernel`)."""
        return start_kernel(choice, cwd)

    def retire(self, session: KernelSession) -> None:
        """Off the critical path: see `kernel_shutdown`."""
        BACKGROUND.shut_down(session)


class JupyterExecutor:
    """The kernel of one session and its chain (see `executor.Executor`)."""

    def __init__(self, setup: ExecutorSetup, kernels: KernelSource | None = None) -> None:
        self.setup = setup
        self.kernels: KernelSource = kernels or StartedWhenAsked()
        self.chain = SessionChain(setup.kernel.language.lower() == "python")
        self.state_known = True
        """False once a block was interrupted in the kernel: within a run the session goes on
        in it as always, but it is not kept for another run (see `warm_executors`)."""
        self._session: KernelSession | None = None
        self.deferred: set[str] = set()
        """Variables the last restore left in their snapshot files (see `kernel_snapshot`)."""

    @property
    def kernel(self) -> KernelSession | None:
        """The kernel it holds now, if any."""
        return self._session

    @property
    def snapshots_restored(self) -> int:
        """How many times the session's state was loaded from a snapshot."""
        return self.chain.restored

    def run(self, request: BlockRequest) -> BlockResult:
        """Run a block in the state the blocks before it leave (see `executor.Executor.run`)."""
        try:
            return self._run(request)
        except KernelError as err:
            return BlockResult.kernel_lost(type(err).__name__, err.message)

    def _run(self, request: BlockRequest) -> BlockResult:
        result = self._run_once(request, partial=True)
        if _reached_deferred(result, self.deferred):
            # A block reached a variable the restore left unloaded (by a way the analysis
            # does not see): run it again in a kernel restored with everything.
            if request.folder is not None:
                CaptureRequest(request.folder, False).discard()
            self._restart()
            result = self._run_once(request, partial=False)
        return result

    def _run_once(self, request: BlockRequest, partial: bool) -> BlockResult:
        codes = (request.step.code, *request.later) if partial else None
        failed_replay = self._bring_to_state(request.before, codes)
        if failed_replay is not None:
            return failed_replay
        # The kernel brought to state (never a fresh one here: if it died, executing says so).
        session = self._session
        assert session is not None
        capture = None
        if request.folder is not None and self.chain.inspects_state:
            cost = self.chain.replay_cost(request.before) + REPLAY_OVERHEAD_SECONDS
            previous = self.chain.latest_snapshot(request.before)
            capture = CaptureRequest(
                request.folder, request.snapshot, cost, previous, request.changes
            )
        step = request.step
        result = session.execute(
            step.code,
            block_id=step.block_id,
            timeout=step.timeout,
            after=None if capture is None else capture.expression(in_reply=True),
            max_output=step.max_output,
            on_sent=request.on_sent,
        )
        self._ran(step, result.status)
        outputs = cast(tuple[Output, ...], result.outputs)
        if capture is None:
            return BlockResult.of(result.status, outputs, result.seconds, folder=request.folder)
        if result.status == "error" and session.alive:
            # The state a block that raised leaves is digested too, in a request of its own.
            session.run_hidden(capture.expression(after_error=True))
        record = result.after_value  # the record, when the capture ran in the block's request
        report = capture.report(record)
        undo = report.get("undo") if result.status in ("ok", "error") else None
        if isinstance(undo, list) and all(isinstance(name, str) for name in undo):
            self.chain.undoable(undo)
        # The capture ran in the block's own request unless the block raised.
        seconds = capture.block_seconds(result.seconds, report if result.status == "ok" else {})
        snapshot = self._kept_snapshot(capture, request.snapshot, seconds, report)
        return BlockResult.of(
            result.status,
            outputs,
            seconds,
            state=capture.digest(report) if result.status in ("ok", "error") else None,
            folder=request.folder,
            snapshot=snapshot,
            records=() if record is None else ((STATE_FILE, record.encode("utf-8")),),
            state_record=report if result.status in ("ok", "error") else None,
        )

    def _kept_snapshot(
        self, capture: CaptureRequest, option: bool | None, seconds: float, report: dict[str, Any]
    ) -> Path | None:
        """The snapshot the capture took, unless the chain's policy drops it."""
        snapshot = capture.folder / SNAPSHOT_FILE
        if not snapshot.exists():
            return None
        size = report.get("size")
        size = size if isinstance(size, int) else 0
        if self.chain.snapshot_worth_keeping(size, option, capture.replay_cost, seconds):
            return snapshot
        capture.discard_snapshot()
        return None

    def _kernel(self) -> KernelSession:
        """The session's kernel, a fresh one if it has none or its kernel died."""
        if self._session is not None and not self._session.alive:
            self._let_go()
        if self._session is None:
            self._session = self.kernels.fresh(self.setup.kernel, self.setup.cwd)
            self.chain.started()  # a fresh kernel: its history is empty
            self.deferred = set()
            self.state_known = True
        return self._session

    def _restart(self) -> KernelSession:
        """Replace the kernel by a fresh one."""
        self._let_go()
        return self._kernel()

    def _ran(self, step: ChainStep, status: str) -> None:
        """Record a block the kernel ran; one interrupted (timeout, runaway output) left a
        state that a fresh run would not reach the same way (see `state_known`)."""
        self.chain.ran(step)
        if status not in ("ok", "error"):
            self.state_known = False

    def _let_go(self) -> None:
        if self._session is not None:
            self.kernels.retire(self._session)
            self._session = None

    def bring_to_state(self, before: tuple[ChainStep, ...]) -> bool:
        """Bring the kernel to the state the `before` steps leave without running a block (a
        warm pool prepares a kernel while the author reads); False if a replay failed. Raises
        KernelError if no kernel could be had or it died. A snapshot is loaded whole: which
        blocks will run next is not known yet."""
        return self._bring_to_state(before, None) is None

    def _bring_to_state(
        self, before: tuple[ChainStep, ...], codes: tuple[str, ...] | None
    ) -> BlockResult | None:
        """Restart, restore and replay as the chain decides; a failed replay is the result.
        A snapshot loads only what `codes` (the block and those after it) and the blocks
        replayed after it can read; all of it when `codes` is None."""
        session = self._kernel()
        preparation = self.chain.prepare(before)
        if preparation.restart or not self._roll_back(session, preparation):
            session = self._restart()
        if preparation.restore is not None:
            if self.chain.history:
                session = self._restart()
            step = before[preparation.restore]
            self.setup.on_replay(f"{step.block_id} (snapshot)")
            replayed = tuple(later.code for later in before[preparation.restore + 1 :])
            wanted = None if codes is None else [*replayed, *codes]
            # Restored just before the block: its capture can start from the loaded state.
            baseline = preparation.restore == len(before) - 1
            if self._restore(session, step, wanted, baseline):
                self.chain.restored_from(before, preparation.restore)
            else:
                session = self._restart()
        return self._replay(session, self.chain.to_replay(before))

    def _roll_back(self, session: KernelSession, preparation: Preparation) -> bool:
        """Undo the kernel's last blocks the preparation names by deleting what they added (see
        `kernel_rollback`), unless a snapshot is to be loaded anyway; False if the kernel
        refused (then it must restart)."""
        count = preparation.roll_back
        if not count or preparation.restore is not None:
            return True
        names = self.chain.names_to_roll_back(count)
        code = (
            "__import__('_mdrun_state').roll_back(get_ipython().user_ns, "
            f"get_ipython().user_ns_hidden, {names!r}, {count!r})"
        )
        if session.run_hidden(code) is not None:
            return False
        self.chain.rolled_back_by(count)
        return True

    def _replay(self, session: KernelSession, steps: Sequence[ChainStep]) -> BlockResult | None:
        """Run `steps` again silently, their requests pipelined (see `KernelSession.replay`);
        a failed replay is the result. When the kernel may still run requests sent after the
        failed one, it is let go: its state is no longer one mdrun knows."""
        if not steps:
            return None
        from mdrun.document.kernel import ReplayedBlock

        for step in steps:
            self.setup.on_replay(step.block_id)
        blocks = [
            ReplayedBlock(step.code, step.block_id, step.timeout, step.max_output, step.allow_error)
            for step in steps
        ]
        results, in_flight = session.replay(blocks)
        for step, replay in zip(steps, results, strict=False):
            self._ran(step, replay.status)
        failed, last = steps[len(results) - 1], results[-1]
        if is_accepted(last.status, failed.allow_error):
            return None
        if in_flight:
            self._let_go()
        return _replay_failed(failed, last)

    def _restore(
        self, session: KernelSession, step: ChainStep, codes: list[str] | None, baseline: bool
    ) -> bool:
        """Load a step's snapshot; the kernel checks it against its digest first, and refuses
        (loads nothing) when it does not match. `baseline`: no block is replayed after it, and
        the kernel captures the loaded state as the next block's baseline."""
        assert step.snapshot is not None and step.snapshot_sha256 is not None
        if not self.setup.prepare_snapshot(step.snapshot):
            self.chain.refuse(step.snapshot)
            return False
        with tempfile.TemporaryDirectory(prefix="mdrun-restore-") as folder:
            report = Path(folder) / "restore.json"
            code = (
                "__import__('_mdrun_snapshot').restore("
                f"get_ipython().user_ns, {str(step.snapshot)!r}, {str(report)!r}, "
                f"{step.snapshot_sha256!r}, {codes!r}"
                + (", hidden=get_ipython().user_ns_hidden)" if baseline else ")")
            )
            if session.run_hidden(code) is not None or not report.exists():
                return False
            try:
                answer = json.loads(report.read_text(encoding="utf-8"))
            except ValueError:
                return False
            if not isinstance(answer, dict):
                return False
            if "refused" in answer:
                self.chain.refuse(step.snapshot)
                self.setup.on_refused(step.snapshot)
                return False
            deferred = answer.get("deferred")
            self.deferred = (
                {str(name) for name in deferred} if isinstance(deferred, list) else set()
            )
            return True

    def close(self) -> None:
        """Let the kernel go (idempotent): its source shuts it down."""
        self._let_go()


def _reached_deferred(result: BlockResult, deferred: set[str]) -> bool:
    """Whether a block (or a block replayed before it) failed on a name the restore left
    unloaded: `NameError: name 'x' is not defined`."""
    error = result.error
    if error is None or not deferred or error.ename not in ("NameError", "UnboundLocalError"):
        return False
    return any(f"'{name}'" in error.evalue for name in deferred)


def _replay_failed(step: ChainStep, replay: ExecutionResult) -> BlockResult:
    """The result of a block whose session state could not be restored: a block before it
    raised when it was run again (it is not deterministic, or depends on something outside)."""
    outputs = cast(tuple[Output, ...], replay.outputs)
    error = first_error(outputs)
    raised = replay.status if error is None else error["ename"]
    note = (
        f"restoring the session's state failed: block {step.block_id} raised "
        f"{raised} when it was run again"
    )
    return BlockResult.of(
        "error", (*outputs, error_output("StateRestoreError", note)), replay.seconds
    )
