"""Kernel messages into stored outputs, without a kernel: recorded ipykernel messages
(`kernel_messages.json`, one list per block, as the collector receives them) and hand-made ones
for what ipykernel never sends."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mdrun.document.kernel_output_limit import REPORT_MIME
from mdrun.document.kernel_outputs import (
    PROTOCOL_ERROR,
    OutputCollector,
    output_from_message,
    stream_output,
)
from mdrun.document.output_limit import dropped_characters

RECORDED = json.loads((Path(__file__).parent / "kernel_messages.json").read_text())
"""Recorded from ipykernel: the iopub messages of one execute request per block (code below)."""


def collected(
    messages: list[dict[str, object]], *, errors_only: bool = False, max_output: int | None = None
) -> OutputCollector:
    collector = OutputCollector(errors_only=errors_only, max_output=max_output)
    for message in messages:
        collector.add(message)
    return collector


def message(kind: str, **content: object) -> dict[str, object]:
    return {"msg_type": kind, "content": content}


def stream(text: str, name: str = "stdout") -> dict[str, object]:
    return message("stream", name=name, text=text)


# -- recorded blocks ------------------------------------------------------------------------------


def test_streams_stay_apart_and_results_lose_their_execution_count() -> None:
    """`print('one')`, `print('two', file=sys.stderr)`, `print('three')`, a coloured write, `13`."""
    assert collected(RECORDED["streams"]).finish() == (
        {"output_type": "stream", "name": "stdout", "text": "one\nthree\n\x1b[31mred\x1b[0m\n"},
        {"output_type": "stream", "name": "stderr", "text": "two\n"},
        {"output_type": "execute_result", "data": {"text/plain": "13"}, "metadata": {}},
    )


def test_rich_outputs_keep_every_mime_type_and_json_stays_json() -> None:
    """HTML, Markdown and JSON displays, then a dict as the block's result."""
    outputs = collected(RECORDED["rich"]).finish()
    assert [output["output_type"] for output in outputs] == ["display_data"] * 3 + [
        "execute_result"
    ]
    assert outputs[0]["data"] == {
        "text/html": "<b>bold</b>",
        "text/plain": "<IPython.core.display.HTML object>",
    }
    json_data = outputs[2]["data"]
    assert isinstance(json_data, dict)
    assert json_data["application/json"] == {"a": [1, 2]}
    assert outputs[2]["metadata"] == {"application/json": {"expanded": False, "root": "root"}}


def test_an_updated_display_shows_its_last_value_where_it_was_first_shown() -> None:
    """`display('first', display_id=True)`, `print('between')`, then `handle.update('second')`."""
    assert collected(RECORDED["update"]).finish() == (
        {"output_type": "display_data", "data": {"text/plain": "'second'"}, "metadata": {}},
        {"output_type": "stream", "name": "stdout", "text": "between\n"},
    )


def test_clear_output_clears_at_once_or_when_the_next_output_comes() -> None:
    """`print('gone')`, `clear_output(wait=True)`, `print('kept')`, `clear_output()`,
    `print('last')`."""
    assert collected(RECORDED["clear"]).finish() == (
        {"output_type": "stream", "name": "stdout", "text": "last\n"},
    )
    waiting = RECORDED["clear"][:4]  # up to clear_output(wait=True): nothing came after it
    assert collected(waiting).finish() == (
        {"output_type": "stream", "name": "stdout", "text": "gone\n"},
    )


def test_an_error_keeps_its_frames_without_colours() -> None:
    """`def helper(): return 1 / 0` called on line 4."""
    (error,) = collected(RECORDED["error"]).finish()
    assert (error["ename"], error["evalue"]) == ("ZeroDivisionError", "division by zero")
    traceback = error["traceback"]
    assert isinstance(traceback, list)
    assert not any("\x1b" in str(line) for line in traceback)
    assert "Block error, line 4" in traceback
    assert traceback[-1] == "ZeroDivisionError: division by zero"


def test_a_silent_replay_keeps_only_errors() -> None:
    for name, messages in RECORDED.items():
        kinds = [output["output_type"] for output in collected(messages, errors_only=True).finish()]
        assert kinds == (["error"] if name == "error" else []), name


# -- stream pieces, the limit ---------------------------------------------------------------------


def test_stream_pieces_are_joined_until_another_output_comes_between() -> None:
    messages = [
        stream("a"),
        stream("b"),
        stream("c", "stderr"),
        stream("d"),
        message("display_data", data={"text/plain": "x"}, metadata={}),
        stream("e"),
        stream("f"),
    ]
    texts = [output.get("text") for output in collected(messages).finish()]
    assert texts == ["ab", "c", "d", None, "ef"]


def test_the_limit_counts_across_joined_pieces_and_a_cleared_output_starts_it_again() -> None:
    recorded_stream = RECORDED["streams"][2]  # 'one\nthree\n' and a coloured 'red'
    collector = collected([recorded_stream, recorded_stream], max_output=30)
    (kept, note) = collector.finish()
    assert kept["text"] == "one\nthree\n\x1b[31mred\x1b[0m\none\nthr"
    assert dropped_characters((note,)) == 2 * 23 - 30
    collector.add(message("clear_output", wait=False))
    collector.add(stream("fresh"))
    assert collector.finish() == ({"output_type": "stream", "name": "stdout", "text": "fresh"},)


@given(
    name=st.text(max_size=8),
    pieces=st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=4),
)
def test_a_stream_built_without_nbformat_is_the_output_nbformat_builds(
    name: str, pieces: list[str]
) -> None:
    # Stored outputs are hashed into result keys: the fast path must not change one byte.
    expected = output_from_message("stream", {"name": name, "text": "".join(pieces)})
    assert stream_output(name, "".join(pieces)) == expected
    (joined,) = collected([stream(piece, name) for piece in pieces]).finish()
    assert json.dumps(joined, sort_keys=True) == json.dumps(expected, sort_keys=True)


def test_the_kernels_own_count_is_not_an_output_even_in_a_silent_replay() -> None:
    report = message(
        "display_data", data={REPORT_MIME: {"dropped": 7, "runaway": True}}, metadata={}
    )
    collector = collected([stream("abc"), report], errors_only=True, max_output=3)
    assert collector.finish() == ()
    assert collector.is_runaway()


# -- what ipykernel never sends -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        (message("display_data", data={"text/plain": 3}, metadata={}), "not valid"),
        (message("stream", text="no name"), "has no 'name'"),
        (message("error", ename="E", evalue="v"), "has no 'traceback'"),
        (message("update_display_data", data=[], metadata={}), "is not of type"),
    ],
)
def test_a_malformed_output_message_becomes_an_error_naming_it(
    bad: dict[str, object], why: str
) -> None:
    collector = collected([stream("before\n"), bad])
    before, error = collector.finish()
    assert before == {"output_type": "stream", "name": "stdout", "text": "before\n"}
    assert error["ename"] == PROTOCOL_ERROR
    assert f"the kernel sent a malformed {bad['msg_type']} message" in str(error["evalue"])
    assert why in str(error["evalue"])
    assert collector.malformed


def test_a_display_without_metadata_reads_as_empty_metadata() -> None:
    collector = collected([message("display_data", data={"text/plain": "x"})])
    assert collector.finish() == (
        {"output_type": "display_data", "data": {"text/plain": "x"}, "metadata": {}},
    )
    assert not collector.malformed


def test_a_traceback_loses_its_colours_but_keeps_its_blank_lines() -> None:
    frames = ["\x1b[31mHeader\x1b[0m", "frame line\n", "Error: bad"]
    collector = collected([message("error", ename="Error", evalue="bad", traceback=frames)])
    assert collector.outputs[0]["traceback"] == ["Header", "frame line", "", "Error: bad"]


def test_a_result_loses_its_execution_count_and_transient_fields() -> None:
    result = message(
        "execute_result",
        data={"text/plain": "1"},
        metadata={},
        execution_count=7,
        transient={"display_id": "x"},
    )
    assert collected([result]).outputs == [
        {"output_type": "execute_result", "data": {"text/plain": "1"}, "metadata": {}}
    ]


def test_a_stream_sent_as_a_list_of_lines_is_one_text() -> None:
    """nbformat allows text as a list of lines; it is shown as the text, not as a list."""
    collector = collected([stream("a\n"), message("stream", name="stdout", text=["b\n", "c\n"])])
    assert collector.finish() == ({"output_type": "stream", "name": "stdout", "text": "a\nb\nc\n"},)


def test_the_error_for_a_large_malformed_output_stays_short() -> None:
    collector = collected([message("display_data", data={"text/plain": [1] * 1000}, metadata={})])
    (error,) = collector.finish()
    assert len(str(error["evalue"])) < 300
