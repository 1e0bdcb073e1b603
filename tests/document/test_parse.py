"""Finding blocks, their containers and their output regions in a Markdown document."""

from __future__ import annotations

from pathlib import Path

import pytest

from mdrun.document.parse import parse_document, read_document, split_info
from mdrun.document.regions import Region
from mdrun.errors import ParseError


def test_top_level_block_has_its_code_span_and_language() -> None:
    document = parse_document("# Title\n\n```Python\nprint(1)\n```\n")
    (block,) = document.blocks
    assert (block.index, block.language, block.code) == (0, "python", "print(1)\n")
    assert (block.start_line, block.end_line, block.line_number) == (2, 5, 3)
    assert block.closed
    assert block.prefix == ""
    assert block.region is None


def test_blocks_in_list_items_get_a_prefix_of_spaces() -> None:
    text = "- one\n  ```python\n  a = 1\n  ```\n1. two\n   ```python\n   b = 2\n   ```\n"
    first, second = parse_document(text).blocks
    assert (first.code, first.prefix) == ("a = 1\n", "  ")
    assert (second.code, second.prefix) == ("b = 2\n", "   ")


def test_blocks_in_quotes_keep_the_quote_marker_and_nesting_turns_list_markers_to_spaces() -> None:
    text = (
        "> ```python\n> x\n> ```\n\n"
        "> - ```python\n>   y\n>   ```\n\n"
        "- > ```python\n  > z\n  > ```\n"
    )
    quoted, quoted_list, listed_quote = parse_document(text).blocks
    assert (quoted.code, quoted.prefix) == ("x\n", "> ")
    assert (quoted_list.code, quoted_list.prefix) == ("y\n", ">   ")
    assert (listed_quote.code, listed_quote.prefix) == ("z\n", "  > ")


def test_indented_code_is_not_a_block() -> None:
    assert parse_document("Text\n\n    print(1)\n").blocks == ()


def test_crlf_document_keeps_its_lines_and_reports_crlf() -> None:
    document = parse_document("a\r\n```python\r\nx = 1\r\n```\r\n")
    assert document.newline == "\r\n"
    assert document.lines == ("a\r\n", "```python\r\n", "x = 1\r\n", "```\r\n")
    assert document.blocks[0].code == "x = 1\n"


def test_unicode_line_separators_are_not_line_breaks() -> None:
    # str.splitlines would split on these; CommonMark (and so the fence's map) does not.
    document = parse_document("a\x0cb\u2028c\x85d\n```python\nx\n```\n")
    assert len(document.lines) == 4
    assert document.blocks[0].start_line == 1


def test_info_string_options_and_pandoc_form() -> None:
    assert split_info('python id=load timeout=10 title="a b"') == (
        "python",
        (("id", "load"), ("timeout", "10"), ("title", "a b")),
        None,
    )
    assert split_info("{.python #load cache=false}") == (
        "python",
        (("id", "load"), ("cache", "false")),
        None,
    )
    assert split_info("{python, echo=FALSE}") == ("python", (("echo", "FALSE"),), None)
    assert split_info("") == ("", (), None)


def test_bare_word_or_open_quote_in_the_info_string_is_a_problem_not_a_crash() -> None:
    language, options, problem = split_info("python fast id=x")
    assert (language, options) == ("python", (("id", "x"),))
    assert problem is not None and "`fast`" in problem
    assert split_info('python title="open')[2] is not None


def test_unclosed_fence_is_a_block_with_a_warning_naming_its_line() -> None:
    document = parse_document("Intro\n\n```python\nprint(1)\n\nmore\n", "doc.md")
    (block,) = document.blocks
    assert not block.closed
    assert block.code == "print(1)\n\nmore\n"
    assert len(document.warnings) == 1
    assert document.warnings[0].startswith("doc.md:3: ")
    assert "never closed" in document.warnings[0]


def test_fence_closed_by_its_container_ending_is_unclosed() -> None:
    document = parse_document("> ```python\n> x\n\nafter\n")
    assert not document.blocks[0].closed
    assert document.warnings


def test_front_matter_is_read_and_not_parsed_as_markdown() -> None:
    text = (
        '---\ntitle: "My page"\nmdrun.timeout: 10\nnested:\n  - ignored\n---\n```python\nx\n```\n'
    )
    document = parse_document(text)
    assert dict(document.front_matter.data) == {
        "title": "My page",
        "mdrun.timeout": 10,
        "nested": ["ignored"],
    }
    assert document.front_matter.end_line == 6
    assert document.blocks[0].start_line == 6


def test_front_matter_hides_fences_in_its_values() -> None:
    document = parse_document("---\nexample: |\n  ```\n---\ntext\n")
    assert document.blocks == ()
    assert document.warnings == ()


@pytest.mark.parametrize(
    "text",
    [
        "---\n\n```python\nx\n```\n---\n",  # a thematic break: blank line after it
        "---\nIntro\n```python\nx\n```\n---\n",  # a setext heading, not YAML
    ],
)
def test_document_opening_with_a_rule_has_no_front_matter(text: str) -> None:
    document = parse_document(text)
    assert document.front_matter.end_line == 0
    assert [block.code for block in document.blocks] == ["x\n"]


def test_dashes_without_a_closing_line_are_not_front_matter() -> None:
    document = parse_document("---\ntitle: x\n")
    assert document.front_matter.end_line == 0
    assert dict(document.front_matter.data) == {}


REGION = "<!-- mdrun:output id=b1 -->\n``` text\n1\n```\n<!-- mdrun:end -->\n"


def test_region_right_after_a_block_is_recognised_and_its_fence_is_not_a_block() -> None:
    document = parse_document("```python\nprint(1)\n```\n" + REGION + "after\n")
    (block,) = document.blocks
    assert block.region == Region(start_line=3, end_line=8, block_id="b1")


def test_region_in_a_quote_carries_the_quote_prefix() -> None:
    quoted = "".join("> " + line + "\n" for line in REGION.splitlines())
    document = parse_document("> ```python\n> x\n> ```\n" + quoted)
    assert document.blocks[0].region == Region(3, 8, "b1")


def test_region_after_a_blank_line_is_not_a_region() -> None:
    document = parse_document("```python\nx\n```\n\n" + REGION)
    assert [block.region for block in document.blocks] == [None, None]
    assert len(document.blocks) == 2  # the fence inside the stray region is an ordinary block


def test_start_marker_without_end_is_left_as_text_with_a_warning() -> None:
    text = "```python\nx\n```\n<!-- mdrun:output id=b1 -->\n``` text\n1\n```\n"
    document = parse_document(text, "doc.md")
    assert document.blocks[0].region is None
    assert len(document.blocks) == 2
    assert document.warnings == (
        "doc.md:4: output marker without a matching `<!-- mdrun:end -->`; left as ordinary text",
    )


def test_end_marker_search_stops_at_the_next_region() -> None:
    second = "```python\ny\n```\n" + REGION.replace("b1", "b2")
    text = "```python\nx\n```\n<!-- mdrun:output id=b1 -->\n" + second
    blocks = parse_document(text).blocks
    assert [block.region.block_id if block.region else None for block in blocks] == [None, "b2"]


def test_regions_whose_content_would_swallow_later_text_do_not_hide_blocks() -> None:
    swallowing = "<!-- mdrun:output id=b1 -->\n<pre>\nnever closed\n\n<!-- mdrun:end -->\n"
    document = parse_document("```python\na\n```\n" + swallowing + "```python\nb\n```\n")
    assert [block.code for block in document.blocks] == ["a\n", "b\n"]
    assert [block.index for block in document.blocks] == [0, 1]


def test_read_document_refuses_non_utf8_naming_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.md"
    path.write_bytes("line one\r\nline two\ncaf\xe9\n".encode("latin-1"))
    with pytest.raises(ParseError) as caught:
        read_document(path)
    assert str(caught.value).startswith(f"{path}:3: not UTF-8")


def test_read_document_reads_utf8(tmp_path: Path) -> None:
    path = tmp_path / "doc.md"
    path.write_bytes("é\n```python\nx\n```".encode())
    document = read_document(path)
    assert document.path == str(path)
    assert document.source == "é\n```python\nx\n```"


def test_byte_order_mark_does_not_hide_the_first_block(tmp_path: Path) -> None:
    path = tmp_path / "bom.md"
    path.write_bytes(b"\xef\xbb\xbf```python\nx = 1\n```\n")
    document = read_document(path)
    assert [(block.language, block.code, block.closed) for block in document.blocks] == [
        ("python", "x = 1\n", True)
    ]
    assert document.warnings == ()
    assert document.byte_order_mark == "\ufeff"
    assert document.source == "\ufeff```python\nx = 1\n```\n"


def test_missing_file_is_a_parse_error(tmp_path: Path) -> None:
    with pytest.raises(ParseError, match="cannot read"):
        read_document(tmp_path / "missing.md")
