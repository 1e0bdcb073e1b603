"""Quarto and R Markdown: braced fences run, with `#|` and knitr header options."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mdrun.core.store import Store
from mdrun.document.formats.settings import Settings
from mdrun.document.options import BlockOptions
from mdrun.document.parse import parse_document
from mdrun.document.pipeline import run
from mdrun.document.plan import Plan, PlannedBlock, plan_document
from mdrun.errors import ParseError
from tests.document.conftest import no_kernel_starts
from tests.strategies import DocumentSpec, documents_with_blocks


def plan(text: str, path: str = "doc.qmd", base: Path = Path()) -> Plan:
    return plan_document(parse_document(text, path), base)


def only(text: str, path: str = "doc.qmd") -> PlannedBlock:
    (planned,) = [planned for planned in plan(text, path).blocks if planned.cell is not None]
    return planned


def test_only_braced_python_fences_run() -> None:
    text = (
        "```python\nshown = 1\n```\n\n```{python}\nran = 1\n```\n\n```{r}\nx <- 1\n```\n\n"
        "```{.python .cell-code}\nx\n```\n\n```{{python}}\nx\n```\n"
    )
    for path in ("doc.qmd", "doc.Rmd", "doc.rmd"):
        assert [p.executable for p in plan(text, path).blocks] == [index == 1 for index in range(5)]


def test_cell_option_lines_are_options_not_code() -> None:
    planned = only(
        "```{python}\n#| label: load\n#| echo: false\n#|   \nx = 1\n#| not: options\n```\n"
    )
    assert planned.code == "x = 1\n#| not: options\n"
    assert planned.block_id == "load"
    assert planned.options.echo is False
    assert planned.base_config is not None and "#| label" not in str(planned.base_config["code"])


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ("#| eval: false", BlockOptions(id="c", eval=False)),
        ("#| output: asis", BlockOptions(id="c")),
        ("#| output: false", BlockOptions(id="c", output=False)),
        ("#| include: false", BlockOptions(id="c", echo=False, output=False)),
        ("#| error: true", BlockOptions(id="c", allow_error=True)),
        ("#| warning: false", BlockOptions(id="c", warning=False)),
        ("#| cache: false", BlockOptions(id="c", cache=False)),
        ("#| echo: fenced", BlockOptions(id="c")),
        ("#| fig-cap: A plot\n#| code-fold: true\n#| tbl-cap: t", BlockOptions(id="c")),
        ("#| timeout: 5\n#| inputs: [a.csv]", BlockOptions(id="c", timeout=5, inputs=("a.csv",))),
    ],
)
def test_quarto_cell_options_map_onto_mdrun_options(lines: str, expected: BlockOptions) -> None:
    planned = only(f"```{{python}}\n#| label: c\n{lines}\nx = 1\n```\n".replace("a.csv", __file__))
    if expected.inputs:
        expected = BlockOptions(id="c", timeout=5, inputs=(__file__,))
    assert planned.options == expected


def test_knitr_header_options_with_r_values() -> None:
    planned = only(
        '```{python setup, echo=FALSE, fig.cap="a, b", results="hide"}\nx\n```\n', "d.Rmd"
    )
    assert planned.block_id == "setup"
    assert (planned.options.echo, planned.options.output) == (False, False)
    assert only("```{python, error=TRUE, include=F}\nx\n```\n", "d.Rmd").options == BlockOptions(
        allow_error=True, echo=False, output=False
    )


def test_cell_lines_win_over_the_header() -> None:
    assert only("```{python echo=FALSE}\n#| echo: true\nx\n```\n").options.echo is True


def test_freeze_and_unknown_keys_are_accepted_with_a_note() -> None:
    result = plan("```{python}\n#| freeze: auto\n#| colour: red\nx\n```\n")
    assert result.blocks[0].executable
    assert result.notes == (
        "doc.qmd:1: option `freeze` is ignored: mdrun's store decides what runs again",
        "doc.qmd:1: unknown cell option `colour` is ignored",
    )


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        ("#| file: other.py\nx", "option `file` reads the cell's code from a file"),
        ("#| echo: [unclosed\nx", "the `#|` cell options are not YAML"),
        ("#| eval: sometimes\nx", "bad value `sometimes` for option `eval`"),
        ("#| label: has space\nx", "bad value `has space` for option `id`"),
    ],
)
def test_options_mdrun_cannot_honour_are_errors_at_the_block(cell: str, message: str) -> None:
    where = r"^doc.qmd:1: (block .*: )?"  # the block's id, when it has one
    with pytest.raises(ParseError, match=where + message.replace("(", r"\(")):
        plan(f"```{{python}}\n{cell}\n```\n")


def test_execute_defaults_from_front_matter_and_project(tmp_path: Path) -> None:
    (tmp_path / "_quarto.yml").write_text("execute:\n  echo: false\n  cache: false\n")
    (tmp_path / "chapter").mkdir()
    text = "---\nexecute:\n  cache: true\n  freeze: auto\n---\n\n```{python}\nx\n```\n"
    result = plan(text, str(tmp_path / "chapter" / "doc.qmd"), tmp_path / "chapter")
    assert result.blocks[0].options == BlockOptions(echo=False, cache=True)
    assert any("option `freeze` is ignored" in note for note in result.notes)


def test_include_false_in_execute_hides_every_block() -> None:
    text = "---\nexecute:\n  include: false\n---\n\n```{python}\nx\n```\n"
    assert plan(text).blocks[0].options == BlockOptions(echo=False, output=False)


def test_jupyter_python3_means_mdrun_s_python_and_other_languages_need_a_kernel() -> None:
    result = plan("---\njupyter: python3\n---\n\n```{python}\nx\n```\n")
    assert result.blocks[0].kernel is not None
    assert result.blocks[0].kernel.name == "mdrun-python"
    result = plan("---\njupyter: python3\n---\n\n```{bash}\necho\n```\n", "doc.qmd")
    assert not result.blocks[0].executable


def test_other_languages_run_when_opted_in() -> None:
    text = "```{bash}\n#| label: sh\necho hi\n```\n"
    result = plan_document(
        parse_document(text, "doc.qmd"), Path(), Settings(languages=frozenset({"bash"}))
    )
    assert result.blocks[0].block_id == "sh"
    assert result.blocks[0].code == "echo hi\n"


_OPTION_LINES = st.lists(
    st.sampled_from(
        ["#| echo: false", "#| eval: true", "#|fig-cap: x", "#| output: asis", "#|", "//| x: 1"]
    ),
    max_size=4,
)
_CODE_LINES = st.lists(
    st.sampled_from(["x = 1", "# comment", "print('#| no')", "", "  #| later: 1"]),
    max_size=4,
)


@given(options=_OPTION_LINES, code=_CODE_LINES)
def test_option_lines_at_the_top_are_removed_and_nothing_else(
    options: list[str], code: list[str]
) -> None:
    body = "".join(line + "\n" for line in options + code)
    planned = only(f"```{{python}}\n{body}```\n")
    kept = code
    while kept and kept[0].lstrip().startswith(("#|", "//|")):
        kept = kept[1:]  # code lines that look like options at the top are options too
    assert planned.code == "".join(line + "\n" for line in kept)


@settings(max_examples=20)
@given(spec=documents_with_blocks())
def test_a_quarto_document_without_braced_cells_comes_out_byte_identical(
    tmp_path_factory: pytest.TempPathFactory, spec: DocumentSpec
) -> None:
    """Fidelity: in `.qmd`, plain fences (even `python`) are display code; nothing runs."""
    folder = tmp_path_factory.mktemp("quarto")
    path = folder / "doc.qmd"
    path.write_bytes(spec.text().encode("utf-8"))
    with no_kernel_starts():
        result = run(str(path), Store.initialize(folder / "store"))
    assert result.evaluation.count("skipped") == len(spec.blocks)
    assert path.read_bytes() == spec.text().encode("utf-8")
