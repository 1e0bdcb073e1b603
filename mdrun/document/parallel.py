"""Many documents' sessions at once: a session of a document is the unit of parallel work.

Planning needs no kernel, so the parent plans every document and looks each session up in the
store; a session whose every block is there is read in the parent (no kernel starts), the others
are sent, one `Unit` each, to a `concurrent.futures.Executor`: a process pool on this machine or
a Dask cluster (`distributed.Client.get_executor()`), through the same code. A worker evaluates
its session against the shared store (per-derivation locks and atomic publication make that
safe across processes and machines) and returns what each block did, as plain values; the
parent puts a document's sessions back together, in document order, once all of them are done,
and hands the evaluation on (to render and write it: `pipeline`'s job).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Executor, Future, as_completed
from dataclasses import dataclass, field, replace
from pathlib import Path

from mdrun.core.refs import RRef
from mdrun.core.store import Store
from mdrun.document.evaluate import BlockOutcome, BlockStatus, Evaluation, Evaluator
from mdrun.document.formats.settings import Settings
from mdrun.document.outputs import Output
from mdrun.document.pipeline import ImageFiles, RunResult, render, write_result
from mdrun.document.plan import Plan, PlannedBlock, SessionKey, plan_document
from mdrun.document.results import cached_results
from mdrun.errors import MdrunError

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
"""Thread counts of the numeric libraries a kernel may load: N kernels at once share the cores."""


@dataclass(frozen=True, slots=True)
class Forcing:
    """Which blocks run even if the store holds them (`--force`), as plain, picklable values."""

    every_block: bool = False
    """`--force` without an id."""
    block_ids: frozenset[str] = frozenset()
    """`--force ID`."""

    def __call__(self, planned: PlannedBlock) -> bool:
        return self.every_block or planned.block_id in self.block_ids


@dataclass(frozen=True, slots=True)
class Unit:
    """One session of one document: everything a worker needs, picklable."""

    source: str
    """The document's path as the user named it (messages name it so)."""
    text: str
    """The document's text as the parent read and planned it."""
    path: str
    """The path its parse recorded (`<stdin>` for standard input): what its messages name."""
    base_dir: str
    """Where its relative inputs are read and its kernels run (a shared file system)."""
    settings: Settings
    """`--languages` and `--doctest`."""
    session: SessionKey
    """The session to evaluate."""
    store_root: str
    """The store (a shared file system for a cluster)."""
    forcing: Forcing = Forcing()
    """Blocks to run even if stored."""
    keep_going: bool = False
    """Run the rest of the session after a block fails."""
    threads: tuple[tuple[str, str], ...] | None = None
    """The thread counts the session's kernel gets (`THREAD_VARIABLES`: the parent's own
    values where it has them, else its share of the cores); None: the worker decides, from its
    environment and its share of its machine's cores (a Dask worker)."""


    @property
    def label(self) -> str:
        """`doc.md (main)`: the unit in progress messages."""
        return f"{os.path.basename(self.source)} ({self.session})"


@dataclass(frozen=True, slots=True)
class BlockReport:
    """What one block did in a worker, as plain values."""

    index: int
    """Its index in the plan."""
    status: BlockStatus
    """executed, cached, failed or not-run."""
    outputs: tuple[Output, ...]
    """Its outputs."""
    seconds: float
    """Time spent executing it."""
    rref: RRef | None
    """Its realization, when it has one."""
    note: str
    """Why it failed or did not run."""
    cutoff: bool
    """Kept by early cutoff."""
    key: str | None
    """Its result key."""


@dataclass(frozen=True, slots=True)
class UnitResult:
    """A session's outcome, sent back to the parent."""

    blocks: tuple[BlockReport, ...] = ()
    """One per executable block of the session."""
    snapshots_restored: int = 0
    """How many times the session's state was loaded from a snapshot."""
    damage: tuple[str, ...] = ()
    """Damaged realizations the worker came across (it removed and rebuilt them)."""
    error: str = ""
    """An mdrun error that stopped the session (`path:line: message`), else empty."""
    exit_code: int = 0
    """That error's exit code."""


def only_sessions(plan: Plan, sessions: frozenset[SessionKey]) -> Plan:
    """The plan with every block of other sessions turned to text: an evaluator given it runs,
    and looks up, only these sessions. Indexes (and so upstream links) are unchanged."""
    blocks = tuple(
        planned
        if planned.session in sessions
        else replace(planned, base_config=None, session=None, kernel=None)
        for planned in plan.blocks
    )
    return replace(plan, blocks=blocks)


def stale_sessions(plan: Plan, store: Store, forcing: Forcing) -> frozenset[SessionKey]:
    """The sessions with a block the store cannot give (not there, failed last time,
    `cache=false`, or forced): found by looking up, without a kernel."""
    found = cached_results(plan, store)
    stale: set[SessionKey] = set()
    for index, planned in enumerate(plan.blocks):
        if planned.session is None or not planned.executable:
            continue
        result = found.get(index)
        if result is None or result.failed or not planned.options.cache or forcing(planned):
            stale.add(planned.session)
    return frozenset(stale)


def thread_environment(
    threads: int, base: Mapping[str, str]
) -> tuple[tuple[str, str], ...]:
    """The thread variables a kernel gets: `base`'s value (the user's), else `threads`."""
    return tuple((name, base.get(name, str(threads))) for name in THREAD_VARIABLES)


def _with_thread_limits(plan: Plan, variables: tuple[tuple[str, str], ...]) -> Plan:
    """The plan whose kernels start with these variables (a kernelspec's own `env` wins).
    The kernel's identity in blocks' keys does not include its environment: keys are equal."""
    if not variables:
        return plan
    blocks = tuple(
        planned
        if planned.kernel is None
        else replace(planned, kernel=replace(planned.kernel, env=(*variables, *planned.kernel.env)))
        for planned in plan.blocks
    )
    return replace(plan, blocks=blocks)


def _worker_threads() -> int:
    """Cores per task slot on this machine: in a Dask worker, its cores over its threads."""
    cores = os.cpu_count() or 1
    try:
        from distributed import get_worker

        return max(1, cores // max(1, get_worker().state.nthreads))
    except (ImportError, ValueError):
        return cores


def evaluate_unit(unit: Unit) -> UnitResult:
    """Evaluate one session of one document in this process (a worker's entry point)."""
    from mdrun.document.parse import parse_document
    from mdrun.document.pools import worker_reporter

    damage: list[str] = []
    try:
        store = Store.initialize(Path(unit.store_root))
        store.on_damage = lambda found: damage.append(f"{found}; {found.consequence}")
        plan = plan_document(
            parse_document(unit.text, unit.path), Path(unit.base_dir), unit.settings
        )
        variables = unit.threads
        if variables is None:
            variables = thread_environment(_worker_threads(), os.environ)
        plan = _with_thread_limits(plan, variables)
        evaluation = Evaluator(
            only_sessions(plan, frozenset({unit.session})),
            store,
            force=unit.forcing,
            keep_going=unit.keep_going,
            reporter=worker_reporter(unit.label),
        ).evaluate()
    except MdrunError as err:
        return UnitResult(damage=tuple(damage), error=str(err), exit_code=err.exit_code)
    blocks = tuple(
        BlockReport(
            index,
            outcome.status,
            outcome.outputs,
            outcome.seconds,
            outcome.rref,
            outcome.note,
            outcome.cutoff,
            outcome.key,
        )
        for index, outcome in enumerate(evaluation.outcomes)
        if outcome.status != "skipped"
    )
    return UnitResult(blocks, evaluation.snapshots_restored, tuple(damage))


@dataclass(slots=True)
class PlannedDocument:
    """A document ready to be evaluated by sessions."""

    source: str
    """Its path as the user named it."""
    plan: Plan
    """Its plan (made by the parent)."""


@dataclass(slots=True)
class DocumentDone:
    """A document whose every session is done: its evaluation, or why it has none."""

    document: PlannedDocument
    """The document."""
    evaluation: Evaluation | None
    """Every block's outcome, in document order; None after an error."""
    error: str = ""
    """An error that stopped one of its sessions (`path:line: message`)."""
    exit_code: int = 0
    """That error's exit code."""
    damage: tuple[str, ...] = ()
    """Damaged realizations its workers came across."""


class Progress:
    """Told what the units do; the command line passes one that draws it, the default is quiet."""

    def started(self, documents: int, units: int) -> None:
        """How many documents, and how many sessions will run in workers."""

    def unit_submitted(self, unit: Unit) -> None:
        """A session is sent to a worker."""

    def unit_finished(self, unit: Unit) -> None:
        """A session came back."""

    def document_finished(self, done: DocumentDone) -> None:
        """A document's sessions are all done."""


@dataclass(slots=True)
class _Pending:
    document: PlannedDocument
    waiting: int
    results: list[UnitResult] = field(default_factory=list)
    local: Evaluation | None = None
    started: float = field(default_factory=time.monotonic)


@dataclass(slots=True)
class SessionDispatch:
    """Evaluates many planned documents, their stale sessions on an executor."""

    store: Store
    """The shared store."""
    executor: Executor
    """Where units run."""
    forcing: Forcing = Forcing()
    keep_going: bool = False
    threads: tuple[tuple[str, str], ...] | None = None
    """See `Unit.threads`."""
    progress: Progress = field(default_factory=Progress)
    inline_single: bool = False
    """Evaluate a lone stale session in this process: starting a worker process (and its
    imports) costs more than it can save when there is nothing to run beside it."""

    def evaluate(self, documents: Sequence[PlannedDocument]) -> Iterator[DocumentDone]:
        """Each document once all its sessions are done, in the order they finish."""
        pending: dict[int, _Pending] = {}
        futures: dict[Future[UnitResult], tuple[int, Unit]] = {}
        plans = [(number, document) for number, document in enumerate(documents)]
        units = {number: self._units(document) for number, document in plans}
        self.progress.started(len(documents), sum(len(found) for found in units.values()))
        ready: list[DocumentDone] = []
        lone = self.inline_single and sum(len(found) for found in units.values()) == 1
        for number, document in plans:
            state = _Pending(document, len(units[number]))
            fresh = _executable_sessions(document.plan) - {unit.session for unit in units[number]}
            # Every block of these is stored: read in this process, no kernel starts.
            state.local = Evaluator(only_sessions(document.plan, frozenset(fresh)),
                                    self.store).evaluate()  # fmt: skip
            pending[number] = state
            if not units[number]:
                ready.append(_assemble(state))
            for unit in units[number]:
                futures[self._submit(unit, lone)] = (number, unit)
                self.progress.unit_submitted(unit)
        for done in ready:
            self.progress.document_finished(done)
            yield done
        for future in as_completed(futures):
            number, unit = futures[future]
            self.progress.unit_finished(unit)
            state = pending[number]
            state.results.append(_result_of(future, unit))
            state.waiting -= 1
            if state.waiting == 0:
                done = _assemble(state)
                self.progress.document_finished(done)
                yield done

    def _submit(self, unit: Unit, inline: bool) -> Future[UnitResult]:
        if not inline:
            return self.executor.submit(evaluate_unit, unit)
        future: Future[UnitResult] = Future()
        try:
            future.set_result(evaluate_unit(unit))
        except Exception as err:  # as a worker's would be: that document's error
            future.set_exception(err)
        return future

    def _units(self, document: PlannedDocument) -> list[Unit]:
        plan = document.plan
        return [
            Unit(
                source=document.source,
                text=plan.document.source,
                path=plan.document.path,
                base_dir=str(plan.base_dir),
                settings=plan.settings,
                session=session,
                store_root=str(self.store.root),
                forcing=self.forcing,
                keep_going=self.keep_going,
                threads=self.threads,
            )
            for session in sorted(
                stale_sessions(plan, self.store, self.forcing), key=lambda key: key.name
            )
        ]


def _executable_sessions(plan: Plan) -> set[SessionKey]:
    return {planned.session for planned in plan.blocks if planned.session is not None}


def _result_of(future: Future[UnitResult], unit: Unit) -> UnitResult:
    """A unit's result; a worker lost for good (a Dask `KilledWorker` after its retries) or a
    bug in one becomes that document's error, and the other documents go on."""
    try:
        return future.result()
    except Exception as err:  # from another process: any type, pickled
        name = type(err).__name__
        return UnitResult(
            error=f"{unit.source}: session `{unit.session}` could not be evaluated: "
            f"{name}: {err}",
            exit_code=3,
        )


def _assemble(state: _Pending) -> DocumentDone:
    """A document's evaluation from its local one and its units' results, in document order."""
    plan = state.document.plan
    local = state.local
    assert local is not None
    outcomes: list[BlockOutcome] = list(local.outcomes)
    damage: list[str] = []
    restored = local.snapshots_restored
    for result in state.results:
        damage.extend(result.damage)
        if result.error:
            return DocumentDone(state.document, None, result.error, result.exit_code,
                                tuple(damage))  # fmt: skip
        restored += result.snapshots_restored
        for block in result.blocks:
            outcomes[block.index] = BlockOutcome(
                plan.blocks[block.index], block.status, block.outputs, block.seconds,
                block.rref, block.note, block.cutoff, block.key,
            )  # fmt: skip
    evaluation = Evaluation(plan, outcomes, time.monotonic() - state.started, restored)
    return DocumentDone(state.document, evaluation, damage=tuple(damage))


def finish_document(
    evaluation: Evaluation,
    store: Store,
    source: str,
    *,
    output: str | None = None,
    write: bool = True,
) -> RunResult:
    """Render a document from its evaluation and (with `write`) write it, as `pipeline.run`
    does once its evaluator is done."""
    images = ImageFiles(output or source)
    text = render(evaluation, images)
    result = RunResult(evaluation, text, text != evaluation.plan.document.source, images)
    if write:
        result.written = write_result(result, store, source, output)
    return result
