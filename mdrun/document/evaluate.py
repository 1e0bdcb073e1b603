"""Evaluate a planned document: each executable block is realized through the store.

Blocks are taken in document order. A block's derivation is complete once its upstream block's
result key is known (see `plan`); if the store has a realization of it, it is read, else the
block runs in its session's kernel (after the kernel is brought to the state of the blocks
before it), its state is digested and perhaps snapshotted, and the result is stored. A failure
is reported in the block's region and is not stored as the block's result (unless
`allow_error=true` made it the expected output): the block runs again next time. What it
produced is recorded apart (`results.record_failure`) with the key of the state it left, so the
blocks after it are looked up like any others: an identical failure keeps them cached. They run
only with `keep_going`; without it, those not in the store are not run. Other sessions go on.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, cast

from mdrun.core.build import write_build_metadata
from mdrun.core.config import Config
from mdrun.core.jsonvalue import JSONObject
from mdrun.core.realization import realize_derivation
from mdrun.core.refs import DRef, RRef
from mdrun.core.registry import Derivation
from mdrun.core.store import Context, Store, remove_tree
from mdrun.core.verify import Finding, remove_damaged
from mdrun.document.output_limit import dropped_characters
from mdrun.document.outputs import Output
from mdrun.document.plan import (
    OUTPUTS_FILE,
    Plan,
    PlannedBlock,
    SessionKey,
    block_config,
    derivation_ref,
)
from mdrun.document.results import (
    EXECUTION_FILE,
    SNAPSHOT_FILE,
    BlockFailed,
    StoredResult,
    block_matcher,
    failure_note,
    lookup,
    read_result,
    record_failure,
    result_key,
)
from mdrun.document.sessions import CaptureRequest, SessionRunner, Step
from mdrun.errors import (
    BuildError,
    DamagedRealization,
    KernelError,
    Location,
    NoSpaceError,
    os_error,
)

BlockStatus = Literal["executed", "cached", "failed", "not-run", "skipped"]
"""`skipped`: a block that is never run (no kernel language, `eval=false`)."""

SNAPSHOT_AFTER_SECONDS = 0.25
"""Take a snapshot once replaying the blocks since the last one would cost this much (a
snapshot of a small state costs milliseconds; a large one is dropped when reading it back
would cost more than replaying, see `SNAPSHOT_BYTES_PER_SECOND`)."""
SNAPSHOT_BYTES_PER_SECOND = 200e6
"""A conservative speed for loading a snapshot back."""
SNAPSHOT_MAX_BYTES = 1 << 30
"""Larger snapshots are dropped: reading them back would cost more than it saves."""


@dataclass(slots=True)
class BlockOutcome:
    """What happened to one block in this evaluation."""

    planned: PlannedBlock
    """The block."""
    status: BlockStatus
    """executed, cached, failed, not-run or skipped."""
    outputs: tuple[Output, ...] = ()
    """Its outputs (stored or fresh); empty when it did not run."""
    seconds: float = 0.0
    """Time spent executing it now (0 when cached)."""
    rref: RRef | None = None
    """Its realization, when it has one."""
    note: str = ""
    """Why it failed or did not run."""
    cutoff: bool = False
    """Cached although a block before it in its session ran: kept by early cutoff."""
    key: str | None = None
    """Its result key, when it has a stored result."""

    @property
    def dropped(self) -> int:
        """Characters of output dropped past the block's limit (0: none; see `output_limit`)."""
        return dropped_characters(self.outputs)

    def record(self) -> JSONObject:
        """One line of the `--report` file."""
        return {
            "id": self.planned.block_id,
            "line": self.planned.line,
            "status": self.status,
            "seconds": round(self.seconds, 6),
            "rref": self.rref,
            "cutoff": self.cutoff,
            "note": self.note,
            "truncated": self.dropped > 0,
            "dropped": self.dropped,
        }


class Reporter:
    """Receives progress; the command line passes one that draws it, the default is silent."""

    def planned(self, total_to_check: int) -> None:
        """The number of executable blocks about to be evaluated."""

    def block_started(self, planned: PlannedBlock) -> None:
        """A block starts executing in its kernel."""

    def block_replayed(self, block_id: str) -> None:
        """A cached block is run again silently to restore a session's state."""

    def block_finished(self, outcome: BlockOutcome) -> None:
        """A block is done (executed, cached, failed or not run)."""


@dataclass(slots=True)
class Evaluation:
    """The outcome of every block of a plan."""

    plan: Plan
    """What was evaluated."""
    outcomes: list[BlockOutcome] = field(default_factory=list)
    """One per block, in document order."""
    seconds: float = 0.0
    """Wall-clock time of the whole evaluation."""
    snapshots_restored: int = 0
    """How many times a session's state was loaded from a snapshot."""

    def count(self, status: BlockStatus) -> int:
        """How many blocks ended with this status."""
        return sum(1 for outcome in self.outcomes if outcome.status == status)

    @property
    def failed(self) -> bool:
        """True when a block failed (the exit code is 1)."""
        return self.count("failed") > 0


class Evaluator:
    """Evaluates one plan against one store; owns the session kernels while it runs."""

    def __init__(
        self,
        plan: Plan,
        store: Store,
        *,
        force: Callable[[PlannedBlock], bool] = lambda _planned: False,
        keep_going: bool = False,
        reporter: Reporter | None = None,
    ) -> None:
        self.plan = plan
        self.store = store
        self.force = force
        self.keep_going = keep_going
        self.reporter = reporter or Reporter()
        self.runners: dict[SessionKey, SessionRunner] = {}
        self.results: dict[int, StoredResult] = {}
        self.keys: dict[int, str] = {}
        """The result key of each block evaluated so far (stored results and failures)."""
        self.failures: set[int] = set()
        """Blocks that failed in this evaluation: replaying them to restore a state may raise."""
        self.identities: dict[int, str] = {}
        self.steps: dict[int, Step] = {}
        self.broken: dict[SessionKey, str] = {}
        self.ran: set[SessionKey] = set()
        self.last_seconds = 0.0

    def evaluate(self) -> Evaluation:
        """Evaluate every block; kernels are shut down whatever happens."""
        started = time.monotonic()
        evaluation = Evaluation(self.plan)
        self.reporter.planned(sum(1 for planned in self.plan.blocks if planned.executable))
        try:
            for index, planned in enumerate(self.plan.blocks):
                outcome = self._evaluate_block(index, planned)
                evaluation.outcomes.append(outcome)
                if planned.executable:
                    self.reporter.block_finished(outcome)
        finally:
            for runner in self.runners.values():
                evaluation.snapshots_restored += runner.restored
                runner.close()
        evaluation.seconds = time.monotonic() - started
        return evaluation

    def _evaluate_block(self, index: int, planned: PlannedBlock) -> BlockOutcome:
        if not planned.executable or planned.session is None:
            return BlockOutcome(planned, "skipped")
        session = planned.session
        if planned.upstream is not None and planned.upstream not in self.keys:
            if session in self.broken and not self.keep_going:
                return BlockOutcome(planned, "not-run", note=self.broken[session])
            return self._run_uncached(index, planned)
        upstream_key = None if planned.upstream is None else self.keys[planned.upstream]
        config = block_config(planned, upstream_key)
        if session in self.broken and not self.keep_going:
            # Nothing more runs in this session; what the store holds for it is still shown.
            return self._stored_only(index, planned, config)
        dref = derivation_ref(config)
        self.identities[index] = dref
        derivation = Derivation(dref, config, block_matcher(), self._realizer(index, planned))
        self.store.add_derivation(config)
        self.last_seconds = 0.0
        try:
            # cache=false: never reuse a stored result, always run the block again.
            force = self.force(planned) or not planned.options.cache
            result, built = self._realize(derivation, force)
        except BlockFailed as failure:
            if failure.key is not None:
                record_failure(self.store, config, failure.status, failure.outputs, failure.key)
                self.keys[index] = failure.key
                self.ran.add(session)
            self.failures.add(index)
            outcome = self._failed(planned, failure.outputs, failure.message, self.last_seconds)
            outcome.key = failure.key
            return outcome
        except (BuildError, NoSpaceError) as failure:
            return self._failed(planned, (), failure.message, self.last_seconds)
        self.results[index] = result
        self.keys[index] = result.key
        if built:
            self.ran.add(session)
            outputs = result.outputs
            return BlockOutcome(
                planned, "executed", outputs, self.last_seconds, result.rref, key=result.key
            )
        cutoff = session in self.ran
        return BlockOutcome(
            planned, "cached", result.outputs, 0.0, result.rref, cutoff=cutoff, key=result.key
        )

    def _stored_only(self, index: int, planned: PlannedBlock, config: Config) -> BlockOutcome:
        """A block after a failure, without keep_going: cached if stored, else not run."""
        assert planned.session is not None
        result = lookup(self.store, config) if planned.options.cache else None
        if result is None or self.force(planned):
            return BlockOutcome(planned, "not-run", note=self.broken[planned.session])
        self.identities[index] = derivation_ref(config)
        self.results[index] = result
        self.keys[index] = result.key
        return BlockOutcome(
            planned, "cached", result.outputs, 0.0, result.rref, cutoff=True, key=result.key
        )

    def _realize(self, derivation: Derivation, force: bool) -> tuple[StoredResult, bool]:
        """The block's stored result (built if needed), and whether it was built now.

        A damaged realization is reported, removed and built again: never used."""
        built = False
        for _attempt in range(2):
            rrefs, built_now = realize_derivation(self.store, derivation, {}, force=force)
            built = built or built_now
            try:
                return read_result(self.store, rrefs[0]), built
            except DamagedRealization as damage:
                self.store.report_damage(damage)
                folder = self.store.realization_path(rrefs[0])
                remove_damaged(self.store, [Finding(rrefs[0], folder, ())])
        rrefs, _ = realize_derivation(self.store, derivation, {}, force=True)
        return read_result(self.store, rrefs[0]), True

    def _failed(
        self, planned: PlannedBlock, outputs: tuple[Output, ...], note: str, seconds: float
    ) -> BlockOutcome:
        assert planned.session is not None
        self.broken.setdefault(
            planned.session,
            f"block {planned.block_id} (line {planned.line}) of session "
            f"`{planned.session}` failed",
        )
        return BlockOutcome(planned, "failed", outputs, seconds, None, note)

    def _chain(self, index: int) -> list[int]:
        """The indexes of the blocks before `index` in its session, first first."""
        chain: list[int] = []
        cursor = self.plan.blocks[index].upstream
        while cursor is not None:
            chain.append(cursor)
            cursor = self.plan.blocks[cursor].upstream
        return chain[::-1]

    def _step(self, index: int) -> Step:
        """A block as its session runs it; remembered once the block has its result, so that
        replaying a long session does not read every earlier block's metadata again."""
        known = self.steps.get(index)
        if known is not None:
            return known
        planned = self.plan.blocks[index]
        result = self.results.get(index)
        step = Step(
            identity=self.identities.get(index, f"unstored:{index}"),
            code=planned.code,
            block_id=planned.block_id,
            timeout=planned.options.timeout,
            max_output=planned.options.max_output,
            allow_error=planned.options.allow_error or index in self.failures,
            seconds=0.0 if result is None else result.seconds(),
            snapshot=None if result is None else result.snapshot,
            snapshot_sha256=None if result is None else result.snapshot_sha256,
        )
        if result is not None:
            self.steps[index] = step
        return step

    def _runner(self, planned: PlannedBlock) -> SessionRunner:
        assert planned.session is not None and planned.kernel is not None
        runner = self.runners.get(planned.session)
        if runner is None:
            runner = SessionRunner(planned.kernel, self.plan.base_dir, self._snapshot_refused)
            self.runners[planned.session] = runner
        return runner

    def _snapshot_refused(self, snapshot: Path) -> None:
        """A snapshot did not match its recorded digest: it was not loaded; say so."""
        self.store.report_damage(
            DamagedRealization(
                str(snapshot),
                "it does not match the digest its realization records",
                consequence="it was not loaded: the blocks before were run again instead",
            )
        )
        for index, step in list(self.steps.items()):
            if step.snapshot == snapshot:
                self.steps[index] = replace(step, snapshot=None, snapshot_sha256=None)

    def _execute(
        self, index: int, capture: CaptureRequest | None = None
    ) -> tuple[str, tuple[Output, ...], float]:
        """Run a block in its session's kernel; (status, outputs, seconds)."""
        planned = self.plan.blocks[index]
        self.reporter.block_started(planned)
        runner = self._runner(planned)
        before = [self._step(earlier) for earlier in self._chain(index)]
        try:
            result = runner.run(self._step(index), before, self.reporter.block_replayed, capture)
        except KernelError as err:
            error: Output = cast(
                Output,
                {
                    "output_type": "error",
                    "ename": type(err).__name__,
                    "evalue": err.message,
                    "traceback": [err.message],
                },
            )
            return "died", (error,), 0.0
        self.last_seconds = result.seconds
        return result.status, cast(tuple[Output, ...], result.outputs), result.seconds

    def _replay_cost(self, index: int) -> float:
        """What replaying the blocks before this one (since the last snapshot) would cost."""
        cost = 0.0
        for earlier in reversed(self._chain(index)):
            if earlier not in self.results:
                break
            step = self._step(earlier)
            if step.snapshot is not None:
                break
            cost += step.seconds
        return cost

    def _location(self, planned: PlannedBlock) -> Location:
        return Location(self.plan.document.path, planned.line, planned.block_id)

    def _realizer(self, index: int, planned: PlannedBlock) -> Callable[..., list[Path]]:
        def realizer(
            store: Store, dref: DRef, _context: Context, _arguments: JSONObject
        ) -> list[Path]:
            # The folder exists before the block runs: the kernel writes its state into it.
            folder = store.new_build_folder(dref)
            started = time.time()
            capture = CaptureRequest(
                folder, planned.options.snapshot, self._replay_cost(index), SNAPSHOT_AFTER_SECONDS
            )
            try:  # whatever fails (the block, a full disk), no partial build is left behind
                status, outputs, seconds = self._execute(index, capture)
                accepted = status == "ok" or (status == "error" and planned.options.allow_error)
                if not accepted:
                    raise self._block_failed(
                        planned, status, outputs, capture=capture, store=store, dref=dref
                    )
                self._keep_snapshot_if_worth_it(capture, seconds, planned.options.snapshot)
                digest = capture.report().get("digest")
                state = digest if isinstance(digest, str) else None
                key = result_key(status, outputs, state, _config(store, dref))
                stored = {"status": status, "outputs": list(outputs), "key": key}
                text = json.dumps(stored, ensure_ascii=False, sort_keys=True)
                _write(folder / OUTPUTS_FILE, text)
                _write(folder / EXECUTION_FILE, json.dumps({"seconds": seconds}))
                # Its start orders it among the block's realizations (`block_matcher`).
                try:
                    write_build_metadata(folder, started, time.time())
                except OSError as err:
                    raise os_error(err, folder, "cannot store the block's result") from err
            except BaseException:
                remove_tree(folder)
                raise
            return [folder]

        return realizer

    def _block_failed(
        self,
        planned: PlannedBlock,
        status: str,
        outputs: tuple[Output, ...],
        *,
        capture: CaptureRequest,
        store: Store,
        dref: DRef,
    ) -> BlockFailed:
        """The failure, with the key of what it produced when the state it left is known: a
        block that raised leaves a state that is digested like any other."""
        key = None
        if status == "error":
            digest = capture.report().get("digest")
            state = digest if isinstance(digest, str) else None
            key = result_key(status, outputs, state, _config(store, dref))
        note = failure_note(status, outputs)
        return BlockFailed(note, self._location(planned), outputs, status, key)

    @staticmethod
    def _keep_snapshot_if_worth_it(
        capture: CaptureRequest, seconds: float, snapshot_option: bool | None
    ) -> None:
        """With `snapshot=auto`, drop a snapshot that would cost more to load than to replay."""
        snapshot = capture.folder / SNAPSHOT_FILE
        if snapshot.exists() and snapshot_option is None:
            size = snapshot.stat().st_size
            cost = capture.replay_cost + seconds
            if size > SNAPSHOT_MAX_BYTES or size / SNAPSHOT_BYTES_PER_SECOND > cost:
                snapshot.unlink()

    def _run_uncached(self, index: int, planned: PlannedBlock) -> BlockOutcome:
        """Run a block whose upstream has no result (after a failure, with --keep-going)."""
        status, outputs, seconds = self._execute(index)
        if status == "ok" or (status == "error" and planned.options.allow_error):
            return BlockOutcome(planned, "executed", outputs, seconds, None)
        return self._failed(planned, outputs, failure_note(status, outputs), seconds)


def _config(store: Store, dref: DRef) -> Config:
    return store.config_of(dref)


def _write(path: Path, text: str) -> None:
    """Write a record of a block's build; a full disk is an error that names the file."""
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as err:
        raise os_error(err, path, "cannot store the block's result") from err
