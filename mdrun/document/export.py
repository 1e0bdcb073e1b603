"""`mdrun export`: bring a document up to date, then write it as HTML, docx, a notebook or Markdown.

The source document is never modified: blocks run through the store and the export is rendered
from that evaluation, or (`--no-exec`) from what the store holds, running nothing. Either way it
shows what `mdrun run` would write, failures included. Which formats there are is
`export_formats`' to say; converting is `export_pandoc`'s and `export_notebook`'s job.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mdrun.core.files import write_atomically
from mdrun.core.store import Store
from mdrun.document.evaluate import Reporter
from mdrun.document.export_formats import export_format
from mdrun.document.formats.settings import Settings
from mdrun.document.pipeline import STDIO, RunResult, make_plan, run, write_if_changed
from mdrun.document.status_report import BlockStatusLine, status
from mdrun.document.stored import run_from_store, stored_evaluation
from mdrun.errors import UsageError


def default_output(source: str, to: str) -> str:
    """The document's path with the format's extension; `name.rendered.md` for Markdown, so
    that exporting never overwrites the document itself."""
    suffix = export_format(to).suffix
    path = Path(source)
    target = path.with_suffix(suffix)
    if target.name == path.name:
        target = path.with_name(f"{path.stem}.rendered{suffix}")
    return str(target)


def stale_blocks(
    source: str, store: Store, settings: Settings | None = None
) -> list[BlockStatusLine]:
    """The blocks an export would have to run (what `--no-exec` refuses), looked up only.

    A block that failed, and the blocks after it that did not run, are not among them: the
    store holds what the last run showed for them."""
    _, missing = stored_evaluation(make_plan(source, settings), store)
    lines = status(source, store, settings)
    return [lines[index] for index in missing]


def export_document(
    source: str,
    store: Store,
    to: str,
    output: str,
    *,
    reporter: Reporter | None = None,
    settings: Settings | None = None,
    keep_going: bool = False,
    no_exec: bool = False,
) -> RunResult:
    """Run what is stale (or, with `no_exec`, nothing), then write the export to `output`
    (`-` for standard output).

    Markdown is exactly `mdrun run -o output` (images beside the output); the other formats
    are converted from the evaluation and written in one rename.
    """
    chosen = export_format(to)
    if output != STDIO and Path(output).resolve() == Path(source).resolve():
        raise UsageError(
            f"{output}: the export would overwrite the document (`mdrun run` updates it in place)"
        )
    if output != STDIO and not Path(output).absolute().parent.is_dir():
        raise UsageError(f"{output}: its folder does not exist")
    if output == STDIO and chosen.binary and sys.stdout.isatty():
        raise UsageError(f"{to} is a binary format: name a file with -o, or redirect stdout")
    if no_exec:
        markdown_output = output if chosen.convert is None else None
        result = _stored_result(source, store, markdown_output, settings)
    elif chosen.convert is None:
        return run(
            source, store, output=output, keep_going=keep_going, reporter=reporter,
            settings=settings,
        )  # fmt: skip
    else:
        result = run(
            source, store, write=False, keep_going=keep_going, reporter=reporter,
            settings=settings,
        )  # fmt: skip
    if chosen.convert is None:
        return result
    data = chosen.convert(result.evaluation)
    if output == STDIO:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        write_atomically(Path(output), data)
    return result


def _stored_result(
    source: str, store: Store, markdown_output: str | None, settings: Settings | None
) -> RunResult:
    """The document as the store holds it; written to `markdown_output` when given."""
    result, _ = run_from_store(source, store, settings, markdown_output)
    if markdown_output is not None:
        result.images.save()
        if markdown_output == STDIO:
            sys.stdout.write(result.text)
            sys.stdout.flush()
        else:
            write_if_changed(Path(markdown_output), result.text)
        result.written = True
    return result
