"""One page of a documentation site, run through the store: its rendered Markdown and images.

This is what the MkDocs plugin does per page, without MkDocs: the page's text is read, planned
and evaluated as `mdrun run` would (cached blocks cost a lookup, no kernel starts for them),
rendered with the same regions, and each top-level region is wrapped in a
`<div class="mdrun-output">` (Python-Markdown's `md_in_html` reads the Markdown inside) so the
site's stylesheet can set outputs apart from code. Writing anything is the caller's choice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from mdrun.core.store import Store
from mdrun.document.evaluate import BlockOutcome, Evaluation, Evaluator
from mdrun.document.images import ImageFiles
from mdrun.document.kernels import PYTHON_LANGUAGES
from mdrun.document.parse import Block, Document, parse_document
from mdrun.document.pipeline import RunResult, render
from mdrun.document.plan import plan_document
from mdrun.document.run_record import remember_run

OUTPUT_CLASS = "mdrun-output"
"""The class of the div around a block's outputs (styled by `mkdocs.css`)."""

_FENCE_LINE = re.compile(r"(?P<before>[^`~]*?)(?P<fence>`{3,}|~{3,})(?P<info>[^\r\n]*)")
"""An opening fence line: its container prefix, its fence and its info string."""
_OUTPUT_FENCE = re.compile(r"(?P<indent> ?)(?P<ticks>`{3,}) (?P<kind>text|stderr|error)")
"""An output fence as `render` writes it; stderr and errors get a div of their own."""


@dataclass(frozen=True, slots=True)
class PageRun:
    """A page after its blocks went through the store."""

    result: RunResult
    """The evaluation, the rendered page (regions as `mdrun run` writes them) and its images."""
    site_markdown: str
    """The rendered page as the site should read it: regions wrapped in output divs."""

    @property
    def failures(self) -> list[BlockOutcome]:
        """The blocks that failed, in document order."""
        return [o for o in self.result.evaluation.outcomes if o.status == "failed"]

    def images(self) -> dict[str, bytes]:
        """The images the page links, by path relative to the page's folder."""
        folder = self.result.images.folder.name
        return {f"{folder}/{name}": data for name, data in self.result.images.images.items()}


def failure_line(outcome: BlockOutcome, path: str) -> str:
    """`path:line: block ID: what went wrong`, as a build log should name a failed block."""
    planned = outcome.planned
    return f"{path}:{planned.line}: block {planned.block_id}: {outcome.note or 'failed'}"


def run_page(text: str, path: Path, shown: str, store: Store, *, keep_going: bool) -> PageRun:
    """Run a page's blocks through the store (kernels start only for stale blocks).

    `path` is where the page lives (its folder is where blocks run and images are linked from);
    `shown` is how messages name it. Raises ParseError for a page mdrun cannot read.
    """
    plan = plan_document(parse_document(text, shown), path.parent)
    if any(planned.executable for planned in plan.blocks):
        evaluation = Evaluator(plan, store, keep_going=keep_going).evaluate()
        remember_run(store, str(path), evaluation)
    else:
        evaluation = Evaluation(plan)
    images = ImageFiles(str(path))
    rendered = render(evaluation, images) if evaluation.outcomes else text
    result = RunResult(evaluation, rendered, rendered != text, images)
    # An up-to-date page renders to its own text: no need to parse it again.
    document = plan.document if rendered == text else parse_document(rendered, shown)
    return PageRun(result, site_markdown(document, evaluation))


def site_markdown(rendered: Document, evaluation: Evaluation) -> str:
    """The rendered page as a site reads it: each top-level region a `mdrun-output` div, each
    code fence's info string reduced to its language (Python-Markdown reads no `id=...` after
    it), the code of `echo=false` blocks left out.

    Regions inside containers (a list item, a block quote) keep their comment markers: raw HTML
    there is not read as a block, and the outputs still show, without the frame.
    """
    lines = list(rendered.lines)
    newline = rendered.newline
    replaced: dict[int, list[str]] = {}
    for block in rendered.blocks:
        _reduce_fence(lines, block, evaluation, replaced)
        region = block.region
        if region is None or block.prefix:
            continue
        replaced[region.start_line] = [
            newline,
            f'<div class="{OUTPUT_CLASS}" data-mdrun-block="{region.block_id}" markdown="1">',
            newline * 2,
        ]
        replaced[region.end_line - 1] = [newline, "</div>", newline * 2]
        _wrap_streams(lines, range(region.start_line + 1, region.end_line - 1), replaced)
    pieces: list[str] = []
    for number, line in enumerate(lines):
        pieces.extend(replaced.get(number, [line]))
    return "".join(pieces)


def _reduce_fence(
    lines: list[str], block: Block, evaluation: Evaluation, replaced: dict[int, list[str]]
) -> None:
    """Keep only the language in the info string of a block that runs (its cell option lines
    left out too); drop `echo=false` code."""
    if block.index >= len(evaluation.plan.blocks):
        return
    planned = evaluation.plan.blocks[block.index]
    opening = _FENCE_LINE.match(lines[block.start_line])
    if planned.cell is None or opening is None:
        return  # text: left as written
    language = "python" if planned.cell.language in PYTHON_LANGUAGES else planned.cell.language
    marker = opening.group("before").strip(" \t>")  # a list item's marker: keep the line
    if planned.block_id and not planned.options.echo and block.closed and not marker:
        for number in range(block.start_line, block.end_line):
            replaced[number] = []
        return
    line = lines[block.start_line]
    ending = line[len(line.rstrip("\r\n")) :]
    replaced[block.start_line] = [
        f"{opening.group('before')}{opening.group('fence')}{language}{ending}"
    ]
    for index in planned.cell.option_lines:
        replaced[block.start_line + 1 + index] = []  # `#|` lines: options, not code


def _wrap_streams(lines: list[str], span: range, replaced: dict[int, list[str]]) -> None:
    """Give each stderr or error fence of a region a div of its own (`mdrun-stderr`...)."""
    newline = "\r\n" if lines[span.start - 1].endswith("\r\n") else "\n"
    number = span.start
    while number < span.stop:
        opening = _OUTPUT_FENCE.fullmatch(lines[number].rstrip("\r\n"))
        if opening is None:
            number += 1
            continue
        closing = opening.group("indent") + opening.group("ticks")
        end = next(
            (n for n in range(number + 1, span.stop) if lines[n].rstrip("\r\n") == closing), None
        )
        if end is None:
            return
        kind = opening.group("kind")
        if kind != "text":
            replaced[number] = [
                f'{newline}<div class="mdrun-{kind}" markdown="1">{newline * 2}',
                lines[number],
            ]
            replaced[end] = [lines[end], f"{newline}</div>{newline * 2}"]
        number = end + 1
