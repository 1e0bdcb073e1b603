"""The edit benchmark's own logic (tests/bench is not collected): what it counts and how it
judges issue 10's aims must be right, or the benchmark reports a wrong verdict."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tests.bench.corpus import ARRAY_BYTES, edit_corpus
from tests.bench.edit import written_text
from tests.bench.edit_loop import EditCase
from tests.bench.edit_report import EditResults, aims_table, before_rows, render_markdown
from tests.bench.edit_variants import store_size
from tests.bench.edit_watch import block_codes, rerun_blocks, timed_blocks


def test_store_size_counts_a_hard_linked_file_once(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "big").write_bytes(b"x" * 1000)
    os.link(tmp_path / "a" / "big", tmp_path / "b" / "big")
    (tmp_path / "b" / "small").write_bytes(b"y" * 10)
    size = store_size(tmp_path)
    assert (size.bytes, size.files, size.largest) == (1010, 2, (1000, 10))


def test_edit_corpus_has_the_issue_documents() -> None:
    documents = {document.name: document for document in edit_corpus()}
    assert documents["thousand"].size == 1000
    array = documents["array"]
    assert array.size == 6
    assert f"random({ARRAY_BYTES // 8})" in array.blocks["original"][0]
    assert array.blocks["last"][:5] == array.blocks["original"][:5]
    assert array.blocks["last"][5] != array.blocks["original"][5]


def test_rerun_stops_where_a_block_leaves_the_same_output_and_state() -> None:
    # Block 1's edit adds a print only: block 2 runs again (its upstream's output changed) but
    # leaves what it left before, so block 3 is kept by early cutoff.
    case = EditCase("tiny, middle", 4, "x{index} = {index}", 1)
    before = [result for _, result in timed_blocks(block_codes(case, 0))]
    after = [result for _, result in timed_blocks(block_codes(case, 1))]
    assert list(rerun_blocks(before, after, 1)) == [1, 2]
    assert list(rerun_blocks(before, after, 3)) == [3]


def test_rerun_goes_to_the_end_when_the_edit_flows_downstream() -> None:
    assert list(rerun_blocks(["a", "b", "c", "d"], ["a", "B", "C", "D"], 1)) == [1, 2, 3]


def _record(tool: str, document: str, scenario: str, seconds: float, **more: Any) -> Any:
    return {"tool": tool, "document": document, "scenario": scenario, "repeat": 0,
            "seconds": seconds, "command_seconds": [seconds], "ok": True, "detail": "",
            **more}  # fmt: skip


def _data(records: list[Any], watch: list[Any]) -> Any:
    return {
        "command": "test", "quick": True, "seconds": 60.0,
        "machine": {"cpu_count": 2, "cpu_model": "cpu", "python": "3", "mdrun_commit": "abc",
                    "date": "now", "load_average_before": [1.0], "load_average_after": [1.0]},
        "documents": {"small": {"blocks": 10, "description": "10 trivial blocks",
                                "edits": ["last"]},
                      "array": {"blocks": 6, "description": "array", "edits": ["last"]}},
        "contenders": {"mdrun run": "run", "mdrun before": "before", "codebraid": "codebraid",
                       "markdown-exec": "markdown-exec", "nbclient": "nbclient"},
        "skipped": {"mdrun run+server": "no server here"},
        "peer_problems": {"quarto": "cannot be installed"},
        "before": {"small cold": 1.0},
        "records": records, "watch": watch,
    }  # fmt: skip


def _verdicts(markdown: str, aim: str) -> list[str]:
    return [line.rsplit("|", 2)[-2].strip() for line in markdown.splitlines() if aim in line]


def test_aims_are_judged_from_the_medians() -> None:
    records = [
        _record("mdrun run", "small", "cold", 1.0),
        _record("mdrun before", "small", "cold", 0.8),
        _record("mdrun run", "small", "last", 0.5),
        _record("mdrun before", "small", "last", 0.5),
        _record("mdrun run", "array", "cold", 2.0),
        _record("mdrun run", "array", "last", 0.5, store_bytes=int(ARRAY_BYTES * 1.02)),
        *[_record(peer, "array", scenario, 1.0)
          for peer in ("codebraid", "markdown-exec", "nbclient") for scenario in ("cold", "last")],
    ]  # fmt: skip
    watch = [{"tool": "mdrun watch", "document": "small", "scenario": "last", "ok": True,
              "detail": "", "seconds": [0.1, 0.12, 0.5]}]  # fmt: skip
    results = EditResults(_data(records, watch))
    table = aims_table(results)
    assert _verdicts(table, "small, last block edited ≤ 0.15 s") == ["met"]  # median 0.12
    assert _verdicts(table, "500 MB array, cold ≤ 1.3") == ["**not met**", "not measured"]
    assert _verdicts(table, "last block edited faster than every peer") == ["met", "not measured"]
    assert _verdicts(table, "holds each unchanged variable once") == ["met", "not measured"]
    assert "no server here" in table
    rows, met = before_rows(results)
    assert met is False  # 1.0 s against 0.8 s before, in the same run: 1.25x
    assert [row[4] for row in rows] == ["1.25\u00d7", "1.00\u00d7"]
    assert "| 1 of 2 within |" in table  # the cold run is not, the edit is


def test_a_failed_run_is_reported_not_measured() -> None:
    failed = _record("mdrun run", "small", "last", 0.0)
    failed.update(ok=False, detail="'block 9: 1009' missing from doc.md")
    markdown = render_markdown(_data([_record("mdrun run", "small", "cold", 1.0), failed], []))
    assert "'block 9: 1009' missing from doc.md" in markdown
    assert "| failed |" in markdown


def test_a_notebooks_line_printed_in_two_stream_messages_is_found(tmp_path: Path) -> None:
    """nbclient keeps each stream message an output of its own: `print('block 500:', v)` may
    arrive as 'block 500:' then ' 1500'. The check must not call that run failed."""
    split = [
        {"output_type": "stream", "name": "stdout", "text": ["block 500:"]},
        {"output_type": "stream", "name": "stdout", "text": [" 1500\n"]},
    ]
    cells = [{"cell_type": "code", "outputs": split}, {"cell_type": "markdown"}]
    notebook = tmp_path / "doc.ipynb"
    notebook.write_text(json.dumps({"cells": cells}))
    assert "block 500: 1500" in written_text(notebook)
    assert "block 500:\n" not in written_text(notebook)
