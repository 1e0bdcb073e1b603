"""Doctest sessions: which blocks are sessions, what runs, and how outputs are written back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from mdrun.document.formats.cell import Cell
from mdrun.document.formats.doctest import RESULT_MIME, read_doctest, rewritten_lines
from mdrun.document.formats.settings import Settings
from mdrun.document.parse import Document, parse_document
from mdrun.document.plan import plan_document
from mdrun.document.render import splice

SESSION = """\
Before.

```pycon
>>> x = [1, 2]
>>> sum(x)
4
>>> print("a\\n\\nb")
a
<BLANKLINE>
b
>>> object()  # doctest: +ELLIPSIS
<object object at 0x...>
>>> int("z")
Traceback (most recent call last):
  ...
ValueError: bad
```

After.
"""


def report(*results: tuple[str, str | None]) -> list[dict[str, Any]]:
    """The kernel's report of each statement, as the runner sends it."""
    data = {"results": [{"output": out, "exception": exc} for out, exc in results]}
    return [{"output_type": "display_data", "data": {RESULT_MIME: data}, "metadata": {}}]


def rewrite(document: Document, outputs: list[dict[str, Any]]) -> str:
    block = document.blocks[0]
    cell = read_doctest(block)
    return splice(document, {}, rewritten_lines(cell, block, document.newline, outputs))


def test_sessions_run_only_in_doctest_mode() -> None:
    for fence in ("```pycon\n", "```python\n", "```{doctest}\n:options: +ELLIPSIS\n"):
        document = parse_document(f"{fence}>>> 1\n1\n```\n", "doc.md")
        assert not plan_document(document, Path()).blocks[0].executable
        on = plan_document(document, Path(), Settings(doctest=True)).blocks[0]
        assert on.executable
        assert on.cell is not None and on.cell.is_doctest
    front = "---\nmdrun.doctest: true\n---\n"
    document = parse_document(front + "```pycon\n>>> 1\n1\n```\n", "doc.md")
    assert plan_document(document, Path()).blocks[0].executable


def test_the_key_holds_the_statements_not_the_expected_outputs() -> None:
    first = read_doctest(parse_document(SESSION).blocks[0])
    drifted = read_doctest(parse_document(SESSION.replace("\n4\n", "\n5\n")).blocks[0])
    assert first.code == drifted.code
    assert "sum(x)" in first.code


def test_matching_outputs_keep_every_byte() -> None:
    document = parse_document(SESSION)
    outputs = report(
        ("", None), ("3\n", None), ("a\n\nb\n", None), ("<object object at 0x7f>\n", None),
        ("", "ValueError: invalid literal for int() with base 10: 'z'\n"),
    )  # fmt: skip
    rewritten = rewrite(document, outputs)
    assert rewritten == SESSION.replace("\n4\n", "\n3\n")


def test_new_output_and_a_new_exception_are_written_under_their_prompts() -> None:
    text = "```pycon\n>>> 1 + 1\n>>> print(2)\n2\n```\n"
    outputs = report(("2\n", None), ("", "NameError: name 'print' is not defined\n"))
    assert rewrite(parse_document(text), outputs) == (
        "```pycon\n>>> 1 + 1\n2\n>>> print(2)\nTraceback (most recent call last):\n"
        "    ...\nNameError: name 'print' is not defined\n```\n"
    )


def test_sessions_in_containers_keep_their_prefix_and_line_endings() -> None:
    text = "> ```pycon\r\n> >>> 1\r\n> 2\r\n> ```\r\n"
    assert rewrite(parse_document(text), report(("1\n", None))) == text.replace("> 2", "> 1")


def test_colour_codes_are_not_written_into_the_page() -> None:
    text = "```pycon\n>>> log()\nred\n>>> fail()\n```\n"
    outputs = report(("\x1b[31mred\x1b[0m\n", None), ("", "\x1b[1mKeyError\x1b[0m: 'k'\n"))
    rewritten = rewrite(parse_document(text), outputs)
    assert "\x1b" not in rewritten
    assert rewritten.startswith("```pycon\n>>> log()\nred\n>>> fail()\nTraceback")
    assert "KeyError: 'k'\n```\n" in rewritten


def test_a_report_of_the_wrong_shape_changes_nothing() -> None:
    document = parse_document(SESSION)
    for outputs in (
        [],
        report(("1\n", None)),  # one result for five statements
        [{"output_type": "display_data", "data": {RESULT_MIME: {"results": [{"output": 3}]}}}],
        [{"output_type": "display_data", "data": {RESULT_MIME: "nonsense"}}],
    ):
        assert rewrite(document, outputs) == SESSION


def _cell(text: str) -> Cell:
    return read_doctest(parse_document(text).blocks[0])


_STATEMENTS = st.sampled_from(["x = 1", "x", "print(x)", "f(1, 2)", "[i for i in y]"])
_OUTPUT_LINES = st.sampled_from(["1", "a b", "", "[1, 2]", "  indented", "<BLANKLINE>", "a...b"])


@given(
    examples=st.lists(
        st.tuples(_STATEMENTS, st.lists(_OUTPUT_LINES.filter(bool), max_size=3)),
        min_size=1,
        max_size=4,
    ),
    printed=st.data(),
)
def test_what_is_written_reads_back_as_what_was_printed(
    examples: list[tuple[str, list[str]]], printed: st.DataObject
) -> None:
    """Rewriting writes each statement's output under it; reading the result back gives those
    outputs as the expected ones, and rewriting again with the same outputs changes nothing."""
    body = "".join(
        f">>> {source}\n" + "".join(f"{line}\n" for line in want) for source, want in examples
    )
    text = f"Intro.\n\n```pycon\n{body}```\n\nEnd.\n"
    gots = [
        "".join(
            f"{line}\n"
            for line in printed.draw(st.lists(st.sampled_from(["1", "a", "[1]"]), max_size=2))
        )
        for _ in examples
    ]
    outputs = report(*((got, None) for got in gots))
    rewritten = rewrite(parse_document(text), outputs)
    assert rewritten.startswith("Intro.\n\n```pycon\n") and rewritten.endswith("```\n\nEnd.\n")
    cell = _cell(rewritten)
    assert cell.examples is not None
    assert [example.want for example in cell.examples] == gots
    assert [example.source for example in cell.examples] == [s + "\n" for s, _ in examples]
    assert rewrite(parse_document(rewritten), outputs) == rewritten
