"""Finding documents in folders, and the tally of several documents (no kernel)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mdrun.document.batch import Tally, find_documents
from mdrun.document.units import Unit
from mdrun.errors import UsageError


def _tree(root: Path, names: list[str]) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("# a page\n", encoding="utf-8")


FILES = [
    "index.md",
    "guide/setup.qmd",
    "guide/analysis.Rmd",
    "guide/notes.markdown",
    "guide/data.csv",
    "README.txt",
    ".hidden.md",
    ".github/template.md",
    "guide/.ipynb_checkpoints/setup-checkpoint.md",
    "build/generated.md",
    "scratch/draft.md",
]


def test_a_folder_gives_its_documents_without_hidden_paths(tmp_path: Path) -> None:
    _tree(tmp_path, FILES)
    found = find_documents([str(tmp_path)])
    assert [Path(path).relative_to(tmp_path).as_posix() for path in found] == [
        "index.md",
        "build/generated.md",
        "guide/analysis.Rmd",
        "guide/notes.markdown",
        "guide/setup.qmd",
        "scratch/draft.md",
    ]


def test_in_a_git_work_tree_what_gitignore_ignores_is_skipped(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    _tree(tmp_path, FILES)
    (tmp_path / ".gitignore").write_text("build/\n", encoding="utf-8")
    (tmp_path / "scratch" / ".gitignore").write_text("draft.md\n", encoding="utf-8")
    found = find_documents([str(tmp_path / "guide"), str(tmp_path)])
    assert [Path(path).relative_to(tmp_path).as_posix() for path in found] == [
        "guide/analysis.Rmd",
        "guide/notes.markdown",
        "guide/setup.qmd",
        "index.md",  # the guide's documents are not repeated
    ]


def test_a_file_named_explicitly_is_taken_even_if_ignored(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    _tree(tmp_path, ["build/generated.md"])
    (tmp_path / ".gitignore").write_text("build/\n", encoding="utf-8")
    target = str(tmp_path / "build" / "generated.md")
    assert find_documents([target, target]) == [target]


def test_a_missing_path_or_an_empty_folder_is_bad_usage(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such file"):
        find_documents([str(tmp_path / "missing.md")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no document in it"):
        find_documents([str(tmp_path / "empty")])


def test_the_tally_sums_up_and_keeps_the_worst_exit_code() -> None:
    tally = Tally()
    for source, code in (("a.md", 0), ("b.md", 1), ("c.md", 2), ("d.md", 0)):
        tally.add(source, code)
    assert tally.worst == 2
    assert tally.summary(1.5) == "mdrun: 4 documents: 2 ok, 1 failed, 1 bad input in 1.50 s"
    assert Tally().worst == 0


def test_the_progress_line_names_the_blocks_running_and_the_sessions_waiting() -> None:
    import io

    from mdrun.cli.batch_progress import BatchProgress
    from mdrun.document.formats.settings import Settings
    from mdrun.document.plan import SessionKey

    def unit(source: str, session: str) -> Unit:
        return Unit(source, "", source, ".", Settings(), SessionKey(session, "python3"), "store")

    progress = BatchProgress(io.StringIO())
    progress.documents = 2
    first, second = unit("docs/a.md", "main"), unit("b.md", "other")
    progress.waiting = {first.label: "", second.label: ""}
    assert progress.description() == "0/2 documents; 2 waiting"
    progress.block_event(first.label, "started", "b4")
    assert progress.description() == "0/2 documents; running a.md (main): b4; 1 waiting"
    progress.block_event(first.label, "finished", "b4")
    progress.unit_finished(first)
    progress.finished = 1
    assert progress.description() == "1/2 documents; 1 waiting"
    progress.close()
