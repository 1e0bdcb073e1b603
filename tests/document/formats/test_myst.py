"""MyST notebooks: code cells run with their options and tags; other directives are text."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mdrun.document.options import BlockOptions
from mdrun.document.parse import parse_document
from mdrun.document.plan import Plan, plan_document
from mdrun.errors import ParseError

JUPYTEXT = (
    "---\njupytext:\n  text_representation:\n    extension: .md\n    format_name: myst\n"
    "kernelspec:\n  display_name: Python 3\n  language: python\n  name: python3\n---\n\n"
)


def plan(text: str) -> Plan:
    return plan_document(parse_document(text, "nb.md"), Path())


def test_only_code_cells_run_in_a_notebook() -> None:
    text = JUPYTEXT + (
        "```{note}\nA note.\n```\n\n```{code-cell} ipython3\nx = 1\n```\n\n"
        "```python\nshown = 1\n```\n\n```{math}\nx^2\n```\n\n```{include} ../README.md\n```\n"
    )
    result = plan(text)
    assert result.format == "myst"
    assert [planned.executable for planned in result.blocks] == [False, True, False, False, False]
    assert result.blocks[1].kernel is not None
    assert result.blocks[1].kernel.name == "mdrun-python"


def test_a_code_cell_makes_a_document_a_notebook_without_front_matter() -> None:
    result = plan("```python\nshown\n```\n\n```{code-cell}\nx = 1\n```\n")
    assert result.format == "myst"
    assert [planned.executable for planned in result.blocks] == [False, True]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (":tags: [remove-input]\n", BlockOptions(echo=False)),
        (":tags: [remove-output, hide-input]\n", BlockOptions(output=False)),
        (":tags: [remove-cell]\n", BlockOptions(echo=False, output=False)),
        (":tags: [raises-exception]\n", BlockOptions(allow_error=True)),
        (":tags: [skip-execution]\n", BlockOptions(eval=False)),
        (":tags: [remove-stderr]\n", BlockOptions(warning=False)),
        ("---\ntags: [raises-exception, hide-output]\nmystnb:\n  number_source_lines: true\n---\n",
         BlockOptions(allow_error=True)),
        (":tags: [hide-cell, full-width]\n:id: named\n", BlockOptions(id="named")),
    ],
)  # fmt: skip
def test_tags_and_options_map_onto_mdrun_options(header: str, expected: BlockOptions) -> None:
    result = plan(JUPYTEXT + f"```{{code-cell}} ipython3\n{header}x = 1\n```\n")
    assert result.blocks[0].options == expected
    assert result.blocks[0].code == "x = 1\n"


def test_a_cell_that_loads_its_code_from_a_file_is_refused() -> None:
    with pytest.raises(ParseError, match=r"^nb.md:12: option `load` loads"):
        plan(JUPYTEXT + "```{code-cell} ipython3\n:load: script.py\n```\n")


def test_another_kernelspec_chooses_the_kernel_for_its_language() -> None:
    text = JUPYTEXT.replace("name: python3", "name: bash").replace(
        "language: python", "language: bash"
    )
    result = plan(text + "```{code-cell}\necho hi\n```\n")
    assert result.blocks[0].kernel is not None
    assert result.blocks[0].kernel.name == "bash"


_CODE = st.lists(st.sampled_from(["x = 1", "# :tags: no", "print(':x: y')", "", "---"]), max_size=4)
_TAGS = st.lists(
    st.sampled_from(["remove-input", "hide-output", "raises-exception", "margin"]), max_size=3
)


@given(tags=_TAGS, header=st.booleans(), code=_CODE)
def test_a_cell_runs_its_code_without_its_options(
    tags: list[str], header: bool, code: list[str]
) -> None:
    """Whichever form the options take, the code that runs is the cell's code after them."""
    body = "".join(f"{line}\n" for line in code)
    options = f"---\ntags: {tags}\n---\n" if header else f":tags: {tags}\n"
    result = plan(JUPYTEXT + f"```{{code-cell}} ipython3\n{options}{body}```\n")
    planned = result.blocks[0]
    assert planned.code == body
    assert planned.options.echo is ("remove-input" not in tags)
    assert planned.options.allow_error is ("raises-exception" in tags)
