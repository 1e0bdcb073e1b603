"""`mdrun export`: bring a document up to date, then write it as HTML, docx, a notebook or Markdown.

The source document is never modified: blocks run through the store and the export is rendered
from that evaluation, or (`--no-exec`) from what the store holds, running nothing. Either way it
shows what `mdrun run` would write, failures included. Converting is `export_pandoc`'s and
`export_notebook`'s job.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal, get_args

from mdrun.core.store import Store
from mdrun.document.evaluate import BlockOutcome, Evaluation, Reporter
from mdrun.document.files import write_atomically
from mdrun.document.pipeline import (
    STDIO,
    BlockStatusLine,
    ImageFiles,
    RunResult,
    make_plan,
    render,
    run,
    status,
    write_if_changed,
)
from mdrun.document.plan import Plan, SessionKey
from mdrun.document.results import cached_results, failure_note
from mdrun.errors import UsageError

ExportFormat = Literal["html", "docx", "ipynb", "md"]
FORMATS: tuple[ExportFormat, ...] = get_args(ExportFormat)
"""What `--to` accepts."""

BINARY_FORMATS: frozenset[ExportFormat] = frozenset({"docx"})
"""Formats that are not text: never written to a terminal."""


def default_output(source: str, to: ExportFormat) -> str:
    """The document's path with the format's extension; `name.rendered.md` for Markdown, so
    that exporting never overwrites the document itself."""
    path = Path(source)
    target = path.with_suffix(f".{to}")
    if target.name == path.name:
        target = path.with_name(f"{path.stem}.rendered.md")
    return str(target)


def stored_evaluation(plan: Plan, store: Store) -> tuple[Evaluation, set[int]]:
    """The evaluation the store holds for a plan, running nothing, and the indexes of the blocks
    that would have to run for it to be complete.

    A block whose last run failed shows that failure; the blocks after it in its session show
    their stored results (kept by an identical failure) or, if there are none, that they did not
    run, as `mdrun run` without `--keep-going` writes them.
    """
    found = cached_results(plan, store)
    evaluation = Evaluation(plan)
    missing: set[int] = set()
    broken: dict[SessionKey, str] = {}
    for index, planned in enumerate(plan.blocks):
        result = found.get(index)
        session = planned.session
        if not planned.executable or session is None:
            outcome = BlockOutcome(planned, "skipped")
        elif result is not None and result.failed:
            broken.setdefault(
                session,
                f"block {planned.block_id} (line {planned.line}) of session `{session}` failed",
            )
            note = failure_note("error", result.outputs)
            outcome = BlockOutcome(planned, "failed", result.outputs, 0.0, result.rref, note)
        elif result is not None and planned.options.cache:
            outcome = BlockOutcome(planned, "cached", result.outputs, 0.0, result.rref)
        elif session in broken:
            outcome = BlockOutcome(planned, "not-run", note=broken[session])
        else:
            missing.add(index)
            outcome = BlockOutcome(planned, "not-run", note="not in the store")
        evaluation.outcomes.append(outcome)
    return evaluation, missing


def stale_blocks(source: str, store: Store) -> list[BlockStatusLine]:
    """The blocks an export would have to run (what `--no-exec` refuses), looked up only.

    A block that failed, and the blocks after it that did not run, are not among them: the
    store holds what the last run showed for them."""
    _, missing = stored_evaluation(make_plan(source), store)
    lines = status(source, store)
    return [line for index, line in enumerate(lines) if index in missing]


def export_document(
    source: str,
    store: Store,
    to: ExportFormat,
    output: str,
    *,
    reporter: Reporter | None = None,
    keep_going: bool = False,
    no_exec: bool = False,
) -> RunResult:
    """Run what is stale (or, with `no_exec`, nothing), then write the export to `output`
    (`-` for standard output).

    Markdown is exactly `mdrun run -o output` (images beside the output); the other formats
    are converted from the evaluation and written in one rename.
    """
    if output != STDIO and Path(output).resolve() == Path(source).resolve():
        raise UsageError(
            f"{output}: the export would overwrite the document (`mdrun run` updates it in place)"
        )
    if output != STDIO and not Path(output).absolute().parent.is_dir():
        raise UsageError(f"{output}: its folder does not exist")
    if output == STDIO and to in BINARY_FORMATS and sys.stdout.isatty():
        raise UsageError(f"{to} is a binary format: name a file with -o, or redirect stdout")
    if no_exec:
        result = _stored_result(source, store, output if to == "md" else None)
    elif to == "md":
        return run(source, store, output=output, keep_going=keep_going, reporter=reporter)
    else:
        result = run(source, store, write=False, keep_going=keep_going, reporter=reporter)
    if to == "md":
        return result
    if to == "ipynb":
        from mdrun.document.export_notebook import notebook_text

        data = notebook_text(result.evaluation).encode("utf-8")
    else:
        from mdrun.document.export_pandoc import convert_with_pandoc

        data = convert_with_pandoc(result.evaluation, to)
    if output == STDIO:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        write_atomically(Path(output), data)
    return result


def _stored_result(source: str, store: Store, markdown_output: str | None) -> RunResult:
    """The document as the store holds it; written to `markdown_output` when given."""
    plan = make_plan(source)
    evaluation, _ = stored_evaluation(plan, store)
    images = ImageFiles(markdown_output or source)
    text = render(evaluation, images)
    result = RunResult(evaluation, text, text != plan.document.source, images)
    if markdown_output is not None:
        images.save()
        if markdown_output == STDIO:
            sys.stdout.write(text)
            sys.stdout.flush()
        else:
            write_if_changed(Path(markdown_output), text)
        result.written = True
    return result
