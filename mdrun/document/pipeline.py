"""One document's run, step by step: read → plan → evaluate → render → write.

Each command of the CLI is a short composition of these steps: `run` writes, `check` renders
without writing, `export` converts what `render` gives. What a run leaves in the store for the
next command is `run_record`'s; `status` reads it; the images a document links are `images`'.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from mdrun.core.files import write_atomically
from mdrun.core.refs import RRef
from mdrun.core.store import Store
from mdrun.document.evaluate import BlockOutcome, Evaluation, Evaluator, Reporter
from mdrun.document.executor import ExecutorFactory
from mdrun.document.formats.doctest import rewritten_lines
from mdrun.document.formats.settings import Settings
from mdrun.document.images import STDIO, ImageFiles
from mdrun.document.parse import Document, parse_document, read_document
from mdrun.document.plan import Plan, PlannedBlock, plan_document
from mdrun.document.render import RegionBody, render_region, splice
from mdrun.document.results import cached_results
from mdrun.document.run_record import record_run
from mdrun.errors import Location, ParseError

__all__ = [
    "STDIO",
    "ImageFiles",
    "RunResult",
    "base_dir_of",
    "load_document",
    "make_plan",
    "realizations_in_use",
    "region_body",
    "render",
    "run",
    "write_if_changed",
    "write_result",
]


def load_document(source: str) -> Document:
    """Read a document from a path, or standard input for `-`."""
    if source == STDIO:
        data = sys.stdin.buffer.read()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as err:
            line = data[: err.start].count(b"\n") + 1
            raise ParseError("not UTF-8 text", Location("<stdin>", line)) from None
        return parse_document(text, "<stdin>")
    return read_document(Path(source))


def base_dir_of(source: str) -> Path:
    """Where relative inputs are read and kernels run: the document's folder (or cwd)."""
    return Path.cwd() if source == STDIO else Path(source).absolute().parent


def make_plan(source: str, settings: Settings | None = None) -> Plan:
    """Read and plan a document (validates every option; starts nothing)."""
    return plan_document(load_document(source), base_dir_of(source), settings)


def region_body(outcome: BlockOutcome) -> RegionBody | None:
    """What a block's region shows; None for no region."""
    planned = outcome.planned
    if outcome.status == "skipped" or not planned.options.output:
        return None
    if outcome.status == "not-run":
        return RegionBody((), "not-run", f"{outcome.note}; this block did not run")
    outputs = outcome.outputs
    if not planned.options.warning:
        outputs = tuple(
            output
            for output in outputs
            if not (output["output_type"] == "stream" and output["name"] == "stderr")
        )
    if outcome.status == "failed":
        return RegionBody(outputs, "failed", outcome.note)
    if planned.cell is not None and planned.cell.is_doctest:
        return None  # its outputs are written inside the block
    return RegionBody(outputs, outcome.status)


def doctest_rewrites(evaluation: Evaluation) -> dict[int, tuple[int, list[str]]]:
    """The new expected-output lines of the doctest sessions that ran."""
    rewrites: dict[int, tuple[int, list[str]]] = {}
    document = evaluation.plan.document
    for outcome in evaluation.outcomes:
        cell = outcome.planned.cell
        if cell is None or not cell.is_doctest or outcome.status not in ("executed", "cached"):
            continue
        block = outcome.planned.block
        if block.closed and outcome.planned.options.output:
            rewrites.update(rewritten_lines(cell, block, document.newline, outcome.outputs))
    return rewrites


def render(evaluation: Evaluation, images: ImageFiles, *, scripts: bool = False) -> str:
    """The document with every block's region replaced by its current outputs (`scripts`:
    for an HTML page, where outputs that need JavaScript can be shown)."""
    regions: dict[int, list[str] | None] = {}
    for outcome in evaluation.outcomes:
        block = outcome.planned.block
        if not block.closed or outcome.planned.cell is None:
            # A block that is text keeps what follows it, even a region from a run in which
            # it ran (`--languages bash` once, then without): no run throws outputs away.
            continue
        body = region_body(outcome)
        lines = (
            None
            if body is None
            else render_region(outcome.planned.block_id, body, write_image=images, scripts=scripts)
        )
        regions[block.index] = lines or None
    return splice(evaluation.plan.document, regions, doctest_rewrites(evaluation))


@dataclass(slots=True)
class RunResult:
    """A finished run: what happened, and the document it produced."""

    evaluation: Evaluation
    """Every block's outcome."""
    text: str
    """The rendered document."""
    changed: bool
    """Whether the rendered document differs from its source."""
    images: ImageFiles
    """The images the rendered document links, not yet written."""
    written: bool = False
    """Whether the result was written (not when the source was edited during the run)."""


def run(
    source: str,
    store: Store,
    *,
    output: str | None = None,
    write: bool = True,
    force: Callable[[PlannedBlock], bool] = lambda _planned: False,
    keep_going: bool = False,
    reporter: Reporter | None = None,
    settings: Settings | None = None,
    executor_factory: ExecutorFactory | None = None,
    plan: Plan | None = None,
) -> RunResult:
    """Run a document; with `write`, write the result as `write_result` does. The sessions'
    executors come from `executor_factory` (default: a Jupyter kernel each, see `evaluate`).
    `plan`: the document's, when the caller made it already (`make_plan`)."""
    plan = plan or make_plan(source, settings)
    evaluator = Evaluator(plan, store, force=force, keep_going=keep_going, reporter=reporter)
    if executor_factory is not None:
        evaluator.executor_factory = executor_factory
    evaluation = evaluator.evaluate()
    images = ImageFiles(output or source)
    text = render(evaluation, images)
    result = RunResult(evaluation, text, text != plan.document.source, images)
    if write:
        result.written = write_result(result, store, source, output)
    return result


def write_result(result: RunResult, store: Store, source: str, output: str | None = None) -> bool:
    """Write a run's document (atomically, only if its bytes change) and its images.

    In place, only if the file is still what the run read: a save made while blocks ran is
    never overwritten with the outputs of the text before it (returns False then).
    """
    target = output or source
    if target == source and source != STDIO:
        try:
            on_disk = Path(source).read_bytes()
        except FileNotFoundError:
            return False
        if on_disk != result.evaluation.plan.document.source.encode("utf-8"):
            return False
    result.images.save()
    if target == STDIO:
        sys.stdout.write(result.text)
        sys.stdout.flush()
    elif result.changed or output is not None:
        write_if_changed(Path(target), result.text)
    result.images.remove_unlinked()
    record_run(store, source, output, result.evaluation, result.images)
    return True


def write_if_changed(path: Path, text: str) -> None:
    """Write atomically, and only when the bytes differ (keeps mtimes and watchers quiet)."""
    try:
        if path.read_bytes() == text.encode("utf-8"):
            return
    except FileNotFoundError:
        pass
    write_atomically(path, text)


def realizations_in_use(
    sources: Iterable[str], store: Store, settings: Settings | None = None
) -> list[RRef]:
    """The realizations the given documents use now (the roots `gc` keeps)."""
    return [
        result.rref
        for source in sources
        for result in cached_results(make_plan(source, settings), store).values()
    ]
