"""A unit of parallel work: one session of one document, and what a worker makes of it.

A `Unit` holds plain, picklable values (the document's text, its folder, the store's path, the
session's key), so that a process pool and a Dask cluster can both carry it; `evaluate_unit`
plans the document again where it runs (the kernels are that machine's), evaluates only that
session against the shared store and sends back each block's outcome as plain values.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from mdrun.core.refs import RRef
from mdrun.core.store import Store
from mdrun.document.evaluate import BlockStatus, Evaluator
from mdrun.document.formats.settings import Settings
from mdrun.document.outputs import Output
from mdrun.document.plan import Plan, PlannedBlock, SessionKey, plan_document
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


def thread_environment(threads: int, base: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
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
