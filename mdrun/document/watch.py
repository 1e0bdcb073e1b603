"""`mdrun watch`: run a document again whenever it, or an input file of its blocks, is saved.

This module owns the loop: what to watch, when a change deserves a run (not mdrun's own write),
and one run at a time with the saves made meanwhile coalesced into the next. Running is the
pipeline's job (the store makes a re-run execute only what changed); serving is `serve`'s.
The sessions' kernels are kept warm between runs (`warm_executors`), and shut down when the
loop ends, however it ends. After a run is written, what can wait is done off the path of the
next save: kernels are prepared for the next edit (`warm_executors.prepare_ahead`) and the
preview is exported (`preview_publisher`).
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import watchfiles

from mdrun.core.store import Store
from mdrun.document.formats.settings import Settings
from mdrun.document.pipeline import RunResult, run, write_result
from mdrun.document.preview_publisher import PreviewPublisher
from mdrun.document.remembered_results import keeping_results
from mdrun.document.serve import Preview, PreviewServer
from mdrun.document.warm_executors import WarmExecutors
from mdrun.errors import MdrunError

STEP_MILLISECONDS = 5
"""How often the file watcher looks for events: a change is acted on once a look finds no new
one, so 5-10 ms after a save (several events); see `SETTLED_SECONDS` for saves made in place.
Looking costs about 1% of a core while idle."""
DEBOUNCE_MILLISECONDS = 500
"""...or after this long, if they keep changing."""
SETTLED_SECONDS = 0.05
"""A file written in place (an editor that truncates it, then writes) is read only once it was
last modified this long ago, and the outputs are written into the document only then too: one
caught half way by the watcher would otherwise run half a save, and a rename over a file the
editor still writes to would lose the rest of it. (Outputs are written only if the document is
still what the run read: the rest of a save makes one more run.)"""
CHECK_SECONDS = 0.25
"""How often the file watcher looks whether it should watch other folders, or stop."""


class WatchReporter(Protocol):
    """What the loop tells its caller (the CLI prints it; tests count it)."""

    def serving(self, url: str) -> None:
        """The preview is at `url`."""

    def run_started(self) -> None:
        """A change was seen and a run begins."""

    def run_finished(self, result: RunResult, written: bool) -> None:
        """A run ended; not `written` when the document was saved meanwhile (it runs again)."""

    def run_failed(self, error: MdrunError) -> None:
        """The document could not be run (an invalid option, a missing input...)."""


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """What a run depends on, as found on disk: a run only when this differs from the last."""

    document: bytes | None
    """The document's bytes (None while it is missing, e.g. during an editor's save)."""
    inputs: tuple[tuple[str, str | None], ...]
    """Each known input file and the digest of its content (None when missing)."""


def _digest(path: str) -> str | None:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def _read(path: str) -> bytes | None:
    try:
        return Path(path).read_bytes()
    except OSError:
        return None


class Watcher:
    """Runs a document once, then again after each relevant save, until `stop` is set."""

    def __init__(
        self,
        source: str,
        store: Store,
        reporter: WatchReporter,
        *,
        keep_going: bool = False,
        preview: Preview | None = None,
        stop: threading.Event | None = None,
        settings: Settings | None = None,
        executors: WarmExecutors | None = None,
    ) -> None:
        self.source = source
        self.store = store
        self.reporter = reporter
        self.keep_going = keep_going
        self.settings = settings
        self.preview = preview
        self._publisher: PreviewPublisher | None = None
        """Exports each run for the preview, while `watch` runs."""
        self.stop = stop or threading.Event()
        self.executors = executors or WarmExecutors(prepare=True)
        """The sessions' executors, kept between runs; closed when `watch` returns."""
        self._document = os.path.realpath(source)
        self._inputs: tuple[str, ...] = ()
        self._watched: frozenset[str] = frozenset({self._document})
        self._pending = threading.Event()
        self._watching = threading.Event()
        self._last: Fingerprint | None = None
        self._inodes: dict[str, int] = {}
        """The inode of each watched file at the last look (see `_note_files`)."""

    # -- the loop (the caller's thread) -----------------------------------------------------------

    def watch(self) -> None:
        """Block until `stop` is set (or Ctrl-C); runs never overlap. Results looked up are
        remembered meanwhile (`remembered_results`): each run looks the same blocks up again."""
        with keeping_results():
            self._watch()

    def _watch(self) -> None:
        files = threading.Thread(target=self._watch_files, name="mdrun-watch", daemon=True)
        files.start()
        if self.preview is not None:
            self._publisher = PreviewPublisher(self.preview, self.reporter.run_failed)
        try:
            # Changes saved during the first run must be seen: start watching before it.
            self._watching.wait(timeout=5)
            self._pending.set()
            while not self.stop.is_set():
                if self._pending.wait(timeout=CHECK_SECONDS):
                    self._pending.clear()
                    self._run_if_changed()
        finally:
            self.stop.set()
            files.join(timeout=5)
            self.executors.close()
            if self._publisher is not None:
                self._publisher.close()

    def _fingerprint(self) -> Fingerprint:
        return Fingerprint(
            _read(self.source), tuple((path, _digest(path)) for path in self._inputs)
        )

    def _note_files(self, *, wait: bool = True) -> None:
        """Note each watched file's inode; with `wait`, first wait until those written in place
        (the same inode as at the last look: an editor that truncates, then writes) were last
        modified `SETTLED_SECONDS` ago. A file renamed over the old one (a new inode) is whole
        already and is read at once."""
        for path in (self._document, *self._inputs):
            try:
                inode = os.stat(path).st_ino
            except OSError:
                continue
            if wait and self._inodes.get(path) == inode:
                _wait_until_settled(path, SETTLED_SECONDS, self.stop)
            self._inodes[path] = inode

    def _run_if_changed(self) -> None:
        """Run, unless what is on disk is what the last run saw or wrote (mdrun's own write)."""
        self._note_files()
        fingerprint = self._fingerprint()
        if fingerprint == self._last or fingerprint.document is None:
            return
        self.reporter.run_started()
        try:
            result = run(
                self.source,
                self.store,
                write=False,
                keep_going=self.keep_going,
                settings=self.settings,
                executor_factory=self.executors.factory,
            )
        except MdrunError as err:
            self._last = fingerprint
            if self._publisher is not None:
                self._publisher.publish_error(str(err))
            self.reporter.run_failed(err)
            return
        plan = result.evaluation.plan
        if result.changed:
            _wait_until_settled(self.source, SETTLED_SECONDS, self.stop)
        written = write_result(result, self.store, self.source)
        self._note_files(wait=False)  # mdrun's own write is a new inode
        ran_on = (result.text if written else plan.document.source).encode("utf-8")
        self._last = Fingerprint(ran_on, fingerprint.inputs)
        self._inputs = tuple(
            sorted(
                {
                    os.path.realpath(plan.base_dir / name)
                    for planned in plan.blocks
                    if planned.executable
                    for name in planned.options.inputs
                }
            )
        )
        self._watched = frozenset({self._document, *self._inputs})
        if not written:
            self._pending.set()
        else:
            self.executors.prepare_ahead()
            if self._publisher is not None:
                self._publisher.publish(result.evaluation)
        self.reporter.run_finished(result, written)

    # -- the file watcher (a background thread) ---------------------------------------------------

    def _watch_files(self) -> None:
        """Flag a run on any change to a watched file; follow the inputs as they change.

        Folders are watched, not files: editors and mdrun save by renaming a new file over the
        old one, which a watch on the old file would not follow.
        """
        polling = False
        while not self.stop.is_set():
            watched = self._watched
            folders = _existing_folders(watched)
            if not folders:
                self.stop.wait(CHECK_SECONDS)
                continue
            try:
                for changes in watchfiles.watch(
                    *folders,
                    watch_filter=lambda _change, path: os.path.realpath(path) in self._watched,
                    debounce=DEBOUNCE_MILLISECONDS,
                    step=STEP_MILLISECONDS,
                    stop_event=self.stop,
                    rust_timeout=int(CHECK_SECONDS * 1000),
                    yield_on_timeout=True,
                    raise_interrupt=False,
                    force_polling=polling or None,
                    recursive=False,
                ):
                    self._watching.set()
                    if changes:
                        self._pending.set()
                    if self._watched != watched:
                        break
            except FileNotFoundError:
                # A watched folder vanished: look again soon, and run once it is back.
                self._pending.set()
                self.stop.wait(CHECK_SECONDS)
            except OSError:
                # The system's watches are exhausted (inotify's limit): poll the folders instead.
                polling = True
                self._pending.set()
                self.stop.wait(CHECK_SECONDS)


def _wait_until_settled(path: str, seconds: float, stop: threading.Event) -> None:
    """Wait until `path` was last modified at least `seconds` ago (or is gone)."""
    while not stop.is_set():
        try:
            age = time.time() - os.stat(path).st_mtime
        except OSError:
            return
        if not 0 <= age < seconds:  # settled (or dated in the future: nothing to wait for)
            return
        stop.wait(seconds - age)


def _existing_folders(paths: Iterable[str]) -> list[str]:
    folders = {str(Path(path).parent) for path in paths}
    return sorted(folder for folder in folders if os.path.isdir(folder))


def watch_document(
    source: str,
    store: Store,
    reporter: WatchReporter,
    *,
    serve: bool = False,
    port: int = 0,
    keep_going: bool = False,
    stop: threading.Event | None = None,
    settings: Settings | None = None,
    executors: WarmExecutors | None = None,
) -> None:
    """`mdrun watch`: run now and after every save; with `serve`, preview the HTML on `port`.
    The sessions' executors come from `executors` (a pool of its own by default), which is
    closed when watching ends."""
    preview = Preview() if serve else None
    watcher = Watcher(
        source,
        store,
        reporter,
        keep_going=keep_going,
        preview=preview,
        stop=stop,
        settings=settings,
        executors=executors,
    )
    if preview is None:
        watcher.watch()
        return
    with PreviewServer(preview, port) as server:
        reporter.serving(server.url)
        watcher.watch()
