"""Kernels shut down off the critical path: handing a kernel over returns at once, and the kernel
(with the processes its blocks started) is still gone, whether mdrun waits for it or exits."""

from __future__ import annotations

from pathlib import Path

import pytest

from mdrun.document.kernel import KernelSession
from mdrun.document.kernel_shutdown import Shutdowns
from mdrun.document.kernels import resolve_kernel
from tests.document.conftest import installed_mdrun
from tests.document.test_kernel import START_CHILD, assert_gone, is_running, started_child


@pytest.mark.kernel
@pytest.mark.timeout(120)
def test_a_kernel_handed_over_is_gone_once_the_shutdowns_are_waited_for(tmp_path: Path) -> None:
    session = KernelSession(resolve_kernel("python", None), tmp_path)
    session.start()
    kernel = session.pid
    assert kernel is not None
    child = started_child(session.execute(START_CHILD, block_id="starts"))
    shutdowns = Shutdowns()
    shutdowns.shut_down(session)
    shutdowns.wait()
    assert not is_running(kernel)
    assert not is_running(child)


@pytest.mark.kernel
@pytest.mark.timeout(120)
def test_no_process_of_a_block_outlives_mdrun_run(tmp_path: Path) -> None:
    # mdrun exits without waiting for its kernel to finish exiting: the kernel, and the process
    # its block started, must still go with it.
    document = tmp_path / "doc.md"
    document.write_text(f"# Starts a child\n\n```python\n{START_CHILD.strip()}\n```\n")
    completed = installed_mdrun(["--store", str(tmp_path / "store"), "run", "doc.md"], tmp_path)
    assert completed.returncode == 0, completed.stderr
    written = document.read_text(encoding="utf-8")
    child = int(written.split("``` text\n", 1)[1].split("\n", 1)[0])
    assert_gone(child, seconds=10)
