"""Export an evaluated document as a Jupyter notebook (nbformat v4).

Blocks of the notebook's kernel become code cells holding their stored outputs; the prose
between them becomes Markdown cells, without output regions. Blocks of other kernels stay in the
prose, followed by the text form of their outputs, since a notebook has one kernel.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import cast

from mdrun.core.jsonvalue import JSONObject, JSONValue
from mdrun.document.evaluate import BlockOutcome, Evaluation
from mdrun.document.export_pandoc import front_matter_title
from mdrun.document.kernels import (
    DEFAULT_PYTHON_KERNEL,
    PYTHON_LANGUAGES,
    KernelChoice,
    default_python_kernel,
)
from mdrun.document.outputs import Output
from mdrun.document.pipeline import region_body
from mdrun.document.plan import PlannedBlock
from mdrun.document.render import render_region
from mdrun.errors import ExportError, Location

_CELL_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_LINE_ENDING = re.compile(r"\r\n?")


def notebook_text(evaluation: Evaluation) -> str:
    """The notebook as JSON text, checked against nbformat's schema."""
    import nbformat

    notebook = nbformat.from_dict(notebook_json(evaluation))  # type: ignore[no-untyped-call]
    try:
        nbformat.validate(notebook)
    except nbformat.ValidationError as err:
        location = Location(evaluation.plan.document.path)
        raise ExportError(f"the notebook is not valid: {err.message}", location) from err
    text: str = nbformat.writes(notebook)  # type: ignore[no-untyped-call]
    return text if text.endswith("\n") else text + "\n"


def notebook_kernel(evaluation: Evaluation) -> KernelChoice:
    """The kernel of the first block that runs (Python when none does)."""
    for planned in evaluation.plan.blocks:
        if planned.kernel is not None:
            return planned.kernel
    return default_python_kernel()


def notebook_json(evaluation: Evaluation) -> JSONObject:
    """The notebook as plain JSON; cell ids come from block ids, so exports are reproducible."""
    kernel = notebook_kernel(evaluation)
    language = kernel.language.lower()
    document = evaluation.plan.document
    lines = document.lines
    cells = _Cells()
    prose: list[str] = []
    cursor = document.front_matter.end_line
    for outcome in evaluation.outcomes:
        planned = outcome.planned
        block = planned.block
        prose.extend(lines[cursor : block.start_line])
        cursor = block.region.end_line if block.region is not None else block.end_line
        if _belongs_to(planned, kernel, language):
            cells.add_markdown(prose)
            prose = []
            cells.add_code(outcome)
            continue
        prose.extend(lines[block.start_line : block.end_line])
        prose.extend(_text_region(outcome))
    prose.extend(lines[cursor:])
    cells.add_markdown(prose)
    metadata: JSONObject = {
        "kernelspec": _kernelspec(kernel),
        "language_info": _language_info(kernel),
    }
    title = front_matter_title(document)
    if title:
        metadata["title"] = title
    return {"nbformat": 4, "nbformat_minor": 5, "metadata": metadata, "cells": cells.cells}


def _belongs_to(planned: PlannedBlock, kernel: KernelChoice, language: str) -> bool:
    """Whether a block is a code cell: it runs in the notebook's kernel, or (`eval=false`)
    is written in the notebook's language."""
    if planned.kernel is not None:
        return planned.kernel.name == kernel.name
    if planned.cell is None or planned.cell.is_doctest:
        return False  # text, or a session whose outputs are part of its text
    cell_language = planned.cell.language
    return ("python" if cell_language in PYTHON_LANGUAGES else cell_language) == language


def _text_region(outcome: BlockOutcome) -> list[str]:
    """The outputs of a block the notebook cannot run, as Markdown (images by their text)."""
    body = region_body(outcome)
    if body is None:
        return []
    region = render_region(outcome.planned.block_id, body)[1:-1]
    prefix = outcome.planned.block.prefix
    return [f"{prefix}{line}\n" if line else f"{prefix.rstrip()}\n" for line in region]


class _Cells:
    """The cells being built, with unique ids and execution counts."""

    def __init__(self) -> None:
        self.cells: list[JSONValue] = []
        self.ids: set[str] = set()
        self.execution_count = 0

    def add_markdown(self, lines: Sequence[str]) -> None:
        """A Markdown cell of these lines, unless they are blank."""
        source = _LINE_ENDING.sub("\n", "".join(lines)).strip("\n")
        if source.strip():
            cell_id = self._unique(f"md-{len(self.cells) + 1}")
            self.cells.append(
                {"cell_type": "markdown", "id": cell_id, "metadata": {}, "source": source}
            )

    def add_code(self, outcome: BlockOutcome) -> None:
        """A code cell with the block's outputs; hidden parts as Jupyter marks them."""
        planned = outcome.planned
        ran = outcome.status in ("executed", "cached", "failed")
        count: int | None = None
        if ran:
            self.execution_count += 1
            count = self.execution_count
        jupyter: JSONObject = {}
        if not planned.options.echo:
            jupyter["source_hidden"] = True
        if not planned.options.output:
            jupyter["outputs_hidden"] = True
        self.cells.append(
            {
                "cell_type": "code",
                "id": self._unique(planned.block_id or f"code-{len(self.cells) + 1}"),
                "metadata": {"jupyter": jupyter} if jupyter else {},
                "execution_count": count,
                "source": planned.block.code.removesuffix("\n"),
                "outputs": [_cell_output(output, count) for output in outcome.outputs],
            }
        )

    def _unique(self, wanted: str) -> str:
        """A cell id as nbformat allows them (letters, digits, `-`, `_`; 64 at most)."""
        base = _CELL_ID_UNSAFE.sub("-", wanted)[:56] or "cell"
        cell_id, number = base, 1
        while cell_id in self.ids:
            number += 1
            cell_id = f"{base}-{number}"
        self.ids.add(cell_id)
        return cell_id


def _cell_output(output: Output, count: int | None) -> JSONValue:
    """A stored output as nbformat wants it in a cell (results carry the execution count)."""
    cell_output = cast(JSONObject, json.loads(json.dumps(output)))
    if cell_output.get("output_type") == "execute_result":
        cell_output["execution_count"] = count
    return cell_output


def _kernelspec(kernel: KernelChoice) -> JSONObject:
    """mdrun's own Python kernel is ipykernel, which Jupyter knows as `python3`."""
    if kernel.name == DEFAULT_PYTHON_KERNEL:
        return {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    return {"name": kernel.name, "display_name": kernel.display, "language": kernel.language}


def _language_info(kernel: KernelChoice) -> JSONObject:
    """The language's name, and its version when known without starting the kernel."""
    info: JSONObject = {"name": kernel.language.lower()}
    known = kernel.known_language_info()
    if known is not None:
        info.update(known)
    return info
