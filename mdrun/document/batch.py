"""Many documents in one command: which files a command's arguments name, and the tally.

Folders are searched for the documents mdrun reads (Markdown, Quarto, R Markdown); hidden paths
and, inside a git work tree, what `.gitignore` ignores are skipped (git itself decides, through
`git check-ignore`, so every rule git knows applies: nested `.gitignore`s, `info/exclude`, the
global excludes file). Running the documents and printing is the command line's job.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mdrun.errors import UsageError

DOCUMENT_SUFFIXES = frozenset({".md", ".markdown", ".qmd", ".rmd"})
"""What a folder is searched for (compared in lower case): the formats `formats.reading` reads."""

STDIO = "-"


def is_hidden(name: str) -> bool:
    """A dot file or folder (`.git`, `.venv`, `.ipynb_checkpoints`)."""
    return name.startswith(".") and name not in (".", "..")


def find_documents(arguments: Sequence[str]) -> list[str]:
    """The documents named by files and folders, in the order given, folders sorted, each once.

    A file named explicitly is taken whatever its name (the user asked for it); a folder gives
    the documents under it that are neither hidden nor ignored by git. A missing path is an
    error (exit 2), as is a folder with no document in it.
    """
    found: list[str] = []
    for argument in arguments:
        if argument == STDIO:
            found.append(argument)
            continue
        path = Path(argument)
        if path.is_dir():
            documents = documents_in_folder(path)
            if not documents:
                raise UsageError(
                    f"{argument}: a folder with no document in it (mdrun looks for "
                    f"{', '.join(sorted(DOCUMENT_SUFFIXES))}, skipping hidden and "
                    ".gitignored paths)"
                )
            found.extend(documents)
        elif path.is_file():
            found.append(argument)
        else:
            raise UsageError(f"{argument}: no such file")
    return _without_repeats(found)


def documents_in_folder(folder: Path) -> list[str]:
    """The documents under `folder`, sorted, without hidden or git-ignored paths."""
    candidates: list[str] = []
    for root, folders, files in os.walk(folder):
        folders[:] = sorted(name for name in folders if not is_hidden(name))
        for name in sorted(files):
            if not is_hidden(name) and Path(name).suffix.lower() in DOCUMENT_SUFFIXES:
                candidates.append(os.path.normpath(os.path.join(root, name)))
    ignored = git_ignored(folder, candidates)
    return [path for path in candidates if path not in ignored]


def git_ignored(folder: Path, paths: Iterable[str]) -> set[str]:
    """The paths git ignores, when `folder` is in a git work tree (else none).

    `git check-ignore --stdin` reads every path in one process; it exits 1 when none is
    ignored and 128 outside a work tree, which both mean "nothing to skip" here."""
    listed = list(paths)
    git = shutil.which("git")
    if not listed or git is None:
        return set()
    done = subprocess.run(
        [git, "check-ignore", "--stdin", "-z"],
        input="\0".join(os.path.abspath(path) for path in listed) + "\0",
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode not in (0, 1):
        return set()
    ignored = {entry for entry in done.stdout.split("\0") if entry}
    return {path for path in listed if os.path.abspath(path) in ignored}


def _without_repeats(paths: list[str]) -> list[str]:
    seen: set[str] = set()
    unique: list[str] = []
    for path in paths:
        key = path if path == STDIO else os.path.realpath(path)
        if key not in seen:
            seen.add(key)
            unique.append(path)
    return unique


@dataclass(slots=True)
class Tally:
    """How each document of a command ended: its exit code, for the line that sums them up."""

    codes: dict[str, int] = field(default_factory=dict)
    """Each document's exit code (0 ok, 1 failed or out of date, 2 bad input, 3 internal)."""

    def add(self, source: str, code: int) -> None:
        """Record a document's exit code."""
        self.codes[source] = code

    @property
    def worst(self) -> int:
        """The command's exit code: the worst of its documents'."""
        return max(self.codes.values(), default=0)

    def summary(self, seconds: float) -> str:
        """`mdrun: 5 documents: 3 ok, 1 failed, 1 bad input in 2.31 s`."""
        names = {0: "ok", 1: "failed", 2: "bad input", 3: "internal error"}
        counts: dict[int, int] = {}
        for code in self.codes.values():
            counts[code] = counts.get(code, 0) + 1
        parts = [f"{counts[code]} {names.get(code, f'exit {code}')}" for code in sorted(counts)]
        total = len(self.codes)
        plural = "" if total == 1 else "s"
        return f"mdrun: {total} document{plural}: {', '.join(parts)} in {seconds:.2f} s"
