"""The preview's exports off the watcher's path: each run's HTML is made by pandoc in a thread of
its own, so that neither the document's rewrite nor the next run waits for it.

This module owns that thread and the order of publications (a newer run's page replaces one not
yet exported; an error is shown after the page of the run before it). What the page is, is
`export_pandoc`'s; serving it is `serve`'s.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from mdrun.document.outcome import Evaluation
from mdrun.document.serve import Preview
from mdrun.errors import MdrunError


@dataclass(frozen=True, slots=True)
class _Publication:
    evaluation: Evaluation | None
    """A run to export, or None for an error."""
    error: str = ""
    """Why the latest run produced no page."""


class PreviewPublisher:
    """Exports runs and publishes them to a `Preview`, in order, in one background thread."""

    def __init__(self, preview: Preview, on_failure: Callable[[MdrunError], None]) -> None:
        self.preview = preview
        self._on_failure = on_failure
        self._condition = threading.Condition()
        self._pending: list[_Publication] = []
        self._busy = False
        self._closed = False
        self._thread = threading.Thread(target=self._work, name="mdrun-preview", daemon=True)
        self._thread.start()

    def publish(self, evaluation: Evaluation) -> None:
        """Export a run's document and show it (what is still waiting is superseded)."""
        with self._condition:
            self._pending = [_Publication(evaluation)]
            self._condition.notify_all()

    def publish_error(self, message: str) -> None:
        """Show why the latest run produced no page (after what is waiting)."""
        with self._condition:
            self._pending.append(_Publication(None, message))
            self._condition.notify_all()

    def wait(self) -> None:
        """Return once everything handed over so far is published."""
        with self._condition:
            while self._pending or self._busy:
                self._condition.wait()

    def close(self) -> None:
        """End the thread once the export under way is done (what waits is dropped: watching
        ends)."""
        with self._condition:
            self._closed = True
            self._pending.clear()
            self._condition.notify_all()
        self._thread.join()

    def _work(self) -> None:
        while True:
            with self._condition:
                while not self._pending and not self._closed:
                    self._condition.wait()
                if not self._pending:
                    return
                publication = self._pending.pop(0)
                self._busy = True
            try:
                self._publish(publication)
            finally:
                with self._condition:
                    self._busy = False
                    self._condition.notify_all()

    def _publish(self, publication: _Publication) -> None:
        from mdrun.document.export_pandoc import convert_with_pandoc

        if publication.evaluation is None:
            self.preview.publish_error(publication.error)
            return
        try:
            self.preview.publish(convert_with_pandoc(publication.evaluation, "html"))
        except MdrunError as err:
            self.preview.publish_error(str(err))
            self._on_failure(err)
