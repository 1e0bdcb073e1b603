"""A `run` in the console script's own process ends it at once (`exit_at_once`), skipping the
interpreter's exit: what it printed is all there, its exit code is the command's, and no kernel
or process a block started outlives it."""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from pathlib import Path

import pytest

from mdrun.server.client import is_one_process_run, nothing_to_wait_for
from tests.document.conftest import INSTALLED_MDRUN
from tests.document.test_kernel import is_running

PIDS = (
    "# Pids\n\n```python\nimport os, subprocess\nchild = subprocess.Popen(['sleep', '300'])\n"
    "print('kernel', os.getpid(), 'child', child.pid)\n```\n\n"
    "```python\nprint('x' * 200_000)\n```\n\nThe end.\n"
)
"""A kernel that starts a process, then a long output: a run must flush all of it."""


def _mdrun(folder: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "MDRUN_SERVER": "off"}
    return subprocess.run(
        [str(INSTALLED_MDRUN), "--store", str(folder / "store"), *arguments], cwd=folder,
        env=environment, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.mark.kernel
@pytest.mark.timeout(180)
def test_a_run_in_process_prints_everything_and_leaves_no_process(tmp_path: Path) -> None:
    (tmp_path / "doc.md").write_text(PIDS, encoding="utf-8")
    done = _mdrun(tmp_path, "run", "doc.md", "-o", "-")
    assert done.returncode == 0, done.stderr
    assert "x" * 200_000 in done.stdout
    assert done.stdout.endswith("The end.\n")
    found = re.search(r"kernel (\d+) child (\d+)", done.stdout)
    assert found is not None
    pids = [int(found.group(1)), int(found.group(2))]
    deadline = time.monotonic() + 10
    while any(is_running(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in pids if is_running(pid)]


@pytest.mark.kernel
@pytest.mark.timeout(180)
def test_a_run_in_process_exits_with_the_commands_code(tmp_path: Path) -> None:
    (tmp_path / "doc.md").write_text("# Fails\n\n```python\n1 / 0\n```\n", encoding="utf-8")
    done = _mdrun(tmp_path, "run", "doc.md")
    assert done.returncode == 1
    assert "ZeroDivisionError" in (tmp_path / "doc.md").read_text(encoding="utf-8")
    assert "1 failed" in done.stderr


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["run", "doc.md"], True),
        (["--store", "s", "check", "doc.md", "--no-server"], True),
        (["run", "docs/", "-j", "2"], False),  # worker processes: the interpreter waits
        (["run", "docs/", "--jobs=2"], False),
        (["watch", "doc.md"], False),
        (["export", "doc.md"], False),
    ],
)
def test_only_a_run_or_check_in_one_process_exits_at_once(argv: list[str], expected: bool) -> None:
    assert is_one_process_run(argv) is expected


def test_a_run_leaving_a_thread_to_wait_for_exits_as_usual() -> None:
    release = threading.Event()
    waiting = threading.Thread(target=release.wait)
    waiting.start()
    try:
        assert not nothing_to_wait_for()
    finally:
        release.set()
        waiting.join()
