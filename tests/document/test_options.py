"""Block options: defaults, front matter, validation messages, ids and languages."""

from __future__ import annotations

from pathlib import Path

import pytest

from mdrun.document.options import OPTION_NAMES, BlockOptions
from mdrun.document.parse import Document, parse_document
from mdrun.document.plan import plan_document
from mdrun.errors import ParseError


def options_of(info: str, front_matter: str = "") -> BlockOptions:
    document = parse_document(f"{front_matter}Text\n\n```{info}\nx\n```\n", "doc.md")
    return plan_document(document, Path()).blocks[0].options


def only_block(document: Document) -> BlockOptions:
    (options,) = [
        planned.options for planned in plan_document(document, Path()).blocks if planned.executable
    ]
    return options


def test_defaults() -> None:
    assert options_of("python") == BlockOptions(
        id=None,
        session="main",
        eval=True,
        echo=True,
        output=True,
        timeout=None,
        allow_error=False,
        cache=True,
        inputs=(),
        kernel=None,
        snapshot=None,
        max_output=10_000_000,
    )


def test_every_option_can_be_set() -> None:
    info = (
        "python id=load session=s2 eval=no echo=False output=0 timeout=2.5 allow-error=yes"
        ' cache=off inputs="data.csv, b.txt" kernel=python3 snapshot=true max_output=2MB'
    )
    assert options_of(info) == BlockOptions(
        id="load",
        session="s2",
        eval=False,
        echo=False,
        output=False,
        timeout=2.5,
        allow_error=True,
        cache=False,
        inputs=("data.csv", "b.txt"),
        kernel="python3",
        snapshot=True,
        max_output=2_000_000,
    )
    assert set(OPTION_NAMES) == {
        "id", "session", "eval", "echo", "output", "timeout", "allow_error", "cache",
        "inputs", "kernel", "snapshot", "warning", "max_output",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("text", "value"), [("TRUE", True), ("Yes", True), ("1", True), ("no", False)]
)
def test_booleans_in_any_case(text: str, value: bool) -> None:
    assert options_of(f"python cache={text}").cache is value


def test_pandoc_form_sets_id() -> None:
    assert options_of("{.python #setup session=other}").id == "setup"


def test_unknown_option_names_block_line_and_allowed_options() -> None:
    with pytest.raises(ParseError) as caught:
        options_of("python timout=3")
    message = str(caught.value)
    assert message.startswith("doc.md:3: unknown option `timout`")
    assert "timeout" in message.split(";")[1]


@pytest.mark.parametrize(
    ("info", "expected"),
    [
        (
            "python timeout=soon",
            "bad value `soon` for option `timeout`: expected a positive number",
        ),
        ("python timeout=-1", "expected a positive number of seconds"),
        ("python eval=maybe", "expected true or false"),
        ("python snapshot=sometimes", "expected true, false or auto"),
        ("python max_output=lots", "expected a size such as 10MB"),
        ("python max_output=0", "expected a size of at least one character"),
        ('python id="a b"', "bad value `a b` for option `id`"),
        ("python session=", "bad value `` for option `session`"),
        ('python inputs="a,,b"', "expected comma-separated file paths"),
        ("python cache=true cache=false", "option `cache` is given twice"),
        ("python quick", "`quick` is not an option"),
    ],
)
def test_bad_values_say_what_is_allowed(info: str, expected: str) -> None:
    with pytest.raises(ParseError, match=expected.replace("(", r"\(")):
        options_of(info)


def test_error_location_names_the_explicit_id() -> None:
    with pytest.raises(ParseError) as caught:
        options_of("python id=load eval=maybe")
    assert str(caught.value).startswith("doc.md:3: block load: ")


def test_front_matter_sets_defaults_and_blocks_override_them() -> None:
    front = "---\ntitle: Page\nmdrun.session: analysis\nmdrun.timeout: 10\n---\n"
    assert options_of("python", front).session == "analysis"
    assert options_of("python", front).timeout == 10.0
    assert options_of("python timeout=none", front).timeout is None
    assert options_of("python session=main", front).session == "main"


def test_unknown_front_matter_key_is_an_error_at_its_line() -> None:
    with pytest.raises(ParseError) as caught:
        options_of("python", "---\ntitle: x\nmdrun.id: nope\n---\n")
    assert str(caught.value).startswith("doc.md:3: unknown front matter key `mdrun.id`")


def test_bad_front_matter_value_is_an_error_at_its_line() -> None:
    with pytest.raises(ParseError, match=r"^doc.md:2: bad value `x` for option `cache`"):
        options_of("python", "---\nmdrun.cache: x\n---\n")


def test_block_id_is_explicit_or_positional_within_its_session() -> None:
    text = (
        "```python\na\n```\n\n```python id=two\nb\n```\n\n"
        "```python session=side\nc\n```\n\n```python\nd\n```\n"
    )
    plan = plan_document(parse_document(text), Path())
    assert [planned.block_id for planned in plan.blocks] == ["b1", "two", "side-1", "b3"]


def test_duplicate_ids_name_both_lines() -> None:
    text = "```python id=x\na\n```\n\n```python id=x\nb\n```\n"
    with pytest.raises(ParseError) as caught:
        plan_document(parse_document(text, "doc.md"), Path())
    message = str(caught.value)
    assert message.startswith("doc.md:5: block x: id `x` is already used by the block at line 1")


def test_explicit_id_clashing_with_a_positional_one_is_refused() -> None:
    text = "```python id=b2\na\n```\n\n```python\nb\n```\n"
    with pytest.raises(ParseError, match="id `b2` is already used by the block at line 1"):
        plan_document(parse_document(text), Path())


def test_blocks_that_never_run_may_hold_any_info_string() -> None:
    text = "```text whatever you like\nx\n```\n\n```console $ ls\n$ ls\n```\n\n```python\ny\n```\n"
    plan = plan_document(parse_document(text), Path())
    assert [planned.block.index for planned in plan.blocks if planned.executable] == [2]
    assert (
        only_block(parse_document('```json {"a": 1}\n{}\n```\n\n```python\ny\n```\n'))
        == BlockOptions()
    )


@pytest.mark.parametrize(
    ("language", "runs"),
    [
        ("python", True), ("py", True), ("Python3", True), ("ipython", True),
        ("", False), ("text", False), ("console", False), ("json", False), ("pycon", False),
        ("r", False), ("julia", False), ("bash", False), ("sh", False), ("perl", False),
    ],
)  # fmt: skip
def test_only_python_runs_unless_asked(language: str, runs: bool) -> None:
    plan = plan_document(parse_document(f"```{language}\nx\n```\n"), Path())
    assert plan.blocks[0].executable is runs
