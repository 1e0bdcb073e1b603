"""`mdrun watch`: a save re-runs the document, the preview follows, and nothing is lost or looped.

The watcher runs in a thread of the test (stopped through its stop event) with a reporter that
counts what it is told; one test runs the installed command and stops it with Ctrl-C (SIGINT).
Waits poll with deadlines, so a broken watcher fails a test instead of hanging it.
"""

from __future__ import annotations

import contextlib
import queue
import re
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mdrun.core.store import Store
from mdrun.document import watch as watch_module
from mdrun.document.pipeline import RunResult
from mdrun.document.serve import Preview, PreviewServer
from mdrun.document.warm_executors import WarmExecutors
from mdrun.document.watch import watch_document
from mdrun.errors import MdrunError, UsageError
from tests.document.conftest import INSTALLED_MDRUN

DEADLINE = 60.0
"""The longest any awaited event may take (a run starts a kernel: a few seconds)."""

QUIET = 0.75
"""How long to wait to see that nothing happens (the watcher acts 50 ms after a change)."""


@dataclass
class Recorder:
    """A `WatchReporter` that keeps what it was told, for the test's thread to look at."""

    url: str | None = None
    started: int = 0
    finished: list[tuple[RunResult, bool]] = field(default_factory=list)
    errors: list[MdrunError] = field(default_factory=list)

    def serving(self, url: str) -> None:
        self.url = url

    def run_started(self) -> None:
        self.started += 1

    def run_finished(self, result: RunResult, written: bool) -> None:
        self.finished.append((result, written))

    def run_failed(self, error: MdrunError) -> None:
        self.errors.append(error)


def wait_for(condition: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
    """Poll until `condition` holds; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.02)


@contextlib.contextmanager
def watching(
    document: Path, *, serve: bool = False, executors: WarmExecutors | None = None
) -> Iterator[Recorder]:
    """`mdrun watch` on `document` in a thread (with a store of its own), stopped on exit."""
    recorder = Recorder()
    stop = threading.Event()
    failures: list[BaseException] = []
    store = Store.initialize(document.parent.parent / "store")

    def target() -> None:
        try:
            watch_document(
                str(document), store, recorder, serve=serve, stop=stop, executors=executors
            )
        except BaseException as err:
            failures.append(err)

    thread = threading.Thread(target=target, name="test-watch")
    thread.start()
    try:
        if serve:
            wait_for(lambda: recorder.url is not None or bool(failures), "the preview's URL")
        yield recorder
    finally:
        stop.set()
        thread.join(timeout=DEADLINE)
    assert not thread.is_alive(), "the watcher did not stop"
    if failures:
        raise failures[0]


def fetch(url: str) -> str:
    """GET a page of the preview."""
    with urllib.request.urlopen(url, timeout=10) as response:
        body: bytes = response.read()
    return body.decode("utf-8")


def region_text(document: Path) -> str:
    """Everything inside the document's output regions."""
    text = document.read_text(encoding="utf-8")
    return "".join(re.findall(r"<!-- mdrun:output.*?<!-- mdrun:end -->", text, re.DOTALL))


def python_document(code: str, options: str = "") -> str:
    """A document with one Python block."""
    return f"# Watched\n\n```python {options}\n{code}\n```\n"


@pytest.mark.kernel
@pytest.mark.timeout(180)
def test_a_save_reruns_the_document_and_the_preview_follows(document: Path) -> None:
    document.write_text(python_document('print("alpha".upper())'), encoding="utf-8")
    with watching(document, serve=True) as recorder:
        url = recorder.url
        assert url is not None
        wait_for(lambda: len(recorder.finished) == 1, "the first run")
        assert "ALPHA" in region_text(document)
        # The page is exported after the document is written, off the path of the next save.
        wait_for(lambda: fetch(url + "version") != "0", "the first page")
        first_version = int(fetch(url + "version"))
        assert "ALPHA" in fetch(url)

        # mdrun's own write of the outputs is a change on disk that must not start a run.
        time.sleep(QUIET)
        assert recorder.started == 1

        document.write_text(
            document.read_text(encoding="utf-8").replace('"alpha"', '"beta"'), encoding="utf-8"
        )
        wait_for(lambda: "BETA" in region_text(document), "the new output in the document")
        wait_for(lambda: len(recorder.finished) == 2, "the second run")
        wait_for(lambda: "BETA" in fetch(url), "the second run to be published")
        assert int(fetch(url + "version")) > first_version
        page = fetch(url)
        assert "BETA" in page and "ALPHA" not in page
        assert 'fetch("/version"' in page, "the page reloads itself after a run"

        time.sleep(QUIET)
        assert recorder.started == 2
        assert recorder.errors == []
        assert [written for _result, written in recorder.finished] == [True, True]


@pytest.mark.kernel
@pytest.mark.timeout(180)
def test_saves_during_a_run_are_not_lost_and_make_one_more_run(document: Path) -> None:
    slow = 'import time\ntime.sleep(2)\nprint("{}".upper())'
    document.write_text(python_document(slow.format("first")), encoding="utf-8")
    with watching(document) as recorder:
        wait_for(lambda: recorder.started == 1, "the first run to start")
        time.sleep(0.3)
        document.write_text(python_document(slow.format("second")), encoding="utf-8")
        time.sleep(0.3)
        document.write_text(python_document(slow.format("third")), encoding="utf-8")
        assert not recorder.finished, "the saves were made during the first run"

        wait_for(lambda: "THIRD" in region_text(document), "the last save's output")
        time.sleep(QUIET)
        assert recorder.started == 2, "two saves during a run make one more run"
        assert [written for _result, written in recorder.finished] == [False, True]
        text = document.read_text(encoding="utf-8")
        assert '"third"' in text and "FIRST" not in text and "SECOND" not in text


@pytest.mark.kernel
@pytest.mark.timeout(180)
def test_a_save_written_in_place_in_pieces_is_run_once_whole_and_never_lost(
    document: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An editor that truncates the file and writes it in two pieces, 0.2 s apart: a watcher
    # that ran the first piece would rename its outputs over the file that the editor still
    # writes to (the second piece would go to the file replaced).
    monkeypatch.setattr(watch_module, "SETTLED_SECONDS", 1.0)
    document.write_text(python_document('print("one".upper())'), encoding="utf-8")
    with watching(document) as recorder:
        wait_for(lambda: "ONE" in region_text(document), "the first run")
        time.sleep(QUIET)
        text = document.read_text(encoding="utf-8").replace('"one"', '"two"')
        text += "".join(f"\nParagraph {index} after the block.\n" for index in range(50))
        middle = text.index("Paragraph 25")
        with document.open("w", encoding="utf-8") as editor:
            editor.write(text[:middle])
            editor.flush()
            time.sleep(0.2)
            editor.write(text[middle:])
        wait_for(lambda: "TWO" in region_text(document), "the saved block's output")
        time.sleep(QUIET)
        assert recorder.started == 2, "the save runs once, whole"
    saved = document.read_text(encoding="utf-8")
    assert "Paragraph 49 after the block." in saved
    assert saved.replace("ONE", "TWO") == text.replace("ONE", "TWO")


@pytest.mark.kernel
@pytest.mark.timeout(180)
def test_a_change_to_an_input_file_reruns_the_block(document: Path) -> None:
    data = document.with_name("data.txt")
    data.write_text("gamma\n", encoding="utf-8")
    code = 'print(open("data.txt").read().strip().upper())'
    document.write_text(python_document(code, "inputs=data.txt"), encoding="utf-8")
    with watching(document) as recorder:
        wait_for(lambda: "GAMMA" in region_text(document), "the first run's output")
        data.write_text("delta\n", encoding="utf-8")
        wait_for(lambda: "DELTA" in region_text(document), "the output after the input changed")
        assert recorder.started == 2


@pytest.mark.timeout(60)
def test_a_bad_option_is_reported_and_watching_goes_on(document: Path) -> None:
    document.write_text(python_document("print(1)", "timeout=soon"), encoding="utf-8")
    with watching(document, serve=True) as recorder:
        url = recorder.url
        assert url is not None
        wait_for(lambda: len(recorder.errors) == 1, "the error to be reported")
        assert "timeout" in str(recorder.errors[0]) and str(document) in str(recorder.errors[0])
        wait_for(lambda: "mdrun-error" in fetch(url), "the preview to show the error")
        assert document.read_text(encoding="utf-8").count("mdrun:output") == 0

        # Fixed without needing a kernel: the block is not evaluated.
        document.write_text(python_document("print(1)", "eval=false"), encoding="utf-8")
        wait_for(lambda: len(recorder.finished) == 1, "a run after the fix")
        wait_for(lambda: "mdrun-error" not in fetch(url), "the preview without the error")
        assert len(recorder.errors) == 1


def test_the_preview_reloads_after_each_publication_and_shows_errors() -> None:
    preview = Preview()
    with PreviewServer(preview) as server:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", server.url)
        assert "waiting for the first run" in fetch(server.url)
        preview.publish(b"<html><body><p>hello</p></body></html>")
        page = fetch(server.url)
        assert page.index("<p>hello</p>") < page.index("<script>") < page.index("</body>")
        assert fetch(server.url + "version") == "1"
        preview.publish_error("doc.md:3: <bad> option")
        page = fetch(server.url)
        assert "&lt;bad&gt; option" in page and "<p>hello</p>" in page
        assert fetch(server.url + "version") == "2"
        with pytest.raises(urllib.error.HTTPError) as missing:
            fetch(server.url + "elsewhere")
        assert missing.value.code == 404


def test_a_port_in_use_is_a_usage_error() -> None:
    with PreviewServer(Preview()) as server:
        port = int(server.url.rsplit(":", 1)[1].strip("/"))
        with pytest.raises(UsageError, match=f"cannot serve on 127.0.0.1:{port}"):
            PreviewServer(Preview(), port)


@pytest.mark.timeout(60)
def test_the_command_serves_the_page_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    document = tmp_path / "doc.md"
    document.write_text("# Prose only\n\nNothing to run.\n", encoding="utf-8")
    process = subprocess.Popen(
        [str(INSTALLED_MDRUN), "--store", str(tmp_path / "store"), "watch", "doc.md", "--serve"],
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    assert process.stderr is not None
    stderr = process.stderr

    def pump() -> None:
        for line in stderr:
            lines.put(line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        seen: list[str] = []
        while not any(line.startswith("mdrun: 0 blocks") for line in seen):
            seen.append(lines.get(timeout=DEADLINE))
        url = next(re.search(r"http://\S+", line) for line in seen if "serving" in line)
        assert url is not None
        wait_for(lambda: "Prose only" in fetch(url.group()), "the page")
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=DEADLINE) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    reader.join(timeout=DEADLINE)
    while not lines.empty():
        seen.append(lines.get_nowait())
    assert seen[-1] == "mdrun: stopped watching\n"
