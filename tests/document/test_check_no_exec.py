"""`mdrun check --no-exec` (what a pre-commit service that cannot run code uses) and `check`
on several documents: the store is compared with, nothing runs, no kernel starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.document.conftest import no_kernel_starts
from tests.document.test_cli import DemoRun, copy_of, demo

__all__ = ["demo"]


@pytest.mark.kernel
def test_no_exec_passes_on_a_document_the_store_holds(demo: DemoRun, tmp_path: Path) -> None:
    runner = copy_of(demo, tmp_path)
    # Another name: no record of a clean run, so the check goes through the store's results.
    runner.write("copy.md", demo.rendered)
    with no_kernel_starts():
        completed = runner("check", "--no-exec", "copy.md")
    assert (completed.code, completed.out) == (0, "")
    assert "copy.md: 3 blocks, all as the store holds them" in completed.err


@pytest.mark.kernel
def test_no_exec_names_the_blocks_the_store_lacks(demo: DemoRun, tmp_path: Path) -> None:
    runner = copy_of(demo, tmp_path)
    edited = demo.rendered.replace("return x * x", "return x * x * 1")
    runner.write("demo.md", edited)
    with no_kernel_starts():
        completed = runner("check", "--no-exec", "demo.md")
    assert completed.code == 1
    assert completed.out.splitlines() == [
        "demo.md:12: block b2: not in the store",
        "demo.md:17: block b3: not looked up: its upstream block b2 is not in the store",
    ]
    assert "--no-exec runs nothing" in completed.err
    assert runner.read("demo.md") == edited, "check never writes"


@pytest.mark.kernel
def test_no_exec_shows_a_diff_when_a_region_differs_from_the_store(
    demo: DemoRun, tmp_path: Path
) -> None:
    runner = copy_of(demo, tmp_path)
    runner.write("demo.md", demo.rendered.replace("\n25\n", "\n26\n"))
    with no_kernel_starts():
        completed = runner("check", "--no-exec", "demo.md")
    assert completed.code == 1
    changed = [line for line in completed.out.splitlines() if line[:1] in "+-"][2:]
    assert changed == ["-26", "+25"]


@pytest.mark.kernel
def test_check_takes_several_documents_and_fails_if_one_is_stale(
    demo: DemoRun, tmp_path: Path
) -> None:
    runner = copy_of(demo, tmp_path)
    runner.write("stale.md", demo.rendered.replace("square(5)", "square(7)"))
    with no_kernel_starts():
        both = runner("check", "--no-exec", "demo.md", "stale.md")
        fine = runner("check", "--no-exec", "demo.md", "demo.md")
    assert both.code == 1
    assert both.out == "stale.md:17: block b3: not in the store\n"
    assert fine.code == 0


def test_no_exec_refuses_force(tmp_path: Path) -> None:
    from tests.document.conftest import Mdrun

    runner = Mdrun(tmp_path / "doc", tmp_path / "store")
    runner.write("doc.md", "# Nothing to run\n")
    completed = runner("check", "--no-exec", "doc.md", "--force")
    assert completed.code == 2
    assert "--no-exec runs nothing" in completed.err
