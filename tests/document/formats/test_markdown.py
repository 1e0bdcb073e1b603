"""Plain Markdown: which blocks run, and what a block that does not run may hold."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mdrun.document.formats.settings import Settings
from mdrun.document.parse import parse_document
from mdrun.document.plan import Plan, plan_document
from mdrun.errors import KernelNotFound, ParseError


def plan(text: str, settings: Settings | None = None, path: str = "doc.md") -> Plan:
    return plan_document(parse_document(text, path), Path(), settings)


def running(text: str, settings: Settings | None = None) -> list[int]:
    """The indexes of the blocks that run."""
    return [planned.block.index for planned in plan(text, settings).blocks if planned.executable]


FENCES_FROM_REAL_DOCUMENTS = (
    "```{include} ../README.md\n```\n",
    "```example\n- a\n.\n<ul>\n```\n",
    "```{doctest}\n>>> 1\n1\n```\n",
    "```{.python .cell-code}\nx = 1\n```\n",
    '```js title="x.js"\nlet x\n```\n',
    "```{warning}\nCareful.\n```\n",
    "```perl\nprint 1\n```\n",
    "```shell\npip install x\n```\n",
    "```bash\nrm -rf build\n```\n",
    "```pycon\n>>> 1\n1\n```\n",
    "```python\n>>> 1 + 1\n2\n```\n",
)
"""Fences that stopped runs of real documents (issue 8); all are text now."""


@pytest.mark.parametrize("fence", FENCES_FROM_REAL_DOCUMENTS)
def test_blocks_that_do_not_run_are_text_whatever_their_info_string(fence: str) -> None:
    assert running(fence) == []


def test_python_runs_and_other_languages_only_when_asked() -> None:
    text = "```bash\necho a\n```\n\n```python\nprint(1)\n```\n\n```r\n1\n```\n"
    assert running(text) == [1]
    assert running("---\nmdrun.languages: [bash]\n---\n" + text) == [0, 1]
    assert running("---\nmdrun.languages: bash, r\n---\n" + text.replace("```r", "```text")) == [
        0,
        1,
    ]
    assert running(text.replace("```bash", "```bash kernel=bash")) == [0, 1]
    assert running(text, Settings(languages=frozenset({"bash"}))) == [0, 1]


def test_a_language_asked_for_without_a_kernel_is_an_error_at_its_block() -> None:
    with pytest.raises(KernelNotFound, match=r"^doc.md:1: block b1: no Jupyter kernel for"):
        plan("```cobol\nDISPLAY 'x'.\n```\n", Settings(languages=frozenset({"cobol"})))


def test_display_attributes_of_mkdocs_and_pandoc_are_ignored_on_python_blocks() -> None:
    text = (
        '```python title="x.py" hl_lines="2 3" linenums="1"\nprint(1)\n```\n\n'
        "```{.python .numberLines startFrom=3 #named}\nprint(2)\n```\n"
    )
    planned = plan(text).blocks
    assert [block.executable for block in planned] == [True, True]
    assert planned[1].block_id == "named"


def test_an_unknown_option_on_a_block_that_runs_is_still_an_error() -> None:
    with pytest.raises(ParseError, match=r"^doc.md:3: unknown option `exec`"):
        plan('```text x=1\n```\n```python exec="on"\nx\n```\n')


def test_bad_front_matter_languages_is_an_error() -> None:
    with pytest.raises(ParseError, match=r"mdrun.languages` is a list"):
        plan("---\nmdrun.languages: {a: 1}\n---\n\n```python\nx\n```\n")


def test_front_matter_that_is_not_yaml_is_ignored_with_a_warning() -> None:
    planned = plan("---\ntitle: [unclosed\n---\n\n```python\nx\n```\n")
    assert planned.blocks[0].executable
    assert any("not valid YAML" in warning for warning in planned.warnings)


_PYTHONISH = ("py", "code-cell", "kernel", "pycon", "doctest")


@given(
    info=st.text(
        alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="`\n\r"),
        max_size=30,
    ).filter(lambda info: not any(word in info.lower() for word in _PYTHONISH)),
    code=st.text(alphabet="ab =.:#|>\n", max_size=30),
)
def test_any_info_string_of_a_language_not_asked_for_is_text(info: str, code: str) -> None:
    """A block that does not run is never validated: planning cannot fail on it."""
    text = f"```{info}\n{code}\n```\n"
    assert all(not planned.executable for planned in plan(text).blocks)
