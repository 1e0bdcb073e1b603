"""What a parallel run shows on a terminal: documents done, and the block each worker runs.

Part of the command line's layer; `many_documents` makes one when stderr is a terminal.
"""

from __future__ import annotations

import threading
from typing import Any, TextIO

from mdrun.document.parallel import DocumentDone, Progress
from mdrun.document.units import Unit


class BatchProgress(Progress):
    """Documents done and the blocks running, drawn with rich on a terminal.

    rich's live display redirects `sys.stderr` while it runs, so the lines the command prints
    about each finished document appear above it."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.documents = 0
        self.finished = 0
        self.waiting: dict[str, str] = {}
        """Each unit in flight (its label), and its block running now ("" before the first)."""
        self.lock = threading.Lock()
        self._progress: Any = None
        self._task: Any = None

    def started(self, documents: int, units: int) -> None:
        del units
        self.documents = documents
        self._draw()

    def unit_submitted(self, unit: Unit) -> None:
        self.waiting[unit.label] = ""
        self._draw()

    def unit_finished(self, unit: Unit) -> None:
        self.waiting.pop(unit.label, None)
        self._draw()

    def document_finished(self, done: DocumentDone) -> None:
        del done
        self.finished += 1
        self._draw()

    def block_event(self, label: str, kind: str, block_id: str) -> None:
        """A worker started or finished a block."""
        if label in self.waiting:
            self.waiting[label] = block_id if kind == "started" else ""
        self._draw()

    def description(self) -> str:
        """`3/10 documents; running a.md (main): b4, b.md (other): other-2; 5 waiting`."""
        running = [f"{label}: {block}" for label, block in self.waiting.items() if block]
        text = f"{self.finished}/{self.documents} documents"
        if running:
            text += f"; running {', '.join(running[:4])}" + (" …" if len(running) > 4 else "")
        queued = len(self.waiting) - len(running)
        return text + (f"; {queued} waiting" if queued else "")

    def _draw(self) -> None:
        from rich.console import Console
        from rich.progress import Progress as RichProgress

        with self.lock:
            if self._progress is None:
                console = Console(file=self.stream, force_terminal=True)
                self._progress = RichProgress(console=console, transient=True)
                self._progress.start()
                self._task = self._progress.add_task("documents", total=self.documents)
            self._progress.update(self._task, completed=self.finished,
                                  description=self.description())  # fmt: skip

    def close(self) -> None:
        """Remove the progress display."""
        with self.lock:
            if self._progress is not None:
                self._progress.stop()
            self._progress = None
