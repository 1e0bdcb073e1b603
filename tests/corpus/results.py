"""The corpus results as a Markdown table (tests/corpus/results.md), one row per document."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .checks import Verdict
from .manifest import Document, Package

RESULTS_HEADER = (
    "| document | package | format | blocks | executed | failed | first run inserts only "
    "| idempotent | check | exit | verdict |\n"
    "| --- | --- | --- | ---: | ---: | ---: | :---: | :---: | :---: | ---: | --- |\n"
)


@dataclass(frozen=True, slots=True)
class Row:
    """One document's line of the table, with the commands' error text when it failed."""

    package: Package
    document: Document
    verdict: Verdict
    seconds: float
    errors: str = ""
    """The last lines mdrun printed on stderr, for a document that did not pass."""


def _mark(value: bool | None) -> str:
    if value is None:
        return "not run"
    return "yes" if value else "**no**"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def row_line(row: Row) -> str:
    verdict = row.verdict
    if not verdict.passed:
        outcome = "**FAIL**: " + "; ".join(verdict.problems)
    elif verdict.accepted:
        outcome = f"pass (re-runs: {row.document.reruns}): " + "; ".join(verdict.accepted)
    else:
        outcome = "pass"
    cells = [
        f"`{row.document.name}`",
        row.package.requirement,
        row.document.format,
        str(verdict.blocks),
        str(verdict.executed),
        str(len(verdict.failed)),
        _mark(verdict.inserts_only),
        _mark(verdict.idempotent),
        _mark(verdict.check_passed),
        str(verdict.exit_code),
        outcome,
    ]
    return "| " + " | ".join(_cell(cell) for cell in cells) + " |\n"


def render_results(rows: Sequence[Row], heading: str) -> str:
    """The whole results file: a heading paragraph, the table, then each failure's messages."""
    passed = sum(1 for row in rows if row.verdict.passed)
    declared = sum(1 for row in rows if row.verdict.passed and row.verdict.accepted)
    with_reruns = f", {declared} of them with declared re-runs" if declared else ""
    parts = [
        "# Corpus results\n\n",
        heading,
        f"\n{passed} of {len(rows)} documents pass{with_reruns}.\n\n",
        RESULTS_HEADER,
        *(row_line(row) for row in rows),
    ]
    failures = [row for row in rows if not row.verdict.passed and row.errors]
    if failures:
        parts.append("\n## What mdrun printed for the documents that did not pass\n")
        for row in failures:
            parts.append(f"\n`{row.package.name}`: `{row.document.name}`\n\n")
            parts.append("```text\n" + row.errors.rstrip("\n").replace("```", "'''") + "\n```\n")
    return "".join(parts)
