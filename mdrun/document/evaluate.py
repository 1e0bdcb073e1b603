"""Evaluate a planned document: each executable block is looked up in the store, else run.

Blocks are taken in document order. A block's config is complete once the *result key* of the
block upstream of it in its session is known: `plan.block_config` puts that key (a digest of
what the upstream block produced and the state it left), not the upstream block's derivation,
into the config, so a block that re-runs and produces the same keeps the blocks after it cached
(early cutoff). A pure block (plain computations on plain data, see `pure_blocks`) is keyed
instead by the digests of the names it mentions (`block_keys`, `session_state`), so an edit keeps
every later block cached that reads nothing it changed. If the store holds a realization of the
config, it is read; else the block's
session executor runs it (see `executor`) and returns a `BlockResult`; when `is_accepted`, the
result is stored (`results.store_result`). A failure is shown in the block's region and is not
stored as the block's result: the block runs again next time. What it produced is recorded apart
(`results.record_failure`) with the key of the state it left, so the blocks after it are looked
up like any others: an identical failure keeps them cached. They run only with `keep_going`;
without it, those not in the store are not run. Other sessions go on.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mdrun.core.refs import RRef
from mdrun.core.store import Store
from mdrun.document.background_publication import BackgroundPublisher
from mdrun.document.block_keys import (
    KeyedConfig,
    Upstream,
    followed,
    keyed_config,
    stored_pure_key,
)
from mdrun.document.block_result import BlockResult
from mdrun.document.chain_steps import KnownBlock, chain_step
from mdrun.document.executor import (
    BlockRequest,
    ChainStep,
    Executor,
    ExecutorFactory,
    ExecutorSetup,
)
from mdrun.document.outcome import BlockOutcome, Evaluation, Reporter
from mdrun.document.plan import Plan, PlannedBlock, SessionKey, derivation_ref
from mdrun.document.pure_blocks import PureBlock
from mdrun.document.remote_cache import fetch_snapshot
from mdrun.document.results import (
    StoredResult,
    build_block,
    failure_config,
    lookup,
    record_failure,
    result_key,
)
from mdrun.document.session_state import SessionState
from mdrun.document.status import BlockStatus
from mdrun.errors import BuildError, DamagedRealization, NoSpaceError

__all__ = ["BlockOutcome", "BlockStatus", "Evaluation", "Evaluator", "Reporter"]


def _default_executor(setup: ExecutorSetup) -> Executor:
    """A Jupyter kernel per session (imported only when a block has to run)."""
    from mdrun.document.jupyter_executor import JupyterExecutor

    return JupyterExecutor(setup)


@dataclass(slots=True)
class SessionProgress:
    """What this evaluation knows of one session."""

    executor: Executor | None = None
    """Its executor, made when a block of it first has to run."""
    broken: str | None = None
    """Why its later blocks do not run (a block failed); None while none has."""
    ran: bool = False
    """A block of it executed: a later block found in the store is kept by early cutoff."""
    chain: list[int] = field(default_factory=list)
    """The indexes of its blocks evaluated so far, first first (the chain of the next one)."""
    steps: list[ChainStep] = field(default_factory=list)
    """The first blocks of `chain` as its executor replays them (made once each, when a block
    after them first runs), so that a long session costs linear time, not quadratic."""
    state: SessionState | None = field(default_factory=SessionState)
    """What the blocks evaluated so far leave (see `session_state`); None once not known."""
    failed_before: bool = False
    """The block that broke the session failed as the store recorded it failing before."""


class Evaluator:
    """Evaluates one plan against one store; owns the sessions' executors while it runs."""

    def __init__(
        self,
        plan: Plan,
        store: Store,
        *,
        force: Callable[[PlannedBlock], bool] = lambda _planned: False,
        keep_going: bool = False,
        reporter: Reporter | None = None,
        executor_factory: ExecutorFactory = _default_executor,
    ) -> None:
        self.plan = plan
        self.store = store
        self.force = force
        self.keep_going = keep_going
        self.reporter = reporter or Reporter()
        self.executor_factory = executor_factory
        self.sessions: dict[SessionKey, SessionProgress] = {}
        """Each session's executor and progress."""
        self.known: dict[int, KnownBlock] = {}
        """What is known of each block evaluated so far (its identity, result key, result)."""
        self.session_blocks: dict[SessionKey, list[int]] = {}
        """The positions of each session's executable blocks, in order (listed when needed)."""
        self.session_codes: dict[SessionKey, tuple[str, ...]] = {}
        """The code of each session's executable blocks, in order (a slice of it is what a
        block's request carries: copying the codes one by one cost quadratic time)."""
        self.snapshot_rrefs: dict[Path, RRef] = {}
        """The realization of each snapshot a step may load (to fetch it from its cache)."""
        self.publisher = BackgroundPublisher()
        """Publishes executed blocks' results while the kernel runs the next block."""
        self.evaluation = Evaluation(plan)
        """The evaluation under way (its outcomes are settled as publications end)."""
        self.cleaned = False
        """Whether the store's leftovers (the build folders of killed runs) were cleaned: once,
        before this evaluation's first build, not before every block's."""

    def evaluate(self) -> Evaluation:
        """Evaluate every block; executors (kernels) are closed whatever happens."""
        started = time.monotonic()
        evaluation = Evaluation(self.plan)
        self.reporter.planned(sum(1 for planned in self.plan.blocks if planned.executable))
        self.evaluation = evaluation
        try:
            for index, planned in enumerate(self.plan.blocks):
                outcome = self._evaluate_block(index, planned)
                evaluation.outcomes.append(outcome)
                if planned.executable and planned.session is not None:
                    self.sessions[planned.session].chain.append(index)
                if self.publisher.pending not in (None, index):
                    self._settle_publication(after=index)
                reported = planned.executable and planned.session is not None
                if reported and self.publisher.pending != index:
                    self.reporter.block_finished(evaluation.outcomes[index])
            self._settle_publication()
        finally:
            self.publisher.close()
            self.store.discard_spare_build_folders()
            for progress in self.sessions.values():
                if progress.executor is not None:
                    evaluation.snapshots_restored += progress.executor.snapshots_restored
                    progress.executor.close()
        evaluation.seconds = time.monotonic() - started
        return evaluation

    def _evaluate_block(self, index: int, planned: PlannedBlock) -> BlockOutcome:
        if not planned.executable or planned.session is None:
            return BlockOutcome(planned, "skipped")
        progress = self.sessions.setdefault(planned.session, SessionProgress())
        stopped = progress.broken is not None and not self.keep_going
        # Once stopped, a block shows only what the store holds from a run that failed the
        # same way: a pure block's key does not name the failure, so it is keyed by the chain
        # unless the failure is one the store recorded before (a fresh run shows it not run).
        state = None if stopped and not progress.failed_before else progress.state
        keyed = keyed_config(planned, state, self._upstream(planned))
        if keyed is None:
            progress.state = None
            if stopped:
                return BlockOutcome(planned, "not-run", note=progress.broken or "")
            return self._run_unstored(index, planned, progress)
        if stopped:
            # Nothing more runs in this session; what the store holds for it is still shown.
            cached = lookup(self.store, keyed.config) if planned.options.cache else None
            if cached is None or self.force(planned):
                progress.state = None
                return BlockOutcome(planned, "not-run", note=progress.broken or "")
            return self._cached(index, planned, keyed, cached, cutoff=True)
        # cache=false: never reuse a stored result, always run the block again.
        forced = self.force(planned) or not planned.options.cache
        cached = None if forced else lookup(self.store, keyed.config)
        if cached is not None:
            return self._cached(index, planned, keyed, cached, cutoff=progress.ran)
        return self._build(index, planned, keyed, forced, progress)

    def _upstream(self, planned: PlannedBlock) -> Upstream | None:
        """What is known of the block before `planned` in its session (None: nothing)."""
        known = None if planned.upstream is None else self.known.get(planned.upstream)
        if known is None:
            return None
        stored = known.stored
        if stored is None:  # a failure (its key is this run's) or a block run unstored
            return Upstream(known.identity, known.key, False)
        return Upstream(known.identity, known.key, known.pure, stored.status, stored.outputs)

    def _cached(
        self,
        index: int,
        planned: PlannedBlock,
        keyed: KeyedConfig,
        stored: StoredResult,
        *,
        cutoff: bool,
    ) -> BlockOutcome:
        """A block found in the store (`cutoff`: although a block before it ran). A pure
        block's result may come from a run whose other variables differed: its result key
        and snapshot are used only as far as they hold this run's state."""
        assert planned.session is not None
        progress = self.sessions[planned.session]
        # Its state record is read only while the session's state is followed.
        record = None if progress.state is None else stored.state()
        state = followed(progress.state, record, keyed.pure)
        progress.state = state
        pure = keyed.pure is not None
        usable = not pure or stored.snapshot_sha256 is None
        if not usable and state is not None and record is not None:
            usable = record.get("digest") == state.state_digest()
        dref = derivation_ref(keyed.config)
        self.known[index] = KnownBlock(
            dref,
            (
                stored_pure_key(dref, planned, self._upstream(planned), stored.key)
                if pure
                else stored.key
            ),
            stored,
            pure=pure,
            snapshot_usable=usable,
        )
        return BlockOutcome(
            planned, "cached", stored.outputs, 0.0, stored.rref, cutoff=cutoff, key=stored.key
        )

    def _build(
        self,
        index: int,
        planned: PlannedBlock,
        keyed: KeyedConfig,
        forced: bool,
        progress: SessionProgress,
    ) -> BlockOutcome:
        """Run a block and store its result (see `results.build_block`)."""
        config = keyed.config
        dref = derivation_ref(config)
        if not self.cleaned:
            self.store.clean_leftovers()
            self.cleaned = True

        def run(folder: Path) -> BlockResult:
            result = self._execute(index, dref, folder, keyed.pure)
            # The block before was published while this one ran: if that failed, this one's
            # config names a result the store does not hold.
            if self._settle_publication() == planned.session:
                raise _UpstreamUnpublished(result)
            return result

        def publish_later(job: Callable[[], None]) -> None:
            self.publisher.submit(index, job)

        allow_error = planned.options.allow_error
        try:
            build = build_block(
                self.store,
                config,
                run,
                allow_error=allow_error,
                force=forced,
                publish_later=publish_later,
            )
        except _UpstreamUnpublished as lost:
            return self._after_unpublished(index, planned, lost.result, progress)
        except (BuildError, NoSpaceError) as failure:
            self.known[index] = KnownBlock(dref, failed=True)
            progress.broken = progress.broken or _broken(planned)
            progress.state = None
            return BlockOutcome(planned, "failed", (), 0.0, None, failure.message)
        stored, result = build.stored, build.result
        if result is None and stored is not None:  # another process stored it meanwhile
            return self._cached(index, planned, keyed, stored, cutoff=progress.ran)
        assert result is not None
        if stored is None:
            return self._failed(index, planned, keyed, result, progress)
        progress.ran = True
        progress.state = followed(progress.state, result.state_record, None)
        if keyed.pure is None:
            self.known[index] = KnownBlock(dref, stored.key, stored)
        else:
            key = stored_pure_key(dref, planned, self._upstream(planned), stored.key)
            self.known[index] = KnownBlock(dref, key, stored, pure=True)
        return BlockOutcome(
            planned, "executed", stored.outputs, result.seconds, stored.rref, key=stored.key
        )

    def _settle_publication(self, after: int | None = None) -> SessionKey | None:
        """Wait for the result being published (see `background_publication`) and say its
        block is done; if publishing failed, the block failed (as when it is published at once)
        and so does its session: that session, else None. `after`: the block evaluated since,
        which then did not run (a block after a failed one does not show the store's result)."""
        settled = self.publisher.settle()
        if settled is None:
            return None
        index, error = settled
        outcomes = self.evaluation.outcomes
        if error is None:
            self.reporter.block_finished(outcomes[index])
            return None
        if not isinstance(error, BuildError | NoSpaceError):
            raise error
        planned = self.plan.blocks[index]
        assert planned.session is not None
        progress = self.sessions[planned.session]
        self.known[index] = KnownBlock(self.known[index].identity, failed=True)
        progress.broken = progress.broken or _broken(planned)
        progress.state = None
        outcomes[index] = BlockOutcome(planned, "failed", (), 0.0, None, error.message)
        self.reporter.block_finished(outcomes[index])
        if after is not None and self.plan.blocks[after].session == planned.session:
            self.known[after] = KnownBlock(f"unstored:{after}", failed=True)
            outcomes[after] = BlockOutcome(self.plan.blocks[after], "not-run", note=progress.broken)
        return planned.session

    def _after_unpublished(
        self, index: int, planned: PlannedBlock, result: BlockResult, progress: SessionProgress
    ) -> BlockOutcome:
        """A block that ran while the result of the block before it failed to be published:
        it is not stored; it counts as run without a config (`_run_unstored`) when the session
        goes on after failures, else as not run."""
        progress.state = None
        if not self.keep_going:
            self.known[index] = KnownBlock(f"unstored:{index}", failed=True)
            return BlockOutcome(planned, "not-run", note=progress.broken or "")
        if result.is_accepted(planned.options.allow_error):
            self.known[index] = KnownBlock(f"unstored:{index}")
            return BlockOutcome(planned, "executed", result.outputs, result.seconds)
        self.known[index] = KnownBlock(f"unstored:{index}", failed=True)
        return BlockOutcome(planned, "failed", result.outputs, result.seconds, None, result.note)

    def _failed(
        self,
        index: int,
        planned: PlannedBlock,
        keyed: KeyedConfig,
        result: BlockResult,
        progress: SessionProgress,
    ) -> BlockOutcome:
        """A block that failed: its failure is recorded with the key of the state it left,
        when that is known (a block that raised leaves a state that is digested like any other;
        a timeout interrupts at any point, a dead kernel leaves none)."""
        config = keyed.config
        key = result_key(result, config) if result.status == "error" else None
        if key is not None:
            before = lookup(self.store, failure_config(config))
            if progress.broken is None:
                progress.failed_before = before is not None and before.key == key
            record_failure(self.store, config, result, key)
            progress.ran = True
        record = None if key is None else result.state_record
        progress.state = followed(progress.state, record, None)
        pure = keyed.pure is not None
        self.known[index] = KnownBlock(derivation_ref(config), key, failed=True, pure=pure)
        progress.broken = progress.broken or _broken(planned)
        return BlockOutcome(
            planned, "failed", result.outputs, result.seconds, None, result.note, key=key
        )

    def _run_unstored(
        self, index: int, planned: PlannedBlock, progress: SessionProgress
    ) -> BlockOutcome:
        """Run a block whose upstream has no result (after a failure, with keep_going)."""
        identity = f"unstored:{index}"
        progress.state = None
        result = self._execute(index, identity, None)
        if result.is_accepted(planned.options.allow_error):
            self.known[index] = KnownBlock(identity)
            return BlockOutcome(planned, "executed", result.outputs, result.seconds)
        self.known[index] = KnownBlock(identity, failed=True)
        progress.broken = progress.broken or _broken(planned)
        return BlockOutcome(planned, "failed", result.outputs, result.seconds, None, result.note)

    def _execute(
        self, index: int, identity: str, folder: Path | None, pure: PureBlock | None = None
    ) -> BlockResult:
        """Run a block through its session's executor, in the state the blocks before leave
        (`pure`: what it names, when it is keyed by what it reads)."""
        planned = self.plan.blocks[index]
        self.reporter.block_started(planned)
        step = chain_step(planned, KnownBlock(identity))
        request = BlockRequest(
            step,
            self._before(planned),
            folder,
            planned.options.snapshot,
            self._later(index),
            on_sent=self.publisher.start,  # the block before is published while this one runs
            changes=None if pure is None else pure.names,
        )
        return self._executor(planned).run(request)

    def _later(self, index: int) -> tuple[str, ...]:
        """The code of the blocks after `index` in its session (what a restore must be able to
        feed); the session's blocks are listed once, so a long session costs linear time."""
        session = self.plan.blocks[index].session
        if not self.session_blocks:
            for position, block in enumerate(self.plan.blocks):
                if block.executable and block.session is not None:
                    self.session_blocks.setdefault(block.session, []).append(position)
            for key, positions in self.session_blocks.items():
                self.session_codes[key] = tuple(self.plan.blocks[at].code for at in positions)
        positions = [] if session is None else self.session_blocks.get(session, [])
        after = bisect.bisect_right(positions, index)
        return () if session is None else self.session_codes.get(session, ())[after:]

    def _before(self, planned: PlannedBlock) -> tuple[ChainStep, ...]:
        """The blocks before `planned` in its session (all evaluated already), as steps; each
        made once, so that replaying a long session does not read every earlier block's
        records again."""
        assert planned.session is not None
        progress = self.sessions[planned.session]
        for index in progress.chain[len(progress.steps) :]:
            known = self.known.get(index, KnownBlock(f"unstored:{index}"))
            step = chain_step(self.plan.blocks[index], known)
            if step.snapshot is not None and known.stored is not None:
                self.snapshot_rrefs[step.snapshot] = known.stored.rref
            progress.steps.append(step)
        return tuple(progress.steps)

    def _executor(self, planned: PlannedBlock) -> Executor:
        assert planned.session is not None and planned.kernel is not None
        progress = self.sessions[planned.session]
        if progress.executor is None:
            setup = ExecutorSetup(
                planned.session,
                planned.kernel,
                self.plan.base_dir,
                on_replay=self.reporter.block_replayed,
                on_refused=self._snapshot_refused,
                prepare_snapshot=self._fetch_snapshot,
            )
            progress.executor = self.executor_factory(setup)
        return progress.executor

    def _fetch_snapshot(self, snapshot: Path) -> bool:
        """Bring in a snapshot left on a remote cache, right before it is loaded (False: it
        cannot be had, the session replays instead)."""
        rref = self.snapshot_rrefs.get(snapshot)
        return rref is None or fetch_snapshot(self.store, rref)

    def _snapshot_refused(self, snapshot: Path) -> None:
        """A snapshot did not match its recorded digest: it was not loaded; say so."""
        self.store.report_damage(
            DamagedRealization(
                str(snapshot),
                "it does not match the digest its realization records",
                consequence="it was not loaded: the blocks before were run again instead",
            )
        )


class _UpstreamUnpublished(Exception):
    """The block before this one in its session failed to be published while it ran."""

    def __init__(self, result: BlockResult) -> None:
        super().__init__("the block before was not published")
        self.result = result


def _broken(planned: PlannedBlock) -> str:
    """Why the blocks after a failed one in its session do not run."""
    return f"block {planned.block_id} (line {planned.line}) of session `{planned.session}` failed"
