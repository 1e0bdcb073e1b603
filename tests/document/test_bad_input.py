"""A user's mistakes and an unlucky machine: each is refused before anything runs where it can
be, else named with its path, with exit 2; nothing of the document or its images is lost."""

from __future__ import annotations

import contextlib
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.document.conftest import Mdrun, installed_mdrun, no_kernel_starts
from tests.document.test_export import PNG_BLOCK

DOCUMENT = '```python\nopen("ran.txt", "w").write("yes")\nprint(1)\n```\n'
"""A block that leaves a trace of having run."""


@contextlib.contextmanager
def read_only(*folders: Path) -> Iterator[None]:
    """The folders and everything in them without write permission, for the duration."""
    saved: dict[Path, int] = {}
    for folder in folders:
        for path in [folder, *folder.rglob("*")]:
            if not path.is_symlink():
                saved[path] = stat.S_IMODE(path.stat().st_mode)
                path.chmod(saved[path] & ~0o222)
    try:
        yield
    finally:
        for path, mode in saved.items():
            path.chmod(mode)


# -- refused before anything runs -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--store", "a-file", "run", "doc.md"], "a-file: the store must be a folder"),
        (["run", "doc.md", "--store", "a-file"], "a-file: the store must be a folder"),
        (["run", "doc.md", "-o", "no/dir/out.md"], "no/dir/out.md: -o: its folder does not exist"),
        (["run", "doc.md", "-o", "a-folder"], "a-folder: -o names a folder"),
        (["run", "doc.md", "--report", "no/dir/r.json"], "no/dir/r.json: --report: its folder"),
        (["check", "doc.md", "--report", "a-folder"], "a-folder: --report names a folder"),
        (["run", "a-folder"], "a-folder: a folder with no document in it"),
        (["export", "doc.md", "--to", "html", "-o", "no/dir/x.html"], "no/dir/x.html: -o: its"),
    ],
)
def test_a_path_that_cannot_be_used_is_refused_before_any_block_runs(
    mdrun: Mdrun, args: list[str], message: str
) -> None:
    mdrun.write("doc.md", DOCUMENT)
    mdrun.write("a-file", "not a store\n")
    mdrun.path("a-folder").mkdir()
    with no_kernel_starts():
        completed = mdrun(*args, store=None if "--store" in args else True)
    assert completed.code == 2, completed.err
    assert completed.err.startswith(f"mdrun: error: {message}")
    assert mdrun.read("doc.md") == DOCUMENT
    assert not mdrun.path("ran.txt").exists()


# -- global options after the command -------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["--store", "{store}", "status", "doc.md"],
        ["status", "doc.md", "--store", "{store}"],
        ["status", "--store", "{store}", "doc.md"],
        ["--store", "elsewhere", "status", "doc.md", "--store", "{store}"],
    ],
)
def test_the_store_option_goes_before_or_after_the_command(
    mdrun: Mdrun, args: list[str]
) -> None:
    mdrun.write("doc.md", DOCUMENT)
    store = mdrun.folder / "chosen-store"
    completed = mdrun(*(arg.format(store=store) for arg in args), store=False)
    assert completed.code == 0, completed.err
    assert completed.out == "doc.md:1: b1: stale (never run)\n"
    assert (store / "version").is_file(), "the store named is the one used"
    assert not (mdrun.folder / "elsewhere").exists(), "the later --store wins"


def test_every_command_takes_the_store_after_it(mdrun: Mdrun) -> None:
    mdrun.write("doc.md", "# Prose only\n")
    store = str(mdrun.folder / "s")
    for args in (
        ["run", "doc.md", "--store", store],
        ["check", "doc.md", "--store", store],
        ["status", "doc.md", "--store", store],
        ["export", "doc.md", "--to", "md", "--store", store],
        ["gc", "doc.md", "--store", store],
    ):
        completed = mdrun(*args, store=False)
        assert completed.code == 0, (args, completed.err)


# -- a store that cannot be written ---------------------------------------------------------------


@pytest.mark.kernel
def test_a_read_only_store_serves_a_cached_document_and_refuses_one_that_must_run(
    mdrun: Mdrun,
) -> None:
    mdrun.write("doc.md", DOCUMENT)
    assert mdrun("run", "doc.md").code == 0
    mdrun.path("ran.txt").unlink()
    # Prose edited: the run goes through the whole pipeline, every block cached.
    mdrun.write("doc.md", "# A title\n\n" + mdrun.read("doc.md"))
    store = ["--store", str(mdrun.store)]
    with read_only(mdrun.store):
        cached = installed_mdrun([*store, "run", "doc.md"], mdrun.folder, bound_by_permissions=True)
        assert cached.returncode == 0, cached.stderr
        assert "1 blocks, 0 executed, 1 cached" in cached.stderr
        assert mdrun.read("doc.md").startswith("# A title\n")

        stale = mdrun.read("doc.md").replace("print(1)", "print(2)")
        mdrun.write("doc.md", stale)
        for command in (["run", "doc.md"], ["export", "doc.md", "--to", "html"]):
            refused = installed_mdrun([*store, *command], mdrun.folder, bound_by_permissions=True)
            assert refused.returncode == 2
            assert refused.stderr == (
                f"mdrun: error: {mdrun.store}: the store is read-only, and blocks of doc.md "
                "must run (b1); name a store you can write with --store DIR\n"
            )
        for command in (["gc", "--all"], ["watch", "doc.md"]):
            refused = installed_mdrun([*store, *command], mdrun.folder, bound_by_permissions=True)
            assert refused.returncode == 2
            assert refused.stderr.startswith(f"mdrun: error: {mdrun.store}: the store is read-only")
    assert mdrun.read("doc.md") == stale
    assert not mdrun.path("ran.txt").exists(), "nothing ran"
    assert not mdrun.path("doc.html").exists()


# -- a document that cannot be written ------------------------------------------------------------


@pytest.mark.kernel
def test_a_failed_write_leaves_the_old_document_with_the_images_it_links(mdrun: Mdrun) -> None:
    mdrun.write("doc.md", PNG_BLOCK)
    assert mdrun("run", "doc.md").code == 0
    images = sorted(mdrun.path("doc_files").iterdir())
    assert len(images) == 1
    # Another image: the new document would link a new file instead of the old one.
    old = mdrun.read("doc.md").replace("png(6, 4)", "png(5, 4)")
    assert images[0].name in old
    mdrun.write("doc.md", old)
    with read_only(mdrun.folder):
        mdrun.path("doc_files").chmod(0o755)  # images could be written and removed; not doc.md
        failed = installed_mdrun(
            ["--store", str(mdrun.store), "run", "doc.md"],
            mdrun.folder,
            bound_by_permissions=True,
        )
    assert failed.returncode == 2, failed.stderr
    assert failed.stderr.endswith("mdrun: error: doc.md: cannot write it: Permission denied\n")
    assert mdrun.read("doc.md") == old
    assert all(image.is_file() for image in images), "the images the document links are there"


def test_a_report_that_cannot_be_written_is_named_with_exit_2(mdrun: Mdrun) -> None:
    mdrun.write("doc.md", "# Prose only\n")
    mdrun.path("reports").mkdir()
    with read_only(mdrun.path("reports")):
        completed = installed_mdrun(
            ["--store", str(mdrun.store), "run", "doc.md", "--report", "reports/r.json"],
            mdrun.folder,
            bound_by_permissions=True,
        )
    assert completed.returncode == 2, completed.stderr
    assert completed.stderr.endswith(
        "mdrun: error: reports/r.json: cannot write the report: Permission denied\n"
    )


# -- a byte-order mark ----------------------------------------------------------------------------


@pytest.mark.kernel
def test_a_document_with_a_byte_order_mark_runs_its_first_block_and_keeps_the_mark(
    mdrun: Mdrun,
) -> None:
    mdrun.path("doc.md").write_bytes(b"\xef\xbb\xbf" + DOCUMENT.encode())
    completed = mdrun("run", "doc.md")
    assert completed.code == 0, completed.err
    assert "warning" not in completed.err
    assert mdrun.path("doc.md").read_bytes() == b"\xef\xbb\xbf" + (
        DOCUMENT + "<!-- mdrun:output id=b1 -->\n``` text\n1\n```\n<!-- mdrun:end -->\n"
    ).encode()
    with no_kernel_starts():
        assert mdrun("check", "doc.md").code == 0
