"""The formats `mdrun export` writes, registered once: `--to` offers these, `export` uses them.

Importing this module imports neither pandoc nor nbformat, so the command line lists the
formats without paying for them; each converter imports its module when it runs. A new format
is one entry of `EXPORT_FORMATS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mdrun.errors import UsageError

if TYPE_CHECKING:
    from mdrun.document.evaluate import Evaluation
    from mdrun.document.export_pandoc import PandocFormat

Converter = Callable[["Evaluation"], bytes]
"""Turns an evaluated document into the bytes of the exported file."""


@dataclass(frozen=True, slots=True)
class ExportFormat:
    """One format `mdrun export --to` writes."""

    name: str
    """What `--to` takes; also the default output's extension."""
    label: str
    """How the command's help names it."""
    convert: Converter | None
    """The converter; None for Markdown, which is written as `mdrun run -o` writes it (its
    images in a folder beside it)."""
    binary: bool = False
    """Not text: never written to a terminal."""

    @property
    def suffix(self) -> str:
        """The default output's extension."""
        return f".{self.name}"


def _through_pandoc(to: PandocFormat) -> Converter:
    def convert(evaluation: Evaluation) -> bytes:
        from mdrun.document.export_pandoc import convert_with_pandoc

        return convert_with_pandoc(evaluation, to)

    return convert


def _as_notebook(evaluation: Evaluation) -> bytes:
    from mdrun.document.export_notebook import notebook_text

    return notebook_text(evaluation).encode("utf-8")


EXPORT_FORMATS: dict[str, ExportFormat] = {
    entry.name: entry
    for entry in (
        ExportFormat("html", "HTML", _through_pandoc("html")),
        ExportFormat("docx", "docx", _through_pandoc("docx"), binary=True),
        ExportFormat("ipynb", "ipynb", _as_notebook),
        ExportFormat("md", "md", None),
    )
}
"""Every format, by name, in the order the command's help lists them."""


def export_format(name: str) -> ExportFormat:
    """The format `--to` names; a usage error listing the others for an unknown one."""
    try:
        return EXPORT_FORMATS[name]
    except KeyError:
        choices = ", ".join(EXPORT_FORMATS)
        raise UsageError(f"--to {name}: not a format mdrun exports (choose {choices})") from None


def formats_in_words() -> str:
    """`HTML, docx, ipynb or md`, for help texts."""
    labels = [entry.label for entry in EXPORT_FORMATS.values()]
    return f"{', '.join(labels[:-1])} or {labels[-1]}"
