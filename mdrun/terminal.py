"""What the command line shows while and after a document runs: progress and summaries.

Belongs to the command line's layer (the evaluator below it prints nothing itself): `cli` passes
a `TerminalReporter` down, and formats summaries and reports with these functions.
"""

from __future__ import annotations

import sys
from typing import TextIO

from mdrun.core.jsonvalue import JSONObject
from mdrun.document.evaluate import BlockOutcome, Evaluation, Reporter
from mdrun.document.pipeline import RunResult
from mdrun.document.plan import PlannedBlock
from mdrun.errors import MdrunError


class TerminalReporter(Reporter):
    """Draws progress on a terminal with rich (imported only when something runs)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.total = 0
        self.done = 0
        self._progress: object | None = None
        self._task: object | None = None

    def planned(self, total_to_check: int) -> None:
        self.total = total_to_check

    def _ensure_progress(self) -> None:
        if self._progress is None:
            from rich.console import Console
            from rich.progress import Progress

            # Only made when stderr is a terminal (see cli), so drawing may be forced. In the
            # mdrun server, the stream knows the size of the client's terminal.
            size = getattr(self.stream, "terminal_size", None)
            width, height = size if size is not None else (None, None)
            console = Console(file=self.stream, force_terminal=True, width=width, height=height)
            progress = Progress(console=console, transient=True)
            progress.start()
            self._task = progress.add_task("mdrun", total=self.total, completed=self.done)
            self._progress = progress

    def block_started(self, planned: PlannedBlock) -> None:
        self._ensure_progress()
        self._update(f"running {planned.block_id} (line {planned.line})")

    def block_replayed(self, block_id: str) -> None:
        self._ensure_progress()
        self._update(f"restoring state: {block_id}")

    def block_finished(self, outcome: BlockOutcome) -> None:
        self.done += 1
        if self._progress is not None:
            self._update(f"{outcome.planned.block_id}: {outcome.status}")

    def _update(self, description: str) -> None:
        from rich.progress import Progress, TaskID

        progress = self._progress
        if isinstance(progress, Progress) and self._task is not None:
            task = TaskID(int(str(self._task)))
            progress.update(task, completed=self.done, description=description)

    def close(self) -> None:
        """Remove the progress display."""
        from rich.progress import Progress

        if isinstance(self._progress, Progress):
            self._progress.stop()
        self._progress = None


def summary_line(evaluation: Evaluation, name: str = "") -> str:
    """The one line every run prints on stderr (`name`: `doc.md: ` when there are several)."""
    executable = [o for o in evaluation.outcomes if o.status != "skipped"]
    parts = [
        f"{len(executable)} blocks",
        f"{evaluation.count('executed')} executed",
        f"{evaluation.count('cached')} cached",
        f"{evaluation.count('failed')} failed",
    ]
    not_run = evaluation.count("not-run")
    if not_run:
        parts.append(f"{not_run} not run")
    cutoff = sum(1 for outcome in evaluation.outcomes if outcome.cutoff)
    if cutoff:
        parts.append(f"{cutoff} kept by early cutoff")
    truncated = sum(1 for outcome in evaluation.outcomes if outcome.dropped)
    if truncated:
        parts.append(f"{truncated} with output truncated (max_output)")
    if evaluation.snapshots_restored:
        parts.append(f"{evaluation.snapshots_restored} state restored from snapshots")
    return f"mdrun: {name}{', '.join(parts)} in {evaluation.seconds:.2f} s"


def report_records(result: RunResult) -> list[JSONObject]:
    """The `--report` records: one per executable block."""
    return [o.record() for o in result.evaluation.outcomes if o.status != "skipped"]


class WatchPrinter:
    """What `mdrun watch` says on stderr: the preview's address, one summary line per run."""

    def __init__(self, source: str) -> None:
        self.source = source

    def serving(self, url: str) -> None:
        print(f"mdrun: serving {self.source} at {url}", file=sys.stderr, flush=True)

    def run_started(self) -> None:
        pass

    def run_finished(self, result: RunResult, written: bool) -> None:
        for warning in result.evaluation.plan.warnings:
            print(f"mdrun: warning: {warning}", file=sys.stderr)
        print(summary_line(result.evaluation), file=sys.stderr, flush=True)
        if not written:
            print(f"mdrun: {self.source} changed during the run; running it again",
                  file=sys.stderr, flush=True)  # fmt: skip

    def run_failed(self, error: MdrunError) -> None:
        print(f"mdrun: error: {error}", file=sys.stderr, flush=True)
