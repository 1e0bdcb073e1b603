"""Front matter: found by mdit-py-plugins' rule where pandoc would read it, read by PyYAML once."""

from __future__ import annotations

from pathlib import Path

import pytest

from mdrun.document.front_matter import FRONT_MATTER_TOKEN
from mdrun.document.options import document_defaults
from mdrun.document.parse import parse_document
from mdrun.document.plan import plan_document
from mdrun.errors import ParseError

BLOCK = "```python\nx\n```\n"

QUARTO = """\
---
title: "A *rich* page"
author:
  - name: Ada
    affiliations: [Analytical Engines]
format:
  html:
    toc: true
    code-fold: show
defaults: &defaults
  echo: false
execute:
  <<: *defaults
abstract: |
  Several lines,
  with a fence:
  ```python
  never = "a block"
  ```
---
"""


def test_front_matter_is_one_token_and_its_yaml_is_read_as_data() -> None:
    document = parse_document(QUARTO + BLOCK, "page.qmd")
    front_matter = document.front_matter
    assert document.tokens[0].type == FRONT_MATTER_TOKEN
    assert document.tokens[0].map == [0, front_matter.end_line]
    assert front_matter.end_line == 20
    assert front_matter.problem is None
    assert front_matter.data["author"] == [{"name": "Ada", "affiliations": ["Analytical Engines"]}]
    assert front_matter.data["execute"] == {"echo": False}
    assert [block.start_line for block in document.blocks] == [20]


@pytest.mark.parametrize("closing", ["---", "...", "---  ", "...\t"])
def test_front_matter_closes_with_dashes_or_dots(closing: str) -> None:
    document = parse_document(f"---\ntitle: Dots\n{closing}\n{BLOCK}")
    assert dict(document.front_matter.data) == {"title": "Dots"}
    assert document.front_matter.end_line == 3
    assert [block.start_line for block in document.blocks] == [3]


def test_front_matter_with_crlf_and_a_byte_order_mark_is_read() -> None:
    text = "\ufeff---\ntitle: Windows\nmdrun.timeout: 5\n---\n" + BLOCK
    document = parse_document(text.replace("\n", "\r\n"))
    assert dict(document.front_matter.data) == {"title": "Windows", "mdrun.timeout": 5}
    assert document.front_matter.end_line == 4
    assert document.blocks[0].code == "x\n"


def test_front_matter_that_is_not_a_mapping_has_no_keys() -> None:
    document = parse_document("---\n- a\n- b\n---\n" + BLOCK)
    assert document.front_matter.end_line == 4
    assert dict(document.front_matter.data) == {}
    assert document.front_matter.problem is None


def test_malformed_yaml_is_recorded_with_its_line_and_the_document_still_parses() -> None:
    document = parse_document("---\ntitle: ok\ntags: [open\n---\n" + BLOCK, "doc.md")
    problem = document.front_matter.problem
    assert problem is not None
    assert str(problem).startswith("doc.md:4: not valid YAML")
    assert dict(document.front_matter.data) == {}
    assert [block.start_line for block in document.blocks] == [4]


def test_malformed_yaml_that_sets_mdrun_keys_is_an_error_naming_file_and_line() -> None:
    document = parse_document("---\nmdrun.timeout: 10\ntags: [open\n---\n" + BLOCK, "doc.md")
    with pytest.raises(ParseError, match=r"^doc\.md:4: not valid YAML"):
        plan_document(document, Path())


def test_malformed_yaml_of_other_tools_is_a_warning_naming_its_line() -> None:
    plan = plan_document(parse_document("---\ntags: [open\n---\n" + BLOCK, "doc.md"), Path())
    assert plan.blocks[0].executable
    assert [warning for warning in plan.warnings if "YAML" in warning] == [
        "doc.md:3: front matter is not valid YAML: expected ',' or ']', but got '<stream end>';"
        " its keys are ignored"
    ]


def test_yaml_values_become_option_values() -> None:
    front = "---\nmdrun.timeout: 2.5\nmdrun.echo: no\nmdrun.inputs: [a.csv, b.csv]\n---\n"
    defaults = document_defaults(parse_document(front + BLOCK))
    assert (defaults.timeout, defaults.echo, defaults.inputs) == (2.5, False, ("a.csv", "b.csv"))


def test_a_bad_mdrun_value_names_the_line_of_its_key() -> None:
    front = "---\ntitle: x\nmdrun.cache: x\n---\n"
    with pytest.raises(ParseError, match=r"^doc\.md:3: bad value `x` for option `cache`"):
        plan_document(parse_document(front + BLOCK, "doc.md"), Path())
