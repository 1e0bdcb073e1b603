"""Documents with a failing block: what `run --keep-going` keeps cached after it, what export
shows, and what `check` says."""

from __future__ import annotations

import textwrap

import pytest

from tests.document.conftest import Mdrun, no_kernel_starts

FAILING = textwrap.dedent(
    """\
    # A failure in the middle

    ```python
    total = 1
    ```

    ```python
    seed = open("seed.txt").read().strip()
    raise ValueError("always")
    ```

    ```python
    print("seed", seed, total + 1)
    ```

    ```python
    print("last")
    ```
    """
)
"""b2 fails the same way every time; the state it leaves (`seed`) comes from a file."""


@pytest.fixture
def failed_once(mdrun: Mdrun) -> Mdrun:
    """FAILING after one `run --keep-going`."""
    mdrun.write("seed.txt", "7")
    mdrun.write("doc.md", FAILING)
    completed, report = mdrun.run_reported("run", "doc.md", "--keep-going")
    assert completed.code == 1, completed.err
    assert report.statuses == {"b1": "executed", "b2": "failed", "b3": "executed",
                               "b4": "executed"}  # fmt: skip
    return mdrun


@pytest.mark.kernel
def test_an_identical_failure_keeps_the_blocks_after_it_cached(failed_once: Mdrun) -> None:
    mdrun = failed_once
    first = mdrun.read("doc.md")
    assert "seed 7 2" in first

    completed, report = mdrun.run_reported("run", "doc.md", "--keep-going")
    assert completed.code == 1
    # The failure is not cached (it may be transient), the blocks after it are.
    assert report.statuses == {"b1": "cached", "b2": "failed", "b3": "cached", "b4": "cached"}
    assert [record["cutoff"] for record in report.records] == [False, False, True, True]
    assert "1 executed" not in completed.err and "2 kept by early cutoff" in completed.err
    assert mdrun.read("doc.md") == first

    # The same failure, but the state it leaves differs: the block after it that reads what
    # changed runs again; the last one, which reads nothing of it, stays cached.
    mdrun.write("seed.txt", "8")
    completed, report = mdrun.run_reported("run", "doc.md", "--keep-going")
    assert report.statuses == {"b1": "cached", "b2": "failed", "b3": "executed", "b4": "cached"}
    assert "seed 8 2" in mdrun.read("doc.md")


@pytest.mark.kernel
def test_without_keep_going_the_stored_blocks_after_a_failure_are_shown(
    failed_once: Mdrun,
) -> None:
    mdrun = failed_once
    first = mdrun.read("doc.md")
    completed, report = mdrun.run_reported("run", "doc.md")
    assert completed.code == 1
    assert report.statuses == {"b1": "cached", "b2": "failed", "b3": "cached", "b4": "cached"}
    assert mdrun.read("doc.md") == first


@pytest.mark.kernel
def test_export_shows_what_the_run_produced(failed_once: Mdrun) -> None:
    mdrun = failed_once
    rendered = mdrun.read("doc.md")

    # Markdown export without running: exactly the document `run` wrote, failure included.
    with no_kernel_starts():
        completed = mdrun("export", "doc.md", "--to", "md", "--no-exec", "-o", "stored.md")
    assert completed.code == 1, completed.err
    assert mdrun.read("stored.md") == rendered
    assert "doc.md:7: block b2 failed: ValueError: always" in completed.err

    with no_kernel_starts():
        completed = mdrun("export", "doc.md", "--to", "html", "--no-exec")
    assert completed.code == 1, completed.err
    html = mdrun.read("doc.html")
    assert "seed 7 2" in html and "last" in html and "not run" not in html
    assert "ValueError: always" in html

    completed = mdrun("export", "doc.md", "--to", "html", "--keep-going", "-o", "run.html")
    assert completed.code == 1, completed.err
    assert "seed 7 2" in mdrun.read("run.html") and "not run" not in mdrun.read("run.html")


@pytest.mark.kernel
def test_no_exec_still_refuses_blocks_that_never_ran(mdrun: Mdrun) -> None:
    mdrun.write("seed.txt", "7")
    mdrun.write("doc.md", FAILING)
    assert mdrun("run", "doc.md").code == 1  # b3 and b4 did not run: nothing stored for them
    text = mdrun.read("doc.md")
    assert "**not run**" in text
    with no_kernel_starts():
        completed = mdrun("export", "doc.md", "--to", "md", "--no-exec", "-o", "stored.md")
    # What the store holds is the failure and the note that the rest did not run.
    assert completed.code == 1, completed.err
    assert mdrun.read("stored.md") == text
    mdrun.write("doc.md", FAILING + "\n```python session=other\nprint('new')\n```\n")
    with no_kernel_starts():
        completed = mdrun("export", "doc.md", "--to", "md", "--no-exec", "-o", "stored.md")
    assert completed.code == 1
    assert "other-1: stale (never run)" in completed.out
    assert "--no-exec runs nothing" in completed.err


@pytest.mark.kernel
def test_check_says_why_an_up_to_date_document_fails(failed_once: Mdrun) -> None:
    mdrun = failed_once
    completed = mdrun("check", "doc.md", "--keep-going")
    assert completed.code == 1
    assert completed.out == ""  # no diff: the document is what a run writes
    assert "doc.md:7: block b2 failed: ValueError: always" in completed.err
    assert "is up to date, but a block in it fails" in completed.err
    # The region says it failed once, without repeating the traceback's last line.
    text = mdrun.read("doc.md")
    assert text.count("ValueError: always") == 1
    assert "**failed**\n" in text


@pytest.mark.kernel
def test_check_no_exec_compares_with_the_failure_the_store_holds(failed_once: Mdrun) -> None:
    with no_kernel_starts():
        completed = failed_once("check", "--no-exec", "doc.md")
    assert completed.code == 1
    assert completed.out == ""  # no diff, no block the store lacks
    assert "doc.md:7: block b2 failed: ValueError: always" in completed.err
    assert "is up to date, but a block in it fails" in completed.err


@pytest.mark.kernel
def test_status_names_a_failed_block_and_keeps_the_ones_after_it(failed_once: Mdrun) -> None:
    completed = failed_once("status", "doc.md")
    assert completed.out.splitlines() == [
        "doc.md:3: b1: cached",
        "doc.md:7: b2: failed (it failed in the last run)",
        "doc.md:25: b3: cached",
        "doc.md:34: b4: cached",
    ]


UNDIGESTIBLE = textwrap.dedent(
    """\
    ```python
    import logging, sys
    handler = logging.StreamHandler(sys.stdout)
    ```

    ```python
    raise ValueError("always")
    ```

    ```python
    raise KeyError("always")
    ```

    ```python
    print("after", handler.level)
    ```
    """
)
"""b2 and b3 fail the same way every time, in a state holding a handler (it holds a stream,
which mdrun cannot digest); b4 reads it."""


@pytest.mark.kernel
def test_status_says_why_blocks_after_a_failure_in_an_undigestible_state_run_again(
    mdrun: Mdrun,
) -> None:
    mdrun.write("doc.md", UNDIGESTIBLE)
    completed = mdrun("run", "doc.md", "--keep-going")
    assert completed.code == 1, completed.err

    # Without the "doc.md:LINE: " prefix: the run wrote the failures' output regions.
    lines = [line.split(": ", 1)[1] for line in mdrun("status", "doc.md").out.splitlines()]
    why = "the blocks after it run again: its state holds values mdrun cannot digest: "
    assert lines[1] == f"b2: failed (it failed in the last run; {why}handler (StreamHandler))"
    # b3's own upstream is a failure record, which holds no state: the handler is still named.
    assert lines[2] == f"b3: failed (it failed in the last run; {why}handler (StreamHandler))"
    # What it announces: the identical failures do not keep b4 cached.
    completed, report = mdrun.run_reported("run", "doc.md", "--keep-going")
    assert report.statuses == {"b1": "cached", "b2": "failed", "b3": "failed", "b4": "executed"}
