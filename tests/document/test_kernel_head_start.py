"""The kernel a run launches before importing what evaluates the document: launched only when
the first block must run, taken by its session (one kernel for the run), killed when unused."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from mdrun.core.store import Store
from mdrun.document.formats.settings import Settings
from mdrun.document.kernel_head_start import HeadStart
from mdrun.document.kernel_process import KernelProcess
from mdrun.document.pipeline import make_plan, run
from mdrun.errors import KernelError
from tests.document.test_kernel import is_running

TWO_BLOCKS = "# Two\n\n```python\nx = 6\n```\n\n```python\nprint(x * 7)\n```\n"


def _head_start(document: Path, store: Store) -> HeadStart:
    plan = make_plan(str(document), Settings())
    return HeadStart.for_plan(plan, store, lambda _planned: False, str(document))


def _run_taking_the_kernel_ahead(document: Path, store: Store) -> int:
    """Run with a kernel launched ahead, which the session must take (no second kernel
    started); how many blocks executed."""
    head_start = _head_start(document, store)
    assert head_start.launched
    try:
        result = run(str(document), store, executor_factory=head_start.factory)
        assert head_start.pid is None
    finally:
        head_start.close()
    return result.evaluation.count("executed")


@pytest.fixture
def document(tmp_path: Path) -> Path:
    """A document of two blocks, the second using the first."""
    path = tmp_path / "doc.md"
    path.write_text(TWO_BLOCKS, encoding="utf-8")
    return path


@pytest.mark.kernel
@pytest.mark.timeout(120)
def test_a_cold_run_takes_the_kernel_launched_ahead(tmp_path: Path, document: Path) -> None:
    store = Store.initialize(tmp_path / "store")
    assert _run_taking_the_kernel_ahead(document, store) == 2
    assert "42" in document.read_text(encoding="utf-8")


@pytest.mark.kernel
@pytest.mark.timeout(120)
def test_a_block_changed_since_the_last_run_has_its_kernel_launched_ahead(
    tmp_path: Path, document: Path
) -> None:
    store = Store.initialize(tmp_path / "store")
    run(str(document), store)
    document.write_text(TWO_BLOCKS.replace("x * 7", "x * 8"), encoding="utf-8")
    # The first block is stored, the second changed; the first is replayed in that kernel.
    assert _run_taking_the_kernel_ahead(document, store) == 1
    assert "48" in document.read_text(encoding="utf-8")


@pytest.mark.kernel
@pytest.mark.timeout(120)
def test_no_kernel_is_launched_ahead_when_only_the_prose_changed(
    tmp_path: Path, document: Path
) -> None:
    store = Store.initialize(tmp_path / "store")
    run(str(document), store)
    text = document.read_text(encoding="utf-8")
    document.write_text(text.replace("# Two", "# Two blocks"), encoding="utf-8")
    head_start = _head_start(document, store)
    assert not head_start.launched
    result = run(str(document), store, executor_factory=head_start.factory)
    assert result.evaluation.count("executed") == 0


@pytest.mark.kernel
@pytest.mark.timeout(120)
def test_a_kernel_launched_for_nothing_is_killed_when_the_run_ends(
    tmp_path: Path, document: Path
) -> None:
    head_start = _head_start(document, Store.initialize(tmp_path / "store"))
    pid = head_start.pid
    assert pid is not None and is_running(pid)
    head_start.close()
    deadline = time.monotonic() + 10
    while is_running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not is_running(pid)


def test_a_kernel_that_cannot_be_launched_ahead_is_left_to_the_session(
    tmp_path: Path, document: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(_process: KernelProcess) -> None:
        raise KernelError("could not start the kernel")

    monkeypatch.setattr(KernelProcess, "launch", refuse)
    # The session tries again and its block fails saying why, as without a head start.
    assert not _head_start(document, Store.initialize(tmp_path / "store")).launched
