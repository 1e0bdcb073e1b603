"""Export an evaluated document through pandoc (the `pypandoc-binary` wheel): HTML and docx.

This module owns the Markdown that pandoc reads (regions as `mdrun-output` divs, info strings
reduced to the language, `echo=false` code left out) and the call to pandoc. Running the blocks
and writing the result are `export`'s job.
"""

from __future__ import annotations

import html
import os
import re
import tempfile
from importlib import resources
from pathlib import Path
from typing import Literal

from markdown_it import MarkdownIt

from mdrun.document.evaluate import Evaluation
from mdrun.document.images import ImageFiles
from mdrun.document.kernels import PYTHON_LANGUAGES
from mdrun.document.parse import Document, parse_document
from mdrun.document.pipeline import render
from mdrun.errors import ExportError, Location

PandocFormat = Literal["html", "docx"]

READER = "gfm-yaml_metadata_block"
"""GitHub's Markdown, as the document is written for it. Front matter is removed before pandoc
reads the text, so pandoc never parses it as YAML. Not `fenced_divs`: a `:::` line closes such a
div even inside a code block, so an output printing one would turn its next lines into raw HTML."""

OUTPUT_CLASS = "mdrun-output"
"""The class of the div around each block's outputs (styled by `export.css`)."""

OUTPUT_OPEN = f'<div class="{OUTPUT_CLASS}">'
OUTPUT_CLOSE = "</div>"
"""The div around a region, as raw HTML lines of their own: nothing a block prints can close it
(its text is inside a code fence that no line of it can end)."""

_FENCE_LINE_RE = re.compile(r"(?P<before>[^`~]*?)(?P<fence>`{3,}|~{3,})(?P<info>[^\r\n]*)")
_INLINE = MarkdownIt("commonmark")
"""Reads one heading's text (the document's parse leaves inline content unparsed)."""


def convert_with_pandoc(evaluation: Evaluation, to: PandocFormat) -> bytes:
    """The evaluated document as a standalone HTML page or a docx file."""
    document = evaluation.plan.document
    name = Path(document.path).name or "document.md"
    with tempfile.TemporaryDirectory(prefix="mdrun-export-") as folder:
        # Images are written from the evaluation into a private folder, so the export does not
        # depend on an earlier `mdrun run` having left them beside the document.
        images = ImageFiles(str(Path(folder) / name))
        rendered = parse_document(render(evaluation, images, scripts=to == "html"), document.path)
        images.save()
        text = pandoc_markdown(rendered, evaluation)
        search_path = os.pathsep.join([folder, str(evaluation.plan.base_dir)])
        arguments = [f"--resource-path={search_path}"]
        if to == "html":
            return _html(text, arguments, page_title(rendered), Path(folder))
        target = Path(folder) / "export.docx"
        _pandoc(text, "docx", arguments, target, document.path)
        return target.read_bytes()


def _html(text: str, arguments: list[str], title: str, folder: Path) -> bytes:
    """A page that needs nothing else: styles, and images as data URIs, inside it."""
    stylesheet = folder / "export.css"
    stylesheet.write_bytes(resources.files("mdrun.document").joinpath("export.css").read_bytes())
    target = folder / "export.html"
    _pandoc(
        text,
        "html",
        [
            *arguments,
            "--standalone",
            "--embed-resources",
            f"--css={stylesheet}",
            # pandoc writes a variable into the page as it is: escape it (a heading may hold `<`).
            f"--variable=pagetitle:{html.escape(title)}",
            "--syntax-highlighting=default",
        ],
        target,
        title,
    )
    return target.read_bytes()


def _pandoc(text: str, to: str, arguments: list[str], target: Path, name: str) -> None:
    """Run pandoc, turning its failures into an error that names the document."""
    import pypandoc

    try:
        pypandoc.convert_text(
            text, to, format=READER, extra_args=arguments, outputfile=str(target),
            verify_format=False,
        )  # fmt: skip
    except (RuntimeError, OSError) as err:
        raise ExportError(f"pandoc could not convert it to {to}: {err}", Location(name)) from err


def pandoc_markdown(rendered: Document, evaluation: Evaluation) -> str:
    """The rendered document as pandoc should read it.

    Each output region becomes a div of class `mdrun-output`, opened and closed by raw HTML lines
    set apart by blank lines (so its contents are still read as Markdown); each code fence keeps
    only its language, so pandoc highlights it; the code of `echo=false` blocks is left out
    (their outputs stay); front matter is dropped.
    """
    lines = list(rendered.lines)
    newline = rendered.newline
    replaced: dict[int, list[str]] = {
        number: [] for number in range(rendered.front_matter.end_line)
    }
    for block in rendered.blocks:
        planned = evaluation.plan.blocks[block.index]
        opening = _FENCE_LINE_RE.match(lines[block.start_line])
        assert opening is not None, "a fence token starts with its fence"
        if planned.block_id and not planned.options.echo:
            for number in range(block.start_line, block.end_line):
                replaced[number] = []
            if opening.group("before").strip(" \t>"):
                # The fence opened a list item: keep the marker so the outputs stay in the item.
                replaced[block.start_line] = [f"{opening.group('before')}<!-- -->{newline}"]
        else:
            language = block.language if planned.cell is None else planned.cell.language
            language = "python" if language in PYTHON_LANGUAGES else language
            fence = f"{opening.group('before')}{opening.group('fence')}{language}"
            replaced[block.start_line] = [fence + newline]
            for index in planned.cell.option_lines if planned.cell is not None else ():
                replaced[block.start_line + 1 + index] = []  # `#|` lines: options, not code
        if block.region is not None:
            blank = block.prefix.rstrip() + newline
            replaced[block.region.start_line] = [
                blank,
                f"{block.prefix}{OUTPUT_OPEN}{newline}",
                blank,
            ]
            replaced[block.region.end_line - 1] = [
                blank,
                f"{block.prefix}{OUTPUT_CLOSE}{newline}",
                blank,
            ]
    pieces: list[str] = []
    for number, line in enumerate(lines):
        pieces.extend(replaced.get(number, [line]))
    return "".join(pieces)


def front_matter_title(document: Document) -> str:
    """The front matter's `title` as text ("" when it has none, or one that is not text)."""
    title = document.front_matter.data.get("title")
    return str(title).strip() if isinstance(title, str | int | float) else ""


def page_title(document: Document) -> str:
    """The front matter's `title`, else the first heading's text, else the file's name.

    Headings are the document's own: a heading printed in an output region does not count.
    """
    title = front_matter_title(document)
    if title:
        return title
    tokens = document.tokens
    for position, token in enumerate(tokens[:-1]):
        if token.type == "heading_open":
            (inline,) = _INLINE.parseInline(tokens[position + 1].content)
            children = inline.children or []
            heading = "".join(child.content for child in children if child.type != "html_inline")
            if heading.strip():
                return " ".join(heading.split())
    return Path(document.path).stem or "mdrun"
