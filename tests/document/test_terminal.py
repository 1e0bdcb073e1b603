"""The progress display a run draws on a terminal."""

from __future__ import annotations

import io
import time
from pathlib import Path

from mdrun.document.evaluate import BlockOutcome
from mdrun.document.parse import parse_document
from mdrun.document.plan import plan_document
from mdrun.terminal import TerminalReporter


def test_progress_names_the_running_block_and_is_removed_at_the_end() -> None:
    plan = plan_document(parse_document("```python\nprint(1)\n```\n"), Path())
    (planned,) = plan.blocks
    stream = io.StringIO()
    reporter = TerminalReporter(stream)
    reporter.planned(1)
    reporter.block_started(planned)
    time.sleep(0.2)  # the display refreshes in the background
    reporter.block_finished(BlockOutcome(planned, "executed"))
    reporter.close()
    drawn = stream.getvalue()
    assert "running b1 (line 1)" in drawn
    assert "\x1b[" in drawn  # drawn for a terminal, then erased (transient)
