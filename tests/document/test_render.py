"""Rendering outputs into regions, and splicing regions into documents without touching the rest."""

from __future__ import annotations

import base64

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from mdrun.core.jsonvalue import JSONValue
from mdrun.document.outputs import (
    DataOutput,
    ErrorOutput,
    Output,
    StreamOutput,
    merge_streams,
    outputs_from_json,
    strip_ansi,
)
from mdrun.document.parse import parse_document
from mdrun.document.render import RegionBody, render_region, splice
from mdrun.errors import InternalError
from tests.strategies import (
    BlockSpec,
    Container,
    DocumentSpec,
    documents_with_blocks,
    documents_without_fences,
)
from tests.strategies import region_bodies as bodies


def stdout(text: str) -> StreamOutput:
    return StreamOutput(output_type="stream", name="stdout", text=text)


def stderr(text: str) -> StreamOutput:
    return StreamOutput(output_type="stream", name="stderr", text=text)


def data(**by_mime: str) -> DataOutput:
    mimes = {mime.replace("_", "/", 1).replace("_", "+"): text for mime, text in by_mime.items()}
    return DataOutput(output_type="display_data", data=mimes, metadata={})


def region(*found: Output, block_id: str = "b1") -> list[str]:
    return render_region(block_id, RegionBody(outputs=found))


# --- outputs ---------------------------------------------------------------------------------


def test_outputs_from_json_joins_nbformat_line_lists() -> None:
    stored: JSONValue = [
        {"output_type": "stream", "name": "stdout", "text": ["a\n", "b\n"]},
        {"output_type": "execute_result", "data": {"text/plain": ["1"]}, "metadata": {}},
        {"output_type": "error", "ename": "E", "evalue": "v", "traceback": ["t"]},
    ]
    assert outputs_from_json(stored) == [
        stdout("a\nb\n"),
        DataOutput(output_type="execute_result", data={"text/plain": "1"}, metadata={}),
        ErrorOutput(output_type="error", ename="E", evalue="v", traceback=["t"]),
    ]


@pytest.mark.parametrize(
    "stored",
    [
        {"output_type": "stream"},
        [{"output_type": "stream", "name": "stdin", "text": ""}],
        [{"output_type": "update_display_data"}],
        [{"output_type": "error", "ename": 1, "evalue": "", "traceback": []}],
    ],
)
def test_outputs_from_json_refuses_malformed_outputs(stored: JSONValue) -> None:
    with pytest.raises(ValueError, match="output"):
        outputs_from_json(stored)


def test_merge_streams_joins_neighbours_of_the_same_name_only() -> None:
    merged = merge_streams([stdout("a"), stdout("b"), stderr("c"), stdout("d")])
    assert merged == [stdout("ab"), stderr("c"), stdout("d")]


def test_strip_ansi_removes_colours_and_titles() -> None:
    assert strip_ansi("\x1b[1;31mred\x1b[0m \x1b]0;title\x07done") == "red done"


# --- rendering -------------------------------------------------------------------------------


def test_stdout_is_a_text_fence_between_markers() -> None:
    assert region(stdout("hello\nworld\n")) == [
        "<!-- mdrun:output id=b1 -->",
        "``` text",
        "hello",
        "world",
        "```",
        "<!-- mdrun:end -->",
    ]


def test_consecutive_stdout_pieces_share_one_fence_and_stderr_gets_its_own() -> None:
    lines = region(stdout("a\n"), stdout("b\n"), stderr("careful\n"), stdout("c\n"))
    assert lines[1:-1] == [
        "``` text", "a", "b", "```",
        "``` stderr", "careful", "```",
        "``` text", "c", "```",
    ]  # fmt: skip


def test_fence_is_longer_than_any_backtick_run_in_the_output() -> None:
    lines = region(stdout("```\nx ````` y\n"))
    assert lines[1] == "`````` text"
    assert lines[-2] == "``````"


def test_progress_bars_and_colours_show_as_a_terminal_would() -> None:
    lines = region(stdout("\x1b[32m10%\r50%\r100%\x1b[0m\n"))
    assert lines[1:-1] == ["``` text", "100%", "```"]


def test_output_line_that_looks_like_a_marker_cannot_end_the_region() -> None:
    lines = region(stdout("<!-- mdrun:end -->\nafter\n"))
    assert "<!-- mdrun:end -->" not in lines[1:-1]
    # Indenting the whole fence by one space: CommonMark removes it from every content line.
    assert lines[1:-1] == [" ``` text", " <!-- mdrun:end -->", " after", " ```"]


def test_error_shows_traceback_ending_with_name_and_value() -> None:
    error = ErrorOutput(
        output_type="error",
        ename="ZeroDivisionError",
        evalue="division by zero",
        traceback=["Traceback (most recent call last):", '  File "<cell>", line 1'],
    )
    lines = render_region("calc", RegionBody(outputs=(error,), status="failed"))
    assert lines[1:-1] == [
        "``` error",
        "Traceback (most recent call last):",
        '  File "<cell>", line 1',
        "ZeroDivisionError: division by zero",
        "```",
    ]


def test_error_summary_is_not_repeated_when_the_traceback_ends_with_it() -> None:
    error = ErrorOutput(
        output_type="error",
        ename="KeyError",
        evalue="'a'",
        traceback=["\x1b[31mKeyError\x1b[0m: 'a'"],
    )
    assert render_region("b1", RegionBody(outputs=(error,), status="failed"))[1:-1] == [
        "``` error",
        "KeyError: 'a'",
        "```",
    ]


def test_a_failure_note_that_the_traceback_ends_with_is_not_repeated() -> None:
    error = ErrorOutput(
        output_type="error", ename="KeyError", evalue="'a'", traceback=["Trace", "KeyError: 'a'"]
    )
    body = RegionBody(outputs=(error,), status="failed", note="KeyError: 'a'")
    assert render_region("b1", body)[1:-1] == [
        "``` error", "Trace", "KeyError: 'a'", "```", "**failed**", ""
    ]  # fmt: skip
    other = RegionBody(outputs=(error,), status="failed", note="interrupted: timeout")
    assert render_region("b1", other)[-3:-1] == ["**failed**: interrupted: timeout", ""]


def test_markdown_and_html_are_inserted_raw_and_followed_by_a_blank_line() -> None:
    assert region(data(text_markdown="**bold**\n"))[1:-1] == ["**bold**", ""]
    assert region(data(text_html="<table>\n<tr><td>1</td></tr>\n</table>"))[1:-1] == [
        "<table>",
        "<tr><td>1</td></tr>",
        "</table>",
        "",
    ]


def test_richest_form_wins_and_plain_text_is_a_fence() -> None:
    both = data(text_html="<b>x</b>", text_plain="x")
    assert region(both)[1:-1] == ["<b>x</b>", ""]
    assert region(data(text_plain="42"))[1:-1] == ["``` text", "42", "```"]


def test_images_are_written_by_the_caller_and_linked() -> None:
    png = b"\x89PNG fake bytes"
    written: list[tuple[str, bytes]] = []

    def write_image(mime: str, content: bytes) -> str:
        written.append((mime, content))
        return "figures/plot 1.png"

    output = data(image_png=base64.b64encode(png).decode(), text_plain="<Figure>")
    lines = render_region("plot", RegionBody(outputs=(output,)), write_image=write_image)
    assert written == [("image/png", png)]
    assert lines[1:-1] == ["![output of plot](<figures/plot 1.png>)", ""]
    svg = data(image_svg_xml="<svg/>")
    render_region("plot", RegionBody(outputs=(svg,)), write_image=write_image)
    assert written[-1] == ("image/svg+xml", b"<svg/>")


def test_without_an_image_writer_the_text_form_is_shown() -> None:
    output = data(image_png="AAAA", text_plain="<Figure>")
    assert region(output)[1:-1] == ["``` text", "<Figure>", "```"]


def test_ok_block_without_outputs_gets_no_region() -> None:
    assert render_region("b1", RegionBody()) == []
    assert region(stdout("")) == []


def test_not_run_block_shows_why_and_never_its_old_outputs() -> None:
    body = RegionBody(
        outputs=(stdout("stale\n"),),
        status="not-run",
        note="an earlier block of session `main` failed (block b3)",
    )
    lines = render_region("b4", body)
    assert lines[1] == "**not run**: an earlier block of session `main` failed (block b3)"
    assert "stale" not in "\n".join(lines)


def test_failed_block_with_a_note_says_how_it_failed() -> None:
    body = RegionBody(outputs=(stdout("started\n"),), status="failed", note="timed out after 5 s")
    assert render_region("b1", body)[1:-1] == [
        "``` text", "started", "```", "**failed**: timed out after 5 s", "",
    ]  # fmt: skip


def test_a_failure_note_is_text_whatever_the_error_value_holds() -> None:
    note = "ValueError: <b>x</b> *y* [z](w) `v` a_b &amp; \\"
    body = RegionBody(status="failed", note=note)
    assert render_region("b1", body)[1:-1] == [
        r"**failed**: ValueError: \<b\>x\</b\> \*y\* \[z\](w) \`v\` a\_b \&amp; \\", "",
    ]  # fmt: skip


def test_block_id_that_cannot_be_written_in_a_marker_is_refused() -> None:
    with pytest.raises(InternalError, match="block id"):
        render_region("a b", RegionBody(outputs=(stdout("x"),)))


@given(bodies())
def test_region_lines_are_single_lines_and_only_its_own_markers_start_with_the_marker_lead(
    body: RegionBody,
) -> None:
    lines = render_region("b1", body)
    assert not any(char in line for line in lines for char in "\r\n")
    assert [line for line in lines if line.startswith("<!-- mdrun:")] == lines[:1] + lines[-1:]


def test_carriage_return_in_an_error_value_cannot_break_the_region() -> None:
    error = ErrorOutput(
        output_type="error", ename="E", evalue="a\r<!-- mdrun:end -->", traceback=[]
    )
    lines = render_region("b1", RegionBody(outputs=(error,), status="failed"))
    assert lines[1:-1] == [" ``` error", " <!-- mdrun:end -->", " ```"]


# --- splicing --------------------------------------------------------------------------------


def test_region_goes_right_after_the_fence_with_the_container_prefix() -> None:
    text = "> Quote:\n> ```python\n> print(1)\n> ```\n> more\n"
    result = splice(parse_document(text), {0: region(stdout("1\n"))})
    assert result == (
        "> Quote:\n> ```python\n> print(1)\n> ```\n"
        "> <!-- mdrun:output id=b1 -->\n> ``` text\n> 1\n> ```\n> <!-- mdrun:end -->\n"
        "> more\n"
    )


def test_blank_region_lines_carry_no_trailing_blanks() -> None:
    text = "> ```python\n> x\n> ```\n"
    result = splice(parse_document(text), {0: region(data(text_html="<b>x</b>"))})
    assert "> <b>x</b>\n>\n> <!-- mdrun:end -->\n" in result


def test_splice_keeps_crlf_and_writes_regions_with_it() -> None:
    text = "Title\r\n\r\n```python\r\nprint(1)\r\n```\r\nafter  \r\n"
    result = splice(parse_document(text), {0: region(stdout("1\n"))})
    assert result == (
        "Title\r\n\r\n```python\r\nprint(1)\r\n```\r\n"
        "<!-- mdrun:output id=b1 -->\r\n``` text\r\n1\r\n```\r\n<!-- mdrun:end -->\r\n"
        "after  \r\n"
    )


def test_document_without_final_newline_keeps_none() -> None:
    text = "```python\nprint(1)\n```"
    first = splice(parse_document(text), {0: region(stdout("1\n"))})
    assert first == (
        "```python\nprint(1)\n```\n"
        "<!-- mdrun:output id=b1 -->\n``` text\n1\n```\n<!-- mdrun:end -->"
    )
    assert splice(parse_document(first), {0: region(stdout("1\n"))}) == first
    assert splice(parse_document(first), {0: region(stdout("2\n"))}).endswith(
        "2\n```\n<!-- mdrun:end -->"
    )
    assert splice(parse_document(first), {0: None}) == text


def test_replacing_and_removing_a_region_leaves_other_blocks_alone() -> None:
    text = "```python\na\n```\n\n```python\nb\n```\n"
    both = splice(
        parse_document(text), {0: region(stdout("A\n")), 1: region(stdout("B\n"), block_id="b2")}
    )
    only_second = splice(parse_document(both), {0: None})
    assert only_second == splice(parse_document(text), {1: region(stdout("B\n"), block_id="b2")})
    assert splice(parse_document(only_second), {}) == only_second


def test_empty_region_value_removes_like_none() -> None:
    text = "```python\na\n```\n"
    with_region = splice(parse_document(text), {0: region(stdout("A\n"))})
    assert splice(parse_document(with_region), {0: []}) == text


def test_unclosed_block_gets_no_region() -> None:
    text = "```python\nprint(1)\n"
    assert splice(parse_document(text), {0: region(stdout("1\n"))}) == text


def test_unknown_block_index_is_a_programming_error() -> None:
    with pytest.raises(InternalError, match="no block with index 3"):
        splice(parse_document("text\n"), {3: None})


# --- properties ------------------------------------------------------------------------------


@given(documents_without_fences())
def test_fidelity_without_blocks(text: str) -> None:
    document = parse_document(text)
    assert document.blocks == ()
    assert document.byte_order_mark + "".join(document.lines) == text
    assert splice(document, {}) == text


@st.composite
def documents_and_bodies(draw: st.DrawFn) -> tuple[DocumentSpec, dict[int, RegionBody]]:
    spec = draw(documents_with_blocks())
    chosen = draw(st.sets(st.integers(0, max(len(spec.blocks) - 1, 0))))
    return spec, {index: draw(bodies()) for index in chosen if index < len(spec.blocks)}


def rendered(found: dict[int, RegionBody]) -> dict[int, list[str] | None]:
    return {index: render_region(f"b{index + 1}", body) for index, body in found.items()}


RULE_AROUND_A_BLOCK = DocumentSpec(
    parts=("---", BlockSpec("```", "python", (), Container("", "")), "---"),
    newline="\n",
    final_newline=False,
)
"""Once mistaken for front matter, which hid the block."""


@given(documents_and_bodies())
@example((RULE_AROUND_A_BLOCK, {}))
def test_splice_preserves_text_outside_regions(
    case: tuple[DocumentSpec, dict[int, RegionBody]],
) -> None:
    spec, found = case
    text = spec.text()
    original = parse_document(text)
    assert [block.code for block in original.blocks] == [block.code for block in spec.blocks]
    assert [block.info for block in original.blocks] == [block.info for block in spec.blocks]

    regions = rendered(found)
    spliced = parse_document(splice(original, regions))

    assert [(block.info, block.code) for block in spliced.blocks] == [
        (block.info, block.code) for block in original.blocks
    ]
    for block in spliced.blocks:
        if regions.get(block.index):
            assert block.region is not None
            assert block.region.block_id == f"b{block.index + 1}"
        else:
            assert block.region is None
    assert spliced.warnings == original.warnings
    removed = splice(spliced, dict.fromkeys(range(len(spliced.blocks))))
    assert removed == text


@given(documents_and_bodies())
def test_splice_is_idempotent(case: tuple[DocumentSpec, dict[int, RegionBody]]) -> None:
    spec, found = case
    regions = rendered(found)
    once = splice(parse_document(spec.text()), regions)
    assert splice(parse_document(once), regions) == once


@given(documents_and_bodies(), st.data())
def test_rerender_equals_fresh_render(
    case: tuple[DocumentSpec, dict[int, RegionBody]], more: st.DataObject
) -> None:
    spec, found = case
    newer = {index: more.draw(bodies()) for index in found}
    fresh = splice(parse_document(spec.text()), rendered(newer))
    old = splice(parse_document(spec.text()), rendered(found))
    assert splice(parse_document(old), rendered(newer)) == fresh


@given(documents_and_bodies())
def test_byte_order_mark_is_kept_and_changes_nothing_else(
    case: tuple[DocumentSpec, dict[int, RegionBody]],
) -> None:
    spec, found = case
    text = spec.text()
    without, with_mark = parse_document(text), parse_document("\ufeff" + text)
    assert with_mark.blocks == without.blocks
    assert with_mark.warnings == without.warnings
    regions = rendered(found)
    spliced = splice(with_mark, regions)
    assert spliced == "\ufeff" + splice(without, regions)
    assert splice(parse_document(spliced), dict.fromkeys(regions)) == "\ufeff" + text


@given(documents_with_blocks().filter(lambda spec: bool(spec.blocks)), bodies())
def test_round_trip_with_crlf(spec: DocumentSpec, body: RegionBody) -> None:
    text = spec.text().replace("\r\n", "\n").replace("\n", "\r\n")
    document = parse_document(text)
    regions = {block.index: render_region(f"b{block.index + 1}", body) for block in document.blocks}
    spliced = splice(document, regions)
    assert "\n" not in spliced.replace("\r\n", "")
    assert splice(parse_document(spliced), dict.fromkeys(regions)) == text
