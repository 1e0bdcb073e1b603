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

import time
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field

from mdrun.core.store import Store
from mdrun.document.evaluate import BlockOutcome, Evaluation, Evaluator
from mdrun.document.pipeline import ImageFiles, RunResult, render, write_result
from mdrun.document.plan import Plan, SessionKey
from mdrun.document.results import cached_results
from mdrun.document.units import Forcing, Unit, UnitResult, evaluate_unit, only_sessions

ATTEMPTS = 3
"""How many times a unit is sent to a local pool whose worker died under it (Dask counts its
own: `distributed.scheduler.allowed-failures`)."""


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
    forcing: Forcing = field(default_factory=Forcing)
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
        for number, unit, result in self._results(futures):
            self.progress.unit_finished(unit)
            state = pending[number]
            state.results.append(result)
            state.waiting -= 1
            if state.waiting == 0:
                done = _assemble(state)
                self.progress.document_finished(done)
                yield done

    def _results(
        self, futures: dict[Future[UnitResult], tuple[int, Unit]]
    ) -> Iterator[tuple[int, Unit, UnitResult]]:
        """Each unit's result as it comes; a unit whose worker process died (a broken pool: a
        worker killed, or out of memory) is sent again, up to `ATTEMPTS` times in all."""
        attempts: dict[int, int] = {}
        waiting = set(futures)
        while waiting:
            finished, waiting = wait(waiting, return_when=FIRST_COMPLETED)
            for future in finished:
                number, unit = futures.pop(future)
                tries = attempts.get(id(unit), 1)
                if isinstance(future.exception(), BrokenProcessPool) and tries < ATTEMPTS:
                    attempts[id(unit)] = tries + 1
                    again = self.executor.submit(evaluate_unit, unit)
                    futures[again] = (number, unit)
                    waiting.add(again)
                    continue
                yield number, unit, _result_of(future, unit)

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
                store_root=str(self.store.root.absolute()),
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
            error=f"{unit.source}: session `{unit.session}` could not be evaluated: {name}: {err}",
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
