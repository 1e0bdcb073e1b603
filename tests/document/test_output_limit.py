"""The cap on a block's output: kept up to its limit, the rest dropped with a note, memory
bounded in the kernel and in mdrun, a block printing without end interrupted, the limit part
of the block's key."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from mdrun.document.kernel import KernelSession
from mdrun.document.kernel_output_limit import REPORT_MIME, RUNAWAY_FACTOR
from mdrun.document.kernel_outputs import OutputCollector
from mdrun.document.kernels import resolve_kernel
from mdrun.document.output_limit import (
    DEFAULT_MAX_OUTPUT,
    dropped_characters,
    format_size,
    parse_size,
)
from tests.document.conftest import Mdrun, no_kernel_starts


def message(kind: str, **content: object) -> dict[str, object]:
    return {"msg_type": kind, "content": content}


def stream(text: str, name: str = "stdout") -> dict[str, object]:
    return message("stream", name=name, text=text)


# -- sizes ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("1000", 1000),
        ("10MB", 10_000_000),
        ("500kB", 500_000),
        ("500KB", 500_000),
        ("2MiB", 2 * 1024 * 1024),
        ("1.5GB", 1_500_000_000),
        ("64b", 64),
    ],
)
def test_sizes_are_read_in_the_units_authors_write(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "lots", "10 parsecs", "-1MB", "0", "0.1"])
def test_a_bad_size_says_what_is_expected(text: str) -> None:
    with pytest.raises(ValueError, match="size"):
        parse_size(text)


def test_a_size_is_shown_as_an_author_would_write_it() -> None:
    assert format_size(DEFAULT_MAX_OUTPUT) == "10MB"
    assert format_size(1_500) == "1.5kB"
    assert format_size(1234) == "1234"


# -- the collector (mdrun's side, any kernel) -------------------------------------------------


def test_text_past_the_limit_is_dropped_and_a_note_says_how_much() -> None:
    collector = OutputCollector(max_output=10)
    collector.add(stream("12345"))
    collector.add(stream("67890abc"))
    collector.add(stream("more", "stderr"))
    outputs = collector.finish()
    assert outputs[0] == {"output_type": "stream", "name": "stdout", "text": "1234567890"}
    assert len(outputs) == 2, "the stderr text came after the limit"
    assert dropped_characters(outputs) == 7
    note = outputs[1]
    assert note["output_type"] == "display_data"
    assert note["data"] == {
        "text/plain": "output truncated: 7 more characters were dropped "
        "(the block's limit is max_output=10)",
        "text/markdown": "**output truncated**: 7 more characters were dropped "
        "(the block's limit is max_output=10)",
    }


def test_output_within_the_limit_has_no_note() -> None:
    collector = OutputCollector(max_output=10)
    collector.add(stream("0123456789"))
    assert collector.finish() == (
        {"output_type": "stream", "name": "stdout", "text": "0123456789"},
    )
    assert dropped_characters(collector.finish()) == 0


def test_a_rich_output_past_the_limit_is_dropped_whole_and_errors_are_always_kept() -> None:
    collector = OutputCollector(max_output=10)
    collector.add(message("display_data", data={"image/png": "A" * 8}, metadata={}))
    collector.add(message("display_data", data={"image/png": "B" * 8}, metadata={}))
    collector.add(message("error", ename="ValueError", evalue="bad", traceback=["bad"]))
    kinds = [output["output_type"] for output in collector.finish()]
    assert kinds == ["display_data", "error", "display_data"]
    assert dropped_characters(collector.finish()) == 8


def test_clearing_the_output_starts_the_count_again() -> None:
    collector = OutputCollector(max_output=10)
    for step in range(100):
        collector.add(message("clear_output", wait=True))
        collector.add(stream(f"step {step:04}\n"))
    assert collector.finish() == (
        {"output_type": "stream", "name": "stdout", "text": "step 0099\n"},
    )


def test_what_the_kernel_dropped_is_counted_and_its_runaway_report_stops_the_wait() -> None:
    collector = OutputCollector(max_output=1000)
    collector.add(stream("x" * 1000))
    report = {REPORT_MIME: {"dropped": 5000, "runaway": False}}
    collector.add(message("display_data", data=report, metadata={}))
    assert not collector.is_runaway()
    assert dropped_characters(collector.finish()) == 5000
    assert len(collector.finish()) == 2, "the kernel's report is not an output"
    report = {REPORT_MIME: {"dropped": 20_000, "runaway": True}}
    collector.add(message("display_data", data=report, metadata={}))
    assert collector.is_runaway()


def test_a_kernel_that_keeps_sending_is_a_runaway_once_ten_times_the_limit_is_dropped() -> None:
    collector = OutputCollector(max_output=100)
    collector.add(stream("x" * 100))
    for _ in range(RUNAWAY_FACTOR):
        collector.add(stream("y" * 100))
        assert not collector.is_runaway()
    collector.add(stream("z"))
    assert collector.is_runaway()


def test_a_long_stream_is_joined_once() -> None:
    collector = OutputCollector()
    for number in range(10_000):
        collector.add(stream(f"{number}\n"))
    (output,) = collector.finish()
    assert output["text"] == "".join(f"{number}\n" for number in range(10_000))


def test_a_silent_replay_gets_no_note() -> None:
    collector = OutputCollector(errors_only=True, max_output=10)
    collector.add(stream("x" * 100))
    assert collector.finish() == ()


# -- a Python kernel --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KernelSession]:
    with KernelSession(resolve_kernel("python", None), tmp_path_factory.mktemp("doc")) as shared:
        yield shared


@pytest.mark.kernel
def test_the_kernel_keeps_no_more_than_the_limit(session: KernelSession) -> None:
    result = session.execute(
        "import sys\nfor _ in range(1000):\n    print('x' * 999)\n_ = sys.stderr.write('tail')",
        block_id="big",
        max_output=200_000,
    )
    assert result.status == "ok"
    kept = ("x" * 999 + "\n") * 200
    assert result.outputs[0] == {"output_type": "stream", "name": "stdout", "text": kept}
    assert dropped_characters(result.outputs) == 1000 * 1000 + 4 - 200_000
    # IPython keeps every cell's output in its history: only what was kept reached it.
    history = session.execute(
        "outputs = get_ipython().history_manager.outputs\n"
        "print(sum(len(part) for output in outputs[max(outputs)]"
        " for part in output.bundle.get('stream', [])))",
        block_id="history",
    )
    assert history.outputs[0]["text"] == "200000\n"


@pytest.mark.kernel
def test_a_block_printing_without_end_is_interrupted(session: KernelSession) -> None:
    session.execute("kept = 41", block_id="before")
    result = session.execute(
        "while True:\n    print('spam')", block_id="spam", max_output=10_000, timeout=120
    )
    assert result.status == "runaway"
    error = result.error
    assert error is not None and error["ename"] == "OutputLimit"
    assert "block spam was interrupted as its output went on far past its limit" in str(
        error["evalue"]
    )
    assert str(result.outputs[0]["text"]).startswith("spam\nspam\n")
    assert dropped_characters(result.outputs) > RUNAWAY_FACTOR * 10_000
    assert session.alive, "an interrupt was enough: the kernel keeps its state"
    after = session.execute("print(kept + 1)", block_id="after", max_output=10_000)
    assert after.outputs == ({"output_type": "stream", "name": "stdout", "text": "42\n"},)


@pytest.mark.kernel
def test_output_of_a_child_process_is_capped_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ipykernel leaves a child's output alone (pytest captures it) when it sees pytest.
    monkeypatch.delenv("PYTEST_CURRENT_TEST")
    code = (
        "import subprocess, time\n"
        "_ = subprocess.run(['sh', '-c', 'head -c 100000 /dev/zero | tr \"\\\\0\" x'])\n"
        "time.sleep(0.5)  # ipykernel reads a child's output in a thread of its own"
    )
    with KernelSession(resolve_kernel("python", None), tmp_path) as session:
        result = session.execute(code, block_id="child", max_output=10_000)
    assert result.status == "ok"
    assert result.outputs[0]["text"] == "x" * 10_000
    assert dropped_characters(result.outputs) == 90_000


# -- documents ----------------------------------------------------------------------------------

PRINTS = """\
---
mdrun.max_output: 2kB
---

```python
print("a" * 3000)
```

```python max_output=1kB
print("b" * 3000)
```

```python max_output=5kB
print("c" * 3000)
```
"""


@pytest.mark.kernel
def test_a_document_shows_truncated_outputs_and_caches_them(mdrun: Mdrun) -> None:
    mdrun.write("doc.md", PRINTS)
    completed, report = mdrun.run_reported("run", "doc.md")
    assert completed.code == 0, completed.err
    assert "2 with output truncated (max_output)" in completed.err
    assert [record["dropped"] for record in report.records] == [1001, 2001, 0]
    assert [record["truncated"] for record in report.records] == [True, True, False]
    text = mdrun.read("doc.md")
    assert "a" * 2000 + "\n```" in text
    assert "b" * 1000 + "\n```" in text
    assert "c" * 3000 + "\n```" in text
    assert (
        "**output truncated**: 1,001 more characters were dropped (the block's limit is "
        "max_output=2kB)" in text
    )
    assert "**output truncated**: 2,001 more characters" in text

    # Cached: the note comes back from the store, and the report still says truncated.
    with no_kernel_starts():
        completed, report = mdrun.run_reported("run", "doc.md")
    assert completed.code == 0
    assert report.with_status("cached") == ["b1", "b2", "b3"]
    assert mdrun.read("doc.md") == text

    # The limit is part of the key: raising it runs the block again, whole (the block after
    # it reads nothing it changed, and stays cached).
    mdrun.write("doc.md", text.replace("max_output=1kB", "max_output=4kB", 1))
    completed, report = mdrun.run_reported("run", "doc.md")
    assert report.with_status("executed") == ["b2"]
    assert "b" * 3000 + "\n```" in mdrun.read("doc.md")


@pytest.mark.kernel
@pytest.mark.slow
def test_a_100_mb_print_is_cut_to_the_default_limit(mdrun: Mdrun) -> None:
    mdrun.write("doc.md", '```python\nprint("x" * 100_000_000)\n```\n')
    completed, report = mdrun.run_reported("run", "doc.md")
    assert completed.code == 0, completed.err
    assert report.records[0]["dropped"] == 100_000_001 - DEFAULT_MAX_OUTPUT
    size = mdrun.path("doc.md").stat().st_size
    assert DEFAULT_MAX_OUTPUT < size < DEFAULT_MAX_OUTPUT + 1000


@pytest.mark.kernel
@pytest.mark.slow
def test_a_document_block_printing_without_end_fails_under_the_default_limit(
    mdrun: Mdrun,
) -> None:
    mdrun.write(
        "doc.md", '```python\nwhile True:\n    print("x" * 1000)\n```\n\n```python\n1\n```\n'
    )
    completed, report = mdrun.run_reported("run", "doc.md")
    assert completed.code == 1
    assert report.statuses == {"b1": "failed", "b2": "not-run"}
    assert report.records[0]["note"] == (
        "interrupted: its output went on far past its limit (raise max_output)"
    )
    text = mdrun.read("doc.md")
    assert "OutputLimit: block b1 was interrupted" in text
    assert "**output truncated**" in text
    assert mdrun.path("doc.md").stat().st_size < DEFAULT_MAX_OUTPUT + 2000


def test_a_limit_other_than_the_default_is_in_the_block_config(mdrun: Mdrun) -> None:
    from mdrun.document.pipeline import make_plan

    mdrun.write("doc.md", "```python\n1\n```\n\n```python max_output=1MB\n2\n```\n")
    plan = make_plan(str(mdrun.path("doc.md")))
    configs = [planned.base_config or {} for planned in plan.blocks]
    assert "max_output" not in configs[0], "keys made before the limit existed still hold"
    assert configs[1]["max_output"] == 1_000_000
    assert json.dumps(configs[1])
