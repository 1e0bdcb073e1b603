"""Warm kernels under `watch`: a session's kernel is kept between saves and used as it is only
when it holds exactly the blocks a block needs; a spare kernel serves a session that must start
again; and no kernel outlives watching (stopped by its event, or by Ctrl-C)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from mdrun.core.store import Store
from mdrun.document.kernel_shutdown import BACKGROUND
from mdrun.document.pipeline import run
from mdrun.document.warm_executors import WarmExecutors
from tests.document.conftest import INSTALLED_MDRUN
from tests.document.test_kernel import is_running
from tests.document.test_watch import Recorder, wait_for, watching

THREE_BLOCKS = (
    "# Chain\n\n```python\nx = [1]\n```\n\n```python\nx = x + [10]\n```\n\n"
    "```python\nprint(sum(x))\n```\n"
)
"""Block 1 sets a variable, block 2 changes it, block 3 prints it. Block 2 rebinds a list,
whose old value the kernel does not keep, so it cannot be undone (`kernel_rollback`)."""


def kernel_children(parent: int) -> set[int]:
    """The kernels that process `parent` started (its children running the kernel launcher)."""
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == parent and b"kernel" in command and fields[0] != "Z":
            found.add(int(entry.name))
    return found


def save(document: Path, text: str) -> None:
    """Save as an editor does: a new file renamed over the old one."""
    temporary = document.with_name(".saving.md")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, document)


def runs(recorder: Recorder, count: int) -> None:
    wait_for(lambda: len(recorder.finished) >= count, f"run {count}")


@pytest.mark.kernel
@pytest.mark.timeout(180)
def test_watch_keeps_the_kernel_between_saves(document: Path) -> None:
    document.write_text("# Grows\n\n```python\nx = 6\n```\n", encoding="utf-8")
    with WarmExecutors(keep_spares=False) as pool, watching(document, executors=pool) as recorder:
        runs(recorder, 1)
        # A block added at the end runs in the kernel that holds the block before it.
        save(document, document.read_text(encoding="utf-8") + "\n```python\nprint(x * 7)\n```\n")
        runs(recorder, 2)
        counts = pool.counts()
    assert "42" in document.read_text(encoding="utf-8")
    assert recorder.finished[-1][0].evaluation.count("executed") == 1
    assert counts.kernels_started == 1
    assert counts.executors_reused == 1


@pytest.mark.kernel
@pytest.mark.timeout(180)
def test_a_middle_edit_under_watch_equals_a_fresh_run_and_takes_the_spare(
    document: Path, tmp_path: Path
) -> None:
    document.write_text(THREE_BLOCKS, encoding="utf-8")
    with WarmExecutors() as pool, watching(document, executors=pool) as recorder:
        runs(recorder, 1)
        assert "11" in document.read_text(encoding="utf-8")
        # The spare is being started (or ready): the session that must start again takes it.
        wait_for(lambda: pool.counts().kernels_started == 2, "the spare kernel")
        save(document, document.read_text(encoding="utf-8").replace("x = x + [10]", "x = x * 5"))
        runs(recorder, 2)
        counts = pool.counts()
    watched = document.read_text(encoding="utf-8")
    # The kernel held blocks 1-3; block 2 needs only block 1: a fresh kernel, block 1 replayed.
    assert counts.spares_taken == 1
    assert recorder.finished[-1][0].evaluation.count("executed") == 2
    fresh = tmp_path / "fresh" / "doc.md"
    fresh.parent.mkdir()
    fresh.write_text(THREE_BLOCKS.replace("x = x + [10]", "x = x * 5"), encoding="utf-8")
    run(str(fresh), Store.initialize(tmp_path / "fresh-store"))
    assert watched == fresh.read_text(encoding="utf-8")
    assert re.search(r"^5$", watched, re.MULTILINE)


@pytest.mark.kernel
@pytest.mark.timeout(180)
def test_no_kernel_outlives_watching(document: Path) -> None:
    # Kernels that earlier tests' runs handed to the process's background shutdowns may still
    # be exiting: they are not this pool's, and would be counted as its kernels.
    BACKGROUND.wait()
    document.write_text(THREE_BLOCKS, encoding="utf-8")
    with WarmExecutors() as pool, watching(document, executors=pool) as recorder:
        runs(recorder, 1)
        wait_for(lambda: len(kernel_children(os.getpid())) >= 2, "the session's and the spare")
        kernels = kernel_children(os.getpid())
    assert kernels
    # Gone once the pool is closed; one that its starting thread's end killed (see
    # `kernel_launcher`) may take a moment to die, an orphan never does.
    wait_for(lambda: not [pid for pid in kernels if is_running(pid)], "the kernels to end", 5.0)


@pytest.mark.kernel
@pytest.mark.timeout(120)
def test_no_kernel_outlives_the_watch_command_stopped_by_ctrl_c(tmp_path: Path) -> None:
    (tmp_path / "doc.md").write_text(THREE_BLOCKS, encoding="utf-8")
    process = subprocess.Popen(
        [str(INSTALLED_MDRUN), "--store", str(tmp_path / "store"), "watch", "doc.md"],
        cwd=tmp_path,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: "11" in (tmp_path / "doc.md").read_text(encoding="utf-8"), "a run")
        wait_for(lambda: len(kernel_children(process.pid)) >= 2, "the session's and the spare")
        kernels = kernel_children(process.pid)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    deadline = time.monotonic() + 5
    while any(is_running(pid) for pid in kernels) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in kernels if is_running(pid)]
