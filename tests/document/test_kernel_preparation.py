"""Kernels prepared ahead under `watch`: after a run, a kernel is brought in the background to the
state before the block edited last, and the next edit of that block runs in it without replaying
anything; a save that comes while one is being prepared waits for it or cuts it short, and the
document still equals a fresh run's; Ctrl-C during a preparation leaves no kernel."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from mdrun.core.store import Store
from mdrun.document.pipeline import run
from mdrun.document.warm_executors import WarmExecutors
from tests.document.conftest import INSTALLED_MDRUN
from tests.document.test_kernel import is_running
from tests.document.test_warm_executors import kernel_children, runs, save
from tests.document.test_watch import wait_for, watching

LOGGED = """# Prepared

```python
import os
with open("runs.log", "a") as log:
    log.write(f"{os.getpid()}\\n")
x = 20
```

```python
y = x + 1
```

```python
print(y * 2, "edit-0")
print("pid", os.getpid())
```
"""
"""Block 1 logs the kernel it runs in, each time it runs (executed or replayed); block 3 shows
which kernel ran it."""


def fresh_run(text: str, folder: Path) -> str:
    """The document `text` run from scratch with a store of its own."""
    folder.mkdir()
    document = folder / "doc.md"
    document.write_text(text, encoding="utf-8")
    run(str(document), Store.initialize(folder / "store"))
    return document.read_text(encoding="utf-8")


def without_pids(text: str) -> str:
    return re.sub(r"pid \d+", "pid N", text)


@pytest.mark.kernel
@pytest.mark.timeout(180)
def test_an_edit_runs_in_the_kernel_prepared_for_it_without_replaying(
    document: Path, tmp_path: Path
) -> None:
    document.write_text(LOGGED, encoding="utf-8")
    log = document.with_name("runs.log")
    with WarmExecutors(prepare=True) as pool, watching(document, executors=pool) as recorder:
        runs(recorder, 1)
        # The whole document ran: the last block is the one prepared for (blocks 1-2 replayed).
        wait_for(lambda: pool.counts().kernels_prepared == 1, "a kernel prepared")
        logged_before = log.read_text(encoding="utf-8").split()
        edited = document.read_text(encoding="utf-8").replace('"edit-0"', '"edit-1"')
        save(document, edited)
        runs(recorder, 2)
        counts = pool.counts()
    watched = document.read_text(encoding="utf-8")
    assert counts.prepared_taken == 1
    assert recorder.finished[-1][0].evaluation.count("executed") == 1
    served_by = re.search(r"pid (\d+)", watched)
    assert served_by is not None
    # The kernel that ran the edit is the one prepared before the save: block 1 ran in it once,
    # before the save, and never again (a replay would have logged it twice).
    assert logged_before.count(served_by.group(1)) == 1
    assert log.read_text(encoding="utf-8").split().count(served_by.group(1)) == 1
    assert "42 edit-1" in watched
    fresh = fresh_run(LOGGED.replace('"edit-0"', '"edit-1"'), tmp_path / "fresh")
    assert without_pids(watched) == without_pids(fresh)


SLOW_REPLAY = """# Slow

```python snapshot=false
import time
time.sleep(1.5)
x = 3
seen = []
```

```python
seen.append(x)
print(x * 2, "first")
```
"""
"""Block 1 has no snapshot: preparing a kernel for block 2 replays it for 1.5 s. Block 2 changes
a list block 1 made, so deleting what it added would not undo it (`kernel_rollback`): the kernel
that ran it cannot serve an edit of it, a prepared one does."""


@pytest.mark.kernel
@pytest.mark.timeout(180)
def test_saves_during_a_preparation_wait_for_it_or_cut_it_short(
    document: Path, tmp_path: Path
) -> None:
    document.write_text(SLOW_REPLAY, encoding="utf-8")
    with WarmExecutors(prepare=True) as pool, watching(document, executors=pool) as recorder:
        runs(recorder, 1)
        # At once, while block 1 is being replayed: block 2 needs that state, so the run waits.
        second = document.read_text(encoding="utf-8").replace('"first"', '"second"')
        save(document, second)
        runs(recorder, 2)
        assert pool.counts().prepared_taken == 1
        assert "6 second" in document.read_text(encoding="utf-8")
        # At once again: block 1 is edited, so the state being prepared is of no use: cut short.
        third = document.read_text(encoding="utf-8").replace("x = 3", "x = 4")
        save(document, third)
        runs(recorder, 3)
        counts, abandoned = pool.counts(), pool.preparer.abandoned
    watched = document.read_text(encoding="utf-8")
    assert abandoned >= 1
    assert counts.prepared_taken == 1
    assert recorder.finished[-1][0].evaluation.count("executed") == 2
    assert "8 second" in watched
    assert watched == fresh_run(SLOW_REPLAY.replace("x = 3", "x = 4").replace(
        '"first"', '"second"'), tmp_path / "fresh")  # fmt: skip


@pytest.mark.kernel
@pytest.mark.timeout(120)
def test_ctrl_c_during_a_preparation_leaves_no_kernel(tmp_path: Path) -> None:
    # Block 1 is quick when it runs, and slow (60 s) when replayed once `slow` exists; block 2
    # changes its list, so only a prepared kernel can serve an edit of it (see SLOW_REPLAY).
    slow_once_flagged = (
        "# Flagged\n\n```python snapshot=false\nimport os, time\n"
        "if os.path.exists('slow'):\n    time.sleep(60)\nx = 1\nseen = []\n```\n\n"
        "```python\nseen.append(x)\nprint(x, 'first')\n```\n"
    )
    document = tmp_path / "doc.md"
    document.write_text(slow_once_flagged, encoding="utf-8")
    process = subprocess.Popen(
        [str(INSTALLED_MDRUN), "--store", str(tmp_path / "store"), "watch", "doc.md"],
        cwd=tmp_path,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: "1 first" in document.read_text(encoding="utf-8"), "the first run")
        # The session's kernel, the one prepared (block 1 replayed quickly) and the spare.
        wait_for(lambda: len(kernel_children(process.pid)) >= 3, "a kernel prepared")
        time.sleep(1.0)
        (tmp_path / "slow").touch()
        save(document, document.read_text(encoding="utf-8").replace("'first'", "'second'"))
        wait_for(lambda: "1 second" in document.read_text(encoding="utf-8"), "the edit's run")
        time.sleep(1.0)  # the next preparation is now replaying block 1: 60 s
        kernels = kernel_children(process.pid)
        started = time.monotonic()
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
        assert time.monotonic() - started < 20, "Ctrl-C waited for the replay"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    deadline = time.monotonic() + 5
    while any(is_running(pid) for pid in kernels) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert kernels
    assert not [pid for pid in kernels if is_running(pid)]
