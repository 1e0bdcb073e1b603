"""Which format a document is written in, and each of its fences read by that format's reader.

The format comes from the file's extension (`.qmd`, `.Rmd`) and its front matter (Jupytext's
`format_name: myst`, or any `{code-cell}` fence, makes a MyST notebook); everything else is
Markdown. Doctest sessions are read the same way in every format, when doctest mode is on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from mdrun.document.formats.cell import Cell, OptionPairs
from mdrun.document.formats.doctest import is_doctest_block, read_doctest
from mdrun.document.formats.mapping import map_options
from mdrun.document.formats.markdown import read_markdown
from mdrun.document.formats.metadata import (
    QUARTO_PROJECT_FILE,
    boolean_setting,
    front_matter_data,
    languages_setting,
    mdrun_setting,
    nested,
    project_execute,
    project_file,
)
from mdrun.document.formats.myst import is_code_cell, read_myst
from mdrun.document.formats.quarto import read_quarto
from mdrun.document.formats.settings import Settings
from mdrun.document.parse import Document
from mdrun.errors import KernelNotFound, Location, ParseError

Format = Literal["markdown", "quarto", "rmarkdown", "myst"]
"""The conventions a document is read with."""

PYTHON_KERNEL_NAMES = frozenset({"python3", "python"})
"""Kernel names that mean the Python running mdrun, as Jupyter's own `python3` does."""


@dataclass(frozen=True, slots=True)
class Reading:
    """A document's fences as its format reads them."""

    format: Format
    """Which reader read it."""
    cells: tuple[Cell | None, ...]
    """One per fence of the document, in order: a cell, or None for text."""
    defaults: OptionPairs
    """Options its format sets for every block (Quarto's `execute:`), before `mdrun.` keys."""
    defaults_line: int | None
    """The front matter line those defaults are reported at."""
    notes: tuple[str, ...]
    """Warnings, each `path:line: message` (options accepted but ignored)."""
    sources: tuple[str, ...] = ()
    """Files besides the document that its reading depends on, existing or not (where a
    `_quarto.yml` may be)."""


def document_format(document: Document, data: dict[str, Any]) -> Format:
    """The format, from the extension, then the front matter, then the fences."""
    suffix = Path(document.path).suffix.lower()
    if suffix == ".qmd":
        return "quarto"
    if suffix == ".rmd":
        return "rmarkdown"
    format_name = nested(data, "jupytext", "text_representation", "format_name")
    if format_name == "myst" or data.get("file_format") == "mystnb":
        return "myst"
    if any(is_code_cell(block) for block in document.blocks):
        return "myst"
    return "markdown"


def read_cells(document: Document, base_dir: Path, settings: Settings) -> Reading:
    """Read every fence of `document` by its format's rules (see the module docstring)."""
    data, yaml_warning = front_matter_data(document)
    notes = [yaml_warning] if yaml_warning else []
    top = Location(document.path, 1 if data else None)
    languages = settings.languages | languages_setting(mdrun_setting(data, "languages"), top)
    doctest = settings.doctest or boolean_setting(mdrun_setting(data, "doctest"), "doctest", top)
    format_ = document_format(document, data)
    kernels: dict[str, str] = {}
    sources: list[str] = []
    defaults: OptionPairs = ()
    notebook_language = "python"
    if format_ in ("quarto", "rmarkdown"):
        name, language = _quarto_kernel(data.get("jupyter"))
        notebook_language = _choose_kernel(name, language, kernels, top)
        project = project_file(base_dir)
        # Where a project file is or could appear: creating one changes the document too.
        sources.extend(
            str(folder / QUARTO_PROJECT_FILE) for folder in (base_dir, *base_dir.parents)
        )
        execute = {**project_execute(project), **_mapping(data.get("execute"))}
        mapped = map_options(execute)
        if mapped.problem is not None:
            raise ParseError(f"execute: {mapped.problem}", top)
        defaults = mapped.options
        notes.extend(f"{document.path}:1: execute: {note}" for note in mapped.notes)
    elif format_ == "myst":
        spec = _mapping(data.get("kernelspec"))
        name = spec.get("name")
        language = spec.get("language")
        notebook_language = _choose_kernel(
            str(name) if name else None, str(language) if language else None, kernels, top
        )
    languages = languages | set(kernels) | {notebook_language}
    cells: list[Cell | None] = []
    for block in document.blocks:
        cell: Cell | None
        if doctest and is_doctest_block(block):
            cell = read_doctest(block)
        elif format_ == "markdown":
            cell = read_markdown(block, languages)
        elif format_ == "myst":
            cell = read_myst(block, notebook_language, languages, kernels)
        else:
            cell = read_quarto(block, languages, kernels)
        if cell is not None:
            notes.extend(f"{document.path}:{block.line_number}: {note}" for note in cell.notes)
        cells.append(cell)
    return Reading(format_, tuple(cells), defaults, top.line, tuple(notes), tuple(sources))


def _quarto_kernel(value: Any) -> tuple[str | None, str | None]:
    """Quarto's `jupyter: NAME`, or `jupyter: {kernelspec: {name, language}}`."""
    if isinstance(value, str):
        return value, None
    spec = _mapping(nested(_mapping(value), "kernelspec"))
    name, language = spec.get("name"), spec.get("language")
    return (str(name) if name else None), (str(language) if language else None)


def _choose_kernel(
    name: str | None, language: str | None, kernels: dict[str, str], location: Location
) -> str:
    """Record the document's kernel for its language; return that language (python if none)."""
    if name is None or name in PYTHON_KERNEL_NAMES:
        return (language or "python").lower() if name is None and language else "python"
    if language is None:
        from mdrun.document.kernels import resolve_kernel

        try:
            language = resolve_kernel("", name).language
        except KernelNotFound as err:
            raise KernelNotFound(err.message, location) from None
    language = language.lower()
    if language in ("python", "python3"):
        language = "python"
    kernels[language] = name
    return language


def _mapping(value: Any) -> dict[str, Any]:
    return {str(key): item for key, item in value.items()} if isinstance(value, dict) else {}
